#include "kernels/upsample2x.hpp"

#include <algorithm>

#include "flowad/detail/assert.hpp"
#include "flowad/detail/checks.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

namespace {

// The two source cells and the second one's weight of output index o on an axis of `length` cells.
struct tap {
  index_t first, second;
  float weight;  // of `second`; `first` gets 1 − weight
};

inline tap tap_of(index_t o, index_t length) {
  const float x = std::max(0.0f, (static_cast<float>(o) + 0.5f) * 0.5f - 0.5f);  // exact in float
  const auto first = static_cast<index_t>(x);
  return {first, std::min(first + 1, length - 1), x - static_cast<float>(first)};
}

// The weight with which output index o reads source cell i (0 when it does not).
inline float weight_of(index_t o, index_t i, index_t length) {
  const tap t = tap_of(o, length);
  return (t.first == i ? 1.0f - t.weight : 0.0f) + (t.second == i ? t.weight : 0.0f);
}

}  // namespace

void upsample2x_bilinear(const float* src, float* dst, index_t n, index_t h, index_t w, index_t c, index_t out_h,
                         index_t out_w) {
  FLOWAD_ASSERT(out_h >= 1 && out_h <= 2 * h && out_w >= 1 && out_w <= 2 * w);
  const index_t oh = out_h, ow = out_w;
#pragma omp parallel for schedule(static) if (n * oh * ow * c >= detail::parallel_threshold)
  for (index_t row = 0; row < n * oh; ++row) {
    const index_t b = row / oh, oy = row % oh;
    const tap ty = tap_of(oy, h);
    const float* top = src + (b * h + ty.first) * w * c;
    const float* bottom = src + (b * h + ty.second) * w * c;
    float* out = dst + row * ow * c;
    for (index_t ox = 0; ox < ow; ++ox) {
      const tap tx = tap_of(ox, w);
      const float* a = top + tx.first * c;
      const float* bb = top + tx.second * c;
      const float* cc = bottom + tx.first * c;
      const float* d = bottom + tx.second * c;
      const float wy1 = ty.weight, wy0 = 1.0f - wy1, wx1 = tx.weight, wx0 = 1.0f - wx1;
      float* o = out + ox * c;
      for (index_t k = 0; k < c; ++k) o[k] = wy0 * (wx0 * a[k] + wx1 * bb[k]) + wy1 * (wx0 * cc[k] + wx1 * d[k]);
    }
  }
}

void upsample2x_bilinear_adjoint(const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w, index_t c,
                                 index_t out_h, index_t out_w) {
  FLOWAD_ASSERT(out_h >= 1 && out_h <= 2 * h && out_w >= 1 && out_w <= 2 * w);
  const index_t oh = out_h, ow = out_w;
#pragma omp parallel for schedule(static) if (n * h * w * c * 16 >= detail::parallel_threshold)
  for (index_t row = 0; row < n * h; ++row) {
    const index_t b = row / h, iy = row % h;
    // Output rows 2·iy − 2 .. 2·iy + 3 are the only ones that can read row iy (clamping included).
    const index_t oy0 = std::max<index_t>(0, 2 * iy - 2), oy1 = std::min(oh, 2 * iy + 4);
    float* out_row = diff_src + row * w * c;
    for (index_t ix = 0; ix < w; ++ix) {
      float* o = out_row + ix * c;
      std::fill(o, o + c, 0.0f);
      const index_t ox0 = std::max<index_t>(0, 2 * ix - 2), ox1 = std::min(ow, 2 * ix + 4);
      for (index_t oy = oy0; oy < oy1; ++oy) {
        const float wy = weight_of(oy, iy, h);
        if (wy == 0.0f) continue;
        const float* g_row = diff_dst + (b * oh + oy) * ow * c;
        for (index_t ox = ox0; ox < ox1; ++ox) {
          const float wxy = wy * weight_of(ox, ix, w);
          if (wxy == 0.0f) continue;
          const float* g = g_row + ox * c;
          for (index_t k = 0; k < c; ++k) o[k] += wxy * g[k];
        }
      }
    }
  }
}

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
