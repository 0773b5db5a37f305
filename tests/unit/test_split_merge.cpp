#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <array>
#include <cmath>
#include <functional>

#include "flowad/layers/split_merge.hpp"
#include "support/layer_checks.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

const shape4 test_shapes[] = {{1, 76, 6, 4}, {3, 152, 4, 4}, {2, 304, 2, 6}};

layout other(layout l) { return l == layout::nchw ? layout::nhwc : layout::nchw; }

// A map of dense NHWC inputs of shape `in` to the concatenation of its dense NHWC outputs.
using flat_map = std::function<void(const_view in, std::vector<float>& out)>;

// Jacobian of a flat_map by central differences (exact up to rounding for these linear maps).
Eigen::MatrixXd jacobian(const flat_map& f, shape4 in) {
  tensor x = random_tensor(in, layout::nhwc, 1);
  std::vector<float> plus, minus;
  f(x.view(), plus);
  Eigen::MatrixXd j(static_cast<Eigen::Index>(plus.size()), in.numel());
  constexpr double step = 0.5;
  for (index_t i = 0; i < in.numel(); ++i) {
    const float saved = x.data()[i];
    x.data()[i] = static_cast<float>(saved + step);
    f(x.view(), plus);
    x.data()[i] = static_cast<float>(saved - step);
    f(x.view(), minus);
    x.data()[i] = saved;
    for (std::size_t k = 0; k < plus.size(); ++k) j(static_cast<Eigen::Index>(k), i) = (plus[k] - minus[k]) / (2 * step);
  }
  return j;
}

double log_abs_det(const Eigen::MatrixXd& j) {
  REQUIRE(j.rows() == j.cols());
  return Eigen::PartialPivLU<Eigen::MatrixXd>(j).matrixLU().diagonal().array().abs().log().sum();
}

// Checks backward (given as diff_out -> diff_in on the flat layout) against J^T·diff_out.
void check_backward_is_transpose(const flat_map& f, shape4 in,
                                 const std::function<void(const std::vector<float>&, tensor&)>& backward) {
  const Eigen::MatrixXd j = jacobian(f, in);
  detail::rng r(9);
  std::vector<float> diff_out(static_cast<std::size_t>(j.rows()));
  for (float& v : diff_out) v = static_cast<float>(r.normal());
  tensor diff_in(in, layout::nhwc);
  backward(diff_out, diff_in);
  const Eigen::VectorXd expected =
      j.transpose() * Eigen::Map<const Eigen::VectorXf>(diff_out.data(), j.rows()).cast<double>();
  double worst = 0.0;
  for (index_t i = 0; i < in.numel(); ++i) worst = std::max(worst, std::abs(expected(i) - diff_in.data()[i]));
  CHECK(worst <= 1e-2 * std::max(1.0, expected.cwiseAbs().maxCoeff()));
}

void append(const_view v, std::vector<float>& out) {
  tensor dense(v.shape(), layout::nhwc);
  copy(v, dense.view());
  out.insert(out.end(), dense.data(), dense.data() + dense.numel());
}

}  // namespace

TEST_CASE("channel_split group sizes", "[split]") {
  CHECK(channel_split::equal_sizes(10, 3) == std::vector<index_t>{4, 3, 3});
  CHECK(channel_split::equal_sizes(11, 4) == std::vector<index_t>{3, 3, 3, 2});
  CHECK(channel_split::equal_sizes(304, 4) == std::vector<index_t>{76, 76, 76, 76});
  CHECK(channel_split::equal_sizes(7, 7) == std::vector<index_t>(7, 1));
  CHECK(channel_split::equal_sizes(5, 1) == std::vector<index_t>{5});
  const channel_split s(76, 3);
  CHECK(s.sizes() == std::vector<index_t>{26, 25, 25});
  CHECK(s.channels() == 76);
  CHECK(s.groups() == 3);
  CHECK(s.offset(0) == 0);
  CHECK(s.offset(2) == 51);
  CHECK(s.group_shape({2, 76, 3, 5}, 1) == shape4{2, 25, 3, 5});
  const channel_split explicit_sizes(std::vector<index_t>{10, 50, 16});
  CHECK(explicit_sizes.channels() == 76);
  CHECK(explicit_sizes.offset(2) == 60);

  CHECK_THROWS_AS(channel_split(3, 4), error);
  CHECK_THROWS_AS(channel_split(3, 0), error);
  CHECK_THROWS_AS(channel_split(std::vector<index_t>{2, 0}), error);
  CHECK_THROWS_AS(channel_split(std::vector<index_t>{}), error);
  CHECK_THROWS_AS(s.offset(3), error);
}

