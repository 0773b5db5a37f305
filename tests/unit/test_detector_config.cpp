// Detector configurations as text and the registry: one list of fields per configuration gives both
// directions, strict parsing names what is wrong, and every kind is found by name.
#include <catch2/catch.hpp>

#include <filesystem>

#include "flowad/detectors/msflow.hpp"
#include "flowad/io/model_file.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;

namespace {

// The error of `call`: its code and message (fails the test when nothing is thrown).
template <class Call>
error error_of(Call&& call) {
  try {
    call();
  } catch (const error& e) {
    return e;
  }
  FAIL("no error thrown");
  return error(errc::invalid_argument, "");
}

}  // namespace

TEST_CASE("a typed configuration round-trips through its text form", "[config]") {
  msflow_config cfg = msflow_config::recommended({{128, 32, 32}, {256, 16, 16}});
  cfg.positions = {{position_mode::relative, 2}, {position_mode::paired, 1}};
  cfg.clamp = {clamp_kind::tanh, 1.9f};
  cfg.image_score = score_aggregation::max;
  cfg.top_k_fraction = 0.1;
  cfg.training.optimizer.learning_rate = 3e-4f;
  cfg.training.seed = 12345678901234ull;
  const detector_config text = to_detector_config(cfg);
  CHECK(text.at("scales") == "128x32x32,256x16x16");
  CHECK(text.at("positions") == "relative:2,paired:1");
  CHECK(text.at("clamp") == "tanh");
  CHECK(text.at("clamp_alpha") == "1.9");  // the shortest text that reads back as the same float
  CHECK(text.at("score.image") == "max");
  CHECK(text.at("train.learning_rate") == "0.0003");
  CHECK(text.at("train.seed") == "12345678901234");
  const msflow_config back = from_detector_config<msflow_config>(text);
  CHECK(to_detector_config(back) == text);
  CHECK(back.training.optimizer.learning_rate == cfg.training.optimizer.learning_rate);
  CHECK(back.clamp.alpha == cfg.clamp.alpha);
  CHECK(back.positions == cfg.positions);
}

TEST_CASE("numbers are written as the shortest text that reads back exactly", "[config]") {
  CHECK(detail::number_text(0.1f) == "0.1");
  CHECK(detail::number_text(1e-5) == "1e-05");
  CHECK(detail::number_text(90.0) == "90");  // a whole number written out, not "9e+01"
  CHECK(detail::number_text(1300.0) == "1300");
  CHECK(detail::number_text(-7.0f) == "-7");
  CHECK(detail::number_text(1e12f) == "1e+12");  // shorter than its digits
  CHECK(detail::number_text(-0.0) == "-0");
  CHECK(detail::number_text(2.5) == "2.5");
}

TEST_CASE("configuration text is parsed strictly and errors name the setting", "[config]") {
  const detector_config good = to_detector_config(msflow_config::recommended({{16, 8, 8}}));
  const auto with = [&](const std::string& key, const std::string& value) {
    detector_config c = good;
    c.set(key, value);
    return c;
  };
  const struct {
    const char* key;
    const char* value;
    const char* message;
  } cases[] = {
      {"groups", "four", "setting 'groups' = 'four' is not an integer"},
      {"groups", "4 ", "is not an integer"},
      {"groups", "1", "groups must be in [2, 4096], got 1"},
      {"hidden", "1e3", "is not an integer"},
      {"clamp", "sigmoid", "one of none, atan, tanh"},
      {"clamp_alpha", "inf", "is not a finite number"},
      {"clamp_alpha", "1e300", "is not a finite number"},  // beyond float
      {"learn_gain", "yes", "true or false"},
      {"scales", "16x8", "a list of CxHxW shapes"},
      {"kernels", "3,,1", "is not an integer"},
      {"train.epochs", "0", "train.epochs must be in [1, 100000]"},
      {"train.seed", "-1", "is not an unsigned integer"},
      {"score.image", "median", "one of mean, max, top_k_mean"},
  };
  for (const auto& c : cases) {
    INFO(c.key << " = " << c.value);
    const error e = error_of([&] { from_detector_config<msflow_config>(with(c.key, c.value)); });
    CHECK(e.code() == errc::invalid_argument);
    CHECK_THAT(e.what(), Catch::Contains(c.message));
  }
  // From a model file the same problems are bad files.
  CHECK(error_of([&] { from_detector_config<msflow_config>(with("groups", "x"), errc::bad_file); }).code() == errc::bad_file);
  CHECK(error_of([&] { from_detector_config<msflow_config>(with("groups", "1"), errc::bad_file); }).code() == errc::bad_file);

  // Every setting must be there, and nothing else.
  detector_config missing;
  for (const auto& [key, value] : good.entries())
    if (key != "hidden") missing.set(key, value);
  CHECK_THAT(error_of([&] { from_detector_config<msflow_config>(missing); }).what(), Catch::Contains("lacks the setting 'hidden'"));
  CHECK_THAT(error_of([&] { from_detector_config<msflow_config>(with("hiden", "3")); }).what(),
             Catch::Contains("unknown setting 'hiden'"));
}

