// A transposed 2-D convolution on oneDNN (deconvolution) with kernel = stride and no padding: every input
// cell spreads into its own stride x stride block of the output, so an H x W input gives H·s x W·s.
// PyTorch's ConvTranspose2d(in, out, kernel_size = s, stride = s) for RD's decoder.
//
// Tensors are dense NHWC float buffers; weights are stored as PyTorch stores them, [in, out, s, s]
// (oneDNN's iohw), bias [out]. Primitives are cached per input shape; weights are reordered into the
// primitive's layout once per parameter stamp; execution goes through the per-thread exec_context, so
// a const forward pass can run on several threads.
#pragma once

#include <memory>

#include "flowad/detail/backend.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

class deconv2d {
 public:
  struct config {
    index_t in_channels = 0;
    index_t out_channels = 0;
    index_t stride = 2;  // also the kernel size
    bool with_bias = true;
  };

  explicit deconv2d(const config& cfg);
  ~deconv2d();
  deconv2d(deconv2d&&) noexcept;
  deconv2d& operator=(deconv2d&&) noexcept;

  const config& cfg() const noexcept;

  // dst (n x out x h·s x w·s) = deconv(src (n x in x h x w), weights) + bias.
  void forward(const float* src, float* dst, index_t n, index_t h, index_t w, const parameter& weights,
               const parameter* bias, exec_context& ctx) const;
  // diff_src (n x in x h x w, overwritten) = d(deconv)/d(src)^T · diff_dst.
  void backward_data(const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w, const parameter& weights,
                     exec_context& ctx) const;
  // weights.grad += dL/dW and bias->grad += dL/db for diff_dst = dL/d dst.
  void backward_weights(const float* src, const float* diff_dst, index_t n, index_t h, index_t w, parameter& weights,
                        parameter* bias, exec_context& ctx) const;

  double macs(index_t n, index_t h, index_t w) const noexcept;
  void clear_cache();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace detail
}  // namespace v0
}  // namespace flowad
