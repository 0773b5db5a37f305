// all_in_one_block (FrEIA's AllInOneBlock): its fused inference pass equals the three layers run in
// turn, and it passes every layer property (round trip, log-determinant, gradients, bad input).
#include <catch2/catch.hpp>

#include <cmath>

#include "flowad/layers/all_in_one_block.hpp"
#include "support/layer_checks.hpp"
#include "support/naive.hpp"
#include "support/reference_coupling.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

all_in_one_config block_config(index_t channels, index_t groups, index_t kernel, clamp_kind clamp) {
  all_in_one_config cfg;
  affine_coupling_config& c = cfg.coupling;
  c.channels = channels;
  c.groups = groups;
  c.hidden = 12;
  c.kernel = kernel;
  c.activation = subnet_activation::relu;
  c.clamp = {clamp, 2.0f};
  c.learn_gain = false;
  c.gain_init = 0.6f;  // large enough that the coupling is far from the identity
  c.seed = 5;
  cfg.permutation_seed = 17;
  return cfg;
}

// Moves the global affine away from its initial identity so that a wrong channel order shows.
void spread_global_affine(all_in_one_block& block, std::uint64_t seed) {
  detail::rng r(seed);
  for (float& g : block.affine().global_scale().values()) g = static_cast<float>(r.uniform(-1.0, 3.0));
  for (float& t : block.affine().global_offset().values()) t = static_cast<float>(r.uniform(-0.5, 0.5));
  block.affine().global_scale().mark_updated();
  block.affine().global_offset().mark_updated();
}

// The block from its definition, in double: naive coupling, then Ψ(g)·y + offset (softplus), then
// out(:, c) = in(:, perm[c]).
reference_output naive_block(all_in_one_block& block, const_view x) {
  reference_output coupled = naive_coupling(block.coupling(), x);
  const dtensor& y = coupled.y;
  reference_output ref{dtensor(y.n, y.c, y.h, y.w), coupled.logdet};
  const float* g = block.affine().global_scale().data();
  const float* t = block.affine().global_offset().data();
  const std::vector<index_t>& perm = block.permutation().permutation();
  double log_psi = 0.0;
  for (index_t c = 0; c < y.c; ++c) log_psi += std::log(0.2 * std::log1p(std::exp(0.5 * g[c])));
  for (double& v : ref.logdet) v += static_cast<double>(y.h * y.w) * log_psi;
  for (index_t n = 0; n < y.n; ++n)
    for (index_t c = 0; c < y.c; ++c) {
      const index_t from = perm[static_cast<std::size_t>(c)];
      const double psi = 0.2 * std::log1p(std::exp(0.5 * static_cast<double>(g[from])));
      for (index_t h = 0; h < y.h; ++h)
        for (index_t w = 0; w < y.w; ++w) ref.y.at(n, c, h, w) = y.at(n, from, h, w) * psi + t[from];
    }
  return ref;
}

}  // namespace

TEST_CASE("all_in_one_block's fused inference equals coupling, global affine and permutation in turn", "[all_in_one]") {
  struct setup {
    shape4 shape;
    index_t groups, kernel;
    clamp_kind clamp;
    layout in_layout, out_layout;
  };
  const setup cases[] = {
      {{1, 76, 5, 4}, 2, 3, clamp_kind::tanh, layout::nhwc, layout::nhwc},
      {{3, 152, 3, 5}, 4, 1, clamp_kind::atan, layout::nhwc, layout::nhwc},  // middle groups
      {{2, 7, 4, 4}, 3, 3, clamp_kind::tanh, layout::nchw, layout::nchw},    // strided input and output
      {{16, 256, 8, 8}, 2, 1, clamp_kind::tanh, layout::nhwc, layout::nhwc}, // parallel rows
      {{2, 256, 3, 40}, 2, 3, clamp_kind::tanh, layout::nhwc, layout::nhwc},  // long rows
  };
  for (const setup& c : cases) {
    all_in_one_block block(block_config(c.shape.c, c.groups, c.kernel, c.clamp));
    spread_global_affine(block, 3);
    const tensor x = random_tensor(c.shape, c.in_layout, 4);
    workspace ws;
    tensor fused, composed;
    const std::vector<double> fused_logdet = run_forward(block, x.view(), fused, ws, pass_mode::inference, c.out_layout);
    const std::vector<double> composed_logdet = run_forward(block, x.view(), composed, ws, pass_mode::training);
    INFO("shape " << c.shape.str() << ", groups " << c.groups);
    CHECK(max_abs_diff(fused.view(), composed.view()) <= 1e-5 * std::max(1.0, max_abs(composed.view())));
    for (std::size_t n = 0; n < fused_logdet.size(); ++n)
      CHECK(std::abs(fused_logdet[n] - composed_logdet[n]) <= 1e-9 * std::max(1.0, std::abs(composed_logdet[n])));
    // And both equal the definition.
    if (c.shape.c <= 152) {
      const reference_output ref = naive_block(block, x.view());
      CHECK(relative_error(fused.view(), ref.y) <= 1e-4);
      for (std::size_t n = 0; n < fused_logdet.size(); ++n)
        CHECK(std::abs(fused_logdet[n] - ref.logdet[n]) <= 1e-4 * std::max(1.0, std::abs(ref.logdet[n])));
    }
  }
}

