// CFlow-AD (detectors/cflow.hpp): the recipe and the paper's size, the positional encoding, the map's
// definition, learning that an untrained model does not show, model files, threads and errors.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "flowad/detail/random.hpp"
#include "flowad/detectors/cflow.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/metrics/roc.hpp"
#include "support/concurrent_scoring.hpp"
#include "support/feature_data.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

cflow_config small_config(std::vector<scale_shape> scales, int epochs) {
  cflow_config cfg = cflow_config::recommended(std::move(scales));
  cfg.blocks = 4;
  cfg.condition_channels = 8;
  cfg.seed = 3;
  cfg.training.epochs = epochs;
  cfg.training.batch_size = 64;
  return cfg;
}

tensor random_features(index_t images, const scale_shape& s, std::uint64_t seed = 1) {
  tensor t({images, s.channels, s.height, s.width}, layout::nhwc);
  detail::rng r(seed);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(r.normal());
  return t;
}

}  // namespace

TEST_CASE("cflow's recommended configuration is the official recipe", "[cflow]") {
  const cflow_config cfg = cflow_config::recommended({{64, 64, 64}, {128, 32, 32}, {256, 16, 16}});
  CHECK(cfg.blocks == 8);
  CHECK(cfg.condition_channels == 128);
  CHECK(cfg.hidden_ratio == 2.0);
  CHECK(cfg.clamp.kind == clamp_kind::tanh_legacy);
  CHECK(cfg.clamp.alpha == 1.9f);
  CHECK(cfg.image_score == score_aggregation::max);
  CHECK(cfg.training.batch_size == 256);
  CHECK(cfg.training.optimizer.learning_rate == 2e-4f);
  CHECK(cfg.training.schedule.kind == lr_schedule::cosine);
  CHECK(cfg.training.schedule.warmup_fraction == Approx(0.08));
  CHECK(cfg.training.schedule.final_factor == Approx(1e-3));
  CHECK(cfg.training.max_grad_norm == 0.0);
  CHECK(detector_kind("cflow").recipe_levels == 3);
}

TEST_CASE("cflow's paper configuration has the paper's 81.6 M parameters and 13.8 GMAC", "[cflow]") {
  const detector_config config = paper_config("cflow");
  const std::unique_ptr<detector> model = make_detector("cflow", config);
  const model_stats s = model->stats();
  // Counted by hand: per level and block Linear(C1 + P → 2(C1 + P)) and Linear(→ 2·C2) with biases,
  // Ψ and an offset per channel; MACs: the two Linears at every position. Plus one reference per level.
  double parameters = 3.0, macs = 0.0;
  for (const scale_shape& l : cflow_config::paper().scales) {
    const double c = static_cast<double>(l.channels), in = c / 2.0 + 128.0, hidden = 2.0 * in;
    parameters += 8.0 * (in * hidden + hidden + hidden * c + c + 2.0 * c);
    macs += 8.0 * static_cast<double>(l.height * l.width) * (in * hidden + hidden * c);
  }
  CHECK(s.parameters == parameters);
  CHECK(s.macs_per_image == Approx(macs).epsilon(1e-9));
  CHECK(s.parameters == Approx(81.6e6).epsilon(0.01));
  CHECK(s.macs_per_image == Approx(13.8e9).epsilon(0.01));
}

TEST_CASE("cflow's positional encoding is the official positionalencoding2d", "[cflow]") {
  const index_t P = 16, H = 5, W = 7;
  tensor pe({1, P, H, W}, layout::nhwc);
  positional_encoding_2d(pe.view());
  for (index_t k = 0; k < P / 4; ++k) {
    const double div = std::exp(-2.0 * static_cast<double>(k) * std::log(1e4) / (P / 2));
    for (index_t y = 0; y < H; ++y)
      for (index_t x = 0; x < W; ++x) {
        CHECK(pe.view()(0, 2 * k, y, x) == Approx(std::sin(x * div)).margin(1e-5));
        CHECK(pe.view()(0, 2 * k + 1, y, x) == Approx(std::cos(x * div)).margin(1e-5));
        CHECK(pe.view()(0, P / 2 + 2 * k, y, x) == Approx(std::sin(y * div)).margin(1e-5));
        CHECK(pe.view()(0, P / 2 + 2 * k + 1, y, x) == Approx(std::cos(y * div)).margin(1e-5));
      }
  }
  tensor bad({1, 6, 2, 2});
  CHECK_THROWS_WITH(positional_encoding_2d(bad.view()), Catch::Contains("multiple of 4"));
}

