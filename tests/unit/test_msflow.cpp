#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <thread>

#include "flowad/flows/msflow.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/scoring/anomaly_map.hpp"
#include "flowad/metrics/roc.hpp"
#include "support/feature_data.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

msflow_config small_config(index_t channels, index_t size) {
  msflow_config cfg;
  cfg.scales = {{channels, size, size}};
  cfg.groups = 2;
  cfg.hidden = 32;
  cfg.blocks = 4;
  cfg.kernels = {3, 1};
  cfg.random_seed = 5;
  return cfg;
}

fit_options quick_fit(int epochs) {
  fit_options opt;
  opt.epochs = epochs;
  opt.batch_size = 16;
  opt.optimizer.learning_rate = 2e-3f;
  opt.schedule.warmup_epochs = 2;
  opt.seed = 3;
  return opt;
}

// The loss curve of a 3-epoch fit of small_config(8, 8) on data.train.
std::vector<double> epoch_losses(const feature_dataset& data, std::uint64_t seed, double input_noise = 0.0) {
  msflow model(small_config(8, 8));
  fit_options opt = quick_fit(3);
  opt.seed = seed;
  opt.input_noise = input_noise;
  return model.fit({data.train}, opt).epoch_losses;
}

std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("flowad_test_" + name);
}

}  // namespace

TEST_CASE("msflow counts the seed preset and the seed paper's Table 6", "[msflow]") {
  const model_stats seed = count(msflow_config::seed());
  INFO("seed preset: " << seed.parameters << " parameters, " << seed.macs_per_image << " MACs");
  CHECK(seed.parameters >= 14.0e6);
  CHECK(seed.parameters <= 14.1e6);
  CHECK(seed.macs_per_image >= 8.0e9);
  CHECK(seed.macs_per_image <= 8.2e9);
  // Table 6: parameters for 2, 4, 6 and 8 sub-features.
  const std::pair<index_t, double> table6[] = {{2, 9.42e6}, {4, 14.06e6}, {6, 15.74e6}, {8, 16.43e6}};
  for (const auto& [groups, reported] : table6) {
    msflow_config cfg = msflow_config::seed();
    cfg.groups = groups;
    const double p = count(cfg).parameters;
    INFO("g = " << groups << ": " << p << " parameters, paper " << reported);
    CHECK(std::abs(p - reported) <= 0.01 * reported);
  }
}

TEST_CASE("msflow's compact preset is the seed's topology with 1x1 conditioners of width 256", "[msflow]") {
  const msflow_config cfg = msflow_config::compact({{128, 32, 32}, {256, 16, 16}});
  CHECK(cfg.groups == 4);
  CHECK(cfg.blocks == 8);
  CHECK(cfg.hidden == 256);
  CHECK(cfg.kernels == std::vector<index_t>{1});
  REQUIRE(cfg.scales.size() == 2);
  CHECK(cfg.scales[1] == scale_shape{256, 16, 16});
  // Per position and block, 3 conditioners of two 1x1 convolutions, w -> 256 -> 2w, w = C / 4.
  double macs = 0.0;
  for (const scale_shape& s : cfg.scales) {
    const double w = static_cast<double>(s.channels) / 4.0;
    macs += static_cast<double>(s.height * s.width) * 8 * 3 * (w * 256 + 256 * 2 * w);
  }
  CHECK(count(cfg).macs_per_image == Approx(macs).epsilon(1e-3));
  CHECK(count(cfg).parameters == Approx(1.79e6).epsilon(0.01));  // docs/results.md
}

TEST_CASE("msflow count matches the instantiated model", "[msflow]") {
  for (const block_mixing mixing : {block_mixing::permute, block_mixing::invertible_1x1}) {
    msflow_config cfg = small_config(12, 6);
    cfg.scales.push_back({20, 3, 3});
    cfg.groups = 3;
    cfg.mixing = mixing;
    const msflow model(cfg);
    double values = 0.0;
    for (const parameter* p : model.parameters()) {
      // The LU factors are stored as full C x C matrices of which only the strict triangles learn.
      if (p->name() == "lower" || p->name() == "upper")
        values += static_cast<double>(p->dims()[0] * (p->dims()[0] - 1)) / 2.0;
      else
        values += static_cast<double>(p->size());
    }
    CHECK(values == count(cfg).parameters);
  }
}

