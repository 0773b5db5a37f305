// Choosing a detector on validation (pipeline/auto_select.hpp): the rule on hand-made figures, every
// candidate validated on the same fold as `validate` would, the choice fitted and kept in the model
// file, and bad candidates refused before anything is fitted.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "flowad/data/fabric.hpp"
#include "flowad/io/image.hpp"
#include "flowad/pipeline/auto_select.hpp"
#include "support/synthetic_images.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using flowad::testing::temp_folder;

namespace {

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

candidate_figures figures(const std::string& kind, double image, double pixel, double pro, double ms) {
  candidate_figures c;
  c.kind = kind;
  c.image_auroc = image;
  c.pixel_auroc = pixel;
  c.aupro = pro;
  c.ms_per_image = ms;
  return c;
}

std::vector<std::filesystem::path> write_good_images(const temp_folder& dir) { return testing::write_good_images(dir, 5); }

pipeline_config base_config() {
  pipeline_config c = pipeline_config::recommended("filterbank");
  c.height = c.width = 64;
  return c;
}

// A tiny MS-Flow and PatchCore, one epoch for the flow; two defects per held-out image.
selection_options tiny_selection() {
  selection_options o;
  o.candidates = {"msflow", "patchcore"};
  o.settings["msflow"] = {{"groups", "2"}, {"hidden", "8"}, {"blocks", "1"}, {"train.batch_size", "4"}};
  o.epochs = 1;
  o.validation.defects_per_image = 2;
  return o;
}

std::string failure(const std::function<void()>& f, errc expected) {
  try {
    f();
  } catch (const error& e) {
    CHECK(e.code() == expected);
    return e.what();
  }
  FAIL("no error");
  return {};
}

}  // namespace

TEST_CASE("the selection rule keeps the best mean figure, and the faster of near ties", "[auto_select]") {
  std::vector<candidate_figures> c{figures("msflow", 0.90, 0.95, 0.85, 10.0), figures("patchcore", 0.95, 0.97, 0.90, 50.0),
                                   figures("rd", 0.80, 0.90, 0.80, 5.0)};
  CHECK(apply_selection_rule(c) == 1);
  CHECK(c[1].figure == Approx((0.95 + 0.97 + 0.90) / 3.0));
  CHECK(c[2].figure == Approx((0.80 + 0.90 + 0.80) / 3.0));

  // Within the margin of the best, the faster wins; just outside it, the better.
  c[0] = figures("msflow", 0.95, 0.97, 0.90 - 3.0 * (selection_tie_margin - 1e-4), 10.0);
  CHECK(apply_selection_rule(c) == 0);
  c[0] = figures("msflow", 0.95, 0.97, 0.90 - 3.0 * (selection_tie_margin + 1e-4), 10.0);
  CHECK(apply_selection_rule(c) == 1);
  // A tie of figures and speed: the first in order.
  c[0] = figures("msflow", 0.95, 0.97, 0.90, 50.0);
  CHECK(apply_selection_rule(c) == 0);

  // A detector without maps is not eligible while another has them, however good its image AUROC...
  c = {figures("differnet", 1.0, not_a_number, not_a_number, 1.0), figures("msflow", 0.7, 0.8, 0.6, 10.0)};
  CHECK(apply_selection_rule(c) == 1);
  CHECK(std::isnan(c[0].figure));
  // ...and image AUROC alone decides when none has them.
  c = {figures("differnet", 0.8, not_a_number, not_a_number, 1.0), figures("other", 0.9, not_a_number, not_a_number, 10.0)};
  CHECK(apply_selection_rule(c) == 1);
  CHECK(c[1].figure == 0.9);

  std::vector<candidate_figures> none;
  failure([&] { apply_selection_rule(none); }, errc::empty_input);
}

TEST_CASE("every candidate is validated on the same fold as validate does, and the rule chooses", "[auto_select]") {
  temp_folder dir;
  const std::vector<std::filesystem::path> good = write_good_images(dir);
  const selection_options options = tiny_selection();
  std::vector<std::string> announced;
  selection_options watched = options;
  watched.on_candidate = [&](const std::string& kind, std::size_t i, std::size_t n) {
    CHECK(n == 2);
    CHECK(i == announced.size());
    announced.push_back(kind);
  };
  const detector_selection s = select_detector(base_config(), good, watched);
  CHECK(announced == options.candidates);
  REQUIRE(s.candidates.size() == 2);
  CHECK(s.images == 10);
  CHECK(s.held_out_images == 2);
  CHECK(s.rule == selection_rule_text());
  // The budget applies to the candidate that trains; PatchCore has no epochs.
  CHECK(*s.candidates[0].config.settings.find("train.epochs") == "1");
  CHECK(s.candidates[1].config.settings.find("train.epochs") == nullptr);

  // Each candidate's figures are what validate gives for its configuration on the same split: the
  // candidates were compared on the same images with the same defects.
  for (const candidate_figures& c : s.candidates) {
    inspector model(c.config);
    const evaluation_result r = validate_with_synthetic_defects(model, good, evaluation_options{}, options.validation);
    CHECK(c.image_auroc == Approx(r.image_auroc).margin(1e-6));
    CHECK(c.pixel_auroc == Approx(r.pixel_auroc).margin(1e-6));
    CHECK(c.aupro == Approx(r.aupro).margin(1e-6));
    CHECK(c.figure == Approx((r.image_auroc + r.pixel_auroc + r.aupro) / 3.0).margin(1e-6));
    CHECK(c.ms_per_image > 0.0);
  }
  std::vector<candidate_figures> again = s.candidates;
  CHECK(s.chosen == s.candidates[apply_selection_rule(again)].kind);
}

