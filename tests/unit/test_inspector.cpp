// The image-level API (pipeline/inspector.hpp): from defect-free images to verdicts and maps at each
// image's own size, with the threshold and everything scoring needs in one model file.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <thread>

#include "flowad/extract/resnet18.hpp"
#include "flowad/io/image.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/io/npy.hpp"
#include "flowad/data/fabric.hpp"
#include "flowad/pipeline/feature_model.hpp"
#include "flowad/pipeline/inspector.hpp"
#include "support/reference_nets.hpp"
#include "support/model_file_entries.hpp"
#include "support/synthetic_images.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using flowad::testing::temp_folder;

namespace {

// Fabric images of height x width: defect-free training images, then test images half with defects.
synthetic_dataset fabric(index_t height, index_t width, index_t train, index_t test, std::uint64_t seed = 4) {
  return testing::fabric(height, width, train, test, seed);
}

// A small MS-Flow on the filter bank, input from the images' aspect ratio with the shorter side 32.
pipeline_config tiny_pipeline() {
  pipeline_config c = pipeline_config::recommended("filterbank");
  c.shorter_side = 32;
  c.settings = {{"groups", "2"}, {"hidden", "16"}, {"blocks", "2"}, {"train.epochs", "2"}, {"train.batch_size", "8"}};
  return c;
}

std::vector<std::filesystem::path> write_images(const temp_folder& dir, const std::vector<byte_image>& images,
                                                const std::string& prefix) {
  std::vector<std::filesystem::path> paths;
  for (std::size_t i = 0; i < images.size(); ++i) {
    paths.push_back(dir / (prefix + std::to_string(i) + ".png"));
    write_png(paths.back(), images[i]);
  }
  return paths;
}

bool same_maps(const tensor& a, const tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.bytes()) == 0;
}

using testing::with_entry;

// Writes `damaged` to `file` and expects inspector::load to refuse it with `code`, naming the file and `named`.
void expect_refused(const model_file_contents& damaged, const std::filesystem::path& file, errc code,
                    const std::string& named) {
  write_model_file(file, damaged);
  try {
    inspector::load(file);
    FAIL_CHECK("the damaged model file loaded");
  } catch (const error& e) {
    INFO(e.what());
    CHECK(e.code() == code);
    CHECK_THAT(e.what(), Catch::Contains(file.string()) && Catch::Contains(named));
  }
}

}  // namespace

TEST_CASE("the input size keeps the images' aspect ratio, rounded to the features' stride", "[inspector]") {
  const auto size = [](index_t h, index_t w, index_t shorter, index_t stride) {
    const input_size s = aspect_preserving_size(h, w, shorter, stride);
    return std::make_pair(s.height, s.width);
  };
  CHECK(size(400, 300, 256, 16) == std::make_pair<index_t, index_t>(336, 256));  // MVTec 3D-AD tire, halved
  CHECK(size(300, 400, 256, 16) == std::make_pair<index_t, index_t>(256, 336));
  CHECK(size(900, 900, 256, 16) == std::make_pair<index_t, index_t>(256, 256));  // MVTec bottle
  CHECK(size(512, 512, 250, 16) == std::make_pair<index_t, index_t>(256, 256));  // the shorter side rounds too
  CHECK(size(10, 1000, 32, 16) == std::make_pair<index_t, index_t>(32, 3200));
  CHECK_THROWS_AS(aspect_preserving_size(0, 10, 256, 16), error);
}

