#include <catch2/catch.hpp>

#include <cmath>
#include <utility>

#include "flowad/layers/permute.hpp"
#include "support/layer_checks.hpp"

using namespace flowad;
using namespace flowad::testing;

TEST_CASE("permute is seeded and is a permutation", "[permute]") {
  const permute a(76, 3), b(76, 3), c(76, 4);
  CHECK(a.permutation() == b.permutation());
  CHECK(a.permutation() != c.permutation());
  std::vector<index_t> sorted = a.permutation();
  std::sort(sorted.begin(), sorted.end());
  for (index_t i = 0; i < 76; ++i) CHECK(sorted[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("permute matches a naive gather in every layout", "[permute]") {
  for (const shape4 s : {shape4{1, 76, 5, 3}, shape4{3, 152, 4, 4}, shape4{2, 304, 2, 3}}) {
    // NHWC to NHWC takes the dense pixel-gather path, every other pair the strided one.
    for (const auto& [in_layout, out_layout] : {std::pair{layout::nchw, layout::nchw}, std::pair{layout::nhwc, layout::nchw},
                                                 std::pair{layout::nhwc, layout::nhwc}}) {
      const permute p(s.c, 11);
      const tensor x = random_tensor(s, in_layout, 5);
      workspace ws;
      tensor y;
      const std::vector<double> logdet = run_forward(p, x.view(), y, ws, pass_mode::inference, out_layout);
      for (double v : logdet) CHECK(v == 0.0);
      double err = 0.0;
      for (index_t n = 0; n < s.n; ++n)
        for (index_t c = 0; c < s.c; ++c)
          for (index_t h = 0; h < s.h; ++h)
            for (index_t w = 0; w < s.w; ++w)
              err = std::max(err, std::abs(double(y(n, c, h, w)) - x(n, p.permutation()[std::size_t(c)], h, w)));
      CHECK(err == 0.0);
      check_round_trip(p, x.view(), 0.0);
    }
  }
}

TEST_CASE("permute log-determinant and gradients", "[permute]") {
  permute p(4, 1);
  const tensor x = random_tensor({1, 4, 3, 3}, layout::nchw, 2);
  check_logdet(p, x.view());
  check_gradients(p, random_tensor({2, 4, 3, 3}, layout::nchw, 3).view());
  check_gradients(p, random_tensor({2, 4, 3, 3}, layout::nhwc, 3).view());
}

TEST_CASE("permute rejects bad input", "[permute]") {
  CHECK_THROWS_AS(permute(0, 1), error);
  CHECK_THROWS_AS(permute(std::vector<index_t>{0, 0, 1}), error);
  const permute p(8, 1);
  workspace ws;
  tensor x({2, 8, 3, 3}), wrong_c({2, 7, 3, 3}), wrong_hw({2, 8, 3, 4}), empty({0, 8, 3, 3});
  std::vector<double> logdet(2);
  try {
    p.forward(wrong_c.view(), x.view(), logdet, ws);
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.code() == errc::shape_mismatch);
    CHECK_THAT(e.what(), Catch::Contains("2x7x3x3"));
  }
  CHECK_THROWS_AS(p.forward(x.view(), wrong_hw.view(), logdet, ws), error);
  std::vector<double> none;
  CHECK_THROWS_AS(p.forward(empty.view(), empty.view(), none, ws), error);
  CHECK_THROWS_AS(p.forward(x.view(), x.view(), logdet, ws), error);  // in place is rejected
  std::vector<double> short_logdet(1);
  CHECK_THROWS_AS(p.forward(x.view(), tensor({2, 8, 3, 3}).view(), short_logdet, ws), error);
}
