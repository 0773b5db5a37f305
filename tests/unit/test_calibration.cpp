// Threshold calibration from out-of-fold scores (pipeline/inspector.hpp calibration_method), its record
// in the model file, the thresholds evaluate() tries on a test set, and the binomial intervals it
// reports them with (metrics/binomial.hpp).
#include <catch2/catch.hpp>

#include <algorithm>
#include <optional>
#include <cmath>
#include <functional>
#include <string>

#include "flowad/data/fabric.hpp"
#include "flowad/data/mvtec_layout.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/metrics/binomial.hpp"
#include "flowad/metrics/threshold.hpp"
#include "flowad/pipeline/evaluate.hpp"
#include "flowad/pipeline/inspector.hpp"
#include "support/model_file_entries.hpp"
#include "support/synthetic_images.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using flowad::testing::temp_folder;

namespace {

synthetic_dataset fabric(index_t train, index_t test, std::uint64_t seed = 5) { return testing::fabric(32, 48, train, test, seed); }

// A small MS-Flow on the filter bank: a fit takes a fraction of a second.
pipeline_config tiny_pipeline() {
  pipeline_config c = pipeline_config::recommended("filterbank");
  c.shorter_side = 32;
  c.settings = {{"groups", "2"}, {"hidden", "8"}, {"blocks", "1"}, {"train.epochs", "1"}, {"train.batch_size", "4"}};
  return c;
}

inspector_fit_options out_of_fold(std::size_t folds, double target_fpr = 0.1) {
  inspector_fit_options o;
  o.calibration = calibration_method::out_of_fold;
  o.calibration_folds = folds;
  o.target_fpr = target_fpr;
  o.holdout_seed = 3;
  return o;
}

errc code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const error& e) {
    INFO(e.what());
    return e.code();
  }
  FAIL("no flowad::error thrown");
  return static_cast<errc>(0);
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const error& e) {
    return e.what();
  }
  return "(no error)";
}

using testing::with_entry;

std::string entry(const model_file_contents& m, const std::string& key) {
  for (const auto& [k, v] : m.metadata)
    if (k == key) return v;
  return "(missing)";
}

}  // namespace

TEST_CASE("clopper_pearson matches SciPy's beta quantiles", "[metrics][calibration]") {
  // Reference values: scipy.stats.beta.ppf(0.025, k, n - k + 1) and .ppf(0.975, k + 1, n - k), computed
  // with mpmath's regularized incomplete beta and cross-checked by exact rational binomial sums.
  struct known {
    std::size_t k, n;
    double lo, hi;
  };
  for (const known& c : {known{0, 26, 0.0, 0.13227460449775413}, known{7, 26, 0.11573221329150399, 0.47787478969383146},
                         known{26, 26, 0.8677253955022459, 1.0}, known{71, 71, 0.9493705920455964, 1.0},
                         known{1, 54, 0.0004687384038179604, 0.09891515950785126},
                         known{3, 10, 0.06673951117773447, 0.6524528500599973},
                         known{5, 100, 0.01643187918205216, 0.11283491110546276}}) {
    INFO(c.k << " of " << c.n);
    const binomial_interval ci = clopper_pearson(c.k, c.n);
    CHECK(ci.lo == Approx(c.lo).margin(1e-9));
    CHECK(ci.hi == Approx(c.hi).margin(1e-9));
  }
  // 0 of n has the closed form 1 - (alpha/2)^(1/n) for its upper end.
  CHECK(clopper_pearson(0, 40, 0.9).hi == Approx(1.0 - std::pow(0.05, 1.0 / 40.0)).margin(1e-12));
  CHECK(code_of([] { clopper_pearson(0, 0); }) == errc::invalid_argument);
  CHECK(code_of([] { clopper_pearson(27, 26); }) == errc::invalid_argument);
  CHECK(code_of([] { clopper_pearson(1, 26, 1.0); }) == errc::invalid_argument);
}

