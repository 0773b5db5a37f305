// Conditional affine_coupling and all_in_one_block (FrEIA's `cond`, CFlow-AD): the condition's
// channels join the passive half at the subnet's input. With a fixed condition the layers are
// ordinary flows in x, so every layer property applies: round trip, brute-force log-determinant,
// gradients against a double-precision reference written from the definition.
#include <catch2/catch.hpp>

#include <chrono>

#include "flowad/layers/all_in_one_block.hpp"
#include "support/layer_checks.hpp"
#include "support/naive.hpp"
#include "support/reference_coupling.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

all_in_one_config conditional_config(index_t channels, index_t condition_channels, index_t kernel) {
  all_in_one_config cfg;
  affine_coupling_config& c = cfg.coupling;
  c.channels = channels;
  c.groups = 2;
  c.hidden = 10;
  c.kernel = kernel;
  c.activation = subnet_activation::relu;
  c.clamp = {clamp_kind::tanh_legacy, 1.9f};
  c.learn_gain = false;
  c.gain_init = 0.7f;  // far enough from the identity that a wrong condition path shows
  c.seed = 23;
  c.condition_channels = condition_channels;
  cfg.permutation_seed = 29;
  return cfg;
}

void spread_global_affine(all_in_one_block& block, std::uint64_t seed) {
  detail::rng r(seed);
  for (float& g : block.affine().global_scale().values()) g = static_cast<float>(r.uniform(-1.0, 3.0));
  for (float& t : block.affine().global_offset().values()) t = static_cast<float>(r.uniform(-0.5, 0.5));
  block.affine().global_scale().mark_updated();
  block.affine().global_offset().mark_updated();
}

// A conditional layer (all_in_one_block or affine_coupling) with its condition fixed, seen as a flow
// in x alone.
template <class Layer>
class with_condition final : public flow_layer {
 public:
  with_condition(Layer& layer, tensor condition) : layer_(layer), condition_(std::move(condition)) {}
  const char* kind() const noexcept override { return "conditional layer"; }
  index_t channels() const noexcept override { return layer_.channels(); }
  void forward(const_view src, view dst, span<double> logdet, workspace& ws, pass_mode mode) const override {
    layer_.forward(src, condition_.view(), dst, logdet, ws, mode);
  }
  void inverse(const_view dst, view src, workspace& ws) const override { layer_.inverse(dst, condition_.view(), src, ws); }
  void backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet, view diff_src,
                workspace& ws) override {
    layer_.backward(src, dst, diff_dst, diff_logdet, diff_src, ws);
  }
  std::vector<parameter*> parameters() override { return layer_.parameters(); }
  const tensor& condition() const { return condition_; }

 private:
  Layer& layer_;
  tensor condition_;
};
template <class Layer>
with_condition(Layer&, tensor) -> with_condition<Layer>;

}  // namespace

TEST_CASE("conditional all_in_one_block equals its definition with the condition at the subnet's input", "[cflow][all_in_one]") {
  all_in_one_block block(conditional_config(6, 4, 1));
  spread_global_affine(block, 3);
  // The first subnet convolution reads C1 + P = 3 + 4 channels.
  CHECK(block.coupling().parameters()[0]->dims()[1] == 7);
  for (const shape4 s : {shape4{5, 6, 1, 1}, shape4{2, 6, 3, 4}}) {
    const tensor x = random_tensor(s, layout::nhwc, 4);
    const tensor condition = random_tensor({s.n, 4, s.h, s.w}, layout::nchw, 5);  // strided relative to NHWC
    const dtensor condition_d = to_double(condition.view());
    workspace ws;
    tensor y(s, layout::nhwc);
    std::vector<double> logdet(static_cast<std::size_t>(s.n), 0.0);
    block.forward(x.view(), condition.view(), y.view(), logdet, ws);
    const reference_output ref = naive_block(block, x.view(), &condition_d);
    CHECK(relative_error(y.view(), ref.y) <= 1e-5);
    for (std::size_t n = 0; n < logdet.size(); ++n) CHECK(logdet[n] == Approx(ref.logdet[n]).epsilon(1e-5).margin(1e-5));
    // The condition matters: another one gives another output.
    const tensor other = random_tensor(condition.shape(), layout::nhwc, 6);
    tensor y_other(s, layout::nhwc);
    block.forward(x.view(), other.view(), y_other.view(), logdet, ws);
    CHECK(max_abs_diff(y.view(), y_other.view()) > 1e-2);
  }
}

TEST_CASE("conditional all_in_one_block inverts, and its log-determinant is the brute-force Jacobian's", "[cflow][all_in_one]") {
  for (const index_t kernel : {1, 3}) {
    all_in_one_block block(conditional_config(5, 3, kernel));
    spread_global_affine(block, 7);
    const with_condition fibres(block, random_tensor({7, 3, 1, 1}, layout::nhwc, 8));
    check_round_trip(fibres, random_tensor({7, 5, 1, 1}, layout::nhwc, 9).view(), 1e-4);
    const with_condition maps(block, random_tensor({2, 3, 4, 3}, layout::nhwc, 10));
    check_round_trip(maps, random_tensor({2, 5, 4, 3}, layout::nchw, 11).view(), 1e-4);
    all_in_one_config cfg = conditional_config(4, 3, kernel);
    cfg.coupling.gain_init = 1.0f;
    all_in_one_block small(cfg);
    spread_global_affine(small, 12);
    const with_condition one(small, random_tensor({1, 3, 3, 3}, layout::nhwc, 13));
    check_logdet(one, random_tensor({1, 4, 3, 3}, layout::nchw, 14).view());
  }
}

