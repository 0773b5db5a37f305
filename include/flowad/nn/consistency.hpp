// Teacher-student distances, per cell and per sample, and their gradients: the consistency terms of
// STFPM (normalised L2), Reverse Distillation (cosine) and FCL (both hosts' distances on raw features and
// on spatial-neighbourhood codes). Dense NHWC buffers n x c x h x w; maps are n x h x w.
//
//   cosine:         d = 1 − <t, s> / (max(‖t‖, ε)·max(‖s‖, ε))        (PyTorch's cosine_similarity, ε = 1e-8)
//   normalized_l2:  d = ½ ‖t / max(‖t‖, ε) − s / max(‖s‖, ε)‖²         (F.normalize, ε = 1e-12; anomalib's ½)
//
// A norm below ε counts as the constant ε in the gradients too (a zero vector gets finite ones). Sums run in
// double, in an order fixed by the shape (results do not depend on the thread count). Non-positive
// extents or null required pointers throw errc::invalid_argument.
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace nn {

enum class ts_distance { cosine, normalized_l2 };

// map[n, y, x] = d(t[n, :, y, x], s[n, :, y, x]).
void distance_map(ts_distance d, const float* t, const float* s, float* map, index_t n, index_t c, index_t h, index_t w);
// Given diff_map = dL/d map: diff_t += dL/dt and diff_s += dL/ds (either may be null, then skipped).
void distance_map_backward(ts_distance d, const float* t, const float* s, const float* diff_map, float* diff_t,
                           float* diff_s, index_t n, index_t c, index_t h, index_t w);

// RD's training loss per sample: out[n] = 1 − cos(flatten(t_n), flatten(s_n)) over the c·h·w values.
void flattened_cosine_distance(const float* t, const float* s, double* out, index_t n, index_t c, index_t h, index_t w);
// Given diff_out[n] = dL/d out[n]: diff_t += dL/dt, diff_s += dL/ds (either may be null).
void flattened_cosine_distance_backward(const float* t, const float* s, const double* diff_out, float* diff_t,
                                        float* diff_s, index_t n, index_t c, index_t h, index_t w);

}  // namespace nn
}  // namespace v0
}  // namespace flowad
