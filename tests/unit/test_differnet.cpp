// DifferNet (detectors/differnet.hpp): the recipe and the paper's size, pooling and the score, learning
// that an untrained model does not show, model files, threads, errors, and the image pipeline's
// rotated copies and missing maps.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <sys/resource.h>

#include "flowad/data/fabric.hpp"
#include "flowad/detectors/differnet.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/layers/vector_coupling.hpp"
#include "flowad/data/mvtec_layout.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/metrics/roc.hpp"
#include "flowad/pipeline/evaluate.hpp"
#include "flowad/pipeline/features.hpp"
#include "flowad/pipeline/inspector.hpp"
#include "support/concurrent_scoring.hpp"
#include "support/feature_data.hpp"
#include "support/layer_checks.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

differnet_config small_config(std::vector<scale_shape> scales, int epochs) {
  differnet_config cfg = differnet_config::recommended(std::move(scales));
  cfg.blocks = 4;
  cfg.hidden = 48;
  cfg.seed = 3;
  cfg.train_rotations = 1;
  cfg.training.epochs = epochs;
  return cfg;
}

// Feature maps of `channels` x size x size whose per-channel means lie near a 2-D subspace (normal), or
// are independent with the same per-channel spread (anomalous): only the means' joint distribution
// tells them apart, which is all DifferNet sees. Spatial noise averages out in the pooling.
struct pooled_dataset {
  tensor train, test;
  std::vector<int> labels;
};

pooled_dataset make_pooled_dataset(index_t channels, index_t size, index_t train_count, index_t normal, index_t anomalous,
                                   std::uint64_t seed) {
  detail::rng r(seed);
  std::vector<double> a(static_cast<std::size_t>(channels * 2)), spread(static_cast<std::size_t>(channels), 0.0);
  for (double& v : a) v = r.normal();
  for (index_t c = 0; c < channels; ++c)
    spread[static_cast<std::size_t>(c)] = std::hypot(a[static_cast<std::size_t>(2 * c)], a[static_cast<std::size_t>(2 * c + 1)]);
  const auto fill = [&](tensor& t, index_t n, bool anomalous) {
    const double u0 = r.normal(), u1 = r.normal();
    for (index_t c = 0; c < channels; ++c) {
      const double mean = anomalous ? spread[static_cast<std::size_t>(c)] * r.normal()
                                    : a[static_cast<std::size_t>(2 * c)] * u0 + a[static_cast<std::size_t>(2 * c + 1)] * u1 +
                                          0.05 * r.normal();
      for (index_t y = 0; y < size; ++y)
        for (index_t x = 0; x < size; ++x) t(n, c, y, x) = static_cast<float>(mean + 0.2 * r.normal());
    }
  };
  pooled_dataset d;
  d.train = tensor({train_count, channels, size, size});
  for (index_t n = 0; n < train_count; ++n) fill(d.train, n, false);
  d.test = tensor({normal + anomalous, channels, size, size});
  for (index_t n = 0; n < normal + anomalous; ++n) {
    fill(d.test, n, n >= normal);
    d.labels.push_back(n >= normal ? 1 : 0);
  }
  return d;
}

}  // namespace

TEST_CASE("differnet's recommended configuration is the official recipe on ResNet18's three levels", "[differnet]") {
  const differnet_config cfg = differnet_config::recommended({{64, 64, 64}, {128, 32, 32}, {256, 16, 16}});
  CHECK(cfg.input_size() == 448);
  CHECK(cfg.blocks == 8);
  CHECK(cfg.hidden == 2048);
  CHECK(cfg.hidden_layers == 3);
  CHECK(cfg.clamp_alpha == 3.0f);
  CHECK(cfg.train_rotations == 4);
  CHECK(cfg.test_rotations == 64);
  CHECK(cfg.training.epochs == differnet_config::default_epochs);
  CHECK(cfg.training.batch_size == 24);
  CHECK(cfg.training.optimizer.learning_rate == 2e-4f);
  CHECK(cfg.training.optimizer.beta1 == 0.8f);
  CHECK(cfg.training.optimizer.beta2 == 0.8f);
  CHECK(cfg.training.optimizer.eps == 1e-4f);
  CHECK(cfg.training.optimizer.weight_decay == 1e-5f);
  CHECK(cfg.training.schedule.kind == lr_schedule::constant);
  CHECK(cfg.training.max_grad_norm == 0.0);
  CHECK(detector_kind("differnet").recipe_levels == 3);
  const differnet model(cfg);
  CHECK_FALSE(model.localises());
  // Test copies at the fixed angles i·360/64 (evaluate.py).
  const image_rotations r = model.rotations();
  REQUIRE(r.test_angles.size() == 64);
  CHECK(r.test_angles[0] == 0.0);
  CHECK(r.test_angles[16] == 90.0);
  CHECK(r.training_copies == 4);
  // Training copies: fixed per image (seeded), different between images, in [−180, 180).
  CHECK(r.training_angles(3) == r.training_angles(3));
  CHECK(r.training_angles(3) != r.training_angles(4));
  for (double angle : r.training_angles(7)) CHECK((angle >= -180.0 && angle < 180.0));
}

