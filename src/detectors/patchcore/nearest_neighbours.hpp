// Nearest-neighbour search of query rows in a memory bank, by matrix products on oneDNN: the nearest
// row minimises ‖b‖² − 2 q·b, whose products are computed tile by tile (each tile of bank rows against
// every query at once) and reduced to the running minimum as each tile is done; the distance to the
// row found is then computed exactly in single precision. With bfloat16 products (twice as fast where
// the CPU has them), rows and queries are first centred on the bank's mean (distances do not change,
// the rounding error, about 2^-8·‖q − μ‖·‖b − μ‖ in a squared distance, shrinks), and a row slightly
// farther than the nearest can still be found when several are that close.
#pragma once

#include <cstdint>
#include <vector>

#include "flowad/detail/backend.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

class memory_bank {
 public:
  memory_bank() = default;
  // rows x dimension values, row-major; bfloat16: search with bfloat16 products.
  memory_bank(std::vector<float> rows, index_t dimension, bool bfloat16);

  index_t size() const noexcept { return size_; }
  index_t dimension() const noexcept { return dimension_; }
  const std::vector<float>& rows() const noexcept { return rows_; }
  const float* row(index_t i) const noexcept { return rows_.data() + i * dimension_; }

  struct buffers {
    std::vector<float> products;    // bank tile x queries
    std::vector<std::uint16_t> queries_bf16;
    std::vector<float> centred;  // a query block minus the bank's mean
    std::vector<float> scratch;     // for k_nearest
  };

  // For each of `count` query rows (row-major, `dimension` values each): the squared distance to its
  // nearest bank row and that row's index. No allocation once `buffers` have seen this count.
  void nearest(const float* queries, index_t count, float* squared_distance, index_t* index, buffers& b,
               exec_context& ctx) const;

  // The k bank rows nearest bank row `i` (i itself first), by exact scan.
  void k_nearest_of_row(index_t i, index_t k, std::vector<index_t>& out, buffers& b) const;

  // Multiply-accumulates of nearest() for `count` queries.
  double macs(index_t count) const noexcept {
    return static_cast<double>(count) * static_cast<double>(size_) * static_cast<double>(dimension_);
  }

 private:
  std::vector<float> rows_;
  std::vector<float> norms_;  // ‖row‖²
  // When searching in bfloat16: the rows minus their mean, rounded, and the centred rows' ‖b − μ‖².
  std::vector<std::uint16_t> rows_bf16_;
  std::vector<float> mean_, centred_norms_;
  index_t size_ = 0, dimension_ = 0;
  matmul product_;
};

}  // namespace detail
}  // namespace v0
}  // namespace flowad
