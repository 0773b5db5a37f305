// SNC (nn/snc.hpp): the code against its definition in double (clipped windows at every border, k = 1
// the identity), its input and logit gradients against central differences, thread-count independence,
// bad arguments, and the reason for its convex form: trained for teacher-student consistency, an
// unconstrained depth-wise encoding collapses to a constant code while SNC cannot.
#include <omp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <functional>
#include <sstream>
#include <vector>

#include "flowad/detail/random.hpp"
#include "flowad/error.hpp"
#include "flowad/nn/consistency.hpp"
#include "flowad/nn/snc.hpp"
#include "flowad/train/adam.hpp"
#include "support/numeric_gradient.hpp"

using namespace flowad;
using namespace flowad::testing;

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

std::vector<double> to_double(const std::vector<float>& v) {
  return {v.begin(), v.end()};
}
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
  const setup cases[] = {{{2, 3, 5, 6}, 3},  {{2, 3, 5, 6}, 5},   {{2, 3, 5, 6}, 7},
                         {{1, 4, 6, 5}, 7},  {{3, 37, 9, 11}, 3}, {{2, 37, 9, 11}, 5},
                         {{1, 16, 1, 7}, 3}, {{2, 5, 3, 1}, 5},   {{1, 2, 2, 2}, 15}};
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

// ------------------------------------------------------------------------------------------------
// Why SNC is convex. FCL trains the neighbourhood encoding together with the student, by the consistency
// (here: mean cosine distance) between code(T) and code(S). An encoding free to be anything can make
// every pair consistent by encoding everything alike; SNC cannot.

namespace {

// Teacher features T (per channel a sum of plane waves: structure at every position), student features
// S = T + small noise + a localised bump (a 4 x 4 square whose channel vector moves by a random offset,
// at a different place in each sample), and an unrelated field U.
struct teacher_student_pair {
  dims m{2, 6, 16, 16};
  std::vector<float> t, s, unrelated;
  std::vector<char> in_bump;  // per cell
};

std::vector<float> wave_field(const dims& m, detail::rng& r) {
  std::vector<float> f(static_cast<std::size_t>(m.values()), 0.0f);
  for (index_t i = 0; i < m.n; ++i)
    for (index_t ch = 0; ch < m.c; ++ch)
      for (int wave = 0; wave < 3; ++wave) {
        const double fy = r.uniform(-0.5, 0.5), fx = r.uniform(-0.5, 0.5), phase = r.uniform(0.0, 6.28),
                     amp = r.uniform(0.5, 1.0);
        for (index_t y = 0; y < m.h; ++y)
          for (index_t x = 0; x < m.w; ++x)
            f[static_cast<std::size_t>(m.at(i, ch, y, x))] +=
                static_cast<float>(amp * std::sin(fy * y + fx * x + phase));
      }
  return f;
}

teacher_student_pair make_pair(std::uint64_t seed) {
  teacher_student_pair p;
  detail::rng r(seed);
  const dims& m = p.m;
  p.t = wave_field(m, r);
  p.unrelated = wave_field(m, r);
  p.s = p.t;
  for (float& v : p.s) v += static_cast<float>(0.05 * r.normal());
  p.in_bump.assign(static_cast<std::size_t>(m.cells()), 0);
  const index_t corners[2][2] = {{3, 9}, {10, 4}};
  for (index_t i = 0; i < m.n; ++i) {
    std::vector<double> offset(static_cast<std::size_t>(m.c));
    for (double& o : offset) o = 1.5 * r.normal();
    for (index_t y = corners[i][0]; y < corners[i][0] + 4; ++y)
      for (index_t x = corners[i][1]; x < corners[i][1] + 4; ++x) {
        p.in_bump[static_cast<std::size_t>((i * m.h + y) * m.w + x)] = 1;
        for (index_t ch = 0; ch < m.c; ++ch)
          p.s[static_cast<std::size_t>(m.at(i, ch, y, x))] += static_cast<float>(offset[static_cast<std::size_t>(ch)]);
      }
  }
  return p;
}

// The unconstrained alternative: a depth-wise k x k convolution with bias (zero padding), as a plain
// learnable encoder would be. Starts as the neighbourhood mean, like SNC.
struct depthwise_encoding {
  index_t channels, kernel;
  parameter weight, bias;
  depthwise_encoding(index_t c, index_t k) : channels(c), kernel(k), weight("weight", {c, k * k}), bias("bias", {c}) {
    std::fill(weight.values().begin(), weight.values().end(), 1.0f / static_cast<float>(k * k));
    weight.mark_updated();
  }
  std::vector<parameter*> parameters() { return {&weight, &bias}; }

