// SNC (nn/snc.hpp): the code against its definition in double (clipped windows at every border, k = 1
// the identity), its input and logit gradients against central differences, thread-count independence,
// bad arguments, and the reason for its convex form: trained for teacher-student consistency, an
// unconstrained depth-wise encoding collapses to a constant code while SNC cannot.
#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "flowad/detail/random.hpp"
#include "flowad/error.hpp"
#include "flowad/nn/consistency.hpp"
#include "flowad/nn/snc.hpp"
#include "flowad/train/adam.hpp"

using namespace flowad;

namespace {

struct dims {
  index_t n, c, h, w;
  index_t values() const { return n * c * h * w; }
  index_t cells() const { return n * h * w; }
  // Dense NHWC.
  index_t at(index_t i, index_t ch, index_t y, index_t x) const { return ((i * h + y) * w + x) * c + ch; }
};

std::vector<float> random_values(index_t count, std::uint64_t seed, double scale = 1.0, double offset = 0.0) {
  detail::rng r(seed);
  std::vector<float> v(static_cast<std::size_t>(count));
  for (float& x : v) x = static_cast<float>(offset + scale * r.normal());
  return v;
}

void set_logits(nn::snc& layer, std::uint64_t seed, double scale) {
  detail::rng r(seed);
  for (float& v : layer.logits().values()) v = static_cast<float>(scale * r.normal());
  layer.logits().mark_updated();
}

// The definition in double: per channel, softmax weights over the k x k offsets, renormalised over the
// window cells inside the map.
std::vector<double> reference_code(const std::vector<double>& f, const std::vector<double>& logits, const dims& m,
                                   index_t k) {
  const index_t r = k / 2, taps = k * k;
  std::vector<double> out(f.size());
  for (index_t ch = 0; ch < m.c; ++ch) {
    const double* l = &logits[static_cast<std::size_t>(ch * taps)];
    const double top = *std::max_element(l, l + taps);
    double total = 0.0;
    for (index_t o = 0; o < taps; ++o) total += std::exp(l[o] - top);
    for (index_t i = 0; i < m.n; ++i)
      for (index_t y = 0; y < m.h; ++y)
        for (index_t x = 0; x < m.w; ++x) {
          double num = 0.0, den = 0.0;
          for (index_t dy = -r; dy <= r; ++dy)
            for (index_t dx = -r; dx <= r; ++dx) {
              const index_t qy = y + dy, qx = x + dx;
              if (qy < 0 || qy >= m.h || qx < 0 || qx >= m.w) continue;
              const double a = std::exp(l[(dy + r) * k + dx + r] - top) / total;
              num += a * f[static_cast<std::size_t>(m.at(i, ch, qy, qx))];
              den += a;
            }
          out[static_cast<std::size_t>(m.at(i, ch, y, x))] = num / den;
        }
  }
  return out;
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }
std::vector<double> logits_of(const nn::snc& layer) {
  return {layer.logits().values().begin(), layer.logits().values().end()};
}

std::vector<float> run_forward(const nn::snc& layer, const std::vector<float>& src, const dims& m) {
  std::vector<float> dst(src.size(), -7.0f);
  layer.forward(src.data(), dst.data(), m.n, m.h, m.w);
  return dst;
}

double max_relative(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0.0, scale = 1e-30;
  for (double v : want) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
  return worst / scale;
}

std::vector<double> numeric_gradient(std::vector<double>& x, const std::function<double()>& loss) {
  std::vector<double> g(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i], step = 1e-6 * std::max(1.0, std::abs(saved));
    x[i] = saved + step;
    const double up = loss();
    x[i] = saved - step;
    const double down = loss();
    x[i] = saved;
    g[i] = (up - down) / (2.0 * step);
  }
  return g;
}

double gradient_error(const float* analytic, float held, const std::vector<double>& numeric) {
  double worst = 0.0, scale = 1e-3;
  for (double v : numeric) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < numeric.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(analytic[i]) - held - numeric[i]));
  return worst / scale;
}

errc code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const error& e) {
    return e.code();
  }
  return errc{};
}

}  // namespace

