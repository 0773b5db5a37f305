#include "pipeline/model_schema.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "flowad/detail/config_fields.hpp"
#include "flowad/extract/extractor.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

namespace {

std::string join_numbers(const std::vector<double>& values) {
  std::string out;
  for (double v : values) out += (out.empty() ? "" : ",") + number_text(v);
  return out;
}

class metadata_reader {
 public:
  metadata_reader(const detector& model, const std::string& origin) : m_(model.metadata()), origin_(origin) {}

  bool has(const std::string& key) const { return m_.count(key) > 0; }
  bool has_prefix(const std::string& prefix) const {
    const auto it = m_.lower_bound(prefix);
    return it != m_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
  }
  const std::string& text(const std::string& key) const {
    const auto it = m_.find(key);
    if (it == m_.end()) throw error(errc::bad_file, origin_ + ": the model file lacks the entry '" + key + "'");
    return it->second;
  }
  // errc::bad_file naming the file, the entry and its value.
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw error(errc::bad_file, origin_ + ": the entry '" + key + "' = '" + text(key) + "' " + what);
  }
  template <class T>
  T value(const std::string& key) const {
    const std::string& t = text(key);  // outside the try: its error names the file already
    T out{};
    try {
      parse_value(errc::bad_file, key, t, out);
    } catch (const error& e) {
      throw error(errc::bad_file, origin_ + ": " + e.message());
    }
    return out;
  }
  // A finite number within T's range (a double beyond a float's range does not convert to one).
  template <class T>
  T real(const std::string& key) const {
    const double v = value<double>(key);
    if (std::abs(v) > static_cast<double>(std::numeric_limits<T>::max())) fail(key, "is out of range");
    return static_cast<T>(v);
  }
  // An integer in [lo, hi]: sizes are checked before anything is sized by them.
  index_t integer(const std::string& key, index_t lo, index_t hi) const {
    const index_t v = value<index_t>(key);
    if (v < lo || v > hi) fail(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  }
  std::vector<double> numbers(const std::string& key) const {
    std::vector<double> out;
    for (const std::string& item : split(text(key), ',')) {
      double v = 0.0;
      if (!parse_real(item, v)) fail(key, "is not a list of finite numbers");
      out.push_back(v);
    }
    return out;
  }

 private:
  const std::map<std::string, std::string>& m_;
  const std::string& origin_;
};

}  // namespace

void write_pipeline_record(const pipeline_record& r, std::map<std::string, std::string>& metadata) {
  metadata["pipeline.extractor"] = r.extractor;
  metadata["pipeline.weights"] = r.weights;
  metadata["pipeline.weights_embedded"] = r.weights_embedded ? "true" : "false";
  metadata["pipeline.height"] = std::to_string(r.features.height);
  metadata["pipeline.width"] = std::to_string(r.features.width);
  metadata["pipeline.levels"] = join(r.features.levels, ',');
  metadata["pipeline.neighbourhood"] = std::to_string(r.features.neighbourhood);
  metadata["pipeline.pool_stride"] = std::to_string(r.features.pool_stride);
  metadata["pipeline.cell_offsets"] = join_numbers(r.cell_offsets);
  for (const char* key : {"threshold", "threshold.target_fpr", "threshold.held_out_images", "threshold.bounded",
                          "threshold.method", "threshold.folds"})
    metadata.erase(key);
  if (r.threshold) {
    metadata["threshold"] = (number_text(r.threshold->value));
    metadata["threshold.target_fpr"] = (number_text(r.threshold->target_fpr));
    metadata["threshold.held_out_images"] = (std::to_string(r.threshold->held_out_images));
    metadata["threshold.bounded"] = (r.threshold->bounded ? "true" : "false");
    metadata["threshold.method"] = (calibration_name(*r.threshold));
    metadata["threshold.folds"] = (std::to_string(r.threshold->folds));
  }
  metadata["heatmap.lo"] = number_text(r.heatmap.lo);
  metadata["heatmap.hi"] = number_text(r.heatmap.hi);
}

