#include "metrics/ranking.hpp"

#include <algorithm>
#include <exception>
#include <cmath>
#include <limits>
#include <string>

#include "flowad/error.hpp"
#include "metrics/labeling.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace flowad {
inline namespace v0 {
namespace metrics_detail {

namespace {

struct plane_ref {
  const_view map;   // 1 x 1 x H x W
  const_view mask;  // 1 x 1 x H x W
  std::size_t list_index;
  index_t n;
};

// Pixels are first distributed into 2^16 buckets by the top 16 bits of their key (a counting sort
// straight from the maps, no scratch copy of the keys), then each bucket is sorted on its own, in
// cache. This keeps the temporary memory at the sorted keys themselves: on this class of machine
// first-touching fresh memory costs more than the whole sort.
constexpr unsigned bucket_bits = 16;
constexpr std::size_t bucket_count = std::size_t{1} << bucket_bits;
inline std::size_t bucket_of(std::uint32_t key) noexcept { return key >> (32 - bucket_bits); }

constexpr std::uint64_t parallel_min_pixels = 1 << 16;

int max_threads() noexcept {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Rethrows the exception of the lowest-numbered failed task (so messages are deterministic).
void rethrow_first(const std::vector<std::exception_ptr>& failures) {
  for (const std::exception_ptr& e : failures)
    if (e) std::rethrow_exception(e);
}

std::string where(const char* caller, std::size_t list_index, std::size_t list_size) {
  std::string s = caller;
  s += ": ";
  if (list_size > 1) s += "pair " + std::to_string(list_index) + ": ";
  return s;
}

[[noreturn]] void throw_bad_pixel(const plane_ref& p, index_t h, index_t w, const char* caller, std::size_t list_size) {
  const std::string prefix = where(caller, p.list_index, list_size);
  const std::string pos = " at (n=" + std::to_string(p.n) + ", h=" + std::to_string(h) + ", w=" + std::to_string(w) + ")";
  const float m = p.mask(0, 0, h, w);
  if (!(m == 0.0f || m == 1.0f))
    throw error(errc::invalid_argument, prefix + "mask holds " + std::to_string(m) + pos +
                                            "; masks must hold exactly 0 or 1 (binarize them first)");
  throw error(errc::non_finite, prefix + "anomaly map holds NaN" + pos);
}

template <class T>
void sort_bucket(T* data, std::size_t n, big_array<T>& scratch, unsigned first_byte, unsigned end_byte) {
  if (n < 2) return;
  if (n <= 64) {
    std::sort(data, data + n);  // the bucket's higher bits are equal; lower bits (region ids) only break ties
    return;
  }
  if (scratch.size() < n) scratch = big_array<T>(n);
  std::size_t counts[8][256] = {};
  for (std::size_t i = 0; i < n; ++i)
    for (unsigned b = first_byte; b < end_byte; ++b) ++counts[b][(data[i] >> (8 * b)) & 0xFF];
  T* src = data;
  T* dst = scratch.data();
  for (unsigned b = first_byte; b < end_byte; ++b) {
    std::size_t* c = counts[b];
    const unsigned shift = 8 * b;
    if (c[(src[0] >> shift) & 0xFF] == n) continue;
    std::size_t sum = 0;
    for (unsigned k = 0; k < 256; ++k) {
      const std::size_t count = c[k];
      c[k] = sum;
      sum += count;
    }
    for (std::size_t i = 0; i < n; ++i) dst[c[(src[i] >> shift) & 0xFF]++] = src[i];
    std::swap(src, dst);
  }
  if (src != data) std::copy(src, src + n, data);
}

}  // namespace

labeled_scores split_scores(span<const double> scores, span<const int> labels, const char* caller) {
  const std::string name = caller;
  if (scores.empty() && labels.empty()) throw error(errc::empty_input, name + ": no scores");
  if (scores.size() != labels.size())
    throw error(errc::shape_mismatch, name + ": " + std::to_string(scores.size()) + " scores but " +
                                          std::to_string(labels.size()) + " labels");
  labeled_scores out;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i])) throw error(errc::non_finite, name + ": score " + std::to_string(i) + " is NaN");
    if (labels[i] == 1)
      out.positives.push_back(double_key(scores[i]));
    else if (labels[i] == 0)
      out.negatives.push_back(double_key(scores[i]));
    else
      throw error(errc::invalid_argument, name + ": label " + std::to_string(i) + " is " + std::to_string(labels[i]) +
                                              "; labels must be 0 (normal) or 1 (anomalous)");
  }
  std::sort(out.negatives.begin(), out.negatives.end());
  std::sort(out.positives.begin(), out.positives.end());
  return out;
}