  template <class Visit>
  void each_tap(const dims& m, Visit&& visit) const {
    const index_t r = kernel / 2;
    for (index_t i = 0; i < m.n; ++i)
      for (index_t y = 0; y < m.h; ++y)
        for (index_t x = 0; x < m.w; ++x)
          for (index_t dy = -r; dy <= r; ++dy)
            for (index_t dx = -r; dx <= r; ++dx) {
              if (y + dy < 0 || y + dy >= m.h || x + dx < 0 || x + dx >= m.w) continue;
              for (index_t ch = 0; ch < m.c; ++ch)
                visit(m.at(i, ch, y, x), m.at(i, ch, y + dy, x + dx),
                      ch * kernel * kernel + (dy + r) * kernel + dx + r);
            }
  }
  void forward(const float* src, float* dst, const dims& m) const {
    for (index_t k = 0; k < m.values(); ++k) dst[k] = bias.data()[k % m.c];
    each_tap(m, [&](index_t out, index_t in, index_t tap) { dst[out] += weight.data()[tap] * src[in]; });
  }
  void backward(const float* src, const float* diff_dst, const dims& m) {
    for (index_t k = 0; k < m.values(); ++k) bias.grad()[k % m.c] += diff_dst[k];
    each_tap(m, [&](index_t out, index_t in, index_t tap) { weight.grad()[tap] += diff_dst[out] * src[in]; });
  }
};

double mean_distance(const std::vector<float>& a, const std::vector<float>& b, const dims& m,
                     std::vector<float>* map = nullptr) {
  std::vector<float> local(static_cast<std::size_t>(m.cells()));
  std::vector<float>& d = map ? *map : local;
  d.resize(static_cast<std::size_t>(m.cells()));
  nn::distance_map(nn::ts_distance::cosine, a.data(), b.data(), d.data(), m.n, m.c, m.h, m.w);
  double sum = 0.0;
  for (float v : d) sum += v;
  return sum / static_cast<double>(m.cells());
}

// Σ over samples and channels of the variance over positions.
double spatial_variance(const std::vector<float>& f, const dims& m) {
  double total = 0.0;
  const double cells = static_cast<double>(m.h * m.w);
  for (index_t i = 0; i < m.n; ++i)
    for (index_t ch = 0; ch < m.c; ++ch) {
      double s1 = 0.0, s2 = 0.0;
      for (index_t y = 0; y < m.h; ++y)
        for (index_t x = 0; x < m.w; ++x) {
          const double v = f[static_cast<std::size_t>(m.at(i, ch, y, x))];
          s1 += v;
          s2 += v * v;
        }
      total += s2 / cells - (s1 / cells) * (s1 / cells);
    }
  return total;
}

double mean_square(const std::vector<float>& f) {
  double s = 0.0;
  for (float v : f) s += static_cast<double>(v) * v;
  return s / static_cast<double>(f.size());
}

// Trains an encoder (forward(src, dst), backward(src, diff_dst) accumulating its parameters' gradients)
// by Adam to minimise the mean cosine distance between code(T) and code(S); returns the final loss.
template <class Forward, class Backward>
double train_consistency(const teacher_student_pair& p, std::vector<parameter*> params, Forward&& forward,
                         Backward&& backward, int steps, float lr) {
  adam_options options;
  options.learning_rate = lr;
  options.eps = 1e-8f;
  options.weight_decay = 0.0f;
  adam optimizer(params, options);
  const dims& m = p.m;
  std::vector<float> code_t(p.t.size()), code_s(p.s.size()), diff_t(p.t.size()), diff_s(p.s.size());
  const std::vector<float> diff_map(static_cast<std::size_t>(m.cells()), 1.0f / static_cast<float>(m.cells()));
  for (int step = 0; step < steps; ++step) {
    for (parameter* q : params) q->zero_grad();
    forward(p.t.data(), code_t.data());
    forward(p.s.data(), code_s.data());
    std::fill(diff_t.begin(), diff_t.end(), 0.0f);
    std::fill(diff_s.begin(), diff_s.end(), 0.0f);
    nn::distance_map_backward(nn::ts_distance::cosine, code_t.data(), code_s.data(), diff_map.data(), diff_t.data(),
                              diff_s.data(), m.n, m.c, m.h, m.w);
    backward(p.t.data(), diff_t.data());
    backward(p.s.data(), diff_s.data());
    optimizer.step(lr);
  }
  forward(p.t.data(), code_t.data());
  forward(p.s.data(), code_s.data());
  return mean_distance(code_t, code_s, m);
}

struct encoding_report {
  double loss, variance_ratio, constancy, unrelated_distance, bump_contrast;
  bool peak_in_bump;
};

// How an encoder behaves after training: its loss; the spatial variance of code(T) over T's; the spatial
// variance of code(T) over its mean square (0 for a constant code); the mean distance between the codes
// of T and of an unrelated field U; the mean distance inside the bumps over the mean outside them; and
// whether each sample's largest distance lies in its bump.
template <class Forward>
encoding_report report(const teacher_student_pair& p, double loss, Forward&& forward) {
  const dims& m = p.m;
  std::vector<float> code_t(p.t.size()), code_s(p.s.size()), code_u(p.t.size()), map;
  forward(p.t.data(), code_t.data());
  forward(p.s.data(), code_s.data());
  forward(p.unrelated.data(), code_u.data());
  encoding_report r{};
  r.loss = loss;
  r.variance_ratio = spatial_variance(code_t, m) / spatial_variance(p.t, m);
  r.constancy = spatial_variance(code_t, m) / (static_cast<double>(m.n * m.c) * mean_square(code_t));
  r.unrelated_distance = mean_distance(code_t, code_u, m);
  mean_distance(code_t, code_s, m, &map);
  double inside = 0.0, outside = 0.0, count_in = 0.0;
  for (std::size_t k = 0; k < map.size(); ++k) {
    (p.in_bump[k] ? inside : outside) += map[k];
    count_in += p.in_bump[k];
  }
  r.bump_contrast = (inside / count_in) / (outside / (static_cast<double>(map.size()) - count_in));
  r.peak_in_bump = true;
  const std::size_t cells = static_cast<std::size_t>(m.h * m.w);
  for (index_t i = 0; i < m.n; ++i) {
    const auto first = map.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(i) * cells);
    const auto peak =
        static_cast<std::size_t>(std::max_element(first, first + static_cast<std::ptrdiff_t>(cells)) - map.begin());
    r.peak_in_bump = r.peak_in_bump && p.in_bump[peak];
  }
  return r;
}

}  // namespace

