#include <catch2/catch.hpp>

#include "flowad/layers/affine_coupling.hpp"
#include "flowad/layers/permute.hpp"
#include "flowad/layers/sequential_flow.hpp"
#include "support/layer_checks.hpp"
#include "support/reference_coupling.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

affine_coupling_config coupling(index_t channels, index_t groups, std::uint64_t seed) {
  affine_coupling_config cfg;
  cfg.channels = channels;
  cfg.groups = groups;
  cfg.hidden = 6;
  cfg.kernel = 3;
  cfg.gain_init = 0.8f;
  cfg.seed = seed;
  return cfg;
}

// permute -> coupling -> permute -> coupling
struct two_blocks {
  sequential_flow flow;
  permute* p1;
  affine_coupling* c1;
  permute* p2;
  affine_coupling* c2;
  explicit two_blocks(index_t channels, index_t groups) : flow(channels) {
    p1 = &flow.emplace<permute>(channels, 1);
    c1 = &flow.emplace<affine_coupling>(coupling(channels, groups, 2));
    p2 = &flow.emplace<permute>(channels, 3);
    c2 = &flow.emplace<affine_coupling>(coupling(channels, groups, 4));
  }
};

dtensor naive_permute(const dtensor& x, const std::vector<index_t>& perm) {
  dtensor y(x.n, x.c, x.h, x.w);
  for (index_t n = 0; n < x.n; ++n)
    for (index_t c = 0; c < x.c; ++c)
      for (index_t h = 0; h < x.h; ++h)
        for (index_t w = 0; w < x.w; ++w) y.at(n, c, h, w) = x.at(n, perm[static_cast<std::size_t>(c)], h, w);
  return y;
}

// The composition, entirely in double.
reference_output naive_two_blocks(two_blocks& m, const_view x) {
  reference_output r1 = naive_coupling(*m.c1, naive_permute(to_double(x), m.p1->permutation()));
  reference_output r2 = naive_coupling(*m.c2, naive_permute(r1.y, m.p2->permutation()));
  for (std::size_t n = 0; n < r2.logdet.size(); ++n) r2.logdet[n] += r1.logdet[n];
  return r2;
}

}  // namespace

TEST_CASE("sequential flow composes layers exactly", "[sequential]") {
  for (const index_t groups : {2, 4}) {
    two_blocks m(8, groups);
    CHECK(m.flow.size() == 4);
    CHECK(m.flow.parameters().size() == m.c1->parameters().size() + m.c2->parameters().size());
    const tensor x = random_tensor({3, 8, 4, 5}, layout::nchw, 5);
    workspace ws;
    tensor y;
    const auto logdet = run_forward(m.flow, x.view(), y, ws);
    const reference_output ref = naive_two_blocks(m, x.view());
    double err = 0.0;
    for (index_t n = 0; n < 3; ++n)
      for (index_t c = 0; c < 8; ++c)
        for (index_t h = 0; h < 4; ++h)
          for (index_t w = 0; w < 5; ++w) err = std::max(err, std::abs(y(n, c, h, w) - ref.y.at(n, c, h, w)));
    CHECK(err <= 1e-4);
    for (std::size_t n = 0; n < 3; ++n) CHECK(logdet[n] == Approx(ref.logdet[n]).epsilon(1e-5).margin(1e-5));
    check_round_trip(m.flow, x.view());
  }
}

TEST_CASE("sequential flow log-determinant and gradients", "[sequential]") {
  two_blocks tiny(4, 2);
  check_logdet(tiny.flow, random_tensor({1, 4, 3, 3}, layout::nchw, 1).view());
  two_blocks m(6, 3);
  check_gradients(m.flow, random_tensor({2, 6, 3, 3}, layout::nhwc, 2).view(), {},
                  [&m](const_view x) { return naive_two_blocks(m, x); });
}

TEST_CASE("sequential flow checks its input", "[sequential]") {
  sequential_flow flow(8);
  CHECK_THROWS_AS(flow.add(std::make_unique<permute>(7, 1)), error);
  CHECK_THROWS_AS(sequential_flow(0), error);
  flow.emplace<permute>(8, 1);
  workspace ws;
  tensor x({1, 8, 2, 2}), bad({1, 6, 2, 2});
  std::vector<double> logdet(1);
  CHECK_THROWS_AS(flow.forward(bad.view(), tensor({1, 6, 2, 2}).view(), logdet, ws), error);
  std::vector<double> diff(1);
  CHECK_THROWS_AS(flow.backward(x.view(), x.view(), x.view(), diff, tensor({1, 8, 2, 2}).view(), ws), error);
}
