#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <memory>
#include <limits>
#include <string>
#include <vector>

#include "flowad/detail/random.hpp"
#include "flowad/metrics/pro.hpp"
#include "flowad/metrics/roc.hpp"
#include "flowad/metrics/threshold.hpp"
#include "support/python_reference.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

template <class T>
span<const T> as_span(const std::vector<T>& v) {
  return span<const T>(v.data(), v.size());
}

// A 1 x 1 x H x W tensor from row-major values.
tensor plane(index_t height, index_t width, const std::vector<float>& values) {
  REQUIRE(static_cast<index_t>(values.size()) == height * width);
  tensor t({1, 1, height, width});
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

// The errc and message of the error f throws (fails when it throws nothing).
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

// Brute force over all pairs: P(pos > neg) + 0.5 P(pos == neg).
double pairwise_auroc(const std::vector<double>& s, const std::vector<int>& y) {
  double num = 0.0, pairs = 0.0;
  for (std::size_t i = 0; i < s.size(); ++i)
    for (std::size_t j = 0; j < s.size(); ++j)
      if (y[i] == 1 && y[j] == 0) {
        pairs += 1.0;
        num += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
      }
  return num / pairs;
}

// Random anomaly maps and blob masks: discs, 8-connected diagonal lines and single pixels; about a
// third of the images are defect-free. Scores are noise plus a shift inside defects; `levels` > 0
// quantizes them (heavy ties); `squeeze` > 0 maps them to 0.9 + squeeze * score (values clustered in
// a few float exponents/mantissa prefixes, which makes the sort's buckets large).
struct synthetic_set {
  tensor maps, masks;
};
synthetic_set synthetic(index_t n, index_t h, index_t w, std::uint64_t seed, int levels = 0, double squeeze = 0) {
  detail::rng r(seed);
  synthetic_set s{tensor({n, 1, h, w}), tensor({n, 1, h, w})};
  s.masks.fill(0.0f);
  for (index_t i = 0; i < n; ++i) {
    if (r.uniform() < 0.33) continue;
    const int blobs = 1 + static_cast<int>(r.below(3));
    for (int b = 0; b < blobs; ++b) {
      const index_t cy = static_cast<index_t>(r.below(static_cast<std::uint64_t>(h)));
      const index_t cx = static_cast<index_t>(r.below(static_cast<std::uint64_t>(w)));
      const double kind = r.uniform();
      if (kind < 0.6) {
        const double radius = r.uniform(0.5, std::max<double>(1.0, static_cast<double>(std::min(h, w)) / 6));
        for (index_t y = 0; y < h; ++y)
          for (index_t x = 0; x < w; ++x)
            if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= radius * radius) s.masks(i, 0, y, x) = 1.0f;
      } else if (kind < 0.85) {
        const index_t length = 2 + static_cast<index_t>(r.below(6));
        for (index_t k = 0; k < length && cy + k < h && cx + k < w; ++k) s.masks(i, 0, cy + k, cx + k) = 1.0f;
      } else {
        s.masks(i, 0, cy, cx) = 1.0f;
      }
    }
  }
  for (index_t i = 0; i < n; ++i)
    for (index_t y = 0; y < h; ++y)
      for (index_t x = 0; x < w; ++x) {
        double v = r.normal() + 1.5 * s.masks(i, 0, y, x);
        if (levels > 0) v = std::floor(v * levels) / levels;
        if (squeeze > 0) v = 0.9 + squeeze * v;
        s.maps(i, 0, y, x) = static_cast<float>(v);
      }
  return s;
}

