// Channel gathers and scatters on strided views (private to src/).
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

// dst(:, c) = src(:, index[c]) for c in [0, dst.c()).
void gather_channels(const_view src, view dst, const index_t* index);

// dst[p·dst_stride + j] = src[p·src_stride + j] for p < pixels, j < width (parallel over pixels).
void copy_pixels(const float* src, index_t src_stride, float* dst, index_t dst_stride, index_t pixels, index_t width);

// copy_pixels on the calling thread only (for use inside parallel loops).
void copy_pixels_serial(const float* src, index_t src_stride, float* dst, index_t dst_stride, index_t pixels,
                        index_t width);

// out[p][c] = in[p][index[c]]·scale[c] + shift[c] for p < pixels, c < channels, on dense pixels of
// `channels` values, on the calling thread.
void gather_affine_pixels(const float* in, float* out, index_t pixels, index_t channels, const index_t* index,
                          const float* scale, const float* shift);

// The backward pass of gather_affine_pixels over `pixels` dense pixels, in parallel:
//   diff_in[p][index[k]] = diff_out[p][k]·scale[k],
//   sum_diff[k] += Σ_p diff_out[p][k],  sum_diff_centered[k] += Σ_p diff_out[p][k]·(out[p][k] − shift[k]),
// where out is the forward's output. `inverse` is index's inverse permutation and inverse_scale[c] =
// scale[inverse[c]]. The sums run over fixed blocks of pixels, so they do not depend on the thread
// count; `partials` holds gather_affine_partials(pixels, channels) doubles.
void gather_affine_backward(const float* out, const float* diff_out, float* diff_in, index_t pixels, index_t channels,
                            const index_t* inverse, const float* inverse_scale, const float* shift, double* partials,
                            double* sum_diff, double* sum_diff_centered);
std::size_t gather_affine_partials(index_t pixels, index_t channels);

// copy_pixels to two destinations in one pass over src.
void copy_pixels_to_two(const float* src, index_t src_stride, float* dst_a, index_t a_stride, float* dst_b,
                        index_t b_stride, index_t pixels, index_t width);

// dst[p·dst_stride + j] = a[p·a_stride + j] + b[p·b_stride + j].
void add_pixels(const float* a, index_t a_stride, const float* b, index_t b_stride, float* dst, index_t dst_stride,
                index_t pixels, index_t width);

// A dense NHWC pointer for v: v's own data when it is dense NHWC, otherwise a copy in `buffer`.
const float* dense_nhwc(const_view v, tensor& buffer);
// Where a layer writes its NHWC output: dst's own data when it is dense NHWC, otherwise `buffer`, sized
// for it (the caller copies the buffer into dst afterwards).
float* dense_nhwc_output(view dst, tensor& buffer);

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