TEST_CASE("msflow detects and localises anomalies in generated feature maps", "[msflow]") {
  const feature_dataset data = make_feature_dataset(16, 16, 96, 32, 32, 11);
  msflow model(small_config(16, 16));
  const fit_report report = model.fit({data.train}, quick_fit(30));
  REQUIRE(report.epoch_losses.size() == 30);
  CHECK(report.discarded_steps == 0);
  CHECK(report.epoch_losses.back() < report.epoch_losses.front() - 0.5);

  score_options so;
  so.map_height = 32;
  so.map_width = 32;
  const scores s = model.score({data.test}, so);
  REQUIRE(s.image.size() == 32 + 32);
  CHECK(s.maps.shape() == shape4{64, 1, 32, 32});
  const double image_auroc = auroc(span<const double>(s.image), span<const int>(data.labels));
  // Masks upsampled to the map size by nearest neighbour (each feature cell covers 2 x 2 map pixels).
  tensor masks({64, 1, 32, 32});
  for (index_t n = 0; n < 64; ++n)
    for (index_t y = 0; y < 32; ++y)
      for (index_t x = 0; x < 32; ++x) masks(n, 0, y, x) = data.masks(n, 0, y / 2, x / 2);
  const double pixel = pixel_auroc(s.maps.view(), masks.view());
  INFO("image AUROC " << image_auroc << ", pixel AUROC " << pixel << ", final loss " << report.final_loss);
  CHECK(image_auroc >= 0.98);
  CHECK(pixel >= 0.95);
  WARN("generated feature maps: image AUROC " << image_auroc << ", pixel AUROC " << pixel);

  // The other image-score variants rank the anomalies too.
  for (const score_aggregation how : {score_aggregation::mean, score_aggregation::max}) {
    score_options o;
    o.image_score = how;
    const scores v = model.score({data.test}, o);
    INFO("image score " << to_string(how));
    CHECK(auroc(span<const double>(v.image), span<const int>(data.labels)) >= 0.95);
  }
}

TEST_CASE("msflow negative_log_likelihood maps add each position's own log-determinant", "[msflow]") {
  const feature_dataset data = make_feature_dataset(8, 6, 32, 3, 3, 21);
  msflow_config cfg = small_config(8, 6);
  cfg.kernels = {1};  // position-wise
  cfg.mixing = block_mixing::invertible_1x1;
  msflow model(cfg);
  model.fit({data.train}, quick_fit(3));
  score_options so;
  so.statistic = map_statistic::negative_log_likelihood;
  so.batch_size = 4;
  const scores nll = model.score({data.test}, so);
  const scores energy = model.score({data.test});
  std::vector<tensor> z;
  std::vector<double> logdet;
  model.transform({data.test}, z, logdet);

  // Summed over positions, C times the map is the sample's 0.5·‖z‖² − log|det J|.
  const index_t n = data.test.n(), c = 8, hw = 36;
  double spread = 0.0;
  for (index_t i = 0; i < n; ++i) {
    double sum = 0.0, squares = 0.0;
    for (index_t p = 0; p < hw; ++p) {
      sum += c * static_cast<double>(nll.maps(i, 0, p / 6, p % 6));
      spread = std::max(spread, std::abs(static_cast<double>(nll.maps(i, 0, p / 6, p % 6) - energy.maps(i, 0, p / 6, p % 6)) -
                                         static_cast<double>(nll.maps(i, 0, 0, 0) - energy.maps(i, 0, 0, 0))));
      for (index_t ch = 0; ch < c; ++ch) squares += static_cast<double>(z[0](i, ch, p / 6, p % 6)) * z[0](i, ch, p / 6, p % 6);
    }
    const double expected = 0.5 * squares - logdet[static_cast<std::size_t>(i)];
    INFO("sample " << i);
    CHECK(sum == Approx(expected).epsilon(1e-4).margin(1e-3));
  }
  CHECK(spread > 1e-3);  // the log-determinant differs between positions

  // Each position's value depends on that position alone.
  tensor changed = data.test;
  for (index_t ch = 0; ch < c; ++ch) changed(1, ch, 2, 3) += 2.0f;
  const scores after = model.score({changed}, so);
  for (index_t i = 0; i < n; ++i)
    for (index_t p = 0; p < hw; ++p) {
      const bool moved = i == 1 && p == 2 * 6 + 3;
      if (!moved) CHECK(after.maps(i, 0, p / 6, p % 6) == Approx(nll.maps(i, 0, p / 6, p % 6)).margin(1e-5));
    }
  CHECK(after.maps(1, 0, 2, 3) != Approx(nll.maps(1, 0, 2, 3)).margin(1e-3));

  // Flows that mix positions have no per-position density; negative maps have no product.
  // (checked before any fit).
  const msflow mixing_positions(small_config(8, 6));
  CHECK_THROWS_WITH(mixing_positions.check_score_options(so), Catch::Contains("every kernel 1"));
  CHECK_NOTHROW(model.check_score_options(so));
  so.combine = map_combination::product;
  CHECK_THROWS_WITH(model.score({data.test}, so), Catch::Contains("product"));
}