TEST_CASE("channel_split views, copies and merges exactly", "[split]") {
  for (const shape4 s : test_shapes) {
    for (const layout l : {layout::nchw, layout::nhwc}) {
      for (const channel_split& split : {channel_split(s.c, 2), channel_split(s.c, 3), channel_split(s.c, 4),
                                        channel_split(std::vector<index_t>{10, s.c - 26, 16})}) {
        INFO("shape " << s.str() << ", " << split.groups() << " groups, input "
                      << (l == layout::nchw ? "NCHW" : "NHWC"));
        tensor x = random_tensor(s, l, 3);
        const const_view xv = x.view();
        // Views alias the input.
        for (index_t g = 0; g < split.groups(); ++g) {
          const const_view part = split.group(xv, g);
          CHECK(part.data() == x.data() + split.offset(g) * xv.strides().c);
          CHECK(part.shape() == split.group_shape(s, g));
          CHECK(part(s.n - 1, part.c() - 1, s.h - 1, s.w - 1) ==
                x(s.n - 1, split.offset(g) + part.c() - 1, s.h - 1, s.w - 1));
        }

        // Copies into caller-owned destinations (the other layout).
        std::vector<tensor> parts;
        for (index_t g = 0; g < split.groups(); ++g) parts.emplace_back(split.group_shape(s, g), other(l));
        std::vector<view> part_views(parts.begin(), parts.end());
        std::vector<double> logdet{1.5, -2.0, 0.25};
        logdet.resize(static_cast<std::size_t>(s.n));
        const std::vector<double> logdet_before = logdet;
        split.forward(xv, part_views, logdet);
        CHECK(logdet == logdet_before);  // log|det J| = 0 exactly
        for (index_t g = 0; g < split.groups(); ++g)
          CHECK(max_abs_diff(parts[static_cast<std::size_t>(g)].view(), split.group(xv, g)) == 0.0);

        // Merge from copies.
        std::vector<const_view> part_cviews(parts.begin(), parts.end());
        tensor merged(s, other(l));
        split.inverse(part_cviews, merged.view());
        CHECK(max_abs_diff(merged.view(), xv) == 0.0);

        // Merge in place: the parts already are views of the destination; one replaced part is copied.
        std::vector<const_view> in_place;
        for (index_t g = 0; g < split.groups(); ++g) in_place.push_back(split.group(xv, g));
        tensor replacement = random_tensor(split.group_shape(s, 1), l, 4);
        in_place[1] = replacement.view();
        split.inverse(in_place, x.view());
        CHECK(max_abs_diff(split.group(xv, 1), replacement.view()) == 0.0);
        CHECK(max_abs_diff(split.group(xv, 0), parts[0].view()) == 0.0);

        // Backward merges gradients.
        tensor diff_x(s, l);
        split.backward(part_cviews, diff_x.view());
        CHECK(max_abs_diff(diff_x.view(), merged.view()) == 0.0);
      }
    }
  }
}

TEST_CASE("channel_split has log-det 0 and transposed-Jacobian gradients", "[split]") {
  const shape4 tiny{1, 4, 3, 3};
  const channel_split split(std::vector<index_t>{1, 2, 1});
  const flat_map split_map = [&](const_view in, std::vector<float>& out) {
    out.clear();
    std::array<tensor, 3> parts;
    std::array<view, 3> views;
    for (index_t g = 0; g < 3; ++g) {
      parts[static_cast<std::size_t>(g)].resize(split.group_shape(in.shape(), g), layout::nhwc);
      views[static_cast<std::size_t>(g)] = parts[static_cast<std::size_t>(g)].view();
    }
    std::vector<double> logdet(1);
    split.forward(in, views, logdet);
    for (const tensor& p : parts) append(p.view(), out);
  };
  CHECK(std::abs(log_abs_det(jacobian(split_map, tiny))) <= 1e-3);
  check_backward_is_transpose(split_map, tiny, [&](const std::vector<float>& diff_out, tensor& diff_in) {
    std::array<const_view, 3> parts;
    const float* p = diff_out.data();
    for (index_t g = 0; g < 3; ++g) {
      const shape4 gs = split.group_shape(tiny, g);
      parts[static_cast<std::size_t>(g)] = const_view(p, gs, layout::nhwc);
      p += gs.numel();
    }
    split.backward(parts, diff_in.view());
  });
}

TEST_CASE("channel_split rejects bad input", "[split]") {
  const channel_split split(8, 2);
  tensor whole({2, 8, 3, 3}), a({2, 4, 3, 3}), b({2, 4, 3, 3}), wrong({2, 5, 3, 3});
  std::vector<double> logdet(1), logdet2(2);
  std::array<view, 2> parts{a.view(), b.view()};
  std::array<view, 2> bad_parts{a.view(), wrong.view()};
  std::array<view, 1> too_few{a.view()};
  try {
    split.forward(whole.view(), bad_parts, logdet2);
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.code() == errc::shape_mismatch);
    CHECK_THAT(e.what(), Catch::Contains("2x5x3x3") && Catch::Contains("2x8x3x3"));
  }
  CHECK_THROWS_AS(split.forward(whole.view(), too_few, logdet2), error);
  CHECK_THROWS_AS(split.forward(wrong.view(), parts, logdet2), error);
  CHECK_THROWS_AS(split.forward(whole.view(), parts, logdet), error);  // logdet size
  std::array<view, 2> overlapping{whole.view().channels(0, 4), b.view()};
  CHECK_THROWS_AS(split.forward(whole.view(), overlapping, logdet2), error);
  std::array<const_view, 2> merge_parts{a.view(), wrong.view()};
  CHECK_THROWS_AS(split.inverse(merge_parts, whole.view()), error);
  CHECK_THROWS_AS(split.group(wrong.view(), 0), error);
  std::array<const_view, 2> shifted{whole.view().channels(1, 4), b.view()};  // overlaps dst, not in place
  CHECK_THROWS_AS(split.inverse(shifted, whole.view()), error);
}
