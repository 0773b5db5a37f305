#include "kernels/channel_affine.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <initializer_list>
#include <utility>

#include "kernels/simd.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

namespace {

bool all_dense(layout l, std::initializer_list<const_view> views) {
  return std::all_of(views.begin(), views.end(), [l](const const_view& v) { return v.is_dense(l); });
}

// Pixels per partial sum of the NHWC reductions. Splitting the rows, not the channels, between threads
// lets each thread stream its own part of the tensor: with channels split, both threads read every
// row, and two threads were slower than one (docs/performance.md). The chunk is fixed, not derived
// from the thread count, so the summation order, and the result, do not depend on it.
constexpr index_t reduction_rows = 512;

// Reduces channel-last rows in chunks of reduction_rows into the totals (one value per channel each):
// reduce_chunk(first_row, rows, partial, stride) adds a chunk's sums into `partial`, zeroed, which
// holds Sums arrays of `stride` values; the partials are then added into the totals in chunk order.
template <std::size_t Sums, class ReduceChunk>
void reduce_row_chunks(index_t pixels, index_t channels, aligned_vector<double>& partials,
                       const std::array<double*, Sums>& totals, const ReduceChunk& reduce_chunk) {
  const index_t chunks = (pixels + reduction_rows - 1) / reduction_rows;
  const index_t stride = (channels + 7) / 8 * 8;  // 64-byte lines: threads never share one
  const index_t chunk_size = static_cast<index_t>(Sums) * stride;
  const auto needed = static_cast<std::size_t>(chunks * chunk_size);
  if (partials.size() < needed) partials.resize(needed);
  double* base = partials.data();
#pragma omp parallel for schedule(static)
  for (index_t k = 0; k < chunks; ++k) {
    double* partial = base + k * chunk_size;
    std::fill(partial, partial + chunk_size, 0.0);
    const index_t first = k * reduction_rows;
    reduce_chunk(first, std::min(reduction_rows, pixels - first), partial, stride);
  }
#pragma omp parallel for schedule(static) if (channels * chunks >= 4096)
  for (index_t c = 0; c < channels; ++c)
    for (std::size_t i = 0; i < Sums; ++i) {
      double t = 0.0;
      for (index_t k = 0; k < chunks; ++k) t += base[k * chunk_size + static_cast<index_t>(i) * stride + c];
      totals[i][c] += t;
    }
}

// Pixels per task of the row-parallel loops: enough work per call, small enough to balance.
constexpr index_t rows_per_task = 32;

// The serial inner kernels, cloned for AVX-512 and AVX2 (the OpenMP loops above them are not).

// Channel-last rows: y[r][c] = x[r][c]·scale[c] + shift[c] for r < rows, c < width.
FLOWAD_SIMD_CLONES
void affine_rows(const float* x, float* y, index_t rows, index_t width, const float* scale, const float* shift) {
  for (index_t r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    float* yr = y + r * width;
#pragma omp simd
    for (index_t c = 0; c < width; ++c) yr[c] = xr[c] * scale[c] + shift[c];
  }
}

// Channel-last rows: sum[c] += Σ_r x[r][c].
FLOWAD_SIMD_CLONES
void sum_rows(const float* x, index_t rows, index_t width, double* sum) {
  for (index_t r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
#pragma omp simd
    for (index_t c = 0; c < width; ++c) sum[c] += xr[c];
  }
}

// One channel plane: y[i] = x[i]·a + t.
FLOWAD_SIMD_CLONES
void affine_plane(const float* x, float* y, index_t count, float a, float t) {
#pragma omp simd
  for (index_t i = 0; i < count; ++i) y[i] = x[i] * a + t;
}

// Channel-last rows: sum[c] += Σ_r (x − center[c]), sum_sq[c] += Σ_r (x − center[c])².
FLOWAD_SIMD_CLONES
void moments_rows(const float* x, index_t rows, index_t width, const double* center, double* sum, double* sum_sq) {
  for (index_t r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
#pragma omp simd
    for (index_t c = 0; c < width; ++c) {
      const double v = static_cast<double>(xr[c]) - center[c];
      sum[c] += v;
      sum_sq[c] += v * v;
    }
  }
}

// One channel plane: returns {Σ (x − center), Σ (x − center)²}.
FLOWAD_SIMD_CLONES
std::pair<double, double> moments_plane(const float* x, index_t count, double center) {
  double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
  for (index_t i = 0; i < count; ++i) {
    const double v = static_cast<double>(x[i]) - center;
    s1 += v;
    s2 += v * v;
  }
  return {s1, s2};
}

// Channel-last rows: dx = dy·scale; sum[c] += Σ dy, dot[c] += Σ dy·x.
FLOWAD_SIMD_CLONES
void affine_backward_rows(const float* x, const float* dy, float* dx, index_t rows, index_t width, const float* scale,
                          double* sum, double* dot) {
  for (index_t r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    const float* dyr = dy + r * width;
    float* dxr = dx + r * width;
#pragma omp simd
    for (index_t c = 0; c < width; ++c) {
      const float g = dyr[c];
      dxr[c] = g * scale[c];
      sum[c] += g;
      dot[c] += static_cast<double>(g) * xr[c];
    }
  }
}

// One channel plane: dx = dy·a; returns {Σ dy, Σ dy·x}.
FLOWAD_SIMD_CLONES
std::pair<double, double> affine_backward_plane(const float* x, const float* dy, float* dx, index_t count, float a) {
  double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
  for (index_t i = 0; i < count; ++i) {
    const float g = dy[i];
    dx[i] = g * a;
    s1 += g;
    s2 += static_cast<double>(g) * x[i];
  }
  return {s1, s2};
}

}  // namespace

