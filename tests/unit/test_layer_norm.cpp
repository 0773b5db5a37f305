// layer_norm: PyTorch's nn.LayerNorm([C, H, W]) against its definition in double, its gradients against
// central differences of that definition, and its edge cases (constant samples, layouts, thread counts,
// bad shapes).
#include <catch2/catch.hpp>

#include <omp.h>

#include <cmath>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

#include "flowad/detail/checks.hpp"
#include "flowad/nn/layer_norm.hpp"
#include "support/layer_checks.hpp"
#include "support/naive.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

// The layer's parameters and an input, in double, and the definition evaluated on them.
struct reference {
  dtensor x;
  std::vector<double> weight, bias;
  double epsilon;

  reference(const layer_norm& ln, const_view src)
      : x(to_double(src)),
        weight(ln.weight().values().begin(), ln.weight().values().end()),
        bias(ln.bias().values().begin(), ln.bias().values().end()),
        epsilon(ln.epsilon()) {}

  // y = (x − μ_n)/sqrt(σ²_n + eps)·weight + bias, NCHW; two-pass statistics.
  dtensor forward() const {
    dtensor y(x.n, x.c, x.h, x.w);
    const auto size = static_cast<std::size_t>(x.c * x.h * x.w);
    for (index_t n = 0; n < x.n; ++n) {
      const double* xs = x.v.data() + static_cast<std::size_t>(n) * size;
      double mean = 0.0, var = 0.0;
      for (std::size_t i = 0; i < size; ++i) mean += xs[i];
      mean /= static_cast<double>(size);
      for (std::size_t i = 0; i < size; ++i) var += (xs[i] - mean) * (xs[i] - mean);
      var /= static_cast<double>(size);
      const double rstd = 1.0 / std::sqrt(var + epsilon);
      double* ys = y.v.data() + static_cast<std::size_t>(n) * size;
      for (std::size_t i = 0; i < size; ++i) ys[i] = (xs[i] - mean) * rstd * weight[i] + bias[i];
    }
    return y;
  }

  // L = Σ a ⊙ y.
  double loss(const_view a) const {
    const dtensor y = forward();
    double l = 0.0;
    for (index_t n = 0; n < y.n; ++n)
      for (index_t c = 0; c < y.c; ++c)
        for (index_t h = 0; h < y.h; ++h)
          for (index_t w = 0; w < y.w; ++w) l += static_cast<double>(a(n, c, h, w)) * y.at(n, c, h, w);
    return l;
  }
};

// Non-trivial weight and bias.
void spread_parameters(layer_norm& ln, std::uint64_t seed) {
  detail::rng r(seed);
  for (float& v : ln.weight().values()) v = static_cast<float>(r.uniform(0.5, 1.5));
  for (float& v : ln.bias().values()) v = static_cast<float>(r.uniform(-0.5, 0.5));
  ln.weight().mark_updated();
  ln.bias().mark_updated();
}

// A view of t's channels [1, 1 + c): neither dense NCHW nor dense NHWC.
view channel_slice(tensor& t, index_t c) { return t.view().channels(1, c); }

// Largest |a − b| relative to max(1, max |b|).
double relative_diff(const_view a, const dtensor& b) {
  double diff = 0.0, scale = 1.0;
  for (index_t n = 0; n < a.n(); ++n)
    for (index_t c = 0; c < a.c(); ++c)
      for (index_t h = 0; h < a.h(); ++h)
        for (index_t w = 0; w < a.w(); ++w) {
          diff = std::max(diff, std::abs(a(n, c, h, w) - b.at(n, c, h, w)));
          scale = std::max(scale, std::abs(b.at(n, c, h, w)));
        }
  return diff / scale;
}

bool same_values(const_view a, const_view b) { return max_abs_diff(a, b) == 0.0; }

}  // namespace

TEST_CASE("layer_norm starts as PyTorch's: weight 1 and bias 0, each C x H x W", "[layer_norm]") {
  layer_norm ln(4, 3, 5);
  CHECK(std::string(ln.kind()) == "layer_norm");
  CHECK(ln.epsilon() == 1e-5);
  REQUIRE(ln.parameters().size() == 2);
  CHECK(ln.weight().name() == "weight");
  CHECK(ln.bias().name() == "bias");
  CHECK(ln.weight().dims() == std::vector<index_t>{4, 3, 5});
  CHECK(ln.bias().dims() == std::vector<index_t>{4, 3, 5});
  for (float v : ln.weight().values()) CHECK(v == 1.0f);
  for (float v : ln.bias().values()) CHECK(v == 0.0f);
  const layer_norm copy = ln;
  CHECK(copy.id() != ln.id());
}

