// Greedy k-center coreset selection (PatchCore's ApproximateGreedyCoresetSampler): repeatedly keep the
// row farthest from everything kept so far. Distances are measured after a random linear projection
// (a JL-style sketch: U(−1/√D, 1/√D) weights, PyTorch's nn.Linear initialisation), and the first
// distances are the mean distance to `start_points` random rows, which are not kept themselves. The
// projected points are held in bfloat16 (see coreset.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

struct coreset_options {
  index_t count = 0;                  // rows to keep, 1 to rows
  index_t projection_dimension = 128; // 0: distances in the full dimension
  index_t start_points = 10;
  std::uint64_t seed = 0;
  std::function<void(index_t kept)> on_progress;  // called as the coreset grows, about 100 times
};

// Indices of the kept rows of `data` (rows x dimension, row-major), in the order they were picked.
std::vector<index_t> greedy_coreset(const float* data, index_t rows, index_t dimension, const coreset_options& options);

}  // namespace detail
}  // namespace v0
}  // namespace flowad
