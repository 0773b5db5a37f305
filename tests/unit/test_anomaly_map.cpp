#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "flowad/detail/random.hpp"
#include "flowad/scoring/aggregate.hpp"
#include "flowad/scoring/anomaly_map.hpp"
#include "support/python_reference.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

tensor filled(shape4 s, const std::vector<float>& values) {
  REQUIRE(static_cast<index_t>(values.size()) == s.numel());
  tensor t(s);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

tensor random_maps(shape4 s, std::uint64_t seed) {
  tensor t(s);
  detail::rng r(seed);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(r.normal());
  return t;
}

double max_diff(const_view a, const_view b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0.0;
  for (index_t n = 0; n < a.n(); ++n)
    for (index_t c = 0; c < a.c(); ++c)
      for (index_t h = 0; h < a.h(); ++h)
        for (index_t w = 0; w < a.w(); ++w) m = std::max(m, std::abs(double(a(n, c, h, w)) - double(b(n, c, h, w))));
  return m;
}

std::vector<float> flat(const tensor& t) { return std::vector<float>(t.data(), t.data() + t.numel()); }

template <class F>
std::pair<errc, std::string> error_of(F&& f) {
  try {
    f();
  } catch (const error& e) {
    return {e.code(), e.what()};
  }
  FAIL("expected a flowad::error");
  return {};
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Upsampling

TEST_CASE("upsample_bilinear: hand-computed values (align_corners=False, edge clamping)", "[scoring]") {
  const tensor src = filled({1, 1, 2, 2}, {1, 2, 3, 4});
  // Per axis, 2 -> 4: source positions max(0, (d + .5)/2 - .5) = 0, .25, .75, 1.25 -> clamped to 1.
  const tensor up = upsample_bilinear(src.view(), 4, 4);
  const std::vector<float> expected{1.0f, 1.25f, 1.75f, 2.0f,  //
                                    1.5f, 1.75f, 2.25f, 2.5f,  //
                                    2.5f, 2.75f, 3.25f, 3.5f,  //
                                    3.0f, 3.25f, 3.75f, 4.0f};
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(up.data()[i] == expected[i]);
  // Same size: identity.
  const tensor x = random_maps({2, 3, 5, 7}, 1);
  CHECK(max_diff(upsample_bilinear(x.view(), 5, 7).view(), x.view()) == 0.0);
  // 1 x 4 -> 1 x 2: positions 0.5 and 2.5, the mean of each pair.
  const tensor row = filled({1, 1, 1, 4}, {1, 3, 10, 20});
  const tensor half = upsample_bilinear(row.view(), 1, 2);
  CHECK(half.data()[0] == 2.0f);
  CHECK(half.data()[1] == 15.0f);
  // 1 x 1 -> constant.
  const tensor one = filled({1, 1, 1, 1}, {7});
  const tensor big = upsample_bilinear(one.view(), 3, 5);
  for (index_t i = 0; i < big.numel(); ++i) CHECK(big.data()[i] == 7.0f);
  // Any strides: an NHWC source and a channel slice of it.
  tensor nhwc({2, 3, 5, 7}, layout::nhwc);
  copy(x.view(), nhwc.view());
  CHECK(max_diff(upsample_bilinear(nhwc.view(), 11, 9).view(), upsample_bilinear(x.view(), 11, 9).view()) == 0.0);
  CHECK(max_diff(upsample_bilinear(nhwc.view().channels(1, 1), 11, 9).view(),
                 upsample_bilinear(x.view().channels(1, 1), 11, 9).view()) == 0.0);
}

TEST_CASE("upsample_bilinear: a cell offset moves the source grid by that many cells", "[scoring]") {
  // 1 x 4 -> 1 x 16 (4 pixels per cell). Offset -3/8 of a cell (a stride-4 map whose cell m is centred
  // on pixel 4m): cell m's value lands exactly on pixel 4m, the pixels between are linear, the edges clamp.
  const tensor row = filled({1, 1, 1, 4}, {0, 8, 16, 40});
  const tensor up = upsample_bilinear(row.view(), 1, 16, -0.375);
  for (index_t m = 0; m < 4; ++m) CHECK(up(0, 0, 0, 4 * m) == row(0, 0, 0, m));
  CHECK(up(0, 0, 0, 1) == 2.0f);   // a quarter of the way from 0 to 8
  CHECK(up(0, 0, 0, 6) == 12.0f);  // halfway from 8 to 16
  CHECK(up(0, 0, 0, 10) == 28.0f);  // halfway from 16 to 40
  CHECK(up(0, 0, 0, 13) == 40.0f);  // past the last cell: clamped
  CHECK(up(0, 0, 0, 15) == 40.0f);
  // Offset 0 is PyTorch's grid (the test above); offset +1 reads one cell to the left, clamped at 0.
  CHECK(max_diff(upsample_bilinear(row.view(), 1, 16, 0.0).view(), upsample_bilinear(row.view(), 1, 16).view()) == 0.0);
  const tensor left = upsample_bilinear(row.view(), 1, 16, 1.0), plain = upsample_bilinear(row.view(), 1, 16);
  for (index_t d = 4; d < 16; ++d) CHECK(left(0, 0, 0, d) == plain(0, 0, 0, d - 4));
  // Both axes move alike; combine_maps applies each map's own offset.
  const tensor a = random_maps({2, 1, 4, 6}, 3), b = random_maps({2, 1, 2, 3}, 4);
  const std::vector<const_view> maps{a.view(), b.view()};
  const std::vector<double> offsets{-0.375, -0.4375};
  const tensor sum = combine_maps(span<const const_view>(maps.data(), 2), 16, 24, map_combination::sum,
                                  span<const double>(offsets.data(), 2));
  const tensor ua = upsample_bilinear(a.view(), 16, 24, -0.375), ub = upsample_bilinear(b.view(), 16, 24, -0.4375);
  for (index_t i = 0; i < sum.numel(); ++i) CHECK(sum.data()[i] == ua.data()[i] + ub.data()[i]);
  // Bad offsets: beyond a cell, not finite, or not one per map.
  for (double bad : {1.5, -2.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    auto e = error_of([&] { upsample_bilinear(a.view(), 8, 8, bad); });
    CHECK(e.first == errc::invalid_argument);
    CHECK_THAT(e.second, Catch::Contains("cell offset"));
    const std::vector<double> one_bad{0.0, bad};
    CHECK_THROWS_AS(combine_maps(span<const const_view>(maps.data(), 2), 8, 8, map_combination::sum,
                                 span<const double>(one_bad.data(), 2)),
                    error);
  }
  auto e = error_of([&] {
    combine_maps(span<const const_view>(maps.data(), 2), 8, 8, map_combination::sum, span<const double>(offsets.data(), 1));
  });
  CHECK(e.first == errc::shape_mismatch);
  CHECK_THAT(e.second, Catch::Contains("1 cell offsets for 2 maps"));
}

TEST_CASE("upsample_bilinear cross-check against torch.nn.functional.interpolate", "[scoring][python]") {
  struct resize_case {
    shape4 in;
    index_t h, w;
  };
  const resize_case cases[] = {{{2, 3, 7, 5}, 16, 13}, {{1, 2, 9, 9}, 4, 4}, {{2, 1, 24, 24}, 256, 256},
                               {{1, 1, 6, 10}, 1, 1},  {{1, 1, 5, 3}, 17, 2}};
  std::vector<std::unique_ptr<temp_file>> files;
  std::vector<std::string> args;
  std::uint64_t seed = 10;
  for (const resize_case& c : cases) {
    const tensor x = random_maps(c.in, seed++);
    const tensor y = upsample_bilinear(x.view(), c.h, c.w);
    files.push_back(std::make_unique<temp_file>("in.f32"));
    files.back()->write(flat(x));
    args.push_back(files.back()->path().string());
    files.push_back(std::make_unique<temp_file>("out.f32"));
    files.back()->write(flat(y));
    args.push_back(files.back()->path().string());
    args.push_back(std::to_string(c.in.n) + "," + std::to_string(c.in.c) + "," + std::to_string(c.in.h) + "," +
                   std::to_string(c.in.w) + "," + std::to_string(c.h) + "," + std::to_string(c.w));
  }
  const std::string script = python_require("numpy as np, torch, torch.nn.functional as F") + R"(
a = sys.argv[1:]
for i in range(0, len(a), 3):
    n, c, h, w, oh, ow = [int(v) for v in a[i + 2].split(",")]
    x = torch.from_numpy(np.fromfile(a[i], dtype=np.float32).reshape(n, c, h, w))
    ours = np.fromfile(a[i + 1], dtype=np.float32).reshape(n, c, oh, ow)
    ref = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False).numpy()
    print(repr(float(np.abs(ref.astype(np.float64) - ours).max())))
)";
  const python_run run = run_python(script, args);
  FLOWAD_REQUIRE_PYTHON(run);
  REQUIRE(run.numbers.size() == std::size(cases));
  for (std::size_t i = 0; i < run.numbers.size(); ++i) {
    INFO("case " << i << ": max |torch - ours| = " << run.numbers[i]);
    CHECK(run.numbers[i] <= 2e-6);
  }
}

// ------------------------------------------------------------------------------------------------
// Gaussian blur

TEST_CASE("gaussian_kernel: size int(4 sigma + 0.5), normalised, Gaussian", "[scoring]") {
  CHECK(gaussian_kernel(4.0).size() == 33);  // anomalib's 2 * int(4 sigma + 0.5) + 1 for RD4AD
  CHECK(gaussian_kernel(1.0).size() == 9);
  CHECK(gaussian_kernel(0.1).size() == 1);
  CHECK(gaussian_kernel(0.0).size() == 1);
  const std::vector<double> k = gaussian_kernel(2.5);
  REQUIRE(k.size() == 21);
  double sum = 0.0, norm = 0.0;
  for (int i = -10; i <= 10; ++i) norm += std::exp(-0.5 * i * i / 6.25);
  for (int i = -10; i <= 10; ++i) {
    sum += k[static_cast<std::size_t>(i + 10)];
    CHECK(k[static_cast<std::size_t>(i + 10)] == Approx(std::exp(-0.5 * i * i / 6.25) / norm).epsilon(1e-14));
  }
  CHECK(sum == Approx(1.0).epsilon(1e-15));
  CHECK_THROWS_AS(gaussian_kernel(-1.0), error);
  CHECK_THROWS_AS(gaussian_kernel(std::nan("")), error);
  CHECK_THROWS_AS(gaussian_kernel(HUGE_VAL), error);
}

TEST_CASE("gaussian_blur: constant stays constant, an impulse becomes the Gaussian", "[scoring]") {
  for (double sigma : {0.5, 1.0, 4.0, 9.0}) {  // 9: radius 36 exceeds the 8 x 11 plane (repeated reflection)
    tensor c({2, 1, 8, 11});
    c.fill(3.25f);
    const tensor b = gaussian_blur(c.view(), sigma);
    for (index_t i = 0; i < b.numel(); ++i) CHECK(b.data()[i] == Approx(3.25f).epsilon(1e-6));
  }
  const index_t size = 41, mid = 20;
  tensor impulse({1, 1, size, size});
  impulse.fill(0.0f);
  impulse(0, 0, mid, mid) = 1.0f;
  const double sigma = 2.0;
  const tensor b = gaussian_blur(impulse.view(), sigma);
  const std::vector<double> g = gaussian_kernel(sigma);  // 17 taps
  const index_t r = static_cast<index_t>(g.size() / 2);
  double sum = 0.0, worst = 0.0;
  for (index_t y = 0; y < size; ++y)
    for (index_t x = 0; x < size; ++x) {
      sum += b(0, 0, y, x);
      const index_t dy = y - mid, dx = x - mid;
      const double expected = (std::abs(dy) <= r && std::abs(dx) <= r)
                                  ? g[static_cast<std::size_t>(dy + r)] * g[static_cast<std::size_t>(dx + r)]
                                  : 0.0;
      worst = std::max(worst, std::abs(b(0, 0, y, x) - expected));
    }
  CHECK(sum == Approx(1.0).epsilon(1e-6));
  CHECK(worst <= 1e-8);
  // Continuous Gaussian check at the centre: g(0)^2 ~ 1 / (2 pi sigma^2) (the truncation at 4 sigma
  // changes it by 6e-5 relative).
  const double pi = 3.14159265358979323846;
  CHECK(b(0, 0, mid, mid) == Approx(1.0 / (2 * pi * sigma * sigma)).epsilon(1e-3));
}

TEST_CASE("gaussian_blur: sigma 0 copies, in place equals out of place, any strides", "[scoring]") {
  const tensor x = random_maps({3, 2, 12, 9}, 4);
  CHECK(max_diff(gaussian_blur(x.view(), 0.0).view(), x.view()) == 0.0);
  const tensor out = gaussian_blur(x.view(), 1.5);
  tensor in_place = x;
  gaussian_blur(in_place.view(), in_place.view(), 1.5);
  CHECK(max_diff(in_place.view(), out.view()) == 0.0);
  tensor nhwc({3, 2, 12, 9}, layout::nhwc);
  copy(x.view(), nhwc.view());
  gaussian_blur(nhwc.view(), nhwc.view(), 1.5);
  CHECK(max_diff(nhwc.view(), out.view()) == 0.0);
  // Overlapping but different views are rejected.
  tensor t = x;
  const view shifted{t.data() + 1, {3, 2, 12, 8}, t.view().strides()};
  const view base{t.data(), {3, 2, 12, 8}, t.view().strides()};
  auto e = error_of([&] { gaussian_blur(base, shifted, 1.0); });
  CHECK(e.first == errc::invalid_argument);
  CHECK_THAT(e.second, Catch::Contains("overlap"));
}

TEST_CASE("gaussian_blur cross-check against scipy.ndimage.gaussian_filter (mode reflect)", "[scoring][python]") {
  const double sigmas[] = {1.0, 4.0, 0.7};
  const tensor x = random_maps({1, 1, 20, 30}, 8);
  std::vector<std::unique_ptr<temp_file>> files;
  files.push_back(std::make_unique<temp_file>("in.f32"));
  files.back()->write(flat(x));
  std::vector<std::string> args{files.back()->path().string()};
  for (double s : sigmas) {
    files.push_back(std::make_unique<temp_file>("out.f32"));
    files.back()->write(flat(gaussian_blur(x.view(), s)));
    args.push_back(files.back()->path().string());
    args.push_back(std::to_string(s));
  }
  const std::string script = python_require("numpy as np, scipy.ndimage") + R"(
a = sys.argv[1:]
x = np.fromfile(a[0], dtype=np.float32).reshape(20, 30).astype(np.float64)
for i in range(1, len(a), 2):
    ours = np.fromfile(a[i], dtype=np.float32).reshape(20, 30)
    ref = scipy.ndimage.gaussian_filter(x, float(a[i + 1]), mode="reflect", truncate=4.0)
    print(repr(float(np.abs(ref - ours).max())))
)";
  const python_run run = run_python(script, args);
  FLOWAD_REQUIRE_PYTHON(run);
  REQUIRE(run.numbers.size() == std::size(sigmas));
  for (std::size_t i = 0; i < run.numbers.size(); ++i) {
    INFO("sigma " << sigmas[i] << ": max |scipy - ours| = " << run.numbers[i]);
    CHECK(run.numbers[i] <= 1e-6);
  }
}