TEST_CASE("an inspector fits, gives verdicts and maps at each image's size, and keeps it all in one file", "[inspector]") {
  temp_folder dir;
  const synthetic_dataset data = fabric(48, 80, 20, 6);
  inspector model(tiny_pipeline());
  CHECK(!model.fitted());
  inspector_fit_options options;
  options.calibration = calibration_method::holdout;  // the single holdout (out of fold: test_calibration.cpp)
  options.holdout = 0.2;
  const inspector_fit_report report = model.fit(data.train, options);
  CHECK(report.fit_images == 16);
  CHECK(report.held_out_images == 4);
  REQUIRE(model.fitted());
  // 48 x 80 images, shorter side 32, filter-bank strides up to 16: 32 x 48.
  CHECK(model.feature_settings().height == 32);
  CHECK(model.feature_settings().width == 48);
  CHECK(model.feature_settings().levels == std::vector<std::string>{"level1", "level2", "level3"});
  REQUIRE(model.threshold());
  CHECK(model.threshold()->held_out_images == 4);
  CHECK(model.threshold()->target_fpr == 0.01);
  CHECK(!model.threshold()->bounded);  // 4 images cannot bound a 1 % false-positive rate: the largest score
  CHECK(model.heatmap_range().hi > model.heatmap_range().lo);

  // Verdicts and maps at each image's own size, whatever the model's input size.
  std::vector<byte_image> images = data.test;
  images.push_back(fabric(60, 40, 1, 1, 9).train[0]);
  const std::vector<verdict> verdicts = model.inspect(images);
  REQUIRE(verdicts.size() == images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    CHECK(verdicts[i].map.shape() == shape4{1, 1, images[i].height(), images[i].width()});
    CHECK(verdicts[i].anomalous == (verdicts[i].score >= model.threshold()->value));
    CHECK(std::isfinite(verdicts[i].score));
  }
  const byte_image overlay = model.heatmap(images[0], verdicts[0]);
  CHECK(overlay.height() == 48);
  CHECK(overlay.width() == 80);
  // The scores at the input size, as metrics compare them.
  const scores s = model.score(data.test);
  CHECK(s.maps.shape() == shape4{6, 1, 32, 48});
  CHECK(s.image[0] == verdicts[0].score);
  {
    // Scoring into kept scores, with the inspector's buffers reused across batch sizes and across images
    // at and off the input size, gives the same floats as scoring afresh.
    scores kept;
    const std::vector<byte_image> one{data.test[1]};
    const std::vector<byte_image> resized{images.back()};  // 60 x 40, resized to 32 x 48
    for (const std::vector<byte_image>* batch : {&data.test, &one, &data.test, &resized, &one}) {
      model.score(*batch, kept);
      const scores fresh = model.score(*batch);
      CHECK(kept.image == fresh.image);
      REQUIRE(kept.maps.shape() == fresh.maps.shape());
      CHECK(std::equal(kept.maps.data(), kept.maps.data() + kept.maps.numel(), fresh.maps.data()));
    }
    CHECK(kept.image[0] == s.image[1]);  // the last batch: test image 1 alone, as in the batch of six
  }
  {
    // Six images are scored in chunks (of four and two): each image scores as it does alone.
    scores alone;
    for (std::size_t i = 0; i < data.test.size(); ++i) {
      model.score(std::vector<byte_image>{data.test[i]}, alone);
      CHECK(alone.image[0] == Approx(s.image[i]).epsilon(1e-5));
      const float* in_batch = s.maps.data() + static_cast<std::ptrdiff_t>(i) * alone.maps.numel();
      float worst = 0.0f;
      for (index_t k = 0; k < alone.maps.numel(); ++k) worst = std::max(worst, std::abs(alone.maps.data()[k] - in_batch[k]));
      CHECK(worst <= 1e-4f * std::max(1.0f, std::abs(*std::max_element(in_batch, in_batch + alone.maps.numel()))));
    }
  }

  // One file: loaded, the inspector scores bit for bit as before, with the same threshold and colours.
  model.save(dir / "model.flowad");
  const inspector loaded = inspector::load(dir / "model.flowad");
  CHECK(loaded.threshold()->value == model.threshold()->value);
  CHECK(loaded.threshold()->bounded == model.threshold()->bounded);
  CHECK(loaded.heatmap_range().lo == model.heatmap_range().lo);
  CHECK(loaded.heatmap_range().hi == model.heatmap_range().hi);
  CHECK(loaded.config().extractor == "filterbank");
  CHECK(loaded.feature_settings().height == 32);
  CHECK(loaded.model().config() == model.model().config());
  const std::vector<verdict> again = loaded.inspect(images);
  for (std::size_t i = 0; i < images.size(); ++i) {
    CHECK(again[i].score == verdicts[i].score);
    CHECK(again[i].anomalous == verdicts[i].anomalous);
    CHECK(same_maps(again[i].map, verdicts[i].map));
  }
  // A hand-set threshold changes the verdicts and is saved too.
  inspector changed = inspector::load(dir / "model.flowad");
  changed.set_threshold(-1e30);
  CHECK(changed.inspect(images[0]).anomalous);
  changed.save(dir / "changed.flowad");
  CHECK(inspector::load(dir / "changed.flowad").threshold()->value == -1e30);
}

