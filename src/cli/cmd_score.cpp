// flowad score: a model file and images (or feature maps) -> scores, verdicts, anomaly maps, heatmaps.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>

#include "cli/commands.hpp"
#include "cli/images.hpp"
#include "cli/output.hpp"
#include "flowad/detail/config_fields.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/pipeline/feature_model.hpp"

namespace flowad {
namespace cli {

namespace {

class score_command final : public command {
 public:
  explicit score_command(CLI::App& parent) {
    app = parent.add_subcommand("score", "score images with a saved model: scores, verdicts, anomaly maps, heatmaps");
    app->footer(
        "Features are made as the model records (extractor, weights, input size). --data scores DIR/test of\n"
        "an MVTec-layout folder and outlines the ground truth in the heatmaps. Prints one line per image (its\n"
        "score, and the verdict when the model or --threshold gives a threshold); with --out, writes\n"
        "scores.csv, <image>_heatmap.png overlays at each image's own size and <image>_map.png maps there.");
    app->add_option("--model-file,model_file", model_file, "the model file (flowad fit, eval --save, or the C++ API)")->required();
    app->add_option("images", images, "image files or folders");
    app->add_option("--data", data, "an MVTec-layout folder: scores DIR/test");
    app->add_option("--features", features, "feature maps, one .npy per scale (for models fitted on feature maps)")->delimiter(',');
    app->add_option("--out", out, "folder for scores.csv and heatmaps");
    threshold_option = app->add_option("--threshold", threshold, "decision threshold (default: the model's)");
  }

  int run() override {
    if (threshold_option->count() > 0 && !std::isfinite(threshold))
      throw error(errc::invalid_argument, "--threshold must be a finite number, got " + detail::number_text(threshold));
    if (!out.empty()) create_output_folder(out, "--out");
    std::vector<fs::path> names;
    std::vector<double> image_scores;
    std::vector<std::string> prefixes;
    std::vector<fs::path> masks;
    tensor maps;
    std::unique_ptr<inspector> model;
    double decision = std::isnan(threshold) ? std::numeric_limits<double>::quiet_NaN() : threshold;
    if (!features.empty()) {
      if (!data.empty() || !images.empty()) throw error(errc::invalid_argument, "--features excludes images and --data");
      const std::unique_ptr<detector> d = load_detector(model_file);
      const std::vector<tensor> f = read_feature_files(features);
      scores s = score_feature_model(*d, views_of(f));
      image_scores = std::move(s.image);
      for (index_t i = 0; i < f[0].n(); ++i) names.emplace_back("sample" + std::to_string(i));
    } else {
      model = std::make_unique<inspector>(inspector::load(model_file));
      if (data.empty() == images.empty()) throw error(errc::invalid_argument, "give either --data DIR or image files and folders");
      if (!data.empty()) {
        const mvtec_category category = read_mvtec_category(data);
        names = category.test_images();
        masks = category.test_masks();
        for (const test_sample& t : category.test) prefixes.push_back(t.defect_type);
      } else {
        names = expand_images(images);
      }
      if (std::isnan(decision) && model->threshold()) decision = model->threshold()->value;
      progress_callback on_extract = [bar = std::make_shared<progress>("features", static_cast<long>(names.size()), "img")](
                                         long done, long) { bar->update(done); };
      scores s = model->score(names, 0, 0, on_extract);
      image_scores = std::move(s.image);
      maps = std::move(s.maps);
    }

    const bool verdicts = !std::isnan(decision);
    std::ofstream csv;
    if (!out.empty()) {
      csv.open(fs::path(out) / "scores.csv", std::ios::trunc);
      csv << "image,score" << (verdicts ? ",anomalous" : "") << "\n";
    }
    long flagged = 0;
    for (std::size_t i = 0; i < names.size(); ++i) {
      const bool anomalous = verdicts && image_scores[i] >= decision;
      flagged += anomalous ? 1 : 0;
      std::printf("%-60s %12.6f%s\n", names[i].string().c_str(), image_scores[i], verdicts ? (anomalous ? "  ANOMALOUS" : "  ok") : "");
      if (csv.is_open())
        csv << names[i].string() << "," << detail::number_text(image_scores[i]) << (verdicts ? (anomalous ? ",1" : ",0") : "") << "\n";
    }
    if (verdicts) std::printf("%ld of %zu images at or above the threshold %.6g\n", flagged, names.size(), decision);
    if (csv.is_open() && !csv) throw error(errc::io_error, "cannot write " + (fs::path(out) / "scores.csv").string());
    if (!out.empty() && model) {
      const auto written = write_heatmaps(out, *model, names, maps, masks, prefixes);
      if (model->model().localises()) std::printf("wrote scores.csv and %zu heatmaps to %s\n", written.size(), out.c_str());
      else std::printf("wrote %s; %s\n", (fs::path(out) / "scores.csv").c_str(), heatmaps_note(*model, 0, out).c_str());
    } else if (!out.empty()) {
      std::printf("wrote %s\n", (fs::path(out) / "scores.csv").c_str());
    }
    return 0;
  }

 private:
  std::string model_file, data, out;
  std::vector<std::string> images, features;
  double threshold = std::numeric_limits<double>::quiet_NaN();
  CLI::Option* threshold_option = nullptr;
};

}  // namespace

std::unique_ptr<command> make_score(CLI::App& parent) { return std::make_unique<score_command>(parent); }

}  // namespace cli
}  // namespace flowad