// ------------------------------------------------------------------------------------------------
// Combining scales

TEST_CASE("combine_maps: mean, sum and product of upsampled scales", "[scoring]") {
  const tensor fine = random_maps({2, 1, 8, 8}, 5);
  const tensor coarse = random_maps({2, 1, 3, 5}, 6);
  const std::vector<const_view> maps{fine.view(), coarse.view()};
  const tensor a = upsample_bilinear(fine.view(), 16, 12), b = upsample_bilinear(coarse.view(), 16, 12);
  const tensor mean = combine_maps(span<const const_view>(maps.data(), maps.size()), 16, 12, map_combination::mean);
  const tensor sum = combine_maps(span<const const_view>(maps.data(), maps.size()), 16, 12, map_combination::sum);
  const tensor prod = combine_maps(span<const const_view>(maps.data(), maps.size()), 16, 12, map_combination::product);
  REQUIRE(mean.shape() == (shape4{2, 1, 16, 12}));
  for (index_t i = 0; i < a.numel(); ++i) {
    CHECK(sum.data()[i] == a.data()[i] + b.data()[i]);
    CHECK(mean.data()[i] == (a.data()[i] + b.data()[i]) / 2.0f);
    CHECK(prod.data()[i] == a.data()[i] * b.data()[i]);
  }
  // One map: the upsampled map itself.
  const tensor single = combine_maps(span<const const_view>(maps.data(), 1), 16, 12, map_combination::mean);
  CHECK(max_diff(single.view(), a.view()) == 0.0);
  // Errors: N mismatch, several channels, nothing to combine.
  const tensor other_n = random_maps({3, 1, 4, 4}, 1), two_c = random_maps({2, 2, 4, 4}, 1);
  const std::vector<const_view> bad_n{fine.view(), other_n.view()}, bad_c{two_c.view()};
  auto e = error_of([&] { combine_maps(span<const const_view>(bad_n.data(), 2), 4, 4, map_combination::sum); });
  CHECK(e.first == errc::shape_mismatch);
  CHECK_THAT(e.second, Catch::Contains("3x1x4x4"));
  CHECK_THROWS_AS(combine_maps(span<const const_view>(bad_c.data(), 1), 4, 4, map_combination::sum), error);
  CHECK_THROWS_AS(combine_maps(span<const const_view>(), 4, 4, map_combination::sum), error);
}