TEST_CASE("differnet's paper preset has the reference's 172.1 M parameters and 0.172 GMAC per copy", "[differnet]") {
  const detector_config config = paper_config("differnet");
  const std::unique_ptr<detector> model = make_detector("differnet", config);
  const model_stats s = model->stats();
  // ALGORITHMS.md §5.3: 172,077,056 parameters in use (10,754,816 per subnet × 2 × 8 blocks), 0.172 G
  // MACs of the flow per transformed image. Our count adds nothing else (permutations are not
  // parameters).
  CHECK(s.parameters == Approx(172077056.0).epsilon(0.01));
  CHECK(s.parameters == 172077056.0);
  CHECK(s.macs_per_image == Approx(0.172e9).epsilon(0.01));
  CHECK(model->input_shapes() == std::vector<scale_shape>{{256, 13, 13}, {256, 6, 6}, {256, 2, 2}});
  CHECK(config.at("train.epochs") == "192");
}

TEST_CASE("differnet scores mean z² of the flow of the pooled features", "[differnet]") {
  const tensor a = random_tensor({5, 3, 4, 6}, layout::nchw, 1);
  const tensor b = random_tensor({5, 2, 2, 3}, layout::nhwc, 2);
  differnet model(small_config({{3, 4, 6}, {2, 2, 3}}, 1));
  model.fit({a.cview(), b.cview()});
  const scores s = model.score({a.cview(), b.cview()});
  CHECK(s.maps.shape() == shape4{5, 1, 0, 0});
  // The same by hand: pool, run the saved blocks (permutation, then a coupling with the saved
  // parameters), mean z².
  tensor v({5, 5, 1, 1}, layout::nhwc);
  for (index_t n = 0; n < 5; ++n) {
    for (index_t c = 0; c < 3; ++c) {
      double sum = 0.0;
      for (index_t y = 0; y < 4; ++y)
        for (index_t x = 0; x < 6; ++x) sum += a(n, c, y, x);
      v.data()[n * 5 + c] = static_cast<float>(sum / 24.0);
    }
    for (index_t c = 0; c < 2; ++c) {
      double sum = 0.0;
      for (index_t y = 0; y < 2; ++y)
        for (index_t x = 0; x < 3; ++x) sum += b(n, c, y, x);
      v.data()[n * 5 + 3 + c] = static_cast<float>(sum / 6.0);
    }
  }
  const model_file_contents file = model.to_model_file();
  workspace ws;
  std::vector<double> logdet(5, 0.0);
  for (index_t block = 0; block < 4; ++block) {
    const std::string prefix = "block" + std::to_string(block) + ".";
    const stored_tensor& perm = file.tensor_named(prefix + "permutation");
    tensor permuted(v.shape(), layout::nhwc);
    for (index_t n = 0; n < 5; ++n)
      for (index_t c = 0; c < 5; ++c) permuted.data()[n * 5 + c] = v.data()[n * 5 + static_cast<index_t>(perm.values[static_cast<std::size_t>(c)])];
    vector_coupling_config vc;
    vc.channels = 5;
    vc.hidden = 48;
    vector_coupling coupling(vc);
    for (parameter* p : coupling.parameters()) {
      const stored_tensor& t = file.tensor_named(prefix + p->name());
      REQUIRE(t.values.size() == p->size());
      std::copy(t.values.begin(), t.values.end(), p->data());
      p->mark_updated();
    }
    coupling.forward(permuted.cview(), v.view(), logdet, ws);
  }
  for (index_t n = 0; n < 5; ++n) {
    double sum = 0.0;
    for (index_t c = 0; c < 5; ++c) sum += static_cast<double>(v.data()[n * 5 + c]) * v.data()[n * 5 + c];
    CHECK(s.image[static_cast<std::size_t>(n)] == Approx(sum / 5.0).epsilon(1e-5));
  }
  // Moving values within a map keeps the pooled features, and so the score.
  tensor shifted({5, 3, 4, 6}, layout::nchw);
  for (index_t n = 0; n < 5; ++n)
    for (index_t c = 0; c < 3; ++c)
      for (index_t y = 0; y < 4; ++y)
        for (index_t x = 0; x < 6; ++x) shifted(n, c, y, x) = a(n, c, 3 - y, (x + 2) % 6);
  const scores again = model.score({shifted.cview(), b.cview()});
  for (std::size_t i = 0; i < 5; ++i) CHECK(again.image[i] == Approx(s.image[i]).epsilon(1e-5));
  for (double v : s.image) CHECK((v > 0.0 && std::isfinite(v)));
}

