// Hand loops of nn::batch_norm on dense channel-last buffers of `cells` x `channels` (private to src/).
// Per-channel sums are taken in double, per thread over contiguous blocks of cells, then added in thread
// order: results depend on the thread count only through the rounding of those double sums.
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

// sum[c] = Σ x, sum_squares[c] = Σ x². `partials` is grown to the threads' partial sums.
void batch_norm_moments(const float* x, index_t cells, index_t channels, double* sum, double* sum_squares,
                        aligned_vector<double>& partials);

// y = (x − center[c])·scale[c] + shift[c], then max(·, 0) with relu (centred first, so that a large mean
// does not cancel digits away). y may equal x.
void batch_norm_apply(const float* x, float* y, index_t cells, index_t channels, const float* center,
                      const float* scale, const float* shift, bool relu);

// With g = diff_dst masked by dst > 0 under relu (g = diff_dst otherwise): sum_g[c] = Σ g, sum_gx[c] = Σ g·x.
void batch_norm_gradient_sums(const float* x, const float* dst, const float* diff_dst, index_t cells,
                              index_t channels, bool relu, double* sum_g, double* sum_gx,
                              aligned_vector<double>& partials);

// diff_src = g·a[c] + (x − center[c])·b[c] + d[c] (g as above): the input gradient through the batch statistics, with the
// per-channel coefficients folded by the caller. diff_src may equal diff_dst.
void batch_norm_backward_data(const float* x, const float* dst, const float* diff_dst, float* diff_src,
                              index_t cells, index_t channels, bool relu, const float* center, const float* a,
                              const float* b, const float* d);

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
