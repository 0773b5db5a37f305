#include "pipeline/model_schema.hpp"

#include "flowad/detail/config_fields.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

std::string join(const std::vector<double>& values) {
  std::string out;
  for (double v : values) out += (out.empty() ? "" : ",") + number_text(v);
  return out;
}

class metadata_reader {
 public:
  metadata_reader(const detector& model, const std::string& origin) : m_(model.metadata()), origin_(origin) {}

  bool has(const std::string& key) const { return m_.count(key) > 0; }
  const std::string& text(const std::string& key) const {
    const auto it = m_.find(key);
    if (it == m_.end()) throw error(errc::bad_file, origin_ + ": the model file lacks the entry '" + key + "'");
    return it->second;
  }
  template <class T>
  T value(const std::string& key) const {
    T out{};
    try {
      parse_value(errc::bad_file, key, text(key), out);
    } catch (const error& e) {
      throw error(errc::bad_file, origin_ + ": " + e.message());
    }
    return out;
  }
  std::vector<double> numbers(const std::string& key) const {
    std::vector<double> out;
    for (const std::string& item : split(text(key), ',')) {
      double v = 0.0;
      if (!parse_real(item, v)) throw error(errc::bad_file, origin_ + ": the entry '" + key + "' is not a list of numbers");
      out.push_back(v);
    }
    return out;
  }

 private:
  const std::map<std::string, std::string>& m_;
  const std::string& origin_;
};

}  // namespace

void write_pipeline_record(const pipeline_record& r, detector& model) {
  model.set_metadata("pipeline.extractor", r.extractor);
  model.set_metadata("pipeline.weights", r.weights);
  model.set_metadata("pipeline.weights_embedded", r.weights_embedded ? "true" : "false");
  model.set_metadata("pipeline.height", std::to_string(r.features.height));
  model.set_metadata("pipeline.width", std::to_string(r.features.width));
  model.set_metadata("pipeline.levels", join(r.features.levels));
  model.set_metadata("pipeline.neighbourhood", std::to_string(r.features.neighbourhood));
  model.set_metadata("pipeline.pool_stride", std::to_string(r.features.pool_stride));
  model.set_metadata("pipeline.cell_offsets", join(r.cell_offsets));
  for (const char* key : {"threshold", "threshold.target_fpr", "threshold.held_out_images", "threshold.bounded"})
    model.erase_metadata(key);
  if (r.threshold) {
    model.set_metadata("threshold", number_text(r.threshold->value));
    model.set_metadata("threshold.target_fpr", number_text(r.threshold->target_fpr));
    model.set_metadata("threshold.held_out_images", std::to_string(r.threshold->held_out_images));
    model.set_metadata("threshold.bounded", r.threshold->bounded ? "true" : "false");
  }
  model.set_metadata("heatmap.lo", number_text(r.heatmap.lo));
  model.set_metadata("heatmap.hi", number_text(r.heatmap.hi));
}

pipeline_record read_pipeline_record(const detector& model, const std::string& origin) {
  const metadata_reader m(model, origin);
  if (!m.has("pipeline.extractor"))
    throw error(errc::bad_file, origin + ": the model was fitted on feature maps and does not record how to make them "
                                         "from images (score it with feature maps: flowad score --features)");
  pipeline_record r;
  r.extractor = m.text("pipeline.extractor");
  r.weights = m.text("pipeline.weights");
  r.weights_embedded = m.value<bool>("pipeline.weights_embedded");
  r.features.height = m.value<index_t>("pipeline.height");
  r.features.width = m.value<index_t>("pipeline.width");
  r.features.levels = split(m.text("pipeline.levels"), ',');
  r.features.neighbourhood = m.value<index_t>("pipeline.neighbourhood");
  r.features.pool_stride = m.value<index_t>("pipeline.pool_stride");
  r.cell_offsets = m.numbers("pipeline.cell_offsets");
  if (m.has("threshold")) {
    decision_threshold t;
    t.value = m.value<double>("threshold");
    t.target_fpr = m.value<double>("threshold.target_fpr");
    t.held_out_images = m.value<std::size_t>("threshold.held_out_images");
    t.bounded = m.value<bool>("threshold.bounded");
    r.threshold = t;
  }
  r.heatmap.lo = m.value<float>("heatmap.lo");
  r.heatmap.hi = m.value<float>("heatmap.hi");
  if (!(r.heatmap.hi > r.heatmap.lo)) throw error(errc::bad_file, origin + ": the heatmap range is empty");
  return r;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