TEST_CASE("calibration folds hold every image out exactly once, seeded", "[calibration]") {
  for (const std::size_t count : {2u, 10u, 54u}) {
    for (const std::size_t folds : {2u, 5u}) {
      if (folds > count) continue;
      const std::vector<std::size_t> fold = calibration_fold_of(count, folds, 7);
      REQUIRE(fold.size() == count);
      std::vector<std::size_t> sizes(folds, 0);
      for (std::size_t f : fold) {
        REQUIRE(f < folds);
        ++sizes[f];
      }
      // Round-robin: the sizes differ by at most one, and every fold holds an image.
      CHECK(*std::max_element(sizes.begin(), sizes.end()) - *std::min_element(sizes.begin(), sizes.end()) <= 1);
      CHECK(*std::min_element(sizes.begin(), sizes.end()) >= 1);
      CHECK(calibration_fold_of(count, folds, 7) == fold);  // seeded
    }
  }
  // Another seed deals the images differently; the folds are shuffled, not consecutive blocks.
  CHECK(calibration_fold_of(54, 5, 7) != calibration_fold_of(54, 5, 8));
  std::vector<std::size_t> blocks(54);
  for (std::size_t i = 0; i < 54; ++i) blocks[i] = i % 5;
  CHECK(calibration_fold_of(54, 5, 7) != blocks);
  CHECK(code_of([] { calibration_fold_of(10, 1, 0); }) == errc::invalid_argument);
  CHECK(code_of([] { calibration_fold_of(4, 5, 0); }) == errc::invalid_argument);
}

TEST_CASE("out-of-fold calibration scores each image with a model that did not see it", "[calibration][inspector]") {
  const synthetic_dataset data = fabric(12, 2);
  const std::size_t folds = 3;
  inspector model(tiny_pipeline());
  inspector_fit_options options = out_of_fold(folds, 0.2);
  std::vector<fit_stage> stages;
  options.on_fit = [&](const fit_stage& s) { stages.push_back(s); };
  const inspector_fit_report report = model.fit(data.train, options);

  // The final model on all 12 images first, then one model per fold on the other folds' images.
  REQUIRE(stages.size() == folds + 1);
  CHECK(stages[0].final_model);
  CHECK(stages[0].images == 12);
  const std::vector<std::size_t> fold_of = calibration_fold_of(12, folds, options.holdout_seed);
  for (std::size_t f = 0; f < folds; ++f) {
    CHECK(stages[f + 1].index == f + 2);
    CHECK(stages[f + 1].count == folds + 1);
    CHECK(!stages[f + 1].final_model);
    CHECK(stages[f + 1].fold == f);
    CHECK(stages[f + 1].images == static_cast<std::size_t>(std::count_if(fold_of.begin(), fold_of.end(), [&](std::size_t g) { return g != f; })));
  }
  CHECK(report.fit_images == 12);
  CHECK(report.held_out_images == 0);
  CHECK(report.calibration_fits == folds);
  REQUIRE(report.calibration_scores.size() == 12);

  // The threshold is threshold_for_fpr of the out-of-fold scores, and says how it was set.
  REQUIRE(model.threshold());
  const fpr_threshold expected = threshold_for_fpr(span<const double>(report.calibration_scores), 0.2);
  CHECK(model.threshold()->value == expected.threshold);
  CHECK(model.threshold()->bounded == expected.bounded);
  CHECK(model.threshold()->held_out_images == 12);
  CHECK(model.threshold()->folds == folds);
  CHECK(model.threshold()->target_fpr == 0.2);
  CHECK(calibration_name(*model.threshold()) == "out_of_fold");

  // Each out-of-fold score is what a model fitted on the other folds alone gives that image...
  inspector_fit_options plain;
  plain.calibration = calibration_method::holdout;
  plain.holdout = 0.0;
  for (std::size_t f = 0; f < folds; ++f) {
    std::vector<byte_image> inside, outside;
    std::vector<std::size_t> outside_index;
    for (std::size_t i = 0; i < 12; ++i) {
      if (fold_of[i] == f) {
        outside.push_back(data.train[i]);
        outside_index.push_back(i);
      } else {
        inside.push_back(data.train[i]);
      }
    }
    inspector fold_model(tiny_pipeline());
    fold_model.fit(inside, plain);
    const scores s = fold_model.score(outside);
    for (std::size_t j = 0; j < outside.size(); ++j) {
      INFO("fold " << f << ", image " << outside_index[j]);
      CHECK(report.calibration_scores[outside_index[j]] == Approx(s.image[j]).epsilon(1e-4));
    }
  }
  // ... and the final model is the one fitted on every image.
  inspector all(tiny_pipeline());
  all.fit(data.train, plain);
  CHECK(!all.threshold());
  const scores a = all.score(data.test), b = model.score(data.test);
  for (std::size_t i = 0; i < a.image.size(); ++i) CHECK(b.image[i] == Approx(a.image[i]).epsilon(1e-4));
}