TEST_CASE("an inspector fits the same on image files as on images in memory", "[inspector]") {
  temp_folder dir;
  const synthetic_dataset data = fabric(40, 40, 12, 4, 6);
  const std::vector<std::filesystem::path> files = write_images(dir, data.train, "good_");
  const std::vector<std::filesystem::path> tests = write_images(dir, data.test, "test_");
  inspector from_files(tiny_pipeline()), from_memory(tiny_pipeline());
  from_files.fit(files);
  from_memory.fit(data.train);
  CHECK(from_files.threshold()->value == from_memory.threshold()->value);
  const std::vector<verdict> a = from_files.inspect(tests), b = from_memory.inspect(data.test);
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].score == b[i].score);
    CHECK(same_maps(a[i].map, b[i].map));
  }
  CHECK(image_folder(dir.path()).size() == 16);
}

TEST_CASE("an inspector inspects from several threads at once", "[inspector]") {
  const synthetic_dataset data = fabric(32, 32, 12, 6, 7);
  inspector model(tiny_pipeline());
  model.fit(data.train);
  const std::vector<verdict> reference = model.inspect(data.test);
  std::vector<std::vector<verdict>> results(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < results.size(); ++t)
    threads.emplace_back([&, t] { results[t] = model.inspect(data.test); });
  for (auto& t : threads) t.join();
  for (const auto& r : results)
    for (std::size_t i = 0; i < r.size(); ++i) {
      CHECK(r[i].score == reference[i].score);
      CHECK(same_maps(r[i].map, reference[i].map));
    }
}

TEST_CASE("an inspector can embed its extractor's weights: the model file is all a deployment needs", "[inspector]") {
  temp_folder dir;
  const weight_map weights = testing::ref::random_weights(resnet18_extractor::required_weights(), 17);
  std::vector<npz_entry> entries;
  for (const auto& [name, array] : weights) entries.push_back({name, array});
  const std::string weights_path = (dir / "resnet18.npz").string();
  write_npz(weights_path, entries);
  const synthetic_dataset data = fabric(64, 64, 10, 4, 8);
  for (const bool embed : {true, false}) {
    pipeline_config c = pipeline_config::recommended("resnet18", weights_path);
    c.embed_weights = embed;
    c.settings = {{"groups", "2"}, {"hidden", "8"}, {"blocks", "1"}, {"train.epochs", "1"}};
    inspector model(c);
    model.fit(data.train);
    CHECK(model.feature_settings().levels == std::vector<std::string>{"layer2", "layer3"});
    const std::filesystem::path file = dir / (embed ? "embedded.flowad" : "referenced.flowad");
    model.save(file);
    const model_file_contents contents = read_model_file(file);
    const auto embedded_tensors = std::count_if(contents.tensors.begin(), contents.tensors.end(),
                                                [](const stored_tensor& t) { return t.name.rfind("extractor.", 0) == 0; });
    CHECK(embedded_tensors == (embed ? 30 : 0));
    // The detector alone loads from either file.
    CHECK(load_detector(file)->fitted());
    const std::vector<verdict> before = model.inspect(data.test);
    std::filesystem::rename(weights_path, weights_path + ".moved");
    if (embed) {
      const inspector loaded = inspector::load(file);
      const std::vector<verdict> after = loaded.inspect(data.test);
      for (std::size_t i = 0; i < after.size(); ++i) CHECK(after[i].score == before[i].score);
    } else {
      try {
        inspector::load(file);
        FAIL("a model whose weights are gone loaded");
      } catch (const error& e) {
        CHECK(e.code() == errc::io_error);
        CHECK_THAT(e.what(), Catch::Contains("resnet18.npz"));
      }
    }
    std::filesystem::rename(weights_path + ".moved", weights_path);
  }
}

