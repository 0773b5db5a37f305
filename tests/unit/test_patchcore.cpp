// PatchCore (detectors/patchcore.hpp): patch features, coreset and nearest neighbours against naive
// references, detection that a bank of the wrong data does not show, eq. 7, maps, model files, errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <thread>

#include "detectors/patchcore/coreset.hpp"
#include "detectors/patchcore/nearest_neighbours.hpp"
#include "detectors/patchcore/patch_features.hpp"
#include "flowad/detail/random.hpp"
#include "flowad/detectors/patchcore.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/metrics/roc.hpp"
#include "support/concurrent_scoring.hpp"
#include "support/feature_data.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

tensor random_tensor(shape4 shape, std::uint64_t seed, layout l = layout::nchw) {
  tensor t(shape, l);
  detail::rng r(seed);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(r.normal());
  return t;
}

std::vector<float> random_rows(index_t rows, index_t dimension, std::uint64_t seed) {
  std::vector<float> v(static_cast<std::size_t>(rows * dimension));
  detail::rng r(seed);
  for (float& x : v) x = static_cast<float>(r.normal());
  return v;
}

double squared_distance(const float* a, const float* b, index_t dimension) {
  double s = 0.0;
  for (index_t d = 0; d < dimension; ++d) s += (static_cast<double>(a[d]) - b[d]) * (static_cast<double>(a[d]) - b[d]);
  return s;
}

// The k x k zero-padded box mean of one plane, naively.
float naive_box_mean(const_view t, index_t n, index_t c, index_t y, index_t x, index_t k) {
  double sum = 0.0;
  for (index_t dy = -k / 2; dy <= k / 2; ++dy)
    for (index_t dx = -k / 2; dx <= k / 2; ++dx) {
      const index_t yy = y + dy, xx = x + dx;
      if (yy >= 0 && yy < t.h() && xx >= 0 && xx < t.w()) sum += t(n, c, yy, xx);
    }
  return static_cast<float>(sum / static_cast<double>(k * k));
}

patchcore_config small_config(index_t channels, index_t size) {
  patchcore_config cfg = patchcore_config::recommended({{channels, size, size}});
  cfg.blur_sigma = 0.0;
  return cfg;
}

}  // namespace

TEST_CASE("patchcore's patch features are box means of each scale, the deeper ones upsampled", "[patchcore]") {
  const tensor fine = random_tensor({2, 3, 6, 5}, 1, layout::nhwc);
  const tensor coarse = random_tensor({2, 4, 3, 3}, 2);
  tensor rows;
  detail::patch_feature_buffers buffers;
  detail::patch_features({fine.cview(), coarse.cview()}, 1, 1, 3, rows, buffers);
  REQUIRE(rows.shape() == shape4{1, 7, 6, 5});
  REQUIRE(rows.layout() == layout::nhwc);
  // The coarse scale's box means, upsampled by the (separately tested) bilinear resize.
  tensor pooled({1, 4, 3, 3});
  for (index_t c = 0; c < 4; ++c)
    for (index_t y = 0; y < 3; ++y)
      for (index_t x = 0; x < 3; ++x) pooled(0, c, y, x) = naive_box_mean(coarse.cview(), 1, c, y, x, 3);
  const tensor up = upsample_bilinear(pooled.cview(), 6, 5);
  for (index_t y = 0; y < 6; ++y)
    for (index_t x = 0; x < 5; ++x) {
      for (index_t c = 0; c < 3; ++c) CHECK(rows(0, c, y, x) == Approx(naive_box_mean(fine.cview(), 1, c, y, x, 3)).margin(1e-6));
      for (index_t c = 0; c < 4; ++c) CHECK(rows(0, 3 + c, y, x) == Approx(up(0, c, y, x)).margin(1e-6));
    }
  // A 1 x 1 patch is the features themselves.
  detail::patch_features({fine.cview()}, 0, 2, 1, rows, buffers);
  for (index_t i = 0; i < fine.numel(); ++i) CHECK(rows.data()[i] == fine.data()[i]);
}