TEST_CASE("msflow maps are upsampled on the grid score_options::cell_offsets gives", "[msflow]") {
  const feature_dataset data = make_feature_dataset(8, 6, 24, 2, 2, 31);
  msflow model(small_config(8, 6));
  model.fit({data.train}, quick_fit(1));
  const scores native = model.score({data.test});  // 6 x 6, each cell a map pixel
  score_options so;
  so.map_height = so.map_width = 24;
  so.cell_offsets = {-0.375};
  const scores moved = model.score({data.test}, so);
  const tensor expected = upsample_bilinear(native.maps.view(), 24, 24, -0.375);
  for (index_t i = 0; i < expected.numel(); ++i) CHECK(moved.maps.data()[i] == expected.data()[i]);
  so.cell_offsets = {};
  const scores pytorch_grid = model.score({data.test}, so);
  CHECK(pytorch_grid.maps(0, 0, 5, 5) != moved.maps(0, 0, 5, 5));

  // One offset per scale, each within a cell; checked before anything is scored.
  for (const std::vector<double>& bad : std::vector<std::vector<double>>{{0.0, 0.0}, {1.25}, {std::nan("")}}) {
    so.cell_offsets = bad;
    CHECK_THROWS_WITH(model.check_score_options(so), Catch::Contains("cell_offsets"));
    CHECK_THROWS_AS(model.score({data.test}, so), error);
  }
}

