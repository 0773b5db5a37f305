// Teacher-student distances (nn/consistency.hpp): the per-cell cosine and normalised-L2 maps and RD's
// flattened per-sample cosine against their definitions in double, their gradients against central
// differences of those definitions, the ε guards, thread-count independence and bad arguments.
#include <omp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <vector>

#include "flowad/detail/random.hpp"
#include "flowad/error.hpp"
#include "flowad/nn/consistency.hpp"
#include "support/numeric_gradient.hpp"

using namespace flowad;
using namespace flowad::testing;
using flowad::nn::ts_distance;

namespace {

struct dims {
  index_t n, c, h, w;
  index_t values() const { return n * c * h * w; }
  index_t cells() const { return n * h * w; }
};

std::vector<float> random_values(index_t count, std::uint64_t seed, double scale = 1.0, double offset = 0.0) {
  detail::rng r(seed);
  std::vector<float> v(static_cast<std::size_t>(count));
  for (float& x : v) x = static_cast<float>(offset + scale * r.normal());
  return v;
}

// The definitions in double, on dense NHWC data (cell i holds channels [i·c, (i + 1)·c)).
double reference_cell(ts_distance d, const double* t, const double* s, index_t c) {
  double tt = 0.0, ss = 0.0, ts = 0.0;
  for (index_t k = 0; k < c; ++k) {
    tt += t[k] * t[k];
    ss += s[k] * s[k];
    ts += t[k] * s[k];
  }
  if (d == ts_distance::cosine) return 1.0 - ts / (std::max(std::sqrt(tt), 1e-8) * std::max(std::sqrt(ss), 1e-8));
  const double a = std::max(std::sqrt(tt), 1e-12), b = std::max(std::sqrt(ss), 1e-12);
  double sum = 0.0;
  for (index_t k = 0; k < c; ++k) sum += (t[k] / a - s[k] / b) * (t[k] / a - s[k] / b);
  return 0.5 * sum;
}

std::vector<double> reference_map(ts_distance d, const std::vector<double>& t, const std::vector<double>& s,
                                  const dims& m) {
  std::vector<double> map(static_cast<std::size_t>(m.cells()));
  for (index_t i = 0; i < m.cells(); ++i)
    map[static_cast<std::size_t>(i)] = reference_cell(d, &t[i * m.c], &s[i * m.c], m.c);
  return map;
}

std::vector<double> reference_flattened(const std::vector<double>& t, const std::vector<double>& s, const dims& m) {
  std::vector<double> out(static_cast<std::size_t>(m.n));
  const index_t size = m.c * m.h * m.w;
  for (index_t i = 0; i < m.n; ++i)
    out[static_cast<std::size_t>(i)] = reference_cell(ts_distance::cosine, &t[i * size], &s[i * size], size);
  return out;
}

std::vector<double> to_double(const std::vector<float>& v) {
  return {v.begin(), v.end()};
}

// max |analytic − numeric| relative to max(|numeric|, floor).
double gradient_error(const std::vector<float>& analytic, float held, const std::vector<double>& numeric) {
  double worst = 0.0, scale = 1e-3;
  for (double v : numeric) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < numeric.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(analytic[i]) - held - numeric[i]));
  return worst / scale;
}

double max_relative(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0.0, scale = 1e-30;
  for (double v : want) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
  return worst / scale;
}

const dims shapes[] = {{2, 5, 3, 4}, {1, 7, 5, 6}, {3, 1, 2, 3}, {2, 64, 7, 9}};

}  // namespace

