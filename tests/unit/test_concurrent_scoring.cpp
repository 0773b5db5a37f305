// Eight application threads scoring one loaded model, of every detector kind and through the image-level
// API, must get what serial scoring gets, bit for bit. scripts/run-tests.sh also runs these tests under
// ThreadSanitizer (FLOWAD_TSAN, tag [concurrency]) with OMP_NUM_THREADS=1, so that a race in the
// library's own code (workspace pools, lazily built weights, primitive caches) is reported, not only a
// wrong result. docs/reliability.md, "Concurrent scoring".
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "flowad/detector.hpp"
#include "flowad/pipeline/inspector.hpp"
#include "support/concurrent_scoring.hpp"
#include "support/feature_data.hpp"
#include "support/synthetic_images.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

constexpr std::size_t application_threads = 8;
constexpr int scores_per_thread = 2;  // the second reuses the thread's result buffers and a pooled workspace

// Train and test maps of one scale each (channels x size x size), independent smooth random fields.
struct tiny_features {
  std::vector<feature_dataset> scales;
  feature_maps train() const {
    feature_maps views;
    for (const feature_dataset& s : scales) views.push_back(s.train.cview());
    return views;
  }
  feature_maps test() const {
    feature_maps views;
    for (const feature_dataset& s : scales) views.push_back(s.test.cview());
    return views;
  }
  std::vector<scale_shape> shapes() const {
    std::vector<scale_shape> out;
    for (const feature_dataset& s : scales) out.push_back({s.train.c(), s.train.h(), s.train.w()});
    return out;
  }
};

tiny_features make_features(const std::vector<scale_shape>& shapes) {
  tiny_features f;
  std::uint64_t seed = 11;
  for (const scale_shape& s : shapes) f.scales.push_back(make_feature_dataset(s.channels, s.height, 8, 2, 2, seed++));
  return f;
}

// The smallest features each kind accepts: three levels halving in size (CS-Flow reads exactly three;
// RD and FCL a teacher's), with the image first for STFPM, whose student reads it at strides 4, 8, 16.
std::vector<scale_shape> shapes_for(const std::string& kind) {
  if (kind == "stfpm") return {{3, 32, 32}, {8, 8, 8}, {16, 4, 4}, {32, 2, 2}};
  return {{8, 16, 16}, {16, 8, 8}, {32, 4, 4}};
}

// The kind's recommended configuration for those shapes, made tiny where it has the setting.
detector_config tiny_config(const std::string& kind, const std::vector<scale_shape>& shapes) {
  detector_config cfg = recommended_config(kind, shapes);
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"hidden", "16"}, {"blocks", "2"}, {"train.epochs", "1"}, {"train.batch_size", "8"}})
    if (cfg.has(key)) cfg.set(key, value);
  return cfg;
}

}  // namespace

TEST_CASE("eight threads score one loaded model of every kind as serial scoring does", "[concurrency]") {
  temp_folder dir;
  for (const detector_info& info : detector_kinds()) {
    CAPTURE(info.kind);
    const std::vector<scale_shape> shapes = shapes_for(info.kind);
    const tiny_features features = make_features(shapes);
    const std::unique_ptr<detector> fitted = make_detector(info.kind, tiny_config(info.kind, shapes));
    fitted->fit(features.train());
    const auto path = dir / (info.kind + ".flowad");
    fitted->save(path);
    const std::unique_ptr<const detector> loaded = load_detector(path);
    // A fresh model: its first scores build everything lazily built (primitives, pooled workspaces,
    // derived weights) from eight threads at once, the case most likely to race.
    check_concurrent_scores_match_serial(*load_detector(path), features.test(), {}, application_threads,
                                         scores_per_thread);
    check_concurrent_scores_match_serial(*loaded, features.test(), {}, application_threads, scores_per_thread);
  }
}

TEST_CASE("eight threads inspect images with one loaded inspector as serial inspection does", "[concurrency]") {
  pipeline_config config = pipeline_config::recommended("filterbank");
  config.shorter_side = 32;
  config.settings = {{"hidden", "16"}, {"blocks", "2"}, {"train.epochs", "1"}, {"train.batch_size", "8"}};
  const synthetic_dataset data = fabric(40, 48, 8, 4, 3);
  temp_folder dir;
  {
    inspector fitted(config);
    inspector_fit_options options;
    options.calibration = calibration_method::holdout;
    options.holdout = 0.25;
    fitted.fit(data.train, options);
    fitted.save(dir / "inspector.flowad");
  }
  const inspector loaded = inspector::load(dir / "inspector.flowad");
  const std::vector<verdict> serial = loaded.inspect(data.test);
  std::vector<std::vector<verdict>> results(application_threads);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < application_threads; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < scores_per_thread; ++r) results[t] = loaded.inspect(data.test);
    });
  for (std::thread& t : threads) t.join();
  for (const std::vector<verdict>& result : results) {
    REQUIRE(result.size() == serial.size());
    for (std::size_t i = 0; i < serial.size(); ++i) {
      CHECK(result[i].score == serial[i].score);
      CHECK(result[i].anomalous == serial[i].anomalous);
      REQUIRE(result[i].map.numel() == serial[i].map.numel());
      CHECK(std::memcmp(result[i].map.data(), serial[i].map.data(), serial[i].map.bytes()) == 0);
    }
  }
}

TEST_CASE("an inspector saves from several threads while others inspect, every file the same", "[concurrency]") {
  pipeline_config config = pipeline_config::recommended("filterbank");
  config.shorter_side = 32;
  config.settings = {{"hidden", "16"}, {"blocks", "2"}, {"train.epochs", "1"}, {"train.batch_size", "8"}};
  const synthetic_dataset data = fabric(40, 48, 8, 2, 4);
  inspector model(config);
  inspector_fit_options options;
  options.calibration = calibration_method::holdout;
  options.holdout = 0.25;
  model.fit(data.train, options);
  const std::vector<verdict> serial = model.inspect(data.test);
  temp_folder dir;
  // save() is const: half the threads save (each to its own file), half inspect.
  std::vector<std::vector<verdict>> results(application_threads / 2);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < application_threads; ++t)
    threads.emplace_back([&, t] {
      if (t % 2 == 0) model.save(dir / ("saved_" + std::to_string(t) + ".flowad"));
      else results[t / 2] = model.inspect(data.test);
    });
  for (std::thread& t : threads) t.join();
  const std::vector<unsigned char> first = read_bytes(dir / "saved_0.flowad");
  for (std::size_t t = 2; t < application_threads; t += 2) CHECK(read_bytes(dir / ("saved_" + std::to_string(t) + ".flowad")) == first);
  for (const std::vector<verdict>& result : results) {
    REQUIRE(result.size() == serial.size());
    for (std::size_t i = 0; i < serial.size(); ++i) CHECK(result[i].score == serial[i].score);
  }
  CHECK(inspector::load(dir / "saved_0.flowad").inspect(data.test)[0].score == serial[0].score);
}
