// Choosing a detector on the user's own defect-free images (`flowad fit --model auto`): every
// candidate kind is fitted and validated on the same held-out images with the same synthetic defects
// (validate_with_synthetic_defects, pipeline/evaluate.hpp), the best by the rule below is kept, and the
// inspector is then fitted on every image with it, the choice and its figures recorded in the model file.
//
//   const auto images = flowad::image_folder("part/train/good");
//   flowad::detector_selection s = flowad::select_detector(flowad::pipeline_config::recommended("resnet18", "w/resnet18"), images);
//   flowad::inspector insp = flowad::fit_selected(s, images);   // s.chosen; insp.selection() holds s
//
// The rule (selection_rule_text): each candidate's figure is the mean of image AUROC, pixel AUROC and
// AUPRO on the validation set. A detector without anomaly maps (DifferNet) has no pixel metrics and is
// not eligible unless no candidate has maps; then the figure is image AUROC alone. The highest figure
// wins; among the candidates within selection_tie_margin of it, the one that scores fastest (ms per
// image) wins, since the figures cannot tell them apart.
//
// Each candidate runs with its kind's own recipe (levels, settings) on the base configuration's
// extractor, weights and input size: levels, neighbourhood, pool stride and settings are per kind, so a
// base that sets them is refused (selection_options::settings changes a kind's settings).
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "flowad/pipeline/evaluate.hpp"
#include "flowad/pipeline/inspector.hpp"

namespace flowad {
inline namespace v0 {

// Figures closer than this to the best are a tie, broken by scoring speed.
inline constexpr double selection_tie_margin = 0.005;
// The rule in words, as recorded in the model file (selection.rule).
std::string selection_rule_text();

// One candidate's validation figures.
struct candidate_figures {
  std::string kind;
  double image_auroc = 0.0;
  double pixel_auroc = 0.0;  // NaN when the detector does not localise
  double aupro = 0.0;        // NaN likewise
  double fit_seconds = 0.0;  // fitting on the validation's fit share (features included)
  double ms_per_image = 0.0; // extracting and scoring one validation sample
  double figure = 0.0;       // the rule's figure (see above); NaN when not eligible
  // The configuration it was validated with (empty detector for a selection read from a model file).
  pipeline_config config;
};

struct detector_selection {
  std::string rule;                          // selection_rule_text() when made
  std::vector<candidate_figures> candidates;  // in the order tried
  std::string chosen;                        // the winning kind
  // The validation they were compared on.
  std::size_t images = 0;           // defect-free images given
  std::size_t held_out_images = 0;  // of which held out, each scored clean and with defects
  validation_options validation;

  const candidate_figures& chosen_figures() const;  // errc::invalid_argument when `chosen` is not a candidate
};

struct selection_options {
  // The kinds tried, in order (each at most once).
  std::vector<std::string> candidates{"msflow", "patchcore", "rd"};
  // Which images are held out and which defects are drawn: the same for every candidate.
  validation_options validation;
  // Training callbacks, feature-extraction progress and map size of each candidate's validation.
  evaluation_options evaluation;
  // Changes to a candidate's recommended configuration, by kind (each kind must be a candidate).
  std::map<std::string, detector_config> settings;
  // > 0: train.epochs of every candidate that trains (a shorter budget for quick looks and tests).
  int epochs = 0;
  // Called before a candidate is fitted (index from 0), and with its figures once validated (their
  // `figure` is set by the rule once every candidate is done).
  std::function<void(const std::string& kind, std::size_t index, std::size_t count)> on_candidate;
  std::function<void(const candidate_figures&)> on_figures;
};

// The configuration a candidate runs with: the base's extractor, weights, embedding and input size,
// the kind's own recipe otherwise, changed by `settings`. Throws errc::invalid_argument naming an
// unknown kind, or a base whose levels, neighbourhood, pool stride or settings are set (they are per kind).
pipeline_config candidate_config(const pipeline_config& base, const std::string& kind, const detector_config& settings = {});

// Applies the rule: sets every candidate's `figure` and returns the index of the winner. Throws
// errc::empty_input for no candidates.
std::size_t apply_selection_rule(std::vector<candidate_figures>& candidates);

// Validates every candidate on the same fold of `good_images` and chooses by the rule. Every
// candidate's configuration is checked before the first is fitted: unknown kinds, kinds given twice,
// settings for a kind that is not a candidate and unknown settings are errc::invalid_argument. A
// candidate's own failure is rethrown with its kind in the message.
detector_selection select_detector(const pipeline_config& base, const std::vector<std::filesystem::path>& good_images,
                                   const selection_options& options = {});

// An inspector of the chosen kind, configured as it was validated, fitted on every one of `good_images`
// as inspector::fit does (the threshold from options' holdout), with the selection recorded
// (inspector::selection(), and the model file's selection.* entries).
inspector fit_selected(const detector_selection& selection, const std::vector<std::filesystem::path>& good_images,
                       const inspector_fit_options& options = {}, inspector_fit_report* report = nullptr);

// The selection a detector's model-file metadata records (selection.*), or none. Throws errc::bad_file
// naming `origin` and the entry for a damaged record.
std::optional<detector_selection> recorded_selection(const detector& model, const std::string& origin = "the model");

}  // namespace v0
}  // namespace flowad