TEST_CASE("msflow training is repeatable for a seed", "[msflow]") {
  const feature_dataset data = make_feature_dataset(8, 8, 40, 1, 1, 2);
  const std::vector<double> a = epoch_losses(data, 1), b = epoch_losses(data, 1), c = epoch_losses(data, 2);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("msflow input noise is seeded and spreads the fitted density", "[msflow]") {
  const feature_dataset data = make_feature_dataset(8, 8, 40, 1, 1, 2);
  const std::vector<double> clean = epoch_losses(data, 3), noisy = epoch_losses(data, 3, 0.5),
                            again = epoch_losses(data, 3, 0.5), other_seed = epoch_losses(data, 4, 0.5);
  CHECK(noisy == again);
  CHECK(noisy != other_seed);
  // Noise of half a standard deviation per channel adds entropy the flow has to pay for: the loss on
  // the noisy features stays above the loss on the clean ones in every epoch.
  for (std::size_t e = 0; e < clean.size(); ++e) CHECK(noisy[e] > clean[e]);
}

TEST_CASE("msflow reports progress", "[msflow]") {
  const feature_dataset data = make_feature_dataset(8, 8, 40, 1, 1, 2);
  msflow model(small_config(8, 8));
  fit_options opt = quick_fit(2);
  std::vector<fit_progress> seen;
  opt.on_progress = [&](const fit_progress& p) { seen.push_back(p); };
  model.fit({data.train}, opt);
  REQUIRE(seen.size() == 6);  // 3 steps per epoch (16, 16, 8)
  CHECK(seen.back().step == 6);
  CHECK(seen.back().steps == 6);
  CHECK(seen.back().epoch_end);
  CHECK(seen[2].epoch_end);
  CHECK(!seen[1].epoch_end);
  CHECK(seen.back().eta_seconds == 0.0);
  CHECK(seen.front().images_per_second > 0.0);
  CHECK(std::isfinite(seen.back().loss));
}

TEST_CASE("msflow trains stably on features with a constant channel", "[msflow]") {
  // A ReLU feature channel that never fires on the training set is constant; the input normalisation
  // then scales it by 1/(0 + 1e-6). When that normalisation was trained along with the flow, Adam's
  // first steps on its bias moved the channel by ~lr·10^6 and the loss blew up.
  feature_dataset data = make_feature_dataset(8, 8, 48, 1, 1, 4);
  for (index_t n = 0; n < data.train.n(); ++n)
    for (index_t y = 0; y < data.train.h(); ++y)
      for (index_t x = 0; x < data.train.w(); ++x) data.train(n, 3, y, x) = 0.0f;
  msflow model(small_config(8, 8));
  const fit_report report = model.fit({data.train}, quick_fit(6));
  INFO("epoch losses: " << Catch::Detail::stringify(report.epoch_losses));
  CHECK(report.discarded_steps == 0);
  for (double loss : report.epoch_losses) CHECK(loss <= report.epoch_losses.front() + 0.05);
  CHECK(report.final_loss < report.epoch_losses.front());
}

TEST_CASE("msflow discards non-finite steps and keeps training", "[msflow]") {
  const feature_dataset data = make_feature_dataset(8, 8, 48, 1, 1, 4);
  msflow_config cfg = small_config(8, 8);
  cfg.gain_init = 1.0f;
  cfg.clamp.kind = clamp_kind::none;  // an unclamped scale overflows under a huge learning rate
  msflow model(cfg);
  fit_options opt = quick_fit(6);
  opt.optimizer.learning_rate = 50.0f;
  opt.max_grad_norm = 0.0;
  opt.max_consecutive_failures = 1000;
  const fit_report report = model.fit({data.train}, opt);
  INFO("discarded " << report.discarded_steps << ", rollbacks " << report.rollbacks << ", lr scale " << report.final_lr_scale);
  CHECK(report.discarded_steps > 0);
  CHECK(report.events.size() == static_cast<std::size_t>(report.discarded_steps));
  CHECK(report.final_lr_scale < 1.0);
  CHECK(model.fitted());
}

TEST_CASE("msflow save and load give bit-identical scores", "[msflow]") {
  const feature_dataset data = make_feature_dataset(8, 8, 32, 6, 6, 8);
  for (const block_mixing mixing : {block_mixing::permute, block_mixing::invertible_1x1}) {
    msflow_config cfg = small_config(8, 8);
    cfg.mixing = mixing;
    // The second model also checks that the file keeps a non-default clamp kind and α.
    if (mixing == block_mixing::invertible_1x1) cfg.clamp = {clamp_kind::tanh_legacy, 1.5f};
    cfg.scales.push_back({12, 4, 4});
    msflow model(cfg);
    model.set_metadata("extractor", "resnet18");
    model.set_metadata("threshold.fpr_0.01", "3.25");
    CHECK_THROWS_AS(model.set_metadata("bad key", "x"), error);
    tensor coarse({32, 12, 4, 4}), coarse_test({12, 12, 4, 4});
    detail::rng r(1);
    for (index_t i = 0; i < coarse.numel(); ++i) coarse.data()[i] = static_cast<float>(r.normal());
    for (index_t i = 0; i < coarse_test.numel(); ++i) coarse_test.data()[i] = static_cast<float>(r.normal());
    model.fit({data.train, coarse}, quick_fit(2));
    const scores before = model.score({data.test, coarse_test});

    const auto path = temp_path("msflow_roundtrip.flowad");
    model.save(path);
    const std::unique_ptr<detector> loaded = load_detector(path);
    std::filesystem::remove(path);
    REQUIRE(loaded->fitted());
    CHECK(std::string(loaded->kind()) == "msflow");
    CHECK(loaded->input_shapes() == cfg.scales);
    CHECK(loaded->metadata() == model.metadata());
    const scores after = loaded->score({data.test, coarse_test});
    CHECK(after.image == before.image);
    CHECK(std::memcmp(after.maps.data(), before.maps.data(), before.maps.bytes()) == 0);
  }
}

TEST_CASE("msflow scores the same from four threads at once", "[msflow]") {
  const feature_dataset data = make_feature_dataset(8, 8, 32, 10, 10, 9);
  msflow model(small_config(8, 8));
  model.fit({data.train}, quick_fit(2));
  score_options so;
  so.map_height = so.map_width = 16;
  so.batch_size = 7;
  const scores reference = model.score({data.test}, so);
  std::vector<scores> results(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int repeat = 0; repeat < 3; ++repeat) model.score({data.test}, so, results[static_cast<std::size_t>(t)]);
    });
  for (auto& t : threads) t.join();
  for (const scores& r : results) {
    CHECK(r.image == reference.image);
    CHECK(std::memcmp(r.maps.data(), reference.maps.data(), reference.maps.bytes()) == 0);
  }
}

