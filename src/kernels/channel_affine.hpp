// Per-channel affine maps and per-channel reductions on strided views (private to src/).
//
// Dense NHWC and dense NCHW operands run contiguous vectorisable loops; anything else falls back to
// strided loops. Reductions accumulate in double and are partitioned by channel, so every channel is
// summed in the same order whatever the thread count (results do not depend on it).
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

// dst(n, c, h, w) = src(n, c, h, w)·scale[c] + shift[c]. src and dst have the same shape.
void channel_affine(const_view src, view dst, const float* scale, const float* shift);

// sum[c] += Σ (x − center[c]) and sum_sq[c] += Σ (x − center[c])² over (n, h, w).
void channel_moments(const_view x, const double* center, double* sum, double* sum_sq);

// diff_src = diff_dst·scale[c]; sum_diff[c] += Σ diff_dst and sum_diff_src[c] += Σ diff_dst·src over (n, h, w).
void channel_affine_backward(const_view src, const_view diff_dst, view diff_src, const float* scale, double* sum_diff,
                             double* sum_diff_src);

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
