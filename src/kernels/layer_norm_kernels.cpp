#include "kernels/layer_norm_kernels.hpp"

#include <algorithm>
#include <cmath>

#include "flowad/detail/checks.hpp"
#include "kernels/simd.hpp"

namespace flowad {
inline namespace v0 {

namespace kernels {

namespace {

// Values per task of the per-sample passes (32 KiB of floats): a sample of FastFlow's first ResNet18
// level is 32 chunks, so a batch of one still splits between threads. Fixed, so that the order of the
// per-sample sums, and their result, do not depend on the thread count.
constexpr index_t sample_chunk = 8192;

// Positions per task of the parameter gradients: each task sums its positions over every sample in
// turn, into two double accumulators per position (64 KiB, in L2). Runs of 16 KiB from each sample keep
// the hardware prefetchers streaming; with runs of 2 KiB (512 positions) the pass was about 1.3x slower.
constexpr index_t weight_block = 4096;

index_t chunks_of(index_t size, index_t chunk) { return (size + chunk - 1) / chunk; }

double* grow(aligned_vector<double>& v, index_t count) {
  if (v.size() < static_cast<std::size_t>(count)) v.resize(static_cast<std::size_t>(count));
  return v.data();
}

// The serial inner kernels, cloned for AVX-512 and AVX2 (the OpenMP loops around them are not).

// out = {Σ (x − center), Σ (x − center)²}: sums shifted by a value of the sample, so that a large mean
// does not cancel the variance.
FLOWAD_SIMD_CLONES
void shifted_sums(const float* x, index_t count, double center, double* out) {
  double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
  for (index_t i = 0; i < count; ++i) {
    const double v = static_cast<double>(x[i]) - center;
    s1 += v;
    s2 += v * v;
  }
  out[0] = s1;
  out[1] = s2;
}

FLOWAD_SIMD_CLONES
void normalize_chunk(const float* x, float* y, index_t count, float mean, float rstd, const float* weight,
                     const float* bias) {
#pragma omp simd
  for (index_t i = 0; i < count; ++i) y[i] = (x[i] - mean) * rstd * weight[i] + bias[i];
}

// Positions [first, first + count) of every sample, summed over the samples in order: Σ dy·x̂ into acc_w
// and Σ dy into acc_b; with Sums, also each sample's partial sums of g = dy·weight and g·x̂ over these
// positions into sums[2n] and sums[2n + 1].
template <bool Sums>
inline void weight_block_sums(const float* x, const float* dy, index_t samples, index_t size, index_t first,
                              index_t count, const double* mean, const double* rstd, const float* weight,
                              double* acc_w, double* acc_b, double* sums) {
  const float* w = Sums ? weight + first : nullptr;
  for (index_t n = 0; n < samples; ++n) {
    const float* xr = x + n * size + first;
    const float* gr = dy + n * size + first;
    const auto m = static_cast<float>(mean[n]), a = static_cast<float>(rstd[n]);
    double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
    for (index_t j = 0; j < count; ++j) {
      const float g = gr[j];
      const float xh = (xr[j] - m) * a;
      acc_b[j] += g;
      acc_w[j] += static_cast<double>(g) * xh;
      if constexpr (Sums) {
        const float gw = g * w[j];
        s1 += gw;
        s2 += static_cast<double>(gw) * xh;
      }
    }
    if constexpr (Sums) {
      sums[2 * n] = s1;
      sums[2 * n + 1] = s2;
    }
  }
}

FLOWAD_SIMD_CLONES
void weight_gradient_block(const float* x, const float* dy, index_t samples, index_t size, index_t first,
                           index_t count, const double* mean, const double* rstd, const float* weight,
                           float* grad_weight, float* grad_bias, bool accumulate, double* sums) {
  alignas(64) double acc_w[weight_block], acc_b[weight_block];
  std::fill(acc_w, acc_w + count, 0.0);
  std::fill(acc_b, acc_b + count, 0.0);
  if (sums)
    weight_block_sums<true>(x, dy, samples, size, first, count, mean, rstd, weight, acc_w, acc_b, sums);
  else
    weight_block_sums<false>(x, dy, samples, size, first, count, mean, rstd, weight, acc_w, acc_b, sums);
  float* gw = grad_weight + first;
  float* gb = grad_bias + first;
  if (accumulate) {
    for (index_t j = 0; j < count; ++j) {
      gw[j] += static_cast<float>(acc_w[j]);
      gb[j] += static_cast<float>(acc_b[j]);
    }
  } else {
    for (index_t j = 0; j < count; ++j) {
      gw[j] = static_cast<float>(acc_w[j]);
      gb[j] = static_cast<float>(acc_b[j]);
    }
  }
}

// dx = rstd·(dy·weight − mean_g − x̂·mean_gx).
FLOWAD_SIMD_CLONES
void data_chunk(const float* x, const float* dy, float* dx, index_t count, float mean, float rstd, const float* weight,
                float mean_g, float mean_gx) {
#pragma omp simd
  for (index_t i = 0; i < count; ++i) {
    const float xh = (x[i] - mean) * rstd;
    dx[i] = rstd * (dy[i] * weight[i] - mean_g - xh * mean_gx);
  }
}

}  // namespace

void layer_norm_moments(const float* x, index_t samples, index_t size, double epsilon, double* mean, double* rstd,
                        aligned_vector<double>& partials) {
  const index_t chunks = chunks_of(size, sample_chunk), tasks = samples * chunks;
  double* part = grow(partials, 2 * tasks);
#pragma omp parallel for schedule(static) if (samples * size >= detail::parallel_threshold)
  for (index_t t = 0; t < tasks; ++t) {
    const index_t n = t / chunks, first = t % chunks * sample_chunk;
    const float* sample = x + n * size;
    shifted_sums(sample + first, std::min(sample_chunk, size - first), sample[0], part + 2 * t);
  }
  const auto count = static_cast<double>(size);
  for (index_t n = 0; n < samples; ++n) {
    double s1 = 0.0, s2 = 0.0;
    for (index_t k = 0; k < chunks; ++k) {
      s1 += part[2 * (n * chunks + k)];
      s2 += part[2 * (n * chunks + k) + 1];
    }
    const double shift = s1 / count;
    mean[n] = static_cast<double>(x[n * size]) + shift;
    rstd[n] = 1.0 / std::sqrt(std::max(0.0, s2 / count - shift * shift) + epsilon);
  }
}

void layer_norm_forward(const float* x, float* y, index_t samples, index_t size, const double* mean,
                        const double* rstd, const float* weight, const float* bias) {
  const index_t chunks = chunks_of(size, sample_chunk), tasks = samples * chunks;
#pragma omp parallel for schedule(static) if (samples * size >= detail::parallel_threshold)
  for (index_t t = 0; t < tasks; ++t) {
    const index_t n = t / chunks, first = t % chunks * sample_chunk, offset = n * size + first;
    normalize_chunk(x + offset, y + offset, std::min(sample_chunk, size - first), static_cast<float>(mean[n]),
                    static_cast<float>(rstd[n]), weight + first, bias + first);
  }
}

void layer_norm_backward_weights(const float* x, const float* dy, index_t samples, index_t size, const double* mean,
                                 const double* rstd, const float* weight, float* grad_weight, float* grad_bias,
                                 bool accumulate, double* sum_g, double* sum_gx, aligned_vector<double>& partials) {
  const index_t blocks = chunks_of(size, weight_block);
  double* part = sum_g ? grow(partials, 2 * samples * blocks) : nullptr;
#pragma omp parallel for schedule(static) if (samples * size >= detail::parallel_threshold)
  for (index_t k = 0; k < blocks; ++k) {
    const index_t first = k * weight_block;
    weight_gradient_block(x, dy, samples, size, first, std::min(weight_block, size - first), mean, rstd, weight,
                          grad_weight, grad_bias, accumulate, part ? part + 2 * samples * k : nullptr);
  }
  if (!sum_g) return;
  for (index_t n = 0; n < samples; ++n) {
    double s1 = 0.0, s2 = 0.0;
    for (index_t k = 0; k < blocks; ++k) {
      s1 += part[2 * (samples * k + n)];
      s2 += part[2 * (samples * k + n) + 1];
    }
    sum_g[n] = s1;
    sum_gx[n] = s2;
  }
}

void layer_norm_backward_data(const float* x, const float* dy, float* dx, index_t samples, index_t size,
                              const double* mean, const double* rstd, const float* weight, const double* sum_g,
                              const double* sum_gx) {
  const index_t chunks = chunks_of(size, sample_chunk), tasks = samples * chunks;
  const auto count = static_cast<double>(size);
#pragma omp parallel for schedule(static) if (samples * size >= detail::parallel_threshold)
  for (index_t t = 0; t < tasks; ++t) {
    const index_t n = t / chunks, first = t % chunks * sample_chunk, offset = n * size + first;
    data_chunk(x + offset, dy + offset, dx + offset, std::min(sample_chunk, size - first), static_cast<float>(mean[n]),
               static_cast<float>(rstd[n]), weight + first, static_cast<float>(sum_g[n] / count),
               static_cast<float>(sum_gx[n] / count));
  }
}

void transpose_matrix(const float* in, index_t rows, index_t cols, float* out, bool accumulate) {
  // Tiles of 16 input rows: each output run of 16 is one cache line, the 16 input rows stay in L1.
  constexpr index_t tile = 16;
  const index_t tiles = chunks_of(rows, tile);
#pragma omp parallel for schedule(static) if (rows * cols >= detail::parallel_threshold)
  for (index_t t = 0; t < tiles; ++t) {
    const index_t i0 = t * tile, i1 = std::min(rows, i0 + tile);
    for (index_t j = 0; j < cols; ++j) {
      float* o = out + j * rows;
      if (accumulate)
        for (index_t i = i0; i < i1; ++i) o[i] += in[i * cols + j];
      else
        for (index_t i = i0; i < i1; ++i) o[i] = in[i * cols + j];
    }
  }
}

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