TEST_CASE("distance maps equal their definitions in double", "[consistency]") {
  for (const ts_distance d : {ts_distance::cosine, ts_distance::normalized_l2}) {
    for (const dims& m : shapes) {
      // Student = teacher plus noise: distances of every size, from near 0 up.
      const std::vector<float> t = random_values(m.values(), 1, 1.0, 0.3);
      std::vector<float> s = random_values(m.values(), 2, 0.7);
      for (std::size_t i = 0; i < s.size(); ++i) s[i] += (i % 3 == 0 ? 1.0f : 0.1f) * t[i];
      std::vector<float> map(static_cast<std::size_t>(m.cells()), -1.0f);
      nn::distance_map(d, t.data(), s.data(), map.data(), m.n, m.c, m.h, m.w);
      const std::vector<double> want = reference_map(d, to_double(t), to_double(s), m);
      INFO((d == ts_distance::cosine ? "cosine" : "normalized_l2")
           << " on " << m.n << "x" << m.c << "x" << m.h << "x" << m.w);
      CHECK(max_relative(map, want) <= 1e-6);
      // Identical features are at distance 0; opposite ones at 2 (both distances).
      std::vector<float> minus_t(t);
      for (float& v : minus_t) v = -v;
      nn::distance_map(d, t.data(), t.data(), map.data(), m.n, m.c, m.h, m.w);
      for (float v : map) CHECK(std::abs(v) <= 1e-6f);
      nn::distance_map(d, t.data(), minus_t.data(), map.data(), m.n, m.c, m.h, m.w);
      for (float v : map) CHECK(v == Approx(2.0f).epsilon(1e-6));
    }
  }
}

TEST_CASE("distance map gradients equal central differences, and accumulate", "[consistency]") {
  // Scale 1e-3: norms far below 1 but far above ε, where a guard that fired would break the gradient.
  for (const double scale : {1.0, 1e-3}) {
    for (const ts_distance d : {ts_distance::cosine, ts_distance::normalized_l2}) {
      for (const dims& m : {dims{2, 5, 3, 4}, dims{1, 3, 2, 5}}) {
        const std::vector<float> t = random_values(m.values(), 3, scale, 0.2 * scale);
        const std::vector<float> s = random_values(m.values(), 4, scale);
        const std::vector<float> a = random_values(m.cells(), 5);  // L = Σ a ⊙ map
        constexpr float held = 0.25f;
        std::vector<float> diff_t(t.size(), held), diff_s(s.size(), held);
        nn::distance_map_backward(d, t.data(), s.data(), a.data(), diff_t.data(), diff_s.data(), m.n, m.c, m.h, m.w);

        std::vector<double> td = to_double(t), sd = to_double(s);
        auto loss = [&] {
          const std::vector<double> map = reference_map(d, td, sd, m);
          double l = 0.0;
          for (std::size_t i = 0; i < map.size(); ++i) l += a[i] * map[i];
          return l;
        };
        const std::vector<double> num_t = numeric_gradient(td, loss, scale), num_s = numeric_gradient(sd, loss, scale);
        INFO((d == ts_distance::cosine ? "cosine" : "normalized_l2")
             << " on " << m.n << "x" << m.c << "x" << m.h << "x" << m.w << ", scale " << scale);
        // The held 0.25 is far below the gradients' scale at 1e-3 (~1e3); relative to it the test tolerance holds.
        CHECK(gradient_error(diff_t, held, num_t) <= 1e-5);
        CHECK(gradient_error(diff_s, held, num_s) <= 1e-5);

        // Either gradient alone is the same.
        std::vector<float> only_t(t.size(), held), only_s(s.size(), held);
        nn::distance_map_backward(d, t.data(), s.data(), a.data(), only_t.data(), nullptr, m.n, m.c, m.h, m.w);
        nn::distance_map_backward(d, t.data(), s.data(), a.data(), nullptr, only_s.data(), m.n, m.c, m.h, m.w);
        CHECK(only_t == diff_t);
        CHECK(only_s == diff_s);
      }
    }
  }
}

