// Bilinear x2 upsampling of dense NHWC feature maps and its adjoint (private to src/): PyTorch's
// nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False), which CS-Flow's cross convolutions
// apply to a coarser scale's hidden activation. Per axis, output index o of 2L reads
//     x = max(0, (o + 0.5)/2 − 0.5),  x0 = floor(x),  x1 = min(x0 + 1, L − 1),  weights (1 − (x − x0), x − x0),
// i.e. 0.25/0.75 pairs, with the edge clamping that repeats the first and last cell.
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

// dst (n x out_h x out_w x c) = the first out_h rows and out_w columns of the x2 upsampling of src
// (n x h x w x c), out_h in [1, 2h] and out_w in [1, 2w]: 2h x 2w is the whole upsampling; 2h − 1 crops
// its last row, which is how a coarse scale of ceil(H/2) cells meets an odd finer one of H.
// dst must not overlap src.
void upsample2x_bilinear(const float* src, float* dst, index_t n, index_t h, index_t w, index_t c, index_t out_h,
                         index_t out_w);
inline void upsample2x_bilinear(const float* src, float* dst, index_t n, index_t h, index_t w, index_t c) {
  upsample2x_bilinear(src, dst, n, h, w, c, 2 * h, 2 * w);
}

// The adjoint: diff_src (n x h x w x c, overwritten) = Uᵀ · diff_dst (n x out_h x out_w x c), gathered per
// input cell (no races, no atomics; the result does not depend on the thread count).
void upsample2x_bilinear_adjoint(const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w, index_t c,
                                 index_t out_h, index_t out_w);
inline void upsample2x_bilinear_adjoint(const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w,
                                        index_t c) {
  upsample2x_bilinear_adjoint(diff_dst, diff_src, n, h, w, c, 2 * h, 2 * w);
}

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
