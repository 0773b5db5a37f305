#include "flowad/nn/consistency.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "flowad/detail/checks.hpp"
#include "kernels/simd.hpp"

namespace flowad {
inline namespace v0 {
namespace nn {

namespace {

constexpr double cosine_epsilon = 1e-8;      // torch.nn.functional.cosine_similarity
constexpr double normalize_epsilon = 1e-12;  // torch.nn.functional.normalize

double epsilon_of(ts_distance d) {
  return d == ts_distance::cosine ? cosine_epsilon : normalize_epsilon;
}

void check_extents(const char* what, index_t n, index_t c, index_t h, index_t w) {
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
    throw error(errc::invalid_argument, std::string(what) +
                                            " needs positive extents, got n x c x h x w = " + std::to_string(n) + "x" +
                                            std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w));
}

void check_pointer(const char* what, const void* p, const char* name) {
  if (p == nullptr) throw error(errc::invalid_argument, std::string(what) + ": " + name + " is null");
}

void check_distance(ts_distance d, const char* what) {
  if (d != ts_distance::cosine && d != ts_distance::normalized_l2)
    throw error(errc::invalid_argument,
                std::string(what) + ": unknown ts_distance " + std::to_string(static_cast<int>(d)));
}

// Σ t², Σ s², Σ t·s over `count` values, in double.
struct sums {
  double tt = 0.0, ss = 0.0, ts = 0.0;
};

FLOWAD_SIMD_CLONES
sums dot_sums(const float* t, const float* s, index_t count) {
  double tt = 0.0, ss = 0.0, ts = 0.0;
#pragma omp simd reduction(+ : tt, ss, ts)
  for (index_t i = 0; i < count; ++i) {
    const double a = t[i], b = s[i];
    tt += a * a;
    ss += b * b;
    ts += a * b;
  }
  return {tt, ss, ts};
}

// The distance and, for the backward pass, the coefficients of its gradient in t and s:
//   dd/dt = ct_t·t + ct_s·s,   dd/ds = cs_s·s + cs_t·t.
// A norm below ε is the constant ε (the clamp's gradient is 0 there), as in PyTorch.
struct local_gradient {
  double distance, ct_t, ct_s, cs_s, cs_t;
};

local_gradient distance_and_gradient(ts_distance d, const sums& m) {
  const double eps = epsilon_of(d);
  const double nt = std::sqrt(m.tt), ns = std::sqrt(m.ss);
  const bool t_clamped = !(nt > eps), s_clamped = !(ns > eps);
  const double a = t_clamped ? eps : nt, b = s_clamped ? eps : ns;
  if (d == ts_distance::cosine) {
    // d = 1 − ts/(a·b); ∂a/∂t = t/a unless clamped.
    const double inv_ab = 1.0 / (a * b);
    const double cos = m.ts * inv_ab;
    return {1.0 - cos, t_clamped ? 0.0 : cos / (a * a), -inv_ab, s_clamped ? 0.0 : cos / (b * b), -inv_ab};
  }
  // u = t/a, v = s/b, d = ½‖u − v‖² = ½(uu + vv) − uv. ∂d/∂u = u − v; ∂u/∂t = (I − u uᵀ)/a unless clamped
  // (then I/a): dd/dt = ((u − v) − u·<u, u − v>)/a.
  const double uu = m.tt / (a * a), vv = m.ss / (b * b), uv = m.ts / (a * b);
  const double distance = 0.5 * (uu + vv) - uv;
  const double pu = t_clamped ? 0.0 : uu - uv;  // <u, u − v>
  const double pv = s_clamped ? 0.0 : vv - uv;  // <v, v − u>
  return {distance, (1.0 - pu) / (a * a), -1.0 / (a * b), (1.0 - pv) / (b * b), -1.0 / (a * b)};
}

// One row of w cells of c channels each.
FLOWAD_SIMD_CLONES
void distance_row(ts_distance d, const float* t, const float* s, float* map, index_t c, index_t w) {
  for (index_t x = 0; x < w; ++x)
    map[x] = static_cast<float>(distance_and_gradient(d, dot_sums(t + x * c, s + x * c, c)).distance);
}

// diff += g_t·t + g_s·s.
FLOWAD_SIMD_CLONES
void add_combination(float* diff, const float* t, const float* s, float g_t, float g_s, index_t count) {
#pragma omp simd
  for (index_t i = 0; i < count; ++i) diff[i] += g_t * t[i] + g_s * s[i];
}

FLOWAD_SIMD_CLONES
void distance_backward_row(ts_distance d, const float* t, const float* s, const float* diff_map, float* diff_t,
                           float* diff_s, index_t c, index_t w) {
  for (index_t x = 0; x < w; ++x) {
    const double g = diff_map[x];
    if (g == 0.0) continue;
    const index_t offset = x * c;
    const local_gradient lg = distance_and_gradient(d, dot_sums(t + offset, s + offset, c));
    if (diff_t)
      add_combination(diff_t + offset, t + offset, s + offset, static_cast<float>(g * lg.ct_t),
                      static_cast<float>(g * lg.ct_s), c);
    if (diff_s)
      add_combination(diff_s + offset, s + offset, t + offset, static_cast<float>(g * lg.cs_s),
                      static_cast<float>(g * lg.cs_t), c);
  }
}

// The flattened per-sample sums run over a fixed number of chunks per sample (so that the order of the
// double sums, and the result, do not depend on the thread count); all samples' chunks share one
// parallel loop (a fork/join costs milliseconds on a loaded machine). The partial sums live in
// per-thread storage that only grows.
constexpr index_t max_sample_chunks = 64;
constexpr index_t min_chunk_values = 4096;

struct chunking {
  index_t count, length;
};

chunking chunks_of(index_t values) {
  const index_t count = std::min(max_sample_chunks, std::max<index_t>(1, values / min_chunk_values));
  return {count, (values + count - 1) / count};
}

// totals[i] = Σ over sample i's chunks; `partial` holds n·chunks entries.
void sample_sums(const float* t, const float* s, index_t n, index_t values, sums* partial, sums* totals) {
  const chunking ch = chunks_of(values);
#pragma omp parallel for schedule(static) if (n * values >= detail::parallel_threshold)
  for (index_t task = 0; task < n * ch.count; ++task) {
    const index_t sample = task / ch.count, k = task % ch.count;
    const index_t first = k * ch.length, count = std::min(ch.length, values - first);
    const index_t offset = sample * values + first;
    partial[task] = count > 0 ? dot_sums(t + offset, s + offset, count) : sums{};
  }
  for (index_t i = 0; i < n; ++i) {
    sums total;
    for (index_t k = 0; k < ch.count; ++k) {
      const sums& p = partial[i * ch.count + k];
      total.tt += p.tt;
      total.ss += p.ss;
      total.ts += p.ts;
    }
    totals[i] = total;
  }
}

sums* grow(std::vector<sums>& v, index_t count) {
  if (v.size() < static_cast<std::size_t>(count)) v.resize(static_cast<std::size_t>(count));
  return v.data();
}

}  // namespace

void distance_map(ts_distance d, const float* t, const float* s, float* map, index_t n, index_t c, index_t h,
                  index_t w) {
  constexpr const char* what = "distance_map";
  check_distance(d, what);
  check_extents(what, n, c, h, w);
  check_pointer(what, t, "t");
  check_pointer(what, s, "s");
  check_pointer(what, map, "map");
  const index_t rows = n * h, row_values = w * c;
#pragma omp parallel for schedule(static) if (rows * row_values >= detail::parallel_threshold)
  for (index_t row = 0; row < rows; ++row)
    distance_row(d, t + row * row_values, s + row * row_values, map + row * w, c, w);
}

void distance_map_backward(ts_distance d, const float* t, const float* s, const float* diff_map, float* diff_t,
                           float* diff_s, index_t n, index_t c, index_t h, index_t w) {
  constexpr const char* what = "distance_map_backward";
  check_distance(d, what);
  check_extents(what, n, c, h, w);
  check_pointer(what, t, "t");
  check_pointer(what, s, "s");
  check_pointer(what, diff_map, "diff_map");
  if (!diff_t && !diff_s) return;
  const index_t rows = n * h, row_values = w * c;
#pragma omp parallel for schedule(static) if (rows * row_values >= detail::parallel_threshold)
  for (index_t row = 0; row < rows; ++row) {
    const index_t offset = row * row_values;
    distance_backward_row(d, t + offset, s + offset, diff_map + row * w, diff_t ? diff_t + offset : nullptr,
                          diff_s ? diff_s + offset : nullptr, c, w);
  }
}

void flattened_cosine_distance(const float* t, const float* s, double* out, index_t n, index_t c, index_t h,
                               index_t w) {
  constexpr const char* what = "flattened_cosine_distance";
  check_extents(what, n, c, h, w);
  check_pointer(what, t, "t");
  check_pointer(what, s, "s");
  check_pointer(what, out, "out");
  const index_t values = c * h * w;
  thread_local std::vector<sums> storage;
  sums* partial = grow(storage, n * (chunks_of(values).count + 1));
  sums* totals = partial + n * chunks_of(values).count;
  sample_sums(t, s, n, values, partial, totals);
  for (index_t i = 0; i < n; ++i) out[i] = distance_and_gradient(ts_distance::cosine, totals[i]).distance;
}

void flattened_cosine_distance_backward(const float* t, const float* s, const double* diff_out, float* diff_t,
                                        float* diff_s, index_t n, index_t c, index_t h, index_t w) {
  constexpr const char* what = "flattened_cosine_distance_backward";
  check_extents(what, n, c, h, w);
  check_pointer(what, t, "t");
  check_pointer(what, s, "s");
  check_pointer(what, diff_out, "diff_out");
  if (!diff_t && !diff_s) return;
  const index_t values = c * h * w;
  const chunking ch = chunks_of(values);
  thread_local std::vector<sums> storage;
  sums* partial = grow(storage, n * (ch.count + 1));
  sums* totals = partial + n * ch.count;
  sample_sums(t, s, n, values, partial, totals);
#pragma omp parallel for schedule(static) if (n * values >= detail::parallel_threshold)
  for (index_t task = 0; task < n * ch.count; ++task) {
    const index_t sample = task / ch.count, k = task % ch.count;
    const double g = diff_out[sample];
    const index_t count = std::min(ch.length, values - k * ch.length);
    if (g == 0.0 || count <= 0) continue;
    const local_gradient lg = distance_and_gradient(ts_distance::cosine, totals[sample]);
    const index_t first = sample * values + k * ch.length;
    if (diff_t)
      add_combination(diff_t + first, t + first, s + first, static_cast<float>(g * lg.ct_t),
                      static_cast<float>(g * lg.ct_s), count);
    if (diff_s)
      add_combination(diff_s + first, s + first, t + first, static_cast<float>(g * lg.cs_s),
                      static_cast<float>(g * lg.cs_t), count);
  }
}

}  // namespace nn
}  // namespace v0
}  // namespace flowad
