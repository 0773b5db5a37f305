// Trainable 2-D convolution for the teacher-student networks (STFPM's student, RD's bottleneck and
// decoder): PyTorch's Conv2d(in, out, kernel, stride, padding = kernel / 2, bias) on dense NHWC buffers.
// An H x W input gives ((H − 1)/stride + 1) x ((W − 1)/stride + 1) cells, PyTorch's size for these paddings.
//
// Weights are OIHW ("weight"), bias [out] ("bias", when configured). Initialised as torchvision's
// ResNet initialises convolutions: kaiming_normal_(mode = "fan_out", nonlinearity = "relu"), drawn from
// the configuration's seed; bias 0.
//
// forward() is const and thread-safe given one workspace per thread; backward() accumulates into the
// parameters' gradients. No heap allocation once a shape has been seen.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flowad/parameter.hpp"
#include "flowad/tensor.hpp"
#include "flowad/workspace.hpp"

namespace flowad {
inline namespace v0 {
namespace nn {

class conv {
 public:
  struct config {
    index_t in_channels = 0;
    index_t out_channels = 0;
    index_t kernel = 3;  // odd
    index_t stride = 1;  // 1 or more
    bool with_bias = false;
    std::uint64_t seed = 0;
  };

  // Throws errc::invalid_argument for non-positive sizes or an even kernel. `name` prefixes the
  // parameters' names ("layer1.0.conv1" -> "layer1.0.conv1.weight").
  conv(const config& cfg, const std::string& name);
  ~conv();
  conv(conv&&) noexcept;
  conv& operator=(conv&&) noexcept;

  const config& cfg() const noexcept { return cfg_; }
  index_t output_size(index_t in) const noexcept { return (in - 1) / cfg_.stride + 1; }

  parameter& weight() noexcept { return weight_; }
  const parameter& weight() const noexcept { return weight_; }
  // Null without bias.
  parameter* bias() noexcept { return cfg_.with_bias ? &bias_ : nullptr; }
  std::vector<parameter*> parameters();

  // dst (n x out x output_size(h) x output_size(w)) = conv(src (n x in x h x w)).
  void forward(const float* src, float* dst, index_t n, index_t h, index_t w, workspace& ws) const;
  // Given diff_dst = dL/d dst: weight (and bias) gradients += dL/dθ; diff_src = dL/d src unless null.
  void backward(const float* src, const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w, workspace& ws);

  double macs(index_t n, index_t h, index_t w) const noexcept;

 private:
  struct impl;
  config cfg_;
  parameter weight_;
  parameter bias_;
  std::unique_ptr<impl> impl_;
};

}  // namespace nn
}  // namespace v0
}  // namespace flowad