TEST_CASE("all_in_one_block inverse recovers the input", "[all_in_one]") {
  for (const index_t groups : {2, 4}) {
    all_in_one_block block(block_config(152, groups, 3, clamp_kind::tanh));
    spread_global_affine(block, 6);
    check_round_trip(block, random_tensor({2, 152, 5, 3}, layout::nhwc, 7).view(), 1e-4);
    check_round_trip(block, random_tensor({1, 152, 4, 4}, layout::nchw, 8).view(), 1e-4);
  }
}

TEST_CASE("all_in_one_block log-determinant equals the brute-force Jacobian", "[all_in_one]") {
  all_in_one_config cfg = block_config(4, 2, 3, clamp_kind::tanh);
  cfg.coupling.gain_init = 1.0f;
  all_in_one_block block(cfg);
  spread_global_affine(block, 9);
  check_logdet(block, random_tensor({1, 4, 3, 3}, layout::nchw, 10).view());
}

TEST_CASE("all_in_one_block gradients equal finite differences", "[all_in_one]") {
  for (const index_t groups : {2, 3}) {
    all_in_one_block block(block_config(6, groups, 3, clamp_kind::tanh));
    spread_global_affine(block, 11);
    CHECK(block.parameters().size() == 4 * static_cast<std::size_t>(groups - 1) + 2);
    check_gradients(block, random_tensor({2, 6, 3, 3}, layout::nchw, 12).view(), {},
                    [&block](const_view x) { return naive_block(block, x); });
  }
}

TEST_CASE("all_in_one_block rejects bad input", "[all_in_one]") {
  all_in_one_block block(block_config(8, 2, 1, clamp_kind::tanh));
  workspace ws;
  std::vector<double> logdet(2);
  const tensor x = random_tensor({2, 8, 3, 3}, layout::nhwc, 1);
  tensor wrong({2, 6, 3, 3}, layout::nhwc), y({2, 8, 3, 3}, layout::nhwc), empty;
  CHECK_THROWS_WITH(block.forward(wrong.view(), y.view(), logdet, ws), Catch::Contains("channels"));
  CHECK_THROWS_WITH(block.forward(y.view(), y.view(), logdet, ws), Catch::Contains("overlap"));
  CHECK_THROWS_AS(block.forward(empty.view(), y.view(), logdet, ws), error);
  std::vector<double> short_logdet(1);
  CHECK_THROWS_WITH(block.forward(x.view(), y.view(), short_logdet, ws), Catch::Contains("logdet"));
  // backward needs a training forward of the same shape on the workspace.
  tensor diff({2, 8, 3, 3}, layout::nhwc);
  block.forward(x.view(), y.view(), logdet, ws);
  CHECK_THROWS_WITH(block.backward(x.view(), y.view(), y.view(), logdet, diff.view(), ws),
                    Catch::Contains("training-mode forward"));
  // A global scale whose Ψ is not finite is named.
  block.affine().global_scale().values()[3] = std::numeric_limits<float>::quiet_NaN();
  block.affine().global_scale().mark_updated();
  CHECK_THROWS_WITH(block.forward(x.view(), y.view(), logdet, ws), Catch::Contains("global_scale"));
}