void channel_affine(const_view src, view dst, const float* scale, const float* shift) {
  const shape4 s = src.shape();
  const index_t c_count = s.c, plane = s.h * s.w;
  const float* in = src.data();
  float* out = dst.data();
  if (all_dense(layout::nhwc, {src, dst})) {
    const index_t pixels = s.pixels(), tasks = (pixels + rows_per_task - 1) / rows_per_task;
#pragma omp parallel for schedule(static)
    for (index_t task = 0; task < tasks; ++task) {
      const index_t first = task * rows_per_task, rows = std::min(rows_per_task, pixels - first);
      affine_rows(in + first * c_count, out + first * c_count, rows, c_count, scale, shift);
    }
  } else if (all_dense(layout::nchw, {src, dst})) {
    const index_t planes = s.n * c_count;
#pragma omp parallel for schedule(static)
    for (index_t k = 0; k < planes; ++k)
      affine_plane(in + k * plane, out + k * plane, plane, scale[k % c_count], shift[k % c_count]);
  } else {
#pragma omp parallel for collapse(2) schedule(static)
    for (index_t n = 0; n < s.n; ++n)
      for (index_t c = 0; c < c_count; ++c)
        for (index_t h = 0; h < s.h; ++h)
          for (index_t w = 0; w < s.w; ++w) dst(n, c, h, w) = src(n, c, h, w) * scale[c] + shift[c];
  }
}

void channel_moments(const_view x, const double* center, double* sum, double* sum_sq,
                     aligned_vector<double>& partials) {
  const shape4 s = x.shape();
  const index_t c_count = s.c, plane = s.h * s.w;
  const float* in = x.data();
  if (all_dense(layout::nhwc, {x})) {
    reduce_row_chunks<2>(s.pixels(), c_count, partials, {sum, sum_sq},
                         [&](index_t first, index_t rows, double* partial, index_t stride) {
                           moments_rows(in + first * c_count, rows, c_count, center, partial, partial + stride);
                         });
  } else if (all_dense(layout::nchw, {x})) {
#pragma omp parallel for schedule(static)
    for (index_t c = 0; c < c_count; ++c)
      for (index_t n = 0; n < s.n; ++n) {
        const auto [s1, s2] = moments_plane(in + (n * c_count + c) * plane, plane, center[c]);
        sum[c] += s1;
        sum_sq[c] += s2;
      }
  } else {
#pragma omp parallel for schedule(static)
    for (index_t c = 0; c < c_count; ++c) {
      double s1 = 0.0, s2 = 0.0;
      for (index_t n = 0; n < s.n; ++n)
        for (index_t h = 0; h < s.h; ++h)
          for (index_t w = 0; w < s.w; ++w) {
            const double v = static_cast<double>(x(n, c, h, w)) - center[c];
            s1 += v;
            s2 += v * v;
          }
      sum[c] += s1;
      sum_sq[c] += s2;
    }
  }
}

