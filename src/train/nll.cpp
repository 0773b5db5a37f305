#include "flowad/train/nll.hpp"

#include <cmath>

#include "flowad/detail/checks.hpp"
#include "flowad/scoring/latent.hpp"

namespace flowad {
inline namespace v0 {

nll_objective::nll_objective(std::vector<flow_layer*> flows, nll_normalization normalization)
    : flows_(std::move(flows)), normalization_(normalization), z_(flows_.size()), diff_z_(flows_.size()), diff_in_(flows_.size()) {
  if (flows_.empty()) throw error(errc::invalid_argument, "nll_objective needs at least one flow");
}

double nll_objective::forward_backward(const std::vector<const_view>& batch, workspace& ws) {
  if (batch.size() != flows_.size())
    throw error(errc::shape_mismatch, "nll_objective: the batch has " + std::to_string(batch.size()) +
                                          " scales but there are " + std::to_string(flows_.size()) + " flows");
  const index_t n = batch[0].n();
  double dims = 0.0;
  for (const const_view& b : batch) dims += static_cast<double>(b.c() * b.h() * b.w());
  if (normalization_ == nll_normalization::per_sample) dims = 1.0;

  logdet_.assign(static_cast<std::size_t>(n), 0.0);
  squares_.assign(static_cast<std::size_t>(n), 0.0);
  for (std::size_t s = 0; s < flows_.size(); ++s) {
    detail::require_size(static_cast<std::size_t>(batch[s].n()), static_cast<std::size_t>(n), "batch scale");
    z_[s].resize(batch[s].shape(), layout::nhwc);
    flows_[s]->forward(batch[s], z_[s].view(), logdet_, ws, pass_mode::training);
    add_squared_norms(z_[s].view(), squares_);
  }
  double loss = 0.0;
  for (index_t i = 0; i < n; ++i)
    loss += (0.5 * squares_[static_cast<std::size_t>(i)] - logdet_[static_cast<std::size_t>(i)]) / dims;
  loss /= static_cast<double>(n);
  if (!std::isfinite(loss)) return loss;

  const double scale = 1.0 / (static_cast<double>(n) * dims);
  diff_logdet_.assign(static_cast<std::size_t>(n), -scale);
  for (std::size_t s = 0; s < flows_.size(); ++s) {
    diff_z_[s].resize(z_[s].shape(), layout::nhwc);
    diff_in_[s].resize(z_[s].shape(), layout::nhwc);
    const float* zp = z_[s].data();
    float* dp = diff_z_[s].data();
    const index_t total = z_[s].numel();
    const float f = static_cast<float>(scale);
#pragma omp parallel for simd schedule(static) if (total >= detail::parallel_threshold)
    for (index_t i = 0; i < total; ++i) dp[i] = zp[i] * f;
    flows_[s]->backward(batch[s], z_[s].view(), diff_z_[s].view(), diff_logdet_, diff_in_[s].view(), ws);
  }
  return loss;
}

}  // namespace v0
}  // namespace flowad
