#include "flowad/extract/resnet18.hpp"

#include "extract/weights.hpp"

namespace flowad {
inline namespace v0 {

namespace {

using detail::eltwise;
using detail::inference_net;
using node_id = inference_net::node_id;

constexpr index_t resnet18_stem_channels = 64;
constexpr index_t stem_kernel = 7;
constexpr index_t block_kernel = 3;
constexpr index_t blocks_per_layer = 2;
constexpr int layer_count = 3;
constexpr index_t layer_channels[layer_count] = {64, 128, 256};
constexpr index_t layer_strides[layer_count] = {1, 2, 2};
constexpr index_t level_strides[layer_count] = {4, 8, 16};

std::string block_name(int layer, index_t block) {
  return "layer" + std::to_string(layer + 1) + "." + std::to_string(block);
}

inference_net build_resnet18(detail::checked_weights&& w, detail::activation_format format) {
  inference_net net(3, format);
  auto conv = [&](node_id src, const std::string& name, index_t out, index_t kernel, index_t stride, eltwise act,
                  node_id residual) {
    inference_net::conv_spec s;
    s.out_channels = out;
    s.kernel = kernel;
    s.stride = stride;
    s.padding = kernel / 2;
    s.act = act;
    s.residual = residual;
    return net.conv(src, s, w.take(name + ".weight"), w.take(name + ".bias"), name);
  };
  node_id x = conv(inference_net::input_node, "conv1", resnet18_stem_channels, stem_kernel, 2, eltwise::relu, -1);
  x = net.max_pool(x, 3, 2, 1, "maxpool");
  for (int layer = 0; layer < layer_count; ++layer) {
    for (index_t block = 0; block < blocks_per_layer; ++block) {
      const std::string b = block_name(layer, block);
      const index_t stride = block == 0 ? layer_strides[layer] : 1;
      const node_id y = conv(x, b + ".conv1", layer_channels[layer], block_kernel, stride, eltwise::relu, -1);
      node_id identity = x;
      if (block == 0 && layer > 0)
        identity = conv(x, b + ".downsample.0", layer_channels[layer], 1, stride, eltwise::none, -1);
      x = conv(y, b + ".conv2", layer_channels[layer], block_kernel, 1, eltwise::relu, identity);
    }
    net.mark_output(x);
  }
  return net;
}

std::vector<feature_level> resnet_levels() {
  std::vector<feature_level> out;
  for (int layer = 0; layer < layer_count; ++layer)
    out.push_back({"layer" + std::to_string(layer + 1), layer_channels[layer], level_strides[layer]});
  return out;
}

}  // namespace

std::vector<weight_spec> resnet18_extractor::required_weights() {
  std::vector<weight_spec> specs;
  auto add = [&](const std::string& name, index_t out, index_t in, index_t k) {
    specs.push_back({name + ".weight", {out, in, k, k}});
    specs.push_back({name + ".bias", {out}});
  };
  add("conv1", resnet18_stem_channels, 3, stem_kernel);
  index_t in = resnet18_stem_channels;
  for (int layer = 0; layer < layer_count; ++layer) {
    const index_t c = layer_channels[layer];
    for (index_t block = 0; block < blocks_per_layer; ++block) {
      const std::string b = block_name(layer, block);
      add(b + ".conv1", c, block == 0 ? in : c, block_kernel);
      add(b + ".conv2", c, c, block_kernel);
      if (block == 0 && layer > 0) add(b + ".downsample.0", c, in, 1);
    }
    in = c;
  }
  return specs;
}

resnet18_extractor::resnet18_extractor(const std::string& weights_path, detail::activation_format format)
    : network_extractor("resnet18", build_resnet18(detail::checked_weights(weights_path, required_weights(), "resnet18"), format),
                        resnet_levels()) {}

resnet18_extractor::resnet18_extractor(const weight_map& weights, const std::string& origin,
                                       detail::activation_format format)
    : network_extractor("resnet18", build_resnet18(detail::checked_weights(weights, origin, required_weights(), "resnet18"), format),
                        resnet_levels()) {}

std::vector<std::string> resnet18_extractor::default_levels() const {
  const std::vector<std::string> names = level_names();
  return {names.end() - 2, names.end()};
}

}  // namespace v0
}  // namespace flowad
