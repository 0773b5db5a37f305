#include "detectors/common.hpp"

#include <cmath>

#include "flowad/detail/checks.hpp"
#include "flowad/detail/config_fields.hpp"
#include "flowad/detail/random.hpp"

namespace flowad {
inline namespace v0 {

// ---- detector's non-virtual members ---------------------------------------------------------------

scores detector::score(const feature_maps& features, const score_options& options) const {
  scores out;
  score(features, options, out);
  return out;
}

void detector::check_score_options(const score_options& options) const {
  detail::check_score_options(options, input_shapes().size());
}

void detector::save(const std::filesystem::path& path) const { write_model_file(path, to_model_file()); }

void detector::set_metadata(const std::string& key, const std::string& value) {
  bool ok = !key.empty() && key.size() <= 256;
  for (char ch : key)
    ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
                ch == '-');
  if (!ok) throw error(errc::invalid_argument, "metadata key '" + key + "' is not [A-Za-z0-9_.-]{1,256}");
  metadata_[key] = value;
}

std::string to_config_text(const std::vector<scale_shape>& shapes) {
  std::string out;
  for (const scale_shape& s : shapes) {
    if (!out.empty()) out += ",";
    out += std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width);
  }
  return out;
}

void parse_config_text(errc code, const std::string& key, const std::string& text, std::vector<scale_shape>& out) {
  out.clear();
  for (const std::string& item : detail::split(text, ',')) {
    const std::vector<std::string> dims = detail::split(item, 'x');
    long long v[3] = {0, 0, 0};
    bool ok = dims.size() == 3;
    for (std::size_t i = 0; ok && i < 3; ++i) ok = detail::parse_integer(dims[i], v[i]) && v[i] > 0 && v[i] <= (1 << 20);
    if (!ok) detail::bad_setting(code, key, text, "a list of CxHxW shapes");
    out.push_back({static_cast<index_t>(v[0]), static_cast<index_t>(v[1]), static_cast<index_t>(v[2])});
  }
}

namespace detail {

index_t check_features(const feature_maps& features, const std::vector<scale_shape>& scales, const char* what) {
  if (features.size() != scales.size())
    throw error(errc::shape_mismatch, std::string(what) + " has " + std::to_string(features.size()) +
                                          " scales but the model has " + std::to_string(scales.size()) + " (" +
                                          to_config_text(scales) + ")");
  const index_t n = features[0].n();
  for (std::size_t s = 0; s < scales.size(); ++s) {
    const const_view& f = features[s];
    // Built only on failure: this runs on every scoring call, which must not allocate.
    const auto name = [&] { return std::string(what) + " scale " + std::to_string(s); };
    if (f.empty() || f.data() == nullptr) throw error(errc::empty_input, name() + " is empty (shape " + f.shape().str() + ")");
    if (f.n() != n)
      throw error(errc::shape_mismatch, name() + " has " + std::to_string(f.n()) + " samples but scale 0 has " + std::to_string(n));
    const scale_shape& want = scales[s];
    if (f.c() != want.channels || f.h() != want.height || f.w() != want.width)
      throw error(errc::shape_mismatch, name() + " has shape " + f.shape().str() + " but the model expects Nx" +
                                            std::to_string(want.channels) + "x" + std::to_string(want.height) + "x" +
                                            std::to_string(want.width));
    if (!all_within(f, max_feature_magnitude)) require_within(f, max_feature_magnitude, name().c_str());
  }
  return n;
}

void check_score_options(const score_options& options, std::size_t scales) {
  constexpr index_t max_map_side = 16384;  // a map of 1 GiB per sample
  if (options.batch_size <= 0) throw error(errc::invalid_argument, "score_options.batch_size must be positive");
  if ((options.map_height > 0) != (options.map_width > 0) || options.map_height < 0 || options.map_width < 0 ||
      options.map_height > max_map_side || options.map_width > max_map_side)
    throw error(errc::invalid_argument, "score_options map size must be both in [1, " + std::to_string(max_map_side) + "] or both 0, got " +
                                            std::to_string(options.map_height) + "x" + std::to_string(options.map_width));
  if (!options.cell_offsets.empty() && options.cell_offsets.size() != scales)
    throw error(errc::invalid_argument, "score_options.cell_offsets has " + std::to_string(options.cell_offsets.size()) +
                                            " values for " + std::to_string(scales) + " scales (give one per scale, or none)");
  for (const double offset : options.cell_offsets)
    if (!(std::abs(offset) <= 1.0))
      throw error(errc::invalid_argument, "score_options.cell_offsets must be finite and within one cell, got " + number_text(offset));
}

model_file_contents model_file_header(const detector& d) {
  if (!d.fitted()) throw error(errc::not_fitted, std::string(d.kind()) + "::save called before fit() or load()");
  model_file_contents m;
  m.kind = d.kind();
  m.config = d.config();
  for (const auto& [key, value] : d.metadata()) m.metadata.emplace_back(key, value);
  return m;
}

void restore_metadata(detector& d, const model_file_contents& contents) {
  for (const auto& [key, value] : contents.metadata) {
    try {
      d.set_metadata(key, value);
    } catch (const error& e) {
      throw error(errc::bad_file, "model file metadata: " + e.message());
    }
  }
}

void store_parameters(model_file_contents& m, const std::string& prefix, const std::vector<parameter*>& params) {
  for (const parameter* p : params)
    m.tensors.push_back({prefix + p->name(), p->dims(), std::vector<float>(p->data(), p->data() + p->size())});
}

std::size_t restore_parameters(const model_file_contents& m, const std::string& prefix, const std::vector<parameter*>& params) {
  for (parameter* p : params) {
    const stored_tensor& t = m.tensor_named(prefix + p->name());
    if (t.dims != p->dims()) throw error(errc::bad_file, "model file tensor '" + t.name + "' has the wrong shape for its configuration");
    for (float v : t.values)
      if (!std::isfinite(v)) throw error(errc::bad_file, "model file tensor '" + t.name + "' holds NaN or Inf");
    std::copy(t.values.begin(), t.values.end(), p->data());
    p->mark_updated();
  }
  return params.size();
}

double stored_values(const model_file_contents& m) {
  double values = 0.0;
  for (const stored_tensor& t : m.tensors) values += static_cast<double>(t.values.size());
  return values;
}

void require_tensor_count(const model_file_contents& m, std::size_t expected) {
  if (expected != m.tensors.size())
    throw error(errc::bad_file, "model file holds " + std::to_string(m.tensors.size()) +
                                    " tensors but its configuration needs " + std::to_string(expected));
}

std::uint64_t scale_block_seed(std::uint64_t seed, std::size_t scale, index_t block) {
  rng r(seed ^ (0x9E3779B97F4A7C15ull * (scale + 1)) ^ (0xD6E8FEB86659FD93ull * static_cast<std::uint64_t>(block + 1)));
  return r.next();
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
