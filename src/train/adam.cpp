#include "flowad/train/adam.hpp"

#include <algorithm>
#include <cmath>

#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {

adam::adam(std::vector<parameter*> params, const adam_options& options)
    : params_(std::move(params)), options_(options) {
  if (!(options.learning_rate >= 0.0f) || !(options.beta1 >= 0.0f && options.beta1 < 1.0f) ||
      !(options.beta2 >= 0.0f && options.beta2 < 1.0f) || !(options.eps > 0.0f) || !(options.weight_decay >= 0.0f))
    throw error(errc::invalid_argument, "Adam options out of range (lr >= 0, 0 <= betas < 1, eps > 0, weight decay >= 0)");
  first_moment_.reserve(params_.size());
  second_moment_.reserve(params_.size());
  for (parameter* p : params_) {
    first_moment_.emplace_back(p->size(), 0.0f);
    second_moment_.emplace_back(p->size(), 0.0f);
  }
}

void adam::reset() {
  for (auto& m : first_moment_) std::fill(m.begin(), m.end(), 0.0f);
  for (auto& v : second_moment_) std::fill(v.begin(), v.end(), 0.0f);
  steps_ = 0;
}

void adam::step(float lr) {
  ++steps_;
  const float b1 = options_.beta1, b2 = options_.beta2, eps = options_.eps, wd = options_.weight_decay;
  const double correction1 = 1.0 - std::pow(static_cast<double>(b1), static_cast<double>(steps_));
  const double correction2 = 1.0 - std::pow(static_cast<double>(b2), static_cast<double>(steps_));
  // θ -= lr/c1 · m / (sqrt(v)/sqrt(c2) + eps), exactly as torch.optim.Adam (non-fused) computes it.
  const float step_size = static_cast<float>(lr / correction1);
  const float inv_sqrt_c2 = static_cast<float>(1.0 / std::sqrt(correction2));
  for (std::size_t k = 0; k < params_.size(); ++k) {
    parameter& p = *params_[k];
    float* theta = p.data();
    const float* g = p.grad();
    float* m = first_moment_[k].data();
    float* v = second_moment_[k].data();
    const std::int64_t n = static_cast<std::int64_t>(p.size());
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (std::int64_t i = 0; i < n; ++i) {
      const float grad = g[i] + wd * theta[i];
      m[i] = b1 * m[i] + (1.0f - b1) * grad;
      v[i] = b2 * v[i] + (1.0f - b2) * grad * grad;
      theta[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_c2 + eps);
    }
    p.mark_updated();
  }
}

double gradient_norm(const std::vector<parameter*>& params) {
  // Fixed-size blocks summed in index order: the result does not depend on the thread count or on
  // the order in which OpenMP combines reductions.
  constexpr std::int64_t block = 1 << 15;
  constexpr std::int64_t max_blocks = 512;
  double partial[max_blocks];
  double total = 0.0;
  for (const parameter* p : params) {
    const float* g = p->grad();
    const std::int64_t n = static_cast<std::int64_t>(p->size());
    for (std::int64_t start = 0; start < n; start += block * max_blocks) {
      const std::int64_t blocks = std::min<std::int64_t>(max_blocks, (n - start + block - 1) / block);
#pragma omp parallel for schedule(static) if (blocks > 1)
      for (std::int64_t b = 0; b < blocks; ++b) {
        const std::int64_t lo = start + b * block, hi = std::min(n, lo + block);
        double sum = 0.0;
        for (std::int64_t i = lo; i < hi; ++i) sum += static_cast<double>(g[i]) * g[i];
        partial[b] = sum;
      }
      for (std::int64_t b = 0; b < blocks; ++b) total += partial[b];
    }
  }
  return std::sqrt(total);
}

void scale_gradients(const std::vector<parameter*>& params, float factor) {
  for (parameter* p : params) {
    float* g = p->grad();
    const std::int64_t n = static_cast<std::int64_t>(p->size());
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (std::int64_t i = 0; i < n; ++i) g[i] *= factor;
  }
}

double clip_gradient_norm(const std::vector<parameter*>& params, double max_norm) {
  const double norm = gradient_norm(params);
  if (max_norm > 0.0 && std::isfinite(norm) && norm > max_norm)
    scale_gradients(params, static_cast<float>(max_norm / (norm + 1e-6)));
  return norm;
}

}  // namespace v0
}  // namespace flowad