TEST_CASE("snc starts as the neighbourhood mean, with logits C x k·k named after the layer", "[snc]") {
  nn::snc layer(5, 3, "fcl.level1.snc");
  CHECK(layer.channels() == 5);
  CHECK(layer.kernel() == 3);
  REQUIRE(layer.parameters().size() == 1);
  CHECK(layer.logits().name() == "fcl.level1.snc.logits");
  CHECK(layer.logits().dims() == std::vector<index_t>{5, 9});
  for (float v : layer.logits().values()) CHECK(v == 0.0f);
  // Zero logits: the mean over the clipped window (a corner averages 4 cells, an edge 6, the inside 9).
  const dims m{1, 5, 4, 5};
  const std::vector<float> f = random_values(m.values(), 1);
  const std::vector<float> code = run_forward(layer, f, m);
  for (index_t ch = 0; ch < m.c; ++ch) {
    auto mean = [&](index_t y0, index_t y1, index_t x0, index_t x1) {
      double s = 0.0;
      for (index_t y = y0; y <= y1; ++y)
        for (index_t x = x0; x <= x1; ++x) s += f[static_cast<std::size_t>(m.at(0, ch, y, x))];
      return s / static_cast<double>((y1 - y0 + 1) * (x1 - x0 + 1));
    };
    CHECK(code[static_cast<std::size_t>(m.at(0, ch, 0, 0))] == Approx(mean(0, 1, 0, 1)).epsilon(1e-6).margin(1e-6));
    CHECK(code[static_cast<std::size_t>(m.at(0, ch, 0, 2))] == Approx(mean(0, 1, 1, 3)).epsilon(1e-6).margin(1e-6));
    CHECK(code[static_cast<std::size_t>(m.at(0, ch, 2, 3))] == Approx(mean(1, 3, 2, 4)).epsilon(1e-6).margin(1e-6));
    CHECK(code[static_cast<std::size_t>(m.at(0, ch, 3, 4))] == Approx(mean(2, 3, 3, 4)).epsilon(1e-6).margin(1e-6));
  }
}

TEST_CASE("snc forward equals its definition in double, with windows clipped at every border", "[snc]") {
  struct setup {
    dims m;
    index_t k;
  };
  // 5 x 6 maps: k = 5 clips both sides of a row; k = 7 is wider than the map in both directions.
  const setup cases[] = {{{2, 3, 5, 6}, 3},  {{2, 3, 5, 6}, 5},    {{2, 3, 5, 6}, 7},   {{1, 4, 6, 5}, 7},
                         {{3, 37, 9, 11}, 3}, {{2, 37, 9, 11}, 5}, {{1, 16, 1, 7}, 3},  {{2, 5, 3, 1}, 5},
                         {{1, 2, 2, 2}, 15}};
  for (const setup& s : cases) {
    for (const double spread : {0.0, 1.0, 4.0}) {
      nn::snc layer(s.m.c, s.k, "snc");
      set_logits(layer, 2 + static_cast<std::uint64_t>(s.k), spread);
      const std::vector<float> f = random_values(s.m.values(), 3, 2.0, 1.0);
      const std::vector<float> code = run_forward(layer, f, s.m);
      INFO(s.m.n << "x" << s.m.c << "x" << s.m.h << "x" << s.m.w << ", k = " << s.k << ", logit spread " << spread);
      CHECK(max_relative(code, reference_code(to_double(f), logits_of(layer), s.m, s.k)) <= 2e-6);
    }
  }
}

TEST_CASE("snc with k = 1 is the identity, exactly", "[snc]") {
  const dims m{2, 9, 5, 6};
  const std::vector<float> f = random_values(m.values(), 4, 3.0);
  nn::snc constant(m.c, 1, "snc");
  CHECK(run_forward(constant, f, m) == f);
  nn::snc trained(m.c, 1, "snc");
  set_logits(trained, 5, 10.0);  // a single weight renormalises to 1 whatever its logit
  CHECK(run_forward(trained, f, m) == f);
  // Its logit gradient is 0: the code does not depend on it.
  const std::vector<float> g = random_values(m.values(), 6);
  std::vector<float> diff(f.size(), 0.0f);
  trained.backward(f.data(), g.data(), diff.data(), m.n, m.h, m.w);
  CHECK(diff == g);
  for (float v : trained.logits().gradients()) CHECK(v == 0.0f);
}

