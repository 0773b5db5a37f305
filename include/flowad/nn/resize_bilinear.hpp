// Bilinear resizing of feature maps between any two sizes, PyTorch's F.interpolate(mode = "bilinear",
// align_corners = False) without antialiasing, and its adjoint (for gradients through it). Dense NHWC
// buffers, n x c x h x w -> n x c x out_h x out_w.
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace nn {

void resize_bilinear_forward(const float* src, float* dst, index_t n, index_t c, index_t h, index_t w, index_t out_h,
                             index_t out_w);
// diff_src (n x c x h x w, overwritten) = the transpose of the resize applied to diff_dst.
void resize_bilinear_backward(const float* diff_dst, float* diff_src, index_t n, index_t c, index_t h, index_t w,
                              index_t out_h, index_t out_w);

}  // namespace nn
}  // namespace v0
}  // namespace flowad
