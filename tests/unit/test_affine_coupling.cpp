#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "flowad/layers/affine_coupling.hpp"
#include "kernels/coupling_kernels.hpp"
#include "support/layer_checks.hpp"
#include "support/naive.hpp"
#include "support/reference_coupling.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

affine_coupling_config small_config(index_t channels, index_t groups, index_t hidden, index_t kernel, clamp_kind clamp,
                                    subnet_activation act = subnet_activation::leaky_relu) {
  affine_coupling_config cfg;
  cfg.channels = channels;
  cfg.groups = groups;
  cfg.hidden = hidden;
  cfg.kernel = kernel;
  cfg.activation = act;
  cfg.clamp = {clamp, clamp == clamp_kind::atan ? 3.0f : 2.0f};
  cfg.gain_init = 0.7f;  // non-zero, so that the layer is not the identity
  cfg.seed = 42;
  return cfg;
}

}  // namespace

TEST_CASE("the coupling kernels' soft clamps equal soft_clamp in double", "[coupling]") {
  // φ is what coupling_forward returns on a single value (x = 0, t = 0, γ = 1); φ' is dF_s of
  // coupling_backward with dy = 0 and dL/dlogdet = 1. Both as compiled into the layer, SIMD clones included.
  constexpr index_t count = 4096;
  constexpr double eps = std::numeric_limits<float>::epsilon();
  std::vector<float> raw(2 * count), x(count, 0.0f), dy(count, 0.0f), dx(count), draw(2 * count);
  float y = 0.0f;
  for (const soft_clamp clamp : {soft_clamp{clamp_kind::atan, 3.0f}, soft_clamp{clamp_kind::tanh, 2.0f},
                                 soft_clamp{clamp_kind::tanh_legacy, 2.0f}, soft_clamp{clamp_kind::tanh_legacy, 0.5f},
                                 soft_clamp{clamp_kind::none, 1.0f}}) {
    for (const double range : {0.7, 12.0}) {
      detail::rng r(static_cast<std::uint64_t>(clamp.kind) + 11);
      for (float& v : raw) v = static_cast<float>(r.uniform(-range, range));  // [F_s | F_t] of one pixel
      double worst_phi = 0.0, worst_dphi = 0.0, peak_dphi = 0.0;
      const kernels::coupling_row one{1, 1, 1.0f, clamp};
      for (index_t j = 0; j < count; ++j) {
        const float pair[2] = {raw[static_cast<std::size_t>(j)], 0.0f};
        const double got = kernels::coupling_forward(one, x.data(), 1, pair, &y, 1, nullptr);
        const double want = clamp.apply(pair[0]);
        worst_phi = std::max(worst_phi, std::abs(got - want) / std::max(std::abs(want), 1e-30) / eps);
      }
      const kernels::coupling_row row{1, count, 1.0f, clamp};
      kernels::coupling_backward(row, x.data(), count, dy.data(), count, nullptr, raw.data(), 1.0, dx.data(), count,
                                 draw.data());
      for (index_t j = 0; j < count; ++j) {
        const double want = clamp.derivative(raw[static_cast<std::size_t>(j)]);
        peak_dphi = std::max(peak_dphi, std::abs(want));
        worst_dphi = std::max(worst_dphi, std::abs(draw[static_cast<std::size_t>(j)] - want));
      }
      // φ' = 1 − tanh² cancels where tanh saturates: its error is measured against its peak, not itself.
      worst_dphi /= peak_dphi * eps;
      INFO(to_string(clamp.kind) << " alpha " << clamp.alpha << " on ±" << range << ": φ within " << worst_phi
                                 << " ulp, φ' within " << worst_dphi << " ulp of its peak");
      CHECK(worst_phi < 4.0);
      CHECK(worst_dphi < 4.0);
    }
  }
}

TEST_CASE("coupling groups are as equal as possible, first groups larger", "[coupling]") {
  CHECK(affine_coupling(small_config(304, 4, 8, 1, clamp_kind::atan)).groups() == std::vector<index_t>{76, 76, 76, 76});
  CHECK(affine_coupling(small_config(304, 6, 8, 1, clamp_kind::atan)).groups() ==
        std::vector<index_t>{51, 51, 51, 51, 50, 50});
  CHECK(affine_coupling(small_config(7, 2, 8, 1, clamp_kind::atan)).groups() == std::vector<index_t>{4, 3});
}

