// FrEIA's AllInOneBlock, FastFlow's flow step: an affine coupling, then a per-channel global affine,
// then a fixed channel permutation,
//
//   z = P·(Ψ(g) ⊙ coupling(x) + offset),   log|det J| = coupling's + H·W·Σ_c log Ψ(g_c).
//
// The forward pass runs the global affine and the permutation inside the coupling's output pass
// (affine_coupling::forward_mapped): one pass over the output instead of three, and the coupling's
// output is never stored. Backward is one pass too: it recovers the coupling's output from the
// block's and hands the coupling its gradient. The inverse runs the three layers in turn.
// With coupling.condition_channels > 0 the block is conditional (FrEIA's cond, CFlow-AD): the
// forward and inverse passes taking a condition are the ones to use (affine_coupling explains).
#pragma once

#include <cstdint>

#include "flowad/layers/actnorm.hpp"
#include "flowad/layers/affine_coupling.hpp"
#include "flowad/layers/flow_layer.hpp"
#include "flowad/layers/permute.hpp"

namespace flowad {
inline namespace v0 {

struct all_in_one_config {
  affine_coupling_config coupling;  // its channels are the block's
  global_scale_activation scale_activation = global_scale_activation::softplus;
  double initial_scale = 1.0;         // Ψ at initialisation (FrEIA global_affine_init)
  std::uint64_t permutation_seed = 0;  // the permutation drawn as permute(channels, seed)
};

class all_in_one_block final : public flow_layer {
 public:
  explicit all_in_one_block(const all_in_one_config& cfg);
  ~all_in_one_block() override;

  const char* kind() const noexcept override { return "all_in_one_block"; }
  index_t channels() const noexcept override { return coupling_.channels(); }

  affine_coupling& coupling() noexcept { return coupling_; }
  global_affine& affine() noexcept { return affine_; }
  permute& permutation() noexcept { return permute_; }
  const affine_coupling& coupling() const noexcept { return coupling_; }
  const global_affine& affine() const noexcept { return affine_; }
  const permute& permutation() const noexcept { return permute_; }

  void forward(const_view src, view dst, span<double> logdet, workspace& ws,
               pass_mode mode = pass_mode::inference) const override;
  void inverse(const_view dst, view src, workspace& ws) const override;
  void forward(const_view src, const_view condition, view dst, span<double> logdet, workspace& ws,
               pass_mode mode = pass_mode::inference) const;
  void inverse(const_view dst, const_view condition, view src, workspace& ws) const;
  void backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet, view diff_src,
                workspace& ws) override;

  // The coupling's, then global_scale and global_offset.
  std::vector<parameter*> parameters() override;
  double macs_per_sample(index_t h, index_t w) const noexcept override { return coupling_.macs_per_sample(h, w); }
  void clear_primitive_cache() override { coupling_.clear_primitive_cache(); }

 private:
  struct state;
  void check(const_view in, const char* in_name, const_view out, const char* out_name) const;

  affine_coupling coupling_;
  global_affine affine_;
  permute permute_;
};

}  // namespace v0
}  // namespace flowad