TEST_CASE("the chosen detector is fitted on every image and the model file keeps the selection", "[auto_select]") {
  temp_folder dir;
  const std::vector<std::filesystem::path> good = write_good_images(dir);
  detector_selection s = select_detector(base_config(), good, tiny_selection());
  // Make the flow the choice whatever the figures, to check its own settings are the ones fitted.
  s.chosen = "msflow";
  inspector_fit_report report;
  inspector_fit_options fit;
  fit.holdout = 0.2;
  const inspector model = fit_selected(s, good, fit, &report);
  CHECK(std::string(model.model().kind()) == "msflow");
  CHECK(model.model().config().at("hidden") == "8");
  CHECK(model.model().config().at("train.epochs") == "1");
  CHECK(report.fit_images + report.held_out_images == good.size());
  REQUIRE(model.threshold());
  REQUIRE(model.selection());

  const auto path = dir / "auto.flowad";
  model.save(path);
  const inspector loaded = inspector::load(path);
  REQUIRE(loaded.selection());
  const detector_selection r = *loaded.selection();
  CHECK(r.rule == s.rule);
  CHECK(r.chosen == "msflow");
  CHECK(r.images == s.images);
  CHECK(r.held_out_images == s.held_out_images);
  CHECK(r.validation.holdout == s.validation.holdout);
  CHECK(r.validation.defects_per_image == 2);
  CHECK(r.validation.defect_types == s.validation.defect_types);
  REQUIRE(r.candidates.size() == s.candidates.size());
  for (std::size_t i = 0; i < r.candidates.size(); ++i) {
    CHECK(r.candidates[i].kind == s.candidates[i].kind);
    CHECK(r.candidates[i].image_auroc == s.candidates[i].image_auroc);  // number_text reads back exactly
    CHECK(r.candidates[i].pixel_auroc == s.candidates[i].pixel_auroc);
    CHECK(r.candidates[i].aupro == s.candidates[i].aupro);
    CHECK(r.candidates[i].figure == s.candidates[i].figure);
    CHECK(r.candidates[i].ms_per_image == s.candidates[i].ms_per_image);
  }
  // The detector's metadata shows it to `flowad info`, and the public reader agrees.
  CHECK(loaded.model().metadata().at("selection.chosen") == "msflow");
  CHECK(recorded_selection(loaded.model())->chosen == "msflow");
  // A selection read back cannot be refitted: its configurations are not recorded.
  failure([&] { fit_selected(r, good, fit); }, errc::invalid_argument);

  // An inspector given its detector by hand records none, and saving it writes none.
  inspector plain(s.candidates[1].config);
  plain.fit(good, fit);
  CHECK(!plain.selection());
  failure([&] { plain.set_selection(s); }, errc::invalid_argument);  // it chose msflow, this is patchcore
  plain.save(dir / "plain.flowad");
  CHECK(!inspector::load(dir / "plain.flowad").selection());

  // A damaged record is the file's error, naming the entry.
  auto d = load_detector(path);
  d->set_metadata("selection.chosen", "rd");
  d->save(dir / "damaged.flowad");
  CHECK_THAT(failure([&] { inspector::load(dir / "damaged.flowad"); }, errc::bad_file), Catch::Contains("selection.chosen"));
  d = load_detector(path);
  d->set_metadata("selection.patchcore.aupro", "1.5");
  d->save(dir / "damaged.flowad");
  CHECK_THAT(failure([&] { inspector::load(dir / "damaged.flowad"); }, errc::bad_file),
             Catch::Contains("selection.patchcore.aupro"));
}

TEST_CASE("bad candidates are refused before anything is fitted", "[auto_select]") {
  temp_folder dir;
  const std::vector<std::filesystem::path> good = write_good_images(dir);
  const auto message = [&](const selection_options& o, const pipeline_config& base = base_config()) {
    return failure([&] { select_detector(base, good, o); }, errc::invalid_argument);
  };
  selection_options o = tiny_selection();
  o.candidates = {"msflow", "nosuch"};
  CHECK_THAT(message(o), Catch::Contains("unknown detector 'nosuch'") && Catch::Contains("known: msflow"));
  o.candidates = {"auto"};
  o.settings.clear();
  CHECK_THAT(message(o), Catch::Contains("unknown detector 'auto'"));
  o = tiny_selection();
  o.candidates = {"msflow", "patchcore", "msflow"};
  CHECK_THAT(message(o), Catch::Contains("'msflow' is given twice"));
  o = tiny_selection();
  o.settings["rd"] = {{"train.epochs", "1"}};
  CHECK_THAT(message(o), Catch::Contains("'rd', which is not a candidate"));
  o = tiny_selection();
  o.settings["patchcore"] = {{"hiden", "3"}};
  CHECK_THAT(message(o), Catch::Contains("candidate 'patchcore'") && Catch::Contains("hiden"));
  o = tiny_selection();
  pipeline_config base = base_config();
  base.levels = {"level1"};
  CHECK_THAT(message(o, base), Catch::Contains("levels"));
  base = base_config();
  base.settings = {{"hidden", "8"}};
  CHECK_THAT(message(o, base), Catch::Contains("settings"));
  o.candidates.clear();
  failure([&] { select_detector(base_config(), good, o); }, errc::empty_input);
}
