#include "flowad/extract/mobilenet_v2.hpp"

#include "extract/weights.hpp"

namespace flowad {
inline namespace v0 {

namespace {

using detail::eltwise;
using detail::inference_net;
using node_id = inference_net::node_id;

constexpr index_t mobilenet_stem_channels = 32;
constexpr index_t depthwise_kernel = 3;

// One inverted-residual block of torchvision's MobileNetV2 (features.1 .. features.17).
struct block {
  index_t in, hidden, out, stride;
};

// features.1 .. features.13 from torchvision's setting table (t, c, n, s):
// (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1).
std::vector<block> blocks() {
  struct stage {
    index_t expand, out, repeats, stride;
  };
  const stage stages[] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}};
  std::vector<block> out;
  index_t in = mobilenet_stem_channels;
  for (const stage& s : stages) {
    for (index_t r = 0; r < s.repeats; ++r) {
      out.push_back({in, in * s.expand, s.out, r == 0 ? s.stride : 1});
      in = s.out;
    }
  }
  return out;
}

// The levels: the last block at strides 4, 8 and 16.
struct level_def {
  int block;
  index_t channels, stride;
};
constexpr level_def level_defs[] = {{3, 24, 4}, {6, 32, 8}, {13, 96, 16}};

std::string prefix(int index) {
  return "features." + std::to_string(index);
}

inference_net build_mobilenet_v2(detail::checked_weights&& w, detail::activation_format format) {
  inference_net net(3, format);
  auto conv = [&](node_id src, const std::string& name, index_t out, index_t kernel, index_t stride, index_t groups,
                  eltwise act, node_id residual) {
    inference_net::conv_spec s;
    s.out_channels = out;
    s.kernel = kernel;
    s.stride = stride;
    s.padding = kernel / 2;
    s.groups = groups;
    s.act = act;
    s.residual = residual;
    return net.conv(src, s, w.take(name + ".weight"), w.take(name + ".bias"), name);
  };
  node_id x = conv(inference_net::input_node, "features.0.0", mobilenet_stem_channels, 3, 2, 1, eltwise::relu6, -1);
  const std::vector<block> bs = blocks();
  std::size_t next_level = 0;
  for (std::size_t i = 0; i < bs.size(); ++i) {
    const block& b = bs[i];
    const int index = static_cast<int>(i) + 1;
    const std::string p = prefix(index) + ".conv.";
    const node_id residual = (b.stride == 1 && b.in == b.out) ? x : -1;
    node_id y = x;
    int part = 0;
    if (b.hidden != b.in) {  // expansion 1x1
      y = conv(y, p + "0.0", b.hidden, 1, 1, 1, eltwise::relu6, -1);
      ++part;
    }
    y = conv(y, p + std::to_string(part) + ".0", b.hidden, depthwise_kernel, b.stride, b.hidden, eltwise::relu6, -1);
    ++part;
    x = conv(y, p + std::to_string(part), b.out, 1, 1, 1, eltwise::none, residual);
    if (next_level < std::size(level_defs) && level_defs[next_level].block == index) {
      net.mark_output(x);
      ++next_level;
    }
  }
  return net;
}

std::vector<feature_level> mobilenet_levels() {
  std::vector<feature_level> out;
  for (const level_def& l : level_defs) out.push_back({prefix(l.block), l.channels, l.stride});
  return out;
}

}  // namespace

std::vector<weight_spec> mobilenet_v2_extractor::required_weights() {
  std::vector<weight_spec> specs;
  auto add = [&](const std::string& name, index_t out, index_t in, index_t k) {
    specs.push_back({name + ".weight", {out, in, k, k}});
    specs.push_back({name + ".bias", {out}});
  };
  add("features.0.0", mobilenet_stem_channels, 3, 3);
  const std::vector<block> bs = blocks();
  for (std::size_t i = 0; i < bs.size(); ++i) {
    const block& b = bs[i];
    const std::string p = prefix(static_cast<int>(i) + 1) + ".conv.";
    int part = 0;
    if (b.hidden != b.in) add(p + std::to_string(part++) + ".0", b.hidden, b.in, 1);
    add(p + std::to_string(part++) + ".0", b.hidden, 1, depthwise_kernel);
    add(p + std::to_string(part), b.out, b.hidden, 1);
  }
  return specs;
}

mobilenet_v2_extractor::mobilenet_v2_extractor(const std::string& weights_path, detail::activation_format format)
    : network_extractor("mobilenet_v2",
                        build_mobilenet_v2(detail::checked_weights(weights_path, required_weights(), "mobilenet_v2"), format),
                        mobilenet_levels()) {}

mobilenet_v2_extractor::mobilenet_v2_extractor(const weight_map& weights, const std::string& origin,
                                               detail::activation_format format)
    : network_extractor("mobilenet_v2",
                        build_mobilenet_v2(detail::checked_weights(weights, origin, required_weights(), "mobilenet_v2"), format),
                        mobilenet_levels()) {}

std::vector<std::string> mobilenet_v2_extractor::default_levels() const {
  const std::vector<std::string> names = level_names();
  return {names.end() - 2, names.end()};
}

}  // namespace v0
}  // namespace flowad