TEST_CASE("differnet learns the pooled features' joint distribution, which an untrained model cannot see", "[differnet]") {
  const pooled_dataset data = make_pooled_dataset(16, 4, 240, 40, 40, 13);
  const auto image_auroc = [&](float learning_rate) {
    differnet_config cfg = small_config({{16, 4, 4}}, 40);
    cfg.training.optimizer.learning_rate = learning_rate;
    differnet model(cfg);
    const fit_report report = model.fit({data.train});
    CHECK(report.discarded_steps == 0);
    const scores s = model.score({data.test});
    return auroc(span<const double>(s.image), span<const int>(data.labels));
  };
  const double trained = image_auroc(1e-3f), untrained = image_auroc(0.0f);
  INFO("trained " << trained << ", untrained " << untrained);
  CHECK(trained >= 0.95);
  CHECK(untrained <= 0.75);
}

TEST_CASE("differnet fits on every image's rotated copies together", "[differnet]") {
  const tensor features = random_tensor({12, 4, 2, 2}, layout::nhwc, 9);
  differnet_config cfg = small_config({{4, 2, 2}}, 2);
  cfg.train_rotations = 4;
  cfg.training.batch_size = 2;  // images: 8 vectors per step
  differnet model(cfg);
  const fit_report report = model.fit({features.cview()});
  CHECK(report.epoch_losses.size() == 2);
  differnet odd(cfg);
  const tensor eleven = random_tensor({11, 4, 2, 2}, layout::nhwc, 9);
  CHECK_THROWS_WITH(odd.fit({eleven.cview()}), Catch::Contains("4 consecutive copies per image"));
}

TEST_CASE("differnet saves and loads to bit-identical scores", "[differnet][model_file]") {
  temp_folder dir;
  const tensor a = random_tensor({8, 6, 3, 3}, layout::nhwc, 5), b = random_tensor({8, 4, 2, 2}, layout::nhwc, 6);
  differnet model(small_config({{6, 3, 3}, {4, 2, 2}}, 2));
  model.set_metadata("note", "kept");
  model.fit({a.cview(), b.cview()});
  const scores before = model.score({a.cview(), b.cview()});
  model.save(dir / "differnet.flowad");
  const std::unique_ptr<detector> loaded = load_detector(dir / "differnet.flowad");
  CHECK(std::string(loaded->kind()) == "differnet");
  CHECK(loaded->config() == model.config());
  CHECK(loaded->metadata() == model.metadata());
  CHECK_FALSE(loaded->localises());
  const scores after = loaded->score({a.cview(), b.cview()});
  CHECK(after.image == before.image);

  // A damaged permutation, a missing tensor or a configuration asking for more is a bad file.
  model_file_contents m = read_model_file(dir / "differnet.flowad");
  model_file_contents damaged = m;
  for (stored_tensor& t : damaged.tensors)
    if (t.name == "block1.permutation") std::swap(t.values[0], t.values[1]);
  write_model_file(dir / "damaged.flowad", damaged);
  CHECK_THROWS_WITH(load_detector(dir / "damaged.flowad"), Catch::Contains("permutation its seed draws"));
  model_file_contents shorter = m;
  shorter.tensors.pop_back();
  write_model_file(dir / "short.flowad", shorter);
  model_file_contents bigger = m;
  bigger.config.set("hidden", "100000");
  write_model_file(dir / "bigger.flowad", bigger);
  for (const char* name : {"short.flowad", "bigger.flowad"}) {
    INFO(name);
    try {
      load_detector(dir / name);
      FAIL("a damaged model file loaded");
    } catch (const error& e) {
      CHECK(e.code() == errc::bad_file);
    }
  }
}

