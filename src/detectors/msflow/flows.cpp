// msflow's flows: which flows a configuration has, how large they are and how they are built.
#include "detectors/msflow/flows.hpp"

#include <cmath>

#include "flowad/detail/random.hpp"
#include "flowad/layers/actnorm.hpp"
#include "flowad/layers/invertible_1x1.hpp"
#include "flowad/layers/permute.hpp"
#include "flowad/layers/position_norm.hpp"
#include "flowad/layers/split_merge.hpp"

namespace flowad {
inline namespace v0 {

std::vector<msflow_stream> msflow_streams(const msflow_config& cfg) {
  std::vector<msflow_stream> streams;
  for (std::size_t s = 0; s < cfg.scales.size(); ++s) streams.push_back({s, cfg.position(s).mode == position_mode::relative});
  for (std::size_t s = 0; s < cfg.scales.size(); ++s)
    if (cfg.position(s).mode == position_mode::paired) {
      streams[s].position_relative = false;
      streams.push_back({s, true});
    }
  return streams;
}

model_stats count(const msflow_config& cfg) {
  cfg.validate();
  const msflow_detail::sizes s = msflow_detail::size_of(cfg);
  return {s.learned + s.statistics, s.macs};
}

std::unique_ptr<sequential_flow> make_msflow_flow(const msflow_config& cfg, std::size_t stream) {
  cfg.validate();
  const std::size_t streams = msflow_streams(cfg).size();
  if (stream >= streams)
    throw error(errc::invalid_argument, "make_msflow_flow: flow " + std::to_string(stream) + " of a configuration with " +
                                            std::to_string(streams) + " flows");
  return msflow_detail::build_flow(cfg, stream, nullptr);
}

namespace msflow_detail {

namespace {

// A seed for (stream, block) derived from the configuration's seed.
std::uint64_t stream_block_seed(std::uint64_t seed, std::size_t stream, index_t block) {
  detail::rng r(seed ^ (0x9E3779B97F4A7C15ull * (stream + 1)) ^ (0xC2B2AE3D27D4EB4Full * static_cast<std::uint64_t>(block + 1)));
  return r.next();
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

}  // namespace

sizes size_of(const msflow_config& cfg) {
  sizes total;
  for (const msflow_stream& stream : msflow_streams(cfg)) {
    const scale_shape& s = cfg.scales[stream.scale];
    const double c = static_cast<double>(s.channels);
    const double pixels = static_cast<double>(s.height) * static_cast<double>(s.width);
    const std::vector<index_t> groups = channel_split::equal_sizes(s.channels, cfg.groups);
    if (stream.position_relative) total.statistics += 2.0 * c * pixels;
    if (cfg.input_normalization) total.statistics += 2.0 * c;
    for (index_t b = 0; b < cfg.blocks; ++b) {
      if (cfg.mixing == block_mixing::permute) {
        total.stored += c;  // the permutation
      } else {
        // L strict lower + U strict upper + log|s| learn C² values, stored as two C x C matrices,
        // log|s|, the permutation and the signs; C² MACs per pixel.
        total.learned += c * c;
        total.stored += 2.0 * c * c + 3.0 * c;
        total.macs += pixels * c * c;
      }
      const double k = static_cast<double>(cfg.kernels[static_cast<std::size_t>(b) % cfg.kernels.size()]);
      const double h = static_cast<double>(cfg.hidden);
      for (std::size_t g = 0; g + 1 < groups.size(); ++g) {
        const double in = static_cast<double>(groups[g]), out = 2.0 * static_cast<double>(groups[g + 1]);
        const double weights = h * in * k * k + out * h * k * k;
        total.learned += weights + h + out;
        total.stored += weights + h + out;
        total.macs += pixels * weights;
      }
      if (cfg.learn_gain) {
        total.learned += static_cast<double>(groups.size() - 1);
        total.stored += static_cast<double>(groups.size() - 1);
      }
    }
  }
  total.stored += total.statistics;
  return total;
}

std::string layer_prefix(const msflow_config& cfg, std::size_t stream, std::size_t layer) {
  const std::string number = std::to_string(layer);
  return "scale" + std::to_string(msflow_streams(cfg)[stream].scale) + (stream >= cfg.scales.size() ? ".relative" : "") +
         ".layer" + (number.size() < 2 ? "0" : "") + number + ".";
}

std::unique_ptr<sequential_flow> build_flow(const msflow_config& cfg, std::size_t s, const model_file_contents* stored) {
  const msflow_stream stream = msflow_streams(cfg)[s];
  const scale_shape& shape = cfg.scales[stream.scale];
  const index_t channels = shape.channels;
  auto flow = std::make_unique<sequential_flow>(channels);
  if (stream.position_relative)
    flow->emplace<position_norm>(channels, shape.height, shape.width, cfg.position(stream.scale).pool_radius);
  if (cfg.input_normalization) flow->emplace<actnorm>(channels);
  for (index_t b = 0; b < cfg.blocks; ++b) {
    const std::uint64_t seed = stream_block_seed(cfg.seed, s, b);
    const std::string prefix = layer_prefix(cfg, s, flow->size());
    if (cfg.mixing == block_mixing::permute) {
      if (stored) flow->emplace<permute>(as_indices(stored->tensor_named(prefix + "permutation")));
      else flow->emplace<permute>(channels, seed);
    } else if (stored) {
      const stored_tensor& signs = stored->tensor_named(prefix + "signs");
      flow->emplace<invertible_1x1>(as_indices(stored->tensor_named(prefix + "permutation")), signs.values);
    } else {
      flow->emplace<invertible_1x1>(channels, seed);
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

}  // namespace msflow_detail
}  // namespace v0
}  // namespace flowad
