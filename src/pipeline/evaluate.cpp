#include "flowad/pipeline/evaluate.hpp"

#include <algorithm>
#include <chrono>
#include <limits>

#include "core/timing.hpp"
#include "flowad/data/synthetic_defects.hpp"
#include "flowad/detail/config_fields.hpp"
#include "flowad/detail/random.hpp"
#include "flowad/io/image_resize.hpp"
#include "flowad/io/preprocess.hpp"
#include "flowad/metrics/pro.hpp"
#include "flowad/metrics/roc.hpp"

namespace flowad {
inline namespace v0 {

namespace {
// Fits on every one of `images`, timing it; with `target_fprs`, also calibrates out of fold and
// returns those scores (the final model stays the one fitted on every image: the metrics measure it).
std::vector<double> fit_timed(evaluation_result& r, inspector& model, const std::vector<std::filesystem::path>& images,
                              const evaluation_options& options, const std::vector<double>& target_fprs) {
  inspector_fit_options fit = options.fit;
  fit.holdout = 0.0;
  fit.calibration = calibration_method::holdout;  // holdout 0: no threshold, the field's protocol
  if (!target_fprs.empty()) {
    if (options.fit.calibration == calibration_method::holdout)
      throw error(errc::invalid_argument, "evaluation with target false-positive rates calibrates out of fold: "
                                          "a holdout would take images from the model the metrics measure");
    for (double t : target_fprs)
      if (!(t > 0.0 && t < 1.0))
        throw error(errc::invalid_argument, "evaluation_options.target_fprs: each must be in (0, 1), got " +
                                                detail::number_text(t));
    fit.calibration = calibration_method::out_of_fold;
    fit.target_fpr = target_fprs.front();
  }
  const inspector_fit_report report = model.fit(images, fit);
  r.fit = report.training;
  r.extract_seconds = report.extract_seconds;
  r.calibration_seconds = report.calibration_seconds;
  r.fit_seconds = report.seconds - report.calibration_seconds;
  return report.calibration_scores;
}

// Each target's threshold from the calibration scores, counted on the test set's labelled scores.
std::vector<threshold_evaluation> try_thresholds(const std::vector<double>& calibration_scores, std::size_t folds,
                                                 const std::vector<double>& target_fprs, const evaluation_result& r) {
  std::vector<threshold_evaluation> out;
  for (double target : target_fprs) {
    const fpr_threshold t = threshold_for_fpr(span<const double>(calibration_scores), target);
    threshold_evaluation e;
    e.target_fpr = target;
    e.threshold = decision_threshold{t.threshold, target, calibration_scores.size(), t.bounded, folds};
    for (std::size_t i = 0; i < r.image_scores.size(); ++i) {
      const bool flagged = r.image_scores[i] >= t.threshold;
      if (r.labels[i] == 0) {
        ++e.good_images;
        e.false_positives += flagged ? 1 : 0;
      } else {
        ++e.defective_images;
        e.detected += flagged ? 1 : 0;
      }
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    e.fpr_interval = e.good_images > 0 ? clopper_pearson(e.false_positives, e.good_images) : binomial_interval{nan, nan};
    e.recall_interval = e.defective_images > 0 ? clopper_pearson(e.detected, e.defective_images) : binomial_interval{nan, nan};
    out.push_back(e);
  }
  return out;
}

// Image AUROC, pixel AUROC, AUPRO and the F1-optimal threshold of r's scores, maps, labels and masks.
// Without maps (a detector that does not localise) the pixel metrics are NaN: not applicable.
void measure(evaluation_result& r, bool localises) {
  r.image_auroc = auroc(span<const double>(r.image_scores), span<const int>(r.labels));
  if (localises) {
    const pixel_metrics_result pixel = pixel_metrics(r.maps.view(), r.masks.view());
    r.pixel_auroc = pixel.auroc;
    r.aupro = pixel.pro.aupro;
  } else {
    r.pixel_auroc = r.aupro = std::numeric_limits<double>::quiet_NaN();
  }
  r.image_f1 = f1_optimal_threshold(span<const double>(r.image_scores), span<const int>(r.labels));
}
}  // namespace

double threshold_evaluation::fpr() const noexcept {
  return good_images > 0 ? static_cast<double>(false_positives) / static_cast<double>(good_images)
                         : std::numeric_limits<double>::quiet_NaN();
}

double threshold_evaluation::recall() const noexcept {
  return defective_images > 0 ? static_cast<double>(detected) / static_cast<double>(defective_images)
                              : std::numeric_limits<double>::quiet_NaN();
}

evaluation_result evaluate(inspector& model, const mvtec_category& data, const evaluation_options& options) {
  evaluation_result r;
  r.category = data.root.filename().string();
  if (r.category.empty()) r.category = data.root.parent_path().filename().string();

  const std::vector<double> calibration_scores = fit_timed(r, model, data.train, options, options.target_fprs);

  // Score the test set at the metrics' resolution.
  r.images = data.test_images();
  const auto test_start = std::chrono::steady_clock::now();
  scores s = model.score(r.images, options.map_height, options.map_width, options.fit.on_extract);
  r.ms_per_image = detail::seconds_since(test_start) * 1e3 / static_cast<double>(r.images.size());

  r.image_scores = std::move(s.image);
  r.maps = std::move(s.maps);
  r.labels = data.test_labels();
  const bool localises = model.model().localises();
  if (localises) r.masks = load_mask_batch(data.test_masks(), r.maps.h(), r.maps.w());
  measure(r, localises);
  if (!options.target_fprs.empty())
    r.thresholds = try_thresholds(calibration_scores, options.fit.calibration_folds, options.target_fprs, r);
  return r;
}

std::size_t validation_held_out_count(std::size_t image_count, double holdout) {
  if (!(holdout > 0.0 && holdout < 1.0)) throw error(errc::invalid_argument, "holdout must be in (0, 1), got " + std::to_string(holdout));
  return std::max<std::size_t>(1, static_cast<std::size_t>(holdout * static_cast<double>(image_count)));
}

int validation_fold_count(std::size_t image_count, double holdout) {
  return static_cast<int>(image_count / validation_held_out_count(image_count, holdout));
}

evaluation_result validate_with_synthetic_defects(inspector& model, const std::vector<std::filesystem::path>& good_images,
                                                  const evaluation_options& options, const validation_options& split) {
  const std::size_t held = validation_held_out_count(good_images.size(), split.holdout);
  if (held >= good_images.size()) throw error(errc::invalid_argument, "holdout leaves no image to fit on");
  const int folds = validation_fold_count(good_images.size(), split.holdout);
  if (split.fold < 0 || split.fold >= folds)
    throw error(errc::invalid_argument, "validation fold " + std::to_string(split.fold) + " does not exist: " +
                                            std::to_string(good_images.size()) + " images with holdout " +
                                            std::to_string(split.holdout) + " give folds 0.." + std::to_string(folds - 1));
  if (split.defects_per_image < 1)
    throw error(errc::invalid_argument, "defects_per_image must be at least 1, got " + std::to_string(split.defects_per_image));
  std::vector<std::filesystem::path> images = good_images;
  detail::rng r(split.seed + 0x5EED);
  r.shuffle(images);
  const auto check_end = images.end() - static_cast<std::ptrdiff_t>(static_cast<std::size_t>(split.fold) * held);
  const auto check_begin = check_end - static_cast<std::ptrdiff_t>(held);
  std::vector<std::filesystem::path> fit_images(images.begin(), check_begin);
  fit_images.insert(fit_images.end(), check_end, images.end());
  const std::vector<std::filesystem::path> check(check_begin, check_end);

  evaluation_result result;
  result.category = "synthetic-defects";
  result.images = check;
  fit_timed(result, model, fit_images, options, {});

  // The validation set: every held-out image, clean and with its defects; masks at the maps' size.
  const index_t map_h = options.map_height > 0 ? options.map_height : model.feature_settings().height;
  const index_t map_w = options.map_width > 0 ? options.map_width : model.feature_settings().width;
  const auto per_image = static_cast<std::size_t>(1 + split.defects_per_image);
  std::vector<byte_image> samples;
  tensor masks({static_cast<index_t>(per_image * check.size()), 1, map_h, map_w});
  masks.fill(0.0f);
  for (std::size_t i = 0; i < check.size(); ++i) {
    const byte_image clean = read_image(check[i]);
    samples.push_back(clean);
    result.labels.push_back(0);
    // Fold 0's first defects keep the seeds of the single-split validation, whose results docs/ quote.
    const std::uint64_t image_index = static_cast<std::uint64_t>(split.fold) * held + i;
    for (int d = 0; d < split.defects_per_image; ++d) {
      const std::uint64_t defect_seed = split.seed * 1000003ull + image_index + static_cast<std::uint64_t>(d) * 7919ull * 1000003ull;
      const defect_sample defect = add_synthetic_defect(clean, defect_seed, split.defect_types);
      samples.push_back(defect.image);
      result.labels.push_back(1);
      const byte_image small = resize_nearest(defect.mask, map_h, map_w);
      const auto sample = static_cast<index_t>(samples.size() - 1);
      for (index_t y = 0; y < map_h; ++y)
        for (index_t x = 0; x < map_w; ++x) masks(sample, 0, y, x) = small(y, x, 0) ? 1.0f : 0.0f;
    }
  }
  const auto test_start = std::chrono::steady_clock::now();
  scores s = model.score(samples, map_h, map_w);
  result.ms_per_image = detail::seconds_since(test_start) * 1e3 / static_cast<double>(samples.size());
  result.image_scores = std::move(s.image);
  result.maps = std::move(s.maps);
  result.masks = std::move(masks);
  measure(result, model.model().localises());
  return result;
}

}  // namespace v0
}  // namespace flowad
