// Per-channel affine flow layers: Glow's ActNorm and FrEIA AllInOneBlock's global affine.
//
// Both map every element of channel c to y = a_c·x + t_c, so log|det J| per sample = H·W·Σ_c log a_c.
// They differ only in how a and t derive from the learnable parameters:
//
//   actnorm        y = (x + bias)·exp(log_scale)          (openai/glow tfops.py; a = exp(log_scale))
//   global_affine  y = x·Ψ(global_scale) + global_offset  (FrEIA all_in_one_block.py; a = Ψ, one of three
//                                                          activations, see global_scale_activation)
//
// Any strides are accepted; dense NHWC and dense NCHW run contiguous vectorised loops. Parameters whose
// coefficients are not finite (or whose scale is not a positive float) throw errc::non_finite.
#pragma once

#include "flowad/layers/flow_layer.hpp"

namespace flowad {
inline namespace v0 {

class actnorm final : public flow_layer {
 public:
  // bias = 0, log_scale = 0, not initialised.
  explicit actnorm(index_t channels);

  const char* kind() const noexcept override { return "actnorm"; }
  index_t channels() const noexcept override { return static_cast<index_t>(bias_.size()); }

  // "bias" [C] and "log_scale" [C].
  parameter& bias() noexcept { return bias_; }
  parameter& log_scale() noexcept { return log_scale_; }
  const parameter& bias() const noexcept { return bias_; }
  const parameter& log_scale() const noexcept { return log_scale_; }

  // Glow's data-dependent initialisation from the batch x, statistics over (N, H, W) in double:
  // bias = −mean, log_scale = log(1 / (std + 1e-6)) with the population std, so that the layer's output
  // on x has zero mean and unit variance per channel. Throws errc::non_finite if a channel's mean or std
  // is NaN/Inf (x holds NaN/Inf or overflows); the parameters are then left unchanged.
  void initialize(const_view x);
  bool initialized() const noexcept { return initialized_; }
  // Declares the current parameters final (a loaded model, parameters set by hand).
  void mark_initialized() noexcept { initialized_ = true; }

  // dst = (src + bias)·exp(log_scale); logdet[n] += H·W·Σ log_scale.
  // On an uninitialised layer, training mode first calls initialize(src), the one case in which forward()
  // writes the layer (like Glow's first batch; training is never concurrent); inference mode throws
  // errc::not_fitted.
  void forward(const_view src, view dst, span<double> logdet, workspace& ws,
               pass_mode mode = pass_mode::inference) const override;
  // src = dst·exp(−log_scale) − bias. Throws errc::not_fitted if uninitialised.
  void inverse(const_view dst, view src, workspace& ws) const override;
  // diff_src = diff_dst·exp(log_scale); bias and log_scale gradients summed over (N, H, W) in double.
  void backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet, view diff_src,
                workspace& ws) override;

  std::vector<parameter*> parameters() override { return {&bias_, &log_scale_}; }

 private:
  void require_initialized(const char* what) const;
  void initialize_from(const_view x) const;
  // Mutable for the first-batch initialisation by a const forward() in training mode.
  mutable parameter bias_;
  mutable parameter log_scale_;
  mutable bool initialized_ = false;
};

// The global scale activation Ψ of FrEIA's AllInOneBlock (global_affine_type).
enum class global_scale_activation {
  softplus,  // Ψ = 0.2·log(1 + exp(0.5·g))  (FrEIA's default, "SOFTPLUS")
  sigmoid,   // Ψ = 10·σ(g − 2)              ("SIGMOID", Ψ < 10)
  exp,       // Ψ = exp(g)                   ("EXP")
};

// FrEIA AllInOneBlock's per-channel "global affine": y = x·Ψ(global_scale) + global_offset,
// logdet[n] += H·W·Σ log Ψ. global_scale starts where Ψ = initial_scale (FrEIA global_affine_init), the
// offset at 0. In the AllInOneBlock it sits between the coupling and the permutation.
class global_affine final : public flow_layer {
 public:
  // Throws unless initial_scale > 0 (and < 10 for the sigmoid activation).
  explicit global_affine(index_t channels, global_scale_activation activation = global_scale_activation::softplus,
                         double initial_scale = 1.0);

  const char* kind() const noexcept override { return "global_affine"; }
  index_t channels() const noexcept override { return static_cast<index_t>(scale_.size()); }
  global_scale_activation activation() const noexcept { return activation_; }

  // "global_scale" [C] (the pre-activation g) and "global_offset" [C].
  parameter& global_scale() noexcept { return scale_; }
  parameter& global_offset() noexcept { return offset_; }
  const parameter& global_scale() const noexcept { return scale_; }
  const parameter& global_offset() const noexcept { return offset_; }

  // Ψ(g_c) into scale[c] and the offset into shift[c] (channels() each); returns Σ_c log Ψ(g_c), the
  // log-determinant per pixel. Throws flowad::error if a coefficient is not finite.
  double coefficients(float* scale, float* shift) const;

  void forward(const_view src, view dst, span<double> logdet, workspace& ws,
               pass_mode mode = pass_mode::inference) const override;
  void inverse(const_view dst, view src, workspace& ws) const override;
  void backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet, view diff_src,
                workspace& ws) override;

  // The parameter gradients of a backward pass whose per-channel sums were computed elsewhere
  // (all_in_one_block's fused pass): sum_diff[c] = Σ dy, sum_diff_src[c] = Σ dy·x over (n, h, w), for
  // inputs of `positions` = H·W pixels per sample. backward() calls it too.
  void accumulate_gradients(const double* sum_diff, const double* sum_diff_src, span<const double> diff_logdet,
                            double positions);

  std::vector<parameter*> parameters() override { return {&scale_, &offset_}; }

 private:
  global_scale_activation activation_;
  parameter scale_;
  parameter offset_;
};

}  // namespace v0
}  // namespace flowad