void channel_mean_std(const_view x, double* mean, double* std_dev, aligned_vector<double>& partials) {
  const auto c_count = static_cast<std::size_t>(x.c());
  const double count = static_cast<double>(x.shape().pixels());
  std::fill(mean, mean + c_count, 0.0);
  aligned_vector<double> sum(c_count, 0.0);
  channel_moments(x, mean, sum.data(), std_dev, partials);
  for (std::size_t c = 0; c < c_count; ++c) mean[c] = sum[c] / count;
  std::fill(sum.begin(), sum.end(), 0.0);
  std::fill(std_dev, std_dev + c_count, 0.0);
  channel_moments(x, mean, sum.data(), std_dev, partials);
  // sum[c] = Σ(x − mean) is zero up to rounding; removing its square keeps the variance exact.
  for (std::size_t c = 0; c < c_count; ++c)
    std_dev[c] = std::sqrt(std::max(0.0, (std_dev[c] - sum[c] * sum[c] / count) / count));
}

void channel_sums(const float* x, index_t pixels, index_t channels, double* sum, aligned_vector<double>& partials) {
  reduce_row_chunks<1>(pixels, channels, partials, {sum}, [&](index_t first, index_t rows, double* partial, index_t) {
    sum_rows(x + first * channels, rows, channels, partial);
  });
}

void channel_affine_backward(const_view src, const_view diff_dst, view diff_src, const float* scale, double* sum_diff,
                             double* sum_diff_src, aligned_vector<double>& partials) {
  const shape4 s = src.shape();
  const index_t c_count = s.c, plane = s.h * s.w;
  const float* x = src.data();
  const float* dy = diff_dst.data();
  float* dx = diff_src.data();
  if (all_dense(layout::nhwc, {src, diff_dst, diff_src})) {
    reduce_row_chunks<2>(s.pixels(), c_count, partials, {sum_diff, sum_diff_src},
                         [&](index_t first, index_t rows, double* partial, index_t stride) {
                           const index_t offset = first * c_count;
                           affine_backward_rows(x + offset, dy + offset, dx + offset, rows, c_count, scale, partial,
                                                partial + stride);
                         });
  } else if (all_dense(layout::nchw, {src, diff_dst, diff_src})) {
#pragma omp parallel for schedule(static)
    for (index_t c = 0; c < c_count; ++c)
      for (index_t n = 0; n < s.n; ++n) {
        const index_t base = (n * c_count + c) * plane;
        const auto [s1, s2] = affine_backward_plane(x + base, dy + base, dx + base, plane, scale[c]);
        sum_diff[c] += s1;
        sum_diff_src[c] += s2;
      }
  } else {
#pragma omp parallel for schedule(static)
    for (index_t c = 0; c < c_count; ++c) {
      const float a = scale[c];
      double s1 = 0.0, s2 = 0.0;
      for (index_t n = 0; n < s.n; ++n)
        for (index_t h = 0; h < s.h; ++h)
          for (index_t w = 0; w < s.w; ++w) {
            const float g = diff_dst(n, c, h, w);
            diff_src(n, c, h, w) = g * a;
            s1 += g;
            s2 += static_cast<double>(g) * src(n, c, h, w);
          }
      sum_diff[c] += s1;
      sum_diff_src[c] += s2;
    }
  }
}

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