pipeline_record read_pipeline_record(const detector& model, const std::string& origin) {
  const metadata_reader m(model, origin);
  if (!m.has_prefix("pipeline."))
    throw error(errc::bad_file, origin + ": the model was fitted on feature maps and does not record how to make them "
                                         "from images (score it with feature maps: flowad score --features)");
  pipeline_record r;
  r.extractor = m.text("pipeline.extractor");
  const std::vector<std::string> extractors = extractor_names();
  if (std::find(extractors.begin(), extractors.end(), r.extractor) == extractors.end())
    m.fail("pipeline.extractor", "names no extractor (known: " + join(extractors, ',') + ")");
  r.weights = m.text("pipeline.weights");
  r.weights_embedded = m.value<bool>("pipeline.weights_embedded");
  if (r.weights_embedded && !r.weights.empty())
    m.fail("pipeline.weights", "should be empty: 'pipeline.weights_embedded' says the weights are in the file");
  r.features.height = m.integer("pipeline.height", 1, max_image_side);
  r.features.width = m.integer("pipeline.width", 1, max_image_side);
  r.features.levels = split(m.text("pipeline.levels"), ',');
  if (r.features.levels.empty() ||
      std::any_of(r.features.levels.begin(), r.features.levels.end(), [](const std::string& l) { return l.empty(); }))
    m.fail("pipeline.levels", "is not a comma-separated list of level names");
  r.features.neighbourhood = m.integer("pipeline.neighbourhood", 1, max_neighbourhood);
  if (r.features.neighbourhood % 2 == 0) m.fail("pipeline.neighbourhood", "must be odd");
  r.features.pool_stride = m.integer("pipeline.pool_stride", 1, max_pool_stride);
  r.cell_offsets = m.numbers("pipeline.cell_offsets");
  if (r.cell_offsets.size() != r.features.levels.size())
    m.fail("pipeline.cell_offsets", "should have one value for each of the " +
                                        std::to_string(r.features.levels.size()) + " levels of 'pipeline.levels'");
  for (const double offset : r.cell_offsets)
    if (std::abs(offset) > 1.0) m.fail("pipeline.cell_offsets", "should be within one cell (in [-1, 1])");

  if (m.has("threshold")) {
    decision_threshold t;
    t.value = m.value<double>("threshold");
    t.target_fpr = m.value<double>("threshold.target_fpr");
    if (!(t.target_fpr >= 0.0 && t.target_fpr < 1.0)) m.fail("threshold.target_fpr", "must be in [0, 1)");
    t.held_out_images = m.value<std::size_t>("threshold.held_out_images");
    // Set from held-out images (both positive) or by hand (both 0).
    if ((t.target_fpr > 0.0) != (t.held_out_images > 0))
      m.fail("threshold.held_out_images",
             "disagrees with 'threshold.target_fpr' = '" + m.text("threshold.target_fpr") +
                 "': both are positive for a threshold set from held-out images, or both 0");
    t.bounded = m.value<bool>("threshold.bounded");
    // Files written before out-of-fold calibration have neither key: held-out images (or by hand).
    if (m.has("threshold.folds")) {
      t.folds = m.value<std::size_t>("threshold.folds");
      if (t.folds == 1) m.fail("threshold.folds", "must be 0 (no folds) or at least 2");
      if (t.folds > t.held_out_images)
        m.fail("threshold.folds", "exceeds 'threshold.held_out_images' = '" + m.text("threshold.held_out_images") +
                                      "': out-of-fold calibration scores every image once");
      if (t.folds > 0 && t.target_fpr == 0.0) m.fail("threshold.folds", "is set for a threshold set by hand");
    }
    if (m.has("threshold.method") && m.text("threshold.method") != calibration_name(t))
      m.fail("threshold.method", "disagrees with 'threshold.folds' and 'threshold.target_fpr', which say '" +
                                     calibration_name(t) + "'");
    r.threshold = t;
  } else {
    for (const char* key : {"threshold.target_fpr", "threshold.held_out_images", "threshold.bounded", "threshold.method",
                            "threshold.folds"})
      if (m.has(key)) m.fail(key, "has no 'threshold' entry to go with it");
  }
  r.heatmap.lo = m.real<float>("heatmap.lo");
  r.heatmap.hi = m.real<float>("heatmap.hi");
  if (!(r.heatmap.hi > r.heatmap.lo))
    m.fail("heatmap.hi", "is not above 'heatmap.lo' = '" + m.text("heatmap.lo") + "': the heatmap range is empty");
  return r;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
