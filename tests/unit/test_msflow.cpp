#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <thread>

#include "flowad/detectors/msflow.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/metrics/roc.hpp"
#include "flowad/scoring/anomaly_map.hpp"
#include "support/concurrent_scoring.hpp"
#include "support/feature_data.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

// A small flow with a quick training recipe.
msflow_config small_config(index_t channels, index_t size, int epochs = 3) {
  msflow_config cfg;
  cfg.scales = {{channels, size, size}};
  cfg.groups = 2;
  cfg.hidden = 32;
  cfg.blocks = 4;
  cfg.kernels = {3, 1};
  cfg.seed = 5;
  cfg.training.epochs = epochs;
  cfg.training.batch_size = 16;
  cfg.training.optimizer.learning_rate = 2e-3f;
  cfg.training.schedule.kind = lr_schedule::cosine;
  cfg.training.schedule.warmup_fraction = epochs >= 4 ? 2.0 / epochs : 0.0;
  cfg.training.seed = 3;
  return cfg;
}

// The loss curve of a 3-epoch fit of small_config(8, 8) on data.train.
std::vector<double> epoch_losses(const feature_dataset& data, std::uint64_t seed) {
  msflow_config cfg = small_config(8, 8);
  cfg.training.seed = seed;
  msflow model(cfg);
  return model.fit({data.train}).epoch_losses;
}

// In a folder of this process's own: ctest runs test cases in parallel processes.
std::filesystem::path temp_path(const std::string& name) {
  static const temp_folder folder;
  return folder / name;
}

}  // namespace

TEST_CASE("msflow counts the paper's preset and the seed paper's Table 6", "[msflow]") {
  const model_stats seed = count(msflow_config::paper());
  INFO("seed preset: " << seed.parameters << " parameters, " << seed.macs_per_image << " MACs");
  CHECK(seed.parameters >= 14.0e6);
  CHECK(seed.parameters <= 14.1e6);
  CHECK(seed.macs_per_image >= 8.0e9);
  CHECK(seed.macs_per_image <= 8.2e9);
  // Table 6: parameters for 2, 4, 6 and 8 sub-features.
  const std::pair<index_t, double> table6[] = {{2, 9.42e6}, {4, 14.06e6}, {6, 15.74e6}, {8, 16.43e6}};
  for (const auto& [groups, reported] : table6) {
    msflow_config cfg = msflow_config::paper();
    cfg.groups = groups;
    const double p = count(cfg).parameters;
    INFO("g = " << groups << ": " << p << " parameters, paper " << reported);
    CHECK(std::abs(p - reported) <= 0.01 * reported);
  }
}

TEST_CASE("msflow's recommended configuration is the paper's topology with 1x1 conditioners of width 256", "[msflow]") {
  const msflow_config cfg = msflow_config::recommended({{128, 32, 32}, {256, 16, 16}});
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
  // The training recipe the defaults were validated with.
  CHECK(cfg.training.epochs == 16);
  CHECK(cfg.training.optimizer.learning_rate == 1e-3f);
  CHECK(cfg.training.schedule.kind == lr_schedule::cosine);
  CHECK(cfg.training.schedule.warmup_fraction * cfg.training.epochs == 2.0);
  // The registry gives the same, as text.
  CHECK(recommended_config("msflow", cfg.scales) == to_detector_config(cfg));
  // Every scale free, unless the extractor recommends per-position statistics and the strides are
  // known: then relative, pooled over ±16 px.
  CHECK(cfg.positions == std::vector<scale_position>(2));
  feature_geometry g;
  g.shapes = cfg.scales;
  g.strides = {8, 16};
  CHECK(msflow_config::recommended(g).positions == cfg.positions);
  g.position_statistics = true;
  CHECK(to_config_text(msflow_config::recommended(g).positions) == "relative:2,relative:1");
  g.strides = {4, 32};
  CHECK(to_config_text(msflow_config::recommended(g).positions) == "relative:4,relative:1");
  g.strides = {};
  CHECK(msflow_config::recommended(g).positions == cfg.positions);
  g.strides = {8};
  CHECK_THROWS_WITH(recommended_config("msflow", g), Catch::Contains("1 strides for 2 scales"));
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
  msflow model(small_config(16, 16, 30));
  const fit_report report = model.fit({data.train});
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
}