TEST_CASE("cflow's map is levels minus the summed relative likelihoods, 0 at the likeliest training fibre", "[cflow]") {
  const feature_dataset data = make_feature_dataset(8, 6, 12, 3, 3, 21);
  cflow model(small_config({{8, 6, 6}}, 2));
  model.fit({data.train});
  REQUIRE(model.references().size() == 1);
  // One level at its own size: map = 1 − exp(log_prob − r) with r the largest training log_prob, so
  // the training maps lie in [0, 1) and reach 0 at the fibre that set r.
  const scores s = model.score({data.train});
  const float lowest = *std::min_element(s.maps.data(), s.maps.data() + s.maps.numel());
  const float highest = *std::max_element(s.maps.data(), s.maps.data() + s.maps.numel());
  CHECK(lowest == Approx(0.0).margin(1e-6));
  CHECK(highest < 1.0f);
  for (index_t i = 0; i < s.maps.n(); ++i)
    CHECK(s.image[static_cast<std::size_t>(i)] == *std::max_element(s.maps.data() + i * 36, s.maps.data() + (i + 1) * 36));
}

TEST_CASE("cflow learns the channels' joint distribution, which an untrained model cannot see", "[cflow]") {
  const feature_dataset data = make_correlated_feature_dataset(16, 12, 64, 24, 24, 13);
  const auto image_auroc = [&](float learning_rate) {
    cflow_config cfg = small_config({{16, 12, 12}}, 6);
    cfg.training.optimizer.learning_rate = learning_rate;
    cflow model(cfg);
    const fit_report report = model.fit({data.train});
    CHECK(report.discarded_steps == 0);
    if (learning_rate > 0.0f) CHECK(report.epoch_losses.back() < report.epoch_losses.front());
    const scores s = model.score({data.test});
    return auroc(span<const double>(s.image), span<const int>(data.labels));
  };
  const double trained = image_auroc(2e-3f), untrained = image_auroc(0.0f);
  INFO("trained " << trained << ", untrained " << untrained);
  CHECK(trained >= 0.95);
  CHECK(untrained <= 0.75);
}

TEST_CASE("cflow reports progress over every level's steps", "[cflow]") {
  const feature_dataset a = make_feature_dataset(4, 4, 6, 1, 1, 5);
  const feature_dataset b = make_feature_dataset(6, 2, 6, 1, 1, 6);
  cflow model(small_config({{4, 4, 4}, {6, 2, 2}}, 2));
  fit_options options;
  long last = 0, total = 0;
  options.on_progress = [&](const fit_progress& p) {
    CHECK(p.step == last + 1);
    last = p.step;
    total = p.steps;
  };
  const fit_report report = model.fit({a.train, b.train}, options);
  // 6·16 fibres in batches of 64 (2 steps) and 6·4 (1 step), 2 epochs each.
  CHECK(total == 6);
  CHECK(last == 6);
  CHECK(report.steps == 6);
  CHECK(report.epoch_losses.size() == 2);
}

TEST_CASE("cflow saves and loads to bit-identical scores", "[cflow][model_file]") {
  temp_folder dir;
  // Non-square levels, as 336x256 images give.
  const tensor train_a = random_features(10, {8, 6, 10}), train_b = random_features(10, {6, 3, 5});
  const tensor test_a = random_features(4, {8, 6, 10}, 2), test_b = random_features(4, {6, 3, 5}, 3);
  cflow model(small_config({{8, 6, 10}, {6, 3, 5}}, 1));
  model.set_metadata("note", "kept");
  model.fit({train_a.cview(), train_b.cview()});
  score_options so;
  so.map_height = 24;
  so.map_width = 40;
  so.cell_offsets = {0.1, -0.2};
  const feature_maps test{test_a.cview(), test_b.cview()};
  const scores before = model.score(test, so);
  model.save(dir / "cflow.flowad");
  const std::unique_ptr<detector> loaded = load_detector(dir / "cflow.flowad");
  CHECK(std::string(loaded->kind()) == "cflow");
  CHECK(loaded->config() == model.config());
  CHECK(loaded->metadata() == model.metadata());
  const scores after = loaded->score(test, so);
  CHECK(after.image == before.image);
  CHECK(std::memcmp(after.maps.data(), before.maps.data(), before.maps.bytes()) == 0);

  model_file_contents m = read_model_file(dir / "cflow.flowad");
  for (stored_tensor& t : m.tensors)
    if (t.name == "scale1.block2.permutation") std::swap(t.values[0], t.values[1]);
  write_model_file(dir / "damaged.flowad", m);
  CHECK_THROWS_WITH(load_detector(dir / "damaged.flowad"), Catch::Contains("permutation its seed draws"));
  m = read_model_file(dir / "cflow.flowad");
  for (stored_tensor& t : m.tensors)
    if (t.name == "references") t.values[1] = std::numeric_limits<float>::infinity();
  write_model_file(dir / "inf.flowad", m);
  CHECK_THROWS_WITH(load_detector(dir / "inf.flowad"), Catch::Contains("references"));
  m.tensors.pop_back();
  write_model_file(dir / "short.flowad", m);
  try {
    load_detector(dir / "short.flowad");
    FAIL("a model file without its last tensor loaded");
  } catch (const error& e) {
    CHECK(e.code() == errc::bad_file);
  }
}

