#include "flowad/nn/layer_norm.hpp"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>

#include "core/extents.hpp"
#include "flowad/detail/checks.hpp"
#include "kernels/channel_ops.hpp"
#include "kernels/layer_norm_kernels.hpp"

namespace flowad {
inline namespace v0 {

// What a layer keeps per workspace: the statistics of the last forward, and for NHWC samples the
// parameters in the samples' H x W x C order (refreshed when a parameter's stamp changes) and the
// gradient sums in that order before they are added to the parameters'.
struct layer_norm::state : layer_state {
  aligned_vector<double> mean, rstd, sum_g, sum_gx, partials;
  shape4 trained_shape{};
  bool has_training = false;
  aligned_vector<float> weight_hwc, bias_hwc, grad_weight_hwc, grad_bias_hwc;
  std::uint64_t weight_stamp = 0, bias_stamp = 0;
};

namespace {

// Workspace scratch slots for operands that are neither dense NCHW nor dense NHWC.
struct norm_slot {
  enum : std::size_t { src_copy, dst_copy, diff_dst_copy, diff_src_copy };
};

// A C x H x W parameter in the H x W x C order of an NHWC sample, rebuilt only after mark_updated().
const float* in_hwc_order(const parameter& p, index_t channels, aligned_vector<float>& copy, std::uint64_t& stamp) {
  if (stamp != p.stamp() || copy.size() != p.size()) {
    copy.resize(p.size());
    kernels::transpose_matrix(p.data(), channels, static_cast<index_t>(p.size()) / channels, copy.data(), false);
    stamp = p.stamp();
  }
  return copy.data();
}

bool all_dense(layout l, std::initializer_list<const_view> views) {
  return std::all_of(views.begin(), views.end(), [l](const const_view& v) { return v.empty() || v.is_dense(l); });
}

// An output in dense NHWC: v itself when it is, else `buffer` sized to v's shape (copied to v afterwards).
float* nhwc_output(view v, tensor& buffer) {
  if (v.is_dense(layout::nhwc)) return v.data();
  buffer.resize(v.shape(), layout::nhwc);
  return buffer.data();
}

}  // namespace

layer_norm::layer_norm(index_t channels, index_t height, index_t width, double epsilon)
    : channels_(channels),
      height_(height),
      width_(width),
      epsilon_(epsilon),
      weight_("weight", {detail::positive_extent(channels), detail::positive_extent(height), detail::positive_extent(width)}),
      bias_("bias", {detail::positive_extent(channels), detail::positive_extent(height), detail::positive_extent(width)}) {
  if (channels <= 0 || height <= 0 || width <= 0)
    throw error(errc::invalid_argument, "layer_norm needs positive extents, got " + detail::extents_text(channels, height, width));
  if (!(epsilon > 0.0) || !std::isfinite(epsilon))
    throw error(errc::invalid_argument,
                "layer_norm: epsilon must be positive and finite, got " + std::to_string(epsilon));
  std::fill(weight_.values().begin(), weight_.values().end(), 1.0f);
  weight_.mark_updated();
}

void layer_norm::check_input(const const_view& x, const char* name) const {
  detail::require_nonempty(x, name);
  if (x.c() != channels_ || x.h() != height_ || x.w() != width_)
    throw error(errc::shape_mismatch, std::string("layer_norm: ") + name + " has shape " + x.shape().str() +
                                          " but the layer normalises samples of " +
                                          detail::extents_text(channels_, height_, width_));
}

void layer_norm::forward(const_view src, view dst, workspace& ws, pass_mode mode) const {
  check_input(src, "src");
  detail::require_same_shape(src, "src", dst, "dst");
  if (detail::may_overlap(src, dst)) throw error(errc::invalid_argument, "layer_norm: src and dst overlap");
  state& st = ws.state<state>(id());
  const shape4 s = src.shape();
  const index_t size = channels_ * height_ * width_;
  st.mean.resize(static_cast<std::size_t>(s.n));
  st.rstd.resize(static_cast<std::size_t>(s.n));
  st.has_training = false;  // the statistics below replace those of any earlier training forward
  if (all_dense(layout::nchw, {src, dst})) {
    kernels::layer_norm_moments(src.data(), s.n, size, epsilon_, st.mean.data(), st.rstd.data(), st.partials);
    kernels::layer_norm_forward(src.data(), dst.data(), s.n, size, st.mean.data(), st.rstd.data(), weight_.data(),
                                bias_.data());
  } else {
    const float* x = kernels::dense_nhwc(src, ws.scratch(norm_slot::src_copy));
    tensor& y_buffer = ws.scratch(norm_slot::dst_copy);
    float* y = nhwc_output(dst, y_buffer);
    kernels::layer_norm_moments(x, s.n, size, epsilon_, st.mean.data(), st.rstd.data(), st.partials);
    kernels::layer_norm_forward(x, y, s.n, size, st.mean.data(), st.rstd.data(),
                                in_hwc_order(weight_, channels_, st.weight_hwc, st.weight_stamp),
                                in_hwc_order(bias_, channels_, st.bias_hwc, st.bias_stamp));
    if (y != dst.data()) copy(y_buffer.view(), dst);
  }
  if (mode == pass_mode::training) {
    st.trained_shape = s;
    st.has_training = true;
  }
}

void layer_norm::backward(const_view src, const_view diff_dst, view diff_src, workspace& ws) {
  check_input(src, "src");
  detail::require_same_shape(src, "src", diff_dst, "diff_dst");
  const bool with_data = !diff_src.empty();
  if (with_data) {
    detail::require_same_shape(src, "src", diff_src, "diff_src");
    if (detail::may_overlap(src, diff_src) || detail::may_overlap(diff_dst, diff_src))
      throw error(errc::invalid_argument, "layer_norm: diff_src overlaps src or diff_dst");
  }
  state& st = ws.state<state>(id());
  const shape4 s = src.shape();
  if (!st.has_training || st.trained_shape != s)
    throw error(errc::invalid_argument, "layer_norm::backward needs a training-mode forward on this workspace with "
                                        "the same shape first (src " + s.str() + ")");
  const index_t size = channels_ * height_ * width_;
  st.sum_g.resize(static_cast<std::size_t>(s.n));
  st.sum_gx.resize(static_cast<std::size_t>(s.n));
  double* sum_g = with_data ? st.sum_g.data() : nullptr;
  double* sum_gx = with_data ? st.sum_gx.data() : nullptr;
  const double* mean = st.mean.data();
  const double* rstd = st.rstd.data();

  if (all_dense(layout::nchw, {src, diff_dst, diff_src})) {
    // Samples in the parameters' own order: the sums go straight into the gradients.
    kernels::layer_norm_backward_weights(src.data(), diff_dst.data(), s.n, size, mean, rstd, weight_.data(),
                                         weight_.grad(), bias_.grad(), true, sum_g, sum_gx, st.partials);
    if (with_data)
      kernels::layer_norm_backward_data(src.data(), diff_dst.data(), diff_src.data(), s.n, size, mean, rstd,
                                        weight_.data(), sum_g, sum_gx);
    return;
  }
  const float* x = kernels::dense_nhwc(src, ws.scratch(norm_slot::src_copy));
  const float* dy = kernels::dense_nhwc(diff_dst, ws.scratch(norm_slot::diff_dst_copy));
  const float* weight = with_data ? in_hwc_order(weight_, channels_, st.weight_hwc, st.weight_stamp) : nullptr;
  st.grad_weight_hwc.resize(static_cast<std::size_t>(size));
  st.grad_bias_hwc.resize(static_cast<std::size_t>(size));
  kernels::layer_norm_backward_weights(x, dy, s.n, size, mean, rstd, weight, st.grad_weight_hwc.data(),
                                       st.grad_bias_hwc.data(), false, sum_g, sum_gx, st.partials);
  const index_t pixels = height_ * width_;
  kernels::transpose_matrix(st.grad_weight_hwc.data(), pixels, channels_, weight_.grad(), true);
  kernels::transpose_matrix(st.grad_bias_hwc.data(), pixels, channels_, bias_.grad(), true);
  if (with_data) {
    tensor& dx_buffer = ws.scratch(norm_slot::diff_src_copy);
    float* dx = nhwc_output(diff_src, dx_buffer);
    kernels::layer_norm_backward_data(x, dy, dx, s.n, size, mean, rstd, weight, sum_g, sum_gx);
    if (dx != diff_src.data()) copy(dx_buffer.view(), diff_src);
  }
}

}  // namespace v0
}  // namespace flowad
