// Evaluation of a detector on one category in the MVTec AD layout: fit on train/good, score the test
// images, and measure image AUROC, pixel AUROC and AUPRO as the field does (ALGORITHMS.md §8): maps and
// masks at the model's input resolution, masks resized by nearest neighbour, AUPRO to FPR 0.3 with
// MVTec's official semantics. Nothing is selected on the test set: the model is the last epoch's.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "flowad/data/synthetic_defects.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/metrics/binomial.hpp"
#include "flowad/metrics/threshold.hpp"
#include "flowad/pipeline/inspector.hpp"

namespace flowad {
inline namespace v0 {

struct evaluation_options {
  // Training callbacks and feature-extraction progress. Its holdout is not used: evaluation fits on
  // every training image, as the field does, and the metrics measure that model.
  inspector_fit_options fit;
  // evaluate(): false-positive rates to set thresholds for, each in (0, 1). Not empty: the fit also
  // calibrates out of fold (fit.calibration_folds more fits; fit.calibration must not be holdout) and
  // the result tries each threshold on the test set (evaluation_result::thresholds).
  std::vector<double> target_fprs;
  // The resolution of the maps and masks the pixel metrics compare: 0 x 0 is the model's input size.
  index_t map_height = 0;
  index_t map_width = 0;
};

// A threshold set from the defect-free training images alone (out-of-fold scores), tried on a test set.
struct threshold_evaluation {
  double target_fpr = 0.0;
  decision_threshold threshold;     // the value, how many scores it came from, folds, bounded
  std::size_t false_positives = 0;  // defect-free test images at or above it
  std::size_t good_images = 0;
  binomial_interval fpr_interval;   // 95 % Clopper-Pearson interval of false_positives / good_images
  std::size_t detected = 0;         // defective test images at or above it
  std::size_t defective_images = 0;
  binomial_interval recall_interval;  // 95 % Clopper-Pearson interval of detected / defective_images
  // NaN when there is no image to count (the intervals are then NaN too).
  double fpr() const noexcept;
  double recall() const noexcept;
};

struct evaluation_result {
  std::string category;        // folder name of the category, or "synthetic-defects"
  double image_auroc = 0.0;
  double pixel_auroc = 0.0;   // NaN (not applicable) when the detector does not localise
  double aupro = 0.0;         // NaN likewise
  f1_threshold image_f1;       // the F1-optimal image threshold on the test set (diagnostic only)
  double fit_seconds = 0.0;    // extracting the training features, fitting, heatmap range
  double extract_seconds = 0.0;  // of which extracting the training features
  double ms_per_image = 0.0;   // reading, extracting and scoring one test image
  double calibration_seconds = 0.0;  // out-of-fold calibration's fits (not in fit_seconds)
  fit_report fit;
  std::vector<threshold_evaluation> thresholds;  // one per evaluation_options::target_fprs
  std::vector<double> image_scores;  // the scored images, in order
  std::vector<int> labels;
  tensor maps;                       // N x 1 x H x W anomaly maps at the metrics' resolution (H = W = 0: none)
  tensor masks;                      // N x 1 x H x W ground truth (0/1); evaluate() leaves it empty without maps
  std::vector<std::filesystem::path> images;  // evaluate: the test images; validation: the held-out images
};

// Fits `model` (its configuration says extractor, size and detector) on train/good and evaluates it on
// the test set: maps and masks at the model's input size (or options' map size), masks resized by
// nearest neighbour. Nothing is selected on the test set: the model is the last epoch's.
evaluation_result evaluate(inspector& model, const mvtec_category& data, const evaluation_options& options = {});

// Which defect-free images a validation holds out, and how many defective copies it scores.
struct validation_options {
  double holdout = 0.2;       // share of the images held out of fitting, in (0, 1)
  int fold = 0;               // which share: the images are shuffled (seeded) and cut into consecutive
                              // shares from the end; fold k holds out the (k+1)-th share from the end, so
                              // folds 0 .. floor(1/holdout) - 1 are disjoint (k-fold cross-validation)
  int defects_per_image = 1;  // synthetic defects drawn on each held-out image, each a separate sample
  // The types each defect is drawn from (data/synthetic_defects.hpp validation_defect_types).
  std::vector<std::string> defect_types{default_validation_defect_types.begin(), default_validation_defect_types.end()};
  std::uint64_t seed = 0;     // shuffling and defects
};

// How many of image_count images a fold holds out: max(1, floor(holdout · image_count)).
std::size_t validation_held_out_count(std::size_t image_count, double holdout);
// The number of disjoint folds the split allows: floor(image count / held-out count).
int validation_fold_count(std::size_t image_count, double holdout);

// Validation without any defective image: a seeded share of the defect-free images is kept out of
// fitting; each held-out image is then scored as it is and with synthetic defects drawn on it
// (data/synthetic_defects.hpp add_synthetic_defect). The metrics of that set are how settings, epochs and
// thresholds can be chosen without touching a test set. category is "synthetic-defects".
evaluation_result validate_with_synthetic_defects(inspector& model, const std::vector<std::filesystem::path>& good_images,
                                                  const evaluation_options& options = {},
                                                  const validation_options& split = {});

}  // namespace v0
}  // namespace flowad