TEST_CASE("affine coupling matches a naive double reference", "[coupling]") {
  struct setup {
    shape4 shape;
    index_t groups, hidden, kernel;
    clamp_kind clamp;
    subnet_activation act;
    layout in_layout;
  };
  const setup cases[] = {
      {{2, 76, 5, 4}, 2, 24, 3, clamp_kind::atan, subnet_activation::leaky_relu, layout::nhwc},
      {{1, 152, 3, 5}, 4, 16, 1, clamp_kind::tanh, subnet_activation::relu, layout::nchw},
      {{3, 304, 3, 3}, 4, 16, 3, clamp_kind::atan, subnet_activation::leaky_relu, layout::nchw},
      {{2, 7, 4, 4}, 3, 8, 3, clamp_kind::tanh, subnet_activation::leaky_relu, layout::nhwc},
      {{2, 76, 3, 4}, 2, 16, 3, clamp_kind::tanh_legacy, subnet_activation::relu, layout::nhwc},
      {{1, 9, 3, 3}, 3, 8, 1, clamp_kind::tanh_legacy, subnet_activation::leaky_relu, layout::nchw},
  };
  for (const setup& c : cases) {
    affine_coupling layer(small_config(c.shape.c, c.groups, c.hidden, c.kernel, c.clamp, c.act));
    const tensor x = random_tensor(c.shape, c.in_layout, 3);
    workspace ws;
    tensor y;
    const std::vector<double> logdet = run_forward(layer, x.view(), y, ws);
    const reference_output ref = naive_coupling(layer, x.view());
    double err = 0.0, scale = 0.0;
    for (index_t i = 0; i < c.shape.n; ++i)
      for (index_t j = 0; j < c.shape.c; ++j)
        for (index_t h = 0; h < c.shape.h; ++h)
          for (index_t w = 0; w < c.shape.w; ++w) {
            err = std::max(err, std::abs(y(i, j, h, w) - ref.y.at(i, j, h, w)));
            scale = std::max(scale, std::abs(ref.y.at(i, j, h, w)));
          }
    INFO("shape " << c.shape.str() << " groups " << c.groups << ": max error " << err << " at scale " << scale);
    CHECK(err <= 1e-4 * scale);
    for (std::size_t i = 0; i < logdet.size(); ++i) {
      INFO("logdet[" << i << "] " << logdet[i] << " reference " << ref.logdet[i]);
      CHECK(std::abs(logdet[i] - ref.logdet[i]) <= 1e-4 * std::max(1.0, std::abs(ref.logdet[i])));
    }
  }
}

TEST_CASE("affine coupling inverse recovers the input", "[coupling]") {
  for (const shape4 s : {shape4{1, 76, 6, 6}, shape4{4, 152, 5, 3}, shape4{2, 304, 4, 4}}) {
    for (const index_t groups : {2, 4}) {
      for (const clamp_kind clamp : {clamp_kind::atan, clamp_kind::tanh, clamp_kind::tanh_legacy}) {
        affine_coupling layer(small_config(s.c, groups, 32, 3, clamp));
        check_round_trip(layer, random_tensor(s, layout::nhwc, 9).view(), 1e-4);
        check_round_trip(layer, random_tensor(s, layout::nchw, 10).view(), 1e-4);
      }
    }
  }
}

TEST_CASE("affine coupling log-determinant equals the brute-force Jacobian", "[coupling]") {
  for (const index_t groups : {2, 4}) {
    for (const clamp_kind clamp : {clamp_kind::atan, clamp_kind::tanh, clamp_kind::tanh_legacy, clamp_kind::none}) {
      affine_coupling_config cfg = small_config(4, groups, 6, 3, clamp);
      cfg.gain_init = 1.0f;
      affine_coupling layer(cfg);
      check_logdet(layer, random_tensor({1, 4, 3, 3}, layout::nchw, 4).view());
    }
  }
}

TEST_CASE("affine coupling gradients equal finite differences", "[coupling]") {
  for (const index_t groups : {2, 3}) {
    for (const subnet_activation act : {subnet_activation::leaky_relu, subnet_activation::relu}) {
      for (const clamp_kind clamp : {clamp_kind::atan, clamp_kind::tanh, clamp_kind::tanh_legacy}) {
        affine_coupling layer(small_config(6, groups, 5, 3, clamp, act));
        check_gradients(layer, random_tensor({2, 6, 3, 3}, layout::nchw, 12).view(), {}, reference_of(layer));
      }
    }
  }
  SECTION("fixed gain") {
    affine_coupling_config cfg = small_config(5, 2, 4, 1, clamp_kind::tanh);
    cfg.learn_gain = false;
    cfg.gain_init = 0.1f;
    affine_coupling layer(cfg);
    CHECK(layer.parameters().size() == 4);
    check_gradients(layer, random_tensor({3, 5, 2, 3}, layout::nhwc, 13).view(), {}, reference_of(layer));
  }
}

