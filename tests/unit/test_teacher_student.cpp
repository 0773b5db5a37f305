// The teacher-student detectors (detectors/teacher_student.hpp: stfpm, rd, fcl): configurations and
// their checks, the student's size (ResNet18's), learning that an untrained student does not show,
// model files, threads and errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "flowad/detail/random.hpp"
#include "flowad/detectors/teacher_student.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/metrics/roc.hpp"
#include "flowad/pipeline/features.hpp"
#include "support/concurrent_scoring.hpp"
#include "support/feature_data.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

// dst = ReLU(W · avgpool(src, factor)) with a fixed random W (out x C): a deeper "teacher level" that
// depends on the one before, so that an anomaly in the base shows at every level.
tensor deeper_level(const tensor& src, index_t out_channels, index_t factor, std::uint64_t seed) {
  const index_t n = src.n(), c = src.c(), h = (src.h() + factor - 1) / factor, w = (src.w() + factor - 1) / factor;
  detail::rng r(seed);
  std::vector<float> weights(static_cast<std::size_t>(out_channels * c));
  for (float& v : weights) v = static_cast<float>(r.normal() / std::sqrt(static_cast<double>(c)));
  tensor dst({n, out_channels, h, w}, layout::nhwc);
  std::vector<double> pooled(static_cast<std::size_t>(c));
  for (index_t i = 0; i < n; ++i)
    for (index_t y = 0; y < h; ++y)
      for (index_t x = 0; x < w; ++x) {
        std::fill(pooled.begin(), pooled.end(), 0.0);
        double count = 0.0;
        for (index_t dy = 0; dy < factor; ++dy)
          for (index_t dx = 0; dx < factor; ++dx) {
            const index_t yy = y * factor + dy, xx = x * factor + dx;
            if (yy >= src.h() || xx >= src.w()) continue;
            count += 1.0;
            for (index_t k = 0; k < c; ++k) pooled[static_cast<std::size_t>(k)] += src(i, k, yy, xx);
          }
        for (index_t o = 0; o < out_channels; ++o) {
          double v = 0.0;
          for (index_t k = 0; k < c; ++k) v += weights[static_cast<std::size_t>(o * c + k)] * pooled[static_cast<std::size_t>(k)];
          dst(i, o, y, x) = static_cast<float>(std::max(0.0, v / count));
        }
      }
  return dst;
}

tensor as_nhwc(const tensor& t) {
  tensor out(t.shape(), layout::nhwc);
  copy(t.cview(), out.view());
  return out;
}

// Three teacher levels (8, 16, 32 channels) from a base field: level 0 is the base's channel mix at the
// base's size, each deeper level half the size.
std::vector<tensor> teacher_levels(const tensor& base, std::uint64_t seed) {
  std::vector<tensor> levels;
  levels.push_back(deeper_level(base, 8, 1, seed));
  levels.push_back(deeper_level(levels[0], 16, 2, seed + 1));
  levels.push_back(deeper_level(levels[1], 32, 2, seed + 2));
  return levels;
}

// The STFPM host: the image (3 channels) and teacher levels at strides 4, 8, 16.
std::vector<tensor> image_and_teacher(const tensor& image, std::uint64_t seed) {
  std::vector<tensor> scales;
  scales.push_back(as_nhwc(image));
  scales.push_back(deeper_level(image, 8, 4, seed));
  scales.push_back(deeper_level(scales[1], 16, 2, seed + 1));
  scales.push_back(deeper_level(scales[2], 32, 2, seed + 2));
  return scales;
}

std::vector<scale_shape> shapes_of(const std::vector<tensor>& t) {
  std::vector<scale_shape> s;
  for (const tensor& x : t) s.push_back({x.c(), x.h(), x.w()});
  return s;
}

teacher_student_config small_config(const std::string& kind, const std::vector<tensor>& scales, int epochs) {
  feature_geometry g;
  g.shapes = shapes_of(scales);
  teacher_student_config cfg = teacher_student_config::recommended(kind, g);
  cfg.seed = 5;
  cfg.training.epochs = epochs;
  cfg.training.batch_size = 8;
  return cfg;
}