TEST_CASE("combine_maps: likelihood_sum is MSFlow's additive map", "[scoring]") {
  // Same size as the destination (no resampling): hand-computed. Image 1 is image 0 with every energy
  // 10 higher in one scale and 3 lower in the other: each image and scale is taken relative to its own
  // minimum, so its map is the same.
  const tensor first = filled({2, 1, 2, 2}, {0, 1, 2, 3, 10, 11, 12, 13});
  const tensor second = filled({2, 1, 2, 2}, {1, 1, 1, 5, -2, -2, -2, 2});
  const std::vector<const_view> maps{first.view(), second.view()};
  const tensor out =
      combine_maps(span<const const_view>(maps.data(), maps.size()), 2, 2, map_combination::likelihood_sum);
  const double e = std::exp(1.0);
  const std::vector<double> expected{0.0, 1.0 - 1.0 / e, 1.0 - std::pow(e, -2.0),
                                     2.0 - std::pow(e, -3.0) - std::pow(e, -4.0)};
  for (index_t n = 0; n < 2; ++n)
    for (index_t i = 0; i < 4; ++i)
      CHECK(out.data()[n * 4 + i] == Approx(expected[static_cast<std::size_t>(i)]).margin(1e-6));

  // Resampled: the relative likelihoods are upsampled, summed, and subtracted from each image's maximum.
  const tensor fine = random_maps({2, 1, 8, 8}, 5), coarse = random_maps({2, 1, 3, 5}, 6);
  const auto relative = [](const tensor& energy) {  // exp(-(E - min E)) per image
    tensor result(energy.shape());
    const index_t plane = energy.h() * energy.w();
    for (index_t n = 0; n < energy.n(); ++n) {
      const float* image = energy.data() + n * plane;
      const float least = *std::min_element(image, image + plane);
      for (index_t i = 0; i < plane; ++i) result.data()[n * plane + i] = std::exp(least - image[i]);
    }
    return result;
  };
  const tensor fine_relative = relative(fine), coarse_relative = relative(coarse);
  const tensor a = upsample_bilinear(fine_relative.view(), 16, 12),
               b = upsample_bilinear(coarse_relative.view(), 16, 12);
  const std::vector<const_view> scales{fine.view(), coarse.view()};
  const tensor combined =
      combine_maps(span<const const_view>(scales.data(), scales.size()), 16, 12, map_combination::likelihood_sum);
  const index_t plane = 16 * 12;
  for (index_t n = 0; n < 2; ++n) {
    double most = -1.0;
    for (index_t i = 0; i < plane; ++i)
      most = std::max(most, double(a.data()[n * plane + i]) + b.data()[n * plane + i]);
    for (index_t i = 0; i < plane; ++i)
      CHECK(combined.data()[n * plane + i] ==
            Approx(most - a.data()[n * plane + i] - b.data()[n * plane + i]).margin(1e-5));
  }
  CHECK(std::string(to_string(map_combination::likelihood_sum)) == "likelihood_sum");
}

