// flowad demo: the whole pipeline on generated data, with nothing to download: a synthetic inspection
// dataset (woven fabric with scratches, spots and cracks), the weight-free filter-bank extractor, an
// MS-Flow detector, the metrics, and heatmaps of every test image.
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "flowad/data/fabric.hpp"
#include "flowad/data/mvtec_layout.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/pipeline/evaluate.hpp"

namespace flowad {
namespace cli {

int run_demo(int argc, char** argv, int first) {
  const args a(argc, argv, first, {"help"});
  if (a.flag("help")) {
    std::printf("usage: flowad demo [--out DIR] [--train N] [--test N] [--epochs N] [--seed S] [scoring options]\n\n"
                "Generates a synthetic inspection dataset in DIR/data (MVTec AD layout), fits MS-Flow on the\n"
                "weight-free filter-bank features of its defect-free images, evaluates it on the test images and\n"
                "writes a heatmap of every test image to DIR/heatmaps (default DIR: ./flowad-demo).\n\n%s",
                scoring_options_help());
    return 0;
  }
  const fs::path out = a.get("out", "flowad-demo");
  synthetic_options data_options;
  data_options.train_count = a.integer("train", 96);
  data_options.test_count = a.integer("test", 40);
  data_options.seed = static_cast<std::uint64_t>(a.integer("seed", 1));
  fit_options fit = fit_options_from(a);
  if (!a.has("epochs")) fit.epochs = 20;
  const score_options scoring = scoring_from(a);
  a.reject_unknown();

  // 1. Data.
  std::fprintf(stderr, "generating %lld training and %lld test images in %s\n",
               static_cast<long long>(data_options.train_count), static_cast<long long>(data_options.test_count),
               (out / "data").c_str());
  const synthetic_dataset generated = generate_synthetic_dataset(data_options);
  fs::remove_all(out / "data");
  write_mvtec_layout(generated, out / "data");
  const mvtec_category data = read_mvtec_category(out / "data");

  // 2. Features and model: the filter bank's two coarser levels, a light MS-Flow.
  feature_setup features;
  features.options.image_size = data_options.height;
  features.options.levels = {"level2", "level3"};
  const std::unique_ptr<extractor> ex = make_extractor(features.extractor_name);
  msflow_config base = msflow_config::seed();
  base.groups = 4;
  base.hidden = 128;
  base.blocks = 4;
  msflow model(msflow_config_for(*ex, features.options, base));
  model.check_score_options(scoring);  // before fitting, not after
  record_pipeline(model, features, *ex);
  std::fprintf(stderr, "MS-Flow on %s features %s: %.2f M parameters, %.2f GMAC per image\n", ex->name().c_str(),
               codec::encode(model.config().scales).c_str(), model.stats().parameters * 1e-6,
               model.stats().macs_per_image * 1e-9);

  // 3. Fit and evaluate.
  evaluation_options options = evaluation_options_for(model, *ex, features, fit, scoring, true);
  evaluation_progress bars(options, data.train.size());
  const evaluation_result r = evaluate(data, *ex, model, options);
  bars.finish();

  // 4. Heatmaps.
  std::vector<std::string> prefixes;
  for (const test_sample& t : data.test) prefixes.push_back(t.defect_type);
  const auto written = write_heatmaps(out / "heatmaps", data.test_images(), r.maps, heatmap_range_of(model), &r.masks, prefixes);
  model.save(out / "model.flowad");

  std::printf("\nsynthetic inspection data: %zu training images, %zu test images (%zu defective)\n", data.train.size(),
              data.test.size(), static_cast<std::size_t>(std::count(r.labels.begin(), r.labels.end(), 1)));
  std::printf("image AUROC %.4f   pixel AUROC %.4f   AUPRO %.4f   fit %.1f s   %.1f ms per test image\n", r.image_auroc,
              r.pixel_auroc, r.aupro, r.fit_seconds, r.ms_per_image);
  std::printf("heatmaps: %zu overlays in %s (ground truth outlined in white), e.g. %s\n", written.size(),
              (out / "heatmaps").c_str(), written.empty() ? "-" : written.back().filename().c_str());
  std::printf("model: %s (score new images with: flowad score --model %s --images IMAGE...)\n",
              (out / "model.flowad").c_str(), (out / "model.flowad").c_str());
  return 0;
}

}  // namespace cli
}  // namespace flowad
