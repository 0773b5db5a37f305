// flowad eval: fit on a category's train/good images and measure image AUROC, pixel AUROC and AUPRO
// on its test set. flowad validate: the same measured on held-out defect-free images with synthetic
// defects, to choose settings without a test set.
#include <cmath>
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/images.hpp"
#include "cli/options.hpp"
#include "cli/output.hpp"
#include "flowad/detail/backend.hpp"
#include "flowad/io/dataset.hpp"

namespace flowad {
namespace cli {

namespace {

void print_result(const evaluation_result& r, const inspector& model) {
  const model_stats stats = model.model().stats();
  std::printf("\n%-18s %-9s %-12s %11s %11s %8s %10s %9s\n", "category", "detector", "extractor", "image AUROC", "pixel AUROC",
              "AUPRO", "fit (s)", "ms/image");
  std::printf("%-18s %-9s %-12s %11s %11s %8s %10.1f %9.1f\n", r.category.c_str(), model.model().kind(),
              model.config().extractor.c_str(), metric_text(r.image_auroc).c_str(), metric_text(r.pixel_auroc).c_str(),
              metric_text(r.aupro).c_str(), r.fit_seconds, r.ms_per_image);
  std::printf("model: %.2f M parameters, %.2f GMAC per image", stats.parameters * 1e-6, stats.macs_per_image * 1e-9);
  if (!r.fit.epoch_losses.empty()) std::printf("; final loss %.4f after %zu epochs", r.fit.final_loss, r.fit.epoch_losses.size());
  if (r.fit.discarded_steps > 0) std::printf(" (%ld steps discarded)", r.fit.discarded_steps);
  std::printf("\n");
}

// Each threshold set from the training images' out-of-fold scores, tried on the test set.
void print_thresholds(const std::vector<threshold_evaluation>& thresholds) {
  if (thresholds.empty()) return;
  const decision_threshold& first = thresholds.front().threshold;
  std::printf("\nthresholds from %zu out-of-fold scores of the training images (%zu folds), on the test set "
              "(95%% Clopper-Pearson intervals):\n",
              first.held_out_images, first.folds);
  std::printf("%-10s %12s  %-30s %-30s\n", "target FPR", "threshold", "false positives (good images)", "recall (defective images)");
  const auto counted = [](std::size_t k, std::size_t n, double rate, const binomial_interval& ci) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%zu/%zu = %.3f [%.3f, %.3f]", k, n, rate, ci.lo, ci.hi);
    return std::string(buf);
  };
  for (const threshold_evaluation& t : thresholds)
    std::printf("%-10g %12.6g%s %-30s %-30s\n", t.target_fpr, t.threshold.value, t.threshold.bounded ? " " : "*",
                counted(t.false_positives, t.good_images, t.fpr(), t.fpr_interval).c_str(),
                counted(t.detected, t.defective_images, t.recall(), t.recall_interval).c_str());
  for (const threshold_evaluation& t : thresholds)
    if (!t.threshold.bounded) {
      std::printf("* too few scores for that rate: the largest score\n");
      break;
    }
}

nlohmann::json thresholds_json(const std::vector<threshold_evaluation>& thresholds) {
  nlohmann::json list = nlohmann::json::array();
  const auto number = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  for (const threshold_evaluation& t : thresholds)
    list.push_back({{"target_fpr", t.target_fpr},
                    {"threshold", t.threshold.value},
                    {"bounded", t.threshold.bounded},
                    {"calibration", calibration_name(t.threshold)},
                    {"calibration_scores", t.threshold.held_out_images},
                    {"calibration_folds", t.threshold.folds},
                    {"false_positives", t.false_positives},
                    {"good_images", t.good_images},
                    {"fpr", number(t.fpr())},
                    {"fpr_ci95", {number(t.fpr_interval.lo), number(t.fpr_interval.hi)}},
                    {"detected", t.detected},
                    {"defective_images", t.defective_images},
                    {"recall", number(t.recall())},
                    {"recall_ci95", {number(t.recall_interval.lo), number(t.recall_interval.hi)}}});
  return list;
}

struct summary {
  double mean = 0.0, sd = 0.0;
};

// Mean and sample standard deviation (0 for a single value).
summary summarize(const std::vector<double>& values) {
  summary m;
  for (double v : values) m.mean += v / static_cast<double>(values.size());
  if (values.size() > 1) {
    double ss = 0.0;
    for (double v : values) ss += (v - m.mean) * (v - m.mean);
    m.sd = std::sqrt(ss / static_cast<double>(values.size() - 1));
  }
  return m;
}

nlohmann::json result_json(const evaluation_result& r, const inspector& model) {
  nlohmann::json j = describe(model);
  j["category"] = r.category;
  j["map_height"] = r.maps.h();
  j["map_width"] = r.maps.w();
  const auto metric = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  j["image_auroc"] = metric(r.image_auroc);
  j["pixel_auroc"] = metric(r.pixel_auroc);
  j["aupro"] = metric(r.aupro);
  j["image_f1"] = r.image_f1.f1;
  j["fit_seconds"] = r.fit_seconds;
  if (!r.thresholds.empty()) {
    j["calibration_seconds"] = r.calibration_seconds;
    j["thresholds"] = thresholds_json(r.thresholds);
  }
  j["extract_seconds"] = r.extract_seconds;
  j["ms_per_image"] = r.ms_per_image;
  j["final_loss"] = r.fit.epoch_losses.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.fit.final_loss);
  j["epoch_losses"] = r.fit.epoch_losses;
  j["discarded_steps"] = r.fit.discarded_steps;
  j["backend"] = detail::backend_description();
  return j;
}

class evaluation_command final : public command {
 public:
  evaluation_command(CLI::App& parent, bool validate) : validate_(validate) {
    if (validate) {
      app = parent.add_subcommand("validate", "choose settings without defects: held-out good images with synthetic defects");
      app->footer(
          "Keeps a share --holdout of the defect-free images (DIR/train/good, or the given images) out of\n"
          "fitting, then scores each held-out image as it is and with --defects-per-image synthetic defects\n"
          "drawn on it, each of a type drawn from --defect-types. The metrics of that set choose settings\n"
          "without any defective image or test set. The images are shuffled (--split-seed) and cut into\n"
          "shares of --holdout from the end: --fold K holds out the K-th, --folds K fits K times, holding out\n"
          "shares 0..K-1 in turn, and reports every fold with the mean and standard deviation.");
      app->add_option("--data", data, "an MVTec-layout folder: validates on DIR/train/good");
      app->add_option("images", images, "defect-free image files or folders");
      app->add_option("--holdout", split.holdout, "share of the images held out of fitting")->capture_default_str();
      auto* fold = app->add_option("--fold", split.fold, "which share is held out")->capture_default_str();
      app->add_option("--folds", folds, "cross-validate over shares 0..K-1")->excludes(fold)->check(CLI::PositiveNumber);
      app->add_option("--defects-per-image", split.defects_per_image, "synthetic defects per held-out image")
          ->capture_default_str();
      std::string types;
      for (const std::string& t : split.defect_types) types += (types.empty() ? "" : ",") + t;
      app->add_option("--defect-types", split.defect_types, "types the defects are drawn from (default " + types + ")")
          ->delimiter(',');
      app->add_option("--split-seed", split.seed, "shuffles the images and draws the defects")->capture_default_str();
    } else {
      app = parent.add_subcommand("eval", "fit on a category (MVTec AD layout) and measure AUROC, pixel AUROC and AUPRO");
      app->footer(
          "Fits on DIR/train/good and evaluates on DIR/test with DIR/ground_truth. Metrics compare maps and\n"
          "masks at the model's input size (or --map-size); the model is the last epoch's.\n"
          "--target-fpr 0.01,0.05 also sets a threshold for each rate from out-of-fold scores of the training\n"
          "images (--calibration folds:K, default 5: K more fits; the metrics still measure the model fitted\n"
          "on every image) and reports the test set's false-positive rate and recall at each.");
      app->add_option("--target-fpr", target_fprs, "false-positive rates to set and test thresholds for (e.g. 0.01,0.05)")
          ->delimiter(',');
      app->add_option("--calibration", calibration, "with --target-fpr: folds:K (or auto: folds:5)")->capture_default_str();
      app->add_option("--data", data, "an MVTec-layout folder")->required();
      app->add_option("--heatmaps", heatmaps, "write an overlay of every test image there");
      app->add_option("--save", save, "save the fitted model");
    }
    app->add_option("--json", json, "write the results as JSON");
    app->add_option("--map-size", map_size, "HxW (or S) of the maps and masks the pixel metrics compare");
    pipeline.attach(*app, !validate);
  }