TEST_CASE("cflow scores the same from several threads at once", "[cflow]") {
  const feature_dataset data = make_feature_dataset(8, 6, 8, 6, 6, 7);
  cflow model(small_config({{8, 6, 6}}, 1));
  model.fit({data.train});
  check_concurrent_scores_match_serial(model, {data.test});
}

TEST_CASE("cflow rejects bad input with clear errors", "[cflow]") {
  const feature_dataset data = make_feature_dataset(8, 8, 8, 2, 2, 1);
  cflow model(small_config({{8, 8, 8}}, 1));
  CHECK_THROWS_WITH(model.score({data.test}), Catch::Contains("before fit"));
  CHECK_THROWS_WITH(model.save(std::filesystem::temp_directory_path() / "flowad_never.flowad"), Catch::Contains("before fit"));
  model.fit({data.train});
  tensor wrong({2, 8, 8, 9});
  CHECK_THROWS_WITH(model.score({wrong.cview()}), Catch::Contains("2x8x8x9"));
  tensor nan({2, 8, 8, 8});
  nan.data()[5] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(model.score({nan.cview()}), error);
  cflow_config bad = small_config({{8, 8, 8}}, 1);
  bad.blocks = 0;
  CHECK_THROWS_WITH(cflow{bad}, Catch::Contains("blocks"));
  bad = small_config({{8, 8, 8}}, 1);
  bad.condition_channels = 6;
  CHECK_THROWS_WITH(cflow{bad}, Catch::Contains("condition_channels"));
  bad = small_config({{8, 8, 8}}, 1);
  bad.hidden_ratio = -1.0;
  CHECK_THROWS_WITH(cflow{bad}, Catch::Contains("hidden_ratio"));
  bad.hidden_ratio = 1e-3;
  CHECK_THROWS_WITH(cflow{bad}, Catch::Contains("hidden_ratio gives a subnet of no channels"));
  bad = small_config({{1, 8, 8}}, 1);
  CHECK_THROWS_WITH(cflow{bad}, Catch::Contains("at least 2 channels"));
}

// Not run by default: the fit-time estimate on generated features of ResNet18's shapes at 256x256
// (docs/api.md): steps on each level, timed, scaled to 209 images.
TEST_CASE("cflow fit time on ResNet18 shapes", "[.][cflow_timing]") {
  const index_t images = 4;
  double seconds_per_epoch_209 = 0.0;
  for (const scale_shape& s : {scale_shape{64, 64, 64}, scale_shape{128, 32, 32}, scale_shape{256, 16, 16}}) {
    tensor features = random_features(images, s);
    cflow_config cfg = cflow_config::recommended({s});
    cfg.training.epochs = 1;
    cflow model(cfg);
    const auto started = std::chrono::steady_clock::now();
    const fit_report report = model.fit({features.cview()});
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const double fibres = static_cast<double>(images * s.height * s.width);
    WARN(s.channels << "x" << s.height << "x" << s.width << ": " << report.steps << " steps, training "
                    << report.seconds << " s, fit " << seconds << " s, " << fibres / report.seconds << " fibres/s");
    seconds_per_epoch_209 += seconds * 209.0 / static_cast<double>(images);
  }
  WARN("estimated seconds per epoch on 209 images: " << seconds_per_epoch_209);
}
