// flowad eval: fit on a category's train/good images and measure image AUROC, pixel AUROC and AUPRO
// on its test set. flowad validate: the same measured on held-out defect-free images with synthetic
// defects, to choose settings without a test set.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

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

struct metric_summary {
  double mean = 0.0, sd = 0.0;
};

// Mean and sample standard deviation (0 for a single value).
metric_summary summarize(const std::vector<double>& values) {
  metric_summary m;
  for (double v : values) m.mean += v / static_cast<double>(values.size());
  if (values.size() > 1) {
    double ss = 0.0;
    for (double v : values) ss += (v - m.mean) * (v - m.mean);
    m.sd = std::sqrt(ss / static_cast<double>(values.size() - 1));
  }
  return m;
}

int run_evaluation(int argc, char** argv, int first, bool validate) {
  const args a(argc, argv, first, {"help", "fixed-gain"});
  if (a.flag("help")) {
    if (validate)
      std::printf("usage: flowad validate (--data DIR | --images PATH...) [--holdout H] [--fold K | --folds K]\n"
                  "                       [--defects-per-image M] [--defect-types A,B] [--extractor NAME --weights PATH]\n"
                  "                       [--json FILE] [--map-size S] [feature, model and training options]\n\n"
                  "Keeps a share H (default 0.2) of the defect-free images (DIR/train/good, or the given images) out\n"
                  "of fitting, then scores each held-out image as it is and with M (default 1) synthetic defects\n"
                  "drawn on it, each of a type drawn from --defect-types (crack, displaced, patch, scratch, spot;\n"
                  "default: crack, patch, scratch, spot). The metrics of that set let you choose settings without any defective image or\n"
                  "test set. The images are shuffled (seeded by --train-seed) and cut into shares of H from the end:\n"
                  "--fold K (default 0) holds out the K-th, --folds K fits K times, holding out shares 0..K-1 in\n"
                  "turn (cross-validation), and reports every fold with the mean and standard deviation.\n"
                  "Metrics are computed on S x S maps and masks (default: the input size, --size).\n\n%s%s%s%s",
                  feature_options_help(), fit_options_help(), model_options_help(), scoring_options_help());
    else
      std::printf("usage: flowad eval --data DIR [--extractor NAME --weights PATH] [--model msflow] [--json FILE]\n"
                  "                   [--heatmaps DIR] [--save FILE] [--map-size S] [feature, model and training options]\n\n"
                  "Fits on DIR/train/good and evaluates on DIR/test with DIR/ground_truth (MVTec AD layout).\n"
                  "Metrics are computed on S x S maps and masks (default: the input size, --size); the model is\n"
                  "the last epoch's.\n\n%s%s%s%s",
                  feature_options_help(), fit_options_help(), model_options_help(), scoring_options_help());
    return 0;
  }
  const std::string model_kind = a.get("model", "msflow");
  if (model_kind != "msflow") throw error(errc::invalid_argument, "--model: unknown detector '" + model_kind + "' (known: msflow)");
  const feature_setup features = feature_setup_from(a);
  fit_options fit = fit_options_from(a);
  const msflow_config base = config_from(a);
  score_options scoring = scoring_from(a);
  scoring.map_height = scoring.map_width = a.integer("map-size", features.options.image_size);
  if (scoring.map_height < 1 || scoring.map_height > 8192)
    throw error(errc::invalid_argument, "--map-size must be in [1, 8192], got " + std::to_string(scoring.map_height));
  const std::string json_path = a.get("json", "");
  const std::string heatmap_dir = a.get("heatmaps", "");
  const std::string save_path = validate ? "" : a.get("save", "");
  validation_options split;
  int folds = 1;
  if (validate) {
    split.holdout = a.number("holdout", 0.2);
    split.fold = static_cast<int>(a.integer("fold", 0));
    folds = static_cast<int>(a.integer("folds", 1));
    if (a.has("folds") && a.has("fold")) throw error(errc::invalid_argument, "--fold and --folds exclude each other");
    if (folds < 1) throw error(errc::invalid_argument, "--folds must be at least 1, got " + std::to_string(folds));
    split.defects_per_image = static_cast<int>(a.integer("defects-per-image", 1));
    if (a.has("defect-types")) split.defect_types = codec::split(a.get("defect-types"), ',');
    split.seed = fit.seed;
  }
  mvtec_category data;
  std::vector<fs::path> good;
  if (validate) {
    good = a.has("data") ? read_mvtec_category(a.get("data")).train : image_arguments(a);
  } else {
    data = read_mvtec_category(a.required("data"));
  }
  a.reject_unknown();
  if (validate && a.has("folds") && folds > validation_fold_count(good.size(), split.holdout))
    throw error(errc::invalid_argument, "--folds " + std::to_string(folds) + ": " + std::to_string(good.size()) +
                                            " images with --holdout " + std::to_string(split.holdout) + " give at most " +
                                            std::to_string(validation_fold_count(good.size(), split.holdout)) + " disjoint folds");

  const std::unique_ptr<extractor> ex = make_extractor(features.extractor_name, features.weights);
  const msflow_config cfg = config_for_extractor(a, *ex, features.options, base);
  const bool cross_validate = validate && a.has("folds");
  const std::size_t train_count =
      validate ? good.size() - std::min(good.size(), validation_held_out_count(good.size(), split.holdout)) : data.train.size();
  std::unique_ptr<msflow> fitted;
  evaluation_options options;
  evaluation_result r;
  std::vector<double> fold_image, fold_pixel, fold_pro;  // with --folds
  for (int k = 0; k < folds; ++k) {
    if (cross_validate) split.fold = k;
    fitted = std::make_unique<msflow>(cfg);
    fitted->check_score_options(scoring);  // before fitting, not after
    record_pipeline(*fitted, features, *ex);
    std::fprintf(stderr, "%s features %s at %lldx%lld; fitting on %zu images", ex->name().c_str(),
                 codec::encode(fitted->config().scales).c_str(), static_cast<long long>(features.options.image_size),
                 static_cast<long long>(features.options.image_size), train_count);
    if (validate) std::fprintf(stderr, " (validation fold %d)", split.fold);
    std::fprintf(stderr, "\n");

    options = evaluation_options_for(*fitted, *ex, features, fit, scoring, !heatmap_dir.empty() && !validate);
    evaluation_progress bars(options, train_count);
    r = validate ? validate_with_synthetic_defects(good, *ex, *fitted, options, split) : evaluate(data, *ex, *fitted, options);
    bars.finish();
    print_result(r, ex->name(), fitted->stats());
    fold_image.push_back(r.image_auroc);
    fold_pixel.push_back(r.pixel_auroc);
    fold_pro.push_back(r.aupro);
  }
  const msflow& model = *fitted;
  if (cross_validate) {
    // Settings are compared on the fold means; the standard deviations say how far apart they must be.
    const metric_summary image = summarize(fold_image), pixel = summarize(fold_pixel), pro = summarize(fold_pro);
    std::printf("\nmean of %d folds (standard deviation): image AUROC %.4f (%.4f), pixel AUROC %.4f (%.4f), "
                "AUPRO %.4f (%.4f)\n", folds, image.mean, image.sd, pixel.mean, pixel.sd, pro.mean, pro.sd);
    r.image_auroc = image.mean;
    r.pixel_auroc = pixel.mean;
    r.aupro = pro.mean;
  }

  if (!json_path.empty()) {
    json_object j;
    j.add("category", r.category)
        .add("model", model_kind)
        .add("extractor", ex->name())
        .add("levels", model.metadata().at("pipeline.levels"))
        .add("image_size", static_cast<long>(features.options.image_size))
        .add("map_size", static_cast<long>(options.score.map_height))
        .add("neighbourhood", static_cast<long>(features.options.neighbourhood))
        .add("pool_stride", static_cast<long>(features.options.pool_stride))
        .add("image_auroc", r.image_auroc)
        .add("pixel_auroc", r.pixel_auroc)
        .add("aupro", r.aupro)
        .add("fit_seconds", r.fit_seconds)
        .add("extract_seconds", r.extract_seconds)
        .add("ms_per_image", r.ms_per_image)
        .add("epochs", fit.epochs)
        .add("batch_size", fit.batch_size)
        .add("learning_rate", static_cast<double>(fit.optimizer.learning_rate))
        .add("input_noise", fit.input_noise)
        .add("final_loss", r.fit.final_loss)
        .add("discarded_steps", r.fit.discarded_steps)
        .add("parameters", model.stats().parameters)
        .add("macs_per_image", model.stats().macs_per_image)
        .add("scales", codec::encode(model.config().scales))
        .add("groups", static_cast<long>(model.config().groups))
        .add("blocks", static_cast<long>(model.config().blocks))
        .add("hidden", static_cast<long>(model.config().hidden))
        .add("kernels", codec::encode(model.config().kernels))
        .add("positions", model.config().positions.empty() ? std::string("free") : to_string(model.config().positions))
        .add("blur_sigma", options.score.blur_sigma)
        .add("image_score", to_string(options.score.image_score))
        .add("map_statistic", to_string(options.score.statistic))
        .add("combine", to_string(options.score.combine))
        .add("cell_offsets", options.score.cell_offsets)
        .add("epoch_losses", r.fit.epoch_losses)
        .add("folds", folds)
        .add("validation_fold", validate && !cross_validate ? split.fold : -1)
        .add("fold_image_auroc", fold_image)
        .add("fold_pixel_auroc", fold_pixel)
        .add("fold_aupro", fold_pro)
        .add("defects_per_image", split.defects_per_image)
        .add("defect_types", split.defect_types)
        .add("image_f1", r.image_f1.f1)
        .add("backend", detail::backend_description())
        .add("flowad_version", version().string);
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