TEST_CASE("automatic calibration uses folds with enough images, else the holdout", "[calibration][inspector]") {
  inspector_fit_options automatic;
  automatic.calibration_folds = 2;
  automatic.holdout = 0.25;
  {
    inspector model(tiny_pipeline());
    const inspector_fit_report report = model.fit(fabric(4, 2).train, automatic);  // 4 = 2 x 2 images: folds
    REQUIRE(model.threshold());
    CHECK(model.threshold()->folds == 2);
    CHECK(report.calibration_scores.size() == 4);
  }
  {
    inspector model(tiny_pipeline());
    const inspector_fit_report report = model.fit(fabric(3, 2).train, automatic);  // fewer: the holdout
    REQUIRE(model.threshold());
    CHECK(model.threshold()->folds == 0);
    CHECK(model.threshold()->held_out_images == 1);
    CHECK(calibration_name(*model.threshold()) == "holdout");
    CHECK(report.fit_images == 2);
  }
  {
    automatic.holdout = 0.0;  // the old meaning: no threshold
    inspector model(tiny_pipeline());
    model.fit(fabric(4, 2).train, automatic);
    CHECK(!model.threshold());
  }
}

TEST_CASE("bad calibration options are refused before any fit", "[calibration][inspector]") {
  const std::vector<byte_image> images = fabric(6, 2).train;
  inspector model(tiny_pipeline());
  const auto refused = [&](const inspector_fit_options& o, const std::string& named) {
    const std::string what = message_of([&] { model.fit(images, o); });
    INFO(what);
    CHECK(code_of([&] { model.fit(images, o); }) == errc::invalid_argument);
    CHECK_THAT(what, Catch::Contains(named));
  };
  refused(out_of_fold(1), "calibration_folds must be at least 2");
  refused(out_of_fold(0), "calibration_folds must be at least 2");
  refused(out_of_fold(7), "needs at least as many images, got 6");
  refused(out_of_fold(2, 0.0), "target_fpr must be in (0, 1)");
  refused(out_of_fold(2, 1.0), "target_fpr must be in (0, 1)");
  inspector_fit_options automatic;
  automatic.calibration_folds = 1;
  refused(automatic, "calibration_folds");
  CHECK(!model.fitted());
}

TEST_CASE("the model file records how the threshold was set; older files still load", "[calibration][inspector]") {
  temp_folder dir;
  inspector model(tiny_pipeline());
  model.fit(fabric(6, 2).train, out_of_fold(3));
  model.save(dir / "oof.flowad");
  const model_file_contents contents = read_model_file(dir / "oof.flowad");
  CHECK(entry(contents, "threshold.method") == "out_of_fold");
  CHECK(entry(contents, "threshold.folds") == "3");
  CHECK(entry(contents, "threshold.held_out_images") == "6");
  const inspector loaded = inspector::load(dir / "oof.flowad");
  REQUIRE(loaded.threshold());
  CHECK(loaded.threshold()->folds == 3);
  CHECK(loaded.threshold()->held_out_images == 6);
  CHECK(loaded.threshold()->value == model.threshold()->value);
  CHECK(calibration_name(*loaded.threshold()) == "out_of_fold");

  // A file from before the keys existed: a threshold from held-out images.
  const std::filesystem::path old_file = dir / "old.flowad";
  write_model_file(old_file, with_entry(with_entry(contents, "threshold.method", std::nullopt), "threshold.folds", std::nullopt));
  const inspector old = inspector::load(old_file);
  REQUIRE(old.threshold());
  CHECK(old.threshold()->folds == 0);
  CHECK(calibration_name(*old.threshold()) == "holdout");
  CHECK(old.threshold()->value == model.threshold()->value);

  // A hand-set threshold says so, and round-trips.
  inspector manual = inspector::load(dir / "oof.flowad");
  manual.set_threshold(1.5);
  manual.save(dir / "manual.flowad");
  CHECK(entry(read_model_file(dir / "manual.flowad"), "threshold.method") == "manual");
  CHECK(calibration_name(*inspector::load(dir / "manual.flowad").threshold()) == "manual");

  // Damaged entries are refused naming the file and the key.
  const auto refused = [&](const model_file_contents& damaged, const std::string& key) {
    const std::filesystem::path file = dir / "damaged.flowad";
    write_model_file(file, damaged);
    const std::string what = message_of([&] { inspector::load(file); });
    INFO(what);
    CHECK(code_of([&] { inspector::load(file); }) == errc::bad_file);
    CHECK_THAT(what, Catch::Contains(file.string()) && Catch::Contains(key));
  };
  for (const char* bad : {"1", "7", "x", "-2"}) {
    INFO(bad);
    refused(with_entry(contents, "threshold.folds", std::string(bad)), "threshold.folds");
  }
  refused(with_entry(contents, "threshold.method", std::string("holdout")), "threshold.method");
  refused(with_entry(contents, "threshold.method", std::string("guess")), "threshold.method");
  refused(with_entry(contents, "threshold", std::nullopt), "threshold.");
}