TEST_CASE("trained for T-S consistency, an unconstrained encoding collapses and SNC does not", "[snc]") {
  constexpr index_t kernel = 3;
  constexpr int steps = 300;
  constexpr float lr = 0.05f;
  // Six draws of the data. The unconstrained encoding's minimum depends on the draw: mostly the constant
  // code (its bias; seeds 21, 24, 26 reach a code variance below 1e-5 of its mean square), else a gain on
  // what T and S share that drowns the bump (22, 25) or a near-constant code (23). SNC behaves the same
  // on all of them.
  int collapsed = 0;
  for (std::uint64_t seed = 21; seed <= 26; ++seed) {
    const teacher_student_pair p = make_pair(seed);
    const dims& m = p.m;
    const double raw_loss = mean_distance(p.t, p.s, m), raw_unrelated = mean_distance(p.t, p.unrelated, m);

    depthwise_encoding free_code(m.c, kernel);
    auto free_forward = [&](const float* src, float* dst) { free_code.forward(src, dst, m); };
    const double free_loss = train_consistency(
        p, free_code.parameters(), free_forward,
        [&](const float* src, const float* g) { free_code.backward(src, g, m); }, steps, lr);
    const encoding_report b = report(p, free_loss, free_forward);

    nn::snc snc_code(m.c, kernel, "snc");
    auto snc_forward = [&](const float* src, float* dst) { snc_code.forward(src, dst, m.n, m.h, m.w); };
    const double snc_loss = train_consistency(
        p, snc_code.parameters(), snc_forward,
        [&](const float* src, const float* g) { snc_code.backward(src, g, nullptr, m.n, m.h, m.w); }, steps, lr);
    const encoding_report a = report(p, snc_loss, snc_forward);

    auto describe = [](const encoding_report& r) {
      std::ostringstream o;
      o << "loss " << r.loss << ", code variance / input variance " << r.variance_ratio
        << ", code variance / code mean square " << r.constancy << ", distance to an unrelated field's code "
        << r.unrelated_distance << ", bump contrast " << r.bump_contrast << ", peaks in the bumps " << r.peak_in_bump;
      return o.str();
    };
    INFO("seed " << seed << ", raw features: T-S loss " << raw_loss << ", distance to the unrelated field "
                 << raw_unrelated);
    INFO("unconstrained depth-wise encoding: " << describe(b));
    INFO("SNC: " << describe(a));
    // (b) drives the loss to ~0 (at most 5% of the raw features', 1e-6 of it for seed 21) and so stops
    // telling apart what it should: either the codes of T and of an unrelated field become near-identical
    // (a near-constant code), or the T-S distance no longer peaks where S differs from T.
    CHECK(b.loss <= 0.05 * raw_loss);
    CHECK((b.unrelated_distance <= 0.05 * raw_unrelated || !b.peak_in_bump));
    const bool constant_code = b.constancy <= 1e-3 && b.unrelated_distance <= 1e-3 * raw_unrelated;
    if (constant_code) ++collapsed;
    if (seed == 21) {
      CHECK(b.loss <= 1e-5 * raw_loss);
      CHECK(constant_code);
    }
    // (a) cannot: its loss stays above half the raw features' (0.62 to 0.90 of it here; 3000 steps on
    // seed 21 end at the same 0.886), its codes keep most of T's spatial variance and stay as far from an
    // unrelated field's code as the raw features are, and the T-S distance still peaks in the bumps.
    CHECK(a.loss >= 0.5 * raw_loss);
    CHECK(a.variance_ratio >= 0.8);
    CHECK(a.constancy >= 0.5);
    CHECK(a.unrelated_distance >= 0.8 * raw_unrelated);
    CHECK(a.bump_contrast >= 10.0);
    CHECK(a.peak_in_bump);
    // The logits did train (SNC is not trivially the initial mean).
    double moved = 0.0;
    for (float v : snc_code.logits().values()) moved = std::max(moved, static_cast<double>(std::abs(v)));
    CHECK(moved >= 0.1);
  }
  // The constant code is the usual outcome.
  CHECK(collapsed >= 3);
}

