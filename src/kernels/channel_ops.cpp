#include "kernels/channel_ops.hpp"

#include <algorithm>

#include "flowad/detail/checks.hpp"
#include "kernels/simd.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

namespace {

// Dense channel-last pixels: out[p][c] = in[p][index[c]]. GCC keeps the gathers below scalar (its
// generic tuning emits no gather instructions), which is the faster choice here: AVX-512 vgatherdps,
// tried with intrinsics, was 2-3x slower than scalar loads on this Zen 5 (bench_permute on
// 8x256x64x64, 2 threads: 5.71 and 6.15 ms against 2.20 and 1.80 ms in two alternating rounds).
FLOWAD_SIMD_CLONES
void gather_pixels(const float* in, float* out, index_t pixels, index_t channels, const index_t* index) {
  for (index_t p = 0; p < pixels; ++p) {
    const float* from = in + p * channels;
    float* to = out + p * channels;
#pragma omp simd
    for (index_t c = 0; c < channels; ++c) to[c] = from[index[c]];
  }
}

}  // namespace

void gather_channels(const_view src, view dst, const index_t* index) {
  const shape4 s = dst.shape();
  const strides4 ss = src.strides(), ds = dst.strides();
  if (src.shape() == s && src.is_dense(layout::nhwc) && dst.is_dense(layout::nhwc)) {
    // The common case (flows keep NHWC end to end): rows of pixels, in parallel.
    const index_t rows = s.n * s.h, row_pixels = s.w;
#pragma omp parallel for schedule(static) if (s.numel() >= detail::parallel_threshold)
    for (index_t r = 0; r < rows; ++r)
      gather_pixels(src.data() + r * row_pixels * s.c, dst.data() + r * row_pixels * s.c, row_pixels, s.c, index);
    return;
  }
#pragma omp parallel for collapse(2) schedule(static) if (s.numel() >= detail::parallel_threshold)
  for (index_t n = 0; n < s.n; ++n)
    for (index_t h = 0; h < s.h; ++h)
      for (index_t w = 0; w < s.w; ++w) {
        const float* in = src.data() + n * ss.n + h * ss.h + w * ss.w;
        float* out = dst.data() + n * ds.n + h * ds.h + w * ds.w;
        for (index_t c = 0; c < s.c; ++c) out[c * ds.c] = in[index[c] * ss.c];
      }
}

namespace {

// Pixels per parallel work item of the copies below: 256 pixels of a few hundred channels is a few
// hundred KiB, enough to amortise the loop, small enough to balance two threads.
constexpr index_t pixel_block = 256;

// a[p][j] = in[p][j] (and b[p][j] too when b is not null), j < width.
FLOWAD_SIMD_CLONES
void copy_block(const float* src, index_t src_stride, float* a, index_t a_stride, float* b, index_t b_stride,
                index_t pixels, index_t width) {
  for (index_t p = 0; p < pixels; ++p) {
    const float* in = src + p * src_stride;
    float* to_a = a + p * a_stride;
#pragma omp simd
    for (index_t j = 0; j < width; ++j) to_a[j] = in[j];
    if (b) {
      float* to_b = b + p * b_stride;
#pragma omp simd
      for (index_t j = 0; j < width; ++j) to_b[j] = in[j];
    }
  }
}

// dst[p][j] = a[p][j] + b[p][j].
FLOWAD_SIMD_CLONES
void add_block(const float* a, index_t a_stride, const float* b, index_t b_stride, float* dst, index_t dst_stride,
               index_t pixels, index_t width) {
  for (index_t p = 0; p < pixels; ++p) {
    const float* pa = a + p * a_stride;
    const float* pb = b + p * b_stride;
    float* out = dst + p * dst_stride;
#pragma omp simd
    for (index_t j = 0; j < width; ++j) out[j] = pa[j] + pb[j];
  }
}

// Runs block(first pixel, count) over `pixels` in blocks of pixel_block, in parallel when large.
template <class Block>
void for_pixel_blocks(index_t pixels, index_t width, Block block) {
  const index_t blocks = (pixels + pixel_block - 1) / pixel_block;
#pragma omp parallel for schedule(static) if (pixels * width >= detail::parallel_threshold)
  for (index_t k = 0; k < blocks; ++k) {
    const index_t p0 = k * pixel_block;
    block(p0, std::min(pixel_block, pixels - p0));
  }
}

}  // namespace

void copy_pixels(const float* src, index_t src_stride, float* dst, index_t dst_stride, index_t pixels, index_t width) {
  for_pixel_blocks(pixels, width, [=](index_t p0, index_t count) {
    copy_block(src + p0 * src_stride, src_stride, dst + p0 * dst_stride, dst_stride, nullptr, 0, count, width);
  });
}