sorted_pixels sort_pixels(span<const const_view> maps, span<const const_view> masks, bool with_regions,
                          const char* caller) {
  const std::string name = caller;
  if (maps.size() != masks.size())
    throw error(errc::shape_mismatch, name + ": " + std::to_string(maps.size()) + " anomaly maps but " +
                                          std::to_string(masks.size()) + " masks");
  if (maps.empty()) throw error(errc::empty_input, name + ": no anomaly maps");

  std::vector<plane_ref> planes;
  std::uint64_t total_pixels = 0;
  for (std::size_t i = 0; i < maps.size(); ++i) {
    const std::string prefix = where(caller, i, maps.size());
    const const_view map = maps[i], mask = masks[i];
    if (map.c() != 1)
      throw error(errc::shape_mismatch,
                  prefix + "anomaly maps must have one channel, got shape " + map.shape().str());
    if (map.shape() != mask.shape())
      throw error(errc::shape_mismatch, prefix + "anomaly maps have shape " + map.shape().str() +
                                            " but masks have shape " + mask.shape().str());
    if (map.empty()) throw error(errc::empty_input, prefix + "anomaly maps are empty (shape " + map.shape().str() + ")");
    if (map.h() * map.w() > std::numeric_limits<std::int32_t>::max())
      throw error(errc::invalid_argument, prefix + "images of " + map.shape().str() + " are too large");
    for (index_t n = 0; n < map.n(); ++n) planes.push_back({map.batch(n, 1), mask.batch(n, 1), i, n});
    total_pixels += static_cast<std::uint64_t>(map.numel());
  }
  if (total_pixels >= (std::uint64_t{1} << 32))
    throw error(errc::invalid_argument, name + ": 2^32 or more pixels are not supported");

  // Planes are split into `groups` contiguous ranges, one histogram per group; any thread may then
  // scatter any group, since each group owns its offsets.
  const bool parallel = total_pixels >= parallel_min_pixels;
  const index_t plane_count = static_cast<index_t>(planes.size());
  const index_t groups = parallel ? std::min<index_t>(plane_count, max_threads()) : 1;
  auto group_begin = [&](index_t g) { return plane_count * g / groups; };
  const std::size_t ng = static_cast<std::size_t>(groups);
  std::vector<std::vector<std::uint32_t>> neg_hist(ng), pos_hist(ng);
  std::vector<std::uint64_t> plane_regions(planes.size(), 0), plane_positives(planes.size(), 0);
  std::vector<std::exception_ptr> failures(ng);

  // Pass 1: validate; histograms; regions per plane.
#pragma omp parallel for schedule(static, 1) if (parallel)
  for (index_t g = 0; g < groups; ++g) {
    const std::size_t gu = static_cast<std::size_t>(g);
    try {
      std::vector<std::uint32_t>& nh = neg_hist[gu];
      std::vector<std::uint32_t>& ph = pos_hist[gu];
      nh.assign(bucket_count, 0);
      ph.assign(bucket_count, 0);
      std::vector<std::int32_t> labels, parent;
      for (index_t k = group_begin(g); k < group_begin(g + 1); ++k) {
        const plane_ref& p = planes[static_cast<std::size_t>(k)];
        std::uint64_t positives = 0;
        for (index_t h = 0; h < p.map.h(); ++h)
          for (index_t w = 0; w < p.map.w(); ++w) {
            const float m = p.mask(0, 0, h, w);
            const float v = p.map(0, 0, h, w);
            if (std::isnan(v) || !(m == 0.0f || m == 1.0f)) throw_bad_pixel(p, h, w, caller, maps.size());
            const std::size_t b = bucket_of(float_key(v));
            if (m == 1.0f) {
              ++ph[b];
              ++positives;
            } else {
              ++nh[b];
            }
          }
        plane_positives[static_cast<std::size_t>(k)] = positives;
        if (with_regions && positives > 0)
          plane_regions[static_cast<std::size_t>(k)] = static_cast<std::uint64_t>(label_plane(p.mask, labels, parent));
      }
    } catch (...) {
      failures[gu] = std::current_exception();
    }
  }
  rethrow_first(failures);

  // Offsets: bucket starts, then each group's running position inside each bucket.
  std::vector<std::uint64_t> neg_start(bucket_count + 1, 0), pos_start(bucket_count + 1, 0);
  for (std::size_t b = 0; b < bucket_count; ++b) {
    std::uint64_t neg = neg_start[b], pos = pos_start[b];
    for (std::size_t g = 0; g < ng; ++g) {
      const std::uint64_t cn = neg_hist[g][b], cp = pos_hist[g][b];
      neg_hist[g][b] = static_cast<std::uint32_t>(neg);  // < 2^32: the pixel count is checked above
      pos_hist[g][b] = static_cast<std::uint32_t>(pos);
      neg += cn;
      pos += cp;
    }
    neg_start[b + 1] = neg;
    pos_start[b + 1] = pos;
  }
  std::vector<std::uint64_t> region_offset(planes.size() + 1, 0);
  for (std::size_t k = 0; k < planes.size(); ++k) region_offset[k + 1] = region_offset[k] + plane_regions[k];
  if (region_offset.back() > std::numeric_limits<std::uint32_t>::max())
    throw error(errc::invalid_argument, name + ": more than 2^32 - 1 ground-truth regions");

  sorted_pixels out;
  out.negatives = big_array<std::uint32_t>(static_cast<std::size_t>(neg_start.back()));
  out.positives = big_array<std::uint64_t>(static_cast<std::size_t>(pos_start.back()));
  if (with_regions) out.inverse_region_size.assign(region_offset.back(), 0.0);

  // Pass 2: scatter keys (and region ids) into their buckets.
#pragma omp parallel for schedule(static, 1) if (parallel)
  for (index_t g = 0; g < groups; ++g) {
    const std::size_t gu = static_cast<std::size_t>(g);
    try {
      std::uint32_t* nh = neg_hist[gu].data();
      std::uint32_t* ph = pos_hist[gu].data();
      std::vector<std::int32_t> labels, parent;
      for (index_t k = group_begin(g); k < group_begin(g + 1); ++k) {
        const std::size_t ku = static_cast<std::size_t>(k);
        const plane_ref& p = planes[ku];
        const bool label = with_regions && plane_positives[ku] > 0;
        if (label) label_plane(p.mask, labels, parent);
        const std::uint64_t base = region_offset[ku];
        double* region_size = label ? out.inverse_region_size.data() + base : nullptr;
        const index_t width = p.map.w();
        for (index_t h = 0; h < p.map.h(); ++h)
          for (index_t w = 0; w < width; ++w) {
            const std::uint32_t key = float_key(p.map(0, 0, h, w));
            const std::size_t b = bucket_of(key);
            if (p.mask(0, 0, h, w) == 1.0f) {
              std::uint64_t region = 0;
              if (label) {
                const std::uint64_t local = static_cast<std::uint64_t>(labels[static_cast<std::size_t>(h * width + w)] - 1);
                region_size[local] += 1.0;
                region = base + local;
              }
              out.positives[ph[b]++] = (static_cast<std::uint64_t>(key) << 32) | region;
            } else {
              out.negatives[nh[b]++] = key;
            }
          }
        if (label)
          for (std::uint64_t r = 0; r < plane_regions[ku]; ++r) region_size[r] = 1.0 / region_size[r];
      }
    } catch (...) {
      failures[gu] = std::current_exception();
    }
  }
  rethrow_first(failures);
  neg_hist.clear();
  pos_hist.clear();

  // Pass 3: sort each bucket on the remaining key bits (negatives: bytes 0-1; positives: bytes 4-5).
  std::exception_ptr sort_failure;
  const index_t bucket_total = static_cast<index_t>(bucket_count);
#pragma omp parallel if (parallel)
  {
    big_array<std::uint32_t> neg_scratch;
    big_array<std::uint64_t> pos_scratch;
#pragma omp for schedule(dynamic, 256)
    for (index_t bi = 0; bi < bucket_total; ++bi) {
      const std::size_t b = static_cast<std::size_t>(bi);
      try {
        sort_bucket(out.negatives.data() + neg_start[b], neg_start[b + 1] - neg_start[b], neg_scratch, 0, 2);
        sort_bucket(out.positives.data() + pos_start[b], pos_start[b + 1] - pos_start[b], pos_scratch, 4, 6);
      } catch (...) {
#pragma omp critical(flowad_sort_pixels_failure)
        if (!sort_failure) sort_failure = std::current_exception();
      }
    }
  }
  if (sort_failure) std::rethrow_exception(sort_failure);
  return out;
}

}  // namespace metrics_detail
}  // namespace v0
}  // namespace flowad