  int run() override {
    const pipeline_config config = pipeline.config();
    if (!save.empty()) require_output_folder_of(save, "--save");
    evaluation_options options;
    if (!map_size.empty()) {
      const image_dims d = parse_dims("--map-size", map_size);
      options.map_height = d.height;
      options.map_width = d.width;
    }
    options.target_fprs = target_fprs;
    parse_calibration(calibration, options.fit);
    mvtec_category category;
    std::vector<fs::path> good;
    if (validate_) {
      if (data.empty() == images.empty()) throw error(errc::invalid_argument, "give either --data DIR or image files and folders");
      good = data.empty() ? expand_images(images) : read_mvtec_category(data).train;
      if (folds > validation_fold_count(good.size(), split.holdout))
        throw error(errc::invalid_argument, "--folds " + std::to_string(folds) + ": " + std::to_string(good.size()) +
                                                " images with --holdout " + detail::number_text(split.holdout) + " give at most " +
                                                std::to_string(validation_fold_count(good.size(), split.holdout)) +
                                                " disjoint folds");
    } else {
      category = read_mvtec_category(data);
    }

    const bool cross_validate = validate_ && folds > 0;
    const int runs = cross_validate ? folds : 1;
    std::vector<double> fold_image, fold_pixel, fold_pro;
    evaluation_result r;
    std::unique_ptr<inspector> model;
    for (int k = 0; k < runs; ++k) {
      if (cross_validate) split.fold = k;
      model = std::make_unique<inspector>(config);
      if (validate_) std::fprintf(stderr, "validation fold %d\n", split.fold);
      fit_progress_bars bars(options.fit, &options.fit.on_extract);
      bars.follow_fits(options.fit);
      r = validate_ ? validate_with_synthetic_defects(*model, good, options, split) : evaluate(*model, category, options);
      bars.finish();
      print_result(r, *model);
      print_thresholds(r.thresholds);
      fold_image.push_back(r.image_auroc);
      fold_pixel.push_back(r.pixel_auroc);
      fold_pro.push_back(r.aupro);
    }
    if (cross_validate) {
      // Settings are compared on the fold means; the standard deviations say how far apart they must be.
      const summary image = summarize(fold_image), pixel = summarize(fold_pixel), pro = summarize(fold_pro);
      std::printf("\nmean of %d folds (standard deviation): image AUROC %s (%s), pixel AUROC %s (%s), AUPRO %s (%s)\n", runs,
                  metric_text(image.mean).c_str(), metric_text(image.sd).c_str(), metric_text(pixel.mean).c_str(),
                  metric_text(pixel.sd).c_str(), metric_text(pro.mean).c_str(), metric_text(pro.sd).c_str());
      r.image_auroc = image.mean;
      r.pixel_auroc = pixel.mean;
      r.aupro = pro.mean;
    }
    if (!json.empty()) {
      nlohmann::json j = result_json(r, *model);
      if (validate_) {
        j["folds"] = runs;
        j["validation_fold"] = cross_validate ? -1 : split.fold;
        j["fold_image_auroc"] = fold_image;
        j["fold_pixel_auroc"] = fold_pixel;
        j["fold_aupro"] = fold_pro;
        j["holdout"] = split.holdout;
        j["defects_per_image"] = split.defects_per_image;
        j["defect_types"] = split.defect_types;
        j["split_seed"] = split.seed;
      }
      write_json(json, j);
      std::printf("wrote %s\n", json.c_str());
    }
    if (!heatmaps.empty()) {
      std::vector<std::string> prefixes;
      for (const test_sample& t : category.test) prefixes.push_back(t.defect_type);
      const auto written = write_heatmaps(heatmaps, *model, r.images, r.maps, category.test_masks(), prefixes);
      std::printf("%s\n", heatmaps_note(*model, written.size(), heatmaps).c_str());
    }
    if (!save.empty()) {
      model->save(save);
      std::printf("saved the model to %s\n", save.c_str());
    }
    return 0;
  }

 private:
  bool validate_;
  std::string data, json, heatmaps, save, map_size, calibration = "auto";
  std::vector<double> target_fprs;
  std::vector<std::string> images;
  validation_options split;
  int folds = 0;
  pipeline_options pipeline;
};

}  // namespace

std::unique_ptr<command> make_eval(CLI::App& parent) { return std::make_unique<evaluation_command>(parent, false); }
std::unique_ptr<command> make_validate(CLI::App& parent) { return std::make_unique<evaluation_command>(parent, true); }

}  // namespace cli
}  // namespace flowad
