// Affine coupling with a convolutional subnet and a soft-clamped log-scale, generalised to g channel
// groups coupled hierarchically (MS-Flow, ALGORITHMS.md §6.3):
//
//   x = [x_1 | x_2 | ... | x_g]          groups of channel_split::equal_sizes (first ones larger)
//   y_1 = x_1
//   y_i = x_i ⊙ exp(φ(s_i)) + t_i,       (s_i, t_i) = γ_i · F_i(y_{i-1}),   i = 2..g
//   log|det J| = Σ_i Σ_{c,h,w} φ(s_i)
//
// F_i is conv k×k (w_{i-1} → hidden) → ReLU or LeakyReLU → conv k×k (hidden → 2·w_i), zero padding,
// producing s_i in its first w_i channels and t_i in the last w_i. With groups = 2 this is the
// classic RealNVP/Glow coupling (passive first half C − C/2, active second half C/2).
// γ_i is CS-Flow's output gain: learned and zero-initialised by default (every block starts as the
// identity), or a fixed constant (1 for no gain; 0.1 reproduces FrEIA AllInOneBlock's subnet scaling).
//
// Conditional coupling (CFlow-AD, FrEIA's `cond`): with condition_channels = P > 0 (two groups only),
// F reads [x_1 | c], an external N x P x H x W condition concatenated to the passive half, and every
// pass takes c. The condition gets no gradient (it is data, not a parameter or an input of the flow).
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "flowad/detail/backend.hpp"
#include "flowad/layers/flow_layer.hpp"
#include "flowad/layers/soft_clamp.hpp"

namespace flowad {
inline namespace v0 {

enum class subnet_activation { relu, leaky_relu };
inline std::vector<std::pair<subnet_activation, const char*>> subnet_activation_names() {
  return {{subnet_activation::relu, "relu"}, {subnet_activation::leaky_relu, "leaky_relu"}};
}

struct affine_coupling_config {
  index_t channels = 0;
  index_t groups = 2;   // g >= 2
  index_t hidden = 0;   // subnet hidden width
  index_t kernel = 3;   // subnet kernel size, odd
  subnet_activation activation = subnet_activation::leaky_relu;
  float negative_slope = 0.1f;  // of LeakyReLU
  soft_clamp clamp{clamp_kind::atan, 3.0f};
  bool learn_gain = true;  // γ learned (CS-Flow use_gamma) or fixed at gain_init
  float gain_init = 0.0f;
  std::uint64_t seed = 0;  // subnet initialisation (PyTorch's default: U(±1/sqrt(fan_in)))
  index_t condition_channels = 0;  // P: channels of the condition read by the subnet (groups == 2)
};

class affine_coupling final : public flow_layer {
 public:
  explicit affine_coupling(const affine_coupling_config& cfg);
  ~affine_coupling() override;

  const char* kind() const noexcept override { return "affine_coupling"; }
  index_t channels() const noexcept override { return cfg_.channels; }
  const affine_coupling_config& config() const noexcept { return cfg_; }
  const std::vector<index_t>& groups() const noexcept { return group_sizes_; }

  void forward(const_view src, view dst, span<double> logdet, workspace& ws,
               pass_mode mode = pass_mode::inference) const override;
  void inverse(const_view dst, view src, workspace& ws) const override;
  // The conditional passes (condition_channels > 0): condition is N x P x H x W with src's N, H, W.
  // backward() is unchanged: it uses the condition the training-mode forward() saw.
  void forward(const_view src, const_view condition, view dst, span<double> logdet, workspace& ws,
               pass_mode mode = pass_mode::inference) const;
  void inverse(const_view dst, const_view condition, view src, workspace& ws) const;
  void backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet, view diff_src,
                workspace& ws) override;

  // A per-channel affine map and channel permutation applied to the coupling's output:
  // dst(:, c) = y(:, source[c])·scale[c] + shift[c]. The arrays hold channels() values and must outlive the call.
  struct output_map {
    const index_t* source = nullptr;
    const float* scale = nullptr;
    const float* shift = nullptr;
  };
  // dst = map(f(src)) in the coupling's output pass, without writing f(src) (what FrEIA's
  // AllInOneBlock does after its coupling; all_in_one_block uses it). logdet gets the coupling's
  // term only: the map's is the caller's. backward() after a training-mode call takes the gradient
  // with respect to f(src), and reads neither dst nor f(src).
  // condition: as for forward(); empty for an unconditional coupling.
  void forward_mapped(const_view src, const_view condition, view dst, span<double> logdet, workspace& ws,
                      const output_map& map, pass_mode mode = pass_mode::inference) const;

  // Per conditioner i = 2..g: conv1 weight/bias, conv2 weight/bias; then γ (g−1 values) if learned.
  std::vector<parameter*> parameters() override;
  double macs_per_sample(index_t h, index_t w) const noexcept override;
  void clear_primitive_cache() override;

  // The oneDNN implementations used for each convolution at this shape (for benchmarks and docs).
  std::string implementation(index_t n, index_t h, index_t w) const;

 private:
  struct conditioner;
  struct state;
  void check(const_view in, const char* in_name, const_view out, const char* out_name) const;
  void check_condition(const_view condition, const shape4& s) const;
  void run_forward(const_view src, const_view condition, view dst, span<double> logdet, workspace& ws, pass_mode mode,
                   const output_map* map) const;
  void run_inverse(const_view dst, const_view condition, view src, workspace& ws) const;
  float gain(std::size_t i) const noexcept;

  affine_coupling_config cfg_;
  std::vector<index_t> group_sizes_;
  std::vector<index_t> group_offsets_;
  std::vector<std::unique_ptr<conditioner>> conditioners_;  // [k] transforms group k+1 from y_k (0-based)
  parameter gain_;
};

}  // namespace v0
}  // namespace flowad
