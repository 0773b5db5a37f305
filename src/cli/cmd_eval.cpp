// flowad eval: fit on a category's train/good images and measure image AUROC, pixel AUROC and AUPRO
// on its test set. flowad validate: the same measured on held-out defect-free images with synthetic
// defects, to choose settings without a test set.
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/pipeline/evaluate.hpp"
#include "flowad/version.hpp"

namespace flowad {
namespace cli {

std::vector<fs::path> image_arguments(const args& a);

namespace {

void print_result(const evaluation_result& r, const std::string& extractor, const model_stats& stats) {
  std::printf("\n%-12s %-12s %11s %11s %8s %10s %9s\n", "category", "extractor", "image AUROC", "pixel AUROC", "AUPRO",
              "fit (s)", "ms/image");
  std::printf("%-12s %-12s %11.4f %11.4f %8.4f %10.1f %9.1f\n", r.category.c_str(), extractor.c_str(), r.image_auroc,
              r.pixel_auroc, r.aupro, r.fit_seconds, r.ms_per_image);
  std::printf("model: %.2f M parameters, %.2f GMAC per image; final loss %.4f after %zu epochs", stats.parameters * 1e-6,
              stats.macs_per_image * 1e-9, r.fit.final_loss, r.fit.epoch_losses.size());
  if (r.fit.discarded_steps > 0) std::printf(" (%ld steps discarded)", r.fit.discarded_steps);
  std::printf("\n");
}

}  // namespace

namespace {

int run_evaluation(int argc, char** argv, int first, bool validate) {
  const args a(argc, argv, first, {"help", "fixed-gain"});
  if (a.flag("help")) {
    if (validate)
      std::printf("usage: flowad validate (--data DIR | --images PATH...) [--holdout H] [--extractor NAME --weights PATH]\n"
                  "                       [--json FILE] [--heatmaps DIR] [feature, model and training options]\n\n"
                  "Keeps a share H (default 0.2) of the defect-free images (DIR/train/good, or the given images) out\n"
                  "of fitting, then scores each held-out image as it is and with a synthetic defect drawn on it.\n"
                  "The metrics of that set let you choose settings without any defective image or test set.\n\n%s%s%s%s",
                  feature_options_help(), fit_options_help(), model_options_help(), scoring_options_help());
    else
      std::printf("usage: flowad eval --data DIR [--extractor NAME --weights PATH] [--model msflow] [--json FILE]\n"
                  "                   [--heatmaps DIR] [--save FILE] [feature, model and training options]\n\n"
                  "Fits on DIR/train/good and evaluates on DIR/test with DIR/ground_truth (MVTec AD layout).\n"
                  "Metrics are computed at the input resolution; the model is the last epoch's.\n\n%s%s%s%s",
                  feature_options_help(), fit_options_help(), model_options_help(), scoring_options_help());
    return 0;
  }
  const std::string model_kind = a.get("model", "msflow");
  if (model_kind != "msflow") throw error(errc::invalid_argument, "--model: unknown detector '" + model_kind + "' (known: msflow)");
  const feature_setup features = feature_setup_from(a);
  fit_options fit = fit_options_from(a);
  const msflow_config base = config_from(a);
  const score_options scoring = scoring_from(a);
  const std::string json_path = a.get("json", "");
  const std::string heatmap_dir = a.get("heatmaps", "");
  const std::string save_path = validate ? "" : a.get("save", "");
  const double holdout = validate ? a.number("holdout", 0.2) : 0.0;
  mvtec_category data;
  std::vector<fs::path> good;
  if (validate) {
    good = a.has("data") ? read_mvtec_category(a.get("data")).train : image_arguments(a);
  } else {
    data = read_mvtec_category(a.required("data"));
  }
  a.reject_unknown();

  const std::unique_ptr<extractor> ex = make_extractor(features.extractor_name, features.weights);
  msflow model(msflow_config_for(*ex, features.options, base));
  record_pipeline(model, features, *ex);
  const std::size_t train_count =
      validate ? good.size() - static_cast<std::size_t>(holdout * static_cast<double>(good.size())) : data.train.size();
  std::fprintf(stderr, "%s features %s at %lldx%lld; fitting on %zu images\n", ex->name().c_str(),
               codec::encode(model.config().scales).c_str(), static_cast<long long>(features.options.image_size),
               static_cast<long long>(features.options.image_size), train_count);

  evaluation_options options = evaluation_options_for(model, features, fit, scoring, !heatmap_dir.empty() && !validate);
  evaluation_progress bars(options, train_count);
  const evaluation_result r = validate ? validate_with_synthetic_defects(good, *ex, model, options, holdout, fit.seed)
                                       : evaluate(data, *ex, model, options);
  bars.finish();
  print_result(r, ex->name(), model.stats());

  if (!json_path.empty()) {
    json_object j;
    j.add("category", r.category)
        .add("model", model_kind)
        .add("extractor", ex->name())
        .add("levels", model.metadata().at("pipeline.levels"))
        .add("image_size", static_cast<long>(features.options.image_size))
        .add("image_auroc", r.image_auroc)
        .add("pixel_auroc", r.pixel_auroc)
        .add("aupro", r.aupro)
        .add("fit_seconds", r.fit_seconds)
        .add("extract_seconds", r.extract_seconds)
        .add("ms_per_image", r.ms_per_image)
        .add("epochs", fit.epochs)
        .add("batch_size", fit.batch_size)
        .add("learning_rate", static_cast<double>(fit.optimizer.learning_rate))
        .add("final_loss", r.fit.final_loss)
        .add("discarded_steps", r.fit.discarded_steps)
        .add("parameters", model.stats().parameters)
        .add("macs_per_image", model.stats().macs_per_image)
        .add("scales", codec::encode(model.config().scales))
        .add("groups", static_cast<long>(model.config().groups))
        .add("blocks", static_cast<long>(model.config().blocks))
        .add("hidden", static_cast<long>(model.config().hidden))
        .add("kernels", codec::encode(model.config().kernels))
        .add("blur_sigma", options.score.blur_sigma)
        .add("image_score", to_string(options.score.image_score))
        .add("epoch_losses", r.fit.epoch_losses)
        .add("image_f1", r.image_f1.f1)
        .add("backend", detail::backend_description())
        .add("flowad_version", FLOWAD_VERSION_STRING);
    j.write(json_path);
    std::printf("wrote %s\n", json_path.c_str());
  }
  if (!heatmap_dir.empty() && !validate) {
    std::vector<std::string> prefixes;
    for (const test_sample& t : data.test) prefixes.push_back(t.defect_type);
    const auto written = write_heatmaps(heatmap_dir, data.test_images(), r.maps, heatmap_range_of(model), &r.masks, prefixes);
    std::printf("wrote %zu heatmaps to %s (ground truth outlined in white)\n", written.size(), heatmap_dir.c_str());
  }
  if (!save_path.empty()) {
    model.save(save_path);
    std::printf("saved the model to %s\n", save_path.c_str());
  }
  return 0;
}

}  // namespace

int run_eval(int argc, char** argv, int first) { return run_evaluation(argc, argv, first, false); }
int run_validate(int argc, char** argv, int first) { return run_evaluation(argc, argv, first, true); }

}  // namespace cli
}  // namespace flowad
