// MS-Flow on real inspection data at a reduced budget: MVTec AD bottle, ResNet18 features. The full
// budget and its results are in docs/results.md; this keeps CI honest about the pipeline end to end.
#include <catch2/catch.hpp>

#include "flowad/extract/extractor.hpp"
#include "flowad/flows/msflow.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/pipeline/evaluate.hpp"
#include "support/shared_data.hpp"

using namespace flowad;

TEST_CASE("MS-Flow on ResNet18 features detects MVTec bottle defects at a reduced budget", "[real-data][msflow]") {
  const mvtec_category bottle = read_mvtec_category(testing::shared_path("data/mvtec_bottle"));
  const auto resnet = make_extractor("resnet18", testing::shared_path("weights/resnet18").string());

  evaluation_options options;
  options.features.image_size = 256;
  options.fit.epochs = 8;
  options.fit.optimizer.learning_rate = 1e-3f;
  options.fit.schedule.warmup_epochs = 1;

  msflow_config cfg = msflow_config::seed();
  cfg.hidden = 128;
  cfg.blocks = 4;
  msflow model(msflow_config_for(*resnet, options.features, cfg));

  const evaluation_result r = evaluate(bottle, *resnet, model, options);
  WARN("bottle, reduced budget: image AUROC " << r.image_auroc << ", pixel AUROC " << r.pixel_auroc << ", AUPRO "
                                             << r.aupro << ", fit " << r.fit_seconds << " s");
  CHECK(r.fit.discarded_steps == 0);
  CHECK(r.fit.final_loss < r.fit.epoch_losses.front());
  CHECK(r.image_auroc >= 0.98);
  CHECK(r.pixel_auroc >= 0.94);
  CHECK(r.labels.size() == 83);
}