TEST_CASE("memory_bank finds the nearest row over several tiles", "[patchcore]") {
  // 5000 rows: three tiles of the product; 1100 queries: two passes of the search.
  const index_t dimension = 24, size = 5000, count = 1100;
  const std::vector<float> queries = random_rows(count, dimension, 4);
  // bfloat16 products only where the CPU has them (elsewhere the bank searches in float32 anyway).
  for (const bool bfloat16 : {false, detail::bfloat16_native()}) {
    INFO("bfloat16 " << bfloat16);
    detail::memory_bank bank(random_rows(size, dimension, 3), dimension, bfloat16);
    std::vector<float> found(count);
    std::vector<index_t> index(count);
    detail::memory_bank::buffers buffers;
    detail::exec_context ctx;
    bank.nearest(queries.data(), count, found.data(), index.data(), buffers, ctx);
    for (index_t q = 0; q < count; ++q) {
      double best = std::numeric_limits<double>::infinity();
      for (index_t j = 0; j < size; ++j) best = std::min(best, squared_distance(queries.data() + q * dimension, bank.row(j), dimension));
      // The distance reported is the exact one to the row found ...
      CHECK(found[q] == Approx(squared_distance(queries.data() + q * dimension, bank.row(index[q]), dimension)).epsilon(1e-5));
      // ... which is the nearest (float32), or within bfloat16's rounding of it.
      CHECK(found[q] >= best * (1.0 - 1e-5));
      CHECK(found[q] <= best * (bfloat16 ? 1.02 : 1.0 + 1e-5));
    }
  }
  detail::memory_bank bank(random_rows(size, dimension, 3), dimension, false);
  detail::memory_bank::buffers buffers;
  // The k nearest rows of a bank row: itself first, then by distance, as a full sort gives them.
  std::vector<index_t> near;
  bank.k_nearest_of_row(17, 9, near, buffers);
  REQUIRE(near.size() == 9);
  CHECK(near[0] == 17);
  std::vector<std::pair<double, index_t>> all;
  for (index_t j = 0; j < size; ++j)
    if (j != 17) all.push_back({squared_distance(bank.row(17), bank.row(j), dimension), j});
  std::sort(all.begin(), all.end());
  for (std::size_t i = 1; i < 9; ++i) CHECK(near[i] == all[i - 1].second);
}

