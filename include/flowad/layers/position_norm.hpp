// Per-position standardisation: a fixed elementwise affine flow layer on C x H x W feature maps,
//
//   y(n, c, h, w) = (x(n, c, h, w) − mean(c, h, w))·scale(c, h, w),   log|det J| per sample = Σ log scale,
//
// set from a training set so that a flow behind it sees every position's features relative to what is
// normal at that place (MS-Flow's flows are otherwise position-free: the same density at every position).
// Each position's mean and variance pool the training samples at the positions within pool_radius
// cells of it (a (2r+1)² window clipped to the map), so that the small shifts of the parts between
// images count as normal there; scale = 1/sqrt(variance + variance_floor). docs/lab/msflow-bottle.md items 27-36
// measured why both matter on MVTec bottle.
//
// The parameters "mean" and "scale" are stored as H x W x C (the order of an NHWC sample). The layer is
// meant to be set once, like msflow's input actnorm, and not trained; backward() still adds their
// gradients, as every flow_layer does.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "flowad/layers/flow_layer.hpp"

namespace flowad {
inline namespace v0 {

class position_norm final : public flow_layer {
 public:
  // mean 0, scale 1, not initialised. Throws unless the extents are positive, pool_radius >= 0 and
  // variance_floor > 0 and finite.
  position_norm(index_t channels, index_t height, index_t width, index_t pool_radius = 1, double variance_floor = 0.01);

  const char* kind() const noexcept override { return "position_norm"; }
  index_t channels() const noexcept override { return channels_; }
  index_t height() const noexcept { return height_; }
  index_t width() const noexcept { return width_; }
  index_t pool_radius() const noexcept { return pool_radius_; }
  double variance_floor() const noexcept { return variance_floor_; }

  parameter& mean() noexcept { return mean_; }
  parameter& scale() noexcept { return scale_; }
  const parameter& mean() const noexcept { return mean_; }
  const parameter& scale() const noexcept { return scale_; }

  // Sets mean and scale from x (N x C x H x W, any strides), statistics in double. Throws
  // errc::shape_mismatch for another C, H or W, errc::empty_input for no samples and errc::non_finite
  // if x holds NaN/Inf (the parameters are then left unchanged).
  void initialize(const_view x);
  bool initialized() const noexcept { return initialized_; }
  // Declares the current parameters final (a loaded model, parameters set by hand).
  void mark_initialized() noexcept { initialized_ = true; }

  // Throws errc::not_fitted before initialisation, errc::shape_mismatch for maps of another size and
  // errc::non_finite if a scale is not a positive finite float.
  void forward(const_view src, view dst, span<double> logdet, workspace& ws,
               pass_mode mode = pass_mode::inference) const override;
  void inverse(const_view dst, view src, workspace& ws) const override;
  // diff_src = diff_dst·scale; dL/dmean = −Σ_n diff_dst·scale, dL/dscale = Σ_n diff_dst·(x − mean) +
  // Σ_n diff_logdet / scale.
  void backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet, view diff_src,
                workspace& ws) override;

  std::vector<parameter*> parameters() override { return {&mean_, &scale_}; }

 private:
  void require_usable(const char* what, const const_view& x, const char* name) const;
  // Σ log scale over every element, with the parameters checked; kept until their stamps change, since
  // on ResNet18's layer2 it is 131 072 logarithms per call (MS-Flow at batch 1 in bench_pipeline:
  // 20.7-22.8 ms recomputing it, 19.3-20.0 ms with it kept).
  double log_det() const;
  struct cached_log_det {
    std::mutex mutex;
    std::uint64_t mean_stamp = 0, scale_stamp = 0;  // stamps are never 0
    double value = 0.0;
  };
  index_t channels_, height_, width_, pool_radius_;
  double variance_floor_;
  parameter mean_;
  parameter scale_;
  bool initialized_ = false;
  std::unique_ptr<cached_log_det> log_det_cache_ = std::make_unique<cached_log_det>();
};

}  // namespace v0
}  // namespace flowad
