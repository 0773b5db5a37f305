#include "flowad/metrics/threshold.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "flowad/error.hpp"
#include "metrics/ranking.hpp"

namespace flowad {
inline namespace v0 {

namespace {

f1_threshold make_f1(const metrics_detail::f1_walk_result& w, std::uint64_t positives) {
  f1_threshold r;
  r.threshold = w.threshold;
  const double tp = static_cast<double>(w.tp), fp = static_cast<double>(w.fp), p = static_cast<double>(positives);
  r.precision = w.tp + w.fp > 0 ? tp / (tp + fp) : 0.0;
  r.recall = tp / p;
  r.f1 = 2.0 * tp / (tp + fp + p);
  return r;
}

}  // namespace

f1_threshold f1_optimal_threshold(span<const double> scores, span<const int> labels) {
  const metrics_detail::labeled_scores s = metrics_detail::split_scores(scores, labels, "f1_optimal_threshold");
  if (s.positives.empty())
    throw error(errc::invalid_argument, "f1_optimal_threshold: there is no anomalous sample (label 1); "
                                        "the F1 score is undefined without one");
  const auto w = metrics_detail::best_f1(s.negatives, s.positives, [](std::uint64_t k) { return k; }, metrics_detail::key_double);
  return make_f1(w, s.positives.size());
}

f1_threshold f1_optimal_threshold(span<const float> scores, span<const int> labels) {
  std::vector<double> widened(scores.begin(), scores.end());
  return f1_optimal_threshold(span<const double>(widened.data(), widened.size()), labels);
}

f1_threshold f1_optimal_threshold(span<const const_view> maps, span<const const_view> masks) {
  const metrics_detail::sorted_pixels p = metrics_detail::sort_pixels(maps, masks, false, "f1_optimal_threshold");
  if (p.positives.empty())
    throw error(errc::invalid_argument, "f1_optimal_threshold: the masks hold no anomalous pixel (mask 1); "
                                        "the F1 score is undefined without one");
  const auto w = metrics_detail::best_f1(p.negatives, p.positives, metrics_detail::positive_key, [](std::uint64_t k) {
    return static_cast<double>(metrics_detail::key_float(static_cast<std::uint32_t>(k)));
  });
  return make_f1(w, p.positives.size());
}

f1_threshold f1_optimal_threshold(const_view maps, const_view masks) {
  return f1_optimal_threshold(span<const const_view>(&maps, 1), span<const const_view>(&masks, 1));
}

fpr_threshold threshold_for_fpr(span<const double> good_scores, double target_fpr) {
  if (!(target_fpr > 0.0 && target_fpr < 1.0))
    throw error(errc::invalid_argument,
                "threshold_for_fpr: target_fpr must be in (0, 1), got " + std::to_string(target_fpr));
  if (good_scores.empty()) throw error(errc::empty_input, "threshold_for_fpr: no defect-free scores");
  std::vector<double> s(good_scores.begin(), good_scores.end());
  for (std::size_t i = 0; i < s.size(); ++i)
    if (std::isnan(s[i])) throw error(errc::non_finite, "threshold_for_fpr: score " + std::to_string(i) + " is NaN");

  const std::size_t n = s.size();
  // k = ceil((1 - fpr)(n + 1)); the 1e-12 relative slack only absorbs rounding in the product
  // ((1 - 0.05) * 100 must give rank 95, not 96).
  const double position = (1.0 - target_fpr) * static_cast<double>(n + 1);
  const double k_real = std::ceil(position * (1.0 - 1e-12));
  const std::size_t k = static_cast<std::size_t>(std::max(1.0, k_real));

  fpr_threshold r;
  r.target_fpr = target_fpr;
  r.count = n;
  r.bounded = k <= n;
  r.rank = std::min(k, n);
  std::nth_element(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(r.rank - 1), s.end());
  r.threshold = s[r.rank - 1];
  const std::size_t flagged =
      static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [&](double v) { return v >= r.threshold; }));
  r.empirical_fpr = static_cast<double>(flagged) / static_cast<double>(n);
  r.expected_fpr = static_cast<double>(n + 1 - r.rank) / static_cast<double>(n + 1);
  return r;
}

fpr_threshold threshold_for_fpr(span<const float> good_scores, double target_fpr) {
  std::vector<double> widened(good_scores.begin(), good_scores.end());
  return threshold_for_fpr(span<const double>(widened.data(), widened.size()), target_fpr);
}

}  // namespace v0
}  // namespace flowad
