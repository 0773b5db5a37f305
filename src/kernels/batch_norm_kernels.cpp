#include "kernels/batch_norm_kernels.hpp"

#include <omp.h>

#include <algorithm>

#include "flowad/detail/checks.hpp"
#include "kernels/simd.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

namespace {

FLOWAD_SIMD_CLONES
void moments_block(const float* x, index_t cells, index_t channels, double* s1, double* s2) {
  for (index_t p = 0; p < cells; ++p) {
    const float* row = x + p * channels;
#pragma omp simd
    for (index_t c = 0; c < channels; ++c) {
      const double v = row[c];
      s1[c] += v;
      s2[c] += v * v;
    }
  }
}

FLOWAD_SIMD_CLONES
void gradient_sums_block(const float* x, const float* y, const float* dy, index_t cells, index_t channels, bool relu,
                         double* s1, double* s2) {
  for (index_t p = 0; p < cells; ++p) {
    const float* xr = x + p * channels;
    const float* dr = dy + p * channels;
    if (relu) {
      const float* yr = y + p * channels;
#pragma omp simd
      for (index_t c = 0; c < channels; ++c) {
        const double g = yr[c] > 0.0f ? dr[c] : 0.0f;
        s1[c] += g;
        s2[c] += g * xr[c];
      }
    } else {
#pragma omp simd
      for (index_t c = 0; c < channels; ++c) {
        const double g = dr[c];
        s1[c] += g;
        s2[c] += g * xr[c];
      }
    }
  }
}

FLOWAD_SIMD_CLONES
void apply_block(const float* x, float* y, index_t cells, index_t channels, const float* center, const float* scale,
                 const float* shift, bool relu) {
  for (index_t p = 0; p < cells; ++p) {
    const float* xr = x + p * channels;
    float* yr = y + p * channels;
    if (relu) {
#pragma omp simd
      for (index_t c = 0; c < channels; ++c) yr[c] = std::max((xr[c] - center[c]) * scale[c] + shift[c], 0.0f);
    } else {
#pragma omp simd
      for (index_t c = 0; c < channels; ++c) yr[c] = (xr[c] - center[c]) * scale[c] + shift[c];
    }
  }
}

FLOWAD_SIMD_CLONES
void backward_data_block(const float* x, const float* y, const float* dy, float* dx, index_t cells, index_t channels,
                         bool relu, const float* center, const float* a, const float* b, const float* d) {
  for (index_t p = 0; p < cells; ++p) {
    const float* xr = x + p * channels;
    const float* dr = dy + p * channels;
    float* out = dx + p * channels;
    if (relu) {
      const float* yr = y + p * channels;
#pragma omp simd
      for (index_t c = 0; c < channels; ++c) {
        const float g = yr[c] > 0.0f ? dr[c] : 0.0f;
        out[c] = g * a[c] + (xr[c] - center[c]) * b[c] + d[c];
      }
    } else {
#pragma omp simd
      for (index_t c = 0; c < channels; ++c) out[c] = dr[c] * a[c] + (xr[c] - center[c]) * b[c] + d[c];
    }
  }
}

// Runs block(first_cell, cell_count, s1, s2) over the cells split into one contiguous range per thread,
// each thread summing into its own zeroed partials, then adds the partials in thread order.
template <class Block>
void per_channel_sums(index_t cells, index_t channels, double* out1, double* out2, aligned_vector<double>& partials,
                      Block&& block) {
  const bool parallel = cells * channels >= detail::parallel_threshold;
  const int max_threads = parallel ? omp_get_max_threads() : 1;
  const auto stride = static_cast<std::size_t>(2 * channels);
  if (partials.size() < stride * static_cast<std::size_t>(max_threads))
    partials.resize(stride * static_cast<std::size_t>(max_threads));
  int used = 1;
#pragma omp parallel num_threads(max_threads) if (parallel)
  {
    const int threads = omp_get_num_threads(), t = omp_get_thread_num();
#pragma omp single
    used = threads;
    double* s1 = partials.data() + stride * static_cast<std::size_t>(t);
    double* s2 = s1 + channels;
    std::fill(s1, s1 + stride, 0.0);
    const index_t first = cells * t / threads, last = cells * (t + 1) / threads;
    if (last > first) block(first, last - first, s1, s2);
  }
  std::fill(out1, out1 + channels, 0.0);
  std::fill(out2, out2 + channels, 0.0);
  for (int t = 0; t < used; ++t) {
    const double* s1 = partials.data() + stride * static_cast<std::size_t>(t);
    for (index_t c = 0; c < channels; ++c) {
      out1[c] += s1[c];
      out2[c] += s1[channels + c];
    }
  }
}

// Cells per parallel work item of the element-wise passes.
constexpr index_t cell_block = 64;

}  // namespace

void batch_norm_moments(const float* x, index_t cells, index_t channels, double* sum, double* sum_squares,
                        aligned_vector<double>& partials) {
  per_channel_sums(cells, channels, sum, sum_squares, partials, [&](index_t first, index_t count, double* s1, double* s2) {
    moments_block(x + first * channels, count, channels, s1, s2);
  });
}

void batch_norm_gradient_sums(const float* x, const float* dst, const float* diff_dst, index_t cells,
                              index_t channels, bool relu, double* sum_g, double* sum_gx,
                              aligned_vector<double>& partials) {
  per_channel_sums(cells, channels, sum_g, sum_gx, partials, [&](index_t first, index_t count, double* s1, double* s2) {
    const index_t offset = first * channels;
    gradient_sums_block(x + offset, relu ? dst + offset : nullptr, diff_dst + offset, count, channels, relu, s1, s2);
  });
}

void batch_norm_apply(const float* x, float* y, index_t cells, index_t channels, const float* center,
                      const float* scale, const float* shift, bool relu) {
  const index_t blocks = (cells + cell_block - 1) / cell_block;
#pragma omp parallel for schedule(static) if (cells * channels >= detail::parallel_threshold)
  for (index_t i = 0; i < blocks; ++i) {
    const index_t first = i * cell_block, count = std::min(cell_block, cells - first);
    apply_block(x + first * channels, y + first * channels, count, channels, center, scale, shift, relu);
  }
}

void batch_norm_backward_data(const float* x, const float* dst, const float* diff_dst, float* diff_src,
                              index_t cells, index_t channels, bool relu, const float* center, const float* a,
                              const float* b, const float* d) {
  const index_t blocks = (cells + cell_block - 1) / cell_block;
#pragma omp parallel for schedule(static) if (cells * channels >= detail::parallel_threshold)
  for (index_t i = 0; i < blocks; ++i) {
    const index_t first = i * cell_block, count = std::min(cell_block, cells - first), offset = first * channels;
    backward_data_block(x + offset, relu ? dst + offset : nullptr, diff_dst + offset, diff_src + offset, count,
                        channels, relu, center, a, b, d);
  }
}

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
