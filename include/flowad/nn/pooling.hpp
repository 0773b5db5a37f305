// Max pooling as ResNet's stem applies it, PyTorch's MaxPool2d(kernel 3, stride 2, padding 1): an H x W
// input gives ((H − 1)/2 + 1) x ((W − 1)/2 + 1) cells; padded positions never win. Dense NHWC buffers.
// backward() routes each output gradient to the input cell that won (the first in row-major window
// order on ties, as PyTorch); it recomputes the winners from src, so forward keeps no state and is const.
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace nn {

inline index_t max_pool_output_size(index_t in) noexcept { return (in - 1) / 2 + 1; }

// dst (n x c x out(h) x out(w)) = maxpool3x3s2p1(src (n x c x h x w)).
void max_pool_forward(const float* src, float* dst, index_t n, index_t c, index_t h, index_t w);
// diff_src (n x c x h x w, overwritten) = the adjoint for the winners of src.
void max_pool_backward(const float* src, const float* diff_dst, float* diff_src, index_t n, index_t c, index_t h, index_t w);

}  // namespace nn
}  // namespace v0
}  // namespace flowad
