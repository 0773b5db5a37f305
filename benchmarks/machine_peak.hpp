// The machine's FP32 peak, measured in the same run as a benchmark's cases: an AVX-512 FMA loop on
// every thread and oneDNN's sgemm at 2048^3 (bench_flow, bench_pipeline).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <dnnl.h>

namespace bench {

// 12 independent AVX-512 FMA chains per thread: enough to cover the FMA latency on 2 pipes.
__attribute__((target("avx512f"))) inline double fma_loop(long iterations) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iterations; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm512_add_ps(sum, acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  double total = 0.0;
  for (float v : lanes) total += v;
  return total;
}

// GFLOP/s of the FMA loop on `threads` threads (median of 5).
inline double fma_peak(int threads) {
  const long iterations = 20'000'000;
  std::vector<double> rates;
  double sink = 0.0;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += fma_loop(iterations);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(2.0 * 16 * 12 * static_cast<double>(iterations) * threads / s * 1e-9);
  }
  if (sink == 42.0) std::fprintf(stderr, " ");
  std::sort(rates.begin(), rates.end());
  return rates[2];
}

// GFLOP/s of oneDNN's sgemm at 2048^3 (median of 5).
inline double sgemm_peak() {
  const dnnl_dim_t n = 2048;
  std::vector<float> a(static_cast<std::size_t>(n * n), 1.0f), b(a), c(a);
  std::vector<double> rates;
  for (int r = 0; r < 6; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) rates.push_back(2.0 * static_cast<double>(n) * n * n / s * 1e-9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[2];
}

}  // namespace bench