std::vector<float> flat(const tensor& t) { return std::vector<float>(t.data(), t.data() + t.numel()); }
std::vector<std::uint8_t> flat_u8(const tensor& t) {
  std::vector<std::uint8_t> v(static_cast<std::size_t>(t.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint8_t>(t.data()[i]);
  return v;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// AUROC

TEST_CASE("auroc: hand-computed cases with ties", "[metrics]") {
  CHECK(auroc(as_span(std::vector<double>{0.1, 0.4, 0.35, 0.8}), as_span(std::vector<int>{0, 0, 1, 1})) == 0.75);
  CHECK(auroc(as_span(std::vector<double>{0.5, 0.5, 0.5, 0.5, 0.5}), as_span(std::vector<int>{0, 1, 0, 1, 1})) == 0.5);
  CHECK(auroc(as_span(std::vector<double>{0.1, 0.2, 0.3, 0.4}), as_span(std::vector<int>{0, 0, 1, 1})) == 1.0);
  CHECK(auroc(as_span(std::vector<double>{0.1, 0.2, 0.3, 0.4}), as_span(std::vector<int>{1, 1, 0, 0})) == 0.0);
  // Ties across the classes count one half: pairs (1v1 .5, 1v2 0, 2v1 1, 2v2 .5) -> 2/4.
  CHECK(auroc(as_span(std::vector<double>{1, 1, 2, 2}), as_span(std::vector<int>{0, 1, 0, 1})) == 0.5);
  CHECK(auroc(as_span(std::vector<double>{0.5, 0.5, 0.9}), as_span(std::vector<int>{0, 1, 1})) == 0.75);
  // -0 ties with +0; infinities rank.
  CHECK(auroc(as_span(std::vector<double>{-0.0, 0.0}), as_span(std::vector<int>{0, 1})) == 0.5);
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(auroc(as_span(std::vector<double>{-inf, inf, 0.0}), as_span(std::vector<int>{0, 1, 0})) == 1.0);
  // float overload
  CHECK(auroc(as_span(std::vector<float>{0.1f, 0.4f, 0.35f, 0.8f}), as_span(std::vector<int>{0, 0, 1, 1})) == 0.75);
  // The same cases through the pixel path (float keys).
  CHECK(pixel_auroc(plane(1, 4, {0.1f, 0.4f, 0.35f, 0.8f}).view(), plane(1, 4, {0, 0, 1, 1}).view()) == 0.75);
  CHECK(pixel_auroc(plane(1, 2, {-0.0f, 0.0f}).view(), plane(1, 2, {0, 1}).view()) == 0.5);
  CHECK(pixel_auroc(plane(2, 2, {3, 3, 3, 3}).view(), plane(2, 2, {0, 1, 1, 0}).view()) == 0.5);
  CHECK(pixel_auroc(plane(1, 3, {-HUGE_VALF, HUGE_VALF, 0}).view(), plane(1, 3, {0, 1, 0}).view()) == 1.0);
}

TEST_CASE("auroc equals the brute-force pair count on random tied data", "[metrics]") {
  detail::rng r(7);
  for (int trial = 0; trial < 20; ++trial) {
    const std::size_t n = 2 + r.below(60);
    std::vector<double> s(n);
    std::vector<int> y(n);
    for (std::size_t i = 0; i < n; ++i) {
      y[i] = i < 2 ? static_cast<int>(i) : static_cast<int>(r.below(2));
      s[i] = std::floor(r.uniform() * (1 + trial % 5)) + 0.5 * y[i] * (trial % 2);
    }
    CHECK(auroc(as_span(s), as_span(y)) == Approx(pairwise_auroc(s, y)).epsilon(1e-14));
  }
}

TEST_CASE("auroc rejects bad input", "[metrics]") {
  const std::vector<double> s{0.1, 0.2, 0.3};
  const std::vector<int> y{0, 1, 0};
  auto e = error_of([] { auroc(span<const double>(), span<const int>()); });
  CHECK(e.first == errc::empty_input);
  e = error_of([&] { auroc(as_span(s), as_span(std::vector<int>{0, 1})); });
  CHECK(e.first == errc::shape_mismatch);
  CHECK_THAT(e.second, Catch::Contains("3 scores but 2 labels"));
  e = error_of([&] { auroc(as_span(std::vector<double>{0.1, std::nan(""), 0.3}), as_span(y)); });
  CHECK(e.first == errc::non_finite);
  CHECK_THAT(e.second, Catch::Contains("score 1 is NaN"));
  e = error_of([&] { auroc(as_span(s), as_span(std::vector<int>{0, 2, 1})); });
  CHECK(e.first == errc::invalid_argument);
  CHECK_THAT(e.second, Catch::Contains("label 1 is 2"));
  e = error_of([&] { auroc(as_span(s), as_span(std::vector<int>{0, 0, 0})); });
  CHECK(e.first == errc::invalid_argument);
  CHECK_THAT(e.second, Catch::Contains("only one class") && Catch::Contains("no anomalous sample"));
  e = error_of([&] { auroc(as_span(s), as_span(std::vector<int>{1, 1, 1})); });
  CHECK_THAT(e.second, Catch::Contains("no normal sample"));
}

TEST_CASE("pixel_auroc equals auroc over the flattened pixels, for any strides and batching", "[metrics]") {
  // Small (serial path) and large (parallel path, clustered values: large sort buckets).
  for (const synthetic_set& d : {synthetic(6, 9, 11, 3, 3), synthetic(20, 64, 72, 4, 0, 1e-3)}) {
    const index_t n = d.maps.shape().n, h = d.maps.shape().h, w = d.maps.shape().w;
    std::vector<double> s;
    std::vector<int> y;
    for (index_t i = 0; i < d.maps.numel(); ++i) {
      s.push_back(d.maps.data()[i]);
      y.push_back(static_cast<int>(d.masks.data()[i]));
    }
    const double expected = auroc(as_span(s), as_span(y));
    CHECK(pixel_auroc(d.maps.view(), d.masks.view()) == expected);
    // Two batches.
    const std::vector<const_view> maps{d.maps.view().batch(0, 2), d.maps.view().batch(2, n - 2)};
    const std::vector<const_view> masks{d.masks.view().batch(0, 2), d.masks.view().batch(2, n - 2)};
    CHECK(pixel_auroc(as_span(maps), as_span(masks)) == expected);
    // A strided view: channel 1 of an NHWC tensor with 3 channels.
    tensor wide({n, 3, h, w}, layout::nhwc);
    wide.fill(-100.0f);
    for (index_t i = 0; i < n; ++i)
      for (index_t yy = 0; yy < h; ++yy)
        for (index_t x = 0; x < w; ++x) wide(i, 1, yy, x) = d.maps(i, 0, yy, x);
    CHECK(pixel_auroc(wide.view().channels(1, 1), d.masks.view()) == expected);
  }
}

TEST_CASE("pixel metrics reject bad maps and masks", "[metrics]") {
  tensor maps({2, 1, 4, 4}), masks({2, 1, 4, 4});
  maps.fill(0.5f);
  masks.fill(0.0f);
  masks(1, 0, 2, 2) = 1.0f;
  CHECK_NOTHROW(pixel_auroc(maps.view(), masks.view()));

  auto e = error_of([&] { pixel_auroc(maps.view(), tensor({2, 1, 4, 5}).view()); });
  CHECK(e.first == errc::shape_mismatch);
  CHECK_THAT(e.second, Catch::Contains("2x1x4x4") && Catch::Contains("2x1x4x5"));
  e = error_of([&] { pixel_auroc(tensor({2, 2, 4, 4}).view(), tensor({2, 2, 4, 4}).view()); });
  CHECK(e.first == errc::shape_mismatch);
  CHECK_THAT(e.second, Catch::Contains("one channel"));
  e = error_of([&] { pixel_auroc(tensor({0, 1, 4, 4}).view(), tensor({0, 1, 4, 4}).view()); });
  CHECK(e.first == errc::empty_input);
  e = error_of([&] { pixel_auroc(span<const const_view>(), span<const const_view>()); });
  CHECK(e.first == errc::empty_input);
  const std::vector<const_view> two{maps.view(), maps.view()}, one{masks.view()};
  e = error_of([&] { aupro(as_span(two), as_span(one)); });
  CHECK(e.first == errc::shape_mismatch);
  CHECK_THAT(e.second, Catch::Contains("2 anomaly maps but 1 masks"));

  tensor bad_mask = masks;
  bad_mask(0, 0, 1, 3) = 255.0f;
  e = error_of([&] { aupro(maps.view(), bad_mask.view()); });
  CHECK(e.first == errc::invalid_argument);
  CHECK_THAT(e.second, Catch::Contains("mask holds 255") && Catch::Contains("n=0, h=1, w=3"));
  tensor nan_map = maps;
  nan_map(1, 0, 3, 0) = std::nanf("");
  e = error_of([&] { pixel_auroc(nan_map.view(), masks.view()); });
  CHECK(e.first == errc::non_finite);
  CHECK_THAT(e.second, Catch::Contains("NaN") && Catch::Contains("n=1, h=3, w=0"));
  CHECK_THROWS_AS(f1_optimal_threshold(nan_map.view(), masks.view()), error);

  tensor none({2, 1, 4, 4}), all({2, 1, 4, 4});
  none.fill(0.0f);
  all.fill(1.0f);
  e = error_of([&] { pixel_auroc(maps.view(), none.view()); });
  CHECK(e.first == errc::invalid_argument);
  CHECK_THAT(e.second, Catch::Contains("only one class") && Catch::Contains("no anomalous pixel"));
  e = error_of([&] { pixel_auroc(maps.view(), all.view()); });
  CHECK_THAT(e.second, Catch::Contains("no normal pixel"));
  e = error_of([&] { aupro(maps.view(), none.view()); });
  CHECK_THAT(e.second, Catch::Contains("no anomalous region"));
  e = error_of([&] { aupro(maps.view(), all.view()); });
  CHECK_THAT(e.second, Catch::Contains("no normal pixel"));
  e = error_of([&] { f1_optimal_threshold(maps.view(), none.view()); });
  CHECK_THAT(e.second, Catch::Contains("no anomalous pixel"));
  for (double limit : {0.0, -0.1, 1.5, std::nan("")}) {
    e = error_of([&] { aupro(maps.view(), masks.view(), {limit, false}); });
    CHECK(e.first == errc::invalid_argument);
    CHECK_THAT(e.second, Catch::Contains("fpr_limit"));
  }
}

TEST_CASE("auroc cross-check against sklearn roc_auc_score (heavy ties)", "[metrics][python]") {
  detail::rng r(2024);
  std::vector<std::unique_ptr<temp_file>> files;
  std::vector<std::string> args;
  std::vector<double> ours_auc, ours_f1;
  const std::size_t sizes[] = {7, 50, 1000, 20000};
  for (const std::size_t n : sizes)
    for (const int levels : {0, 2, 5, 40}) {
      std::vector<double> s(n);
      std::vector<std::int32_t> y(n);
      for (std::size_t i = 0; i < n; ++i) {
        y[i] = i < 2 ? static_cast<int>(i) : (r.uniform() < 0.3 ? 1 : 0);
        const double v = r.normal() + 0.8 * y[i];
        s[i] = levels > 0 ? std::round(v * levels / 3.0) : v;
      }
      files.push_back(std::make_unique<temp_file>("scores.f64"));
      files.back()->write(s);
      args.push_back(files.back()->path().string());
      files.push_back(std::make_unique<temp_file>("labels.i32"));
      files.back()->write(y);
      args.push_back(files.back()->path().string());
      const std::vector<int> yi(y.begin(), y.end());
      ours_auc.push_back(auroc(as_span(s), as_span(yi)));
      const f1_threshold f = f1_optimal_threshold(as_span(s), as_span(yi));
      ours_f1.push_back(f.f1);
      // The threshold reproduces the reported F1 under the rule score >= threshold.
      double tp = 0, fp = 0, p = 0;
      for (std::size_t i = 0; i < n; ++i) {
        p += yi[i];
        if (s[i] >= f.threshold) (yi[i] ? tp : fp) += 1;
      }
      CHECK(f.f1 == Approx(2 * tp / (tp + fp + p)).epsilon(1e-14));
      CHECK(f.precision == Approx(tp / (tp + fp)).epsilon(1e-14));
      CHECK(f.recall == Approx(tp / p).epsilon(1e-14));
    }
  const std::string script = python_require("numpy as np, sklearn.metrics as skm") + R"(
a = sys.argv[1:]
for i in range(0, len(a), 2):
    s = np.fromfile(a[i], dtype=np.float64)
    y = np.fromfile(a[i + 1], dtype=np.int32)
    p, r, t = skm.precision_recall_curve(y, s)
    d = p + r
    f1 = np.divide(2 * p * r, d, out=np.zeros_like(d), where=d > 0)
    print(repr(skm.roc_auc_score(y, s)), repr(f1.max()))
)";
  const python_run run = run_python(script, args);
  FLOWAD_REQUIRE_PYTHON(run);
  REQUIRE(run.numbers.size() == 2 * ours_auc.size());
  for (std::size_t i = 0; i < ours_auc.size(); ++i) {
    INFO("case " << i);
    CHECK(std::abs(ours_auc[i] - run.numbers[2 * i]) <= 1e-12);
    CHECK(std::abs(ours_f1[i] - run.numbers[2 * i + 1]) <= 1e-12);
  }
}

TEST_CASE("pixel_auroc cross-check against sklearn roc_auc_score", "[metrics][python]") {
  // Continuous, heavily tied, and a large clustered set (parallel path, large sort buckets).
  const synthetic_set sets[] = {synthetic(12, 33, 29, 100, 0), synthetic(12, 33, 29, 101, 3),
                                synthetic(24, 64, 64, 102, 0, 1e-3)};
  std::vector<double> ours;
  std::vector<std::unique_ptr<temp_file>> files;
  std::vector<std::string> args;
  for (const synthetic_set& d : sets) {
    ours.push_back(pixel_auroc(d.maps.view(), d.masks.view()));
    files.push_back(std::make_unique<temp_file>("maps.f32"));
    files.back()->write(flat(d.maps));
    args.push_back(files.back()->path().string());
    files.push_back(std::make_unique<temp_file>("masks.u8"));
    files.back()->write(flat_u8(d.masks));
    args.push_back(files.back()->path().string());
  }
  const std::string script = python_require("numpy as np, sklearn.metrics as skm") + R"(
a = sys.argv[1:]
for i in range(0, len(a), 2):
    print(repr(skm.roc_auc_score(np.fromfile(a[i + 1], dtype=np.uint8), np.fromfile(a[i], dtype=np.float32))))
)";
  const python_run run = run_python(script, args);
  FLOWAD_REQUIRE_PYTHON(run);
  REQUIRE(run.numbers.size() == ours.size());
  for (std::size_t i = 0; i < ours.size(); ++i) {
    INFO("set " << i << ": ours " << ours[i] << ", sklearn " << run.numbers[i]);
    CHECK(std::abs(ours[i] - run.numbers[i]) <= 1e-12);
  }
}

// ------------------------------------------------------------------------------------------------
// Connected components and AUPRO

TEST_CASE("label_regions: 8-connectivity, raster-order numbering", "[metrics]") {
  const tensor m = plane(4, 5, {0, 1, 0, 0, 1,  //
                                1, 0, 0, 0, 1,  //
                                0, 0, 1, 0, 0,  //
                                0, 0, 0, 0, 0});
  const region_labels r = label_regions(m.view());
  CHECK(r.count == 3);
  const std::vector<std::int32_t> expected{0, 1, 0, 0, 2,  //
                                           1, 0, 0, 0, 2,  //
                                           0, 0, 3, 0, 0,  //
                                           0, 0, 0, 0, 0};
  CHECK(r.labels == expected);
  // A U whose arms meet only at the bottom: one component (provisional labels are merged).
  const tensor u = plane(3, 3, {1, 0, 1, 1, 0, 1, 1, 1, 1});
  CHECK(label_regions(u.view()).count == 1);
  // Anti-diagonal: one 8-connected component.
  const tensor anti = plane(3, 3, {0, 0, 1, 0, 1, 0, 1, 0, 0});
  CHECK(label_regions(anti.view()).count == 1);
  CHECK_THROWS_AS(label_regions(plane(1, 2, {0, 0.5f}).view()), error);
  CHECK_THROWS_AS(label_regions(tensor({2, 1, 2, 2}).view()), error);
}

TEST_CASE("aupro: two regions of different sizes, integrated by hand", "[metrics]") {
  // 1 x 5 image; regions {0} (size 1) and {2,3} (size 2); normal pixels 1 and 4.
  const tensor mask = plane(1, 5, {1, 0, 1, 1, 0});
  const tensor map = plane(1, 5, {0.9f, 0.8f, 0.7f, 0.2f, 0.1f});
  // Descending: 0.9 -> (0, .5); 0.8 -> (.5, .5); 0.7 -> (.5, .75); 0.2 -> (.5, 1); 0.1 -> (1, 1).
  const pro_result r = aupro(map.view(), mask.view(), {0.3, true});
  CHECK(r.regions == 2);
  CHECK(r.ok_pixels == 2);
  CHECK(r.fpr == std::vector<double>{0, 0, 0.5, 0.5, 0.5, 1, 1});
  CHECK(r.pro == std::vector<double>{0, 0.5, 0.5, 0.75, 1, 1, 1});
  // Up to 0.3 the curve is flat at 0.5 (interpolated at 0.3): 0.5 * 0.3 / 0.3.
  CHECK(r.aupro == Approx(0.5).epsilon(1e-15));
  // Up to 1: 0.5 * 0.5 + 1 * 0.5 = 0.75. A limit that is a curve point: no interpolation, 0.25 / 0.5.
  CHECK(aupro(map.view(), mask.view(), {1.0, false}).aupro == Approx(0.75).epsilon(1e-15));
  CHECK(aupro(map.view(), mask.view(), {0.5, false}).aupro == Approx(0.5).epsilon(1e-15));
  CHECK(r.fpr.size() == r.pro.size());
  CHECK(aupro(map.view(), mask.view()).fpr.empty());
}

TEST_CASE("aupro: tied scores merge into one sloped step, interpolated at the limit", "[metrics]") {
  // As above, but normal pixel 1 ties with region pixel 2 at 0.5: one point (.5, .75).
  const tensor mask = plane(1, 5, {1, 0, 1, 1, 0});
  const tensor map = plane(1, 5, {0.9f, 0.5f, 0.5f, 0.2f, 0.1f});
  const pro_result r = aupro(map.view(), mask.view(), {0.3, true});
  CHECK(r.fpr == std::vector<double>{0, 0, 0.5, 0.5, 1, 1});
  CHECK(r.pro == std::vector<double>{0, 0.5, 0.75, 1, 1, 1});
  // y(0.3) = 0.5 + 0.25 * 0.3 / 0.5 = 0.65; area = 0.5 * (0.5 + 0.65) * 0.3 = 0.1725.
  CHECK(r.aupro == Approx(0.1725 / 0.3).epsilon(1e-14));
}

TEST_CASE("aupro: an 8-connected diagonal is one region; FPR is over the whole dataset", "[metrics]") {
  // Region A = {(0,0), (1,1)} (diagonal, size 2), region B = {(3,3)}; 13 normal pixels.
  const tensor mask = plane(4, 4, {1, 0, 0, 0,  //
                                   0, 1, 0, 0,  //
                                   0, 0, 0, 0,  //
                                   0, 0, 0, 1});
  const tensor map = plane(4, 4, {0.9f, 0.8f, 0.7f, 0.6f,  //
                                  0.4f, 0.5f, 0.0f, 0.0f,  //
                                  0.0f, 0.0f, 0.0f, 0.0f,  //
                                  0.0f, 0.0f, 0.0f, 0.85f});
  // 0.9 -> (0, .25); 0.85 -> (0, .75); 0.8, 0.7, 0.6 -> (3/13, .75); 0.5 -> (3/13, 1); 0.4 -> (4/13, 1).
  // Area to 0.3 = .75 * 3/13 + (0.3 - 3/13) * 1. (With 4-connectivity, three regions: .3 - 1/13.)
  const pro_result r = aupro(map.view(), mask.view());
  CHECK(r.regions == 2);
  CHECK(r.ok_pixels == 13);
  CHECK(r.aupro == Approx((0.75 * 3 / 13 + 0.3 - 3.0 / 13) / 0.3).epsilon(1e-14));

  // Adding a defect-free image whose 16 normal pixels score 0.95 (above everything): 29 normal
  // pixels, and the curve jumps to (16/29, 0) first.
  tensor maps({2, 1, 4, 4}), masks({2, 1, 4, 4});
  masks.fill(0.0f);
  maps.fill(0.95f);
  for (index_t i = 0; i < 16; ++i) {
    maps.data()[16 + i] = map.data()[i];
    masks.data()[16 + i] = mask.data()[i];
  }
  // Below FPR 0.3 there is only the segment (0,0)-(16/29,0): area 0.
  CHECK(aupro(maps.view(), masks.view()).aupro == 0.0);
  // Limit 1: 0.9, 0.85 rise vertically at 16/29; PRO .75 up to 19/29, then 1 to the end.
  const double expected = 0.75 * (3.0 / 29) + 1.0 * (1 - 19.0 / 29);
  CHECK(aupro(maps.view(), masks.view(), {1.0, false}).aupro == Approx(expected).epsilon(1e-14));
  // The same set as two views.
  const std::vector<const_view> mv{maps.view().batch(0, 1), map.view()}, kv{masks.view().batch(0, 1), mask.view()};
  CHECK(aupro(as_span(mv), as_span(kv), {1.0, false}).aupro == Approx(expected).epsilon(1e-14));
}

TEST_CASE("pixel_metrics agrees with pixel_auroc and aupro", "[metrics]") {
  const synthetic_set d = synthetic(10, 20, 24, 55, 4);
  const pixel_metrics_result m = pixel_metrics(d.maps.view(), d.masks.view(), {0.2, false});
  CHECK(m.auroc == pixel_auroc(d.maps.view(), d.masks.view()));
  CHECK(m.pro.aupro == aupro(d.maps.view(), d.masks.view(), {0.2, false}).aupro);
  // The curve is monotone and padded.
  const pro_result c = aupro(d.maps.view(), d.masks.view(), {0.3, true});
  REQUIRE(c.fpr.size() >= 3);
  CHECK(c.fpr.front() == 0.0);
  CHECK(c.pro.front() == 0.0);
  CHECK(c.fpr.back() == 1.0);
  CHECK(c.pro.back() == 1.0);
  CHECK(std::is_sorted(c.fpr.begin(), c.fpr.end()));
  CHECK(std::is_sorted(c.pro.begin(), c.pro.end()));
}

TEST_CASE("aupro cross-check against the MVTec algorithm with scipy.ndimage.label", "[metrics][python]") {
  const index_t n = 30, h = 53, w = 47;  // 75k pixels: the parallel path
  struct config {
    std::uint64_t seed;
    int levels;
    double squeeze;
  };
  const config configs[] = {{11, 0, 0}, {12, 3, 0}, {13, 1, 0}, {14, 0, 1e-3}};
  std::vector<std::unique_ptr<temp_file>> files;
  std::vector<std::vector<double>> ours;
  std::vector<std::int64_t> regions;
  const std::vector<double> limits{0.3, 0.05, 1.0, 0.5};
  std::vector<std::string> args{std::to_string(n), std::to_string(h), std::to_string(w), "0.3,0.05,1.0,0.5"};
  for (const config& c : configs) {
    const synthetic_set d = synthetic(n, h, w, c.seed, c.levels, c.squeeze);
    files.push_back(std::make_unique<temp_file>("maps.f32"));
    files.back()->write(flat(d.maps));
    args.push_back(files.back()->path().string());
    files.push_back(std::make_unique<temp_file>("masks.u8"));
    files.back()->write(flat_u8(d.masks));
    args.push_back(files.back()->path().string());
    std::vector<double> values;
    for (double limit : limits) {
      const pro_result r = aupro(d.maps.view(), d.masks.view(), {limit, false});
      values.push_back(r.aupro);
      if (limit == 0.3) regions.push_back(r.regions);
    }
    ours.push_back(values);
  }
  // The official algorithm (pro_curve_util.compute_pro + generic_util.trapezoid), float64 FPRs.
  const std::string script = python_require("numpy as np, scipy.ndimage") + R"(
from bisect import bisect
a = sys.argv[1:]
n, h, w = int(a[0]), int(a[1]), int(a[2])
limits = [float(v) for v in a[3].split(",")]
def trapezoid(x, y, x_max):
    correction = 0.0
    if x_max not in x:
        ins = bisect(x, x_max)
        assert 0 < ins < len(x)
        y_interp = y[ins - 1] + ((y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1]))
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    keep = x <= x_max
    x = x[keep]
    y = y[keep]
    return np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction
for i in range(4, len(a), 2):
    maps = np.fromfile(a[i], dtype=np.float32).reshape(n, h, w)
    masks = np.fromfile(a[i + 1], dtype=np.uint8).reshape(n, h, w)
    structure = np.ones((3, 3), dtype=int)
    fp_changes = np.zeros((n, h, w), dtype=np.float64)
    pro_changes = np.zeros((n, h, w), dtype=np.float64)
    num_ok = 0
    num_regions = 0
    for k in range(n):
        labeled, count = scipy.ndimage.label(masks[k], structure)
        num_regions += count
        ok = labeled == 0
        num_ok += ok.sum()
        fp_changes[k][ok] = 1
        for r in range(count):
            region = labeled == (r + 1)
            pro_changes[k][region] = 1.0 / region.sum()
    scores = maps.ravel().astype(np.float64)
    order = np.argsort(scores)[::-1]
    scores = scores[order]
    fprs = np.cumsum(fp_changes.ravel()[order]) / num_ok
    pros = np.cumsum(pro_changes.ravel()[order]) / num_regions
    keep = np.append(np.diff(scores) != 0, True)
    fprs = np.clip(fprs[keep], None, 1.0)
    pros = np.clip(pros[keep], None, 1.0)
    fprs = np.concatenate(([0.0], fprs, [1.0]))
    pros = np.concatenate(([0.0], pros, [1.0]))
    print(num_regions, " ".join(repr(trapezoid(fprs, pros, lim) / lim) for lim in limits))
)";
  const python_run run = run_python(script, args);
  FLOWAD_REQUIRE_PYTHON(run);
  REQUIRE(run.numbers.size() == std::size(configs) * (1 + limits.size()));
  for (std::size_t c = 0; c < std::size(configs); ++c) {
    INFO("configuration " << c);
    const double* ref = run.numbers.data() + c * (1 + limits.size());
    CHECK(regions[c] == static_cast<std::int64_t>(ref[0]));
    for (std::size_t l = 0; l < limits.size(); ++l) {
      INFO("fpr limit " << limits[l] << ": ours " << ours[c][l] << ", reference " << ref[1 + l]);
      CHECK(std::abs(ours[c][l] - ref[1 + l]) <= 1e-10);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Thresholds

TEST_CASE("f1_optimal_threshold on small cases", "[metrics]") {
  // t = .6: F1 2/4; .5: 4/5; .4: 4/6; .3: 6/7 (best); .2: 6/8; .1: 6/9.
  const f1_threshold f = f1_optimal_threshold(as_span(std::vector<double>{0.1, 0.2, 0.3, 0.4, 0.5, 0.6}),
                                              as_span(std::vector<int>{0, 0, 1, 0, 1, 1}));
  CHECK(f.threshold == 0.3);
  CHECK(f.f1 == Approx(6.0 / 7).epsilon(1e-15));
  CHECK(f.precision == Approx(0.75).epsilon(1e-15));
  CHECK(f.recall == 1.0);
  // Equal F1 (2/3) at .8 and at .2: the lowest threshold wins.
  const f1_threshold tie = f1_optimal_threshold(as_span(std::vector<float>{0.2f, 0.4f, 0.6f, 0.8f}),
                                                as_span(std::vector<int>{1, 0, 0, 1}));
  CHECK(tie.threshold == Approx(0.2).epsilon(1e-7));
  CHECK(tie.f1 == Approx(2.0 / 3).epsilon(1e-15));
  // Only anomalous samples: recall 1 at the lowest score.
  const f1_threshold pos = f1_optimal_threshold(as_span(std::vector<double>{3, 1, 2}), as_span(std::vector<int>{1, 1, 1}));
  CHECK(pos.threshold == 1.0);
  CHECK(pos.f1 == 1.0);
  // Pixel variant: map/mask of the first case.
  const tensor map = plane(2, 3, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}), mask = plane(2, 3, {0, 0, 1, 0, 1, 1});
  const f1_threshold px = f1_optimal_threshold(map.view(), mask.view());
  CHECK(px.threshold == 0.3f);
  CHECK(px.f1 == Approx(6.0 / 7).epsilon(1e-15));
  // Errors.
  auto e = error_of([] { f1_optimal_threshold(as_span(std::vector<double>{1, 2}), as_span(std::vector<int>{0, 0})); });
  CHECK(e.first == errc::invalid_argument);
  CHECK_THAT(e.second, Catch::Contains("no anomalous sample"));
  CHECK_THROWS_AS(f1_optimal_threshold(span<const double>(), span<const int>()), error);
  CHECK_THROWS_AS(f1_optimal_threshold(as_span(std::vector<double>{1, std::nan("")}), as_span(std::vector<int>{0, 1})), error);
}

TEST_CASE("threshold_for_fpr: conformal quantile of defect-free scores", "[metrics]") {
  std::vector<double> s(99);
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<double>(99 - i);  // 99..1, unsorted input
  // k = ceil(0.95 * 100) = 95 -> threshold 95; 5 of 99 scores reach it; bound 5/100.
  fpr_threshold t = threshold_for_fpr(as_span(s), 0.05);
  CHECK(t.rank == 95);
  CHECK(t.count == 99);
  CHECK(t.threshold == 95.0);
  CHECK(t.empirical_fpr == Approx(5.0 / 99).epsilon(1e-15));
  CHECK(t.expected_fpr == Approx(0.05).epsilon(1e-15));
  CHECK(t.bounded);
  CHECK(t.target_fpr == 0.05);
  // n = 10, fpr 0.5: k = ceil(5.5) = 6.
  t = threshold_for_fpr(as_span(std::vector<float>{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}), 0.5);
  CHECK(t.rank == 6);
  CHECK(t.threshold == 6.0);
  CHECK(t.empirical_fpr == 0.5);
  // Too few scores for the guarantee: k = ceil(0.9 * 6) = 6 > 5 -> the maximum, not bounded.
  t = threshold_for_fpr(as_span(std::vector<double>{0.3, 0.1, 0.5, 0.2, 0.4}), 0.1);
  CHECK_FALSE(t.bounded);
  CHECK(t.threshold == 0.5);
  CHECK(t.rank == 5);
  // Ties count at the threshold: k = ceil(0.6 * 6) = 4 -> s_(4) = 2; 4 of 5 scores are >= 2.
  t = threshold_for_fpr(as_span(std::vector<double>{2, 1, 2, 3, 2}), 0.4);
  CHECK(t.threshold == 2.0);
  CHECK(t.empirical_fpr == 0.8);
  // Errors.
  for (double bad : {0.0, 1.0, -0.5, std::nan("")}) CHECK_THROWS_AS(threshold_for_fpr(as_span(s), bad), error);
  CHECK_THROWS_AS(threshold_for_fpr(span<const double>(), 0.1), error);
  CHECK_THROWS_AS(threshold_for_fpr(as_span(std::vector<double>{1, std::nan("")}), 0.1), error);
}

TEST_CASE("threshold_for_fpr holds its false-positive bound on new samples", "[metrics]") {
  // Uniform(0,1) defect-free scores: a threshold t flags a new sample with probability 1 - t exactly.
  // n = 19, fpr 0.1: k = 18 and E[1 - s_(18)] = (20 - 18)/20 = 0.1 exactly. Over 20000 calibrations
  // the mean has a standard deviation of 0.00046 (1 - s_(18) ~ Beta(2, 18)); the margin is 4.3 of them.
  detail::rng r(99);
  double sum = 0.0;
  const int trials = 20000;
  for (int trial = 0; trial < trials; ++trial) {
    std::vector<double> calibration(19);
    for (double& v : calibration) v = r.uniform();
    const fpr_threshold t = threshold_for_fpr(as_span(calibration), 0.1);
    REQUIRE(t.rank == 18);
    sum += 1.0 - t.threshold;
  }
  CHECK(sum / trials == Approx(0.1).margin(0.002));
}

// ------------------------------------------------------------------------------------------------
// Performance (hidden: run with "[metrics-perf]").

TEST_CASE("pixel AUROC / AUPRO on 83 x 256 x 256", "[.][metrics-perf]") {
  const synthetic_set d = synthetic(83, 256, 256, 8);
  using clock = std::chrono::steady_clock;
  auto median_ms = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::vector<double> t_auc, t_pro, t_both;
  double auc = 0, pro = 0;
  pixel_metrics_result both;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = clock::now();
    auc = pixel_auroc(d.maps.view(), d.masks.view());
    auto t1 = clock::now();
    pro = aupro(d.maps.view(), d.masks.view()).aupro;
    auto t2 = clock::now();
    both = pixel_metrics(d.maps.view(), d.masks.view());
    auto t3 = clock::now();
    t_auc.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    t_pro.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    t_both.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
  }
  WARN("83x256x256 (" << d.maps.numel() << " pixels), median of 5: pixel_auroc " << median_ms(t_auc)
                      << " ms, aupro " << median_ms(t_pro) << " ms, pixel_metrics " << median_ms(t_both)
                      << " ms; AUROC " << auc << ", AUPRO " << pro);
  CHECK(both.auroc == auc);
  CHECK(both.pro.aupro == pro);
  CHECK(auc > 0.5);
  CHECK(pro > 0.0);
  CHECK(pro <= 1.0);
}
