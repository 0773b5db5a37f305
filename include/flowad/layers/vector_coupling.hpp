// Two-step Glow coupling on feature vectors with fully connected subnets (DifferNet's
// glow_coupling_layer, marco-rudolph/differnet@9bdf026 freia_funcs.py; ALGORITHMS.md §5.3):
//
//   x = [x1 | x2]                                   x1: the first d1 = C/2 values, x2: the other d2
//   (s2, t2) = S2(x2);  y1 = exp(φ(s2)) ⊙ x1 + t2   S2: d2 → 2·d1
//   (s1, t1) = S1(y1);  y2 = exp(φ(s1)) ⊙ x2 + t1   S1: d1 → 2·d2   (S2 before S1, as the reference)
//   out = clamp(cat(y1, y2), ±output_clamp);   log|det J| = Σ φ(s1) + Σ φ(s2)
//
// Each subnet is an MLP Linear(in, hidden) → ReLU → (Linear(hidden, hidden) → ReLU) × (hidden_layers − 1)
// → Linear(hidden, out), initialised as PyTorch's nn.Linear (U(±1/sqrt(fan_in)) for weights and
// biases; no zero-init, so the layer is not the identity at start). Matrix products run on oneDNN's
// matmul (detail::matmul); biases, ReLU and the coupling's elementwise math are plain loops.
//
// Every pixel of an N x C x H x W input is one vector (DifferNet's inputs are N x C x 1 x 1); log|det J|
// of a sample sums over its pixels. The output clamp (±1e6 in the reference) is the identity on any
// input the flow meets in practice: forward and backward apply it exactly (zero gradient where it
// clips), inverse() does not undo it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "flowad/detail/backend.hpp"
#include "flowad/layers/flow_layer.hpp"
#include "flowad/layers/soft_clamp.hpp"

namespace flowad {
inline namespace v0 {

struct vector_coupling_config {
  index_t channels = 0;      // C >= 2
  index_t hidden = 2048;     // width of the subnets' hidden layers
  index_t hidden_layers = 3; // ReLU layers per subnet (DifferNet: 3, i.e. four Linear layers)
  soft_clamp clamp{clamp_kind::atan, 3.0f};
  float output_clamp = 1e6f;  // |out| is clipped to this (> 0)
  std::uint64_t seed = 0;     // subnet initialisation
};

class vector_coupling final : public flow_layer {
 public:
  explicit vector_coupling(const vector_coupling_config& cfg);
  ~vector_coupling() override;

  const char* kind() const noexcept override { return "vector_coupling"; }
  index_t channels() const noexcept override { return cfg_.channels; }
  const vector_coupling_config& config() const noexcept { return cfg_; }

  void forward(const_view src, view dst, span<double> logdet, workspace& ws,
               pass_mode mode = pass_mode::inference) const override;
  void inverse(const_view dst, view src, workspace& ws) const override;
  void backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet, view diff_src,
                workspace& ws) override;

  // S2's Linear layers (weight [out, in] as nn.Linear, bias [out]) in order, then S1's:
  // "s2.fc0.weight", "s2.fc0.bias", ..., "s1.fc<hidden_layers>.bias".
  std::vector<parameter*> parameters() override;
  // Multiply-accumulates of the subnets' Linear layers on h·w vectors.
  double macs_per_sample(index_t h, index_t w) const noexcept override;
  void clear_primitive_cache() override;

  // Stored values of a coupling of this configuration (what a model file must hold).
  static double parameter_count(const vector_coupling_config& cfg) noexcept;

 private:
  struct subnet;
  struct state;
  void check(const_view in, const char* in_name, const_view out, const char* out_name) const;

  vector_coupling_config cfg_;
  index_t first_ = 0, second_ = 0;  // d1 = C/2, d2 = C − C/2
  std::unique_ptr<subnet> s2_, s1_;
};

}  // namespace v0
}  // namespace flowad