TEST_CASE("evaluate tries out-of-fold thresholds on the test set without changing the measured model",
          "[calibration][evaluate]") {
  temp_folder dir;
  write_mvtec_layout(fabric(10, 8, 6), dir / "data");
  const mvtec_category category = read_mvtec_category(dir / "data");
  evaluation_options options;
  options.fit.calibration_folds = 2;
  inspector plain_model(tiny_pipeline());
  const evaluation_result plain = evaluate(plain_model, category, options);
  CHECK(plain.thresholds.empty());
  CHECK(!plain_model.threshold());

  options.target_fprs = {0.3, 0.05};
  inspector model(tiny_pipeline());
  const evaluation_result r = evaluate(model, category, options);
  // The metrics measure the model fitted on every training image, as without thresholds.
  REQUIRE(r.image_scores.size() == plain.image_scores.size());
  for (std::size_t i = 0; i < r.image_scores.size(); ++i) CHECK(r.image_scores[i] == Approx(plain.image_scores[i]).epsilon(1e-4));
  REQUIRE(r.thresholds.size() == 2);
  // The inspector keeps the first target's threshold.
  REQUIRE(model.threshold());
  CHECK(model.threshold()->value == r.thresholds[0].threshold.value);
  for (const threshold_evaluation& t : r.thresholds) {
    INFO("target " << t.target_fpr);
    CHECK(t.threshold.folds == 2);
    CHECK(t.threshold.held_out_images == 10);
    std::size_t good = 0, false_positives = 0, defective = 0, detected = 0;
    for (std::size_t i = 0; i < r.image_scores.size(); ++i) {
      const bool flagged = r.image_scores[i] >= t.threshold.value;
      (r.labels[i] == 0 ? good : defective) += 1;
      (r.labels[i] == 0 ? false_positives : detected) += flagged ? 1 : 0;
    }
    CHECK(t.good_images == good);
    CHECK(t.false_positives == false_positives);
    CHECK(t.defective_images == defective);
    CHECK(t.detected == detected);
    CHECK(t.fpr_interval.lo == clopper_pearson(false_positives, good).lo);
    CHECK(t.recall_interval.hi == clopper_pearson(detected, defective).hi);
    CHECK(t.fpr() == Approx(static_cast<double>(false_positives) / static_cast<double>(good)));
  }
  // 10 scores cannot bound 5 %: the largest score; 30 % they can.
  CHECK(r.thresholds[0].threshold.bounded);
  CHECK(!r.thresholds[1].threshold.bounded);
  CHECK(r.thresholds[1].threshold.value >= r.thresholds[0].threshold.value);

  for (const double bad : {0.0, 1.0, -0.1}) {
    evaluation_options o = options;
    o.target_fprs = {0.05, bad};
    inspector m(tiny_pipeline());
    INFO(bad);
    CHECK(code_of([&] { evaluate(m, category, o); }) == errc::invalid_argument);
  }
  evaluation_options holdout = options;
  holdout.fit.calibration = calibration_method::holdout;
  inspector m(tiny_pipeline());
  CHECK_THAT(message_of([&] { evaluate(m, category, holdout); }), Catch::Contains("out of fold"));
}

TEST_CASE("out-of-fold calibration works for a detector that scores rotated copies", "[calibration][differnet]") {
  pipeline_config c = pipeline_config::recommended("filterbank", "", "differnet");
  c.shorter_side = 32;
  c.settings = {{"hidden", "8"}, {"blocks", "1"}, {"train.epochs", "1"}, {"rotations.test", "2"}};
  inspector model(c);
  const synthetic_dataset data = fabric(6, 2);
  const inspector_fit_report report = model.fit(data.train, out_of_fold(2, 0.2));
  REQUIRE(report.calibration_scores.size() == 6);
  REQUIRE(model.threshold());
  CHECK(model.threshold()->folds == 2);
  CHECK(model.threshold()->value == threshold_for_fpr(span<const double>(report.calibration_scores), 0.2).threshold);
  for (double s : report.calibration_scores) CHECK(std::isfinite(s));
}
