#include "flowad/nn/deconv.hpp"

#include <cmath>

#include "flowad/detail/deconv2d.hpp"
#include "flowad/detail/random.hpp"
#include "nn/nn_checks.hpp"

namespace flowad {
inline namespace v0 {
namespace nn {

namespace {

deconv::config checked(const deconv::config& cfg) {
  if (cfg.in_channels <= 0 || cfg.out_channels <= 0)
    throw error(errc::invalid_argument, "nn::deconv: channels must be positive (in " +
                                            std::to_string(cfg.in_channels) + ", out " +
                                            std::to_string(cfg.out_channels) + ")");
  if (cfg.stride < 1 || cfg.stride > 64)
    throw error(errc::invalid_argument,
                "nn::deconv: stride (= kernel) must be in [1, 64], got " + std::to_string(cfg.stride));
  return cfg;
}

}  // namespace

struct deconv::impl {
  detail::deconv2d op;
  explicit impl(const config& c) : op(detail::deconv2d::config{c.in_channels, c.out_channels, c.stride, c.with_bias}) {}
};

deconv::deconv(const config& cfg, const std::string& name)
    : cfg_(checked(cfg)),
      weight_(name + ".weight", {cfg.in_channels, cfg.out_channels, cfg.stride, cfg.stride}),
      bias_(name + ".bias", {cfg.with_bias ? cfg.out_channels : 0}),
      impl_(std::make_unique<impl>(cfg)) {
  // PyTorch's ConvTranspose2d.reset_parameters: kaiming_uniform_(a = sqrt(5)) gives U(±1/sqrt(fan_in)), and
  // the bias U(±1/sqrt(fan_in)) too, where fan_in = weight.size(1)·k² = out·k² for the [in, out, k, k] weight.
  const double bound = 1.0 / std::sqrt(static_cast<double>(cfg.out_channels * cfg.stride * cfg.stride));
  detail::rng r(cfg.seed);
  for (float& v : weight_.values()) v = static_cast<float>(r.uniform(-bound, bound));
  for (float& v : bias_.values()) v = static_cast<float>(r.uniform(-bound, bound));
  weight_.mark_updated();
  bias_.mark_updated();
}

deconv::~deconv() = default;
deconv::deconv(deconv&&) noexcept = default;
deconv& deconv::operator=(deconv&&) noexcept = default;

std::vector<parameter*> deconv::parameters() {
  if (cfg_.with_bias) return {&weight_, &bias_};
  return {&weight_};
}

void deconv::forward(const float* src, float* dst, index_t n, index_t h, index_t w, workspace& ws) const {
  detail_checks::require_pointer(src, "nn::deconv::forward", "src");
  detail_checks::require_pointer(dst, "nn::deconv::forward", "dst");
  detail_checks::require_extents(n, h, w, "nn::deconv::forward");
  impl_->op.forward(src, dst, n, h, w, weight_, cfg_.with_bias ? &bias_ : nullptr, ws.exec());
}

void deconv::backward(const float* src, const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w,
                      workspace& ws) {
  detail_checks::require_pointer(src, "nn::deconv::backward", "src");
  detail_checks::require_pointer(diff_dst, "nn::deconv::backward", "diff_dst");
  detail_checks::require_extents(n, h, w, "nn::deconv::backward");
  impl_->op.backward_weights(src, diff_dst, n, h, w, weight_, bias(), ws.exec());
  if (diff_src) impl_->op.backward_data(diff_dst, diff_src, n, h, w, weight_, ws.exec());
}

double deconv::macs(index_t n, index_t h, index_t w) const noexcept {
  return impl_->op.macs(n, h, w);
}

}  // namespace nn
}  // namespace v0
}  // namespace flowad