// ------------------------------------------------------------------------------------------------
// Aggregations

TEST_CASE("image_scores: mean, max and top-k mean on known arrays", "[scoring]") {
  tensor m({3, 1, 10, 10});
  for (index_t i = 0; i < 100; ++i) {
    m.data()[i] = static_cast<float>(i);              // 0..99
    m.data()[100 + i] = static_cast<float>(99 - i);   // 99..0
    m.data()[200 + i] = i == 37 ? 5.0f : -1.0f;       // one peak
  }
  const std::vector<double> mean = image_scores(m.view(), score_aggregation::mean);
  const std::vector<double> max = image_scores(m.view(), score_aggregation::max);
  const std::vector<double> top = image_scores(m.view(), score_aggregation::top_k_mean);  // k = int(100 * .03) = 3
  CHECK(mean == std::vector<double>{49.5, 49.5, -0.94});
  CHECK(max == std::vector<double>{99, 99, 5});
  CHECK(top[0] == 98.0);
  CHECK(top[1] == 98.0);
  CHECK(top[2] == Approx(1.0).epsilon(1e-15));  // (5 - 1 - 1) / 3
  // k = 10: the mean of 90..99.
  CHECK(image_scores(m.view(), score_aggregation::top_k_mean, 0.1)[0] == 94.5);
  // fraction 1: the mean.
  CHECK(image_scores(m.view(), score_aggregation::top_k_mean, 1.0)[0] == 49.5);
  // Tiny fraction: at least one element, i.e. the max.
  CHECK(image_scores(m.view(), score_aggregation::top_k_mean, 1e-6)[2] == 5.0);
  CHECK(top_k_count(256 * 256, 0.03) == 1966);  // MSFlow: int(256 * 256 * 0.03)
  CHECK(top_k_count(5, 0.03) == 1);
  CHECK(top_k_count(100, 1.0) == 100);
  // Over C x H x W for several channels; strided input.
  tensor two({1, 2, 2, 2}, layout::nhwc);
  for (index_t c = 0; c < 2; ++c)
    for (index_t i = 0; i < 4; ++i) two(0, c, i / 2, i % 2) = static_cast<float>(c * 4 + i);  // 0..7
  CHECK(image_scores(two.view(), score_aggregation::mean)[0] == 3.5);
  CHECK(image_scores(two.view(), score_aggregation::top_k_mean, 0.25)[0] == 6.5);
  CHECK(std::string(to_string(score_aggregation::top_k_mean)) == "top_k_mean");
  // A larger random case against a full sort.
  const tensor r = random_maps({4, 1, 64, 64}, 3);
  const std::vector<double> topr = image_scores(r.view(), score_aggregation::top_k_mean, 0.03);
  for (index_t n = 0; n < 4; ++n) {
    std::vector<float> v(r.data() + n * 4096, r.data() + (n + 1) * 4096);
    std::sort(v.begin(), v.end(), std::greater<float>());
    double s = 0;
    for (int i = 0; i < 122; ++i) s += v[static_cast<std::size_t>(i)];
    CHECK(topr[static_cast<std::size_t>(n)] == Approx(s / 122).epsilon(1e-14));
  }
}