TEST_CASE("snc codes stay within the range of each neighbourhood, even with extreme logits", "[snc]") {
  const dims m{2, 6, 5, 6};
  for (const double spread : {1.0, 50.0, 300.0}) {
    for (const index_t k : {3, 5}) {
      nn::snc layer(m.c, k, "snc");
      set_logits(layer, 7, spread);
      const std::vector<float> f = random_values(m.values(), 8);
      const std::vector<float> code = run_forward(layer, f, m);
      const index_t r = k / 2;
      for (index_t i = 0; i < m.n; ++i)
        for (index_t ch = 0; ch < m.c; ++ch)
          for (index_t y = 0; y < m.h; ++y)
            for (index_t x = 0; x < m.w; ++x) {
              float lo = INFINITY, hi = -INFINITY;
              for (index_t qy = std::max<index_t>(0, y - r); qy <= std::min(m.h - 1, y + r); ++qy)
                for (index_t qx = std::max<index_t>(0, x - r); qx <= std::min(m.w - 1, x + r); ++qx) {
                  lo = std::min(lo, f[static_cast<std::size_t>(m.at(i, ch, qy, qx))]);
                  hi = std::max(hi, f[static_cast<std::size_t>(m.at(i, ch, qy, qx))]);
                }
              const float v = code[static_cast<std::size_t>(m.at(i, ch, y, x))];
              INFO("spread " << spread << ", k " << k);
              REQUIRE(std::isfinite(v));
              CHECK(v >= lo - 1e-5f * (1 + std::abs(lo)));
              CHECK(v <= hi + 1e-5f * (1 + std::abs(hi)));
            }
      // Gradients stay finite too.
      std::vector<float> diff(f.size(), 0.0f);
      layer.logits().zero_grad();
      layer.backward(f.data(), f.data(), diff.data(), m.n, m.h, m.w);
      for (float v : diff) CHECK(std::isfinite(v));
      for (float v : layer.logits().gradients()) CHECK(std::isfinite(v));
    }
  }
}

TEST_CASE("snc gradients for the input and the logits equal central differences", "[snc]") {
  struct setup {
    dims m;
    index_t k;
  };
  const setup cases[] = {{{2, 3, 5, 6}, 3}, {{2, 3, 5, 6}, 5}, {{1, 2, 5, 6}, 7}, {{2, 4, 3, 7}, 3}, {{1, 3, 4, 4}, 1}};
  for (const setup& s : cases) {
    nn::snc layer(s.m.c, s.k, "snc");
    set_logits(layer, 9, 0.8);
    const std::vector<float> f = random_values(s.m.values(), 10, 1.0, 0.5);
    const std::vector<float> a = random_values(s.m.values(), 11);  // L = Σ a ⊙ code
    constexpr float held = 0.25f;
    std::fill(layer.logits().gradients().begin(), layer.logits().gradients().end(), held);
    std::vector<float> diff(f.size(), held);
    layer.backward(f.data(), a.data(), diff.data(), s.m.n, s.m.h, s.m.w);

    std::vector<double> fd = to_double(f), ld = logits_of(layer);
    auto loss = [&] {
      const std::vector<double> code = reference_code(fd, ld, s.m, s.k);
      double l = 0.0;
      for (std::size_t i = 0; i < code.size(); ++i) l += a[i] * code[i];
      return l;
    };
    const std::vector<double> num_f = numeric_gradient(fd, loss), num_l = numeric_gradient(ld, loss);
    INFO(s.m.n << "x" << s.m.c << "x" << s.m.h << "x" << s.m.w << ", k = " << s.k);
    CHECK(gradient_error(diff.data(), held, num_f) <= 1e-5);
    CHECK(gradient_error(layer.logits().grad(), held, num_l) <= 1e-5);

    // The logits are a softmax: each channel's gradient sums to 0. Without diff_src the logit gradient
    // is the same.
    const index_t taps = s.k * s.k;
    for (index_t ch = 0; ch < s.m.c; ++ch) {
      double sum = 0.0;
      for (index_t o = 0; o < taps; ++o) sum += layer.logits().grad()[ch * taps + o] - held;
      CHECK(std::abs(sum) <= 1e-5);
    }
    const std::vector<float> with_data(layer.logits().gradients().begin(), layer.logits().gradients().end());
    std::fill(layer.logits().gradients().begin(), layer.logits().gradients().end(), held);
    layer.backward(f.data(), a.data(), nullptr, s.m.n, s.m.h, s.m.w);
    CHECK(std::vector<float>(layer.logits().gradients().begin(), layer.logits().gradients().end()) == with_data);
  }
}