double image_auroc(const detector& model, const std::vector<tensor>& test, const std::vector<int>& labels) {
  const scores s = model.score(views_of(test));
  return auroc(span<const double>(s.image.data(), s.image.size()), span<const int>(labels.data(), labels.size()));
}

}  // namespace

TEST_CASE("the teacher-student kinds follow their recipes", "[teacher_student]") {
  feature_geometry g;
  g.shapes = {{64, 64, 64}, {128, 32, 32}, {256, 16, 16}};
  g.strides = {4, 8, 16};
  const teacher_student_config rd = teacher_student_config::recommended("rd", g);
  CHECK(rd.host == teacher_student_host::rd);
  CHECK(rd.snc_kernel == 0);
  CHECK(rd.blur_sigma == Approx(1.0));  // 4 px at stride 4
  CHECK(rd.training.optimizer.learning_rate == 5e-3f);
  CHECK(rd.training.optimizer.beta1 == 0.5f);
  CHECK(rd.training.batch_size == 16);

  feature_geometry with_image = g;
  with_image.shapes.insert(with_image.shapes.begin(), scale_shape{3, 256, 256});
  with_image.strides.insert(with_image.strides.begin(), 1);
  const teacher_student_config stfpm = teacher_student_config::recommended("stfpm", with_image);
  CHECK(stfpm.host == teacher_student_host::stfpm);
  CHECK(stfpm.blur_sigma == 0.0);
  CHECK(teacher_student_config::recommended("fcl", with_image).host == teacher_student_host::stfpm);
  const teacher_student_config fcl = teacher_student_config::recommended("fcl", g);
  CHECK(fcl.host == teacher_student_host::rd);
  CHECK(fcl.snc_kernel > 0);
  CHECK(fcl.weight_coded > 0.0);
  CHECK(fcl.weight_raw == 0.0);  // the validation chose the coded consistency alone
  for (const char* kind : {"stfpm", "rd", "fcl"}) CHECK(detector_kind(kind).recipe_levels == 3);
  // The image pipeline hands the image to STFPM, and to FCL when its host is STFPM.
  CHECK(reads_image(detector_kind("stfpm"), {}));
  CHECK_FALSE(reads_image(detector_kind("rd"), {}));
  CHECK_FALSE(reads_image(detector_kind("fcl"), {}));
  CHECK(reads_image(detector_kind("fcl"), detector_config{{"host", "stfpm"}}));
  CHECK_FALSE(reads_image(detector_kind("fcl"), detector_config{{"host", "rd"}}));
}

TEST_CASE("stfpm's student is ResNet18 up to layer3", "[teacher_student]") {
  teacher_student_config cfg;
  cfg.host = teacher_student_host::stfpm;
  cfg.scales = {{3, 256, 256}, {64, 64, 64}, {128, 32, 32}, {256, 16, 16}};
  teacher_student model("stfpm", cfg);
  // torchvision's resnet18 conv1..layer3: 2,782,784 trained values, plus 2 x 2,240 running statistics.
  CHECK(model.stats().parameters == 2782784.0 + 4480.0);
  // conv1 154.1 M + layer1 604.0 M + layer2 536.9 M + layer3 536.9 M multiply-accumulates at 256 x 256.
  CHECK(model.stats().macs_per_image == Approx(1831862272.0).epsilon(1e-9));
}

