// The peer detectors on real data, end to end through the image pipeline: MPDD metal_plate (54
// training images, the smallest dev category), ResNet18 features, each detector's recipe on a reduced
// budget so that CI stays within its time. The floors sit below what these budgets measured (in the
// comments) and far above chance; the full-budget results are in docs/results.md.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "flowad/io/dataset.hpp"
#include "flowad/pipeline/evaluate.hpp"
#include "support/shared_data.hpp"

using namespace flowad;

namespace {

struct peer_case {
  std::string kind;
  std::vector<std::pair<std::string, std::string>> settings;  // the reduced budget
  double image_auroc_floor;
  double pixel_auroc_floor;  // NaN: the detector does not localise
  double aupro_floor;
};

evaluation_result evaluate_on_metal_plate(const peer_case& c) {
  const mvtec_category metal_plate = read_mvtec_category(testing::shared_path("data/mpdd_metal_plate"));
  pipeline_config config =
      pipeline_config::recommended("resnet18", testing::shared_path("weights/resnet18").string(), c.kind);
  for (const auto& [key, value] : c.settings) config.settings.set(key, value);
  inspector model(config);
  const evaluation_result r = evaluate(model, metal_plate);
  WARN(c.kind << " on metal_plate, reduced budget: image AUROC " << r.image_auroc << ", pixel AUROC " << r.pixel_auroc
              << ", AUPRO " << r.aupro << ", fit " << r.fit_seconds << " s, " << r.ms_per_image << " ms/image");
  CHECK(r.labels.size() == 97);
  CHECK(r.image_auroc >= c.image_auroc_floor);
  if (std::isnan(c.pixel_auroc_floor)) {
    CHECK(!model.model().localises());
    CHECK(std::isnan(r.pixel_auroc));
    CHECK(std::isnan(r.aupro));
  } else {
    CHECK(r.pixel_auroc >= c.pixel_auroc_floor);
    CHECK(r.aupro >= c.aupro_floor);
  }
  return r;
}

}  // namespace

// CS-Flow's γ-gated blocks start as the identity and, at the recipe's learning rate, barely leave it
// within a CPU budget (docs/results.md): one epoch scores what six do. The floors check the pipeline
// (three scales, product maps, alignment), not learning; the unit tests check that.
TEST_CASE("CS-Flow detects and localises MPDD metal_plate defects on a reduced budget", "[real-data][csflow]") {
  evaluate_on_metal_plate({"csflow", {{"train.epochs", "1"}}, 0.55, 0.72, 0.35});  // measured 0.606 / 0.780 / 0.428
}

// The default budget: one epoch gave image AUROC 0.37 (pixel AUROC 0.93), two give 0.98.
TEST_CASE("CFlow-AD detects and localises MPDD metal_plate defects with its defaults", "[real-data][cflow]") {
  evaluate_on_metal_plate({"cflow", {}, 0.93, 0.93, 0.78});  // measured 0.9805 / 0.9567 / 0.8420
}

// DifferNet is near chance on metal_plate at any budget tried (0.637 with its defaults in
// docs/results.md; plates hang at varying angles, which its rotations do not remove): this checks the
// pipeline's rotated copies and that pixel metrics are not applicable, with no accuracy floor, so one
// epoch and four rotated copies do.
TEST_CASE("DifferNet scores MPDD metal_plate through rotated copies, and has no maps", "[real-data][differnet]") {
  const evaluation_result r =
      evaluate_on_metal_plate({"differnet", {{"train.epochs", "1"}, {"rotations.test", "4"}}, 0.0, NAN, NAN});
  CHECK(r.maps.numel() == 0);
  for (const double score : r.image_scores) CHECK(std::isfinite(score));
}

TEST_CASE("FastFlow detects and localises MPDD metal_plate defects on a reduced budget", "[real-data][fastflow]") {
  evaluate_on_metal_plate({"fastflow", {{"train.epochs", "4"}}, 0.85, 0.93, 0.75});  // measured 0.9101 / 0.9513 / 0.8196
}

TEST_CASE("PatchCore detects and localises MPDD metal_plate defects with its defaults", "[real-data][patchcore]") {
  evaluate_on_metal_plate({"patchcore", {}, 0.98, 0.97, 0.90});  // measured 1.0000 / 0.9880 / 0.9426
}
