// Elementwise parts of the affine coupling, one pixel row at a time, on dense NHWC buffers.
// Private to src/. A "row" is `pixels` consecutive positions; every buffer has its own pixel stride
// and `width` contiguous channels per pixel. raw holds the conditioner output F with the log-scale
// part in channels [0, width) and the shift in [width, 2·width); s = γ·F_s, t = γ·F_t.
#pragma once

#include "flowad/layers/soft_clamp.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

struct coupling_row {
  index_t pixels = 0;
  index_t width = 0;
  float gamma = 1.0f;
  soft_clamp clamp;
};

// y = x·exp(φ(s)) + t. Also writes y to next_cond (pixel stride = width) when not null.
// Returns Σ φ(s) over the row.
double coupling_forward(const coupling_row& row, const float* x, index_t x_stride, const float* raw, float* y,
                        index_t y_stride, float* next_cond);

// x = (y - t)·exp(-φ(s)).
void coupling_inverse(const coupling_row& row, const float* y, index_t y_stride, const float* raw, float* x,
                      index_t x_stride);

// Given g = dy (+ dcond when not null, pixel stride = width) and dL/dlogdet of the row's sample:
// dx = g·exp(φ), dF_s = γ·(g·x·exp(φ) + diff_logdet)·φ'(s), dF_t = γ·g (written to draw, stride 2·width).
// Returns this row's contribution to dL/dγ: Σ (dL/ds·F_s + dL/dt·F_t).
double coupling_backward(const coupling_row& row, const float* x, index_t x_stride, const float* dy, index_t dy_stride,
                         const float* dcond, const float* raw, double diff_logdet, float* dx, index_t dx_stride,
                         float* draw);

// In place: d *= (h > 0 ? 1 : negative_slope), the derivative of (leaky) ReLU read from its output h.
void activation_backward(const float* h, float* d, index_t count, float negative_slope);

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