TEST_CASE("teacher-student configurations are checked", "[teacher_student]") {
  teacher_student_config cfg;
  cfg.scales = {{64, 64, 64}, {128, 32, 32}};
  CHECK_THROWS_WITH(teacher_student("rd", cfg), Catch::Contains("three teacher levels"));
  cfg.scales = {{64, 64, 64}, {128, 31, 32}, {256, 16, 16}};
  CHECK_THROWS_WITH(teacher_student("rd", cfg), Catch::Contains("half the size"));
  cfg.scales = {{64, 64, 64}, {128, 32, 32}, {256, 16, 16}};
  cfg.host = teacher_student_host::stfpm;
  CHECK_THROWS_WITH(teacher_student("stfpm", cfg), Catch::Contains("image"));
  cfg.host = teacher_student_host::rd;
  CHECK_THROWS_WITH(teacher_student("stfpm", cfg), Catch::Contains("host must be stfpm"));
  cfg.snc_kernel = 4;
  CHECK_THROWS_WITH(teacher_student("fcl", cfg), Catch::Contains("snc.kernel"));
  cfg.snc_kernel = 3;
  cfg.weight_coded = 1.0;
  CHECK_THROWS_WITH(teacher_student("rd", cfg), Catch::Contains("belongs to the fcl detector"));
  CHECK_NOTHROW(teacher_student("fcl", cfg));
  cfg.snc_kernel = 0;
  CHECK_THROWS_WITH(teacher_student("fcl", cfg), Catch::Contains("needs SNC"));
  cfg.weight_coded = 0.0;
  cfg.weight_raw = 0.0;
  CHECK_THROWS_WITH(teacher_student("fcl", cfg), Catch::Contains("cannot both be 0"));
  CHECK_THROWS_WITH(teacher_student("kd", cfg), Catch::Contains("unknown kind"));
  CHECK_THROWS_AS(make_detector("fcl", detector_config{{"snc.kernel", "banana"}}), error);
}

TEST_CASE("rd and fcl learn normal features; untrained students do not", "[teacher_student][learning]") {
  const feature_dataset base = make_feature_dataset(6, 16, 64, 16, 16, 11, 0.2f, 4);
  const std::vector<tensor> train = teacher_levels(base.train, 21);
  const std::vector<tensor> test = teacher_levels(base.test, 21);
  for (const char* kind : {"rd", "fcl"}) {
    CAPTURE(kind);
    teacher_student_config cfg = small_config(kind, train, 25);
    teacher_student untrained(kind, cfg);
    // An untrained model scores as it would after fit() with no steps.
    cfg.training.epochs = 1;
    cfg.training.optimizer.learning_rate = 1e-12f;
    teacher_student barely(kind, cfg);
    barely.fit(views_of(train));
    cfg.training.epochs = 25;
    cfg.training.optimizer.learning_rate = 5e-3f;
    teacher_student trained(kind, cfg);
    const fit_report report = trained.fit(views_of(train));
    CHECK(report.epoch_losses.back() < 0.5 * report.epoch_losses.front());
    const double after = image_auroc(trained, test, base.labels);
    const double before = image_auroc(barely, test, base.labels);
    WARN(kind << ": trained " << after << ", untrained " << before);
    CHECK(after > 0.8);
    CHECK(before < after - 0.15);
  }
}

TEST_CASE("stfpm learns the teacher from the image; an untrained student does not", "[teacher_student][learning]") {
  const feature_dataset base = make_feature_dataset(3, 32, 64, 16, 16, 12, 0.2f, 8);
  const std::vector<tensor> train = image_and_teacher(base.train, 31);
  const std::vector<tensor> test = image_and_teacher(base.test, 31);
  teacher_student_config cfg = small_config("stfpm", train, 1);
  cfg.training.optimizer.learning_rate = 1e-12f;
  teacher_student barely("stfpm", cfg);
  barely.fit(views_of(train));
  cfg.training.epochs = 25;
  cfg.training.optimizer.learning_rate = 1e-3f;
  teacher_student trained("stfpm", cfg);
  const fit_report report = trained.fit(views_of(train));
  CHECK(report.epoch_losses.back() < 0.5 * report.epoch_losses.front());
  const double after = image_auroc(trained, test, base.labels);
  const double before = image_auroc(barely, test, base.labels);
  WARN("stfpm: trained " << after << ", untrained " << before);
  CHECK(after > 0.7);
  CHECK(before < after - 0.15);
}

