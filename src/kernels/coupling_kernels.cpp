#include "kernels/coupling_kernels.hpp"

#include "kernels/fast_math.hpp"
#include "kernels/simd.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

namespace {

// φ and φ' for one clamp kind, float, vectorisable.
template <clamp_kind K>
struct clamp_fn {
  float alpha, inv_alpha;
  float phi(float s) const noexcept {
    if constexpr (K == clamp_kind::atan) return alpha * atan_clamp_factor * fast_atan(s * inv_alpha);
    else if constexpr (K == clamp_kind::tanh) return alpha * fast_tanh(s * inv_alpha);
    else if constexpr (K == clamp_kind::tanh_legacy) return alpha * fast_tanh(s);
    else return s;
  }
  float dphi(float s) const noexcept {
    if constexpr (K == clamp_kind::atan) {
      const float u = s * inv_alpha;
      return atan_clamp_factor / (1.0f + u * u);
    } else if constexpr (K == clamp_kind::tanh) {
      const float t = fast_tanh(s * inv_alpha);
      return 1.0f - t * t;
    } else if constexpr (K == clamp_kind::tanh_legacy) {
      const float t = fast_tanh(s);
      return alpha * (1.0f - t * t);
    } else {
      (void)s;
      return 1.0f;
    }
  }
};

template <class F>
decltype(auto) with_clamp(const soft_clamp& c, F&& f) {
  const float inv = c.alpha != 0.0f ? 1.0f / c.alpha : 0.0f;
  switch (c.kind) {
    case clamp_kind::atan: return f(clamp_fn<clamp_kind::atan>{c.alpha, inv});
    case clamp_kind::tanh: return f(clamp_fn<clamp_kind::tanh>{c.alpha, inv});
    case clamp_kind::tanh_legacy: return f(clamp_fn<clamp_kind::tanh_legacy>{c.alpha, inv});
    case clamp_kind::none: break;
  }
  return f(clamp_fn<clamp_kind::none>{c.alpha, inv});
}

template <class Clamp>
double forward_rows(const coupling_row& row, const Clamp& cl, const float* x, index_t x_stride, const float* raw,
                    float* y, index_t y_stride, float* next_cond) {
  const index_t w = row.width;
  const float gamma = row.gamma;
  double total = 0.0;
  for (index_t p = 0; p < row.pixels; ++p) {
    const float* xp = x + p * x_stride;
    const float* sp = raw + p * 2 * w;
    const float* tp = sp + w;
    float* yp = y + p * y_stride;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (index_t j = 0; j < w; ++j) {
      const float phi = cl.phi(gamma * sp[j]);
      yp[j] = xp[j] * fast_exp(phi) + gamma * tp[j];
      sum += phi;
    }
    if (next_cond) {
      float* cp = next_cond + p * w;
#pragma omp simd
      for (index_t j = 0; j < w; ++j) cp[j] = yp[j];
    }
    total += sum;
  }
  return total;
}

template <class Clamp>
void inverse_rows(const coupling_row& row, const Clamp& cl, const float* y, index_t y_stride, const float* raw, float* x,
                  index_t x_stride) {
  const index_t w = row.width;
  const float gamma = row.gamma;
  for (index_t p = 0; p < row.pixels; ++p) {
    const float* yp = y + p * y_stride;
    const float* sp = raw + p * 2 * w;
    const float* tp = sp + w;
    float* xp = x + p * x_stride;
#pragma omp simd
    for (index_t j = 0; j < w; ++j) xp[j] = (yp[j] - gamma * tp[j]) * fast_exp(-cl.phi(gamma * sp[j]));
  }
}

template <bool HasCond, class Clamp>
double backward_rows(const coupling_row& row, const Clamp& cl, const float* x, index_t x_stride, const float* dy,
                     index_t dy_stride, const float* dcond, const float* raw, float diff_logdet, float* dx,
                     index_t dx_stride, float* draw) {
  const index_t w = row.width;
  const float gamma = row.gamma;
  double total = 0.0;
  for (index_t p = 0; p < row.pixels; ++p) {
    const float* xp = x + p * x_stride;
    const float* gp = dy + p * dy_stride;
    const float* cp = HasCond ? dcond + p * w : nullptr;
    const float* sp = raw + p * 2 * w;
    const float* tp = sp + w;
    float* dxp = dx + p * dx_stride;
    float* dsp = draw + p * 2 * w;
    float* dtp = dsp + w;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (index_t j = 0; j < w; ++j) {
      float g = gp[j];
      if constexpr (HasCond) g += cp[j];
      const float s = gamma * sp[j];
      const float scale = fast_exp(cl.phi(s));
      const float d_phi = g * xp[j] * scale + diff_logdet;
      const float d_s = d_phi * cl.dphi(s);
      dxp[j] = g * scale;
      dsp[j] = gamma * d_s;
      dtp[j] = gamma * g;
      sum += d_s * sp[j] + g * tp[j];
    }
    total += sum;
  }
  return total;
}

}  // namespace

FLOWAD_SIMD_CLONES
double coupling_forward(const coupling_row& row, const float* x, index_t x_stride, const float* raw, float* y,
                        index_t y_stride, float* next_cond) {
  return with_clamp(row.clamp, [&](const auto& cl) {
    return forward_rows(row, cl, x, x_stride, raw, y, y_stride, next_cond);
  });
}

FLOWAD_SIMD_CLONES
void coupling_inverse(const coupling_row& row, const float* y, index_t y_stride, const float* raw, float* x,
                      index_t x_stride) {
  with_clamp(row.clamp, [&](const auto& cl) { inverse_rows(row, cl, y, y_stride, raw, x, x_stride); });
}

FLOWAD_SIMD_CLONES
double coupling_backward(const coupling_row& row, const float* x, index_t x_stride, const float* dy, index_t dy_stride,
                         const float* dcond, const float* raw, double diff_logdet, float* dx, index_t dx_stride,
                         float* draw) {
  return with_clamp(row.clamp, [&](const auto& cl) {
    const float dld = static_cast<float>(diff_logdet);
    return dcond ? backward_rows<true>(row, cl, x, x_stride, dy, dy_stride, dcond, raw, dld, dx, dx_stride, draw)
                 : backward_rows<false>(row, cl, x, x_stride, dy, dy_stride, dcond, raw, dld, dx, dx_stride, draw);
  });
}

FLOWAD_SIMD_CLONES
void activation_backward(const float* h, float* d, index_t count, float negative_slope) {
#pragma omp simd
  for (index_t i = 0; i < count; ++i) d[i] *= h[i] > 0.0f ? 1.0f : negative_slope;
}

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
