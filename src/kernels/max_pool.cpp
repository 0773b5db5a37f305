// nn::max_pool_forward / max_pool_backward: 3x3, stride 2, padding 1 on dense NHWC buffers.
#include <algorithm>

#include "flowad/detail/checks.hpp"
#include "flowad/nn/pooling.hpp"
#include "kernels/simd.hpp"

namespace flowad {
inline namespace v0 {
namespace nn {

namespace {

void check(const void* a, const void* b, const void* c, index_t n, index_t ch, index_t h, index_t w, const char* what) {
  if (!a || !b || !c) throw error(errc::invalid_argument, std::string(what) + ": a buffer is null");
  if (n <= 0 || ch <= 0 || h <= 0 || w <= 0)
    throw error(errc::invalid_argument, std::string(what) + ": sizes must be positive, got " + std::to_string(n) +
                                            "x" + std::to_string(ch) + "x" + std::to_string(h) + "x" +
                                            std::to_string(w));
}

// The window of output index o along an axis of `size` cells, clipped: padded positions never win.
inline void window(index_t o, index_t size, index_t& first, index_t& last) {
  first = std::max<index_t>(2 * o - 1, 0);
  last = std::min<index_t>(2 * o + 1, size - 1);
}

FLOWAD_SIMD_CLONES
void pool_row(const float* src, float* dst, index_t h, index_t w, index_t c, index_t oy) {
  const index_t ow = max_pool_output_size(w);
  index_t y0, y1;
  window(oy, h, y0, y1);
  for (index_t ox = 0; ox < ow; ++ox) {
    index_t x0, x1;
    window(ox, w, x0, x1);
    float* out = dst + ox * c;
    const float* first = src + (y0 * w + x0) * c;
    std::copy(first, first + c, out);
    for (index_t y = y0; y <= y1; ++y)
      for (index_t x = (y == y0 ? x0 + 1 : x0); x <= x1; ++x) {
        const float* in = src + (y * w + x) * c;
#pragma omp simd
        for (index_t k = 0; k < c; ++k) out[k] = in[k] > out[k] ? in[k] : out[k];
      }
  }
}

}  // namespace

void max_pool_forward(const float* src, float* dst, index_t n, index_t c, index_t h, index_t w) {
  check(src, dst, dst, n, c, h, w, "nn::max_pool_forward");
  const index_t oh = max_pool_output_size(h), ow = max_pool_output_size(w);
#pragma omp parallel for collapse(2) schedule(static) if (n * c * h * w >= detail::parallel_threshold)
  for (index_t i = 0; i < n; ++i)
    for (index_t oy = 0; oy < oh; ++oy) pool_row(src + i * h * w * c, dst + (i * oh + oy) * ow * c, h, w, c, oy);
}

void max_pool_backward(const float* src, const float* diff_dst, float* diff_src, index_t n, index_t c, index_t h,
                       index_t w) {
  check(src, diff_dst, diff_src, n, c, h, w, "nn::max_pool_backward");
  const index_t oh = max_pool_output_size(h), ow = max_pool_output_size(w);
  // Windows overlap, so outputs scatter into shared inputs: each work item owns one sample's block of
  // channels. The winner is the first maximum in row-major window order (strict >), as in forward.
  constexpr index_t channel_block = 16;
  const index_t blocks = (c + channel_block - 1) / channel_block;
#pragma omp parallel for collapse(2) schedule(static) if (n * c * h * w >= detail::parallel_threshold)
  for (index_t i = 0; i < n; ++i)
    for (index_t b = 0; b < blocks; ++b) {
      const index_t c0 = b * channel_block, c1 = std::min(c, c0 + channel_block);
      const float* x = src + i * h * w * c;
      float* dx = diff_src + i * h * w * c;
      for (index_t p = 0; p < h * w; ++p) std::fill(dx + p * c + c0, dx + p * c + c1, 0.0f);
      for (index_t oy = 0; oy < oh; ++oy) {
        index_t y0, y1;
        window(oy, h, y0, y1);
        for (index_t ox = 0; ox < ow; ++ox) {
          index_t x0, x1;
          window(ox, w, x0, x1);
          const float* g = diff_dst + ((i * oh + oy) * ow + ox) * c;
          for (index_t k = c0; k < c1; ++k) {
            index_t best = y0 * w + x0;
            float best_value = x[best * c + k];
            for (index_t y = y0; y <= y1; ++y)
              for (index_t xx = x0; xx <= x1; ++xx) {
                const index_t p = y * w + xx;
                if (x[p * c + k] > best_value) {
                  best_value = x[p * c + k];
                  best = p;
                }
              }
            dx[best * c + k] += g[k];
          }
        }
      }
    }
}

}  // namespace nn
}  // namespace v0
}  // namespace flowad