TEST_CASE("a zero feature vector gives finite distances and gradients", "[consistency]") {
  const dims m{1, 4, 1, 3};
  // Cell 0: t = 0; cell 1: s = 0; cell 2: both 0.
  std::vector<float> t = random_values(m.values(), 6), s = random_values(m.values(), 7);
  for (index_t k = 0; k < m.c; ++k) {
    t[static_cast<std::size_t>(k)] = 0.0f;
    s[static_cast<std::size_t>(m.c + k)] = 0.0f;
    t[static_cast<std::size_t>(2 * m.c + k)] = s[static_cast<std::size_t>(2 * m.c + k)] = 0.0f;
  }
  const std::vector<float> ones(3, 1.0f);
  for (const ts_distance d : {ts_distance::cosine, ts_distance::normalized_l2}) {
    std::vector<float> map(3);
    nn::distance_map(d, t.data(), s.data(), map.data(), m.n, m.c, m.h, m.w);
    // cosine: <0, s> = 0, so 1; normalised L2: ½‖0 − s/‖s‖‖² = ½ and ½‖0‖² = 0 for the pair of zeros.
    const bool cosine = d == ts_distance::cosine;
    CHECK(map[0] == Approx(cosine ? 1.0 : 0.5));
    CHECK(map[1] == Approx(cosine ? 1.0 : 0.5));
    CHECK(map[2] == (cosine ? 1.0f : 0.0f));
    std::vector<float> diff_t(t.size(), 0.0f), diff_s(s.size(), 0.0f);
    nn::distance_map_backward(d, t.data(), s.data(), ones.data(), diff_t.data(), diff_s.data(), m.n, m.c, m.h, m.w);
    for (float v : diff_t) CHECK(std::isfinite(v));
    for (float v : diff_s) CHECK(std::isfinite(v));
    // The guard's gradient at t = 0 (the norm is the constant ε): cosine −s/(ε‖s‖), normalised L2 −s/(ε‖s‖).
    double ns = 0.0;
    for (index_t k = 0; k < m.c; ++k)
      ns += static_cast<double>(s[static_cast<std::size_t>(k)]) * s[static_cast<std::size_t>(k)];
    ns = std::sqrt(ns);
    const double eps = cosine ? 1e-8 : 1e-12;
    for (index_t k = 0; k < m.c; ++k)
      CHECK(diff_t[static_cast<std::size_t>(k)] == Approx(-s[static_cast<std::size_t>(k)] / (eps * ns)).epsilon(1e-5));
    for (index_t k = 0; k < m.c; ++k) {
      CHECK(diff_t[static_cast<std::size_t>(2 * m.c + k)] == 0.0f);
      CHECK(diff_s[static_cast<std::size_t>(2 * m.c + k)] == 0.0f);
    }
  }
  double out[1];
  std::vector<float> zeros(12, 0.0f), x = random_values(12, 8);
  nn::flattened_cosine_distance(zeros.data(), x.data(), out, 1, 3, 2, 2);
  CHECK(out[0] == 1.0);
  std::vector<float> diff_t(12, 0.0f), diff_s(12, 0.0f);
  const double g[1] = {1.0};
  nn::flattened_cosine_distance_backward(zeros.data(), x.data(), g, diff_t.data(), diff_s.data(), 1, 3, 2, 2);
  for (float v : diff_t) CHECK(std::isfinite(v));
  for (float v : diff_s) CHECK(v == 0.0f);  // ∂/∂s of 1 − <0, s>/(ε‖s‖) is 0
}

TEST_CASE("flattened cosine distance is RD's per-sample loss, with exact gradients", "[consistency]") {
  // The last shape has several chunks per sample (20480 values).
  for (const dims& m : {dims{2, 5, 3, 4}, dims{3, 2, 1, 1}, dims{2, 64, 16, 20}}) {
    const std::vector<float> t = random_values(m.values(), 9, 1.0, 0.5);
    std::vector<float> s = random_values(m.values(), 10);
    for (std::size_t i = 0; i < s.size(); ++i) s[i] += t[i];
    std::vector<double> out(static_cast<std::size_t>(m.n), -1.0);
    nn::flattened_cosine_distance(t.data(), s.data(), out.data(), m.n, m.c, m.h, m.w);
    std::vector<double> td = to_double(t), sd = to_double(s);
    const std::vector<double> want = reference_flattened(td, sd, m);
    INFO(m.n << "x" << m.c << "x" << m.h << "x" << m.w);
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(std::abs(out[i] - want[i]) <= 1e-12);
    // It is not the mean of the per-cell cosine map (RD's loss flattens C·H·W).
    if (m.h * m.w > 1) {
      std::vector<float> map(static_cast<std::size_t>(m.cells()));
      nn::distance_map(ts_distance::cosine, t.data(), s.data(), map.data(), m.n, m.c, m.h, m.w);
      double mean = 0.0;
      for (index_t k = 0; k < m.h * m.w; ++k) mean += map[static_cast<std::size_t>(k)];
      mean /= static_cast<double>(m.h * m.w);
      CHECK(std::abs(mean - out[0]) > 1e-4);
    }
    if (m.values() > 1000) continue;  // finite differences on the small shapes
    const std::vector<double> a = {0.7, -1.3, 0.4};
    constexpr float held = -0.5f;
    std::vector<float> diff_t(t.size(), held), diff_s(s.size(), held);
    nn::flattened_cosine_distance_backward(t.data(), s.data(), a.data(), diff_t.data(), diff_s.data(), m.n, m.c, m.h,
                                           m.w);
    auto loss = [&] {
      const std::vector<double> o = reference_flattened(td, sd, m);
      double l = 0.0;
      for (std::size_t i = 0; i < o.size(); ++i) l += a[i] * o[i];
      return l;
    };
    const std::vector<double> num_t = numeric_gradient(td, loss), num_s = numeric_gradient(sd, loss);
    CHECK(gradient_error(diff_t, held, num_t) <= 1e-5);
    CHECK(gradient_error(diff_s, held, num_s) <= 1e-5);
  }
}

