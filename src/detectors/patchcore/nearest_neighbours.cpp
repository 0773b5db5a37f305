#include "detectors/patchcore/nearest_neighbours.hpp"

#include <algorithm>
#include <limits>
#include <numeric>

#include "kernels/simd.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

namespace {

// Bank rows per product: the tile's products (tile x queries floats) stay within the last-level cache.
constexpr index_t bank_tile = 2048;
// Queries per pass: one 256 x 256 image's patches on ResNet18's layer2; larger batches are searched in
// passes of this size, so that the products stay as small as a single image's (batch 16 in one pass
// was 15 % slower per image in bench_patchcore).
constexpr index_t query_chunk = 1024;

FLOWAD_SIMD_CLONES
void squared_norms(const float* data, index_t rows, index_t dimension, float* norms) {
#pragma omp parallel for schedule(static) if (rows * dimension >= (1 << 16))
  for (index_t i = 0; i < rows; ++i) {
    const float* row = data + i * dimension;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (index_t d = 0; d < dimension; ++d) sum += row[d] * row[d];
    norms[i] = sum;
  }
}

// For every query q (a column of `products`, tile rows x queries): best[q] = min over the tile's rows t
// of ‖b_t‖² − 2 b_t·q, and which row gave it. Queries are split between threads; each walks the tile.
FLOWAD_SIMD_CLONES
void reduce_tile(const float* products, const float* bank_norms, index_t tile, index_t first_row, index_t queries,
                 float* best, index_t* index) {
  constexpr index_t chunk = 256;
#pragma omp parallel for schedule(static) if (tile * queries >= (1 << 16))
  for (index_t q0 = 0; q0 < queries; q0 += chunk) {
    const index_t q1 = std::min(queries, q0 + chunk);
    for (index_t t = 0; t < tile; ++t) {
      const float* p = products + t * queries;
      const float norm = bank_norms[t];
      const index_t row = first_row + t;
#pragma omp simd
      for (index_t q = q0; q < q1; ++q) {
        const float v = norm - 2.0f * p[q];
        const bool closer = v < best[q];
        best[q] = closer ? v : best[q];
        index[q] = closer ? row : index[q];
      }
    }
  }
}

// out[q] = ‖queries_q − bank_{index[q]}‖², exactly (single precision).
FLOWAD_SIMD_CLONES
void exact_distances(const float* queries, index_t count, index_t dimension, const float* bank, const index_t* index,
                     float* out) {
#pragma omp parallel for schedule(static) if (count * dimension >= (1 << 16))
  for (index_t q = 0; q < count; ++q) {
    const float* x = queries + q * dimension;
    const float* y = bank + index[q] * dimension;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (index_t d = 0; d < dimension; ++d) sum += (x[d] - y[d]) * (x[d] - y[d]);
    out[q] = sum;
  }
}

// scratch[j] = ‖b_j‖² − 2 x·b_j for every bank row j.
FLOWAD_SIMD_CLONES
void partial_distances(const float* x, const float* bank, const float* norms, index_t rows, index_t dimension,
                       float* scratch) {
#pragma omp parallel for schedule(static) if (rows * dimension >= (1 << 18))
  for (index_t j = 0; j < rows; ++j) {
    const float* y = bank + j * dimension;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (index_t d = 0; d < dimension; ++d) dot += x[d] * y[d];
    scratch[j] = norms[j] - 2.0f * dot;
  }
}

}  // namespace

