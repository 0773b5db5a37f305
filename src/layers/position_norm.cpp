#include "flowad/layers/position_norm.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/extents.hpp"
#include "flowad/detail/checks.hpp"

namespace flowad {
inline namespace v0 {

namespace {

// Calls f(n, c, h, w, element index i of the H x W x C parameters) over every element of a view.
template <class F>
void for_each_element(const shape4& s, F&& f) {
  for (index_t n = 0; n < s.n; ++n)
    for (index_t h = 0; h < s.h; ++h)
      for (index_t w = 0; w < s.w; ++w)
        for (index_t c = 0; c < s.c; ++c) f(n, c, h, w, (h * s.w + w) * s.c + c);
}

}  // namespace

position_norm::position_norm(index_t channels, index_t height, index_t width, index_t pool_radius, double variance_floor)
    : channels_(channels),
      height_(height),
      width_(width),
      pool_radius_(pool_radius),
      variance_floor_(variance_floor),
      mean_("mean", {detail::positive_extent(height), detail::positive_extent(width), detail::positive_extent(channels)}),
      scale_("scale", {detail::positive_extent(height), detail::positive_extent(width), detail::positive_extent(channels)}) {
  if (channels <= 0 || height <= 0 || width <= 0)
    throw error(errc::invalid_argument, "position_norm needs positive extents, got " + detail::extents_text(channels, height, width));
  if (pool_radius < 0)
    throw error(errc::invalid_argument, "position_norm: pool_radius must be >= 0, got " + std::to_string(pool_radius));
  if (!(variance_floor > 0.0) || !std::isfinite(variance_floor))
    throw error(errc::invalid_argument, "position_norm: variance_floor must be positive and finite, got " +
                                            std::to_string(variance_floor));
  std::fill(scale_.values().begin(), scale_.values().end(), 1.0f);
}

void position_norm::require_usable(const char* what, const const_view& x, const char* name) const {
  if (x.c() != channels_ || x.h() != height_ || x.w() != width_)
    throw error(errc::shape_mismatch, std::string("position_norm ") + what + ": " + name + " has shape " + x.shape().str() +
                                          " but the layer is set for Nx" + detail::extents_text(channels_, height_, width_));
}

void position_norm::initialize(const_view x) {
  detail::require_nonempty(x, "position_norm initialisation batch");
  require_usable("initialize()", x, "the initialisation batch");
  detail::require_finite(x, "position_norm initialisation batch");
  // Per position first (sums over the samples), then over each position's window.
  const std::size_t size = mean_.size();
  std::vector<double> sum(size, 0.0), squares(size, 0.0);
  for_each_element(x.shape(), [&](index_t n, index_t c, index_t h, index_t w, index_t i) {
    const double v = x(n, c, h, w);
    sum[static_cast<std::size_t>(i)] += v;
    squares[static_cast<std::size_t>(i)] += v * v;
  });
  const index_t r = pool_radius_;
  for (index_t h = 0; h < height_; ++h)
    for (index_t w = 0; w < width_; ++w) {
      const index_t h0 = std::max<index_t>(0, h - r), h1 = std::min<index_t>(height_ - 1, h + r);
      const index_t w0 = std::max<index_t>(0, w - r), w1 = std::min<index_t>(width_ - 1, w + r);
      const double count = static_cast<double>(x.n() * (h1 - h0 + 1) * (w1 - w0 + 1));
      for (index_t c = 0; c < channels_; ++c) {
        double s = 0.0, q = 0.0;
        for (index_t hh = h0; hh <= h1; ++hh)
          for (index_t ww = w0; ww <= w1; ++ww) {
            const auto j = static_cast<std::size_t>((hh * width_ + ww) * channels_ + c);
            s += sum[j];
            q += squares[j];
          }
        const double m = s / count, variance = std::max(0.0, q / count - m * m);
        const auto i = static_cast<std::size_t>((h * width_ + w) * channels_ + c);
        mean_.data()[i] = static_cast<float>(m);
        scale_.data()[i] = static_cast<float>(1.0 / std::sqrt(variance + variance_floor_));
      }
    }
  mean_.mark_updated();
  scale_.mark_updated();
  initialized_ = true;
}

double position_norm::log_det() const {
  cached_log_det& cache = *log_det_cache_;
  std::lock_guard<std::mutex> lock(cache.mutex);
  if (cache.mean_stamp == mean_.stamp() && cache.scale_stamp == scale_.stamp()) return cache.value;
  double total = 0.0;
  for (std::size_t i = 0; i < scale_.size(); ++i) {
    const float a = scale_.data()[i];
    if (!(a > 0.0f) || !std::isfinite(a) || !std::isfinite(mean_.data()[i]))
      throw error(errc::non_finite, "position_norm: element " + std::to_string(i) + " has mean " +
                                        std::to_string(mean_.data()[i]) + " and scale " + std::to_string(a) +
                                        " (the scale must be a positive finite float)");
    total += std::log(static_cast<double>(a));
  }
  cache.mean_stamp = mean_.stamp();
  cache.scale_stamp = scale_.stamp();
  cache.value = total;
  return total;
}

void position_norm::forward(const_view src, view dst, span<double> logdet, workspace&, pass_mode mode) const {
  detail::require_layer_pair("position_norm", channels_, src, "src", dst, "dst");
  require_usable("forward()", src, "src");
  detail::require_size(logdet.size(), static_cast<std::size_t>(src.n()), "logdet");
  if (!initialized_)
    throw error(errc::not_fitted, std::string("position_norm: forward() in ") +
                                      (mode == pass_mode::training ? "training" : "inference") +
                                      " mode before initialize() (it is set from a training set, not by a first batch)");
  const double total = log_det();
  const float* m = mean_.data();
  const float* a = scale_.data();
  if (src.is_dense(layout::nhwc) && dst.is_dense(layout::nhwc)) {
    const index_t per_sample = channels_ * height_ * width_;
    for (index_t n = 0; n < src.n(); ++n) {
      const float* x = src.data() + n * per_sample;
      float* y = dst.data() + n * per_sample;
      for (index_t i = 0; i < per_sample; ++i) y[i] = (x[i] - m[i]) * a[i];
    }
  } else {
    for_each_element(src.shape(), [&](index_t n, index_t c, index_t h, index_t w, index_t i) {
      dst(n, c, h, w) = (src(n, c, h, w) - m[i]) * a[i];
    });
  }
  for (double& v : logdet) v += total;
}

void position_norm::inverse(const_view dst, view src, workspace&) const {
  detail::require_layer_pair("position_norm", channels_, dst, "dst", src, "src");
  require_usable("inverse()", dst, "dst");
  if (!initialized_) throw error(errc::not_fitted, "position_norm: inverse() before initialize()");
  log_det();  // checks the parameters
  const float* m = mean_.data();
  const float* a = scale_.data();
  for_each_element(dst.shape(), [&](index_t n, index_t c, index_t h, index_t w, index_t i) {
    src(n, c, h, w) = dst(n, c, h, w) / a[i] + m[i];
  });
}

void position_norm::backward(const_view src, const_view, const_view diff_dst, span<const double> diff_logdet,
                             view diff_src, workspace&) {
  detail::require_layer_pair("position_norm", channels_, diff_dst, "diff_dst", diff_src, "diff_src");
  require_usable("backward()", src, "src");
  detail::require_same_shape(src, "src", diff_dst, "diff_dst");
  detail::require_size(diff_logdet.size(), static_cast<std::size_t>(src.n()), "diff_logdet");
  if (detail::may_overlap(src, diff_src))  // src is read for the gradients as diff_src is written
    throw error(errc::invalid_argument, "position_norm: src and diff_src overlap");
  if (!initialized_) throw error(errc::not_fitted, "position_norm: backward() before initialize()");
  log_det();  // checks the parameters
  const float* m = mean_.data();
  const float* a = scale_.data();
  float* mean_grad = mean_.grad();
  float* scale_grad = scale_.grad();
  for_each_element(src.shape(), [&](index_t n, index_t c, index_t h, index_t w, index_t i) {
    const float g = diff_dst(n, c, h, w);
    diff_src(n, c, h, w) = g * a[i];
    mean_grad[i] -= g * a[i];
    scale_grad[i] += g * (src(n, c, h, w) - m[i]);
  });
  double logdet_weight = 0.0;
  for (double v : diff_logdet) logdet_weight += v;
  for (std::size_t i = 0; i < scale_.size(); ++i) scale_grad[i] += static_cast<float>(logdet_weight / a[i]);
}

}  // namespace v0
}  // namespace flowad