TEST_CASE("msflow learns the channels' joint distribution, which an untrained flow cannot see", "[msflow]") {
  // Anomalous patches have exactly the normal per-channel spread: only the correlations differ.
  const feature_dataset data = make_correlated_feature_dataset(16, 12, 96, 24, 24, 13);
  const auto image_auroc = [&](float learning_rate, score_aggregation how) {
    msflow_config cfg = small_config(16, 12, 30);
    cfg.kernels = {1};
    cfg.image_score = how;
    cfg.training.optimizer.learning_rate = learning_rate;
    msflow model(cfg);
    model.fit({data.train});
    const scores s = model.score({data.test});
    return auroc(span<const double>(s.image), span<const int>(data.labels));
  };
  for (const score_aggregation how : {score_aggregation::top_k_mean, score_aggregation::max, score_aggregation::mean}) {
    const double trained = image_auroc(2e-3f, how), untrained = image_auroc(0.0f, how);
    INFO("image score " << to_string(how) << ": trained " << trained << ", untrained (input normalisation only) " << untrained);
    CHECK(trained >= 0.95);
    CHECK(untrained <= 0.75);
  }
}

TEST_CASE("msflow maps are upsampled on the grid score_options::cell_offsets gives", "[msflow]") {
  const feature_dataset data = make_feature_dataset(8, 6, 24, 2, 2, 31);
  msflow model(small_config(8, 6, 1));
  model.fit({data.train});
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

TEST_CASE("msflow reports progress", "[msflow]") {
  const feature_dataset data = make_feature_dataset(8, 8, 40, 1, 1, 2);
  msflow model(small_config(8, 8, 2));
  fit_options opt;
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
  CHECK(seen.front().samples_per_second > 0.0);
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
  msflow model(small_config(8, 8, 6));
  const fit_report report = model.fit({data.train});
  INFO("epoch losses: " << Catch::Detail::stringify(report.epoch_losses));
  CHECK(report.discarded_steps == 0);
  for (double loss : report.epoch_losses) CHECK(loss <= report.epoch_losses.front() + 0.05);
  CHECK(report.final_loss < report.epoch_losses.front());
}

TEST_CASE("msflow discards non-finite steps and keeps training", "[msflow]") {
  const feature_dataset data = make_feature_dataset(8, 8, 48, 1, 1, 4);
  msflow_config cfg = small_config(8, 8, 6);
  cfg.gain_init = 1.0f;
  cfg.clamp.kind = clamp_kind::none;  // an unclamped scale overflows under a huge learning rate
  cfg.training.optimizer.learning_rate = 50.0f;
  cfg.training.max_grad_norm = 0.0;
  msflow model(cfg);
  fit_options opt;
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
    msflow_config cfg = small_config(8, 8, 2);
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
    model.fit({data.train, coarse});
    const scores before = model.score({data.test, coarse_test});

    const auto path = temp_path("msflow_roundtrip.flowad");
    model.save(path);
    const std::unique_ptr<detector> loaded = load_detector(path);
    std::filesystem::remove(path);
    REQUIRE(loaded->fitted());
    CHECK(std::string(loaded->kind()) == "msflow");
    CHECK(loaded->input_shapes() == cfg.scales);
    CHECK(loaded->metadata() == model.metadata());
    CHECK(loaded->config() == model.config());
    const scores after = loaded->score({data.test, coarse_test});
    CHECK(after.image == before.image);
    CHECK(std::memcmp(after.maps.data(), before.maps.data(), before.maps.bytes()) == 0);
    // Gradients are allocated by training only: the fitted model has them, the loaded one that has
    // only scored holds its values alone.
    const auto has_gradient = [](const parameter* p) { return p->has_gradient(); };
    const std::vector<const parameter*> trained = model.parameters();
    CHECK(std::any_of(trained.begin(), trained.end(), has_gradient));
    const auto* scorer = dynamic_cast<const msflow*>(loaded.get());
    REQUIRE(scorer != nullptr);
    const std::vector<const parameter*> scoring = scorer->parameters();
    CHECK(std::none_of(scoring.begin(), scoring.end(), has_gradient));
  }
}

TEST_CASE("msflow scores the same from four threads at once", "[msflow]") {
  const feature_dataset data = make_feature_dataset(8, 8, 32, 10, 10, 9);
  msflow model(small_config(8, 8, 2));
  model.fit({data.train});
  score_options so;
  so.map_height = so.map_width = 16;
  so.batch_size = 7;
  check_concurrent_scores_match_serial(model, {data.test}, so);
}