TEST_CASE("affine coupling with zero gain is the identity", "[coupling]") {
  affine_coupling_config cfg = small_config(76, 4, 16, 3, clamp_kind::atan);
  cfg.gain_init = 0.0f;
  affine_coupling layer(cfg);
  const tensor x = random_tensor({2, 76, 4, 4}, layout::nhwc, 1);
  workspace ws;
  tensor y;
  const std::vector<double> logdet = run_forward(layer, x.view(), y, ws);
  CHECK(max_abs_diff(x.view(), y.view()) == 0.0);
  CHECK(logdet[0] == 0.0);
}

TEST_CASE("affine coupling is deterministic across workspaces and batch splits", "[coupling]") {
  affine_coupling layer(small_config(76, 4, 16, 3, clamp_kind::atan));
  const tensor x = random_tensor({4, 76, 5, 5}, layout::nhwc, 2);
  workspace a, b;
  tensor ya, yb;
  const auto la = run_forward(layer, x.view(), ya, a);
  const auto lb = run_forward(layer, x.view(), yb, b);
  CHECK(max_abs_diff(ya.view(), yb.view()) == 0.0);
  CHECK(la == lb);
  // Sample 2 alone gives the same output as within the batch (up to oneDNN's blocking order).
  tensor y2;
  const auto l2 = run_forward(layer, x.view().batch(2, 1), y2, a);
  CHECK(max_abs_diff(y2.view(), ya.view().batch(2, 1)) <= 1e-5);
  CHECK(std::abs(l2[0] - la[2]) <= 1e-4 * std::abs(la[2]) + 1e-4);
}

TEST_CASE("affine coupling rejects bad input and configurations", "[coupling]") {
  CHECK_THROWS_AS(affine_coupling(small_config(0, 2, 4, 3, clamp_kind::atan)), error);
  CHECK_THROWS_AS(affine_coupling(small_config(8, 1, 4, 3, clamp_kind::atan)), error);
  CHECK_THROWS_AS(affine_coupling(small_config(3, 4, 4, 3, clamp_kind::atan)), error);
  CHECK_THROWS_AS(affine_coupling(small_config(8, 2, 0, 3, clamp_kind::atan)), error);
  CHECK_THROWS_AS(affine_coupling(small_config(8, 2, 4, 2, clamp_kind::atan)), error);
  affine_coupling_config bad_alpha = small_config(8, 2, 4, 3, clamp_kind::atan);
  bad_alpha.clamp.alpha = -1.0f;
  CHECK_THROWS_AS(affine_coupling(bad_alpha), error);

  affine_coupling layer(small_config(8, 2, 4, 3, clamp_kind::atan));
  workspace ws;
  tensor x({2, 8, 3, 3}), y({2, 8, 3, 3}), wrong({2, 9, 3, 3}), other_hw({2, 8, 4, 3}), empty({0, 8, 3, 3});
  std::vector<double> logdet(2);
  try {
    layer.forward(wrong.view(), tensor({2, 9, 3, 3}).view(), logdet, ws);
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.code() == errc::shape_mismatch);
    CHECK_THAT(e.what(), Catch::Contains("2x9x3x3"));
  }
  try {
    layer.forward(x.view(), other_hw.view(), logdet, ws);
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.code() == errc::shape_mismatch);
    CHECK_THAT(e.what(), Catch::Contains("2x8x3x3") && Catch::Contains("2x8x4x3"));
  }
  std::vector<double> none;
  CHECK_THROWS_AS(layer.forward(empty.view(), tensor({0, 8, 3, 3}).view(), none, ws), error);
  CHECK_THROWS_AS(layer.forward(x.view(), x.view(), logdet, ws), error);
  std::vector<double> diff_logdet(2, 0.0);
  try {
    layer.backward(x.view(), y.view(), y.view(), diff_logdet, tensor({2, 8, 3, 3}).view(), ws);
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK_THAT(e.what(), Catch::Contains("training-mode forward"));
  }
}
