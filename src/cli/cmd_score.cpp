// flowad score: a model and images (or feature maps) -> image scores, verdicts, anomaly maps and
// heatmap overlays.
#include <cstdio>
#include <fstream>
#include <limits>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/io/preprocess.hpp"

namespace flowad {
namespace cli {

std::vector<fs::path> image_arguments(const args& a);
std::vector<tensor> read_feature_files(const std::string& list);

int run_score(int argc, char** argv, int first) {
  const args a(argc, argv, first, {"help"});
  if (a.flag("help")) {
    std::printf("usage: flowad score --model MODEL (--images PATH... | --data DIR | --features A.npy[,B.npy])\n"
                "                    [--out DIR] [--threshold T] [--map-size S] [scoring options]\n\n"
                "Scores images with a fitted model: features are made as the model records (extractor,\n"
                "weights, image size). --data scores DIR/test of an MVTec-layout category and outlines the\n"
                "ground truth in the heatmaps. Prints one line per image (score, and the verdict when the\n"
                "model or --threshold gives a threshold); with --out, writes scores.csv, <image>_heatmap.png\n"
                "overlays and <image>_map.png maps there. The scoring options default to those the model\n"
                "was fitted with (its threshold and heatmap colours hold for them).\n\n%s",
                scoring_options_help());
    return 0;
  }
  const std::unique_ptr<detector> model = load_detector(a.required("model"));
  const std::string out = a.get("out", "");
  double threshold = std::numeric_limits<double>::quiet_NaN();
  if (a.has("threshold")) threshold = a.number("threshold", 0.0);
  else if (model->metadata().count("threshold")) threshold = codec::parse_double("threshold", model->metadata().at("threshold"));

  std::vector<tensor> features;
  std::vector<fs::path> images;
  tensor masks;
  std::vector<std::string> prefixes;
  index_t map_size = a.integer("map-size", 0);
  score_options so = scoring_from(a, scoring_of(*model));
  if (a.has("features")) {
    features = read_feature_files(a.get("features"));
    a.reject_unknown();
    for (index_t i = 0; i < features[0].n(); ++i) images.emplace_back("sample" + std::to_string(i));
  } else {
    const feature_setup setup = pipeline_of(*model);
    if (a.has("data")) {
      const mvtec_category data = read_mvtec_category(a.get("data"));
      images = data.test_images();
      for (const test_sample& t : data.test) prefixes.push_back(t.defect_type);
      if (map_size == 0) map_size = setup.options.image_size;
      masks = load_mask_batch(data.test_masks(), map_size, map_size);
    } else {
      images = image_arguments(a);
    }
    a.reject_unknown();
    if (images.empty()) throw error(errc::empty_input, "no images to score (give --images, --data or --features)");
    if (map_size == 0) map_size = setup.options.image_size;
    const std::unique_ptr<extractor> ex = make_extractor(setup.extractor_name, setup.weights);
    features = extract_with_progress(*ex, images, setup.options, "features");
  }

  if (map_size > 0) so.map_height = so.map_width = map_size;
  const scores s = model->score(views_of(features), so);

  const bool verdicts = std::isfinite(threshold);
  std::ofstream csv;
  if (!out.empty()) {
    fs::create_directories(out);
    csv.open(fs::path(out) / "scores.csv", std::ios::trunc);
    csv << "image,score" << (verdicts ? ",anomalous" : "") << "\n";
  }
  long flagged = 0;
  for (std::size_t i = 0; i < images.size(); ++i) {
    const bool anomalous = verdicts && s.image[i] >= threshold;
    flagged += anomalous ? 1 : 0;
    std::printf("%-60s %12.6f%s\n", images[i].string().c_str(), s.image[i],
                verdicts ? (anomalous ? "  ANOMALOUS" : "  ok") : "");
    if (csv.is_open()) csv << images[i].string() << "," << codec::encode(s.image[i]) << (verdicts ? (anomalous ? ",1" : ",0") : "") << "\n";
  }
  if (verdicts) std::printf("%ld of %zu images at or above the threshold %.6g\n", flagged, images.size(), threshold);
  if (!out.empty() && !a.has("features")) {
    const auto written = write_heatmaps(out, images, s.maps, heatmap_range_of(*model), masks.empty() ? nullptr : &masks, prefixes);
    std::printf("wrote scores.csv and %zu heatmaps to %s\n", written.size(), out.c_str());
  } else if (!out.empty()) {
    std::printf("wrote %s\n", (fs::path(out) / "scores.csv").c_str());
  }
  return 0;
}

}  // namespace cli
}  // namespace flowad
