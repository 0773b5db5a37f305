// Area under the ROC curve: image-level (one score per image) and pixel-level (anomaly maps against
// ground-truth masks).
//
// Conventions shared by every metric in flowad/metrics:
// - labels are 0 (normal, "good") and 1 (anomalous); anything else is rejected;
// - a larger score means "more anomalous";
// - scores may be +-Inf (they rank like any other value); NaN is rejected;
// - -0.0 and +0.0 are the same score (a tie).
//
// Pixel-level metrics take anomaly maps as N x 1 x H x W views (any strides) and masks as views of
// the same shape holding exactly 0.0f or 1.0f (binarize first, e.g. `mask > 0.5`). A dataset whose
// images come in several batches or sizes is passed as parallel lists of views: maps[i] pairs with
// masks[i]; the views may differ from each other in N, H and W.
#pragma once

#include <cstdint>

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

// Exact AUROC with sklearn.metrics.roc_auc_score semantics: the trapezoid under the ROC curve in
// which tied scores form one (possibly diagonal) step. This equals the Mann-Whitney statistic
// P(score_pos > score_neg) + 0.5 * P(score_pos == score_neg), which is what is computed: the pair
// counts are summed in 64-bit integers and divided once, in double. O(n log n).
// Throws flowad::error: empty input (errc::empty_input), size mismatch (errc::shape_mismatch), a NaN
// score (errc::non_finite), a label other than 0/1 or only one class present (errc::invalid_argument;
// the message says which class is missing).
double auroc(span<const double> scores, span<const int> labels);
double auroc(span<const float> scores, span<const int> labels);

// Pixel AUROC: auroc() over every pixel of every map against its mask (sklearn's
// roc_auc_score(masks.ravel(), maps.ravel())). The pixels are sorted once, as order-preserving
// 32-bit keys: a counting sort into 2^16 buckets straight from the maps, then each bucket sorted in
// cache. Temporary memory: 4 bytes per normal pixel, 8 per anomalous pixel, 0.5 MiB per thread; no
// per-pixel objects. Parallel (OpenMP) from 65536 pixels on. 83 x 256 x 256 pixels take ~0.15-0.3 s
// on the project's 2-vCPU machine.
// Throws like auroc(), and errc::shape_mismatch when a map and its mask differ in shape or a map
// has more than one channel, errc::invalid_argument when a mask value is not 0 or 1.
double pixel_auroc(const_view maps, const_view masks);
double pixel_auroc(span<const const_view> maps, span<const const_view> masks);

}  // namespace v0
}  // namespace flowad
