// flowad fit: defect-free images (or feature maps) -> a model file.
#include <cstdio>
#include <optional>

#include "cli/commands.hpp"
#include "cli/fit_auto.hpp"
#include "cli/images.hpp"
#include "cli/options.hpp"
#include "cli/output.hpp"
#include "flowad/detail/config_fields.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/pipeline/feature_model.hpp"

namespace flowad {
namespace cli {

namespace {

// " (loss A -> B)" for a trained detector, "" for one without training.
std::string loss_text(const fit_report& r) {
  if (r.epoch_losses.empty()) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, " (loss %.4f -> %.4f)", r.epoch_losses.front(), r.final_loss);
  return buf;
}

class fit_command final : public command {
 public:
  explicit fit_command(CLI::App& parent) {
    app = parent.add_subcommand("fit", "fit a detector on defect-free images (or feature maps) and save it");
    app->footer(
        "Images: DIR/train/good of an MVTec-layout folder (--data), or image files and folders. The decision\n"
        "threshold at --target-fpr comes from scores of images the scoring model was not fitted on: by\n"
        "default (--calibration auto) every image is scored by one of 5 extra models, each fitted on the\n"
        "other 4/5 of the images, besides the final model on all of them (6 fits: 6 times as long; auto\n"
        "falls back to the holdout below 10 images); --calibration holdout scores a held-out share\n"
        "--holdout instead (one fit, few scores).\n"
        "Feature maps (--features A.npy,B.npy: N x C x H x W float32, one file per scale) fit the detector\n"
        "on them directly; such a model scores feature maps (flowad score --features).");
    app->add_option("--data", data, "an MVTec-layout folder: fits on DIR/train/good");
    app->add_option("images", images, "image files or folders");
    app->add_option("--out", out, "the model file to write")->required();
    app->add_option("--features", features, "feature maps instead of images, one .npy per scale")->delimiter(',');
    app->add_option("--cell-offsets", cell_offsets,
                    "with --features: where each scale's cells sit in the image, in cells from PyTorch's "
                    "align_corners=False grid (default 0)")
        ->delimiter(',');
    pipeline.attach(*app, true);
    threshold.attach(*app);
    app->add_option("--candidates", candidates,
                    "with --model auto: the detector kinds to choose from (default msflow,patchcore,rd)")
        ->delimiter(',');
  }

  int run() override {
    check_auto_options(pipeline, candidates, !features.empty());
    require_output_folder_of(out, "--out");
    if (!features.empty()) return run_on_features();
    if (!cell_offsets.empty())
      throw error(errc::invalid_argument, "--cell-offsets is for --features: with images the extractor says where its cells sit");
    if (data.empty() == images.empty()) throw error(errc::invalid_argument, "give either --data DIR or image files and folders");
    const std::vector<fs::path> good = data.empty() ? expand_images(images) : read_mvtec_category(data).train;
    inspector_fit_options options;
    threshold.apply(options);
    inspector_fit_report report;
    std::optional<inspector> fitted;
    if (pipeline.detector.kind == auto_detector) {  // validate the candidates, fit the best
      fitted.emplace(fit_auto(pipeline, candidates, good, options, report));
    } else {
      fitted.emplace(pipeline.config());
      fit_progress_bars bars(options, &options.on_extract);
      bars.follow_fits(options);
      report = fitted->fit(good, options);
      bars.finish();
    }
    inspector& model = *fitted;
    for (const std::string& e : report.training.events) std::fprintf(stderr, "note: %s\n", e.c_str());
    const feature_options& f = model.feature_settings();
    const model_stats stats = model.model().stats();
    std::printf("%s on %s features of %lldx%lld images: %.2f M parameters, %.2f GMAC per image\n", model.model().kind(),
                model.config().extractor.c_str(), static_cast<long long>(f.height), static_cast<long long>(f.width),
                stats.parameters * 1e-6, stats.macs_per_image * 1e-9);
    if (const auto& t = model.threshold()) {
      std::printf("threshold %.6g for a false-positive rate of %g, ", t->value, t->target_fpr);
      if (t->folds > 0)
        std::printf("from %zu out-of-fold scores (calibration %s: %zu folds, %zu extra fits, %.1f s)", t->held_out_images,
                    calibration_name(*t).c_str(), t->folds, report.calibration_fits, report.calibration_seconds);
      else
        std::printf("from %zu held-out images (calibration %s)", t->held_out_images, calibration_name(*t).c_str());
      std::printf("%s\n", t->bounded ? "" : " (too few images for that rate: the largest score)");
    } else {
      std::printf("no threshold (--holdout 0): verdicts need one (flowad score --threshold)\n");
    }
    model.save(out);
    std::printf("fitted on %zu images in %.1f s%s; saved %s\n", report.fit_images, report.seconds,
                loss_text(report.training).c_str(), out.c_str());
    return 0;
  }

 private:
  int run_on_features() {
    if (!data.empty() || !images.empty()) throw error(errc::invalid_argument, "--features excludes images and --data");
    const std::vector<tensor> train = read_feature_files(features);
    feature_model_options options;
    options.detector = pipeline.detector.kind;
    options.settings = pipeline.detector.settings();
    options.cell_offsets = cell_offsets;
    fit_options fit;
    fit_progress_bars bars(fit);
    fit_report report;
    const auto model = fit_feature_model(views_of(train), options, fit, &report);
    bars.finish();
    model->save(out);
    std::printf("fitted %s on %lld samples in %.1f s%s; saved %s\n", model->kind(), static_cast<long long>(train[0].n()),
                report.seconds, loss_text(report).c_str(), out.c_str());
    return 0;
  }

  std::string data, out;
  std::vector<std::string> images, features, candidates;
  std::vector<double> cell_offsets;
  pipeline_options pipeline;
  threshold_options threshold;
};

}  // namespace

std::unique_ptr<command> make_fit(CLI::App& parent) { return std::make_unique<fit_command>(parent); }

}  // namespace cli
}  // namespace flowad
