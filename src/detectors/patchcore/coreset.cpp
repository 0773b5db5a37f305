#include "detectors/patchcore/coreset.hpp"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <limits>

#include "flowad/detail/backend.hpp"
#include "flowad/detail/random.hpp"
#include "flowad/error.hpp"
#include "kernels/simd.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace flowad {
inline namespace v0 {
namespace detail {

namespace {

// The selection reads every point once per kept row, so it is bound by memory bandwidth: points are
// held in bfloat16 (half the bytes; their rounding, 2^-9 relative, is far below the projection's own
// distortion) and widened to float for the arithmetic.
inline float widen(std::uint16_t v) {
  const std::uint32_t bits = static_cast<std::uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// ‖row‖² of every row.
FLOWAD_SIMD_CLONES
void row_norms(const std::uint16_t* data, index_t rows, index_t dimension, float* norms) {
#pragma omp parallel for schedule(static)
  for (index_t i = 0; i < rows; ++i) {
    const std::uint16_t* row = data + i * dimension;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (index_t d = 0; d < dimension; ++d) sum += widen(row[d]) * widen(row[d]);
    norms[i] = sum;
  }
}

// δ_i = min(δ_i, ‖x_i − x_c‖) for every row, and the row of the largest δ afterwards: one pass over the
// data.
FLOWAD_SIMD_CLONES
index_t update_distances(const std::uint16_t* data, const float* norms, index_t rows, index_t dimension, index_t center,
                         float* delta, float* center_row) {
  for (index_t d = 0; d < dimension; ++d) center_row[d] = widen(data[center * dimension + d]);
  const float c_norm = norms[center];
  index_t best = 0;
  float best_value = -1.0f;
#pragma omp parallel
  {
    index_t local_best = 0;
    float local_value = -1.0f;
#pragma omp for schedule(static) nowait
    for (index_t i = 0; i < rows; ++i) {
      const std::uint16_t* row = data + i * dimension;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (index_t d = 0; d < dimension; ++d) dot += widen(row[d]) * center_row[d];
      const float d = std::sqrt(std::max(0.0f, norms[i] + c_norm - 2.0f * dot));
      const float v = std::min(delta[i], d);
      delta[i] = v;
      if (v > local_value) {
        local_value = v;
        local_best = i;
      }
    }
#pragma omp critical
    if (local_value > best_value || (local_value == best_value && local_best < best)) {
      best_value = local_value;
      best = local_best;
    }
  }
  return best;
}

}  // namespace

std::vector<index_t> greedy_coreset(const float* data, index_t rows, index_t dimension, const coreset_options& o) {
  if (rows <= 0 || dimension <= 0) throw error(errc::invalid_argument, "greedy_coreset: no rows to choose from");
  if (o.count <= 0 || o.count > rows)
    throw error(errc::invalid_argument, "greedy_coreset: cannot keep " + std::to_string(o.count) + " of " +
                                            std::to_string(rows) + " rows");
  if (o.projection_dimension < 0 || o.start_points <= 0)
    throw error(errc::invalid_argument, "greedy_coreset: projection_dimension must be >= 0 and start_points > 0");
  rng r(o.seed);

  // The sketch: projected = data · Pᵀ, P of projection_dimension x dimension.
  std::vector<float> projected;
  const float* source = data;
  index_t width = dimension;
  if (o.projection_dimension > 0 && o.projection_dimension < dimension) {
    width = o.projection_dimension;
    std::vector<float> projection(static_cast<std::size_t>(width * dimension));
    const double bound = 1.0 / std::sqrt(static_cast<double>(dimension));
    for (float& p : projection) p = static_cast<float>(r.uniform(-bound, bound));
    projected.resize(static_cast<std::size_t>(rows * width));
    exec_context ctx;
    matmul product;
    // A (rows x dimension) times Pᵀ, in blocks of rows so that the product's primitive stays small.
    const index_t block = 65536;
    for (index_t start = 0; start < rows; start += block) {
      const index_t m = std::min(block, rows - start);
      product.run(false, true, m, width, dimension, data + start * dimension, dimension, projection.data(), dimension,
                  projected.data() + start * width, width, 0.0f, ctx);
    }
    source = projected.data();
  }
  std::vector<std::uint16_t> points(static_cast<std::size_t>(rows * width));
  to_bfloat16(source, points.data(), points.size());
  std::vector<float>().swap(projected);
  std::vector<float> norms(static_cast<std::size_t>(rows)), center_row(static_cast<std::size_t>(width));
  row_norms(points.data(), rows, width, norms.data());

  // δ starts as the mean distance to the start points (drawn without replacement).
  const index_t starts = std::min(o.start_points, rows);
  std::vector<index_t> start_rows;
  while (static_cast<index_t>(start_rows.size()) < starts) {
    const index_t i = static_cast<index_t>(r.below(static_cast<std::uint64_t>(rows)));
    if (std::find(start_rows.begin(), start_rows.end(), i) == start_rows.end()) start_rows.push_back(i);
  }
  std::vector<float> delta(static_cast<std::size_t>(rows), 0.0f), sum(static_cast<std::size_t>(rows), 0.0f);
  for (index_t s : start_rows) {
    std::fill(delta.begin(), delta.end(), std::numeric_limits<float>::infinity());
    update_distances(points.data(), norms.data(), rows, width, s, delta.data(), center_row.data());
    for (std::size_t i = 0; i < delta.size(); ++i) sum[i] += delta[i];
  }
  for (std::size_t i = 0; i < delta.size(); ++i) delta[i] = sum[i] / static_cast<float>(starts);
  index_t next = static_cast<index_t>(std::max_element(delta.begin(), delta.end()) - delta.begin());

  std::vector<index_t> kept;
  kept.reserve(static_cast<std::size_t>(o.count));
  const index_t report_every = std::max<index_t>(1, o.count / 100);
  for (index_t k = 0; k < o.count; ++k) {
    kept.push_back(next);
    next = update_distances(points.data(), norms.data(), rows, width, next, delta.data(), center_row.data());
    if (o.on_progress && ((k + 1) % report_every == 0 || k + 1 == o.count)) o.on_progress(k + 1);
  }
  return kept;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