TEST_CASE("msflow rejects bad input with clear errors", "[msflow]") {
  msflow model(small_config(8, 8));
  const feature_dataset data = make_feature_dataset(8, 8, 20, 2, 2, 1);
  auto expect = [](auto&& call, errc code, const char* text) {
    try {
      call();
      FAIL("expected an error containing '" << text << "'");
    } catch (const error& e) {
      INFO(e.what());
      CHECK(e.code() == code);
      CHECK_THAT(e.what(), Catch::Contains(text));
    }
  };
  expect([&] { model.score({data.test}); }, errc::not_fitted, "before fit");
  expect([&] { model.save(temp_path("never.flowad")); }, errc::not_fitted, "before fit");
  CHECK_FALSE(std::filesystem::exists(temp_path("never.flowad")));
  model.fit({data.train}, quick_fit(1));

  tensor wrong_channels({2, 7, 8, 8}), wrong_size({2, 8, 9, 8}), with_nan({2, 8, 8, 8});
  with_nan.fill(0.0f);
  with_nan(1, 3, 4, 5) = std::numeric_limits<float>::quiet_NaN();
  expect([&] { model.score({wrong_channels}); }, errc::shape_mismatch, "2x7x8x8");
  expect([&] { model.score({wrong_size}); }, errc::shape_mismatch, "2x8x9x8");
  expect([&] { model.score({with_nan}); }, errc::non_finite, "NaN");
  expect([&] { model.score({data.test, data.test}); }, errc::shape_mismatch, "2 scales");
  expect([&] { model.fit({tensor({0, 8, 8, 8})}, quick_fit(1)); }, errc::empty_input, "empty");
  expect([&] { model.fit({data.train}, quick_fit(0)); }, errc::invalid_argument, "epochs");
  fit_options negative_noise = quick_fit(1);
  negative_noise.input_noise = -0.1;
  expect([&] { model.fit({data.train}, negative_noise); }, errc::invalid_argument, "input_noise");
  fit_options nan_noise = quick_fit(1);
  nan_noise.input_noise = std::numeric_limits<double>::quiet_NaN();
  expect([&] { model.fit({data.train}, nan_noise); }, errc::invalid_argument, "input_noise");
  msflow_config bad = small_config(8, 8);
  bad.groups = 1;
  expect([&] { msflow m(bad); }, errc::invalid_argument, "groups");
  expect([&] { load_detector(temp_path("does_not_exist.flowad")); }, errc::io_error, "does_not_exist");
}

