#include "flowad/layers/all_in_one_block.hpp"

#include "flowad/detail/checks.hpp"
#include "kernels/channel_ops.hpp"

namespace flowad {
inline namespace v0 {

namespace {
// Scratch slots: the inverse's tensors between the three layers; backward's dense copies of strided
// arguments (a, b) and the gradient at the coupling's output (c).
constexpr std::size_t between_a = workspace::composite_slots, between_b = workspace::composite_slots + 1,
                      between_c = workspace::composite_slots + 2;
}  // namespace

// The global affine and the permutation as one map of the coupling's output, out(:, k) =
// coupled(:, perm[k])·scale[k] + shift[k], and what its backward pass needs. A block keeps no tensor of
// its own: backward recovers the coupling's output from the block's.
struct all_in_one_block::state : layer_state {
  std::vector<float> psi, offset, mapped_scale, mapped_shift;
  std::vector<double> partials, sum_diff, sum_centered, affine_sum, affine_dot;
  double log_det_per_pixel = 0.0;
  shape4 trained_shape{};
  bool has_training = false;

  void map_coefficients(const global_affine& affine, const std::vector<index_t>& perm) {
    const std::size_t C = perm.size();
    psi.resize(C);
    offset.resize(C);
    mapped_scale.resize(C);
    mapped_shift.resize(C);
    log_det_per_pixel = affine.coefficients(psi.data(), offset.data());
    for (std::size_t k = 0; k < C; ++k) {
      const auto from = static_cast<std::size_t>(perm[k]);
      mapped_scale[k] = psi[from];
      mapped_shift[k] = offset[from];
    }
  }
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

// Training and inference alike run the global affine and the permutation in the coupling's output pass.
void all_in_one_block::forward(const_view src, view dst, span<double> logdet, workspace& ws, pass_mode mode) const {
  forward(src, {}, dst, logdet, ws, mode);
}

void all_in_one_block::forward(const_view src, const_view condition, view dst, span<double> logdet, workspace& ws,
                               pass_mode mode) const {
  check(src, "src", dst, "dst");
  detail::require_size(logdet.size(), static_cast<std::size_t>(src.n()), "logdet");
  state& st = ws.state<state>(id());
  const shape4 s = src.shape();
  const bool training = mode == pass_mode::training;
  if (training) st.has_training = false;
  const std::vector<index_t>& perm = permute_.permutation();
  st.map_coefficients(affine_, perm);
  coupling_.forward_mapped(src, condition, dst, logdet, ws, {perm.data(), st.mapped_scale.data(), st.mapped_shift.data()}, mode);
  const double pixels = static_cast<double>(s.h) * static_cast<double>(s.w);
  for (double& v : logdet) v += pixels * st.log_det_per_pixel;
  if (training) {
    st.trained_shape = s;
    st.has_training = true;
  }
}

void all_in_one_block::inverse(const_view dst, view src, workspace& ws) const { inverse(dst, {}, src, ws); }

void all_in_one_block::inverse(const_view dst, const_view condition, view src, workspace& ws) const {
  check(dst, "dst", src, "src");
  tensor& scaled = ws.scratch(between_a);
  tensor& coupled = ws.scratch(between_b);
  scaled.resize(dst.shape(), layout::nhwc);
  coupled.resize(dst.shape(), layout::nhwc);
  permute_.inverse(dst, scaled.view(), ws);
  affine_.inverse(scaled.view(), coupled.view(), ws);
  coupling_.inverse(coupled.view(), condition, src, ws);
}

void all_in_one_block::backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet,
                                view diff_src, workspace& ws) {
  state& st = ws.state<state>(id());
  detail::require_backward("all_in_one_block", channels(), src, dst, diff_dst, diff_src, diff_logdet.size(),
                           st.has_training, st.trained_shape);
  const shape4 s = src.shape();
  const index_t C = s.c, pixels = s.pixels();
  const auto channel_count = static_cast<std::size_t>(C);
  const std::vector<index_t>& perm = permute_.permutation();
  st.map_coefficients(affine_, perm);
  st.partials.resize(kernels::gather_affine_partials(pixels, C));
  st.sum_diff.assign(channel_count, 0.0);
  st.sum_centered.assign(channel_count, 0.0);

  // One pass over the block's output and its gradient gives the gradient at the coupling's output,
  // dL/dcoupled(:, perm[k]) = dL/dout(:, k)·Ψ[perm[k]], and the sums the global affine's gradients
  // need, with coupled(:, perm[k]) = (out(:, k) − offset[perm[k]]) / Ψ[perm[k]] recovered from out.
  const float* out = kernels::dense_nhwc(dst, ws.scratch(between_a));
  const float* diff_out = kernels::dense_nhwc(diff_dst, ws.scratch(between_b));
  tensor& diff_coupled = ws.scratch(between_c);
  diff_coupled.resize(s, layout::nhwc);
  // (scale[inverse[c]] = Ψ[c]: the inverse scale is Ψ in the coupling's channel order.)
  kernels::gather_affine_backward(out, diff_out, diff_coupled.data(), pixels, C,
                                  permute_.inverse_permutation().data(), st.psi.data(),
                                  st.mapped_shift.data(), st.partials.data(), st.sum_diff.data(),
                                  st.sum_centered.data());
  st.affine_sum.resize(channel_count);
  st.affine_dot.resize(channel_count);
  for (std::size_t k = 0; k < channel_count; ++k) {
    const auto c = static_cast<std::size_t>(perm[k]);
    st.affine_sum[c] = st.sum_diff[k];
    st.affine_dot[c] = st.sum_centered[k] / static_cast<double>(st.mapped_scale[k]);
  }
  affine_.accumulate_gradients(st.affine_sum.data(), st.affine_dot.data(), diff_logdet,
                               static_cast<double>(s.h) * static_cast<double>(s.w));
  // The coupling reads only the shape of its dst argument here (forward_mapped).
  coupling_.backward(src, dst, diff_coupled.view(), diff_logdet, diff_src, ws);
}

}  // namespace v0
}  // namespace flowad
