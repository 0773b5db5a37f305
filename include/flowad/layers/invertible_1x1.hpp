// Glow's invertible 1x1 convolution in its LU parameterisation: z = W x at every pixel, with
//
//   W = P · L · (U_strict + diag(sign · exp(log_s)))
//
// P a fixed permutation, L unit lower triangular, U_strict strictly upper triangular, sign fixed (±1).
// log|det J| per sample = H · W · Σ log_s, exact and cheap (openai/glow model.py, rosinality/glow-pytorch
// InvConv2dLU).
//
// Parameters (dense float, row-major):
//   "lower"  C x C  only the strict lower part is used; the rest is ignored and gets zero gradient
//   "upper"  C x C  only the strict upper part is used; likewise
//   "log_s"  C      log |diagonal of U|
// W and W^-1 (= U^-1 L^-1 P^T) are built in double from the factors when the parameters' stamps change
// (once per optimiser step), never per image; W^-1 only when inverse() needs it, so training steps do not
// pay for it. Non-finite factors, or a W / W^-1 that overflows float, throw errc::non_finite.
//
// The per-pixel product runs on oneDNN as a [N·H·W, C] x [C, C] matrix product on dense NHWC data. At the
// standard shapes its forward pass is on par with a 1x1 convolution and its backward pass (data and
// weights) is faster, with no weight reorder; bench_invertible_1x1's "candidate" benchmarks compare the
// two. Other layouts are copied into the workspace's scratch first.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "flowad/layers/flow_layer.hpp"

namespace flowad {
inline namespace v0 {

class invertible_1x1 final : public flow_layer {
 public:
  // W initialised to a random rotation (Q of the QR decomposition of a Gaussian matrix drawn from
  // `seed`), decomposed as P·L·U by partial-pivoting LU in double. Identical on every platform.
  invertible_1x1(index_t channels, std::uint64_t seed);
  // Explicit fixed factors, with L = I and U_strict = 0, log_s = 0 (so W = P · diag(sign)); for loading a
  // model, whose learnable parameters are then written through parameters(). (P x)[i] = x[permutation[i]].
  // Throws unless permutation is a permutation of 0..C-1 and every sign is +1 or -1.
  invertible_1x1(std::vector<index_t> permutation, std::vector<float> signs);

  invertible_1x1(const invertible_1x1& other);  // copies the parameters; derived weights are rebuilt
  invertible_1x1& operator=(const invertible_1x1& other);
  ~invertible_1x1() override;

  const char* kind() const noexcept override { return "invertible_1x1"; }
  index_t channels() const noexcept override { return static_cast<index_t>(permutation_.size()); }
  const std::vector<index_t>& permutation() const noexcept { return permutation_; }
  const std::vector<float>& signs() const noexcept { return signs_; }

  parameter& lower() noexcept { return lower_; }
  parameter& upper() noexcept { return upper_; }
  parameter& log_s() noexcept { return log_s_; }
  const parameter& lower() const noexcept { return lower_; }
  const parameter& upper() const noexcept { return upper_; }
  const parameter& log_s() const noexcept { return log_s_; }

  // dst = W src per pixel; logdet[n] += H·W·Σ log_s. The mode makes no difference: backward() needs only src.
  void forward(const_view src, view dst, span<double> logdet, workspace& ws,
               pass_mode mode = pass_mode::inference) const override;
  // src = W^-1 dst per pixel.
  void inverse(const_view dst, view src, workspace& ws) const override;
  // diff_src = W^T diff_dst; dL/dW = Σ_pixels diff_dst · src^T, chained to the strict lower part of "lower",
  // the strict upper part of "upper" and "log_s" (which also receives H·W·Σ_n diff_logdet[n]).
  void backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet, view diff_src,
                workspace& ws) override;

  std::vector<parameter*> parameters() override { return {&lower_, &upper_, &log_s_}; }
  double macs_per_sample(index_t h, index_t w) const noexcept override {
    return static_cast<double>(h) * static_cast<double>(w) * static_cast<double>(channels()) *
           static_cast<double>(channels());
  }
  void clear_primitive_cache() override;

 private:
  struct derived;  // W, W^-1 and the factors as dense float matrices, the matmul primitives, the stamps
  struct state;    // per-workspace buffers of backward()

  void check(const_view in, const char* in_name, const_view out, const char* out_name) const;
  // Rebuilds W (and W^-1 if asked) if a parameter changed since they were built; thread-safe.
  const derived& prepared(bool with_inverse) const;

  std::vector<index_t> permutation_;
  std::vector<float> signs_;
  parameter lower_;
  parameter upper_;
  parameter log_s_;
  std::unique_ptr<derived> derived_;
};

}  // namespace v0
}  // namespace flowad
