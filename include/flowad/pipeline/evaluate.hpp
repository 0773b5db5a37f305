// Evaluation of a detector on one category in the MVTec AD layout: fit on train/good, score the test
// images, and measure image AUROC, pixel AUROC and AUPRO as the field does (ALGORITHMS.md §8): maps and
// masks at the model's input resolution, masks resized by nearest neighbour, AUPRO to FPR 0.3 with
// MVTec's official semantics. Nothing is selected on the test set: the model is the last epoch's.
#pragma once

#include <functional>
#include <string>

#include "flowad/detector.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/metrics/threshold.hpp"
#include "flowad/pipeline/features.hpp"

namespace flowad {
inline namespace v0 {

struct evaluation_options {
  feature_options features;
  fit_options fit;
  score_options score;          // map size defaults to the image size
  progress_callback on_extract;  // (images done, total) while extracting features
  // Called once after fitting with the training features, while they are still in memory (e.g. to
  // calibrate on the training maps without extracting the features again).
  std::function<void(const feature_maps& train)> on_fitted;
};

struct evaluation_result {
  std::string category;        // folder name of the category
  double image_auroc = 0.0;
  double pixel_auroc = 0.0;
  double aupro = 0.0;
  f1_threshold image_f1;       // the F1-optimal image threshold on the test set (diagnostic only)
  double fit_seconds = 0.0;    // extracting the training features and fitting
  double extract_seconds = 0.0;  // of which extracting the training features
  double ms_per_image = 0.0;   // reading, extracting and scoring one test image
  fit_report fit;
  std::vector<double> image_scores;  // test images, in the category's order
  std::vector<int> labels;
  tensor maps;                       // N x 1 x S x S anomaly maps
  tensor masks;                      // N x 1 x S x S ground truth (0/1)
};

// Fits `model` (unfitted, configured for the extractor's kept levels at options.features.image_size)
// and evaluates it.
evaluation_result evaluate(const mvtec_category& data, const extractor& ex, detector& model,
                           const evaluation_options& options);

// Validation without any defective image: a seeded share `holdout` of the defect-free images is kept
// out of fitting; each held-out image is then scored as it is and with a synthetic defect drawn on it
// (io/synthetic.hpp add_synthetic_defect). The metrics of that set are how settings, epochs and
// thresholds can be chosen without touching a test set. category is "synthetic-defects".
evaluation_result validate_with_synthetic_defects(const std::vector<std::filesystem::path>& good_images,
                                                  const extractor& ex, detector& model,
                                                  const evaluation_options& options, double holdout = 0.2,
                                                  std::uint64_t seed = 0);

}  // namespace v0
}  // namespace flowad