memory_bank::memory_bank(std::vector<float> rows, index_t dimension, bool bfloat16)
    : rows_(std::move(rows)), size_(dimension > 0 ? static_cast<index_t>(rows_.size()) / dimension : 0),
      dimension_(dimension) {
  norms_.resize(static_cast<std::size_t>(size_));
  squared_norms(rows_.data(), size_, dimension_, norms_.data());
  if (bfloat16 && size_ > 0) {
    mean_.assign(static_cast<std::size_t>(dimension_), 0.0f);
    std::vector<double> sum(static_cast<std::size_t>(dimension_), 0.0);
    for (index_t i = 0; i < size_; ++i)
      for (index_t d = 0; d < dimension_; ++d) sum[static_cast<std::size_t>(d)] += row(i)[d];
    for (index_t d = 0; d < dimension_; ++d)
      mean_[static_cast<std::size_t>(d)] = static_cast<float>(sum[static_cast<std::size_t>(d)] / static_cast<double>(size_));
    std::vector<float> centred(rows_.size());
    for (index_t i = 0; i < size_; ++i)
      for (index_t d = 0; d < dimension_; ++d)
        centred[static_cast<std::size_t>(i * dimension_ + d)] = row(i)[d] - mean_[static_cast<std::size_t>(d)];
    rows_bf16_.resize(rows_.size());
    to_bfloat16(centred.data(), rows_bf16_.data(), centred.size());
    centred_norms_.resize(static_cast<std::size_t>(size_));
    squared_norms(centred.data(), size_, dimension_, centred_norms_.data());
  }
}

void memory_bank::nearest(const float* queries, index_t count, float* squared_distance, index_t* index, buffers& b,
                          exec_context& ctx) const {
  const bool bfloat16 = !rows_bf16_.empty();
  if (bfloat16) {
    b.centred.resize(static_cast<std::size_t>(count * dimension_));
    for (index_t q = 0; q < count; ++q)
      for (index_t d = 0; d < dimension_; ++d)
        b.centred[static_cast<std::size_t>(q * dimension_ + d)] = queries[q * dimension_ + d] - mean_[static_cast<std::size_t>(d)];
    b.queries_bf16.resize(b.centred.size());
    to_bfloat16(b.centred.data(), b.queries_bf16.data(), b.centred.size());
  }
  const float* norms = bfloat16 ? centred_norms_.data() : norms_.data();
  std::fill(squared_distance, squared_distance + count, std::numeric_limits<float>::infinity());
  std::fill(index, index + count, index_t{0});
  const index_t chunk = std::min(query_chunk, count);
  b.products.resize(static_cast<std::size_t>(std::min(bank_tile, size_) * chunk));
  for (index_t q0 = 0; q0 < count; q0 += chunk) {
    const index_t queries_now = std::min(chunk, count - q0);
    for (index_t first = 0; first < size_; first += bank_tile) {
      const index_t tile = std::min(bank_tile, size_ - first);
      // products = bank tile (tile x D) · queriesᵀ (D x queries_now)
      if (bfloat16)
        product_.run_bf16(false, true, tile, queries_now, dimension_, rows_bf16_.data() + first * dimension_, dimension_,
                          b.queries_bf16.data() + q0 * dimension_, dimension_, b.products.data(), queries_now, ctx);
      else
        product_.run(false, true, tile, queries_now, dimension_, row(first), dimension_, queries + q0 * dimension_,
                     dimension_, b.products.data(), queries_now, 0.0f, ctx);
      reduce_tile(b.products.data(), norms + first, tile, first, queries_now, squared_distance + q0, index + q0);
    }
  }
  exact_distances(queries, count, dimension_, rows_.data(), index, squared_distance);
}

void memory_bank::k_nearest_of_row(index_t i, index_t k, std::vector<index_t>& out, buffers& b) const {
  k = std::min(k, size_);
  b.scratch.resize(static_cast<std::size_t>(size_));
  partial_distances(row(i), rows_.data(), norms_.data(), size_, dimension_, b.scratch.data());
  b.scratch[static_cast<std::size_t>(i)] = -std::numeric_limits<float>::infinity();  // i itself comes first
  out.resize(static_cast<std::size_t>(size_));
  std::iota(out.begin(), out.end(), index_t{0});
  const auto closer = [&](index_t a, index_t c) {
    const float da = b.scratch[static_cast<std::size_t>(a)], dc = b.scratch[static_cast<std::size_t>(c)];
    return da < dc || (da == dc && a < c);
  };
  std::partial_sort(out.begin(), out.begin() + k, out.end(), closer);
  out.resize(static_cast<std::size_t>(k));
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