TEST_CASE("an inspector rejects bad input with clear errors", "[inspector]") {
  temp_folder dir;
  const synthetic_dataset data = fabric(32, 32, 6, 2, 9);
  const auto expect = [](auto&& call, errc code, const char* text) {
    try {
      call();
      FAIL("expected an error containing '" << text << "'");
    } catch (const error& e) {
      INFO(e.what());
      CHECK(e.code() == code);
      CHECK_THAT(e.what(), Catch::Contains(text));
    }
  };
  inspector model(tiny_pipeline());
  expect([&] { model.inspect(data.test[0]); }, errc::not_fitted, "before fit");
  expect([&] { model.save(dir / "never.flowad"); }, errc::not_fitted, "before fit");
  CHECK(!std::filesystem::exists(dir / "never.flowad"));
  expect([&] { model.fit(std::vector<byte_image>{}); }, errc::empty_input, "no images");
  expect([&] { model.fit(std::vector<byte_image>{data.train[0]}); }, errc::empty_input, "at least 2 images");
  expect([&] { model.fit(std::vector<std::filesystem::path>{dir / "missing.png", dir / "x.png"}); }, errc::io_error, "missing.png");
  inspector_fit_options bad_fpr;
  bad_fpr.target_fpr = 0.0;
  expect([&] { model.fit(data.train, bad_fpr); }, errc::invalid_argument, "target_fpr");
  pipeline_config typo = tiny_pipeline();
  typo.settings.set("hiden", "3");
  expect([&] { inspector(typo).fit(data.train); }, errc::invalid_argument, "unknown setting 'hiden'");
  pipeline_config unknown = tiny_pipeline();
  unknown.extractor = "vgg";
  expect([&] { inspector{unknown}; }, errc::invalid_argument, "unknown extractor 'vgg'");
  unknown = tiny_pipeline();
  unknown.detector = "nosuch";
  expect([&] { inspector{unknown}; }, errc::invalid_argument, "unknown detector 'nosuch'");
  pipeline_config odd = tiny_pipeline();
  odd.height = 32;
  expect([&] { inspector{odd}; }, errc::invalid_argument, "height and width");
  expect([&] { image_folder(dir.path()); }, errc::empty_input, "holds no images");
  expect([&] { image_folder(dir / "nowhere"); }, errc::io_error, "nowhere");

  // A model fitted on feature maps does not know how to make its features from images.
  tensor features({8, 4, 4, 4});
  for (index_t i = 0; i < features.numel(); ++i) features.data()[i] = static_cast<float>((i * 7919) % 13) * 0.1f;
  feature_model_options fo;
  fo.settings = {{"groups", "2"}, {"hidden", "4"}, {"blocks", "1"}, {"train.epochs", "1"}};
  fit_feature_model({features.cview()}, fo)->save(dir / "features.flowad");
  expect([&] { inspector::load(dir / "features.flowad"); }, errc::bad_file, "fitted on feature maps");
}

