#include "kernels/channel_ops.hpp"

#include "flowad/detail/checks.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

void gather_channels(const_view src, view dst, const index_t* index) {
  const shape4 s = dst.shape();
  const strides4 ss = src.strides(), ds = dst.strides();
#pragma omp parallel for collapse(2) schedule(static) if (s.numel() >= detail::parallel_threshold)
  for (index_t n = 0; n < s.n; ++n)
    for (index_t h = 0; h < s.h; ++h)
      for (index_t w = 0; w < s.w; ++w) {
        const float* in = src.data() + n * ss.n + h * ss.h + w * ss.w;
        float* out = dst.data() + n * ds.n + h * ds.h + w * ds.w;
        for (index_t c = 0; c < s.c; ++c) out[c * ds.c] = in[index[c] * ss.c];
      }
}

void copy_pixels(const float* src, index_t src_stride, float* dst, index_t dst_stride, index_t pixels, index_t width) {
#pragma omp parallel for schedule(static) if (pixels * width >= detail::parallel_threshold)
  for (index_t p = 0; p < pixels; ++p) {
    const float* in = src + p * src_stride;
    float* out = dst + p * dst_stride;
#pragma omp simd
    for (index_t j = 0; j < width; ++j) out[j] = in[j];
  }
}

void add_pixels(const float* a, index_t a_stride, const float* b, index_t b_stride, float* dst, index_t dst_stride,
                index_t pixels, index_t width) {
#pragma omp parallel for schedule(static) if (pixels * width >= detail::parallel_threshold)
  for (index_t p = 0; p < pixels; ++p) {
    const float* pa = a + p * a_stride;
    const float* pb = b + p * b_stride;
    float* out = dst + p * dst_stride;
#pragma omp simd
    for (index_t j = 0; j < width; ++j) out[j] = pa[j] + pb[j];
  }
}

const float* dense_nhwc(const_view v, tensor& buffer) {
  if (v.is_dense(layout::nhwc)) return v.data();
  buffer.resize(v.shape(), layout::nhwc);
  copy(v, buffer.view());
  return buffer.data();
}

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