TEST_CASE("msflow positions: settings, flows, counts and errors", "[msflow][positions]") {
  CHECK(to_string(parse_positions("free,paired:1,relative")) == "free,paired:1,relative:1");
  CHECK(to_string(parse_positions("relative:0,paired:63")) == "relative:0,paired:63");
  for (const char* bad : {"", "free:1", "paired:-1", "paired:64", "paired:1:2", "paired:x", "fixed", "free,,free"}) {
    INFO("'" << bad << "'");
    CHECK_THROWS_AS(parse_positions(bad), error);
  }

  msflow_config cfg = small_config(8, 6);
  cfg.scales.push_back({12, 3, 3});
  cfg.scales.push_back({16, 2, 2});
  cfg.positions = {{position_mode::paired, 1}, {position_mode::relative, 0}, {position_mode::paired, 2}};
  // The scales' flows first, then the paired scales' second flows, in scale order.
  const std::vector<msflow_stream> streams = msflow_streams(cfg);
  REQUIRE(streams.size() == 5);
  const std::vector<std::pair<std::size_t, bool>> expected{{0, false}, {1, true}, {2, false}, {0, true}, {2, true}};
  for (std::size_t k = 0; k < streams.size(); ++k) {
    CHECK(streams[k].scale == expected[k].first);
    CHECK(streams[k].position_relative == expected[k].second);
  }
  // Counted as instantiated, position statistics included.
  const msflow model(cfg);
  double values = 0.0;
  for (const parameter* p : model.parameters()) values += static_cast<double>(p->size());
  CHECK(values == count(cfg).parameters);
  // Against the free model: each relative flow's mean and scale per element, and the paired scales'
  // second flows.
  msflow_config free_cfg = cfg, scale0 = cfg, scale2 = cfg;
  free_cfg.positions.clear();
  scale0.positions.clear();
  scale0.scales = {cfg.scales[0]};
  scale2.positions.clear();
  scale2.scales = {cfg.scales[2]};
  const double statistics = 2.0 * (8 * 6 * 6 + 12 * 3 * 3 + 16 * 2 * 2);
  CHECK(count(cfg).parameters == count(free_cfg).parameters + statistics + count(scale0).parameters + count(scale2).parameters);
  CHECK(count(cfg).macs_per_image == count(free_cfg).macs_per_image + count(scale0).macs_per_image + count(scale2).macs_per_image);

  msflow_config wrong = cfg;
  wrong.positions.pop_back();
  CHECK_THROWS_WITH(wrong.validate(), Catch::Contains("positions has 2 entries for 3 scales"));
  wrong = cfg;
  wrong.positions[0].pool_radius = 64;
  CHECK_THROWS_WITH(wrong.validate(), Catch::Contains("pool radius"));
}