// A performance probe, run by hand (flowad_unit_tests "[snc_perf]"): SNC and the distance maps on a
// quarter of the largest maps FCL meets (16 x 256 x 64 x 64).
TEST_CASE("snc and distance map timings on 4 x 256 x 64 x 64", "[.][snc_perf]") {
  const dims m{4, 256, 64, 64};
  const std::vector<float> f = random_values(m.values(), 30), g = random_values(m.values(), 31);
  std::vector<float> out(f.size()), diff(f.size()), map(static_cast<std::size_t>(m.cells()));
  auto time_ms = [](auto&& run) {
    run();
    const auto start = std::chrono::steady_clock::now();
    constexpr int repeats = 5;
    for (int i = 0; i < repeats; ++i) run();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / repeats;
  };
  for (const index_t k : {3, 5, 7}) {
    nn::snc layer(m.c, k, "snc");
    set_logits(layer, 32, 0.5);
    const double forward = time_ms([&] { layer.forward(f.data(), out.data(), m.n, m.h, m.w); });
    const double logits_only = time_ms([&] { layer.backward(f.data(), g.data(), nullptr, m.n, m.h, m.w); });
    const double both = time_ms([&] { layer.backward(f.data(), g.data(), diff.data(), m.n, m.h, m.w); });
    const double gmac = layer.macs(m.n, m.h, m.w) / 1e9;
    WARN("snc k = " << k << ": forward " << forward << " ms (" << gmac / forward * 1e3 << " GMAC/s), backward "
                    << logits_only << " ms (logits only), " << both << " ms (logits and input)");
  }
  for (const nn::ts_distance d : {nn::ts_distance::cosine, nn::ts_distance::normalized_l2}) {
    const double forward = time_ms([&] { nn::distance_map(d, f.data(), g.data(), map.data(), m.n, m.c, m.h, m.w); });
    const double backward = time_ms([&] {
      nn::distance_map_backward(d, f.data(), g.data(), map.data(), diff.data(), out.data(), m.n, m.c, m.h, m.w);
    });
    WARN((d == nn::ts_distance::cosine ? "cosine" : "normalized_l2")
         << " map: forward " << forward << " ms, backward " << backward << " ms");
  }
  std::vector<double> flat(4), ones(4, 1.0);
  const double forward =
      time_ms([&] { nn::flattened_cosine_distance(f.data(), g.data(), flat.data(), m.n, m.c, m.h, m.w); });
  const double backward = time_ms([&] {
    nn::flattened_cosine_distance_backward(f.data(), g.data(), ones.data(), diff.data(), out.data(), m.n, m.c, m.h,
                                           m.w);
  });
  WARN("flattened cosine: forward " << forward << " ms, backward " << backward << " ms");
}
