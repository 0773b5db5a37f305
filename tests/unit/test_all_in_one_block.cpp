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

// The three layers run in turn, in training mode, keeping what their backward passes need.
struct composed_block {
  all_in_one_block& block;
  workspace ws;
  tensor coupled, scaled, out;

  std::vector<double> forward(const_view x) {
    const shape4 s = x.shape();
    coupled.resize(s, layout::nhwc);
    scaled.resize(s, layout::nhwc);
    out.resize(s, layout::nhwc);
    std::vector<double> logdet(static_cast<std::size_t>(s.n), 0.0);
    block.coupling().forward(x, coupled.view(), logdet, ws, pass_mode::training);
    block.affine().forward(coupled.view(), scaled.view(), logdet, ws, pass_mode::training);
    block.permutation().forward(scaled.view(), out.view(), logdet, ws, pass_mode::training);
    return logdet;
  }

  // dL/dx after forward(x); the parameters' gradients accumulate as the block's would.
  tensor backward(const_view x, const_view diff_out, span<const double> diff_logdet) {
    const shape4 s = x.shape();
    tensor diff_scaled(s, layout::nhwc), diff_coupled(s, layout::nhwc), diff_x(s, layout::nhwc);
    block.permutation().backward(scaled.view(), out.view(), diff_out, diff_logdet, diff_scaled.view(), ws);
    block.affine().backward(coupled.view(), scaled.view(), diff_scaled.view(), diff_logdet, diff_coupled.view(), ws);
    block.coupling().backward(x, coupled.view(), diff_coupled.view(), diff_logdet, diff_x.view(), ws);
    return diff_x;
  }
};

}  // namespace

TEST_CASE("all_in_one_block's fused passes equal coupling, global affine and permutation in turn", "[all_in_one]") {
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
      {{2, 76, 4, 3}, 2, 3, clamp_kind::tanh_legacy, layout::nhwc, layout::nchw},  // FastFlow's pinned FrEIA
  };
  for (const setup& c : cases) {
    all_in_one_block block(block_config(c.shape.c, c.groups, c.kernel, c.clamp));
    spread_global_affine(block, 3);
    const tensor x = random_tensor(c.shape, c.in_layout, 4);
    workspace ws;
    tensor fused, trained;
    composed_block composed{block, {}, {}, {}, {}};
    const std::vector<double> composed_logdet = composed.forward(x.view());
    const std::vector<double> fused_logdet =
        run_forward(block, x.view(), fused, ws, pass_mode::inference, c.out_layout);
    const std::vector<double> trained_logdet =
        run_forward(block, x.view(), trained, ws, pass_mode::training, c.out_layout);
    INFO("shape " << c.shape.str() << ", groups " << c.groups);
    const double scale = std::max(1.0, max_abs(composed.out.view()));
    CHECK(max_abs_diff(fused.view(), composed.out.view()) <= 1e-5 * scale);
    CHECK(max_abs_diff(trained.view(), composed.out.view()) <= 1e-5 * scale);
    for (std::size_t n = 0; n < fused_logdet.size(); ++n) {
      // Inference runs its own convolution primitives (Winograd with weights transformed ahead), equal
      // to the training ones up to float rounding; training runs the same arithmetic as the composition.
      CHECK(std::abs(fused_logdet[n] - composed_logdet[n]) <= 1e-5 * std::max(1.0, std::abs(composed_logdet[n])));
      CHECK(std::abs(trained_logdet[n] - composed_logdet[n]) <= 1e-9 * std::max(1.0, std::abs(composed_logdet[n])));
    }

    // Backward: the input's and every parameter's gradient.
    const tensor diff_out = random_tensor(c.shape, c.out_layout, 5);
    std::vector<double> diff_logdet(static_cast<std::size_t>(c.shape.n));
    for (std::size_t n = 0; n < diff_logdet.size(); ++n) diff_logdet[n] = 0.3 - 0.2 * static_cast<double>(n);
    for (parameter* p : block.parameters()) p->zero_grad();
    const tensor want_dx = composed.backward(x.view(), diff_out.view(), diff_logdet);
    std::vector<std::vector<float>> want_grads;
    for (parameter* p : block.parameters()) {
      want_grads.emplace_back(p->gradients().begin(), p->gradients().end());
      p->zero_grad();
    }
    tensor dx(c.shape, c.in_layout);
    block.backward(x.view(), trained.view(), diff_out.view(), diff_logdet, dx.view(), ws);
    CHECK(max_abs_diff(dx.view(), want_dx.view()) <= 1e-4 * std::max(1.0, max_abs(want_dx.view())));
    const std::vector<parameter*> params = block.parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      double worst = 0.0, largest = 1.0;
      for (std::size_t j = 0; j < want_grads[i].size(); ++j) {
        worst = std::max(worst, std::abs(static_cast<double>(params[i]->grad()[j]) - want_grads[i][j]));
        largest = std::max(largest, std::abs(static_cast<double>(want_grads[i][j])));
      }
      INFO("gradient of " << params[i]->name());
      CHECK(worst <= 1e-4 * largest);
    }
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
    all_in_one_block block(block_config(152, groups, 3, groups == 2 ? clamp_kind::tanh : clamp_kind::tanh_legacy));
    spread_global_affine(block, 6);
    check_round_trip(block, random_tensor({2, 152, 5, 3}, layout::nhwc, 7).view(), 1e-4);
    check_round_trip(block, random_tensor({1, 152, 4, 4}, layout::nchw, 8).view(), 1e-4);
  }
}

TEST_CASE("all_in_one_block log-determinant equals the brute-force Jacobian", "[all_in_one]") {
  for (const clamp_kind clamp : {clamp_kind::tanh, clamp_kind::tanh_legacy}) {
    all_in_one_config cfg = block_config(4, 2, 3, clamp);
    cfg.coupling.gain_init = 1.0f;
    all_in_one_block block(cfg);
    spread_global_affine(block, 9);
    check_logdet(block, random_tensor({1, 4, 3, 3}, layout::nchw, 10).view());
  }
}

TEST_CASE("all_in_one_block gradients equal finite differences", "[all_in_one]") {
  for (const index_t groups : {2, 3}) {
    all_in_one_block block(block_config(6, groups, 3, clamp_kind::tanh));
    spread_global_affine(block, 11);
    CHECK(block.parameters().size() == 4 * static_cast<std::size_t>(groups - 1) + 2);
    check_gradients(block, random_tensor({2, 6, 3, 3}, layout::nchw, 12).view(), {},
                    [&block](const_view x) { return naive_block(block, x); });
  }
  SECTION("legacy tanh clamp") {
    all_in_one_block block(block_config(6, 2, 3, clamp_kind::tanh_legacy));
    spread_global_affine(block, 13);
    check_gradients(block, random_tensor({2, 6, 3, 3}, layout::nchw, 14).view(), {},
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
