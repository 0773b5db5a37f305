#include "flowad/flows/msflow.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <utility>

#include "detectors/config_codec.hpp"
#include "flowad/detail/checks.hpp"
#include "flowad/detail/random.hpp"
#include "flowad/detail/workspace_pool.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/layers/actnorm.hpp"
#include "flowad/layers/invertible_1x1.hpp"
#include "flowad/layers/permute.hpp"
#include "flowad/layers/position_norm.hpp"
#include "flowad/layers/sequential_flow.hpp"
#include "flowad/layers/split_merge.hpp"
#include "flowad/scoring/latent.hpp"
#include "flowad/train/nll.hpp"
#include "flowad/version.hpp"
#include "kernels/channel_affine.hpp"
#include "kernels/channel_ops.hpp"

namespace flowad {
inline namespace v0 {

// ------------------------------------------------------------------------------------------------
// Configuration

msflow_config msflow_config::seed() {
  msflow_config cfg;
  cfg.scales = {{304, 24, 24}};
  cfg.groups = 4;
  cfg.hidden = 512;
  cfg.blocks = 8;
  cfg.kernels = {3, 1};
  return cfg;
}

msflow_config msflow_config::compact(std::vector<scale_shape> scales) {
  msflow_config cfg = seed();
  cfg.scales = std::move(scales);
  cfg.hidden = 256;
  cfg.kernels = {1};
  return cfg;
}

void msflow_config::validate() const {
  auto fail = [](const std::string& what) { throw error(errc::invalid_argument, "msflow_config: " + what); };
  if (scales.empty()) fail("needs at least one scale");
  for (const scale_shape& s : scales) {
    if (s.channels <= 0 || s.height <= 0 || s.width <= 0)
      fail("scale shapes must be positive, got " + codec::encode(scales));
    if (s.channels < groups)
      fail("a scale of " + std::to_string(s.channels) + " channels cannot be split into " + std::to_string(groups) + " groups");
  }
  if (groups < 2) fail("groups must be at least 2, got " + std::to_string(groups));
  if (hidden <= 0) fail("hidden must be positive, got " + std::to_string(hidden));
  if (blocks <= 0) fail("blocks must be positive, got " + std::to_string(blocks));
  if (kernels.empty()) fail("kernels must not be empty");
  for (index_t k : kernels)
    if (k <= 0 || k % 2 == 0) fail("kernels must be odd and positive, got " + std::to_string(k));
  if (!(negative_slope >= 0.0f && negative_slope < 1.0f)) fail("negative_slope must be in [0, 1)");
  if (clamp.kind != clamp_kind::none && !(clamp.alpha > 0.0f && std::isfinite(clamp.alpha)))
    fail("clamp alpha must be positive and finite");
  if (!std::isfinite(gain_init)) fail("gain_init must be finite");
  if (!positions.empty() && positions.size() != scales.size())
    fail("positions has " + std::to_string(positions.size()) + " entries for " + std::to_string(scales.size()) +
         " scales (give one per scale, or none)");
  for (const scale_position& p : positions)
    if (p.pool_radius < 0 || p.pool_radius > 63)
      fail("a position pool radius must be in [0, 63], got " + std::to_string(p.pool_radius));
}

std::string to_string(const std::vector<scale_position>& positions) {
  std::string out;
  for (const scale_position& p : positions) {
    if (!out.empty()) out += ",";
    if (p.mode == position_mode::free) out += "free";
    else out += (p.mode == position_mode::relative ? "relative:" : "paired:") + std::to_string(p.pool_radius);
  }
  return out;
}

std::vector<scale_position> parse_positions(const std::string& text) {
  std::vector<scale_position> positions;
  for (const std::string& item : codec::split(text, ',')) {
    const std::vector<std::string> parts = codec::split(item, ':');
    const auto fail = [&](const std::string& why) {
      throw error(errc::invalid_argument, "positions '" + text + "': '" + item + "' " + why +
                                              " (expected free, relative[:R] or paired[:R] per scale, comma-separated)");
    };
    if (parts.empty() || parts.size() > 2) fail("is not a position setting");
    scale_position p;
    if (parts[0] == "free") p.mode = position_mode::free;
    else if (parts[0] == "relative") p.mode = position_mode::relative;
    else if (parts[0] == "paired") p.mode = position_mode::paired;
    else fail("names no position mode");
    if (parts.size() == 2) {
      if (p.mode == position_mode::free) fail("gives a radius to a free scale");
      char* end = nullptr;
      const long r = std::strtol(parts[1].c_str(), &end, 10);
      if (parts[1].empty() || *end != '\0' || r < 0 || r > 63) fail("has a radius that is not an integer in [0, 63]");
      p.pool_radius = static_cast<index_t>(r);
    }
    positions.push_back(p);
  }
  if (positions.empty()) throw error(errc::invalid_argument, "positions: empty list");
  return positions;
}

std::vector<msflow_stream> msflow_streams(const msflow_config& cfg) {
  std::vector<msflow_stream> streams;
  for (std::size_t s = 0; s < cfg.scales.size(); ++s)
    streams.push_back({s, cfg.position(s).mode == position_mode::relative});
  for (std::size_t s = 0; s < cfg.scales.size(); ++s)
    if (cfg.position(s).mode == position_mode::paired) {
      streams[s].position_relative = false;
      streams.push_back({s, true});
    }
  return streams;
}

model_stats count(const msflow_config& cfg) {
  cfg.validate();
  model_stats stats;
  for (const msflow_stream& stream : msflow_streams(cfg)) {
    const scale_shape& s = cfg.scales[stream.scale];
    const std::vector<index_t> sizes = channel_split::equal_sizes(s.channels, cfg.groups);
    const double pixels = static_cast<double>(s.height) * static_cast<double>(s.width);
    if (stream.position_relative) stats.parameters += 2.0 * s.channels * pixels;
    if (cfg.input_normalization) stats.parameters += 2.0 * s.channels;
    for (index_t b = 0; b < cfg.blocks; ++b) {
      const double k2 = static_cast<double>(cfg.kernels[static_cast<std::size_t>(b) % cfg.kernels.size()]);
      const double kk = k2 * k2, h = static_cast<double>(cfg.hidden);
      for (std::size_t g = 0; g + 1 < sizes.size(); ++g) {
        const double in = static_cast<double>(sizes[g]), out = 2.0 * static_cast<double>(sizes[g + 1]);
        stats.parameters += h * in * kk + h + out * h * kk + out;
        stats.macs_per_image += pixels * (h * in * kk + out * h * kk);
      }
      if (cfg.learn_gain) stats.parameters += static_cast<double>(sizes.size() - 1);
      if (cfg.mixing == block_mixing::invertible_1x1) {
        // L strict lower + U strict upper + log|s|: C² learnable values; C² MACs per pixel.
        const double c = static_cast<double>(s.channels);
        stats.parameters += c * c;
        stats.macs_per_image += pixels * c * c;
      }
    }
  }
  return stats;
}

namespace {

const char* to_string(subnet_activation a) { return a == subnet_activation::relu ? "relu" : "leaky_relu"; }
const char* to_string(block_mixing m) { return m == block_mixing::permute ? "permute" : "invertible_1x1"; }

std::vector<std::pair<std::string, std::string>> encode_config(const msflow_config& c) {
  return {
      {"scales", codec::encode(c.scales)},
      {"groups", codec::encode(c.groups)},
      {"hidden", codec::encode(c.hidden)},
      {"blocks", codec::encode(c.blocks)},
      {"kernels", codec::encode(c.kernels)},
      {"activation", to_string(c.activation)},
      {"negative_slope", codec::encode(c.negative_slope)},
      {"clamp", to_string(c.clamp.kind)},
      {"clamp_alpha", codec::encode(c.clamp.alpha)},
      {"learn_gain", codec::encode(c.learn_gain)},
      {"gain_init", codec::encode(c.gain_init)},
      {"mixing", to_string(c.mixing)},
      {"input_normalization", codec::encode(c.input_normalization)},
      {"positions", c.positions.empty() ? "" : to_string(c.positions)},
      {"random_seed", codec::encode(c.random_seed)},
  };
}

msflow_config decode_config(const model_file_contents& m) {
  msflow_config c;
  auto get = [&](const char* key) { return std::make_pair(std::string(key), m.value(key)); };
  constexpr index_t big = 1 << 20;
  {
    auto [k, v] = get("scales");
    c.scales = codec::parse_scales(k, v);
  }
  {
    auto [k, v] = get("groups");
    c.groups = codec::parse_index(k, v, 2, 4096);
  }
  {
    auto [k, v] = get("hidden");
    c.hidden = codec::parse_index(k, v, 1, big);
  }
  {
    auto [k, v] = get("blocks");
    c.blocks = codec::parse_index(k, v, 1, 4096);
  }
  {
    auto [k, v] = get("kernels");
    c.kernels = codec::parse_indices(k, v, 1, 63);
  }
  {
    auto [k, v] = get("activation");
    if (v == "relu") c.activation = subnet_activation::relu;
    else if (v == "leaky_relu") c.activation = subnet_activation::leaky_relu;
    else codec::bad(k, v, "relu or leaky_relu");
  }
  {
    auto [k, v] = get("negative_slope");
    c.negative_slope = static_cast<float>(codec::parse_double(k, v));
  }
  {
    auto [k, v] = get("clamp");
    if (v == "atan") c.clamp.kind = clamp_kind::atan;
    else if (v == "tanh") c.clamp.kind = clamp_kind::tanh;
    else if (v == "tanh_legacy") c.clamp.kind = clamp_kind::tanh_legacy;
    else if (v == "none") c.clamp.kind = clamp_kind::none;
    else codec::bad(k, v, "atan, tanh, tanh_legacy or none");
  }
  {
    auto [k, v] = get("clamp_alpha");
    c.clamp.alpha = static_cast<float>(codec::parse_double(k, v));
  }
  {
    auto [k, v] = get("learn_gain");
    c.learn_gain = codec::parse_bool(k, v);
  }
  {
    auto [k, v] = get("gain_init");
    c.gain_init = static_cast<float>(codec::parse_double(k, v));
  }
  {
    auto [k, v] = get("mixing");
    if (v == "permute") c.mixing = block_mixing::permute;
    else if (v == "invertible_1x1") c.mixing = block_mixing::invertible_1x1;
    else codec::bad(k, v, "permute or invertible_1x1");
  }
  {
    auto [k, v] = get("input_normalization");
    c.input_normalization = codec::parse_bool(k, v);
  }
  // Files written before positions existed have no key: every scale free.
  const auto positions = std::find_if(m.config.begin(), m.config.end(), [](const auto& kv) { return kv.first == "positions"; });
  if (positions != m.config.end() && !positions->second.empty()) {
    try {
      c.positions = parse_positions(positions->second);
    } catch (const error& e) {
      throw error(errc::bad_file, std::string("model file configuration: ") + e.what());
    }
  }
  {
    auto [k, v] = get("random_seed");
    c.random_seed = codec::parse_u64(k, v);
  }
  try {
    c.validate();
  } catch (const error& e) {
    throw error(errc::bad_file, std::string("model file holds an invalid configuration: ") + e.what());
  }
  return c;
}

// A seed for (scale, block) derived from the configuration's seed.
std::uint64_t block_seed(std::uint64_t seed, std::size_t scale, index_t block) {
  detail::rng r(seed ^ (0x9E3779B97F4A7C15ull * (scale + 1)) ^ (0xC2B2AE3D27D4EB4Full * static_cast<std::uint64_t>(block + 1)));
  return r.next();
}

// Model-file names: "scale1.layer03." for a scale's first flow, "scale1.relative.layer03." for a paired
// scale's second.
std::string layer_prefix(const msflow_config& cfg, const msflow_stream& stream, std::size_t stream_index, std::size_t layer) {
  const std::string number = std::to_string(layer);
  return "scale" + std::to_string(stream.scale) + (stream_index >= cfg.scales.size() ? ".relative" : "") + ".layer" +
         (number.size() < 2 ? "0" : "") + number + ".";
}

std::vector<float> as_floats(const std::vector<index_t>& v) { return {v.begin(), v.end()}; }

// Configuration keys that carry detector::metadata().
constexpr const char* metadata_prefix = "meta.";

// The number of float values a model file of this configuration stores (parameters as allocated,
// plus fixed permutations and signs), so that a file is checked before anything is allocated for it.
double stored_values(const msflow_config& cfg) {
  double values = 0.0;
  for (const msflow_stream& stream : msflow_streams(cfg)) {
    const scale_shape& s = cfg.scales[stream.scale];
    const double c = static_cast<double>(s.channels);
    const std::vector<index_t> sizes = channel_split::equal_sizes(s.channels, cfg.groups);
    if (stream.position_relative) values += 2.0 * c * static_cast<double>(s.height) * static_cast<double>(s.width);
    if (cfg.input_normalization) values += 2.0 * c;
    for (index_t b = 0; b < cfg.blocks; ++b) {
      const double k = static_cast<double>(cfg.kernels[static_cast<std::size_t>(b) % cfg.kernels.size()]);
      const double h = static_cast<double>(cfg.hidden);
      values += cfg.mixing == block_mixing::permute ? c : 2.0 * c * c + 3.0 * c;
      for (std::size_t g = 0; g + 1 < sizes.size(); ++g) {
        const double in = static_cast<double>(sizes[g]), out = 2.0 * static_cast<double>(sizes[g + 1]);
        values += h * in * k * k + h + out * h * k * k + out;
      }
      if (cfg.learn_gain) values += static_cast<double>(sizes.size() - 1);
    }
  }
  return values;
}

std::vector<index_t> as_indices(const stored_tensor& t) {
  std::vector<index_t> out;
  out.reserve(t.values.size());
  for (float f : t.values) {
    if (!(f >= 0.0f && f < 16777216.0f) || std::floor(f) != f)
      throw error(errc::bad_file, "model file tensor '" + t.name + "' does not hold indices");
    out.push_back(static_cast<index_t>(f));
  }
  return out;
}

// The flow of one stream (msflow_streams); fixed permutations come from `stored` when loading a model file.
std::unique_ptr<sequential_flow> build_flow(const msflow_config& cfg, std::size_t s, const model_file_contents* stored) {
  const msflow_stream stream = msflow_streams(cfg)[s];
  const scale_shape& shape = cfg.scales[stream.scale];
  const index_t channels = shape.channels;
  auto flow = std::make_unique<sequential_flow>(channels);
  if (stream.position_relative)
    flow->emplace<position_norm>(channels, shape.height, shape.width, cfg.position(stream.scale).pool_radius);
  if (cfg.input_normalization) flow->emplace<actnorm>(channels);
  for (index_t b = 0; b < cfg.blocks; ++b) {
    const std::uint64_t seed = block_seed(cfg.random_seed, s, b);
    const std::string prefix = layer_prefix(cfg, stream, s, flow->size());
    if (cfg.mixing == block_mixing::permute) {
      if (stored) flow->emplace<permute>(as_indices(stored->tensor_named(prefix + "permutation")));
      else flow->emplace<permute>(channels, seed);
    } else {
      if (stored) {
        const stored_tensor& signs = stored->tensor_named(prefix + "signs");
        flow->emplace<invertible_1x1>(as_indices(stored->tensor_named(prefix + "permutation")), signs.values);
      } else {
        flow->emplace<invertible_1x1>(channels, seed);
      }
    }
    affine_coupling_config cc;
    cc.channels = channels;
    cc.groups = cfg.groups;
    cc.hidden = cfg.hidden;
    cc.kernel = cfg.kernels[static_cast<std::size_t>(b) % cfg.kernels.size()];
    cc.activation = cfg.activation;
    cc.negative_slope = cfg.negative_slope;
    cc.clamp = cfg.clamp;
    cc.learn_gain = cfg.learn_gain;
    cc.gain_init = cfg.gain_init;
    cc.seed = seed + 1;
    flow->emplace<affine_coupling>(cc);
  }
  return flow;
}

}  // namespace

std::unique_ptr<sequential_flow> make_msflow_flow(const msflow_config& cfg, std::size_t stream) {
  cfg.validate();
  const std::size_t streams = msflow_streams(cfg).size();
  if (stream >= streams)
    throw error(errc::invalid_argument, "make_msflow_flow: flow " + std::to_string(stream) + " of a configuration with " +
                                            std::to_string(streams) + " flows");
  return build_flow(cfg, stream, nullptr);
}

// ------------------------------------------------------------------------------------------------
// The model

struct msflow::impl {
  std::vector<msflow_stream> streams;
  std::vector<std::unique_ptr<sequential_flow>> flows;  // one per stream
  std::vector<position_norm*> position_norms;           // each flow's position_norm, if any
  std::vector<actnorm*> norms;                          // each flow's input actnorm, if any
  mutable detail::workspace_pool pool;

  // Buffers of one scoring call, kept per workspace.
  struct score_state : layer_state {
    std::vector<tensor> z, scale_maps;
    std::vector<tensor> inputs;  // dense NHWC copies of non-NHWC inputs, for negative_log_likelihood maps
    std::vector<const_view> map_views;
    std::vector<double> logdet, squares, position_logdet;
    std::vector<float> top_k_scratch;
    map_buffers maps;
  };
  std::uint64_t score_state_id = detail::next_layer_id();

  void build(const msflow_config& cfg, const model_file_contents* stored) {
    streams = msflow_streams(cfg);
    for (std::size_t k = 0; k < streams.size(); ++k) {
      flows.push_back(build_flow(cfg, k, stored));
      sequential_flow& flow = *flows.back();
      const std::size_t first = streams[k].position_relative ? 1 : 0;
      position_norms.push_back(first ? &dynamic_cast<position_norm&>(flow.layer(0)) : nullptr);
      norms.push_back(cfg.input_normalization ? &dynamic_cast<actnorm&>(flow.layer(first)) : nullptr);
    }
  }

  std::vector<parameter*> parameters() {
    std::vector<parameter*> all;
    for (auto& f : flows) {
      const auto ps = f->parameters();
      all.insert(all.end(), ps.begin(), ps.end());
    }
    return all;
  }

  // What the optimiser updates: everything but the input normalisation, which stays as the training
  // set's statistics set it. Its bias is in the features' own units, so an Adam step (about lr in
  // parameter units, whatever the gradient) moves a channel of standard deviation σ by lr/σ standard
  // deviations: harmless for σ ~ 0.1, but a feature channel that is constant on the training set
  // (a ReLU channel that never fires, seen with the filter bank on the demo fabric) has σ ~ 0, and
  // training then blew up (compact preset: loss −2.75 at the start, +135 over the first epoch, +10^4
  // in the sixth).
  std::vector<parameter*> trained_parameters() {
    std::vector<parameter*> trained;
    for (parameter* p : parameters()) {
      const bool normalisation = std::any_of(norms.begin(), norms.end(), [p](actnorm* a) {
        return a && (p == &a->bias() || p == &a->log_scale());
      }) || std::any_of(position_norms.begin(), position_norms.end(), [p](position_norm* a) {
        return a && (p == &a->mean() || p == &a->scale());
      });
      if (!normalisation) trained.push_back(p);
    }
    return trained;
  }
};

msflow::msflow(const msflow_config& cfg) : msflow(cfg, nullptr) {}

msflow::msflow(const msflow_config& cfg, const model_file_contents* stored) : cfg_(cfg), impl_(std::make_unique<impl>()) {
  cfg_.validate();
  impl_->build(cfg_, stored);
}

msflow::~msflow() = default;

std::vector<const parameter*> msflow::parameters() const {
  const std::vector<parameter*> ps = impl_->parameters();
  return {ps.begin(), ps.end()};
}

namespace {

// Checks a feature batch against the configured scales; returns N.
index_t check_features(const feature_maps& features, const std::vector<scale_shape>& scales, const char* what) {
  if (features.size() != scales.size())
    throw error(errc::shape_mismatch, std::string(what) + " has " + std::to_string(features.size()) +
                                          " scales but the model has " + std::to_string(scales.size()) + " (" +
                                          codec::encode(scales) + ")");
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
    if (!detail::all_finite(f)) detail::require_finite(f, name().c_str());
  }
  return n;
}

// Gathers the samples `order[first..first+count)` of a view into a dense NHWC batch.
void gather(const const_view& src, const std::vector<index_t>& order, std::size_t first, index_t count, tensor& dst) {
  dst.resize({count, src.c(), src.h(), src.w()}, layout::nhwc);
  for (index_t i = 0; i < count; ++i)
    copy(src.batch(order[first + static_cast<std::size_t>(i)], 1), dst.view().batch(i, 1));
}

// Per channel of x: `sigma` times the channel's population standard deviation over (N, H, W).
std::vector<float> channel_noise_scale(const const_view& x, double sigma) {
  const auto channels = static_cast<std::size_t>(x.c());
  aligned_vector<double> mean(channels), std_dev(channels), partials;
  kernels::channel_mean_std(x, mean.data(), std_dev.data(), partials);
  std::vector<float> scale(channels);
  for (std::size_t c = 0; c < channels; ++c) scale[c] = static_cast<float>(sigma * std_dev[c]);
  return scale;
}

// Adds scale[c]·N(0, 1) to every element of channel c of a dense NHWC batch, drawn in order from `noise`.
void add_channel_noise(tensor& batch, const std::vector<float>& scale, detail::rng& noise) {
  float* p = batch.data();
  const std::size_t channels = scale.size(), size = static_cast<std::size_t>(batch.numel());
  for (std::size_t i = 0; i < size; ++i) p[i] += scale[i % channels] * static_cast<float>(noise.normal());
}

}  // namespace

void msflow::transform(const feature_maps& features, std::vector<tensor>& z, std::vector<double>& logdet) const {
  if (!fitted_) throw error(errc::not_fitted, "msflow::transform called before fit() or load()");
  const index_t n = check_features(features, cfg_.scales, "features");
  auto ws = impl_->pool.acquire();
  z.resize(impl_->flows.size());
  logdet.assign(static_cast<std::size_t>(n), 0.0);
  for (std::size_t k = 0; k < impl_->flows.size(); ++k) {
    const const_view& in = features[impl_->streams[k].scale];
    z[k].resize(in.shape(), layout::nhwc);
    impl_->flows[k]->forward(in, z[k].view(), logdet, *ws);
  }
}

scores msflow::score(const feature_maps& features, const score_options& options) const {
  scores out;
  score(features, options, out);
  return out;
}

void msflow::check_score_options(const score_options& options) const {
  if (options.batch_size <= 0) throw error(errc::invalid_argument, "score_options.batch_size must be positive");
  if ((options.map_height > 0) != (options.map_width > 0) || options.map_height < 0 || options.map_width < 0)
    throw error(errc::invalid_argument, "score_options map size must be both positive or both 0, got " +
                                            std::to_string(options.map_height) + "x" + std::to_string(options.map_width));
  if (!options.cell_offsets.empty() && options.cell_offsets.size() != cfg_.scales.size())
    throw error(errc::invalid_argument, "score_options.cell_offsets has " + std::to_string(options.cell_offsets.size()) +
                                            " values for " + std::to_string(cfg_.scales.size()) + " scales (give one per scale, or none)");
  for (const double offset : options.cell_offsets)
    if (!(std::abs(offset) <= 1.0))
      throw error(errc::invalid_argument, "score_options.cell_offsets must be finite and within one cell, got " + codec::encode(offset));
  if (options.statistic == map_statistic::negative_log_likelihood) {
    if (std::any_of(cfg_.kernels.begin(), cfg_.kernels.end(), [](index_t k) { return k != 1; }))
      throw error(errc::invalid_argument,
                  "negative_log_likelihood maps need a flow that maps each position on its own (every kernel 1); "
                  "this model's kernels are " + codec::encode(cfg_.kernels));
    if (options.combine == map_combination::product)
      throw error(errc::invalid_argument, "negative_log_likelihood maps can be negative and cannot be combined by product");
  }
}

void msflow::score(const feature_maps& features, const score_options& options, scores& out) const {
  if (!fitted_) throw error(errc::not_fitted, "msflow::score called before fit() or load()");
  const index_t n = check_features(features, cfg_.scales, "features");
  check_score_options(options);
  const index_t map_h = options.map_height > 0 ? options.map_height : cfg_.scales[0].height;
  const index_t map_w = options.map_width > 0 ? options.map_width : cfg_.scales[0].width;
  const bool likelihood_maps = options.statistic == map_statistic::negative_log_likelihood;
  double dims = 0.0;
  for (const msflow_stream& stream : impl_->streams) {
    const scale_shape& s = cfg_.scales[stream.scale];
    dims += static_cast<double>(s.channels * s.height * s.width);
  }

  out.image.resize(static_cast<std::size_t>(n));
  out.maps.resize({n, 1, map_h, map_w}, layout::nchw);

  auto ws = impl_->pool.acquire();
  auto& st = ws->state<impl::score_state>(impl_->score_state_id);
  const std::size_t scales = cfg_.scales.size(), flows = impl_->flows.size();
  st.z.resize(flows);
  st.inputs.resize(flows);
  st.scale_maps.resize(flows);
  st.map_views.resize(scales);

  for (index_t start = 0; start < n; start += options.batch_size) {
    const index_t count = std::min(options.batch_size, n - start);
    st.logdet.assign(static_cast<std::size_t>(count), 0.0);
    st.squares.assign(static_cast<std::size_t>(count), 0.0);
    for (std::size_t s = 0; s < flows; ++s) {  // s: the flow; its map is the scale's until paired below
      const const_view in = features[impl_->streams[s].scale].batch(start, count);
      st.z[s].resize(in.shape(), layout::nhwc);
      st.scale_maps[s].resize({count, 1, in.h(), in.w()}, layout::nchw);
      if (likelihood_maps) {
        // A position-wise flow maps every position on its own, so run it on the batch's positions as a
        // batch of 1x1 maps: the per-sample log-determinants it returns are per position.
        const float* dense = kernels::dense_nhwc(in, st.inputs[s]);
        const shape4 positions{count * in.h() * in.w(), in.c(), 1, 1};
        st.position_logdet.assign(static_cast<std::size_t>(positions.n), 0.0);
        impl_->flows[s]->forward(const_view(dense, positions, layout::nhwc),
                                 view(st.z[s].data(), positions, layout::nhwc), st.position_logdet, *ws);
        negative_log_likelihood_map(st.z[s].view(), st.position_logdet, st.scale_maps[s].view());
      } else {
        impl_->flows[s]->forward(in, st.z[s].view(), st.logdet, *ws);
        latent_map(st.z[s].view(), st.scale_maps[s].view());
      }
      if (options.image_score == score_aggregation::mean) add_squared_norms(st.z[s].view(), st.squares);
    }
    for (std::size_t k = scales; k < flows; ++k) {  // a paired scale's map: the mean of its two flows' maps
      float* first = st.scale_maps[impl_->streams[k].scale].data();
      const float* second = st.scale_maps[k].data();
      for (index_t i = 0, e = st.scale_maps[k].numel(); i < e; ++i) first[i] = 0.5f * (first[i] + second[i]);
    }
    for (std::size_t s = 0; s < scales; ++s) st.map_views[s] = st.scale_maps[s].cview();
    const view maps = out.maps.view().batch(start, count);
    combine_maps(span<const const_view>(st.map_views.data(), st.map_views.size()), maps, options.combine, st.maps,
                 span<const double>(options.cell_offsets.data(), options.cell_offsets.size()));
    if (options.blur_sigma > 0.0) gaussian_blur(maps, maps, options.blur_sigma, st.maps);
    span<double> image(out.image.data() + start, static_cast<std::size_t>(count));
    if (options.image_score == score_aggregation::mean) {
      for (index_t i = 0; i < count; ++i) image[static_cast<std::size_t>(i)] = 0.5 * st.squares[static_cast<std::size_t>(i)] / dims;
    } else {
      image_scores(maps, options.image_score, image, options.top_k_fraction, st.top_k_scratch);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Training

fit_report msflow::fit(const feature_maps& train, const fit_options& opt) {
  using clock = std::chrono::steady_clock;
  const auto started = clock::now();
  if (opt.epochs <= 0) throw error(errc::invalid_argument, "fit_options.epochs must be positive, got " + std::to_string(opt.epochs));
  if (opt.batch_size <= 0)
    throw error(errc::invalid_argument, "fit_options.batch_size must be positive, got " + std::to_string(opt.batch_size));
  if (train.empty()) throw error(errc::empty_input, "msflow::fit got no training features");
  if (!(opt.input_noise >= 0.0) || !std::isfinite(opt.input_noise))
    throw error(errc::invalid_argument, "fit_options.input_noise must be finite and >= 0, got " + codec::encode(opt.input_noise));
  const index_t n = check_features(train, cfg_.scales, "training features");
  const std::size_t scales = cfg_.scales.size();

  // Data-dependent input normalisation over the whole training set: position_norm from the features,
  // then the actnorm behind it from what the position_norm makes of them.
  const std::size_t flow_count = impl_->flows.size();
  {
    workspace init_ws;
    tensor standardised;
    std::vector<double> unused(static_cast<std::size_t>(n));
    for (std::size_t k = 0; k < flow_count; ++k) {
      const const_view& features = train[impl_->streams[k].scale];
      const_view normalised_input = features;
      if (position_norm* p = impl_->position_norms[k]) {
        p->initialize(features);
        standardised.resize(features.shape(), layout::nhwc);
        p->forward(features, standardised.view(), unused, init_ws);
        normalised_input = standardised.cview();
      }
      if (impl_->norms[k]) impl_->norms[k]->initialize(normalised_input);
    }
  }

  const std::vector<parameter*> all_params = impl_->parameters();  // every gradient is computed and cleared
  for (parameter* p : all_params) p->zero_grad();
  const std::vector<parameter*> params = impl_->trained_parameters();
  adam optimizer(params, opt.optimizer);

  workspace ws;
  std::vector<flow_layer*> flows;
  for (auto& f : impl_->flows) flows.push_back(f.get());
  nll_objective objective(flows);
  std::vector<tensor> batch(scales);
  std::vector<const_view> batch_views(flow_count);
  std::vector<index_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), index_t{0});
  detail::rng shuffler(opt.seed);
  detail::rng noise(opt.seed ^ 0x6E6F697365ull);  // its own stream: shuffling stays as without noise
  std::vector<std::vector<float>> noise_scale(scales);  // per channel: input_noise x its training std
  if (opt.input_noise > 0.0)
    for (std::size_t s = 0; s < scales; ++s) noise_scale[s] = channel_noise_scale(train[s], opt.input_noise);

  // The last good state, refreshed at every epoch end, for rolling back after repeated failures.
  std::vector<std::vector<float>> snapshot(params.size());
  auto take_snapshot = [&] {
    for (std::size_t i = 0; i < params.size(); ++i) snapshot[i].assign(params[i]->data(), params[i]->data() + params[i]->size());
  };
  take_snapshot();

  fit_report report;
  report.epoch_losses.reserve(static_cast<std::size_t>(opt.epochs));  // no allocation between steps
  const long steps_per_epoch = static_cast<long>((n + opt.batch_size - 1) / opt.batch_size);
  const long total_steps = steps_per_epoch * opt.epochs;
  double lr_scale = 1.0;
  int consecutive_failures = 0;
  long steps_done = 0;

  for (int epoch = 0; epoch < opt.epochs; ++epoch) {
    shuffler.shuffle(order);
    double epoch_loss = 0.0;
    long epoch_steps = 0;
    for (long step = 0; step < steps_per_epoch; ++step) {
      const std::size_t first = static_cast<std::size_t>(step * opt.batch_size);
      const index_t count = std::min<index_t>(opt.batch_size, n - static_cast<index_t>(first));
      const double progress_epochs = epoch + static_cast<double>(step) / static_cast<double>(steps_per_epoch);
      const double lr = opt.optimizer.learning_rate * lr_factor(opt.schedule, progress_epochs, opt.epochs) * lr_scale;

      for (std::size_t s = 0; s < scales; ++s) {
        gather(train[s], order, first, count, batch[s]);
        if (opt.input_noise > 0.0) add_channel_noise(batch[s], noise_scale[s], noise);
      }
      for (std::size_t k = 0; k < flow_count; ++k) batch_views[k] = batch[impl_->streams[k].scale].cview();
      const double loss = objective.forward_backward(batch_views, ws);
      const double norm = std::isfinite(loss) ? clip_gradient_norm(params, opt.max_grad_norm) : 0.0;

      if (!std::isfinite(loss) || !std::isfinite(norm)) {
        ++report.discarded_steps;
        ++consecutive_failures;
        lr_scale *= opt.lr_drop_on_failure;
        std::string event = "epoch " + std::to_string(epoch + 1) + " step " + std::to_string(step + 1) + ": " +
                            (!std::isfinite(loss) ? "loss" : "gradient") + " is not finite; step discarded, learning rate x" +
                            codec::encode(lr_scale);
        if (consecutive_failures >= opt.max_consecutive_failures) {
          throw error(errc::training_failed, "msflow::fit gave up after " + std::to_string(consecutive_failures) +
                                                 " consecutive non-finite steps (last: " + event + ")");
        }
        if (consecutive_failures % std::max(1, opt.rollback_after) == 0) {
          for (std::size_t i = 0; i < params.size(); ++i) {
            std::copy(snapshot[i].begin(), snapshot[i].end(), params[i]->data());
            params[i]->mark_updated();
          }
          optimizer.reset();
          ++report.rollbacks;
          event += "; parameters rolled back to the last completed epoch";
        }
        report.events.push_back(std::move(event));
        for (parameter* p : all_params) p->zero_grad();
      } else {
        optimizer.step(static_cast<float>(lr));
        for (parameter* p : all_params) p->zero_grad();
        consecutive_failures = 0;
        ++report.steps;
        epoch_loss += loss;
        ++epoch_steps;
      }
      ++steps_done;

      if (opt.on_progress) {
        const double elapsed = std::chrono::duration<double>(clock::now() - started).count();
        fit_progress p;
        p.epoch = epoch;
        p.epochs = opt.epochs;
        p.step = steps_done;
        p.steps = total_steps;
        p.loss = epoch_steps > 0 ? epoch_loss / static_cast<double>(epoch_steps) : 0.0;
        const double images = static_cast<double>(epoch) * static_cast<double>(n) + static_cast<double>(first + static_cast<std::size_t>(count));
        p.images_per_second = elapsed > 0.0 ? images / elapsed : 0.0;
        p.eta_seconds = elapsed / static_cast<double>(steps_done) * static_cast<double>(total_steps - steps_done);
        p.learning_rate = lr;
        p.epoch_end = step + 1 == steps_per_epoch;
        opt.on_progress(p);
      }
    }
    report.epoch_losses.push_back(epoch_steps > 0 ? epoch_loss / static_cast<double>(epoch_steps)
                                                  : std::numeric_limits<double>::quiet_NaN());
    if (epoch_steps > 0) take_snapshot();
  }

  fitted_ = true;
  report.final_loss = report.epoch_losses.back();
  report.final_lr_scale = lr_scale;
  report.seconds = std::chrono::duration<double>(clock::now() - started).count();
  report.images_per_second = report.seconds > 0.0 ? static_cast<double>(n) * opt.epochs / report.seconds : 0.0;
  return report;
}

// ------------------------------------------------------------------------------------------------
// Model files

void msflow::save(const std::filesystem::path& path) const {
  if (!fitted_) throw error(errc::not_fitted, "msflow::save called before fit() or load()");
  model_file_contents m;
  m.kind = "msflow";
  m.config = encode_config(cfg_);
  for (const auto& [key, value] : metadata_) m.config.emplace_back(metadata_prefix + key, value);
  for (std::size_t s = 0; s < impl_->flows.size(); ++s) {
    sequential_flow& flow = *impl_->flows[s];
    for (std::size_t i = 0; i < flow.size(); ++i) {
      flow_layer& layer = flow.layer(i);
      const std::string prefix = layer_prefix(cfg_, impl_->streams[s], s, i);
      if (auto* p = dynamic_cast<permute*>(&layer)) m.tensors.push_back({prefix + "permutation", {p->channels()}, as_floats(p->permutation())});
      if (auto* inv = dynamic_cast<invertible_1x1*>(&layer)) {
        m.tensors.push_back({prefix + "permutation", {inv->channels()}, as_floats(inv->permutation())});
        m.tensors.push_back({prefix + "signs", {inv->channels()}, inv->signs()});
      }
      for (parameter* p : layer.parameters())
        m.tensors.push_back({prefix + p->name(), p->dims(), std::vector<float>(p->data(), p->data() + p->size())});
    }
  }
  write_model_file(path, m);
}

std::unique_ptr<msflow> msflow::from_contents(const model_file_contents& m) {
  if (m.kind != "msflow") throw error(errc::bad_file, "model file holds a '" + m.kind + "' detector, not msflow");
  const msflow_config cfg = decode_config(m);
  double values = 0.0;
  for (const stored_tensor& t : m.tensors) values += static_cast<double>(t.values.size());
  if (values != stored_values(cfg))
    throw error(errc::bad_file, "model file holds " + codec::encode(values) + " values but its configuration needs " +
                                    codec::encode(stored_values(cfg)));
  // Built with the stored fixed permutations; every parameter is then overwritten. Anything the layers
  // reject (a permutation that is not one, a sign that is not ±1) is a damaged file.
  std::unique_ptr<msflow> model;
  try {
    model.reset(new msflow(cfg, &m));
  } catch (const error& e) {
    if (e.code() == errc::bad_file) throw;
    throw error(errc::bad_file, std::string("model file does not describe a valid msflow: ") + e.what());
  }
  std::size_t expected = 0;
  for (std::size_t s = 0; s < model->impl_->flows.size(); ++s) {
    sequential_flow& flow = *model->impl_->flows[s];
    for (std::size_t i = 0; i < flow.size(); ++i) {
      const std::string prefix = layer_prefix(cfg, model->impl_->streams[s], s, i);
      flow_layer& layer = flow.layer(i);
      if (dynamic_cast<permute*>(&layer)) ++expected;
      if (dynamic_cast<invertible_1x1*>(&layer)) expected += 2;
      for (parameter* p : layer.parameters()) {
        const stored_tensor& t = m.tensor_named(prefix + p->name());
        if (t.dims != p->dims())
          throw error(errc::bad_file, "model file tensor '" + t.name + "' has the wrong shape for its configuration");
        for (float v : t.values)
          if (!std::isfinite(v)) throw error(errc::bad_file, "model file tensor '" + t.name + "' holds NaN or Inf");
        std::copy(t.values.begin(), t.values.end(), p->data());
        p->mark_updated();
        ++expected;
      }
    }
  }
  if (expected != m.tensors.size())
    throw error(errc::bad_file, "model file holds " + std::to_string(m.tensors.size()) + " tensors but its configuration needs " +
                                    std::to_string(expected));
  for (actnorm* norm : model->impl_->norms)
    if (norm) norm->mark_initialized();
  for (position_norm* norm : model->impl_->position_norms)
    if (norm) norm->mark_initialized();
  for (const auto& [key, value] : m.config)
    if (key.rfind(metadata_prefix, 0) == 0) model->set_metadata(key.substr(std::strlen(metadata_prefix)), value);
  model->fitted_ = true;
  return model;
}

std::unique_ptr<msflow> msflow::load(const std::filesystem::path& path) { return from_contents(read_model_file(path)); }

}  // namespace v0
}  // namespace flowad