TEST_CASE("an inspector refuses a damaged model file, naming the file and the entry", "[inspector][model_file]") {
  temp_folder dir;
  // Two models to damage: the filter bank's (no weights) and ResNet18's with random weights embedded.
  inspector filterbank(tiny_pipeline());
  filterbank.fit(fabric(32, 32, 10, 2, 10).train);
  filterbank.save(dir / "filterbank.flowad");
  const weight_map weights = testing::ref::random_weights(resnet18_extractor::required_weights(), 17);
  std::vector<npz_entry> entries;
  for (const auto& [name, array] : weights) entries.push_back({name, array});
  const std::string weights_path = (dir / "resnet18.npz").string();
  write_npz(weights_path, entries);
  pipeline_config c = pipeline_config::recommended("resnet18", weights_path);
  c.embed_weights = true;
  c.settings = {{"groups", "2"}, {"hidden", "8"}, {"blocks", "1"}, {"train.epochs", "1"}};
  inspector resnet(c);
  resnet.fit(fabric(64, 64, 10, 2, 8).train);
  resnet.save(dir / "resnet18.flowad");

  // Garbage for every key of either model; each list is garbage for that key whatever the model.
  const auto plus = [](std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const std::vector<std::string> not_sizes = {
      "", "x", "-1", "0", "32.5", " 32", "1e999", "99999999", "9223372036854775808", "16", "16384"};
  const std::vector<std::string> not_numbers = {"", "x", "1e999", "nan", "inf", "1,2"};
  const std::map<std::string, std::vector<std::string>> garbage = {
      {"pipeline.extractor", {"", "x", "vgg", "Filterbank"}},
      {"pipeline.weights_embedded", {"", "x", "1", "TRUE"}},
      {"pipeline.height", not_sizes},
      {"pipeline.width", not_sizes},
      {"pipeline.levels", {"", "x", ",", "level9", "layer9"}},
      {"pipeline.neighbourhood", {"", "x", "-1", "0", "2", "65", "1e999", "99999999"}},
      {"pipeline.pool_stride", {"", "x", "-1", "0", "2", "9", "1e999", "99999999"}},
      {"pipeline.cell_offsets", {"", "x", ",", "0", "nan", "1e999", "0,0,0,0"}},
      {"threshold", not_numbers},
      {"threshold.target_fpr", {"", "x", "-1", "0", "1", "2", "nan", "1e999"}},
      {"threshold.held_out_images", {"", "x", "-1", "0", "1.5", "1e999", "99999999999999999999"}},
      {"threshold.bounded", {"", "x", "1", "TRUE"}},
      {"heatmap.lo", plus(not_numbers, {"-1e300", "99999999"})},
      {"heatmap.hi", plus(not_numbers, {"1e300", "-99999999"})},
  };
  // Garbage for one model only: the other extractor, its levels, per-level lists of the wrong length or
  // out of range, and weights where there are none or they are embedded.
  const std::map<std::string, std::vector<std::string>> filterbank_garbage = {
      {"pipeline.extractor", {"resnet18", "mobilenet_v2"}},
      {"pipeline.weights", {"x", weights_path, (dir / "gone.npz").string()}},
      {"pipeline.weights_embedded", {"true"}},
      {"pipeline.levels",
       {"level1", "level1,level2", "level3,level2,level1", "level1,level2,level3,level3", "level1,,level3",
        "layer2,layer3"}},
      {"pipeline.cell_offsets", {"0,0", "0,0,1.5", "0,0,-2", "0,0,nan", "0,,0"}},
  };
  const std::map<std::string, std::vector<std::string>> resnet_garbage = {
      {"pipeline.extractor", {"filterbank", "mobilenet_v2"}},
      {"pipeline.weights", {"x", weights_path}},
      {"pipeline.weights_embedded", {"false"}},
      {"pipeline.levels", {"layer2", "layer3,layer2", "layer1,layer2", "layer2,layer3,layer4", "level1,level2,level3"}},
      {"pipeline.cell_offsets", {"0", "0,1.5", "-2,0", "0,0,0"}},
  };

  for (const std::string model : {"filterbank", "resnet18"}) {
    INFO("model " << model);
    const std::filesystem::path original = dir / (model + ".flowad"), damaged = dir / "damaged.flowad";
    const model_file_contents contents = read_model_file(original);
    CHECK(inspector::load(original).fitted());
    // A threshold is optional, but all its entries go together.
    model_file_contents no_threshold = contents;
    for (const char* key : {"threshold", "threshold.target_fpr", "threshold.held_out_images", "threshold.bounded",
                            "threshold.method", "threshold.folds"})
      no_threshold = with_entry(no_threshold, key, std::nullopt);
    write_model_file(damaged, no_threshold);
    CHECK(!inspector::load(damaged).threshold());

    for (const auto& [key, values] : garbage) {
      INFO("entry " << key << " removed");
      expect_refused(with_entry(contents, key, std::nullopt), damaged, errc::bad_file, key);
    }
    expect_refused(with_entry(contents, "pipeline.weights", std::nullopt), damaged, errc::bad_file, "pipeline.weights");
    for (const auto* table : {&garbage, model == "filterbank" ? &filterbank_garbage : &resnet_garbage})
      for (const auto& [key, values] : *table)
        for (const std::string& value : values) {
          INFO("entry " << key << " = '" << value << "'");
          expect_refused(with_entry(contents, key, value), damaged, errc::bad_file, key);
        }
  }

  // Damaged embedded weights: a convolution's missing, reshaped or cut short.
  const model_file_contents contents = read_model_file(dir / "resnet18.flowad");
  const auto first_weight = std::find_if(contents.tensors.begin(), contents.tensors.end(), [](const stored_tensor& t) {
    return t.name.rfind("extractor.", 0) == 0 && t.dims.size() == 4;
  });
  REQUIRE(first_weight != contents.tensors.end());
  const std::size_t at = static_cast<std::size_t>(first_weight - contents.tensors.begin());
  const std::string weight_name = first_weight->name.substr(std::string("extractor.").size());
  model_file_contents missing = contents, reshaped = contents, short_weight = contents;
  missing.tensors.erase(missing.tensors.begin() + static_cast<std::ptrdiff_t>(at));
  expect_refused(missing, dir / "damaged.flowad", errc::bad_file, weight_name);
  reshaped.tensors[at].dims = {static_cast<index_t>(reshaped.tensors[at].values.size())};
  expect_refused(reshaped, dir / "damaged.flowad", errc::bad_file, weight_name);
  stored_tensor& cut = short_weight.tensors[at];
  cut.values.resize(cut.values.size() / static_cast<std::size_t>(cut.dims[0]) *
                    static_cast<std::size_t>(cut.dims[0] - 1));
  --cut.dims[0];
  expect_refused(short_weight, dir / "damaged.flowad", errc::bad_file, weight_name);

  // The same model referring to its weights by path: a path that does not exist is an I/O error; no
  // path, or a file that is no weights, is a damaged model file.
  model_file_contents referenced = contents;
  referenced.tensors.erase(std::remove_if(referenced.tensors.begin(), referenced.tensors.end(),
                                          [](const stored_tensor& t) { return t.name.rfind("extractor.", 0) == 0; }),
                           referenced.tensors.end());
  referenced =
      with_entry(with_entry(referenced, "pipeline.weights_embedded", "false"), "pipeline.weights", weights_path);
  write_model_file(dir / "referenced.flowad", referenced);
  CHECK(inspector::load(dir / "referenced.flowad").fitted());
  const std::string gone = (dir / "gone.npz").string();
  expect_refused(with_entry(referenced, "pipeline.weights", gone), dir / "damaged.flowad", errc::io_error, gone);
  expect_refused(with_entry(referenced, "pipeline.weights", ""), dir / "damaged.flowad", errc::bad_file,
                 "pipeline.weights");
  expect_refused(with_entry(referenced, "pipeline.weights", (dir / "filterbank.flowad").string()),
                 dir / "damaged.flowad", errc::bad_file, "pipeline.weights");
  expect_refused(with_entry(referenced, "pipeline.weights_embedded", "true"), dir / "damaged.flowad", errc::bad_file,
                 "pipeline.weights_embedded");
}
