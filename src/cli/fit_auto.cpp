#include "cli/fit_auto.hpp"

#include <cmath>
#include <cstdio>
#include <memory>

#include "cli/output.hpp"
#include "flowad/detail/config_fields.hpp"

namespace flowad {
namespace cli {

void check_auto_options(const pipeline_options& pipeline, const std::vector<std::string>& candidates, bool feature_maps) {
  if (pipeline.detector.kind != auto_detector) {
    if (!candidates.empty()) throw error(errc::invalid_argument, "--candidates is for --model auto");
    return;
  }
  const auto refuse = [](const std::string& option) {
    throw error(errc::invalid_argument, option + " does not go with --model auto: it is per detector, and each "
                                                 "candidate runs its own recipe (choose with --model auto, then "
                                                 "fit the chosen kind with " + option + " if you want to change it)");
  };
  if (feature_maps) throw error(errc::invalid_argument, "--model auto chooses among detectors on images, not on --features");
  if (!pipeline.detector.assignments.empty()) refuse("--set");
  if (!pipeline.detector.host.empty()) refuse("--host");
  if (!pipeline.levels.empty()) refuse("--levels");
  const pipeline_options defaults;
  if (pipeline.neighbourhood != defaults.neighbourhood) refuse("--neighbourhood");
  if (pipeline.pool_stride != defaults.pool_stride) refuse("--pool-stride");
}

void print_selection(const detector_selection& s) {
  std::printf("\ndetector selection: %zu of %zu images held out, each scored clean and with %d synthetic defect%s\n",
              s.held_out_images, s.images, s.validation.defects_per_image, s.validation.defects_per_image == 1 ? "" : "s");
  std::printf("%-10s %11s %11s %8s %8s %9s %9s\n", "candidate", "image AUROC", "pixel AUROC", "AUPRO", "figure", "fit (s)",
              "ms/image");
  for (const candidate_figures& c : s.candidates)
    std::printf("%-10s %11s %11s %8s %8s %9.1f %9.1f%s\n", c.kind.c_str(), metric_text(c.image_auroc).c_str(),
                metric_text(c.pixel_auroc).c_str(), metric_text(c.aupro).c_str(), metric_text(c.figure).c_str(),
                c.fit_seconds, c.ms_per_image, c.kind == s.chosen ? "  <- chosen" : "");
  std::printf("rule: %s\n", s.rule.c_str());
}

inspector fit_auto(const pipeline_options& pipeline, const std::vector<std::string>& candidates,
                   const std::vector<std::filesystem::path>& good, inspector_fit_options& options, inspector_fit_report& report) {
  // The base: the extractor, weights and input size; the detector's own settings are each candidate's.
  pipeline_options base_options = pipeline;
  base_options.detector = detector_options{};
  const pipeline_config base = base_options.config();

  selection_options selection;
  if (!candidates.empty()) selection.candidates = candidates;
  selection.epochs = pipeline.detector.epochs;
  // Every candidate gets fresh progress bars; the library's callbacks forward to the current ones.
  fit_options bar_hooks;
  progress_callback extract_hook;
  std::unique_ptr<fit_progress_bars> bars;
  selection.evaluation.fit.on_progress = [&](const fit_progress& p) {
    if (bar_hooks.on_progress) bar_hooks.on_progress(p);
  };
  selection.evaluation.fit.on_extract = [&](long done, long total) {
    if (extract_hook) extract_hook(done, total);
  };
  selection.on_candidate = [&](const std::string& kind, std::size_t i, std::size_t n) {
    std::fprintf(stderr, "candidate %zu/%zu: %s (fitted without the held-out images, then validated on them)\n", i + 1, n,
                 kind.c_str());
    bars = std::make_unique<fit_progress_bars>(bar_hooks, &extract_hook);
  };
  selection.on_figures = [&](const candidate_figures& c) {
    if (bars) bars->finish();
    bars.reset();
    std::fprintf(stderr, "candidate %s: image AUROC %s, pixel AUROC %s, AUPRO %s (fit %.1f s, %.1f ms/image)\n", c.kind.c_str(),
                 metric_text(c.image_auroc).c_str(), metric_text(c.pixel_auroc).c_str(), metric_text(c.aupro).c_str(),
                 c.fit_seconds, c.ms_per_image);
  };
  const detector_selection chosen = select_detector(base, good, selection);
  print_selection(chosen);
  std::printf("chose %s; fitting it on the %zu images as flowad fit --model %s does\n", chosen.chosen.c_str(), good.size(), chosen.chosen.c_str());
  std::fflush(stdout);

  fit_progress_bars final_bars(options, &options.on_extract);
  final_bars.follow_fits(options);
  inspector model = fit_selected(chosen, good, options, &report);
  final_bars.finish();
  return model;
}

}  // namespace cli
}  // namespace flowad
