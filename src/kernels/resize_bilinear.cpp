// nn::resize_bilinear_forward / resize_bilinear_backward on dense NHWC buffers. Per axis, output index o
// of `out` cells reads the input of `in` cells at
//     r = max(0, (o + 0.5)·in/out − 0.5),  i0 = floor(r),  i1 = min(i0 + 1, in − 1),  weights (1 − (r − i0), r − i0),
// PyTorch's align_corners = False source index (upsample_bilinear2d without a scale factor).
#include <algorithm>

#include "flowad/detail/checks.hpp"
#include "flowad/nn/resize_bilinear.hpp"
#include "kernels/simd.hpp"

namespace flowad {
inline namespace v0 {
namespace nn {

namespace {

struct tap {
  index_t i0, i1;
  float w0, w1;
};

inline tap source_tap(index_t o, index_t in, index_t out) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double r = std::max((static_cast<double>(o) + 0.5) * scale - 0.5, 0.0);
  const auto i0 = std::min(static_cast<index_t>(r), in - 1);
  const double l1 = r - static_cast<double>(i0);
  return {i0, std::min(i0 + 1, in - 1), static_cast<float>(1.0 - l1), static_cast<float>(l1)};
}

void check(const void* a, const void* b, index_t n, index_t c, index_t h, index_t w, index_t out_h, index_t out_w,
           const char* what) {
  if (!a || !b) throw error(errc::invalid_argument, std::string(what) + ": a buffer is null");
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || out_h <= 0 || out_w <= 0)
    throw error(errc::invalid_argument, std::string(what) + ": sizes must be positive, got " + std::to_string(n) +
                                            "x" + std::to_string(c) + "x" + std::to_string(h) + "x" +
                                            std::to_string(w) + " -> " + std::to_string(out_h) + "x" +
                                            std::to_string(out_w));
}

FLOWAD_SIMD_CLONES
void resize_row(const float* src, float* dst, index_t h, index_t w, index_t c, index_t out_h, index_t out_w, index_t oy) {
  const tap ty = source_tap(oy, h, out_h);
  const float* row0 = src + ty.i0 * w * c;
  const float* row1 = src + ty.i1 * w * c;
  for (index_t ox = 0; ox < out_w; ++ox) {
    const tap tx = source_tap(ox, w, out_w);
    const float* a = row0 + tx.i0 * c;
    const float* b = row0 + tx.i1 * c;
    const float* d = row1 + tx.i0 * c;
    const float* e = row1 + tx.i1 * c;
    float* out = dst + ox * c;
#pragma omp simd
    for (index_t k = 0; k < c; ++k)
      out[k] = ty.w0 * (tx.w0 * a[k] + tx.w1 * b[k]) + ty.w1 * (tx.w0 * d[k] + tx.w1 * e[k]);
  }
}

}  // namespace

void resize_bilinear_forward(const float* src, float* dst, index_t n, index_t c, index_t h, index_t w, index_t out_h,
                             index_t out_w) {
  check(src, dst, n, c, h, w, out_h, out_w, "nn::resize_bilinear_forward");
#pragma omp parallel for collapse(2) schedule(static) if (n * c * out_h * out_w >= detail::parallel_threshold)
  for (index_t i = 0; i < n; ++i)
    for (index_t oy = 0; oy < out_h; ++oy)
      resize_row(src + i * h * w * c, dst + (i * out_h + oy) * out_w * c, h, w, c, out_h, out_w, oy);
}

void resize_bilinear_backward(const float* diff_dst, float* diff_src, index_t n, index_t c, index_t h, index_t w,
                              index_t out_h, index_t out_w) {
  check(diff_dst, diff_src, n, c, h, w, out_h, out_w, "nn::resize_bilinear_backward");
  // The transpose scatters each output into up to four inputs that neighbouring outputs share: each work
  // item owns one sample's block of channels, so the sums run in a fixed order whatever the thread count.
  constexpr index_t channel_block = 16;
  const index_t blocks = (c + channel_block - 1) / channel_block;
#pragma omp parallel for collapse(2) schedule(static) if (n * c * out_h * out_w >= detail::parallel_threshold)
  for (index_t i = 0; i < n; ++i)
    for (index_t b = 0; b < blocks; ++b) {
      const index_t c0 = b * channel_block, width = std::min(c, c0 + channel_block) - c0;
      float* dx = diff_src + i * h * w * c + c0;
      for (index_t p = 0; p < h * w; ++p) std::fill(dx + p * c, dx + p * c + width, 0.0f);
      for (index_t oy = 0; oy < out_h; ++oy) {
        const tap ty = source_tap(oy, h, out_h);
        for (index_t ox = 0; ox < out_w; ++ox) {
          const tap tx = source_tap(ox, w, out_w);
          const float* g = diff_dst + ((i * out_h + oy) * out_w + ox) * c + c0;
          float* a = dx + (ty.i0 * w + tx.i0) * c;
          float* bb = dx + (ty.i0 * w + tx.i1) * c;
          float* d = dx + (ty.i1 * w + tx.i0) * c;
          float* e = dx + (ty.i1 * w + tx.i1) * c;
          const float w00 = ty.w0 * tx.w0, w01 = ty.w0 * tx.w1, w10 = ty.w1 * tx.w0, w11 = ty.w1 * tx.w1;
          // Not vectorised: the four targets coincide at clamped borders.
          for (index_t k = 0; k < width; ++k) {
            a[k] += w00 * g[k];
            bb[k] += w01 * g[k];
            d[k] += w10 * g[k];
            e[k] += w11 * g[k];
          }
        }
      }
    }
}

}  // namespace nn
}  // namespace v0
}  // namespace flowad
