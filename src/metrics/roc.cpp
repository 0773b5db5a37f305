#include "flowad/metrics/roc.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "flowad/error.hpp"
#include "metrics/ranking.hpp"

namespace flowad {
inline namespace v0 {

namespace {

double auc_from_twice_pairs(std::uint64_t twice, std::uint64_t positives, std::uint64_t negatives) {
  return static_cast<double>(twice) / (2.0 * static_cast<double>(positives) * static_cast<double>(negatives));
}

void require_both_classes(std::uint64_t positives, std::uint64_t negatives, const char* caller,
                          const char* positive_name, const char* negative_name) {
  if (positives == 0 || negatives == 0)
    throw error(errc::invalid_argument,
                std::string(caller) + " is undefined when only one class is present: there is no " +
                    (positives == 0 ? positive_name : negative_name));
}

}  // namespace

double auroc(span<const double> scores, span<const int> labels) {
  const metrics_detail::labeled_scores s = metrics_detail::split_scores(scores, labels, "auroc");
  require_both_classes(s.positives.size(), s.negatives.size(), "auroc", "anomalous sample (label 1)",
                       "normal sample (label 0)");
  const std::uint64_t twice =
      metrics_detail::twice_concordant_pairs(s.negatives, s.positives, [](std::uint64_t k) { return k; });
  return auc_from_twice_pairs(twice, s.positives.size(), s.negatives.size());
}

double auroc(span<const float> scores, span<const int> labels) {
  std::vector<double> widened(scores.begin(), scores.end());
  return auroc(span<const double>(widened.data(), widened.size()), labels);
}

double pixel_auroc(span<const const_view> maps, span<const const_view> masks) {
  const metrics_detail::sorted_pixels p = metrics_detail::sort_pixels(maps, masks, false, "pixel_auroc");
  require_both_classes(p.positives.size(), p.negatives.size(), "pixel_auroc",
                       "anomalous pixel (mask 1) in the masks", "normal pixel (mask 0) in the masks");
  const std::uint64_t twice = metrics_detail::twice_concordant_pairs(p.negatives, p.positives, metrics_detail::positive_key);
  return auc_from_twice_pairs(twice, p.positives.size(), p.negatives.size());
}

double pixel_auroc(const_view maps, const_view masks) {
  return pixel_auroc(span<const const_view>(&maps, 1), span<const const_view>(&masks, 1));
}

}  // namespace v0
}  // namespace flowad
