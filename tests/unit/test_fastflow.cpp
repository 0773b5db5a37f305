// FastFlow (detectors/fastflow.hpp): the recipe's structure and size, learning that an untrained model
// does not show, FastFlow's maps and scores, model files, and errors.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <thread>

#include "flowad/detectors/fastflow.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/metrics/roc.hpp"
#include "support/concurrent_scoring.hpp"
#include "support/feature_data.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

fastflow_config small_config(index_t channels, index_t size, int epochs) {
  fastflow_config cfg = fastflow_config::recommended({{channels, size, size}});
  cfg.blocks = 4;
  cfg.seed = 3;
  cfg.training.epochs = epochs;
  cfg.training.batch_size = 16;
  return cfg;
}

}  // namespace

TEST_CASE("fastflow's recommended configuration is the ResNet18 recipe", "[fastflow]") {
  const fastflow_config cfg = fastflow_config::recommended({{64, 64, 64}, {128, 32, 32}, {256, 16, 16}});
  CHECK(cfg.blocks == 8);
  CHECK(cfg.hidden_ratio == 1.0);
  CHECK(cfg.conv3x3_only);
  CHECK(cfg.clamp.kind == clamp_kind::tanh_legacy);
  CHECK(cfg.clamp.alpha == 2.0f);
  CHECK(cfg.layer_norm);
  CHECK(cfg.image_score == score_aggregation::max);
  CHECK(cfg.training.batch_size == 32);
  CHECK(cfg.training.optimizer.learning_rate == 1e-3f);
  CHECK(cfg.training.optimizer.weight_decay == 1e-5f);
  CHECK(cfg.training.schedule.kind == lr_schedule::constant);
  CHECK(cfg.training.max_grad_norm == 0.0);
  CHECK(detector_kind("fastflow").recipe_levels == 3);
  // Size, counted by hand: per scale 2·C·H·W LayerNorm values; per block a 3x3 subnet C/2 -> C/2 -> C
  // with biases, and Ψ and an offset per channel.
  const fastflow model(cfg);
  double parameters = 0.0, macs = 0.0;
  for (const scale_shape& s : cfg.scales) {
    const double c = static_cast<double>(s.channels), half = c / 2.0, pixels = static_cast<double>(s.height * s.width);
    parameters += 2.0 * c * pixels;
    const double weights = half * half * 9.0 + half * c * 9.0;
    parameters += 8.0 * (weights + half + c + 2.0 * c);
    macs += 8.0 * pixels * weights;
  }
  CHECK(model.stats().parameters == parameters);
  CHECK(model.stats().macs_per_image == Approx(macs).epsilon(1e-9));
  CHECK(parameters == Approx(5.57e6).epsilon(0.005));
}

TEST_CASE("fastflow learns the channels' joint distribution, which an untrained model cannot see", "[fastflow]") {
  const feature_dataset data = make_correlated_feature_dataset(16, 12, 96, 24, 24, 13);
  const auto image_auroc = [&](float learning_rate) {
    fastflow_config cfg = small_config(16, 12, 30);
    cfg.training.optimizer.learning_rate = learning_rate;
    fastflow model(cfg);
    const fit_report report = model.fit({data.train});
    CHECK(report.discarded_steps == 0);
    const scores s = model.score({data.test});
    // FastFlow's map is the negated relative likelihood: in [−1, 0), the image score its maximum.
    for (index_t i = 0; i < s.maps.numel(); ++i) {
      CHECK(s.maps.data()[i] >= -1.0f);
      CHECK(s.maps.data()[i] <= 0.0f);
    }
    CHECK(s.image[0] == *std::max_element(s.maps.data(), s.maps.data() + 144));
    return auroc(span<const double>(s.image), span<const int>(data.labels));
  };
  const double trained = image_auroc(1e-3f), untrained = image_auroc(0.0f);
  INFO("trained " << trained << ", untrained " << untrained);
  CHECK(trained >= 0.95);
  CHECK(untrained <= 0.75);
}

TEST_CASE("fastflow saves and loads to bit-identical scores", "[fastflow][model_file]") {
  temp_folder dir;
  const feature_dataset a = make_feature_dataset(8, 8, 24, 4, 4, 5);
  const feature_dataset b = make_feature_dataset(6, 4, 24, 4, 4, 6);
  for (const bool conv3x3_only : {true, false}) {
    fastflow_config cfg = small_config(8, 8, 2);
    cfg.scales.push_back({6, 4, 4});
    cfg.conv3x3_only = conv3x3_only;
    fastflow model(cfg);
    model.set_metadata("note", "kept");
    model.fit({a.train, b.train});
    score_options so;
    so.map_height = so.map_width = 32;
    so.cell_offsets = {0.1, -0.2};
    const scores before = model.score({a.test, b.test}, so);
    model.save(dir / "fastflow.flowad");
    const std::unique_ptr<detector> loaded = load_detector(dir / "fastflow.flowad");
    CHECK(std::string(loaded->kind()) == "fastflow");
    CHECK(loaded->config() == model.config());
    CHECK(loaded->metadata() == model.metadata());
    const scores after = loaded->score({a.test, b.test}, so);
    CHECK(after.image == before.image);
    CHECK(std::memcmp(after.maps.data(), before.maps.data(), before.maps.bytes()) == 0);
  }
  // A damaged permutation or a missing tensor is a bad file.
  model_file_contents m = read_model_file(dir / "fastflow.flowad");
  for (stored_tensor& t : m.tensors)
    if (t.name == "scale0.block1.permutation") std::swap(t.values[0], t.values[1]);
  write_model_file(dir / "damaged.flowad", m);
  CHECK_THROWS_WITH(load_detector(dir / "damaged.flowad"), Catch::Contains("permutation its seed draws"));
  m.tensors.pop_back();
  write_model_file(dir / "short.flowad", m);
  try {
    load_detector(dir / "short.flowad");
    FAIL("a model file without its last tensor loaded");
  } catch (const error& e) {
    CHECK(e.code() == errc::bad_file);
  }
}

TEST_CASE("fastflow scores the same from several threads at once", "[fastflow]") {
  const feature_dataset data = make_feature_dataset(8, 8, 24, 6, 6, 7);
  fastflow model(small_config(8, 8, 1));
  model.fit({data.train});
  check_concurrent_scores_match_serial(model, {data.test});
}

TEST_CASE("fastflow rejects bad input with clear errors", "[fastflow]") {
  const feature_dataset data = make_feature_dataset(8, 8, 8, 2, 2, 1);
  fastflow model(small_config(8, 8, 1));
  CHECK_THROWS_WITH(model.score({data.test}), Catch::Contains("before fit"));
  CHECK_THROWS_WITH(model.save(std::filesystem::temp_directory_path() / "flowad_never.flowad"), Catch::Contains("before fit"));
  model.fit({data.train});
  tensor wrong({2, 8, 8, 9});
  CHECK_THROWS_WITH(model.score({wrong.cview()}), Catch::Contains("2x8x8x9"));
  fastflow_config bad = small_config(8, 8, 1);
  bad.blocks = 0;
  CHECK_THROWS_WITH(fastflow{bad}, Catch::Contains("blocks"));
  bad = small_config(8, 8, 1);
  bad.hidden_ratio = 0.0;
  CHECK_THROWS_WITH(fastflow{bad}, Catch::Contains("hidden_ratio"));
  bad = small_config(8, 8, 1);
  bad.scales = {{1, 8, 8}};
  CHECK_THROWS_WITH(fastflow{bad}, Catch::Contains("at least 2 channels"));
}
