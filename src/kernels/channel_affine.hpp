// Per-channel affine maps and per-channel reductions on strided views (private to src/).
//
// Dense NHWC and dense NCHW operands run contiguous vectorisable loops; anything else falls back to
// strided loops. Reductions accumulate in double, in an order that does not depend on the thread
// count (results do not either): dense NHWC operands are reduced in fixed chunks of pixels, each into
// its own partial sums in `partials` (scratch, grown on first use), added in chunk order; the other
// layouts are partitioned by channel.
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

// dst(n, c, h, w) = src(n, c, h, w)·scale[c] + shift[c]. src and dst have the same shape.
void channel_affine(const_view src, view dst, const float* scale, const float* shift);

// sum[c] += Σ (x − center[c]) and sum_sq[c] += Σ (x − center[c])² over (n, h, w).
void channel_moments(const_view x, const double* center, double* sum, double* sum_sq, aligned_vector<double>& partials);

// mean[c] and population std_dev[c] of x over (n, h, w), in double, in two passes (the mean, then the
// squared deviations from it). x must not be empty.
void channel_mean_std(const_view x, double* mean, double* std_dev, aligned_vector<double>& partials);

// sum[c] += Σ_p x[p·channels + c] over `pixels` dense channel-last pixels (a bias gradient).
void channel_sums(const float* x, index_t pixels, index_t channels, double* sum, aligned_vector<double>& partials);

// diff_src = diff_dst·scale[c]; sum_diff[c] += Σ diff_dst and sum_diff_src[c] += Σ diff_dst·src over (n, h, w).
void channel_affine_backward(const_view src, const_view diff_dst, view diff_src, const float* scale, double* sum_diff,
                             double* sum_diff_src, aligned_vector<double>& partials);

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
