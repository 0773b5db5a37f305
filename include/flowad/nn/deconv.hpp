// Trainable transposed convolution (oneDNN deconvolution): PyTorch's ConvTranspose2d(in, out, kernel =
// stride, stride, padding 0, bias), the upsampling of RD's decoder (kernel 2, stride 2: H x W -> 2H x 2W).
// An H x W input gives H·stride x W·stride cells. Dense NHWC buffers.
//
// Weights are stored as PyTorch stores them, [in, out, kernel, kernel] ("weight"); bias [out] ("bias",
// when configured). Initialised as PyTorch's ConvTranspose2d (kaiming_uniform_(a = sqrt(5)): U(±1/sqrt(fan_in))
// with fan_in = out·kernel² as PyTorch computes it for transposed weights), from the configuration's seed.
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

class deconv {
 public:
  struct config {
    index_t in_channels = 0;
    index_t out_channels = 0;
    index_t stride = 2;  // also the kernel size
    bool with_bias = false;
    std::uint64_t seed = 0;
  };

  deconv(const config& cfg, const std::string& name);
  ~deconv();
  deconv(deconv&&) noexcept;
  deconv& operator=(deconv&&) noexcept;

  const config& cfg() const noexcept { return cfg_; }
  index_t output_size(index_t in) const noexcept { return in * cfg_.stride; }

  parameter& weight() noexcept { return weight_; }
  const parameter& weight() const noexcept { return weight_; }
  parameter* bias() noexcept { return cfg_.with_bias ? &bias_ : nullptr; }
  std::vector<parameter*> parameters();

  // dst (n x out x h·stride x w·stride) = deconv(src (n x in x h x w)).
  void forward(const float* src, float* dst, index_t n, index_t h, index_t w, workspace& ws) const;
  // Given diff_dst: weight (and bias) gradients += dL/dθ; diff_src = dL/d src unless null.
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