TEST_CASE("flattened cosine gradients on a large sample equal the closed form", "[consistency]") {
  // d/dt (1 − <t,s>/(‖t‖‖s‖)) = −s/(‖t‖‖s‖) + cos·t/‖t‖², in double, over chunks split between threads.
  const dims m{2, 64, 16, 20};
  const std::vector<float> t = random_values(m.values(), 11), s = random_values(m.values(), 12, 1.0, 0.1);
  const std::vector<double> g = {1.5, -0.25};
  std::vector<float> diff_t(t.size(), 0.0f);
  nn::flattened_cosine_distance_backward(t.data(), s.data(), g.data(), diff_t.data(), nullptr, m.n, m.c, m.h, m.w);
  const index_t size = m.c * m.h * m.w;
  double worst = 0.0;
  for (index_t i = 0; i < m.n; ++i) {
    double tt = 0.0, ss = 0.0, ts = 0.0;
    for (index_t k = i * size; k < (i + 1) * size; ++k) {
      tt += static_cast<double>(t[k]) * t[k];
      ss += static_cast<double>(s[k]) * s[k];
      ts += static_cast<double>(t[k]) * s[k];
    }
    const double a = std::sqrt(tt), b = std::sqrt(ss), cos = ts / (a * b);
    for (index_t k = i * size; k < (i + 1) * size; ++k) {
      const double want = g[static_cast<std::size_t>(i)] * (-s[k] / (a * b) + cos * t[k] / (a * a));
      worst = std::max(worst, std::abs(diff_t[k] - want) / (std::abs(want) + 1e-9));
    }
  }
  CHECK(worst <= 1e-4);
}

TEST_CASE("distances do not depend on the thread count", "[consistency]") {
  const dims m{3, 160, 13, 17};  // 35360 values per sample: the flattened sums run in parallel too
  const std::vector<float> t = random_values(m.values(), 13), s = random_values(m.values(), 14);
  const std::vector<float> a = random_values(m.cells(), 15);
  const std::vector<double> g = {0.5, 1.0, -2.0};
  struct result {
    std::vector<float> maps, diffs;
    std::vector<double> flat;
  };
  auto run = [&](int threads) {
    const int previous = omp_get_max_threads();
    omp_set_num_threads(threads);
    result r;
    for (const ts_distance d : {ts_distance::cosine, ts_distance::normalized_l2}) {
      std::vector<float> map(static_cast<std::size_t>(m.cells())), diff_t(t.size(), 0.0f), diff_s(s.size(), 0.0f);
      nn::distance_map(d, t.data(), s.data(), map.data(), m.n, m.c, m.h, m.w);
      nn::distance_map_backward(d, t.data(), s.data(), a.data(), diff_t.data(), diff_s.data(), m.n, m.c, m.h, m.w);
      r.maps.insert(r.maps.end(), map.begin(), map.end());
      r.diffs.insert(r.diffs.end(), diff_t.begin(), diff_t.end());
      r.diffs.insert(r.diffs.end(), diff_s.begin(), diff_s.end());
    }
    r.flat.resize(3);
    nn::flattened_cosine_distance(t.data(), s.data(), r.flat.data(), m.n, m.c, m.h, m.w);
    std::vector<float> diff_t(t.size(), 0.0f), diff_s(s.size(), 0.0f);
    nn::flattened_cosine_distance_backward(t.data(), s.data(), g.data(), diff_t.data(), diff_s.data(), m.n, m.c, m.h,
                                           m.w);
    r.diffs.insert(r.diffs.end(), diff_t.begin(), diff_t.end());
    r.diffs.insert(r.diffs.end(), diff_s.begin(), diff_s.end());
    omp_set_num_threads(previous);
    return r;
  };
  const result one = run(1), two = run(2), three = run(3);
  CHECK(one.maps == two.maps);
  CHECK(one.maps == three.maps);
  CHECK(one.diffs == two.diffs);
  CHECK(one.diffs == three.diffs);
  CHECK(one.flat == two.flat);
  CHECK(one.flat == three.flat);
}