TEST_CASE("layer_norm forward matches the definition in double", "[layer_norm]") {
  struct setup {
    shape4 shape;
    layout in, out;
    bool sliced_input;
  };
  const setup cases[] = {
      {{2, 5, 3, 4}, layout::nchw, layout::nchw, false},
      {{2, 5, 3, 4}, layout::nhwc, layout::nhwc, false},
      {{3, 7, 2, 6}, layout::nchw, layout::nhwc, false},  // mixed layouts
      {{2, 6, 4, 3}, layout::nhwc, layout::nchw, true},   // strided input
      {{1, 64, 12, 16}, layout::nhwc, layout::nhwc, false},  // several chunks per sample
      {{3, 64, 12, 16}, layout::nchw, layout::nchw, false},
  };
  for (const setup& c : cases) {
    layer_norm ln(c.shape.c, c.shape.h, c.shape.w);
    spread_parameters(ln, 3);
    // A mean far from 0: the statistics must not cancel.
    tensor wide = random_tensor({c.shape.n, c.shape.c + 2, c.shape.h, c.shape.w}, c.in, 4, 2.0f, 30.0f);
    const tensor dense = random_tensor(c.shape, c.in, 4, 2.0f, 30.0f);
    const const_view x = c.sliced_input ? const_view(channel_slice(wide, c.shape.c)) : dense.view();
    tensor y(c.shape, c.out), y_training(c.shape, c.out);
    workspace ws;
    ln.forward(x, y.view(), ws);
    ln.forward(x, y_training.view(), ws, pass_mode::training);
    const dtensor want = reference(ln, x).forward();
    INFO("shape " << c.shape.str() << (c.sliced_input ? ", sliced" : ""));
    CHECK(relative_diff(y.view(), want) <= 2e-6);
    CHECK(same_values(y.view(), y_training.view()));
    // The workspace's NHWC copies of the parameters follow mark_updated().
    spread_parameters(ln, 5);
    ln.forward(x, y.view(), ws);
    CHECK(relative_diff(y.view(), reference(ln, x).forward()) <= 2e-6);
  }
}

TEST_CASE("layer_norm gradients equal central differences of the definition", "[layer_norm]") {
  const shape4 s{2, 4, 3, 5};
  for (const layout l : {layout::nchw, layout::nhwc}) {
    for (const bool sliced : {false, true}) {
      layer_norm ln(s.c, s.h, s.w);
      spread_parameters(ln, 7);
      tensor wide = random_tensor({s.n, s.c + 2, s.h, s.w}, l, 8, 1.5f, -2.0f);
      const tensor dense = random_tensor(s, l, 8, 1.5f, -2.0f);
      const const_view x = sliced ? const_view(channel_slice(wide, s.c)) : dense.view();
      const tensor a = random_tensor(s, l, 9);
      tensor y(s, l), dx(s, l);
      workspace ws;
      // The gradients are added to what the parameters hold.
      constexpr float held = 0.25f;
      for (parameter* p : ln.parameters()) std::fill(p->gradients().begin(), p->gradients().end(), held);
      ln.forward(x, y.view(), ws, pass_mode::training);
      ln.backward(x, a.view(), dx.view(), ws);

      reference ref(ln, x);
      // The function is smooth: central differences in double with a small step are exact to ~1e-9.
      auto numeric = [&](double& v) {
        const double saved = v, step = 1e-4 * std::max(1.0, std::abs(saved));
        v = saved + step;
        const double up = ref.loss(a.view());
        v = saved - step;
        const double down = ref.loss(a.view());
        v = saved;
        return (up - down) / (2.0 * step);
      };
      auto check = [&](const char* name, std::size_t count, auto&& analytic, auto&& value) {
        double worst = 0.0, scale = 1e-3;
        std::vector<double> num(count);
        for (std::size_t i = 0; i < count; ++i) {
          num[i] = numeric(value(i));
          scale = std::max(scale, std::abs(num[i]));
        }
        for (std::size_t i = 0; i < count; ++i) worst = std::max(worst, std::abs(analytic(i) - num[i]));
        INFO((l == layout::nhwc ? "NHWC" : "NCHW") << (sliced ? " sliced" : "") << ", gradient of " << name
                                                    << ": worst error " << worst << " at scale " << scale);
        CHECK(worst <= 1e-5 * scale);
      };
      const auto size = static_cast<std::size_t>(s.c * s.h * s.w);
      check("weight", size, [&](std::size_t i) { return ln.weight().grad()[i] - held; },
            [&](std::size_t i) -> double& { return ref.weight[i]; });
      check("bias", size, [&](std::size_t i) { return ln.bias().grad()[i] - held; },
            [&](std::size_t i) -> double& { return ref.bias[i]; });
      // ref.x is NCHW: entry i is (n, c, h, w) in that order.
      auto coords = [&](std::size_t i) {
        const auto k = static_cast<index_t>(i);
        return shape4{k / (s.c * s.h * s.w), k / (s.h * s.w) % s.c, k / s.w % s.h, k % s.w};
      };
      check("src", static_cast<std::size_t>(s.numel()),
            [&](std::size_t i) {
              const shape4 p = coords(i);
              return static_cast<double>(dx(p.n, p.c, p.h, p.w));
            },
            [&](std::size_t i) -> double& { return ref.x.v[i]; });
    }
  }
}

