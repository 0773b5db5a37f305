#include "flowad/layers/permute.hpp"

#include "flowad/detail/checks.hpp"
#include "flowad/detail/random.hpp"
#include "kernels/channel_ops.hpp"

namespace flowad {
inline namespace v0 {

namespace {
std::vector<index_t> invert(const std::vector<index_t>& perm) {
  std::vector<index_t> inv(perm.size(), -1);
  for (std::size_t c = 0; c < perm.size(); ++c) {
    const index_t p = perm[c];
    if (p < 0 || p >= static_cast<index_t>(perm.size()) || inv[static_cast<std::size_t>(p)] != -1)
      throw error(errc::invalid_argument, "not a permutation of 0.." + std::to_string(perm.size() - 1) +
                                              ": entry " + std::to_string(c) + " is " + std::to_string(p));
    inv[static_cast<std::size_t>(p)] = static_cast<index_t>(c);
  }
  return inv;
}
}  // namespace

permute::permute(index_t channels, std::uint64_t seed) {
  if (channels <= 0) throw error(errc::invalid_argument, "permute needs a positive channel count, got " + std::to_string(channels));
  perm_ = detail::random_permutation<index_t>(static_cast<std::size_t>(channels), seed);
  inverse_perm_ = invert(perm_);
}

permute::permute(std::vector<index_t> perm) : perm_(std::move(perm)) {
  if (perm_.empty()) throw error(errc::invalid_argument, "permute needs a non-empty permutation");
  inverse_perm_ = invert(perm_);
}

void permute::check(const_view in, const char* in_name, const_view out, const char* out_name) const {
  detail::require_layer_pair("permute", channels(), in, in_name, out, out_name);
}

void permute::forward(const_view src, view dst, span<double> logdet, workspace&, pass_mode) const {
  check(src, "src", dst, "dst");
  detail::require_size(logdet.size(), static_cast<std::size_t>(src.n()), "logdet");
  kernels::gather_channels(src, dst, perm_.data());
}

void permute::inverse(const_view dst, view src, workspace&) const {
  check(dst, "dst", src, "src");
  kernels::gather_channels(dst, src, inverse_perm_.data());
}

void permute::backward(const_view, const_view, const_view diff_dst, span<const double>, view diff_src, workspace&) {
  check(diff_dst, "diff_dst", diff_src, "diff_src");
  // The Jacobian is a permutation matrix P; its transpose is the inverse permutation.
  kernels::gather_channels(diff_dst, diff_src, inverse_perm_.data());
}

}  // namespace v0
}  // namespace flowad