TEST_CASE("snc results do not depend on the thread count", "[snc]") {
  const dims m{3, 40, 13, 11};
  nn::snc layer(m.c, 5, "snc");
  set_logits(layer, 12, 1.0);
  const std::vector<float> f = random_values(m.values(), 13), g = random_values(m.values(), 14);
  auto run = [&](int threads) {
    const int previous = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<float> out = run_forward(layer, f, m);
    std::vector<float> diff(f.size(), 0.0f);
    layer.logits().zero_grad();
    layer.backward(f.data(), g.data(), diff.data(), m.n, m.h, m.w);
    out.insert(out.end(), diff.begin(), diff.end());
    out.insert(out.end(), layer.logits().gradients().begin(), layer.logits().gradients().end());
    omp_set_num_threads(previous);
    return out;
  };
  const std::vector<float> one = run(1);
  CHECK(run(2) == one);
  CHECK(run(3) == one);
}

TEST_CASE("snc rejects bad arguments", "[snc]") {
  CHECK(code_of([] { nn::snc(0, 3, "snc"); }) == errc::invalid_argument);
  CHECK(code_of([] { nn::snc(4, 2, "snc"); }) == errc::invalid_argument);
  CHECK(code_of([] { nn::snc(4, 0, "snc"); }) == errc::invalid_argument);
  CHECK(code_of([] { nn::snc(4, -3, "snc"); }) == errc::invalid_argument);
  CHECK(code_of([] { nn::snc(4, 17, "snc"); }) == errc::invalid_argument);
  CHECK_NOTHROW(nn::snc(4, 15, "snc"));
  nn::snc layer(2, 3, "snc");
  std::vector<float> a(2 * 2 * 3 * 4, 1.0f), b(a.size()), c(a.size());
  CHECK(code_of([&] { layer.forward(a.data(), b.data(), 0, 3, 4); }) == errc::invalid_argument);
  CHECK(code_of([&] { layer.forward(a.data(), b.data(), 2, 3, -4); }) == errc::invalid_argument);
  CHECK(code_of([&] { layer.forward(nullptr, b.data(), 2, 3, 4); }) == errc::invalid_argument);
  CHECK(code_of([&] { layer.forward(a.data(), nullptr, 2, 3, 4); }) == errc::invalid_argument);
  CHECK(code_of([&] { layer.forward(a.data(), a.data() + 5, 2, 3, 4); }) == errc::invalid_argument);  // overlap
  CHECK(code_of([&] { layer.backward(a.data(), nullptr, c.data(), 2, 3, 4); }) == errc::invalid_argument);
  CHECK(code_of([&] { layer.backward(a.data(), b.data(), c.data(), 2, 0, 4); }) == errc::invalid_argument);
  CHECK(code_of([&] { layer.backward(a.data(), b.data(), a.data(), 2, 3, 4); }) == errc::invalid_argument);
  CHECK(code_of([&] { layer.backward(a.data(), b.data(), b.data() + 1, 2, 3, 4); }) == errc::invalid_argument);
  CHECK_NOTHROW(layer.backward(a.data(), b.data(), c.data(), 2, 3, 4));
  // macs: the window cells inside the map, times channels and samples.
  CHECK(layer.macs(2, 3, 4) == 2.0 * 2 * (2 + 3 + 2) * (2 + 3 + 3 + 2));
}
