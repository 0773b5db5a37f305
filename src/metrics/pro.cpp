#include "flowad/metrics/pro.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "flowad/error.hpp"
#include "metrics/labeling.hpp"
#include "metrics/ranking.hpp"

namespace flowad {
inline namespace v0 {

namespace {

void check_options(const pro_options& options, const char* caller) {
  if (!(options.fpr_limit > 0.0 && options.fpr_limit <= 1.0))
    throw error(errc::invalid_argument,
                std::string(caller) + ": fpr_limit must be in (0, 1], got " + std::to_string(options.fpr_limit));
}

// Trapezoid integration of a curve fed point by point (x non-decreasing) up to x = limit, with the
// semantics of MVTec's generic_util.trapezoid(x, y, x_max=limit): every point with x <= limit is
// integrated; if no point has x == limit exactly, the segment that crosses it is interpolated.
class limited_trapezoid {
 public:
  explicit limited_trapezoid(double limit) noexcept : limit_(limit) {}

  void add(double x, double y) noexcept {
    if (!started_) {
      started_ = true;
    } else if (!done_) {
      if (x <= limit_) {
        area_ += 0.5 * (y + y_) * (x - x_);
      } else {
        if (x_ < limit_) {
          const double y_limit = y_ + (y - y_) * (limit_ - x_) / (x - x_);
          area_ += 0.5 * (y_limit + y_) * (limit_ - x_);
        }
        done_ = true;
      }
    }
    x_ = x;
    y_ = y;
  }
  bool done() const noexcept { return done_; }
  double area() const noexcept { return area_; }

 private:
  double limit_;
  double area_ = 0.0;
  double x_ = 0.0, y_ = 0.0;
  bool started_ = false, done_ = false;
};

pro_result pro_from_sorted(const metrics_detail::sorted_pixels& p, const pro_options& options, const char* caller) {
  const std::size_t regions = p.inverse_region_size.size();
  const std::size_t ok = p.negatives.size();
  if (regions == 0)
    throw error(errc::invalid_argument, std::string(caller) + ": the masks hold no anomalous region (AUPRO is undefined)");
  if (ok == 0)
    throw error(errc::invalid_argument, std::string(caller) + ": the masks hold no normal pixel (AUPRO is undefined)");

  pro_result r;
  r.regions = static_cast<std::int64_t>(regions);
  r.ok_pixels = static_cast<std::int64_t>(ok);
  limited_trapezoid integral(options.fpr_limit);
  auto emit = [&](double x, double y) {
    integral.add(x, y);
    if (options.keep_curve) {
      r.fpr.push_back(x);
      r.pro.push_back(y);
    }
  };
  if (options.keep_curve) {
    r.fpr.reserve(ok + p.positives.size() + 2);
    r.pro.reserve(ok + p.positives.size() + 2);
  }

  const double inv_ok = 1.0 / static_cast<double>(ok);
  const double inv_regions = 1.0 / static_cast<double>(regions);
  emit(0.0, 0.0);
  std::size_t i = ok, j = p.positives.size();
  std::uint64_t fp = 0;
  double overlap = 0.0;  // sum over positives above the threshold of 1/|region|
  while ((i > 0 || j > 0) && !(integral.done() && !options.keep_curve)) {
    std::uint64_t key = 0;
    if (i > 0) key = p.negatives[i - 1];
    if (j > 0 && (i == 0 || metrics_detail::positive_key(p.positives[j - 1]) > key)) key = metrics_detail::positive_key(p.positives[j - 1]);
    while (i > 0 && p.negatives[i - 1] == key) --i, ++fp;
    while (j > 0 && metrics_detail::positive_key(p.positives[j - 1]) == key) {
      --j;
      overlap += p.inverse_region_size[static_cast<std::size_t>(p.positives[j] & 0xFFFFFFFFu)];
    }
    emit(std::min(static_cast<double>(fp) * inv_ok, 1.0), std::min(overlap * inv_regions, 1.0));
  }
  emit(1.0, 1.0);
  r.aupro = integral.area() / options.fpr_limit;
  return r;
}

}  // namespace

pro_result aupro(span<const const_view> maps, span<const const_view> masks, const pro_options& options) {
  check_options(options, "aupro");
  const metrics_detail::sorted_pixels p = metrics_detail::sort_pixels(maps, masks, true, "aupro");
  return pro_from_sorted(p, options, "aupro");
}

pro_result aupro(const_view maps, const_view masks, const pro_options& options) {
  return aupro(span<const const_view>(&maps, 1), span<const const_view>(&masks, 1), options);
}

pixel_metrics_result pixel_metrics(span<const const_view> maps, span<const const_view> masks,
                                   const pro_options& options) {
  check_options(options, "pixel_metrics");
  const metrics_detail::sorted_pixels p = metrics_detail::sort_pixels(maps, masks, true, "pixel_metrics");
  pixel_metrics_result r;
  r.pro = pro_from_sorted(p, options, "pixel_metrics");  // also checks that both classes are present
  const std::uint64_t twice = metrics_detail::twice_concordant_pairs(p.negatives, p.positives, metrics_detail::positive_key);
  r.auroc = static_cast<double>(twice) /
            (2.0 * static_cast<double>(p.positives.size()) * static_cast<double>(p.negatives.size()));
  return r;
}

pixel_metrics_result pixel_metrics(const_view maps, const_view masks, const pro_options& options) {
  return pixel_metrics(span<const const_view>(&maps, 1), span<const const_view>(&masks, 1), options);
}

region_labels label_regions(const_view mask) {
  if (mask.n() != 1 || mask.c() != 1)
    throw error(errc::shape_mismatch, "label_regions: expected a 1 x 1 x H x W mask, got shape " + mask.shape().str());
  if (mask.empty()) throw error(errc::empty_input, "label_regions: the mask is empty (shape " + mask.shape().str() + ")");
  for (index_t h = 0; h < mask.h(); ++h)
    for (index_t w = 0; w < mask.w(); ++w) {
      const float m = mask(0, 0, h, w);
      if (!(m == 0.0f || m == 1.0f))
        throw error(errc::invalid_argument, "label_regions: mask holds " + std::to_string(m) + " at (h=" +
                                                std::to_string(h) + ", w=" + std::to_string(w) +
                                                "); masks must hold exactly 0 or 1");
    }
  region_labels r;
  std::vector<std::int32_t> parent;
  r.count = metrics_detail::label_plane(mask, r.labels, parent);
  return r;
}

}  // namespace v0
}  // namespace flowad
