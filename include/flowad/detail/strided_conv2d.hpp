// A strided 2-D convolution on oneDNN (CS-Flow's down-scaling cross convolutions): stride s, zero
// padding kernel/2 on every side, so an H x W input gives ((H − 1)/s + 1) x ((W − 1)/s + 1), which is
// PyTorch's Conv2d(k, stride=s, padding=k//2) output size; exactly H/2 x W/2 for even sizes at s = 2.
//
// Tensors are dense NHWC float buffers, weights OIHW, bias [out_channels]. The stride-1 "same"
// convolution with its Winograd and staging paths is detail::conv2d; this one takes oneDNN's direct
// method on the caller's NHWC buffers, with its weights reordered once per parameter stamp. Primitives
// are cached per input shape; execution goes through the per-thread exec_context, so a const forward
// pass can run on several threads.
#pragma once

#include <memory>
#include <string>

#include "flowad/detail/backend.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

class strided_conv2d {
 public:
  struct config {
    index_t in_channels = 0;
    index_t out_channels = 0;
    index_t kernel = 3;  // odd
    index_t stride = 2;
    bool with_bias = true;
  };

  explicit strided_conv2d(const config& cfg);
  ~strided_conv2d();
  strided_conv2d(strided_conv2d&&) noexcept;
  strided_conv2d& operator=(strided_conv2d&&) noexcept;

  const config& cfg() const noexcept;
  // Output size along an axis of `in` cells.
  index_t output_size(index_t in) const noexcept { return (in - 1) / cfg().stride + 1; }

  // dst (n x out x output_size(h) x output_size(w)) = conv(src (n x in x h x w), weights) + bias.
  void forward(const float* src, float* dst, index_t n, index_t h, index_t w, const parameter& weights,
               const parameter* bias, exec_context& ctx) const;
  // diff_src (n x in x h x w, overwritten) = d(conv)/d(src)^T · diff_dst.
  void backward_data(const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w, const parameter& weights,
                     exec_context& ctx) const;
  // weights.grad += dL/dW and bias->grad += dL/db for diff_dst = dL/d dst.
  void backward_weights(const float* src, const float* diff_dst, index_t n, index_t h, index_t w, parameter& weights,
                        parameter* bias, exec_context& ctx) const;

  // Multiply-accumulates of one forward pass on an n x in x h x w input.
  double macs(index_t n, index_t h, index_t w) const noexcept;
  void clear_cache();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace detail
}  // namespace v0
}  // namespace flowad
