#include "flowad/nn/snc.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "flowad/detail/checks.hpp"
#include "kernels/simd.hpp"

namespace flowad {
inline namespace v0 {
namespace nn {

namespace {

constexpr index_t max_kernel = 15;

// Weights are exp(logit − the channel's largest logit), floored at exp(−60): a window clipped to cells
// whose logits all lie far below the maximum then still has a representable normaliser (1/Z ≤ 1e26).
// The floor changes the function only for logit spreads above 60, by a relative O(e^-60).
constexpr float min_log_weight = -60.0f;

// Rows processed per task of backward's logit gradient: a fixed count (not the thread count), so that
// the order of the double sums, and the result, do not depend on the number of threads.
constexpr index_t max_backward_chunks = 16;

// Along one axis of length `extent`, the window of coordinate y covers offsets [lo, hi] (clipped to the
// map). Coordinates with the same clipping form a "border case": at most min(extent, 2r + 1) of them.
struct axis {
  index_t extent, radius;

  index_t lo(index_t y) const noexcept { return std::max(-radius, -y); }
  index_t hi(index_t y) const noexcept { return std::min(radius, extent - 1 - y); }
  index_t cases() const noexcept { return std::min(extent, 2 * radius + 1); }
  index_t case_of(index_t y) const noexcept {
    if (extent <= 2 * radius || y < radius) return y;
    if (y >= extent - radius) return 2 * radius + 1 - (extent - y);
    return radius;
  }
  // A coordinate of case i.
  index_t representative(index_t i) const noexcept {
    if (extent <= 2 * radius || i <= radius) return i;
    return extent - (2 * radius + 1 - i);
  }
};

// What forward and backward derive from the logits, per call: the window weights e[o][c] (offset-major,
// so that the inner loops run over contiguous channels) and, per (row case, column case), 1/Z[c], Z the
// sum of the weights inside the clipped window. Rebuilt per call (k²·C exponentials plus cases·k·C
// sums) into per-thread storage: forward() stays const and thread-safe and allocates only when a larger
// shape is first seen.
struct window_weights {
  const float* weight;       // [k·k][C]
  const float* inverse_sum;  // [row cases][column cases][C]
};

float* grow(aligned_vector<float>& v, index_t count) {
  if (v.size() < static_cast<std::size_t>(count)) v.resize(static_cast<std::size_t>(count));
  return v.data();
}

window_weights build_weights(const float* logits, index_t channels, index_t kernel, const axis& rows, const axis& cols,
                             aligned_vector<float>& storage) {
  const index_t taps = kernel * kernel, r = kernel / 2;
  const index_t row_cases = rows.cases(), col_cases = cols.cases();
  float* weight = grow(storage, taps * channels + row_cases * col_cases * channels);
  float* inverse_sum = weight + taps * channels;
  for (index_t c = 0; c < channels; ++c) {
    const float* l = logits + c * taps;
    const float top = *std::max_element(l, l + taps);
    for (index_t o = 0; o < taps; ++o) weight[o * channels + c] = std::exp(std::max(l[o] - top, min_log_weight));
  }
  for (index_t yc = 0; yc < row_cases; ++yc) {
    const index_t y = rows.representative(yc);
    for (index_t xc = 0; xc < col_cases; ++xc) {
      const index_t x = cols.representative(xc);
      float* out = inverse_sum + (yc * col_cases + xc) * channels;
      for (index_t c = 0; c < channels; ++c) {
        double z = 0.0;
        for (index_t dy = rows.lo(y); dy <= rows.hi(y); ++dy)
          for (index_t dx = cols.lo(x); dx <= cols.hi(x); ++dx)
            z += weight[((dy + r) * kernel + dx + r) * channels + c];
        out[c] = static_cast<float>(1.0 / z);
      }
    }
  }
  return {weight, inverse_sum};
}

// acc[c] += w[c]·x[c].
FLOWAD_SIMD_CLONES
void multiply_add(float* __restrict acc, const float* __restrict w, const float* __restrict x, index_t count) {
#pragma omp simd
  for (index_t i = 0; i < count; ++i) acc[i] += w[i] * x[i];
}

// The code of cell (y, x) of one sample into out[C]; `sample` points at the sample's first cell.
FLOWAD_SIMD_CLONES
void code_of_cell(const float* sample, const window_weights& ww, const axis& rows, const axis& cols, index_t channels,
                  index_t kernel, index_t y, index_t x, float* __restrict out) {
  const index_t r = kernel / 2, w = cols.extent;
  std::memset(out, 0, static_cast<std::size_t>(channels) * sizeof(float));
  for (index_t dy = rows.lo(y); dy <= rows.hi(y); ++dy) {
    const float* in_row = sample + (y + dy) * w * channels;
    const float* w_row = ww.weight + (dy + r) * kernel * channels;
    for (index_t dx = cols.lo(x); dx <= cols.hi(x); ++dx)
      multiply_add(out, w_row + (dx + r) * channels, in_row + (x + dx) * channels, channels);
  }
  const float* inverse_sum = ww.inverse_sum + (rows.case_of(y) * cols.cases() + cols.case_of(x)) * channels;
#pragma omp simd
  for (index_t c = 0; c < channels; ++c) out[c] *= inverse_sum[c];
}

FLOWAD_SIMD_CLONES
void forward_row(const float* sample, float* dst_row, const window_weights& ww, const axis& rows, const axis& cols,
                 index_t channels, index_t kernel, index_t y) {
  for (index_t x = 0; x < cols.extent; ++x)
    code_of_cell(sample, ww, rows, cols, channels, kernel, y, x, dst_row + x * channels);
}

// Logit-gradient sums of one row: for every cell p and offset o inside its window,
//   acc[o][c] += g[p][c]/Z_p[c] · (F[p + o][c] − code_p[c])
// (dL/dlogit[c, o] is e[o][c] times the total over all cells). `scratch` holds 2·C floats.
FLOWAD_SIMD_CLONES
void logit_row_sums(const float* sample, const float* diff_row, const window_weights& ww, const axis& rows,
                    const axis& cols, index_t channels, index_t kernel, index_t y, float* __restrict acc,
                    float* __restrict scratch) {
  const index_t r = kernel / 2, w = cols.extent;
  float* code = scratch;
  float* scaled = scratch + channels;
  for (index_t x = 0; x < w; ++x) {
    code_of_cell(sample, ww, rows, cols, channels, kernel, y, x, code);
    const float* inverse_sum = ww.inverse_sum + (rows.case_of(y) * cols.cases() + cols.case_of(x)) * channels;
    const float* g = diff_row + x * channels;
#pragma omp simd
    for (index_t c = 0; c < channels; ++c) scaled[c] = g[c] * inverse_sum[c];
    for (index_t dy = rows.lo(y); dy <= rows.hi(y); ++dy) {
      const float* in_row = sample + (y + dy) * w * channels;
      for (index_t dx = cols.lo(x); dx <= cols.hi(x); ++dx) {
        float* a = acc + ((dy + r) * kernel + dx + r) * channels;
        const float* f = in_row + (x + dx) * channels;
#pragma omp simd
        for (index_t c = 0; c < channels; ++c) a[c] += scaled[c] * (f[c] - code[c]);
      }
    }
  }
}

// diff_src[q][c] += Σ_{p ∈ W(q)} e[q − p][c]·g[p][c]/Z_p[c] for the cells q of row y (the window is
// symmetric: q ∈ W(p) exactly when p ∈ W(q)).
FLOWAD_SIMD_CLONES
void data_gradient_row(const float* diff_sample, float* diff_src_row, const window_weights& ww, const axis& rows,
                       const axis& cols, index_t channels, index_t kernel, index_t y) {
  const index_t r = kernel / 2, w = cols.extent, col_cases = cols.cases();
  for (index_t x = 0; x < w; ++x) {
    float* out = diff_src_row + x * channels;
    for (index_t dy = rows.lo(y); dy <= rows.hi(y); ++dy) {
      const index_t py = y + dy;
      const float* g_row = diff_sample + py * w * channels;
      const float* z_row = ww.inverse_sum + rows.case_of(py) * col_cases * channels;
      // p = q + (dy, dx) reads tap o = q − p = (−dy, −dx).
      const float* w_row = ww.weight + (r - dy) * kernel * channels;
      for (index_t dx = cols.lo(x); dx <= cols.hi(x); ++dx) {
        const index_t px = x + dx;
        const float* g = g_row + px * channels;
        const float* inverse_sum = z_row + cols.case_of(px) * channels;
        const float* e = w_row + (r - dx) * channels;
#pragma omp simd
        for (index_t c = 0; c < channels; ++c) out[c] += e[c] * g[c] * inverse_sum[c];
      }
    }
  }
}

FLOWAD_SIMD_CLONES
void add_to_double(double* __restrict total, const float* __restrict part, index_t count) {
#pragma omp simd
  for (index_t i = 0; i < count; ++i) total[i] += part[i];
}

void check_call(const char* what, const void* src, const void* other, const char* other_name, index_t n, index_t h,
                index_t w) {
  if (n <= 0 || h <= 0 || w <= 0)
    throw error(errc::invalid_argument, std::string("snc::") + what + " needs positive n, h, w, got " +
                                            std::to_string(n) + ", " + std::to_string(h) + ", " + std::to_string(w));
  if (src == nullptr) throw error(errc::invalid_argument, std::string("snc::") + what + ": src is null");
  if (other == nullptr)
    throw error(errc::invalid_argument, std::string("snc::") + what + ": " + other_name + " is null");
}

}  // namespace

snc::snc(index_t channels, index_t kernel, const std::string& name)
    : channels_(channels),
      kernel_(kernel),
      logits_(name + ".logits",
              {std::max<index_t>(channels, 0), std::max<index_t>(kernel, 0) * std::max<index_t>(kernel, 0)}) {
  if (channels <= 0)
    throw error(errc::invalid_argument, "snc " + name + ": channels must be positive, got " + std::to_string(channels));
  if (kernel < 1 || kernel > max_kernel || kernel % 2 == 0)
    throw error(errc::invalid_argument,
                "snc " + name + ": kernel must be odd and in [1, 15], got " + std::to_string(kernel));
}

void snc::forward(const float* src, float* dst, index_t n, index_t h, index_t w) const {
  check_call("forward", src, dst, "dst", n, h, w);
  const index_t c = channels_, sample_values = h * w * c;
  if (src < dst + n * sample_values && dst < src + n * sample_values)
    throw error(errc::invalid_argument, "snc::forward: src and dst overlap");
  const axis rows{h, kernel_ / 2}, cols{w, kernel_ / 2};
  thread_local aligned_vector<float> storage;
  const window_weights ww = build_weights(logits_.data(), c, kernel_, rows, cols, storage);
  const index_t kernel = kernel_, total_rows = n * h;
#pragma omp parallel for schedule(static) if (total_rows * w * c * kernel >= detail::parallel_threshold)
  for (index_t row = 0; row < total_rows; ++row) {
    const index_t sample = row / h, y = row % h;
    forward_row(src + sample * sample_values, dst + row * w * c, ww, rows, cols, c, kernel, y);
  }
}

void snc::backward(const float* src, const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w) {
  check_call("backward", src, diff_dst, "diff_dst", n, h, w);
  const index_t c = channels_, kernel = kernel_, taps = kernel * kernel, sample_values = h * w * c;
  if (diff_src != nullptr && ((diff_src < src + n * sample_values && src < diff_src + n * sample_values) ||
                              (diff_src < diff_dst + n * sample_values && diff_dst < diff_src + n * sample_values)))
    throw error(errc::invalid_argument, "snc::backward: diff_src overlaps src or diff_dst");
  const axis rows{h, kernel / 2}, cols{w, kernel / 2};
  thread_local aligned_vector<float> storage, chunk_scratch;
  thread_local aligned_vector<double> chunk_totals;
  const window_weights ww = build_weights(logits_.data(), c, kernel, rows, cols, storage);

  const index_t total_rows = n * h;
  const index_t chunks = std::min(total_rows, max_backward_chunks);
  const index_t tap_values = taps * c;
  // Per chunk: a float accumulator for the current row and 2·C floats of scratch; a double total.
  float* scratch = grow(chunk_scratch, chunks * (tap_values + 2 * c));
  if (chunk_totals.size() < static_cast<std::size_t>(chunks * tap_values))
    chunk_totals.resize(static_cast<std::size_t>(chunks * tap_values));
  double* totals = chunk_totals.data();
  std::fill(totals, totals + chunks * tap_values, 0.0);

#pragma omp parallel for schedule(static) if (total_rows * w * c * kernel >= detail::parallel_threshold)
  for (index_t chunk = 0; chunk < chunks; ++chunk) {
    float* row_acc = scratch + chunk * (tap_values + 2 * c);
    double* total = totals + chunk * tap_values;
    const index_t first = chunk * total_rows / chunks, last = (chunk + 1) * total_rows / chunks;
    for (index_t row = first; row < last; ++row) {
      const index_t sample = row / h, y = row % h;
      const float* src_sample = src + sample * sample_values;
      const float* diff_sample = diff_dst + sample * sample_values;
      std::memset(row_acc, 0, static_cast<std::size_t>(tap_values) * sizeof(float));
      logit_row_sums(src_sample, diff_sample + y * w * c, ww, rows, cols, c, kernel, y, row_acc, row_acc + tap_values);
      add_to_double(total, row_acc, tap_values);
      if (diff_src) data_gradient_row(diff_sample, diff_src + row * w * c, ww, rows, cols, c, kernel, y);
    }
  }

  float* grad = logits_.grad();
  for (index_t o = 0; o < taps; ++o)
    for (index_t ch = 0; ch < c; ++ch) {
      double sum = 0.0;
      for (index_t chunk = 0; chunk < chunks; ++chunk) sum += totals[chunk * tap_values + o * c + ch];
      grad[ch * taps + o] += static_cast<float>(ww.weight[o * c + ch] * sum);
    }
}

double snc::macs(index_t n, index_t h, index_t w) const noexcept {
  // Exact count of window cells (clipped at the borders) times channels and samples.
  const axis rows{h, kernel_ / 2}, cols{w, kernel_ / 2};
  double row_taps = 0.0, col_taps = 0.0;
  for (index_t y = 0; y < h; ++y) row_taps += static_cast<double>(rows.hi(y) - rows.lo(y) + 1);
  for (index_t x = 0; x < w; ++x) col_taps += static_cast<double>(cols.hi(x) - cols.lo(x) + 1);
  return static_cast<double>(n) * static_cast<double>(channels_) * row_taps * col_taps;
}

}  // namespace nn
}  // namespace v0
}  // namespace flowad
