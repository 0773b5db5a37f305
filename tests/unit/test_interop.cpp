// The xtensor and Eigen adapters: views share the arrays' memory and strides, copies round-trip.
#include <catch2/catch.hpp>
#include <string>
#include <vector>
#include <xtensor/xview.hpp>

#include "flowad/interop/eigen.hpp"
#include "flowad/interop/xtensor.hpp"

using namespace flowad;

namespace {

// A value that differs at every (n, c, h, w).
float value_at(index_t n, index_t c, index_t h, index_t w) {
  return static_cast<float>(1000 * n + 100 * c + 10 * h + w);
}

tensor numbered(shape4 s, layout l) {
  tensor t(s, l);
  for (index_t n = 0; n < s.n; ++n)
    for (index_t c = 0; c < s.c; ++c)
      for (index_t h = 0; h < s.h; ++h)
        for (index_t w = 0; w < s.w; ++w) t(n, c, h, w) = value_at(n, c, h, w);
  return t;
}

// Every element of v is value_at of its logical index.
bool is_numbered(const_view v) {
  for (index_t n = 0; n < v.n(); ++n)
    for (index_t c = 0; c < v.c(); ++c)
      for (index_t h = 0; h < v.h(); ++h)
        for (index_t w = 0; w < v.w(); ++w)
          if (v(n, c, h, w) != value_at(n, c, h, w)) return false;
  return true;
}

void check_strides(const strides4& actual, const strides4& expected) {
  CHECK(actual.n == expected.n);
  CHECK(actual.c == expected.c);
  CHECK(actual.h == expected.h);
  CHECK(actual.w == expected.w);
}

template <class F>
void check_error(F&& f, errc code, const std::vector<std::string>& parts) {
  try {
    f();
    FAIL("no error");
  } catch (const error& e) {
    CHECK(e.code() == code);
    for (const std::string& p : parts) CHECK_THAT(e.what(), Catch::Contains(p));
  }
}

}  // namespace

// Expressions without memory are refused at compile time (static_assert in the adapters).
static_assert(!detail::has_xt_memory<decltype(xt::xtensor<float, 4>() + 1.0f)>::value);
static_assert(detail::has_xt_memory<xt::xtensor<float, 4>>::value);
static_assert((decltype(Eigen::MatrixXf() * 2.0f)::Flags & Eigen::DirectAccessBit) == 0);
static_assert(!detail::is_eigen_dense_v<xt::xtensor<float, 4>> && !detail::is_xexpression_v<Eigen::MatrixXf>);

TEST_CASE("xtensor arrays are viewed in place with their strides", "[interop]") {
  const shape4 s{2, 3, 4, 5};
  const tensor t = numbered(s, layout::nchw);

  SECTION("row-major xt::xtensor") {
    const xt::xtensor<float, 4> a = to_xtensor(t);
    const const_view v = as_const_view(a);
    CHECK(v.data() == a.data());
    CHECK(v.shape() == s);
    check_strides(v.strides(), {60, 20, 5, 1});
    CHECK(is_numbered(v));
  }
  SECTION("column-major xt::xarray") {
    xt::xarray<float, xt::layout_type::column_major> a =
        xt::xarray<float, xt::layout_type::column_major>::from_shape({2, 3, 4, 5});
    for (index_t n = 0; n < 2; ++n)
      for (index_t c = 0; c < 3; ++c)
        for (index_t h = 0; h < 4; ++h)
          for (index_t w = 0; w < 5; ++w) a(n, c, h, w) = value_at(n, c, h, w);
    const const_view v = as_const_view(a);
    CHECK(v.data() == a.data());
    check_strides(v.strides(), {1, 2, 6, 24});
    CHECK(is_numbered(v));
  }
  SECTION("NHWC array: axes N, H, W, C") {
    const xt::xtensor<float, 4> a = to_xtensor(t, layout::nhwc);
    CHECK(a.shape()[1] == 4);
    CHECK(a.shape()[3] == 3);
    const const_view v = as_const_view(a, layout::nhwc);
    CHECK(v.shape() == s);
    check_strides(v.strides(), {60, 1, 15, 3});
    CHECK(v.is_dense(layout::nhwc));
    CHECK(is_numbered(v));
  }
  SECTION("xt::adapt of a caller's buffer") {
    std::vector<float> buffer(static_cast<std::size_t>(s.numel()));
    copy(t, {buffer.data(), s, layout::nchw});
    const std::array<std::size_t, 4> shape{2, 3, 4, 5};
    const const_view v = as_const_view(xt::adapt(buffer.data(), buffer.size(), xt::no_ownership(), shape));
    CHECK(v.data() == buffer.data());
    CHECK(is_numbered(v));
  }
  SECTION("strided xt::view: the view starts at its first element") {
    const xt::xtensor<float, 4> a = to_xtensor(t);
    auto part = xt::view(a, xt::range(1, 2), xt::all(), xt::range(1, 4, 2), xt::all());
    const const_view v = as_const_view(part);
    CHECK(v.shape() == shape4{1, 3, 2, 5});
    CHECK(v.data() == &a(1, 0, 1, 0));
    CHECK(v(0, 2, 1, 4) == value_at(1, 2, 3, 4));
  }
  SECTION("as_view writes into the array") {
    xt::xtensor<float, 4> a = xt::zeros<float>({2, 3, 4, 5});
    copy(t, as_view(a));
    CHECK(is_numbered(as_const_view(a)));
  }
}

