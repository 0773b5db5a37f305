// The vector coupling (layers/vector_coupling.hpp), DifferNet's two-step Glow coupling with MLP
// subnets: against a naive double-precision reference, round trip, brute-force log-determinant,
// finite-difference gradients, the output clamp and the size counts.
#include <catch2/catch.hpp>

#include <cmath>

#include "flowad/layers/vector_coupling.hpp"
#include "support/layer_checks.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

vector_coupling_config small_coupling(index_t channels, index_t hidden = 12, index_t hidden_layers = 3) {
  vector_coupling_config c;
  c.channels = channels;
  c.hidden = hidden;
  c.hidden_layers = hidden_layers;
  c.seed = 5;
  return c;
}

// MLP of `layer`'s subnet `name` ("s1", "s2") on one input row, in double, from its float parameters.
std::vector<double> mlp(vector_coupling& layer, const std::string& name, std::vector<double> x) {
  std::vector<parameter*> ps = layer.parameters();
  std::vector<parameter*> own;
  for (parameter* p : ps)
    if (p->name().rfind(name + ".", 0) == 0) own.push_back(p);
  for (std::size_t l = 0; l < own.size(); l += 2) {
    const parameter& w = *own[l];
    const parameter& b = *own[l + 1];
    const index_t out = w.dims()[0], in = w.dims()[1];
    std::vector<double> y(static_cast<std::size_t>(out));
    for (index_t o = 0; o < out; ++o) {
      double sum = b.data()[o];
      for (index_t i = 0; i < in; ++i) sum += static_cast<double>(w.data()[o * in + i]) * x[static_cast<std::size_t>(i)];
      y[static_cast<std::size_t>(o)] = l + 2 < own.size() ? std::max(sum, 0.0) : sum;
    }
    x = std::move(y);
  }
  return x;
}

// The reference's glow_coupling_layer.forward in double, per pixel vector.
reference_output naive_forward(vector_coupling& layer, const_view x) {
  const soft_clamp clamp = layer.config().clamp;
  const double limit = layer.config().output_clamp;
  const index_t C = x.c(), d1 = C / 2, d2 = C - d1;
  reference_output out{dtensor(x.n(), C, x.h(), x.w()), std::vector<double>(static_cast<std::size_t>(x.n()), 0.0)};
  for (index_t n = 0; n < x.n(); ++n)
    for (index_t h = 0; h < x.h(); ++h)
      for (index_t w = 0; w < x.w(); ++w) {
        std::vector<double> x1, x2;
        for (index_t c = 0; c < d1; ++c) x1.push_back(x(n, c, h, w));
        for (index_t c = d1; c < C; ++c) x2.push_back(x(n, c, h, w));
        const std::vector<double> r2 = mlp(layer, "s2", x2);
        std::vector<double> y1(static_cast<std::size_t>(d1));
        for (index_t j = 0; j < d1; ++j) {
          const double phi = clamp.apply(r2[static_cast<std::size_t>(j)]);
          y1[static_cast<std::size_t>(j)] = std::exp(phi) * x1[static_cast<std::size_t>(j)] + r2[static_cast<std::size_t>(d1 + j)];
          out.logdet[static_cast<std::size_t>(n)] += phi;
        }
        const std::vector<double> r1 = mlp(layer, "s1", y1);
        for (index_t j = 0; j < d2; ++j) {
          const double phi = clamp.apply(r1[static_cast<std::size_t>(j)]);
          const double y2 = std::exp(phi) * x2[static_cast<std::size_t>(j)] + r1[static_cast<std::size_t>(d2 + j)];
          out.logdet[static_cast<std::size_t>(n)] += phi;
          out.y.at(n, d1 + j, h, w) = std::clamp(y2, -limit, limit);
        }
        for (index_t j = 0; j < d1; ++j) out.y.at(n, j, h, w) = std::clamp(y1[static_cast<std::size_t>(j)], -limit, limit);
      }
  return out;
}

}  // namespace

TEST_CASE("vector_coupling computes DifferNet's glow coupling (S2 before S1, atan clamp / α)", "[vector_coupling][differnet]") {
  for (const index_t channels : {7, 10}) {
    vector_coupling layer(small_coupling(channels));
    const tensor x = random_tensor({5, channels, 2, 1}, layout::nhwc, 3);
    workspace ws;
    tensor y;
    const std::vector<double> logdet = run_forward(layer, x.view(), y, ws);
    const reference_output ref = naive_forward(layer, x.view());
    INFO(channels << " channels");
    CHECK(relative_error(y.view(), ref.y) < 1e-5);
    for (std::size_t n = 0; n < logdet.size(); ++n) CHECK(logdet[n] == Approx(ref.logdet[n]).margin(1e-4));
    // Not the identity at start (PyTorch's default init, no zero-init).
    CHECK(max_abs_diff(x.view(), y.view()) > 0.1);
  }
}

