// Decision thresholds. flowad's decision rule everywhere: a sample (image or pixel) is anomalous
// iff score >= threshold (the rule of sklearn's precision_recall_curve, torchmetrics and anomalib).
// Labels and scores follow the conventions of flowad/metrics/roc.hpp.
#pragma once

#include <cstddef>

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

struct f1_threshold {
  double threshold = 0.0;  // one of the given scores
  double f1 = 0.0;         // 2 TP / (2 TP + FP + FN) at that threshold
  double precision = 0.0;  // TP / (TP + FP)
  double recall = 0.0;     // TP / (TP + FN)
};

// The F1-optimal threshold (anomalib's F1AdaptiveThreshold): every distinct score is a candidate;
// among equally good candidates the lowest threshold wins (anomalib takes the argmax over
// thresholds in ascending order). Needs at least one anomalous sample; normal samples may be absent.
// Throws flowad::error for empty input, size mismatch, NaN scores, labels other than 0/1, or no
// anomalous sample (anomalib silently returns the minimum score then: anomalib#2433).
f1_threshold f1_optimal_threshold(span<const double> scores, span<const int> labels);
f1_threshold f1_optimal_threshold(span<const float> scores, span<const int> labels);
// Pixel-level variant over anomaly maps and binary masks (see roc.hpp for their layout).
f1_threshold f1_optimal_threshold(const_view maps, const_view masks);
f1_threshold f1_optimal_threshold(span<const const_view> maps, span<const const_view> masks);

// A threshold for a target false-positive rate, estimated from defect-free scores only.
//
// Rule (split-conformal "higher" quantile, no interpolation between order statistics): with the n
// good scores sorted ascending, s_(1) <= ... <= s_(n), the threshold is s_(k) with
//     k = ceil((1 - target_fpr) * (n + 1)),
// i.e. the (1 - target_fpr) empirical quantile with the finite-sample correction (n + 1)/n, rounded
// up to an observed score. For exchangeable, continuous scores a new defect-free sample then
// reaches the threshold with probability (n + 1 - k)/(n + 1) <= target_fpr: the rule is
// conservative: for target_fpr <= 0.5 it is never below numpy.quantile(scores, 1 - target_fpr) with
// any of numpy's methods (the largest of them, "higher", uses rank ceil((1 - target_fpr)(n - 1)) + 1). When
// k > n (fewer than 1/target_fpr - 1 scores) no observed score gives that guarantee: the
// threshold is then the maximum score and `bounded` is false.
struct fpr_threshold {
  double threshold = 0.0;      // flag a sample iff score >= threshold
  double target_fpr = 0.0;     // as requested
  double empirical_fpr = 0.0;  // fraction of the given good scores >= threshold (ties count)
  double expected_fpr = 0.0;   // (n + 1 - k)/(n + 1): the bound for a new good sample when bounded
  std::size_t rank = 0;        // k (1-based; clamped to n when !bounded)
  std::size_t count = 0;       // n
  bool bounded = false;        // k <= n: expected_fpr <= target_fpr holds
};

// Throws flowad::error for no scores, a NaN score, or target_fpr outside (0, 1).
fpr_threshold threshold_for_fpr(span<const double> good_scores, double target_fpr);
fpr_threshold threshold_for_fpr(span<const float> good_scores, double target_fpr);

}  // namespace v0
}  // namespace flowad