TEST_CASE("flowad tensors become xtensor arrays", "[interop]") {
  const shape4 s{2, 3, 4, 5};
  for (layout l : {layout::nchw, layout::nhwc}) {
    tensor t = numbered(s, l);
    SECTION(std::string("to_xtensor copies, as_const_view reads it back; tensor layout ") +
            (l == layout::nchw ? "NCHW" : "NHWC")) {
      const xt::xtensor<float, 4> a = to_xtensor(t);
      CHECK(a(1, 2, 3, 4) == value_at(1, 2, 3, 4));
      CHECK(a.data() != t.data());
      CHECK(is_numbered(as_const_view(a)));
      const xt::xtensor<float, 4> b = to_xtensor(t, layout::nhwc);
      CHECK(b(1, 3, 4, 2) == value_at(1, 2, 3, 4));
      CHECK(is_numbered(as_const_view(b, layout::nhwc)));
    }
    SECTION(std::string("as_xtensor shares the tensor's memory; tensor layout ") +
            (l == layout::nchw ? "NCHW" : "NHWC")) {
      auto a = as_xtensor(t);
      CHECK(a.data() == t.data());
      CHECK(a(1, 2, 3, 4) == value_at(1, 2, 3, 4));
      a(1, 2, 3, 4) = -1.0f;
      CHECK(t(1, 2, 3, 4) == -1.0f);
      const tensor& ct = t;
      auto b = as_xtensor(ct, layout::nhwc);
      CHECK(b(1, 3, 4, 2) == -1.0f);
      CHECK(b.shape()[3] == 3);
    }
  }
  SECTION("a channel slice keeps its strides") {
    tensor t = numbered(s, layout::nchw);
    auto a = as_xtensor(t.view().channels(1, 2));
    CHECK(a.shape()[1] == 2);
    CHECK(a(1, 1, 3, 4) == value_at(1, 2, 3, 4));
    // Assignment walks the strides, not the memory from data() on.
    const xt::xtensor<float, 4> b = a;
    bool same = true;
    for (index_t n = 0; n < 2; ++n)
      for (index_t c = 0; c < 2; ++c)
        for (index_t h = 0; h < 4; ++h)
          for (index_t w = 0; w < 5; ++w) same = same && b(n, c, h, w) == value_at(n, c + 1, h, w);
    CHECK(same);
  }
  SECTION("scores: image scores and maps") {
    // What a detector returns: scores::image and scores::maps (N x 1 x H x W).
    const std::vector<double> image_scores = {0.5, 2.0, -1.0};
    const tensor maps = numbered({3, 1, 4, 5}, layout::nchw);
    const xt::xtensor<double, 1> image = to_xtensor(image_scores);
    REQUIRE(image.size() == 3);
    CHECK(image(1) == 2.0);
    CHECK(to_xtensor(maps)(2, 0, 3, 4) == value_at(2, 0, 3, 4));
  }
}

TEST_CASE("xtensor arrays of the wrong rank are errors that name the shape", "[interop]") {
  const xt::xarray<float> a = xt::zeros<float>({2, 3, 4});
  check_error([&] { as_const_view(a); }, errc::shape_mismatch, {"(N, C, H, W)", "(2, 3, 4)"});
  check_error([&] { as_const_view(a, layout::nhwc); }, errc::shape_mismatch, {"(N, H, W, C)", "(2, 3, 4)"});
}

