#include "flowad/scoring/anomaly_map.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "flowad/detail/checks.hpp"
#include "flowad/detail/reflect_index.hpp"
#include "scoring/common.hpp"

namespace flowad {
inline namespace v0 {

namespace {

using scoring_detail::max_threads;
using scoring_detail::parallel_min_values;
using scoring_detail::thread_index;

// Source taps of one output axis for PyTorch's bilinear, align_corners=False, with the source's cells
// moved by cell_offset cells (0: PyTorch's grid).
struct bilinear_taps {
  std::vector<index_t> lo, hi;
  std::vector<double> frac;  // weight of hi
};

void make_taps(index_t in, index_t out, double cell_offset, bilinear_taps& t) {
  t.lo.resize(static_cast<std::size_t>(out));
  t.hi.resize(static_cast<std::size_t>(out));
  t.frac.resize(static_cast<std::size_t>(out));
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (index_t d = 0; d < out; ++d) {
    const double x = std::max(0.0, (static_cast<double>(d) + 0.5) * scale - 0.5 - cell_offset);
    index_t x0 = static_cast<index_t>(x);  // x >= 0: truncation is floor
    if (x0 > in - 1) x0 = in - 1;
    const index_t x1 = std::min(x0 + 1, in - 1);
    const std::size_t k = static_cast<std::size_t>(d);
    t.lo[k] = x0;
    t.hi[k] = x1;
    t.frac[k] = x1 == x0 ? 0.0 : x - static_cast<double>(x0);
  }
}

// Bilinear sample of plane (n, c) of src at output (y, x) of the given taps.
inline double sample(const const_view& src, index_t n, index_t c, const bilinear_taps& ty, const bilinear_taps& tx,
                     std::size_t y, std::size_t x) noexcept {
  const double ly = ty.frac[y], lx = tx.frac[x];
  const index_t y0 = ty.lo[y], y1 = ty.hi[y], x0 = tx.lo[x], x1 = tx.hi[x];
  const double top = (1.0 - lx) * src(n, c, y0, x0) + lx * src(n, c, y0, x1);
  const double bottom = (1.0 - lx) * src(n, c, y1, x0) + lx * src(n, c, y1, x1);
  return (1.0 - ly) * top + ly * bottom;
}

void require_distinct(const const_view& src, const char* src_name, const const_view& dst, const char* caller) {
  if (detail::may_overlap(src, dst))
    throw error(errc::invalid_argument, std::string(caller) + ": " + src_name + " and the destination overlap");
}

void require_target_size(index_t height, index_t width, const char* caller) {
  if (height <= 0 || width <= 0)
    throw error(errc::invalid_argument, std::string(caller) + ": target size must be positive, got " +
                                            std::to_string(height) + "x" + std::to_string(width));
}

// Offsets beyond a cell are not a grid convention but a displaced map.
void require_cell_offset(double cell_offset, const char* caller) {
  if (!(std::abs(cell_offset) <= 1.0))
    throw error(errc::invalid_argument, std::string(caller) + ": a cell offset must be finite and within one cell, got " +
                                            std::to_string(cell_offset));
}

// likelihood_sum's per-image transform of one N x 1 x h x w energy map: exp(-(E - min E)) over each
// image's positions, into `storage` (grown, never shrunk); returns a dense view of it.
const_view relative_likelihoods(const const_view& energy, std::vector<float>& storage) {
  const index_t images = energy.n(), height = energy.h(), width = energy.w();
  const std::size_t size = static_cast<std::size_t>(images * height * width);
  if (storage.size() < size) storage.resize(size);
  const view out(storage.data(), shape4{images, 1, height, width}, layout::nchw);
  for (index_t n = 0; n < images; ++n) {
    float least = std::numeric_limits<float>::infinity();
    for (index_t y = 0; y < height; ++y)
      for (index_t x = 0; x < width; ++x) least = std::min(least, energy(n, 0, y, x));
    for (index_t y = 0; y < height; ++y)
      for (index_t x = 0; x < width; ++x) out(n, 0, y, x) = std::exp(least - energy(n, 0, y, x));
  }
  return out;
}

}  // namespace

struct map_buffers::impl {
  bilinear_taps ty, tx;
  std::vector<double> taps, rows;
  std::vector<float> planes;
  std::vector<float> relative;  // likelihood_sum: one scale's relative likelihoods before upsampling
};

map_buffers::map_buffers() : impl_(std::make_unique<impl>()) {}
map_buffers::~map_buffers() = default;
map_buffers::map_buffers(map_buffers&&) noexcept = default;
map_buffers& map_buffers::operator=(map_buffers&&) noexcept = default;

// ---- upsampling ---------------------------------------------------------------------------------
void upsample_bilinear(const_view src, view dst, double cell_offset) {
  map_buffers buffers;
  upsample_bilinear(src, dst, buffers, cell_offset);
}

void upsample_bilinear(const_view src, view dst, map_buffers& buffers, double cell_offset) {
  detail::require_nonempty(src, "upsample_bilinear: source");
  detail::require_nonempty(dst, "upsample_bilinear: destination");
  if (src.n() != dst.n() || src.c() != dst.c())
    throw error(errc::shape_mismatch, "upsample_bilinear: source has shape " + src.shape().str() +
                                          " but destination has shape " + dst.shape().str() +
                                          " (N and C must agree)");
  scoring_detail::require_finite(src, "upsample_bilinear: source");
  require_distinct(src, "source", dst, "upsample_bilinear");
  require_cell_offset(cell_offset, "upsample_bilinear");
  bilinear_taps& ty = buffers.impl_->ty;
  bilinear_taps& tx = buffers.impl_->tx;
  make_taps(src.h(), dst.h(), cell_offset, ty);
  make_taps(src.w(), dst.w(), cell_offset, tx);
  const index_t planes = src.n() * src.c(), channels = src.c(), height = dst.h(), width = dst.w();
#pragma omp parallel for collapse(2) schedule(static) if (planes * height * width >= parallel_min_values)
  for (index_t p = 0; p < planes; ++p)
    for (index_t y = 0; y < height; ++y) {
      const index_t n = p / channels, c = p % channels;
      for (index_t x = 0; x < width; ++x)
        dst(n, c, y, x) = static_cast<float>(sample(src, n, c, ty, tx, static_cast<std::size_t>(y), static_cast<std::size_t>(x)));
    }
}

tensor upsample_bilinear(const_view src, index_t height, index_t width, double cell_offset) {
  require_target_size(height, width, "upsample_bilinear");
  tensor out({src.n(), src.c(), height, width});
  upsample_bilinear(src, out.view(), cell_offset);
  return out;
}

// ---- Gaussian blur ------------------------------------------------------------------------------
int gaussian_radius(double sigma) {
  if (!(sigma >= 0.0) || !std::isfinite(sigma))
    throw error(errc::invalid_argument, "gaussian blur: sigma must be finite and >= 0, got " + std::to_string(sigma));
  const double r = 4.0 * sigma + 0.5;
  if (r > 1e6) throw error(errc::invalid_argument, "gaussian blur: sigma " + std::to_string(sigma) + " is too large");
  return static_cast<int>(r);
}

namespace {
void fill_gaussian_kernel(double sigma, std::vector<double>& taps) {
  const int r = gaussian_radius(sigma);
  taps.assign(static_cast<std::size_t>(2 * r + 1), 1.0);
  if (r == 0) return;
  double sum = 0.0;
  for (int i = -r; i <= r; ++i) {
    const double v = std::exp(-0.5 * static_cast<double>(i) * static_cast<double>(i) / (sigma * sigma));
    taps[static_cast<std::size_t>(i + r)] = v;
    sum += v;
  }
  for (double& v : taps) v /= sum;
}
}  // namespace

std::vector<double> gaussian_kernel(double sigma) {
  std::vector<double> taps;
  fill_gaussian_kernel(sigma, taps);
  return taps;
}

void gaussian_blur(const_view src, view dst, double sigma) {
  map_buffers buffers;
  gaussian_blur(src, dst, sigma, buffers);
}

void gaussian_blur(const_view src, view dst, double sigma, map_buffers& buffers) {
  std::vector<double>& taps = buffers.impl_->taps;
  fill_gaussian_kernel(sigma, taps);  // validates sigma
  detail::require_nonempty(src, "gaussian_blur: source");
  detail::require_same_shape(src, "gaussian_blur: source", dst, "destination");
  scoring_detail::require_finite(src, "gaussian_blur: source");
  const bool in_place = src.data() == dst.data() && src.strides().n == dst.strides().n &&
                        src.strides().c == dst.strides().c && src.strides().h == dst.strides().h &&
                        src.strides().w == dst.strides().w;
  if (!in_place) require_distinct(src, "source", dst, "gaussian_blur");
  if (sigma == 0.0 || taps.size() == 1) {
    if (!in_place) copy(src, dst);
    return;
  }
  const index_t r = static_cast<index_t>(taps.size() / 2);
  const index_t planes = src.n() * src.c(), channels = src.c(), height = src.h(), width = src.w();
  // Per-thread scratch, allocated here so that nothing inside the parallel region can throw.
  const bool parallel = planes * height * width >= parallel_min_values;
  const std::size_t threads = parallel ? static_cast<std::size_t>(max_threads()) : 1;
  const std::size_t plane_size = static_cast<std::size_t>(height * width);
  const std::size_t row_size = static_cast<std::size_t>(width + 2 * r);
  std::vector<float>& tmp_all = buffers.impl_->planes;  // after the column pass
  std::vector<double>& row_all = buffers.impl_->rows;   // accumulator + padded row
  if (tmp_all.size() < threads * plane_size) tmp_all.resize(threads * plane_size);
  if (row_all.size() < threads * (static_cast<std::size_t>(width) + row_size))
    row_all.resize(threads * (static_cast<std::size_t>(width) + row_size));
#pragma omp parallel if (parallel)
  {
    const std::size_t thread = parallel ? static_cast<std::size_t>(thread_index()) : 0;
    float* const tmp = tmp_all.data() + thread * plane_size;
    double* const acc = row_all.data() + thread * (static_cast<std::size_t>(width) + row_size);
    double* const padded = acc + width;
#pragma omp for schedule(static)
    for (index_t p = 0; p < planes; ++p) {
      const index_t n = p / channels, c = p % channels;
      // Along H first (scipy's axis 0), into tmp; src is fully read before dst is written.
      for (index_t y = 0; y < height; ++y) {
        std::fill(acc, acc + width, 0.0);
        for (index_t t = -r; t <= r; ++t) {
          const double wt = taps[static_cast<std::size_t>(t + r)];
          const index_t sy = detail::reflect_index(y + t, height);
          for (index_t x = 0; x < width; ++x) acc[x] += wt * src(n, c, sy, x);
        }
        float* row = tmp + y * width;
        for (index_t x = 0; x < width; ++x) row[x] = static_cast<float>(acc[x]);
      }
      // Along W.
      for (index_t y = 0; y < height; ++y) {
        const float* row = tmp + y * width;
        for (index_t k = 0; k < width + 2 * r; ++k) padded[k] = row[detail::reflect_index(k - r, width)];
        for (index_t x = 0; x < width; ++x) {
          double s = 0.0;
          const double* in = padded + x;
          for (std::size_t t = 0; t < taps.size(); ++t) s += taps[t] * in[t];
          dst(n, c, y, x) = static_cast<float>(s);
        }
      }
    }
  }
}

tensor gaussian_blur(const_view src, double sigma) {
  tensor out(src.shape());
  gaussian_blur(src, out.view(), sigma);
  return out;
}

// ---- combination --------------------------------------------------------------------------------
void combine_maps(span<const const_view> maps, view dst, map_combination how, span<const double> cell_offsets) {
  map_buffers buffers;
  combine_maps(maps, dst, how, buffers, cell_offsets);
}

void combine_maps(span<const const_view> maps, view dst, map_combination how, map_buffers& buffers,
                  span<const double> cell_offsets) {
  if (maps.empty()) throw error(errc::empty_input, "combine_maps: no maps");
  if (!cell_offsets.empty() && cell_offsets.size() != maps.size())
    throw error(errc::shape_mismatch, "combine_maps: " + std::to_string(cell_offsets.size()) + " cell offsets for " +
                                          std::to_string(maps.size()) + " maps (give one per map, or none)");
  for (const double offset : cell_offsets) require_cell_offset(offset, "combine_maps");
  detail::require_nonempty(dst, "combine_maps: destination");
  if (dst.c() != 1)
    throw error(errc::shape_mismatch, "combine_maps: the destination must have one channel, got shape " + dst.shape().str());
  for (std::size_t i = 0; i < maps.size(); ++i) {
    // Messages are built only on failure: this runs on every scoring call.
    const auto name = [i] { return "combine_maps: map " + std::to_string(i); };
    if (maps[i].empty()) detail::require_nonempty(maps[i], name().c_str());
    if (maps[i].c() != 1 || maps[i].n() != dst.n())
      throw error(errc::shape_mismatch, name() + " has shape " + maps[i].shape().str() + " but the destination has shape " +
                                            dst.shape().str() + " (N must agree, C must be 1)");
    scoring_detail::require_finite(maps[i], "combine_maps: a map");
    if (detail::may_overlap(maps[i], dst)) require_distinct(maps[i], ("map " + std::to_string(i)).c_str(), dst, "combine_maps");
  }
  const index_t images = dst.n(), height = dst.h(), width = dst.w();
  const bool likelihoods = how == map_combination::likelihood_sum;
  for (std::size_t i = 0; i < maps.size(); ++i) {
    const const_view src = likelihoods ? relative_likelihoods(maps[i], buffers.impl_->relative) : maps[i];
    bilinear_taps& ty = buffers.impl_->ty;
    bilinear_taps& tx = buffers.impl_->tx;
    const double offset = cell_offsets.empty() ? 0.0 : cell_offsets[i];
    make_taps(src.h(), height, offset, ty);
    make_taps(src.w(), width, offset, tx);
    const bool first = i == 0;
#pragma omp parallel for collapse(2) schedule(static) if (images * height * width >= parallel_min_values)
    for (index_t n = 0; n < images; ++n)
      for (index_t y = 0; y < height; ++y)
        for (index_t x = 0; x < width; ++x) {
          const float v = static_cast<float>(sample(src, n, 0, ty, tx, static_cast<std::size_t>(y), static_cast<std::size_t>(x)));
          float& d = dst(n, 0, y, x);
          if (first)
            d = v;
          else if (how == map_combination::product)
            d *= v;
          else
            d += v;
        }
  }
  if (how == map_combination::mean && maps.size() > 1) {
    const float count = static_cast<float>(maps.size());
#pragma omp parallel for collapse(2) schedule(static) if (images * height * width >= parallel_min_values)
    for (index_t n = 0; n < images; ++n)
      for (index_t y = 0; y < height; ++y)
        for (index_t x = 0; x < width; ++x) dst(n, 0, y, x) /= count;
  }
  if (likelihoods) {
#pragma omp parallel for schedule(static) if (images * height * width >= parallel_min_values)
    for (index_t n = 0; n < images; ++n) {
      float most = -std::numeric_limits<float>::infinity();
      for (index_t y = 0; y < height; ++y)
        for (index_t x = 0; x < width; ++x) most = std::max(most, dst(n, 0, y, x));
      for (index_t y = 0; y < height; ++y)
        for (index_t x = 0; x < width; ++x) dst(n, 0, y, x) = most - dst(n, 0, y, x);
    }
  }
}

const char* to_string(map_combination how) noexcept {
  switch (how) {
    case map_combination::mean: return "mean";
    case map_combination::sum: return "sum";
    case map_combination::product: return "product";
    case map_combination::likelihood_sum: return "likelihood_sum";
  }
  return "unknown";
}

tensor combine_maps(span<const const_view> maps, index_t height, index_t width, map_combination how,
                    span<const double> cell_offsets) {
  require_target_size(height, width, "combine_maps");
  if (maps.empty()) throw error(errc::empty_input, "combine_maps: no maps");
  tensor out({maps[0].n(), 1, height, width});
  combine_maps(maps, out.view(), how, cell_offsets);
  return out;
}

}  // namespace v0
}  // namespace flowad