TEST_CASE("differnet scores the same from several threads at once", "[differnet]") {
  const tensor train = random_tensor({16, 8, 3, 3}, layout::nhwc, 7), test = random_tensor({12, 8, 3, 3}, layout::nchw, 8);
  differnet model(small_config({{8, 3, 3}}, 1));
  model.fit({train.cview()});
  check_concurrent_scores_match_serial(model, {test.cview()});
}

TEST_CASE("differnet rejects bad input with clear errors", "[differnet]") {
  const tensor train = random_tensor({8, 8, 3, 3}, layout::nhwc, 7);
  differnet model(small_config({{8, 3, 3}}, 1));
  CHECK_THROWS_WITH(model.score({train.cview()}), Catch::Contains("before fit"));
  CHECK_THROWS_WITH(model.save(std::filesystem::temp_directory_path() / "flowad_never.flowad"), Catch::Contains("before fit"));
  model.fit({train.cview()});
  tensor wrong({2, 8, 3, 4});
  CHECK_THROWS_WITH(model.score({wrong.cview()}), Catch::Contains("2x8x3x4"));
  tensor with_nan = random_tensor({2, 8, 3, 3}, layout::nhwc, 1);
  with_nan.data()[5] = std::nanf("");
  CHECK_THROWS_AS(model.score({with_nan.cview()}), error);
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"blocks", "0"}, {"hidden", "0"}, {"hidden_layers", "0"}, {"clamp_alpha", "0"}, {"rotations.train", "0"},
           {"rotations.test", "0"}}) {
    detector_config c = to_detector_config(small_config({{8, 3, 3}}, 1));
    c.set(key, value);
    INFO(key);
    CHECK_THROWS_WITH(make_detector("differnet", c), Catch::Contains(key));
  }
}

TEST_CASE("an inspector scores DifferNet on rotated copies, without maps", "[differnet][inspector]") {
  synthetic_options o;
  o.height = o.width = 40;
  o.train_count = 8;
  o.test_count = 4;
  o.seed = 2;
  const synthetic_dataset data = generate_synthetic_dataset(o);
  pipeline_config c = pipeline_config::recommended("filterbank", "", "differnet");
  c.shorter_side = 32;
  c.settings = {{"hidden", "16"}, {"blocks", "2"}, {"train.epochs", "1"}, {"rotations.test", "4"}};
  inspector insp(c);
  inspector_fit_options fit;
  fit.holdout = 0.25;
  const inspector_fit_report report = insp.fit(data.train, fit);
  CHECK(report.fit_images == 6);
  REQUIRE(insp.threshold());
  const std::vector<verdict> verdicts = insp.inspect(data.test);
  const scores s = insp.score(data.test);
  CHECK(s.maps.numel() == 0);
  // Each image's score is the mean of its four copies' scores, at 0°, 90°, 180°, 270°.
  std::vector<const byte_image*> images;
  std::vector<image_copy> copies;
  for (std::size_t i = 0; i < data.test.size(); ++i) {
    images.push_back(&data.test[i]);
    for (double angle : {0.0, 90.0, 180.0, 270.0}) copies.push_back({i, angle});
  }
  const scores per_copy = insp.model().score(views_of(extract_features(insp.features(), images, copies, insp.feature_settings())));
  for (std::size_t i = 0; i < data.test.size(); ++i) {
    const double mean = (per_copy.image[4 * i] + per_copy.image[4 * i + 1] + per_copy.image[4 * i + 2] + per_copy.image[4 * i + 3]) / 4.0;
    CHECK(s.image[i] == Approx(mean).epsilon(1e-6));  // batches of other sizes round differently
    CHECK(verdicts[i].score == s.image[i]);
    CHECK(verdicts[i].map.numel() == 0);
  }
  CHECK_THROWS_WITH(insp.heatmap(data.test[0], verdicts[0]), Catch::Contains("does not localise"));
  // Saved and loaded, the scores stay the same.
  temp_folder dir;
  insp.save(dir / "differnet.flowad");
  const inspector loaded = inspector::load(dir / "differnet.flowad");
  CHECK(loaded.score(data.test).image == s.image);
}

