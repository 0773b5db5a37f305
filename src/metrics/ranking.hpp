// Shared machinery of the ranking metrics (private to src/metrics): order-preserving integer keys
// for floating-point scores, the collection and sorting of pixels from maps and masks, and
// the walks over sorted scores that produce AUROC, the PRO curve and the F1 optimum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "flowad/tensor.hpp"
#include "metrics/big_array.hpp"

namespace flowad {
inline namespace v0 {
namespace metrics_detail {

// ---- keys ---------------------------------------------------------------------------------------
// Unsigned keys whose integer order is the numeric order of the (non-NaN) value; -0 maps like +0.
inline std::uint32_t float_key(float f) noexcept {
  if (f == 0.0f) f = 0.0f;
  std::uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
inline float key_float(std::uint32_t k) noexcept {
  const std::uint32_t b = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
inline std::uint64_t double_key(double d) noexcept {
  if (d == 0.0) d = 0.0;
  std::uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return (b >> 63) ? ~b : (b | (std::uint64_t{1} << 63));
}
inline double key_double(std::uint64_t k) noexcept {
  const std::uint64_t b = (k >> 63) ? (k & ~(std::uint64_t{1} << 63)) : ~k;
  double d;
  std::memcpy(&d, &b, sizeof d);
  return d;
}

// ---- pixels -------------------------------------------------------------------------------------
// Every pixel of a dataset, split by class and sorted ascending by score key.
struct sorted_pixels {
  big_array<std::uint32_t> negatives;  // float_key(score) of normal pixels
  // (float_key(score) << 32) | region id of anomalous pixels (region id 0 when regions are not
  // requested; otherwise 0-based over the dataset).
  big_array<std::uint64_t> positives;
  std::vector<double> inverse_region_size;  // 1/|r| per region id; empty unless requested
};

// Validates the lists (counts, shapes, one channel, binary masks, no NaN) and sorts the pixels.
// `caller` prefixes the error messages. Both classes may be empty here; callers check what they need.
sorted_pixels sort_pixels(span<const const_view> maps, span<const const_view> masks, bool with_regions,
                          const char* caller);

// ---- image-level scores -------------------------------------------------------------------------
// One score per sample, split by label and sorted ascending as double_key()s.
struct labeled_scores {
  std::vector<std::uint64_t> negatives;
  std::vector<std::uint64_t> positives;
};

// Validates (non-empty, equal sizes, no NaN, labels 0/1) and splits. `caller` prefixes messages.
labeled_scores split_scores(span<const double> scores, span<const int> labels, const char* caller);

// ---- walks over sorted keys ----------------------------------------------------------------------
inline std::uint64_t positive_key(std::uint64_t entry) noexcept { return entry >> 32; }

// Sum over (negative, positive) pairs of 2*[pos > neg] + [pos == neg], i.e. twice the Mann-Whitney
// count. Both arrays ascending; pos_key extracts a positive's key.
template <class NegArray, class PosArray, class PosKey>
std::uint64_t twice_concordant_pairs(const NegArray& neg, const PosArray& pos, PosKey pos_key) {
  const std::size_t np = pos.size(), nn = neg.size();
  std::uint64_t twice = 0;
  std::size_t j = 0;  // positives below the current negative key
  std::size_t i = 0;
  while (i < nn) {
    const std::uint64_t key = neg[i];
    std::size_t group = 0;
    while (i < nn && neg[i] == key) ++i, ++group;
    while (j < np && pos_key(pos[j]) < key) ++j;
    std::size_t equal = 0;
    while (j + equal < np && pos_key(pos[j + equal]) == key) ++equal;
    const std::uint64_t above = np - j - equal;
    twice += static_cast<std::uint64_t>(group) * (2 * above + equal);
    j += equal;
  }
  return twice;
}

// The F1 optimum over distinct thresholds, walking down from the largest score. key_value turns a
// key back into the score. Ties in F1 go to the lowest threshold.
struct f1_walk_result {
  double threshold;
  std::uint64_t tp;
  std::uint64_t fp;
};
template <class NegArray, class PosArray, class PosKey, class KeyValue>
f1_walk_result best_f1(const NegArray& neg, const PosArray& pos, PosKey pos_key, KeyValue key_value) {
  const std::uint64_t total_pos = pos.size();
  std::size_t i = neg.size(), j = pos.size();
  std::uint64_t tp = 0, fp = 0;
  f1_walk_result best{0.0, 0, 0};
  double best_f1 = -1.0;
  while (i > 0 || j > 0) {
    std::uint64_t key = 0;
    if (i > 0) key = neg[i - 1];
    if (j > 0 && (i == 0 || pos_key(pos[j - 1]) > key)) key = pos_key(pos[j - 1]);
    while (i > 0 && neg[i - 1] == key) --i, ++fp;
    while (j > 0 && pos_key(pos[j - 1]) == key) --j, ++tp;
    const double f1 = static_cast<double>(2 * tp) / static_cast<double>(tp + fp + total_pos);
    if (f1 >= best_f1) {
      best_f1 = f1;
      best = {key_value(key), tp, fp};
    }
  }
  return best;
}

}  // namespace metrics_detail
}  // namespace v0
}  // namespace flowad