TEST_CASE("msflow rejects bad input with clear errors", "[msflow]") {
  msflow model(small_config(8, 8, 1));
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
  model.fit({data.train});

  tensor wrong_channels({2, 7, 8, 8}), wrong_size({2, 8, 9, 8}), with_nan({2, 8, 8, 8});
  with_nan.fill(0.0f);
  with_nan(1, 3, 4, 5) = std::numeric_limits<float>::quiet_NaN();
  expect([&] { model.score({wrong_channels}); }, errc::shape_mismatch, "2x7x8x8");
  expect([&] { model.score({wrong_size}); }, errc::shape_mismatch, "2x8x9x8");
  expect([&] { model.score({with_nan}); }, errc::non_finite, "NaN");
  expect([&] { model.score({data.test, data.test}); }, errc::shape_mismatch, "2 scales");
  expect([&] { model.fit({tensor({0, 8, 8, 8})}); }, errc::empty_input, "empty");
  msflow_config no_epochs = small_config(8, 8, 1);
  no_epochs.training.epochs = 0;
  expect([&] { msflow m(no_epochs); }, errc::invalid_argument, "train.epochs");
  msflow_config bad = small_config(8, 8);
  bad.groups = 1;
  expect([&] { msflow m(bad); }, errc::invalid_argument, "groups");
  bad = small_config(8, 8);
  bad.top_k_fraction = 0.0;
  expect([&] { msflow m(bad); }, errc::invalid_argument, "top_k_fraction");
  expect([&] { load_detector(temp_path("does_not_exist.flowad")); }, errc::io_error, "does_not_exist");
}

TEST_CASE("msflow positions: settings, flows, counts and errors", "[msflow][positions]") {
  const auto parse = [](const std::string& text) {
    std::vector<scale_position> p;
    parse_config_text(errc::invalid_argument, "positions", text, p);
    return p;
  };
  CHECK(to_config_text(parse("free,paired:1,relative")) == "free,paired:1,relative:1");
  CHECK(to_config_text(parse("relative:0,paired:63")) == "relative:0,paired:63");
  CHECK(parse("").empty());
  for (const char* bad : {"free:1", "paired:-1", "paired:64", "paired:1:2", "paired:x", "fixed", "free,,free"}) {
    INFO("'" << bad << "'");
    CHECK_THROWS_AS(parse(bad), error);
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
    msflow_config cfg = small_config(8, 8, 12);
    cfg.kernels = {1};
    cfg.positions = positions;
    msflow model(cfg);
    model.fit({data.train});
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

TEST_CASE("msflow with positions saves and loads them", "[msflow][positions][model_file]") {
  const feature_dataset data = make_feature_dataset(8, 8, 32, 6, 6, 8);
  tensor coarse({32, 12, 4, 4}), coarse_test({12, 12, 4, 4});
  detail::rng r(2);
  for (index_t i = 0; i < coarse.numel(); ++i) coarse.data()[i] = static_cast<float>(r.normal());
  for (index_t i = 0; i < coarse_test.numel(); ++i) coarse_test.data()[i] = static_cast<float>(r.normal());
  msflow_config cfg = small_config(8, 8, 2);
  cfg.scales.push_back({12, 4, 4});
  cfg.positions = {{position_mode::relative, 2}, {position_mode::paired, 1}};
  msflow model(cfg);
  model.fit({data.train, coarse});
  const scores before = model.score({data.test, coarse_test});
  std::vector<tensor> z;
  std::vector<double> logdet;
  model.transform({data.test, coarse_test}, z, logdet);
  CHECK(z.size() == 3);  // scale 0, scale 1, scale 1's relative flow

  const auto path = temp_path("msflow_positions.flowad");
  model.save(path);
  const std::unique_ptr<detector> loaded = load_detector(path);
  CHECK(dynamic_cast<const msflow&>(*loaded).settings().positions == cfg.positions);
  const scores after = loaded->score({data.test, coarse_test});
  CHECK(after.image == before.image);
  CHECK(std::memcmp(after.maps.data(), before.maps.data(), before.maps.bytes()) == 0);

  // A file without the setting, or with a damaged one, is a bad file, not a crash or a guess.
  const model_file_contents contents = read_model_file(path);
  for (const char* value : {"paired:x", static_cast<const char*>(nullptr)}) {
    model_file_contents damaged = contents;
    detector_config config;
    for (const auto& [key, v] : contents.config.entries())
      if (key != "positions") config.set(key, v);
      else if (value) config.set(key, value);
    damaged.config = config;
    write_model_file(path, damaged);
    try {
      load_detector(path);
      FAIL("a model file with positions " << (value ? value : "missing") << " loaded");
    } catch (const error& e) {
      CHECK(e.code() == errc::bad_file);
      CHECK_THAT(e.what(), Catch::Contains("positions"));
    }
  }
  std::filesystem::remove(path);
}
