#include "flowad/pipeline/auto_select.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "flowad/detail/config_fields.hpp"

namespace flowad {
inline namespace v0 {

namespace fs = std::filesystem;

std::string selection_rule_text() {
  return "highest mean of image AUROC, pixel AUROC and AUPRO on held-out defect-free images with synthetic defects "
         "(image AUROC alone when no candidate localises; a candidate without maps is not eligible otherwise); "
         "within " + detail::number_text(selection_tie_margin) + " of the best, the fastest scoring wins";
}

const candidate_figures& detector_selection::chosen_figures() const {
  for (const candidate_figures& c : candidates)
    if (c.kind == chosen) return c;
  throw error(errc::invalid_argument, "detector_selection: the chosen kind '" + chosen + "' is not among its candidates");
}

pipeline_config candidate_config(const pipeline_config& base, const std::string& kind, const detector_config& settings) {
  const pipeline_config defaults;
  const auto refuse = [](const std::string& what) {
    throw error(errc::invalid_argument, "detector selection: the base configuration sets " + what +
                                            ", which is per detector (each candidate runs its own recipe)");
  };
  if (!base.levels.empty()) refuse("levels");
  if (base.neighbourhood != defaults.neighbourhood) refuse("neighbourhood");
  if (base.pool_stride != defaults.pool_stride) refuse("pool_stride");
  if (!base.settings.empty()) refuse("settings (give them by kind in selection_options::settings)");
  try {
    detector_kind(kind);
  } catch (const error& e) {
    throw error(e.code(), "detector selection candidate: " + e.message());
  }
  pipeline_config c = base;
  c.detector = kind;
  c.settings = settings;
  c.validate();
  return c;
}

std::size_t apply_selection_rule(std::vector<candidate_figures>& candidates) {
  if (candidates.empty()) throw error(errc::empty_input, "apply_selection_rule: no candidates");
  const auto has_maps = [](const candidate_figures& c) { return std::isfinite(c.pixel_auroc) && std::isfinite(c.aupro); };
  const bool any_maps = std::any_of(candidates.begin(), candidates.end(), has_maps);
  constexpr double not_eligible = std::numeric_limits<double>::quiet_NaN();
  for (candidate_figures& c : candidates) {
    if (any_maps)
      c.figure = has_maps(c) ? (c.image_auroc + c.pixel_auroc + c.aupro) / 3.0 : not_eligible;
    else
      c.figure = c.image_auroc;
    if (!std::isfinite(c.figure)) c.figure = not_eligible;
  }
  double best = -std::numeric_limits<double>::infinity();
  for (const candidate_figures& c : candidates)
    if (std::isfinite(c.figure)) best = std::max(best, c.figure);
  if (!std::isfinite(best)) throw error(errc::non_finite, "apply_selection_rule: no candidate has a finite figure");
  // Within the margin the figures cannot tell the candidates apart: the cheaper to run wins (the
  // first in order when equally fast).
  std::size_t chosen = candidates.size();
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const candidate_figures& c = candidates[i];
    if (!(c.figure >= best - selection_tie_margin)) continue;
    if (chosen == candidates.size() || c.ms_per_image < candidates[chosen].ms_per_image) chosen = i;
  }
  return chosen;
}

namespace {

// Every candidate's configuration, checked (kinds, settings and their domains) before anything is fitted.
std::vector<pipeline_config> candidate_configs(const pipeline_config& base, const selection_options& options) {
  if (options.candidates.empty()) throw error(errc::empty_input, "detector selection: no candidates");
  std::set<std::string> seen;
  for (const std::string& kind : options.candidates)
    if (!seen.insert(kind).second) throw error(errc::invalid_argument, "detector selection: the candidate '" + kind + "' is given twice");
  for (const auto& [kind, settings] : options.settings)
    if (!seen.count(kind))
      throw error(errc::invalid_argument, "detector selection: settings are given for '" + kind + "', which is not a candidate");
  if (options.epochs < 0) throw error(errc::invalid_argument, "detector selection: epochs must be >= 0, got " + std::to_string(options.epochs));

  const std::unique_ptr<extractor> ex = make_extractor(base.extractor, base.weights);
  std::vector<pipeline_config> configs;
  for (const std::string& kind : options.candidates) {
    const auto given = options.settings.find(kind);
    pipeline_config c = candidate_config(base, kind, given == options.settings.end() ? detector_config{} : given->second);
    try {
      const feature_options fo = pipeline_features(c, *ex);  // the shapes only matter for which keys exist
      if (options.epochs > 0 && recommended_config(kind, feature_geometry_of(*ex, fo)).has("train.epochs"))
        c.settings.set("train.epochs", std::to_string(options.epochs));
      make_detector(kind, pipeline_detector_config(c, *ex, fo));  // unknown settings, values out of their domain
    } catch (const error& e) {
      throw error(e.code(), "detector selection candidate '" + kind + "': " + e.message());
    }
    configs.push_back(std::move(c));
  }
  return configs;
}

}  // namespace

detector_selection select_detector(const pipeline_config& base, const std::vector<fs::path>& good_images,
                                   const selection_options& options) {
  const std::vector<pipeline_config> configs = candidate_configs(base, options);
  detector_selection s;
  s.rule = selection_rule_text();
  s.images = good_images.size();
  s.held_out_images = validation_held_out_count(good_images.size(), options.validation.holdout);
  s.validation = options.validation;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const std::string& kind = configs[i].detector;
    if (options.on_candidate) options.on_candidate(kind, i, configs.size());
    candidate_figures f;
    f.kind = kind;
    f.config = configs[i];
    try {
      inspector model(configs[i]);
      // The same split and seed for every candidate: the same held-out images and the same defects.
      const evaluation_result r = validate_with_synthetic_defects(model, good_images, options.evaluation, options.validation);
      f.image_auroc = r.image_auroc;
      f.pixel_auroc = r.pixel_auroc;
      f.aupro = r.aupro;
      f.fit_seconds = r.fit_seconds;
      f.ms_per_image = r.ms_per_image;
    } catch (const error& e) {
      throw error(e.code(), "detector selection candidate '" + kind + "': " + e.message());
    }
    s.candidates.push_back(f);
    if (options.on_figures) options.on_figures(f);
  }
  s.chosen = s.candidates[apply_selection_rule(s.candidates)].kind;
  return s;
}

inspector fit_selected(const detector_selection& selection, const std::vector<fs::path>& good_images,
                       const inspector_fit_options& options, inspector_fit_report* report) {
  const candidate_figures& chosen = selection.chosen_figures();
  if (chosen.config.detector != chosen.kind)
    throw error(errc::invalid_argument, "fit_selected: the selection does not hold the configuration '" + chosen.kind +
                                            "' was validated with (a selection read from a model file cannot be refitted)");
  inspector model(chosen.config);
  const inspector_fit_report r = model.fit(good_images, options);
  if (report) *report = r;
  model.set_selection(selection);
  return model;
}

}  // namespace v0
}  // namespace flowad
