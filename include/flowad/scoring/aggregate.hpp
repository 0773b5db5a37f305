// Image scores from anomaly maps (or any per-sample tensor): one number per sample n, computed over
// all C x H x W values of that sample.
#pragma once

#include <utility>
#include <vector>

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

enum class score_aggregation {
  mean,        // CS-Flow (applied to z^2 / 2) -- the mean, summed in double
  max,         // CFlow, FastFlow (anomalib), RD4AD, STFPM
  top_k_mean,  // MSFlow: the mean of the k largest values, k = top_k_count(C*H*W, fraction)
};

inline constexpr double default_top_k_fraction = 0.03;  // MSFlow's top_k

// k = max(1, int(count * fraction)), as MSFlow's int(H * W * 0.03) (the product in double, truncated).
// Throws unless 0 < fraction <= 1 and count > 0.
index_t top_k_count(index_t count, double fraction);

// One score per sample of maps (N values), into `scores` (size N) or a new vector. top_k_fraction is
// used only by top_k_mean. top_k_mean selects with std::nth_element on a per-thread copy of the
// sample (no full sort); samples are processed in parallel.
// Throws flowad::error for an empty input, NaN/Inf values (errc::non_finite), a wrong `scores`
// size, or a bad fraction.
void image_scores(const_view maps, score_aggregation how, span<double> scores,
                  double top_k_fraction = default_top_k_fraction);
std::vector<double> image_scores(const_view maps, score_aggregation how,
                                 double top_k_fraction = default_top_k_fraction);
// The same with a caller-kept scratch buffer for top_k_mean (grown when too small, never shrunk), so
// that repeated calls do not allocate.
void image_scores(const_view maps, score_aggregation how, span<double> scores, double top_k_fraction,
                  std::vector<float>& scratch);

// Name of an aggregation ("mean", "max", "top_k_mean").
const char* to_string(score_aggregation how) noexcept;
// Every aggregation with its name, for configurations.
inline std::vector<std::pair<score_aggregation, const char*>> score_aggregation_names() {
  return {{score_aggregation::mean, "mean"}, {score_aggregation::max, "max"}, {score_aggregation::top_k_mean, "top_k_mean"}};
}

}  // namespace v0
}  // namespace flowad