void copy_pixels_serial(const float* src, index_t src_stride, float* dst, index_t dst_stride, index_t pixels,
                        index_t width) {
  copy_block(src, src_stride, dst, dst_stride, nullptr, 0, pixels, width);
}

FLOWAD_SIMD_CLONES
void gather_affine_pixels(const float* in, float* out, index_t pixels, index_t channels, const index_t* index,
                          const float* scale, const float* shift) {
  for (index_t p = 0; p < pixels; ++p) {
    const float* from = in + p * channels;
    float* to = out + p * channels;
#pragma omp simd
    for (index_t c = 0; c < channels; ++c) to[c] = from[index[c]] * scale[c] + shift[c];
  }
}

namespace {

// Pixels per block of gather_affine_backward's sums: the blocks, not the threads, fix the summation order.
constexpr index_t reduction_block = 1024;

FLOWAD_SIMD_CLONES
void gather_affine_backward_block(const float* out, const float* diff_out, float* diff_in, index_t pixels,
                                  index_t channels, const index_t* inverse, const float* inverse_scale,
                                  const float* shift, double* sum, double* dot) {
  for (index_t p = 0; p < pixels; ++p) {
    const float* o = out + p * channels;
    const float* g = diff_out + p * channels;
    float* d = diff_in + p * channels;
#pragma omp simd
    for (index_t c = 0; c < channels; ++c) d[c] = g[inverse[c]] * inverse_scale[c];
#pragma omp simd
    for (index_t k = 0; k < channels; ++k) {
      sum[k] += g[k];
      dot[k] += static_cast<double>(g[k]) * (o[k] - shift[k]);
    }
  }
}

}  // namespace

std::size_t gather_affine_partials(index_t pixels, index_t channels) {
  return static_cast<std::size_t>((pixels + reduction_block - 1) / reduction_block) * 2 *
         static_cast<std::size_t>(channels);
}

void gather_affine_backward(const float* out, const float* diff_out, float* diff_in, index_t pixels, index_t channels,
                            const index_t* inverse, const float* inverse_scale, const float* shift, double* partials,
                            double* sum_diff, double* sum_diff_centered) {
  const index_t blocks = (pixels + reduction_block - 1) / reduction_block;
#pragma omp parallel for schedule(static) if (pixels * channels >= detail::parallel_threshold)
  for (index_t b = 0; b < blocks; ++b) {
    double* sum = partials + b * 2 * channels;
    double* dot = sum + channels;
    std::fill(sum, sum + 2 * channels, 0.0);
    const index_t p0 = b * reduction_block;
    gather_affine_backward_block(out + p0 * channels, diff_out + p0 * channels, diff_in + p0 * channels,
                                 std::min(reduction_block, pixels - p0), channels, inverse, inverse_scale, shift, sum,
                                 dot);
  }
  for (index_t b = 0; b < blocks; ++b) {
    const double* sum = partials + b * 2 * channels;
    for (index_t k = 0; k < channels; ++k) {
      sum_diff[k] += sum[k];
      sum_diff_centered[k] += sum[channels + k];
    }
  }
}

void copy_pixels_to_two(const float* src, index_t src_stride, float* dst_a, index_t a_stride, float* dst_b,
                        index_t b_stride, index_t pixels, index_t width) {
  for_pixel_blocks(pixels, width, [=](index_t p0, index_t count) {
    copy_block(src + p0 * src_stride, src_stride, dst_a + p0 * a_stride, a_stride, dst_b + p0 * b_stride, b_stride,
               count, width);
  });
}

void add_pixels(const float* a, index_t a_stride, const float* b, index_t b_stride, float* dst, index_t dst_stride,
                index_t pixels, index_t width) {
  for_pixel_blocks(pixels, width, [=](index_t p0, index_t count) {
    add_block(a + p0 * a_stride, a_stride, b + p0 * b_stride, b_stride, dst + p0 * dst_stride, dst_stride, count, width);
  });
}

const float* dense_nhwc(const_view v, tensor& buffer) {
  if (v.is_dense(layout::nhwc)) return v.data();
  buffer.resize(v.shape(), layout::nhwc);
  copy(v, buffer.view());
  return buffer.data();
}

float* dense_nhwc_output(view dst, tensor& buffer) {
  if (dst.is_dense(layout::nhwc)) return dst.data();
  buffer.resize(dst.shape(), layout::nhwc);
  return buffer.data();
}

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