TEST_CASE("to_bfloat16 rounds to nearest even and keeps NaN", "[patchcore]") {
  const float in[] = {1.0f, 1.00390625f /* halfway: 1 + 2^-8 */, 1.01171875f /* 1 + 3·2^-8, halfway up */, -2.5f,
                      std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
  std::uint16_t out[6];
  detail::to_bfloat16(in, out, 6);
  CHECK(out[0] == 0x3f80);
  CHECK(out[1] == 0x3f80);  // ties to the even 1.0
  CHECK(out[2] == 0x3f82);  // ties to the even 1 + 2^-6
  CHECK(out[3] == 0xc020);
  CHECK(out[4] == 0x7f80);
  CHECK((out[5] & 0x7f80) == 0x7f80);
  CHECK((out[5] & 0x007f) != 0);
}

TEST_CASE("greedy_coreset keeps one row of every cluster before a second of any", "[patchcore]") {
  // Eight far-apart clusters of 200 rows each: a k-center coreset of 8 holds one row of each, with or
  // without the random projection, and repeats itself for a seed.
  const index_t dimension = 48, clusters = 8, per_cluster = 200;
  std::vector<float> data(static_cast<std::size_t>(clusters * per_cluster * dimension));
  detail::rng r(5);
  std::vector<float> centre(static_cast<std::size_t>(dimension));
  for (index_t k = 0; k < clusters; ++k) {
    for (float& c : centre) c = static_cast<float>(20.0 * r.normal());
    for (index_t i = 0; i < per_cluster; ++i)
      for (index_t d = 0; d < dimension; ++d)
        data[static_cast<std::size_t>((k * per_cluster + i) * dimension + d)] = centre[static_cast<std::size_t>(d)] + static_cast<float>(r.normal());
  }
  for (const index_t projection : {index_t{0}, index_t{16}}) {
    detail::coreset_options o;
    o.count = clusters;
    o.projection_dimension = projection;
    o.seed = 9;
    index_t reports = 0;
    o.on_progress = [&](index_t) { ++reports; };
    const std::vector<index_t> kept = detail::greedy_coreset(data.data(), clusters * per_cluster, dimension, o);
    REQUIRE(kept.size() == static_cast<std::size_t>(clusters));
    CHECK(reports == clusters);
    std::set<index_t> hit;
    for (index_t i : kept) hit.insert(i / per_cluster);
    CHECK(hit.size() == static_cast<std::size_t>(clusters));
    CHECK(detail::greedy_coreset(data.data(), clusters * per_cluster, dimension, o) == kept);
  }
  detail::coreset_options too_many;
  too_many.count = 2000;
  CHECK_THROWS_WITH(detail::greedy_coreset(data.data(), 1600, dimension, too_many), Catch::Contains("2000 of 1600"));
}

TEST_CASE("patchcore detects what its bank never held, which a bank of the marginals alone cannot", "[patchcore]") {
  // Normal features lie on a 2-D subspace of 16 channels; anomalous patches have each channel's normal
  // spread but no correlation. A bank of the training features knows the subspace; a bank of samples
  // with the same per-channel mean and spread, drawn independently (what per-channel statistics know),
  // does not.
  const feature_dataset data = make_correlated_feature_dataset(16, 12, 48, 24, 24, 13);
  tensor marginal(data.train.shape());
  detail::rng r(77);
  for (index_t c = 0; c < 16; ++c) {
    double sum = 0.0, squares = 0.0;
    const double count = static_cast<double>(data.train.n() * 144);
    for (index_t n = 0; n < data.train.n(); ++n)
      for (index_t y = 0; y < 12; ++y)
        for (index_t x = 0; x < 12; ++x) {
          sum += data.train(n, c, y, x);
          squares += data.train(n, c, y, x) * data.train(n, c, y, x);
        }
    const double mean = sum / count, sd = std::sqrt(std::max(0.0, squares / count - mean * mean));
    for (index_t n = 0; n < data.train.n(); ++n)
      for (index_t y = 0; y < 12; ++y)
        for (index_t x = 0; x < 12; ++x) marginal(n, c, y, x) = static_cast<float>(mean + sd * r.normal());
  }
  const auto aurocs = [&](const tensor& train) {
    patchcore model(small_config(16, 12));
    const fit_report report = model.fit({train.cview()});
    CHECK(model.bank_size() == std::llround(0.1 * 48 * 144));
    CHECK(report.seconds > 0.0);
    const scores s = model.score({data.test});
    return std::make_pair(auroc(span<const double>(s.image), span<const int>(data.labels)),
                          pixel_auroc(s.maps.cview(), data.masks.cview()));
  };
  const auto own = aurocs(data.train), marginals = aurocs(marginal);
  INFO("own bank: image " << own.first << " pixel " << own.second << "; bank of marginals: image " << marginals.first
                          << " pixel " << marginals.second);
  CHECK(own.first >= 0.95);
  CHECK(own.second >= 0.9);
  CHECK(marginals.first <= 0.75);
}

TEST_CASE("patchcore's scores: patch distances, eq. 7 re-weighting, smoothed maps", "[patchcore]") {
  const feature_dataset data = make_feature_dataset(6, 8, 12, 3, 3, 21);
  patchcore_config cfg = small_config(6, 8);
  cfg.coreset_fraction = 1.0;
  cfg.patch_size = 1;
  cfg.reweight_neighbours = 1;
  cfg.search = search_precision::float32;  // the exact nearest row (bfloat16: see the memory_bank test)
  patchcore plain(cfg);
  plain.fit({data.train});
  REQUIRE(plain.bank_size() == 12 * 64);
  const scores s = plain.score({data.test});
  // With the whole bank, 1 x 1 patches and no smoothing, the map is each position's distance to the
  // nearest training feature, and the image score its maximum.
  const std::vector<float>& bank = plain.bank();
  for (index_t n = 0; n < data.test.n(); ++n) {
    double worst = 0.0;
    for (index_t y = 0; y < 8; ++y)
      for (index_t x = 0; x < 8; ++x) {
        float q[6];
        for (index_t c = 0; c < 6; ++c) q[c] = data.test(n, c, y, x);
        double best = std::numeric_limits<double>::infinity();
        for (index_t j = 0; j < plain.bank_size(); ++j) best = std::min(best, squared_distance(q, bank.data() + j * 6, 6));
        CHECK(s.maps(n, 0, y, x) == Approx(std::sqrt(best)).epsilon(1e-4).margin(1e-4));
        worst = std::max(worst, std::sqrt(best));
      }
    CHECK(s.image[static_cast<std::size_t>(n)] == Approx(worst).epsilon(1e-4));
  }
  // Eq. 7 scales each image's maximum by 1 − softmax(d)_0; d_0, the distance to the nearest bank
  // feature, is the smallest of the b, so the factor lies in [1 − 1/b, 1).
  cfg.reweight_neighbours = 9;
  patchcore weighted(cfg);
  weighted.fit({data.train});
  const scores w = weighted.score({data.test});
  for (std::size_t n = 0; n < w.image.size(); ++n) {
    CHECK(w.image[n] >= s.image[n] * (1.0 - 1.0 / 9.0) - 1e-6);
    CHECK(w.image[n] < s.image[n]);
  }
  // Smoothing: σ = 1 cell on a map of 4 pixels per cell is σ = 4 map pixels.
  cfg.blur_sigma = 1.0;
  patchcore smooth(cfg);
  smooth.fit({data.train});
  score_options so;
  so.map_height = so.map_width = 32;
  const scores m = smooth.score({data.test}, so);
  const tensor expected = gaussian_blur(upsample_bilinear(s.maps.cview(), 32, 32).cview(), 4.0);
  for (index_t i = 0; i < expected.numel(); ++i) CHECK(m.maps.data()[i] == Approx(expected.data()[i]).epsilon(1e-5).margin(1e-5));
}

TEST_CASE("patchcore saves and loads to bit-identical scores", "[patchcore][model_file]") {
  temp_folder dir;
  const feature_dataset a = make_feature_dataset(8, 8, 16, 4, 4, 5);
  const feature_dataset b = make_feature_dataset(6, 4, 16, 4, 4, 6);
  patchcore_config cfg = patchcore_config::recommended({{8, 8, 8}, {6, 4, 4}});
  cfg.projection_dimension = 4;
  patchcore model(cfg);
  model.set_metadata("note", "kept");
  model.fit({a.train, b.train});
  score_options so;
  so.map_height = so.map_width = 24;
  so.cell_offsets = {0.1, -0.2};
  const scores before = model.score({a.test, b.test}, so);
  model.save(dir / "patchcore.flowad");
  const std::unique_ptr<detector> loaded = load_detector(dir / "patchcore.flowad");
  CHECK(std::string(loaded->kind()) == "patchcore");
  CHECK(loaded->config() == model.config());
  CHECK(loaded->metadata() == model.metadata());
  CHECK(model.stats().parameters == static_cast<double>(model.bank_size() * 14));
  CHECK(model.stats().macs_per_image == static_cast<double>(64 + 1) * model.stats().parameters);
  CHECK(loaded->stats().parameters == model.stats().parameters);
  const scores after = loaded->score({a.test, b.test}, so);
  CHECK(after.image == before.image);
  CHECK(std::memcmp(after.maps.data(), before.maps.data(), before.maps.bytes()) == 0);

  // A bank of the wrong width, with a NaN, or missing is a bad file.
  const model_file_contents good = read_model_file(dir / "patchcore.flowad");
  const auto expect_bad = [&](model_file_contents m, const char* message) {
    write_model_file(dir / "damaged.flowad", m);
    try {
      load_detector(dir / "damaged.flowad");
      FAIL("a damaged patchcore file loaded");
    } catch (const error& e) {
      CHECK(e.code() == errc::bad_file);
      CHECK_THAT(e.what(), Catch::Contains(message));
    }
  };
  model_file_contents m = good;
  m.tensors[0].dims = {m.tensors[0].dims[0] * 2, 7};  // the same values, rows of the wrong width
  expect_bad(m, "14-value rows");
  m = good;
  m.tensors[0].values[3] = std::numeric_limits<float>::quiet_NaN();
  expect_bad(m, "NaN");
  m = good;
  m.tensors.clear();
  expect_bad(m, "bank");
}

TEST_CASE("patchcore scores the same from several threads at once", "[patchcore]") {
  const feature_dataset data = make_feature_dataset(8, 8, 24, 6, 6, 7);
  patchcore model(patchcore_config::recommended({{8, 8, 8}}));
  model.fit({data.train});
  check_concurrent_scores_match_serial(model, {data.test});
}

TEST_CASE("patchcore rejects bad input and settings with clear errors", "[patchcore]") {
  const feature_dataset data = make_feature_dataset(8, 8, 8, 2, 2, 1);
  patchcore model(small_config(8, 8));
  CHECK_THROWS_WITH(model.score({data.test}), Catch::Contains("before fit"));
  CHECK_THROWS_WITH(model.save(std::filesystem::temp_directory_path() / "flowad_never.flowad"), Catch::Contains("before fit"));
  tensor nan = data.train;
  nan(0, 1, 2, 3) = std::numeric_limits<float>::quiet_NaN();
  try {
    model.fit({nan.cview()});
    FAIL("NaN features were fitted");
  } catch (const error& e) {
    CHECK(e.code() == errc::non_finite);
  }
  model.fit({data.train});
  tensor wrong({2, 8, 8, 9});
  CHECK_THROWS_WITH(model.score({wrong.cview()}), Catch::Contains("2x8x8x9"));
  const auto rejects = [](const char* key, const char* value) {
    detector_config c = recommended_config("patchcore", std::vector<scale_shape>{{8, 8, 8}});
    c.update({{key, value}});
    CHECK_THROWS_WITH(make_detector("patchcore", c), Catch::Contains(key));
  };
  rejects("patch_size", "2");
  rejects("coreset_fraction", "0");
  rejects("coreset_fraction", "1.5");
  rejects("score.reweight_neighbours", "0");
  rejects("score.blur_sigma", "-1");
  CHECK_THROWS_WITH(recommended_config("patchcore", std::vector<scale_shape>{{8, 8, 8}}).update({{"train.epochs", "3"}}),
                    Catch::Contains("train.epochs"));
}