TEST_CASE("scoring rejects bad input", "[scoring]") {
  const tensor x = random_maps({2, 1, 4, 4}, 1);
  auto e = error_of([&] { image_scores(tensor({0, 1, 4, 4}).view(), score_aggregation::max); });
  CHECK(e.first == errc::empty_input);
  for (double f : {0.0, -0.1, 1.5, std::nan("")}) {
    e = error_of([&] { image_scores(x.view(), score_aggregation::top_k_mean, f); });
    CHECK(e.first == errc::invalid_argument);
    CHECK_THAT(e.second, Catch::Contains("fraction"));
  }
  std::vector<double> wrong(3);
  e = error_of([&] { image_scores(x.view(), score_aggregation::mean, span<double>(wrong.data(), wrong.size())); });
  CHECK(e.first == errc::shape_mismatch);
  tensor with_nan = x;
  with_nan(1, 0, 2, 3) = std::nanf("");
  e = error_of([&] { image_scores(with_nan.view(), score_aggregation::mean); });
  CHECK(e.first == errc::non_finite);
  CHECK_THAT(e.second, Catch::Contains("n=1") && Catch::Contains("h=2") && Catch::Contains("w=3"));
  CHECK_THROWS_AS(upsample_bilinear(with_nan.view(), 8, 8), error);
  CHECK_THROWS_AS(gaussian_blur(with_nan.view(), 1.0), error);

  e = error_of([&] { upsample_bilinear(x.view(), 0, 8); });
  CHECK(e.first == errc::invalid_argument);
  tensor dst({3, 1, 8, 8});
  e = error_of([&] { upsample_bilinear(x.view(), dst.view()); });
  CHECK(e.first == errc::shape_mismatch);
  CHECK_THAT(e.second, Catch::Contains("2x1x4x4") && Catch::Contains("3x1x8x8"));
  tensor self = x;
  CHECK_THROWS_AS(upsample_bilinear(self.view(), self.view()), error);  // overlapping
  CHECK_THROWS_AS(upsample_bilinear(tensor({2, 1, 0, 4}).view(), 8, 8), error);
  tensor blur_dst({2, 1, 4, 5});
  e = error_of([&] { gaussian_blur(x.view(), blur_dst.view(), 1.0); });
  CHECK(e.first == errc::shape_mismatch);
  e = error_of([&] { gaussian_blur(x.view(), -1.0); });
  CHECK(e.first == errc::invalid_argument);
  CHECK_THAT(e.second, Catch::Contains("sigma"));
}
