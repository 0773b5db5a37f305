#include "flowad/layers/all_in_one_block.hpp"

#include "flowad/detail/checks.hpp"

namespace flowad {
inline namespace v0 {

namespace {
// Scratch slots for the tensors between the three layers (values, or gradients in backward).
constexpr std::size_t between_a = workspace::composite_slots, between_b = workspace::composite_slots + 1;
}  // namespace

// Per block: the coupling's output, which backward needs; everything else is scratch shared by all
// blocks (a flow of many blocks keeps one tensor per block, not three).
struct all_in_one_block::state : layer_state {
  tensor coupled;  // training: the coupling's output
  std::vector<float> psi, offset, mapped_scale, mapped_shift;
  shape4 trained_shape{};
  bool has_training = false;
};

all_in_one_block::all_in_one_block(const all_in_one_config& cfg)
    : coupling_(cfg.coupling),
      affine_(cfg.coupling.channels, cfg.scale_activation, cfg.initial_scale),
      permute_(cfg.coupling.channels, cfg.permutation_seed) {}

all_in_one_block::~all_in_one_block() = default;

std::vector<parameter*> all_in_one_block::parameters() {
  std::vector<parameter*> ps = coupling_.parameters();
  for (parameter* p : affine_.parameters()) ps.push_back(p);
  return ps;
}

void all_in_one_block::check(const_view in, const char* in_name, const_view out, const char* out_name) const {
  detail::require_layer_pair("all_in_one_block", channels(), in, in_name, out, out_name);
}

void all_in_one_block::forward(const_view src, view dst, span<double> logdet, workspace& ws, pass_mode mode) const {
  check(src, "src", dst, "dst");
  detail::require_size(logdet.size(), static_cast<std::size_t>(src.n()), "logdet");
  state& st = ws.state<state>(id());
  const shape4 s = src.shape();
  if (mode == pass_mode::training) {
    st.has_training = false;
    st.coupled.resize(s, layout::nhwc);
    tensor& scaled = ws.scratch(between_a);
    scaled.resize(s, layout::nhwc);
    coupling_.forward(src, st.coupled.view(), logdet, ws, mode);
    affine_.forward(st.coupled.view(), scaled.view(), logdet, ws, mode);
    permute_.forward(scaled.view(), dst, logdet, ws, mode);
    st.trained_shape = s;
    st.has_training = true;
    return;
  }
  // dst(:, c) = coupled(:, perm[c])·Ψ[perm[c]] + offset[perm[c]], in the coupling's output pass.
  const std::size_t C = static_cast<std::size_t>(channels());
  st.psi.resize(C);
  st.offset.resize(C);
  st.mapped_scale.resize(C);
  st.mapped_shift.resize(C);
  const double log_det_per_pixel = affine_.coefficients(st.psi.data(), st.offset.data());
  const std::vector<index_t>& perm = permute_.permutation();
  for (std::size_t c = 0; c < C; ++c) {
    const auto from = static_cast<std::size_t>(perm[c]);
    st.mapped_scale[c] = st.psi[from];
    st.mapped_shift[c] = st.offset[from];
  }
  coupling_.forward_mapped(src, dst, logdet, ws, {perm.data(), st.mapped_scale.data(), st.mapped_shift.data()});
  const double pixels = static_cast<double>(s.h) * static_cast<double>(s.w);
  for (double& v : logdet) v += pixels * log_det_per_pixel;
}

void all_in_one_block::inverse(const_view dst, view src, workspace& ws) const {
  check(dst, "dst", src, "src");
  tensor& scaled = ws.scratch(between_a);
  tensor& coupled = ws.scratch(between_b);
  scaled.resize(dst.shape(), layout::nhwc);
  coupled.resize(dst.shape(), layout::nhwc);
  permute_.inverse(dst, scaled.view(), ws);
  affine_.inverse(scaled.view(), coupled.view(), ws);
  coupling_.inverse(coupled.view(), src, ws);
}

void all_in_one_block::backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet,
                                view diff_src, workspace& ws) {
  state& st = ws.state<state>(id());
  detail::require_backward("all_in_one_block", channels(), src, dst, diff_dst, diff_src, diff_logdet.size(), st.has_training,
                           st.trained_shape);
  // The permutation's and the global affine's backward read neither their outputs nor (the permutation)
  // their inputs, so only the coupling's output was kept.
  tensor& diff_scaled = ws.scratch(between_a);
  tensor& diff_coupled = ws.scratch(between_b);
  diff_scaled.resize(src.shape(), layout::nhwc);
  diff_coupled.resize(src.shape(), layout::nhwc);
  permute_.backward(st.coupled.view(), dst, diff_dst, diff_logdet, diff_scaled.view(), ws);
  affine_.backward(st.coupled.view(), st.coupled.view(), diff_scaled.view(), diff_logdet, diff_coupled.view(), ws);
  coupling_.backward(src, st.coupled.view(), diff_coupled.view(), diff_logdet, diff_src, ws);
}

}  // namespace v0
}  // namespace flowad