TEST_CASE("conditional all_in_one_block gradients equal finite differences of its definition", "[cflow][all_in_one]") {
  for (const shape4 s : {shape4{6, 6, 1, 1}, shape4{2, 6, 3, 3}}) {
    all_in_one_block block(conditional_config(6, 4, 1));
    spread_global_affine(block, 15);
    with_condition layer(block, random_tensor({s.n, 4, s.h, s.w}, layout::nhwc, 16));
    const dtensor condition = to_double(layer.condition().view());
    check_gradients(layer, random_tensor(s, layout::nchw, 17).view(), {},
                    [&block, &condition](const_view x) { return naive_block(block, x, &condition); });
  }
}

TEST_CASE("conditional affine_coupling inverts and has its definition's gradients", "[cflow][coupling]") {
  affine_coupling coupling(conditional_config(7, 4, 1).coupling);
  for (const shape4 s : {shape4{5, 7, 1, 1}, shape4{2, 7, 3, 2}}) {
    with_condition layer(coupling, random_tensor({s.n, 4, s.h, s.w}, layout::nchw, 31));
    check_round_trip(layer, random_tensor(s, layout::nhwc, 32).view(), 1e-4);
    const dtensor condition = to_double(layer.condition().view());
    check_gradients(layer, random_tensor(s, layout::nchw, 33).view(), {},
                    [&coupling, &condition](const_view x) { return naive_coupling(coupling, to_double(x), &condition); });
  }
  with_condition one(coupling, random_tensor({1, 4, 2, 2}, layout::nhwc, 34));
  check_logdet(one, random_tensor({1, 7, 2, 2}, layout::nhwc, 35).view());
}

TEST_CASE("conditional couplings reject a missing, unexpected or misshapen condition", "[cflow][all_in_one]") {
  all_in_one_block conditional(conditional_config(6, 4, 1));
  all_in_one_block plain(conditional_config(6, 0, 1));
  workspace ws;
  std::vector<double> logdet(2);
  const tensor x = random_tensor({2, 6, 1, 1}, layout::nhwc, 1), condition = random_tensor({2, 4, 1, 1}, layout::nhwc, 2);
  tensor y({2, 6, 1, 1}, layout::nhwc), wrong({2, 3, 1, 1}, layout::nhwc);
  CHECK_THROWS_WITH(conditional.forward(x.view(), y.view(), logdet, ws), Catch::Contains("needs a condition of shape 2x4x1x1"));
  CHECK_THROWS_WITH(conditional.forward(x.view(), wrong.view(), y.view(), logdet, ws), Catch::Contains("got 2x3x1x1"));
  tensor x_back({2, 6, 1, 1}, layout::nhwc);
  CHECK_THROWS_WITH(conditional.inverse(y.view(), x_back.view(), ws), Catch::Contains("needs a condition"));
  CHECK_THROWS_WITH(plain.forward(x.view(), condition.view(), y.view(), logdet, ws), Catch::Contains("without a condition"));
  all_in_one_config three_groups = conditional_config(6, 4, 1);
  three_groups.coupling.groups = 3;
  CHECK_THROWS_WITH(all_in_one_block{three_groups}, Catch::Contains("only with 2 groups"));
}

TEST_CASE("conditional coupling on fibres: oneDNN implementations and times", "[.][cflow_timing]") {
  all_in_one_config cfg = conditional_config(128, 128, 1);
  cfg.coupling.hidden = 2 * (64 + 128);
  all_in_one_block block(cfg);
  for (const shape4 s : {shape4{256, 128, 1, 1}, shape4{1, 128, 1, 256}, shape4{1, 128, 16, 16}}) {
    WARN(s.str() << "\n" << block.coupling().implementation(s.n, s.h, s.w));
    const tensor x = random_tensor(s, layout::nhwc, 1), c = random_tensor({s.n, 128, s.h, s.w}, layout::nhwc, 2);
    tensor y(s, layout::nhwc), dx(s, layout::nhwc);
    workspace ws;
    std::vector<double> logdet(static_cast<std::size_t>(s.n)), diff_logdet(static_cast<std::size_t>(s.n), 0.1);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i) block.forward(x.view(), c.view(), y.view(), logdet, ws, pass_mode::training);
    const auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i) block.backward(x.view(), y.view(), y.view(), diff_logdet, dx.view(), ws);
    const auto t2 = std::chrono::steady_clock::now();
    WARN("forward " << std::chrono::duration<double>(t1 - t0).count() / 20 * 1e3 << " ms, backward "
                    << std::chrono::duration<double>(t2 - t1).count() / 20 * 1e3 << " ms");
  }
}