TEST_CASE("changes to a configuration must name its settings", "[config]") {
  detector_config c = recommended_config("msflow", {{16, 8, 8}});
  c.update({{"hidden", "32"}, {"train.epochs", "2"}});
  CHECK(c.at("hidden") == "32");
  CHECK(c.at("train.epochs") == "2");
  const error e = error_of([&] { c.update({{"hiden", "32"}}); });
  CHECK(e.code() == errc::invalid_argument);
  CHECK_THAT(e.what(), Catch::Contains("unknown setting 'hiden'") && Catch::Contains("hidden"));
  CHECK(detector_config::parse_assignment("kernels=3,1") == detector_config::entry{"kernels", "3,1"});
  CHECK(detector_config::parse_assignment("positions=") == detector_config::entry{"positions", ""});
  for (const char* bad : {"kernels", "=3", ""}) CHECK_THROWS_AS(detector_config::parse_assignment(bad), error);
}

TEST_CASE("the registry finds every kind by name", "[config][registry]") {
  const std::vector<detector_info>& kinds = detector_kinds();
  REQUIRE(!kinds.empty());
  for (const detector_info& k : kinds) {
    INFO(k.kind);
    CHECK(detector_kind(k.kind).kind == k.kind);
    CHECK(!k.summary.empty());
    // Teacher-student kinds need three levels, each half the size of the one before (and STFPM the image).
    const bool image = reads_image(k, {});
    const bool teacher_student = image || k.kind == "rd" || k.kind == "fcl";
    std::vector<scale_shape> shapes{{32, 16, 16}, {64, 8, 8}};
    if (teacher_student) shapes = {{8, 16, 16}, {16, 8, 8}, {32, 4, 4}};
    if (image) shapes.insert(shapes.begin(), scale_shape{3, 64, 64});
    const detector_config config = recommended_config(k.kind, shapes);
    const std::unique_ptr<detector> d = make_detector(k.kind, config);
    CHECK(std::string(d->kind()) == k.kind);
    CHECK(!d->fitted());
    CHECK(d->config() == config);
    // A memory bank (PatchCore) is empty until fit; every other kind has its parameters from the start.
    if (k.kind != "patchcore") CHECK(d->stats().parameters > 0.0);
  }
  CHECK(make_detector("msflow", msflow_config::recommended({{16, 8, 8}}))->input_shapes() ==
        std::vector<scale_shape>{{16, 8, 8}});
  const error e = error_of([] { make_detector("nosuch", detector_config{}); });
  CHECK(e.code() == errc::invalid_argument);
  CHECK_THAT(e.what(), Catch::Contains("unknown detector 'nosuch'") && Catch::Contains("msflow"));
  CHECK_THROWS_AS(recommended_config("nosuch", {{16, 8, 8}}), error);
  CHECK(paper_config("msflow") == to_detector_config(msflow_config::paper()));
}

TEST_CASE("a model file of an unknown kind is a clear bad file", "[config][registry][model_file]") {
  testing::temp_folder dir;
  model_file_contents m;
  m.kind = "futureflow";
  m.config = {{"x", "1"}};
  write_model_file(dir / "future.flowad", m);
  const error e = error_of([&] { load_detector(dir / "future.flowad"); });
  CHECK(e.code() == errc::bad_file);
  CHECK_THAT(e.what(), Catch::Contains("'futureflow'") && Catch::Contains("msflow"));
}