TEST_CASE("Eigen matrices are N x C x 1 x 1 views of their memory", "[interop]") {
  SECTION("column-major") {
    Eigen::MatrixXf m(4, 3);
    for (Eigen::Index i = 0; i < 4; ++i)
      for (Eigen::Index j = 0; j < 3; ++j) m(i, j) = value_at(i, j, 0, 0);
    const const_view v = as_const_view(m);
    CHECK(v.data() == m.data());
    CHECK(v.shape() == shape4{4, 3, 1, 1});
    check_strides(v.strides(), {1, 4, 1, 1});
    CHECK(is_numbered(v));
  }
  SECTION("row-major, and a block of it") {
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> m(4, 3);
    for (Eigen::Index i = 0; i < 4; ++i)
      for (Eigen::Index j = 0; j < 3; ++j) m(i, j) = value_at(i, j, 0, 0);
    const const_view v = as_const_view(m);
    check_strides(v.strides(), {3, 1, 1, 1});
    CHECK(v.is_dense(layout::nchw));
    CHECK(is_numbered(v));
    const const_view b = as_const_view(m.bottomRightCorner(2, 2));
    CHECK(b.data() == &m(2, 1));
    CHECK(b.shape() == shape4{2, 2, 1, 1});
    CHECK(b(1, 1, 0, 0) == value_at(3, 2, 0, 0));
  }
  SECTION("Eigen::Map with an outer stride") {
    std::vector<float> buffer(5 * 3, 0.0f);
    Eigen::Map<const Eigen::MatrixXf, Eigen::Unaligned, Eigen::OuterStride<>> m(buffer.data(), 4, 3,
                                                                                Eigen::OuterStride<>(5));
    const const_view v = as_const_view(m);
    CHECK(v.data() == buffer.data());
    check_strides(v.strides(), {1, 5, 1, 1});
  }
  SECTION("as_view writes into the matrix") {
    Eigen::MatrixXf m = Eigen::MatrixXf::Zero(4, 3);
    tensor t = numbered({4, 3, 1, 1}, layout::nhwc);
    copy(t, as_view(m));
    CHECK(m(3, 2) == value_at(3, 2, 0, 0));
    copy(t, as_view(m.block(0, 0, 4, 3)));
    CHECK(is_numbered(as_const_view(m)));
  }
}

#ifdef FLOWAD_INTEROP_EIGEN_TENSOR
TEST_CASE("Eigen tensors are viewed with their storage order", "[interop]") {
  SECTION("column-major Eigen::Tensor") {
    Eigen::Tensor<float, 4> a(2, 3, 4, 5);
    for (index_t n = 0; n < 2; ++n)
      for (index_t c = 0; c < 3; ++c)
        for (index_t h = 0; h < 4; ++h)
          for (index_t w = 0; w < 5; ++w) a(n, c, h, w) = value_at(n, c, h, w);
    const const_view v = as_const_view(a);
    CHECK(v.data() == a.data());
    check_strides(v.strides(), {1, 2, 6, 24});
    CHECK(is_numbered(v));
  }
  SECTION("row-major TensorMap with axes N, H, W, C") {
    const tensor t = numbered({2, 3, 4, 5}, layout::nhwc);
    Eigen::TensorMap<const Eigen::Tensor<float, 4, Eigen::RowMajor>> a(t.data(), 2, 4, 5, 3);
    const const_view v = as_const_view(a, layout::nhwc);
    CHECK(v.data() == t.data());
    CHECK(v.shape() == shape4{2, 3, 4, 5});
    check_strides(v.strides(), {60, 1, 15, 3});
    CHECK(is_numbered(v));
  }
  SECTION("as_view writes into the tensor") {
    Eigen::Tensor<float, 4, Eigen::RowMajor> a(2, 3, 4, 5);
    copy(numbered({2, 3, 4, 5}, layout::nchw), as_view(a));
    CHECK(a(1, 2, 3, 4) == value_at(1, 2, 3, 4));
  }
}
#endif

TEST_CASE("anomaly maps and image scores become Eigen objects", "[interop]") {
  // What a detector returns: scores::image and scores::maps (N x 1 x H x W).
  const std::vector<double> image_scores = {0.25, 3.0};
  for (layout l : {layout::nchw, layout::nhwc}) {
    tensor maps = numbered({2, 1, 4, 5}, l);
    const Eigen::MatrixXf map = to_eigen(maps, 1);
    REQUIRE(map.rows() == 4);
    REQUIRE(map.cols() == 5);
    CHECK(map(3, 4) == value_at(1, 0, 3, 4));
    CHECK(map(2, 1) == value_at(1, 0, 2, 1));
    const eigen_map_view m = as_eigen(maps, 1);
    CHECK(m.data() == &maps(1, 0, 0, 0));
    CHECK(m(3, 4) == value_at(1, 0, 3, 4));
  }
  const Eigen::VectorXd image = to_eigen(image_scores);
  REQUIRE(image.size() == 2);
  CHECK(image(1) == 3.0);
}

TEST_CASE("maps of the wrong shape are errors that name both shapes", "[interop]") {
  const tensor t = numbered({2, 3, 4, 5}, layout::nchw);
  check_error([&] { to_eigen(t, 0); }, errc::shape_mismatch, {"Nx1xHxW", "2x3x4x5"});
  const tensor maps = numbered({2, 1, 4, 5}, layout::nchw);
  check_error([&] { as_eigen(maps, 2); }, errc::invalid_argument, {"sample 2", "2x1x4x5"});
}
