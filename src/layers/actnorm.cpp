#include "flowad/layers/actnorm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "flowad/detail/checks.hpp"
#include "kernels/channel_affine.hpp"

namespace flowad {
inline namespace v0 {

namespace {

// The per-channel coefficients y = scale·x + shift of one call and the backward sums, kept per
// workspace so that calls do not allocate.
struct affine_state : layer_state {
  aligned_vector<float> scale, shift;
  aligned_vector<double> sum, dot;
  aligned_vector<double> partials;  // the backward reduction's scratch
  void reserve(index_t channels) {
    const auto c = static_cast<std::size_t>(channels);
    scale.resize(c);
    shift.resize(c);
    sum.resize(c);
    dot.resize(c);
  }
  void zero_sums() {
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(dot.begin(), dot.end(), 0.0);
  }
};

using detail::require_layer_pair;

void check_backward(const char* kind, index_t channels, const_view src, const_view diff_dst, view diff_src,
                    span<const double> diff_logdet) {
  require_layer_pair(kind, channels, diff_dst, "diff_dst", diff_src, "diff_src");
  detail::require_same_shape(src, "src", diff_dst, "diff_dst");
  detail::require_size(diff_logdet.size(), static_cast<std::size_t>(src.n()), "diff_logdet");
  if (detail::may_overlap(src, diff_src))  // src is read for the parameter gradients as diff_src is written
    throw error(errc::invalid_argument, std::string(kind) + ": src and diff_src overlap");
}

bool positive_finite_float(double v) {
  const float f = static_cast<float>(v);
  return std::isfinite(f) && f > 0.0f;
}

// Throws errc::non_finite unless y = scale·x + shift is a usable float map for channel c, whose parameters
// are first_name = first and second_name = second. (The message is only built on failure: no allocation.)
void require_coefficients(const char* kind, index_t c, double scale, double shift, const char* first_name,
                          double first, const char* second_name, double second) {
  if (!positive_finite_float(scale) || !std::isfinite(static_cast<float>(shift)))
    throw error(errc::non_finite, std::string(kind) + ": channel " + std::to_string(c) + " has " + first_name + " " +
                                      std::to_string(first) + " and " + second_name + " " + std::to_string(second) +
                                      ", which give scale " + std::to_string(scale) + " and shift " +
                                      std::to_string(shift) + " (the scale must be a positive finite float)");
}

double pixels_per_sample(const_view v) { return static_cast<double>(v.h()) * static_cast<double>(v.w()); }

double sum_of(span<const double> values) {
  double s = 0.0;
  for (double v : values) s += v;
  return s;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// actnorm

actnorm::actnorm(index_t channels)
    : bias_("bias", {std::max<index_t>(channels, 0)}), log_scale_("log_scale", {std::max<index_t>(channels, 0)}) {
  if (channels <= 0)
    throw error(errc::invalid_argument, "actnorm needs a positive channel count, got " + std::to_string(channels));
}

void actnorm::initialize(const_view x) { initialize_from(x); }

void actnorm::initialize_from(const_view x) const {
  detail::require_nonempty(x, "actnorm initialisation batch");
  detail::require_channels(x, "actnorm initialisation batch", channels());
  const auto c_count = static_cast<std::size_t>(channels());
  aligned_vector<double> mean(c_count), std_dev(c_count), partials;
  kernels::channel_mean_std(x, mean.data(), std_dev.data(), partials);
  for (std::size_t c = 0; c < c_count; ++c) {
    if (!std::isfinite(mean[c]) || !std::isfinite(std_dev[c]))
      throw error(errc::non_finite, "actnorm: the initialisation batch of shape " + x.shape().str() + " gives channel " +
                                        std::to_string(c) + " mean " + std::to_string(mean[c]) + " and std " +
                                        std::to_string(std_dev[c]));
  }
  constexpr double epsilon = 1e-6;  // Glow's; keeps constant channels finite
  for (std::size_t c = 0; c < c_count; ++c) {
    bias_.data()[c] = static_cast<float>(-mean[c]);
    log_scale_.data()[c] = static_cast<float>(-std::log(std_dev[c] + epsilon));
  }
  bias_.mark_updated();
  log_scale_.mark_updated();
  initialized_ = true;
}

void actnorm::require_initialized(const char* what) const {
  if (!initialized_)
    throw error(errc::not_fitted, std::string("actnorm: ") + what +
                                      " before initialisation (call initialize(x), run forward() in training mode, "
                                      "or set the parameters and call mark_initialized())");
}

namespace {
// y = (x + b)·exp(s) = exp(s)·x + b·exp(s). Returns Σ log_scale.
double actnorm_coefficients(const parameter& bias, const parameter& log_scale, affine_state& st, bool inverse) {
  double log_det = 0.0;
  for (std::size_t c = 0; c < bias.size(); ++c) {
    const double s = log_scale.data()[c], b = bias.data()[c], a = std::exp(s);
    require_coefficients("actnorm", static_cast<index_t>(c), a, b * a, "log_scale", s, "bias", b);
    // Inverse: x = exp(−s)·y − b.
    st.scale[c] = static_cast<float>(inverse ? 1.0 / a : a);
    st.shift[c] = static_cast<float>(inverse ? -b : b * a);
    log_det += s;
  }
  return log_det;
}
}  // namespace

void actnorm::forward(const_view src, view dst, span<double> logdet, workspace& ws, pass_mode mode) const {
  require_layer_pair("actnorm", channels(), src, "src", dst, "dst");
  detail::require_size(logdet.size(), static_cast<std::size_t>(src.n()), "logdet");
  if (!initialized_ && mode == pass_mode::training) initialize_from(src);
  require_initialized("forward() in inference mode");
  affine_state& st = ws.state<affine_state>(id());
  st.reserve(channels());
  const double log_det = actnorm_coefficients(bias_, log_scale_, st, false);
  kernels::channel_affine(src, dst, st.scale.data(), st.shift.data());
  for (double& v : logdet) v += pixels_per_sample(src) * log_det;
}

void actnorm::inverse(const_view dst, view src, workspace& ws) const {
  require_layer_pair("actnorm", channels(), dst, "dst", src, "src");
  require_initialized("inverse()");
  affine_state& st = ws.state<affine_state>(id());
  st.reserve(channels());
  actnorm_coefficients(bias_, log_scale_, st, true);
  kernels::channel_affine(dst, src, st.scale.data(), st.shift.data());
}

void actnorm::backward(const_view src, const_view, const_view diff_dst, span<const double> diff_logdet, view diff_src,
                       workspace& ws) {
  check_backward("actnorm", channels(), src, diff_dst, diff_src, diff_logdet);
  require_initialized("backward()");
  affine_state& st = ws.state<affine_state>(id());
  st.reserve(channels());
  actnorm_coefficients(bias_, log_scale_, st, false);
  st.zero_sums();
  kernels::channel_affine_backward(src, diff_dst, diff_src, st.scale.data(), st.sum.data(), st.dot.data(), st.partials);
  const double logdet_weight = pixels_per_sample(src) * sum_of(diff_logdet);
  for (std::size_t c = 0; c < bias_.size(); ++c) {
    const double a = std::exp(static_cast<double>(log_scale_.data()[c])), b = bias_.data()[c];
    // y = (x + b)·a: dL/ds = Σ dy·y = a·(Σ dy·x + b·Σ dy), dL/db = a·Σ dy.
    log_scale_.grad()[c] += static_cast<float>(a * (st.dot[c] + b * st.sum[c]) + logdet_weight);
    bias_.grad()[c] += static_cast<float>(a * st.sum[c]);
  }
}

// ------------------------------------------------------------------------------------------------
// global_affine

namespace {

struct activation_value {
  double value;       // Ψ(g)
  double derivative;  // Ψ'(g)
};

double logistic(double x) { return 1.0 / (1.0 + std::exp(-x)); }

activation_value evaluate(global_scale_activation kind, double g) {
  switch (kind) {
    case global_scale_activation::softplus: {
      // 0.1·softplus_{β=0.5}(g) = 0.2·log(1 + exp(0.5·g)), written to not overflow for large g.
      const double x = 0.5 * g;
      const double softplus = x > 30.0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
      return {0.2 * softplus, 0.1 * logistic(x)};
    }
    case global_scale_activation::sigmoid: {
      const double s = logistic(g - 2.0);
      return {10.0 * s, 10.0 * s * (1.0 - s)};
    }
    case global_scale_activation::exp: {
      const double e = std::exp(g);
      return {e, e};
    }
  }
  return {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
}

// The g with Ψ(g) = scale (FrEIA's initialisation of global_scale).
double preimage(global_scale_activation kind, double scale) {
  switch (kind) {
    case global_scale_activation::softplus: return 2.0 * std::log(std::expm1(5.0 * scale));
    case global_scale_activation::sigmoid: return 2.0 - std::log(10.0 / scale - 1.0);
    case global_scale_activation::exp: return std::log(scale);
  }
  return std::numeric_limits<double>::quiet_NaN();
}

// y = Ψ(g)·x + offset: per-channel multipliers and addends of y (of x when inverse). Returns Σ log Ψ.
double global_affine_coefficients(global_scale_activation kind, const parameter& scale, const parameter& offset,
                                  float* multiplier, float* addend, bool inverse) {
  double log_det = 0.0;
  for (std::size_t c = 0; c < scale.size(); ++c) {
    const double g = scale.data()[c], t = offset.data()[c], psi = evaluate(kind, g).value;
    require_coefficients("global_affine", static_cast<index_t>(c), psi, t, "global_scale", g, "global_offset", t);
    // Inverse: x = y/Ψ − offset/Ψ.
    multiplier[c] = static_cast<float>(inverse ? 1.0 / psi : psi);
    addend[c] = static_cast<float>(inverse ? -t / psi : t);
    log_det += std::log(psi);
  }
  return log_det;
}

}  // namespace

global_affine::global_affine(index_t channels, global_scale_activation activation, double initial_scale)
    : activation_(activation),
      scale_("global_scale", {std::max<index_t>(channels, 0)}),
      offset_("global_offset", {std::max<index_t>(channels, 0)}) {
  if (channels <= 0)
    throw error(errc::invalid_argument,
                "global_affine needs a positive channel count, got " + std::to_string(channels));
  const bool in_range = initial_scale > 0.0 && std::isfinite(initial_scale) &&
                        (activation != global_scale_activation::sigmoid || initial_scale < 10.0);
  if (!in_range)
    throw error(errc::invalid_argument, "global_affine: initial scale " + std::to_string(initial_scale) +
                                            " is outside the activation's range (0, " +
                                            (activation == global_scale_activation::sigmoid ? "10)" : "inf)"));
  const double g = preimage(activation, initial_scale);
  if (!std::isfinite(static_cast<float>(g)))
    throw error(errc::invalid_argument, "global_affine: initial scale " + std::to_string(initial_scale) +
                                            " has no finite float pre-activation");
  for (float& v : scale_.values()) v = static_cast<float>(g);
  scale_.mark_updated();
}

double global_affine::coefficients(float* scale, float* shift) const {
  return global_affine_coefficients(activation_, scale_, offset_, scale, shift, false);
}

void global_affine::forward(const_view src, view dst, span<double> logdet, workspace& ws, pass_mode) const {
  require_layer_pair("global_affine", channels(), src, "src", dst, "dst");
  detail::require_size(logdet.size(), static_cast<std::size_t>(src.n()), "logdet");
  affine_state& st = ws.state<affine_state>(id());
  st.reserve(channels());
  const double log_det = global_affine_coefficients(activation_, scale_, offset_, st.scale.data(), st.shift.data(), false);
  kernels::channel_affine(src, dst, st.scale.data(), st.shift.data());
  for (double& v : logdet) v += pixels_per_sample(src) * log_det;
}

void global_affine::inverse(const_view dst, view src, workspace& ws) const {
  require_layer_pair("global_affine", channels(), dst, "dst", src, "src");
  affine_state& st = ws.state<affine_state>(id());
  st.reserve(channels());
  global_affine_coefficients(activation_, scale_, offset_, st.scale.data(), st.shift.data(), true);
  kernels::channel_affine(dst, src, st.scale.data(), st.shift.data());
}

void global_affine::backward(const_view src, const_view, const_view diff_dst, span<const double> diff_logdet,
                             view diff_src, workspace& ws) {
  check_backward("global_affine", channels(), src, diff_dst, diff_src, diff_logdet);
  affine_state& st = ws.state<affine_state>(id());
  st.reserve(channels());
  global_affine_coefficients(activation_, scale_, offset_, st.scale.data(), st.shift.data(), false);
  st.zero_sums();
  kernels::channel_affine_backward(src, diff_dst, diff_src, st.scale.data(), st.sum.data(), st.dot.data(), st.partials);
  accumulate_gradients(st.sum.data(), st.dot.data(), diff_logdet, pixels_per_sample(src));
}

void global_affine::accumulate_gradients(const double* sum_diff, const double* sum_diff_src, span<const double> diff_logdet,
                                         double positions) {
  const double logdet_weight = positions * sum_of(diff_logdet);
  for (std::size_t c = 0; c < scale_.size(); ++c) {
    const activation_value psi = evaluate(activation_, scale_.data()[c]);
    // y = Ψ(g)·x + t, log-det H·W·log Ψ(g): dL/dg = Ψ'(g)·(Σ dy·x + H·W·Σ diff_logdet / Ψ(g)).
    scale_.grad()[c] += static_cast<float>(psi.derivative * (sum_diff_src[c] + logdet_weight / psi.value));
    offset_.grad()[c] += static_cast<float>(sum_diff[c]);
  }
}

}  // namespace v0
}  // namespace flowad