TEST_CASE("msflow with relative positions finds normal features in the wrong place", "[msflow][positions]") {
  // Training maps whose features depend on the position; test maps whose left and right halves are
  // swapped: every feature vector is a normal one, only its place is wrong.
  const feature_dataset data = make_feature_dataset(8, 8, 96, 16, 1, 21, 0.3f);
  tensor swapped({16, 8, 8, 8});
  for (index_t n = 0; n < 16; ++n)
    for (index_t c = 0; c < 8; ++c)
      for (index_t h = 0; h < 8; ++h)
        for (index_t w = 0; w < 8; ++w) swapped(n, c, h, w) = data.test(n, c, h, (w + 4) % 8);
  tensor test({32, 8, 8, 8});
  for (index_t n = 0; n < 16; ++n) {
    copy(data.test.view().batch(n, 1), test.view().batch(n, 1));
    copy(swapped.view().batch(n, 1), test.view().batch(16 + n, 1));
  }
  std::vector<int> labels(32, 0);
  std::fill(labels.begin() + 16, labels.end(), 1);

  auto image_auroc = [&](const std::vector<scale_position>& positions) {
    msflow_config cfg = small_config(8, 8);
    cfg.kernels = {1};
    cfg.positions = positions;
    msflow model(cfg);
    model.fit({data.train}, quick_fit(12));
    const scores s = model.score({test});
    return auroc(span<const double>(s.image), span<const int>(labels));
  };
  const double free_auroc = image_auroc({}), relative_auroc = image_auroc({{position_mode::relative, 0}}),
               paired_auroc = image_auroc({{position_mode::paired, 0}});
  INFO("swapped halves: image AUROC free " << free_auroc << ", relative " << relative_auroc << ", paired " << paired_auroc);
  // With 1x1 conditioners the free flow's map of a swapped image is the normal map permuted: the same
  // top 3%, so the same image score as its original.
  CHECK(free_auroc == 0.5);
  CHECK(relative_auroc >= 0.95);
  CHECK(paired_auroc >= 0.95);
}

TEST_CASE("msflow with positions saves and loads, and files without positions load as free", "[msflow][positions][model_file]") {
  const feature_dataset data = make_feature_dataset(8, 8, 32, 6, 6, 8);
  tensor coarse({32, 12, 4, 4}), coarse_test({12, 12, 4, 4});
  detail::rng r(2);
  for (index_t i = 0; i < coarse.numel(); ++i) coarse.data()[i] = static_cast<float>(r.normal());
  for (index_t i = 0; i < coarse_test.numel(); ++i) coarse_test.data()[i] = static_cast<float>(r.normal());
  msflow_config cfg = small_config(8, 8);
  cfg.scales.push_back({12, 4, 4});
  cfg.positions = {{position_mode::relative, 2}, {position_mode::paired, 1}};
  msflow model(cfg);
  model.fit({data.train, coarse}, quick_fit(2));
  const scores before = model.score({data.test, coarse_test});
  std::vector<tensor> z;
  std::vector<double> logdet;
  model.transform({data.test, coarse_test}, z, logdet);
  CHECK(z.size() == 3);  // scale 0, scale 1, scale 1's relative flow

  const auto path = temp_path("msflow_positions.flowad");
  model.save(path);
  const std::unique_ptr<msflow> loaded = msflow::load(path);
  CHECK(loaded->config().positions == cfg.positions);
  const scores after = loaded->score({data.test, coarse_test});
  CHECK(after.image == before.image);
  CHECK(std::memcmp(after.maps.data(), before.maps.data(), before.maps.bytes()) == 0);

  // A file of a free model written before positions existed has no "positions" key.
  msflow_config free_cfg = small_config(8, 8);
  msflow free_model(free_cfg);
  free_model.fit({data.train}, quick_fit(1));
  free_model.save(path);
  model_file_contents contents = read_model_file(path);
  const auto key = std::find_if(contents.config.begin(), contents.config.end(), [](const auto& kv) { return kv.first == "positions"; });
  REQUIRE(key != contents.config.end());
  contents.config.erase(key);
  write_model_file(path, contents);
  const std::unique_ptr<msflow> old_file = msflow::load(path);
  CHECK(old_file->config().positions.empty());
  CHECK(old_file->score({data.test}).image == free_model.score({data.test}).image);

  // A damaged positions entry is a bad file, not a crash.
  contents.config.emplace_back("positions", "paired:x");
  write_model_file(path, contents);
  try {
    msflow::load(path);
    FAIL("a bad positions entry loaded");
  } catch (const error& e) {
    CHECK(e.code() == errc::bad_file);
    CHECK_THAT(e.what(), Catch::Contains("positions"));
  }
  std::filesystem::remove(path);
}
