// CS-Flow's parallel glow coupling over S scales with cross-scale convolutions (Rudolph et al., WACV
// 2022; ALGORITHMS.md §3). Scale j holds x_j = [x_j1 | x_j2] with C_j/2 and C_j − C_j/2 channels:
//
//   (r_02, ..., r_S2) = S2(x_02, ..., x_S2)        s, t = γ2_j·r_j2 split in halves
//   y_j1 = x_j1 ⊙ exp(φ(s)) + t
//   (r_01, ..., r_S1) = S1(y_01, ..., y_S1)        s, t = γ1_j·r_j1
//   y_j2 = x_j2 ⊙ exp(φ(s)) + t
//   y_j  = clamp([y_j1 | y_j2], ±output_limit),    log|det J|_j = Σ φ(s) of both steps,
//
// φ the soft clamp (atan, α = 3: α·0.636·atan(s/α)). Each CrossConvolutions S maps the per-scale inputs
// through h_j = LeakyReLU(conv_k(in_j → hidden)) and
//   r_j = conv_k(h_j) + conv_k(Up×2(h_{j+1})) + conv_k,stride 2(h_{j−1})
// (the terms whose scale exists; convolutions hidden → the target scale's width; Up×2 bilinear with
// align_corners=False). γ is one learnable scalar per scale and CrossConvolutions, initialised to 0 so
// that a new layer is the identity. Every convolution has a bias; weights and biases start as PyTorch's
// U(±1/sqrt(fan_in)).
//
// Scale j + 1 must be half of scale j in both spatial sizes, rounded up (half_size: what a stride-2
// convolution, a backbone's included, gives; checked, errc::shape_mismatch). Where a finer size is odd,
// the x2 upsampling of the coarser scale is cropped by its last row or column (CS-Flow's 24/12/6 never
// needs it). Channel counts may differ per scale. The inverse is the exact inverse of forward (the official code's
// reverse pass takes t from the wrong conditioner; that bug is not reproduced). The hard output clamp is
// inactive in practice; inverse() treats it as the identity, backward() passes no gradient where it cut.
//
// Tensors may have any strides (dense NHWC is the fast path). Methods are const and thread-safe given
// one workspace per thread, except backward(), which writes parameter gradients.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "flowad/layers/flow_layer.hpp"
#include "flowad/layers/soft_clamp.hpp"
#include "flowad/parameter.hpp"
#include "flowad/tensor.hpp"
#include "flowad/workspace.hpp"

namespace flowad {
inline namespace v0 {

// The size of the next coarser scale along an axis of n cells: ceil(n/2).
constexpr index_t half_size(index_t n) noexcept {
  return (n + 1) / 2;
}

struct cross_scale_coupling_config {
  std::vector<index_t> channels;  // per scale, finest first; at least 2 each
  index_t hidden = 0;             // width of every hidden activation
  index_t kernel = 3;             // odd, every convolution of the layer
  float negative_slope = 0.1f;    // LeakyReLU
  soft_clamp clamp{clamp_kind::atan, 3.0f};
  float output_limit = 1e6f;  // the hard clamp of the outputs
  std::uint64_t seed = 0;     // weight initialisation
};

class cross_scale_coupling {
 public:
  explicit cross_scale_coupling(const cross_scale_coupling_config& cfg);
  ~cross_scale_coupling();
  cross_scale_coupling(const cross_scale_coupling&) = delete;
  cross_scale_coupling& operator=(const cross_scale_coupling&) = delete;

  const cross_scale_coupling_config& config() const noexcept { return cfg_; }
  std::size_t scales() const noexcept { return cfg_.channels.size(); }

  // dst[j] = y_j for src[j] = x_j; logdet[j·N + n] += log|det J| of scale j of sample n (scales() × N values).
  void forward(span<const const_view> src, span<const view> dst, span<double> logdet, workspace& ws,
               pass_mode mode = pass_mode::inference) const;
  // src[j] = x_j for dst[j] = y_j.
  void inverse(span<const const_view> dst, span<const view> src, workspace& ws) const;
  // Given diff_dst[j] = dL/dy_j and diff_logdet[j·N + n] = dL/d logdet, writes diff_src[j] = dL/dx_j and
  // adds dL/dθ to every parameter's gradient. Requires the last forward() on ws in training mode on src.
  void backward(span<const const_view> src, span<const const_view> dst, span<const const_view> diff_dst,
                span<const double> diff_logdet, span<const view> diff_src, workspace& ws);

  // S1's parameters then S2's: per scale conv_in weight/bias, conv_out weight/bias, then the up
  // convolutions (scales 0..S−2) and the down convolutions (scales 1..S−1), then γ (S values).
  std::vector<parameter*> parameters();
  std::vector<const parameter*> parameters() const;
  // Multiply-accumulates of one forward pass of one sample whose finest scale is h x w.
  double macs_per_sample(index_t h, index_t w) const noexcept;
  void clear_primitive_cache();

  std::uint64_t id() const noexcept { return id_; }

 private:
  struct cross_convolutions;
  struct state;
  void check(span<const const_view> in, const char* in_name, std::size_t outputs, const char* what) const;

  cross_scale_coupling_config cfg_;
  std::vector<index_t> first_widths_, second_widths_;  // C_j/2 and C_j − C_j/2
  std::unique_ptr<cross_convolutions> s1_, s2_;        // s1: y_1 → (s, t) of x_2; s2: x_2 → (s, t) of x_1
  std::uint64_t id_ = detail::next_layer_id();
};

}  // namespace v0
}  // namespace flowad