TEST_CASE("distance functions reject bad arguments", "[consistency]") {
  std::vector<float> t(24, 1.0f), s(24, 1.0f), map(8), diff(24);
  double out[2], g[2] = {1.0, 1.0};
  auto code_of = [](auto&& f) {
    try {
      f();
    } catch (const error& e) {
      return e.code();
    }
    return errc{};
  };
  CHECK(code_of([&] { nn::distance_map(ts_distance::cosine, t.data(), s.data(), map.data(), 0, 3, 2, 4); }) ==
        errc::invalid_argument);
  CHECK(code_of([&] { nn::distance_map(ts_distance::cosine, t.data(), s.data(), map.data(), 1, -3, 2, 4); }) ==
        errc::invalid_argument);
  CHECK(code_of([&] { nn::distance_map(ts_distance::cosine, nullptr, s.data(), map.data(), 1, 3, 2, 4); }) ==
        errc::invalid_argument);
  CHECK(code_of([&] { nn::distance_map(ts_distance::normalized_l2, t.data(), s.data(), nullptr, 1, 3, 2, 4); }) ==
        errc::invalid_argument);
  CHECK(code_of([&] { nn::distance_map(static_cast<ts_distance>(7), t.data(), s.data(), map.data(), 1, 3, 2, 4); }) ==
        errc::invalid_argument);
  CHECK(code_of([&] {
          nn::distance_map_backward(ts_distance::cosine, t.data(), s.data(), nullptr, diff.data(), nullptr, 1, 3, 2, 4);
        }) == errc::invalid_argument);
  CHECK(code_of([&] {
          nn::distance_map_backward(ts_distance::cosine, t.data(), nullptr, map.data(), diff.data(), nullptr, 1, 3, 2,
                                    4);
        }) == errc::invalid_argument);
  CHECK(code_of([&] {
          nn::distance_map_backward(ts_distance::cosine, t.data(), s.data(), map.data(), diff.data(), nullptr, 1, 3, 0,
                                    4);
        }) == errc::invalid_argument);
  CHECK(code_of([&] { nn::flattened_cosine_distance(t.data(), s.data(), nullptr, 2, 3, 2, 2); }) ==
        errc::invalid_argument);
  CHECK(code_of([&] { nn::flattened_cosine_distance(t.data(), s.data(), out, 2, 3, 2, -2); }) ==
        errc::invalid_argument);
  CHECK(code_of([&] {
          nn::flattened_cosine_distance_backward(t.data(), s.data(), nullptr, diff.data(), nullptr, 2, 3, 2, 2);
        }) == errc::invalid_argument);
  CHECK(code_of([&] {
          nn::flattened_cosine_distance_backward(nullptr, s.data(), g, diff.data(), nullptr, 2, 3, 2, 2);
        }) == errc::invalid_argument);
  // Without any gradient to write, backward is a no-op that still checks its arguments.
  CHECK_NOTHROW(
      nn::distance_map_backward(ts_distance::cosine, t.data(), s.data(), map.data(), nullptr, nullptr, 1, 3, 2, 4));
}