TEST_CASE("vector_coupling inverts, and its log-determinant matches a brute-force Jacobian", "[vector_coupling][differnet]") {
  vector_coupling layer(small_coupling(9, 16, 2));
  check_round_trip(layer, random_tensor({6, 9, 1, 1}, layout::nhwc, 11).view(), 1e-4);
  check_round_trip(layer, random_tensor({2, 9, 3, 2}, layout::nchw, 12).view(), 1e-4);  // strided src and dst
  check_logdet(layer, random_tensor({1, 9, 1, 1}, layout::nhwc, 13).view(), 2e-3);
  check_logdet(layer, random_tensor({1, 9, 2, 1}, layout::nhwc, 14).view(), 2e-3);  // sums over pixels
}

TEST_CASE("vector_coupling's gradients match finite differences of the reference", "[vector_coupling][differnet]") {
  for (const index_t hidden_layers : {1, 3}) {
    vector_coupling layer(small_coupling(8, 10, hidden_layers));
    const tensor x = random_tensor({3, 8, 2, 1}, layout::nhwc, 21);
    INFO(hidden_layers << " hidden layers");
    gradient_check_options opt;
    opt.samples_per_tensor = 16;
    check_gradients(layer, x.view(), opt, [&](const_view v) { return naive_forward(layer, v); });
  }
}

TEST_CASE("vector_coupling clips its output to ±output_clamp with zero gradient there", "[vector_coupling][differnet]") {
  vector_coupling_config c = small_coupling(4, 8, 1);
  c.output_clamp = 0.5f;
  vector_coupling layer(c);
  const tensor x = random_tensor({4, 4, 1, 1}, layout::nhwc, 31, 3.0f);
  workspace ws;
  tensor y;
  run_forward(layer, x.view(), y, ws, pass_mode::training);
  const reference_output ref = naive_forward(layer, x.view());
  CHECK(relative_error(y.view(), ref.y) < 1e-5);
  CHECK(max_abs(y.view()) <= 0.5);
  // Where the output is clipped nothing flows back: a gradient given only on clipped outputs reaches
  // no input.
  tensor diff(y.shape(), layout::nhwc), diff_src(y.shape(), layout::nhwc);
  diff.fill(0.0f);
  bool any_clipped = false;
  for (index_t i = 0; i < y.numel(); ++i)
    if (std::abs(y.data()[i]) >= 0.5f) {
      diff.data()[i] = 1.0f;
      any_clipped = true;
    }
  REQUIRE(any_clipped);
  const std::vector<double> no_logdet(4, 0.0);
  layer.backward(x.view(), y.view(), diff.view(), no_logdet, diff_src.view(), ws);
  CHECK(max_abs(diff_src.view()) == 0.0);
}

TEST_CASE("vector_coupling counts DifferNet's subnet sizes and rejects bad configurations", "[vector_coupling][differnet]") {
  // The reference's coupling on 768 values: two subnets 384 → 2048 → 2048 → 2048 → 768 of 10,754,816 each.
  vector_coupling_config c;
  c.channels = 768;
  CHECK(vector_coupling::parameter_count(c) == 2.0 * 10754816.0);
  vector_coupling small(small_coupling(7, 12, 3));
  double stored = 0.0;
  for (const parameter* p : static_cast<const flow_layer&>(small).parameters()) stored += static_cast<double>(p->size());
  CHECK(stored == vector_coupling::parameter_count(small.config()));
  // S2: 4 → 12 → 12 → 12 → 6, S1: 3 → 12 → 12 → 12 → 8 per vector.
  CHECK(small.macs_per_sample(2, 3) == 6.0 * (4 * 12 + 2 * 144 + 12 * 6 + 3 * 12 + 2 * 144 + 12 * 8));
  vector_coupling_config bad = small_coupling(1);
  CHECK_THROWS_WITH(vector_coupling{bad}, Catch::Contains("at least 2 channels"));
  bad = small_coupling(4);
  bad.hidden_layers = 0;
  CHECK_THROWS_WITH(vector_coupling{bad}, Catch::Contains("hidden layer"));
  bad = small_coupling(4);
  bad.output_clamp = 0.0f;
  CHECK_THROWS_WITH(vector_coupling{bad}, Catch::Contains("output_clamp"));
  // backward() without a training pass, and mismatched shapes.
  vector_coupling layer(small_coupling(4));
  workspace ws;
  const tensor x = random_tensor({2, 4, 1, 1}, layout::nhwc, 1);
  tensor y, d(x.shape(), layout::nhwc);
  run_forward(layer, x.view(), y, ws);
  const std::vector<double> g(2, 0.0);
  CHECK_THROWS_WITH(layer.backward(x.view(), y.view(), y.view(), g, d.view(), ws), Catch::Contains("training-mode"));
  tensor wrong({2, 5, 1, 1}, layout::nhwc);
  std::vector<double> logdet(2, 0.0);
  CHECK_THROWS_AS(layer.forward(wrong.view(), wrong.view(), logdet, ws), error);
}