TEST_CASE("teacher-student models save, load and score identically, from several threads", "[teacher_student][model_file]") {
  const feature_dataset base = make_feature_dataset(3, 32, 16, 4, 4, 13, 0.2f, 8);
  temp_folder dir;
  for (const char* kind : {"stfpm", "rd", "fcl"}) {
    CAPTURE(kind);
    const bool image = std::string(kind) == "stfpm";
    const std::vector<tensor> train = image ? image_and_teacher(base.train, 41) : teacher_levels(base.train, 41);
    const std::vector<tensor> test = image ? image_and_teacher(base.test, 41) : teacher_levels(base.test, 41);
    teacher_student model(kind, small_config(kind, train, 2));
    model.fit(views_of(train));
    const scores before = model.score(views_of(test));
    const auto path = dir.path() / (std::string(kind) + ".flowad");
    model.save(path);
    const std::unique_ptr<detector> loaded = load_detector(path);
    CHECK(std::string(loaded->kind()) == kind);
    const scores after = loaded->score(views_of(test));
    REQUIRE(after.image.size() == before.image.size());
    for (std::size_t i = 0; i < before.image.size(); ++i) CHECK(after.image[i] == before.image[i]);
    for (index_t i = 0; i < before.maps.numel(); ++i) REQUIRE(after.maps.data()[i] == before.maps.data()[i]);
    check_concurrent_scores_match_serial(*loaded, views_of(test));

    // A truncated file and one whose configuration asks for more values than it holds are refused.
    model_file_contents contents = model.to_model_file();
    contents.tensors.pop_back();
    CHECK_THROWS_AS(detector_from_model_file(contents), error);
  }
}

TEST_CASE("teacher-student scoring refuses bad input", "[teacher_student]") {
  const feature_dataset base = make_feature_dataset(6, 16, 8, 2, 2, 14, 0.2f, 4);
  const std::vector<tensor> train = teacher_levels(base.train, 51);
  teacher_student model("rd", small_config("rd", train, 1));
  CHECK_THROWS_WITH(model.score(views_of(train)), Catch::Contains("before fit"));
  model.fit(views_of(train));
  std::vector<tensor> wrong = train;
  wrong.pop_back();
  CHECK_THROWS_AS(model.score(views_of(wrong)), error);
  std::vector<tensor> nan = train;
  nan[1].data()[3] = std::nanf("");
  CHECK_THROWS_AS(model.score(views_of(nan)), error);
}

// Sets the default budgets (docs/lab/teacher-student.md): seconds per optimiser step of 16 samples at
// ResNet18's shapes for 256 x 256 images, on generated features. Run by hand on an idle machine:
//   build/tests/flowad_unit_tests "[.teacher-student-budget]"
TEST_CASE("teacher-student step times at ResNet18's 256 x 256 shapes", "[.teacher-student-budget]") {
  const std::vector<scale_shape> teacher{{64, 64, 64}, {128, 32, 32}, {256, 16, 16}};
  const index_t images = 48;
  detail::rng r(3);
  const auto random_maps = [&](const scale_shape& s) {
    tensor t({images, s.channels, s.height, s.width}, layout::nhwc);
    for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(std::max(0.0, r.normal()));
    return t;
  };
  std::vector<tensor> scales;
  scales.push_back(random_maps({3, 256, 256}));
  for (const scale_shape& s : teacher) scales.push_back(random_maps(s));
  const std::vector<tensor> levels(scales.begin() + 1, scales.end());
  struct run { const char* kind; bool image; };
  for (const run& c : {run{"rd", false}, run{"fcl", false}, run{"stfpm", true}, run{"fcl", true}}) {
    const std::vector<tensor>& data = c.image ? scales : levels;
    feature_geometry g;
    g.shapes = shapes_of(data);
    teacher_student_config cfg = teacher_student_config::recommended(c.kind, g);
    // The first step creates primitives and touches fresh memory: the median of the later ones counts.
    std::vector<std::chrono::steady_clock::time_point> ends;
    fit_options options;
    options.on_progress = [&](const fit_progress&) { ends.push_back(std::chrono::steady_clock::now()); };
    cfg.training.epochs = 2;
    teacher_student timed(c.kind, cfg);
    timed.fit(views_of(data), options);
    std::vector<double> steps;
    for (std::size_t i = 1; i < ends.size(); ++i) steps.push_back(std::chrono::duration<double>(ends[i] - ends[i - 1]).count());
    std::sort(steps.begin(), steps.end());
    const double per_step = steps[steps.size() / 2];
    // One epoch of 200 images is 13 steps of 16.
    WARN(c.kind << (c.image ? " (stfpm host)" : " (rd host)") << ": " << per_step << " s per step of 16, "
                << per_step * 13.0 << " s per epoch of 200 images, " << std::floor(300.0 / (per_step * 13.0))
                << " epochs in 5 minutes");
  }
}