TEST_CASE("layer_norm backward without diff_src adds the same parameter gradients", "[layer_norm]") {
  const shape4 s{5, 48, 16, 12};
  for (const layout l : {layout::nchw, layout::nhwc}) {
    layer_norm ln(s.c, s.h, s.w);
    spread_parameters(ln, 11);
    const tensor x = random_tensor(s, l, 12), a = random_tensor(s, l, 13);
    tensor y(s, l), dx(s, l);
    workspace ws;
    ln.forward(x.view(), y.view(), ws, pass_mode::training);
    ln.backward(x.view(), a.view(), dx.view(), ws);
    const std::vector<float> weight_grad(ln.weight().gradients().begin(), ln.weight().gradients().end());
    const std::vector<float> bias_grad(ln.bias().gradients().begin(), ln.bias().gradients().end());
    for (parameter* p : ln.parameters()) p->zero_grad();
    ln.backward(x.view(), a.view(), view(), ws);
    INFO((l == layout::nhwc ? "NHWC" : "NCHW"));
    CHECK(std::vector<float>(ln.weight().gradients().begin(), ln.weight().gradients().end()) == weight_grad);
    CHECK(std::vector<float>(ln.bias().gradients().begin(), ln.bias().gradients().end()) == bias_grad);
  }
}

TEST_CASE("layer_norm of a constant sample is its bias", "[layer_norm]") {
  const shape4 s{2, 3, 4, 5};
  for (const layout l : {layout::nchw, layout::nhwc}) {
    layer_norm ln(s.c, s.h, s.w);
    spread_parameters(ln, 15);
    tensor x = random_tensor(s, l, 16);
    for (index_t c = 0; c < s.c; ++c)
      for (index_t h = 0; h < s.h; ++h)
        for (index_t w = 0; w < s.w; ++w) x(1, c, h, w) = 3.7f;  // σ = 0
    tensor y(s, l), dx(s, l);
    workspace ws;
    ln.forward(x.view(), y.view(), ws, pass_mode::training);
    bool bias_exactly = true;
    for (index_t c = 0; c < s.c; ++c)
      for (index_t h = 0; h < s.h; ++h)
        for (index_t w = 0; w < s.w; ++w) bias_exactly &= y(1, c, h, w) == ln.bias().data()[(c * s.h + h) * s.w + w];
    CHECK(bias_exactly);
    CHECK(relative_diff(y.view(), reference(ln, x.view()).forward()) <= 2e-6);
    ln.backward(x.view(), random_tensor(s, l, 17).view(), dx.view(), ws);
    CHECK(detail::all_finite(dx.view()));
    for (const parameter* p : ln.parameters())
      for (float g : p->gradients()) CHECK(std::isfinite(g));
  }
}

TEST_CASE("layer_norm results do not depend on the thread count", "[layer_norm]") {
  const shape4 s{4, 64, 16, 16};  // above the parallel threshold, several chunks and blocks per sample
  for (const layout l : {layout::nhwc, layout::nchw}) {
    layer_norm ln(s.c, s.h, s.w);
    spread_parameters(ln, 19);
    const tensor x = random_tensor(s, l, 20, 3.0f, 1.0f), a = random_tensor(s, l, 21);
    struct result {
      tensor y, dx;
      std::vector<float> weight_grad, bias_grad;
    };
    auto run = [&](int threads) {
      const int previous = omp_get_max_threads();
      omp_set_num_threads(threads);
      result r{tensor(s, l), tensor(s, l), {}, {}};
      workspace ws;
      for (parameter* p : ln.parameters()) p->zero_grad();
      ln.forward(x.view(), r.y.view(), ws, pass_mode::training);
      ln.backward(x.view(), a.view(), r.dx.view(), ws);
      r.weight_grad.assign(ln.weight().gradients().begin(), ln.weight().gradients().end());
      r.bias_grad.assign(ln.bias().gradients().begin(), ln.bias().gradients().end());
      omp_set_num_threads(previous);
      return r;
    };
    const result one = run(1), two = run(2), three = run(3);
    CHECK(same_values(one.y.view(), two.y.view()));
    CHECK(same_values(one.y.view(), three.y.view()));
    CHECK(same_values(one.dx.view(), two.dx.view()));
    CHECK(same_values(one.dx.view(), three.dx.view()));
    CHECK(one.weight_grad == two.weight_grad);
    CHECK(one.bias_grad == three.bias_grad);
  }
}

