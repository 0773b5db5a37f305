// A fixed channel permutation: dst(:, c) = src(:, perm[c]). log|det J| = 0.
#pragma once

#include <cstdint>
#include <vector>

#include "flowad/layers/flow_layer.hpp"

namespace flowad {
inline namespace v0 {

class permute final : public flow_layer {
 public:
  // The permutation drawn from `seed` (flowad's own generator, identical on every platform).
  permute(index_t channels, std::uint64_t seed);
  // An explicit permutation; throws unless it is a permutation of 0..C-1.
  explicit permute(std::vector<index_t> perm);

  const char* kind() const noexcept override { return "permute"; }
  index_t channels() const noexcept override { return static_cast<index_t>(perm_.size()); }
  const std::vector<index_t>& permutation() const noexcept { return perm_; }
  // inverse_permutation()[permutation()[c]] == c.
  const std::vector<index_t>& inverse_permutation() const noexcept { return inverse_perm_; }

  void forward(const_view src, view dst, span<double> logdet, workspace& ws,
               pass_mode mode = pass_mode::inference) const override;
  void inverse(const_view dst, view src, workspace& ws) const override;
  void backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet, view diff_src,
                workspace& ws) override;

 private:
  void check(const_view in, const char* in_name, const_view out, const char* out_name) const;
  std::vector<index_t> perm_;
  std::vector<index_t> inverse_perm_;
};

}  // namespace v0
}  // namespace flowad
