#include "flowad/pipeline/evaluate.hpp"

#include <chrono>

#include "flowad/io/preprocess.hpp"
#include "flowad/metrics/pro.hpp"
#include "flowad/metrics/roc.hpp"

namespace flowad {
inline namespace v0 {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

feature_maps views_of(const std::vector<tensor>& maps) {
  feature_maps views;
  for (const tensor& t : maps) views.push_back(t.cview());
  return views;
}
}  // namespace

evaluation_result evaluate(const mvtec_category& data, const extractor& ex, detector& model,
                           const evaluation_options& options) {
  evaluation_result r;
  r.category = data.root.filename().string();
  if (r.category.empty()) r.category = data.root.parent_path().filename().string();

  // Fit: training features, then the detector.
  const auto fit_start = std::chrono::steady_clock::now();
  const std::vector<tensor> train = extract_features(ex, data.train, options.features, options.on_extract);
  r.extract_seconds = seconds_since(fit_start);
  r.fit = model.fit(views_of(train), options.fit);
  r.fit_seconds = seconds_since(fit_start);

  // Score the test set at the input resolution.
  score_options so = options.score;
  if (so.map_height == 0 && so.map_width == 0) so.map_height = so.map_width = options.features.image_size;
  const std::vector<std::filesystem::path> images = data.test_images();
  const auto test_start = std::chrono::steady_clock::now();
  const std::vector<tensor> test = extract_features(ex, images, options.features, options.on_extract);
  scores s = model.score(views_of(test), so);
  r.ms_per_image = seconds_since(test_start) * 1e3 / static_cast<double>(images.size());

  r.image_scores = std::move(s.image);
  r.maps = std::move(s.maps);
  r.labels = data.test_labels();
  r.masks = load_mask_batch(data.test_masks(), r.maps.h(), r.maps.w());
  r.image_auroc = auroc(span<const double>(r.image_scores), span<const int>(r.labels));
  const pixel_metrics_result pixel = pixel_metrics(r.maps.view(), r.masks.view());
  r.pixel_auroc = pixel.auroc;
  r.aupro = pixel.pro.aupro;
  r.image_f1 = f1_optimal_threshold(span<const double>(r.image_scores), span<const int>(r.labels));
  return r;
}

}  // namespace v0
}  // namespace flowad