TEST_CASE("layer_norm forward runs from several threads with a workspace each", "[layer_norm]") {
  const shape4 s{3, 16, 8, 8};
  layer_norm ln(s.c, s.h, s.w);
  spread_parameters(ln, 23);
  const layer_norm& shared = ln;
  const tensor x = random_tensor(s, layout::nhwc, 24);
  tensor want(s, layout::nhwc);
  workspace ws;
  shared.forward(x.view(), want.view(), ws);
  std::vector<tensor> got(4, tensor(s, layout::nhwc));
  std::vector<std::thread> threads;
  for (tensor& t : got)
    threads.emplace_back([&shared, &x, &t] {
      workspace own;
      for (int i = 0; i < 20; ++i) shared.forward(x.view(), t.view(), own);
    });
  for (std::thread& t : threads) t.join();
  for (const tensor& t : got) CHECK(same_values(t.view(), want.view()));
}

TEST_CASE("layer_norm rejects bad shapes and arguments", "[layer_norm]") {
  CHECK_THROWS_AS(layer_norm(0, 3, 3), error);
  CHECK_THROWS_AS(layer_norm(8, 3, -1), error);
  CHECK_THROWS_AS(layer_norm(8, 3, 3, 0.0), error);
  CHECK_THROWS_AS(layer_norm(8, 3, 3, std::nan("")), error);

  layer_norm ln(8, 3, 3);
  workspace ws;
  const tensor x = random_tensor({2, 8, 3, 3}, layout::nhwc, 1);
  tensor y({2, 8, 3, 3}, layout::nhwc), dx({2, 8, 3, 3}, layout::nhwc);
  auto expect = [](auto&& f, errc code, std::initializer_list<const char*> parts) {
    try {
      f();
      FAIL("expected an error");
    } catch (const error& e) {
      CHECK(e.code() == code);
      for (const char* p : parts) CHECK_THAT(e.what(), Catch::Contains(p));
    }
  };
  const tensor wrong_c({2, 9, 3, 3}), wrong_w({2, 8, 3, 4});
  expect([&] { ln.forward(wrong_c.view(), tensor({2, 9, 3, 3}).view(), ws); }, errc::shape_mismatch,
         {"2x9x3x3", "8x3x3"});
  expect([&] { ln.forward(wrong_w.view(), tensor({2, 8, 3, 4}).view(), ws); }, errc::shape_mismatch,
         {"2x8x3x4", "8x3x3"});
  expect([&] { ln.forward(x.view(), tensor({3, 8, 3, 3}).view(), ws); }, errc::shape_mismatch, {"2x8x3x3", "3x8x3x3"});
  expect([&] { ln.forward(tensor({0, 8, 3, 3}).view(), tensor({0, 8, 3, 3}).view(), ws); }, errc::empty_input, {});
  expect([&] { ln.forward(y.view(), y.view(), ws); }, errc::invalid_argument, {"overlap"});

  // backward needs a training-mode forward of this shape as the last forward on the workspace.
  expect([&] { ln.backward(x.view(), y.view(), dx.view(), ws); }, errc::invalid_argument, {"training-mode forward"});
  ln.forward(x.view(), y.view(), ws, pass_mode::training);
  ln.forward(x.view(), y.view(), ws);
  expect([&] { ln.backward(x.view(), y.view(), dx.view(), ws); }, errc::invalid_argument, {"training-mode forward"});
  ln.forward(x.view(), y.view(), ws, pass_mode::training);
  const tensor one_sample = random_tensor({1, 8, 3, 3}, layout::nhwc, 2);
  expect([&] { ln.backward(one_sample.view(), tensor({1, 8, 3, 3}).view(), view(), ws); }, errc::invalid_argument,
         {"training-mode forward", "1x8x3x3"});
  expect([&] { ln.backward(x.view(), tensor({2, 8, 3, 4}).view(), dx.view(), ws); }, errc::shape_mismatch,
         {"2x8x3x3", "2x8x3x4"});
  expect([&] { ln.backward(x.view(), y.view(), tensor({1, 8, 3, 3}).view(), ws); }, errc::shape_mismatch,
         {"2x8x3x3", "1x8x3x3"});
  expect([&] { ln.backward(x.view(), y.view(), y.view(), ws); }, errc::invalid_argument, {"overlaps"});
  ln.backward(x.view(), y.view(), dx.view(), ws);  // and the layer still works
}
