// Element-wise pieces of the teacher-student networks: ReLU and the residual sum, on dense buffers.
#pragma once

#include <cstddef>

namespace flowad {
inline namespace v0 {
namespace nn {

// dst = max(src, 0); dst may equal src.
void relu_forward(const float* src, float* dst, std::size_t count);
// diff_src = diff_dst where dst > 0, else 0 (dst: relu_forward's output); diff_src may equal diff_dst.
void relu_backward(const float* dst, const float* diff_dst, float* diff_src, std::size_t count);
// dst = a + b; dst may equal a or b.
void add(const float* a, const float* b, float* dst, std::size_t count);
// dst += src.
void accumulate(const float* src, float* dst, std::size_t count);

}  // namespace nn
}  // namespace v0
}  // namespace flowad