TEST_CASE("evaluation reports DifferNet's pixel metrics as not applicable", "[differnet][inspector]") {
  temp_folder dir;
  synthetic_options o;
  o.height = o.width = 40;
  o.train_count = 6;
  o.test_count = 6;
  o.seed = 5;
  write_mvtec_layout(generate_synthetic_dataset(o), dir / "data");
  pipeline_config c = pipeline_config::recommended("filterbank", "", "differnet");
  c.shorter_side = 32;
  c.settings = {{"hidden", "16"}, {"blocks", "2"}, {"train.epochs", "1"}, {"rotations.test", "2"}};
  inspector insp(c);
  const evaluation_result r = evaluate(insp, read_mvtec_category(dir / "data"));
  CHECK(std::isfinite(r.image_auroc));
  CHECK(std::isnan(r.pixel_auroc));
  CHECK(std::isnan(r.aupro));
  CHECK(r.maps.numel() == 0);
  CHECK(r.image_scores.size() == 6);
}

// Not run by default ("[.]"): the fit-time estimate of docs/api.md. Fits the recommended model on
// generated features of ResNet18's shapes at 256 x 256 (48 images x 4 copies, 2 steps of 96 vectors)
// and prints the time per step; a 209-image category takes 9 steps per epoch.
TEST_CASE("differnet's training step time at the real shapes", "[.][differnet-timing]") {
  const std::vector<scale_shape> shapes{{64, 64, 64}, {128, 32, 32}, {256, 16, 16}};
  std::vector<tensor> features;
  for (std::size_t s = 0; s < shapes.size(); ++s)
    features.push_back(random_tensor({192, shapes[s].channels, shapes[s].height, shapes[s].width}, layout::nhwc, s + 1));
  differnet_config cfg = differnet_config::recommended(shapes);
  cfg.training.epochs = 2;
  differnet model(cfg);
  std::vector<double> step_end, step_cpu;
  const auto cpu_seconds = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  };
  const auto t0 = std::chrono::steady_clock::now();
  fit_options opt;
  opt.on_progress = [&](const fit_progress&) {
    step_end.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    step_cpu.push_back(cpu_seconds());
  };
  model.fit(views_of(features), opt);
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(step_end.size() == 4);
  const double per_step = (step_end[3] - step_end[1]) / 2.0;
  const double setup = step_end[0] - per_step;  // pooling 192 copies, first-step primitives
  WARN("fit of 48 images x 4 copies: " << total << " s; first step ends at " << step_end[0] << " s, steady step "
                                       << per_step << " s wall, " << (step_cpu[3] - step_cpu[1]) / 2.0
                                       << " CPU s; 209 images: " << 9 * per_step << " s per epoch");
  const scores s = model.score({features[0].cview(), features[1].cview(), features[2].cview()});
  CHECK(s.image.size() == 192);
  (void)setup;
}

TEST_CASE("features of rotated copies are the features of the rotated images", "[differnet][features]") {
  synthetic_options o;
  o.height = o.width = 32;
  o.train_count = 2;
  o.test_count = 1;
  o.seed = 8;
  const synthetic_dataset data = generate_synthetic_dataset(o);
  const std::unique_ptr<extractor> ex = make_extractor("filterbank", "");
  feature_options fo;
  fo.height = fo.width = 32;  // the images' own size: resizing changes nothing
  // Image 1 turned by 90° counter-clockwise by hand: out(y, x) = in(x, 31 − y).
  const byte_image& source = data.train[1];
  byte_image turned(32, 32, 3);
  for (index_t y = 0; y < 32; ++y)
    for (index_t x = 0; x < 32; ++x)
      for (index_t c = 0; c < 3; ++c) turned(y, x, c) = source(x, 31 - y, c);
  const std::vector<const byte_image*> images{&data.train[0], &data.train[1], &turned};
  const std::vector<tensor> copies = extract_features(*ex, images, {{0, 0.0}, {1, 90.0}, {1, 0.0}}, fo);
  const std::vector<tensor> plain = extract_features(*ex, images, fo);
  for (std::size_t k = 0; k < plain.size(); ++k) {
    INFO("level " << k);
    CHECK(max_abs_diff(copies[k].cview().batch(0, 1), plain[k].cview().batch(0, 1)) == 0.0);
    CHECK(max_abs_diff(copies[k].cview().batch(1, 1), plain[k].cview().batch(2, 1)) == 0.0);
    CHECK(max_abs_diff(copies[k].cview().batch(2, 1), plain[k].cview().batch(1, 1)) == 0.0);
    CHECK(max_abs_diff(copies[k].cview().batch(1, 1), copies[k].cview().batch(2, 1)) > 0.0);
  }
  CHECK_THROWS_WITH(extract_features(*ex, images, {{3, 0.0}}, fo), Catch::Contains("copy of image 3"));
}
