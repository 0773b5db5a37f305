// flowad fit: images or .npy feature maps of defect-free samples -> a model file.
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/detail/random.hpp"
#include "flowad/io/npy.hpp"
#include "flowad/metrics/threshold.hpp"

namespace flowad {
namespace cli {

namespace {

// Images named on the command line: files, or folders whose image files are taken in name order.
std::vector<fs::path> expand_images(const std::vector<std::string>& items) {
  std::vector<fs::path> images;
  for (const std::string& item : items) {
    if (fs::is_directory(item)) {
      std::vector<fs::path> in_folder;
      for (const auto& e : fs::directory_iterator(item))
        if (e.is_regular_file() && is_image_file_name(e.path())) in_folder.push_back(e.path());
      std::sort(in_folder.begin(), in_folder.end());
      if (in_folder.empty()) throw error(errc::empty_input, "folder " + item + " holds no images");
      images.insert(images.end(), in_folder.begin(), in_folder.end());
    } else {
      images.emplace_back(item);
    }
  }
  return images;
}

}  // namespace

std::vector<fs::path> image_arguments(const args& a) {
  std::vector<std::string> items = a.all("images");
  for (const std::string& p : a.positional()) items.push_back(p);
  return expand_images(items);
}

std::vector<tensor> read_feature_files(const std::string& list) {
  std::vector<tensor> maps;
  for (const std::string& path : codec::split(list, ',')) maps.push_back(read_npy_tensor(path, layout::nhwc));
  if (maps.empty()) throw error(errc::invalid_argument, "--features needs at least one .npy file");
  return maps;
}

int run_fit(int argc, char** argv, int first) {
  const args a(argc, argv, first, {"help", "fixed-gain"});
  if (a.flag("help")) {
    std::printf("usage: flowad fit (--data DIR | --images PATH... | --features A.npy[,B.npy]) --out MODEL\n"
                "                  [--target-fpr F --holdout H] [feature, model and training options]\n\n"
                "Fits an MS-Flow detector on defect-free samples: the images of DIR/train/good (MVTec layout),\n"
                "image files or folders, or feature maps (N x C x H x W float32 .npy, one file per scale).\n"
                "With --holdout H, a fraction H of the images is kept out of training and used to set the\n"
                "decision threshold at the false-positive rate --target-fpr (default 0.01), stored in the model\n"
                "with the scoring options it holds for.\n\n"
                "  --cell-offsets A[,B]  with --features: where each scale's cells sit in the image, in cells\n"
                "                       from PyTorch's align_corners=False grid (default 0; the filter bank's\n"
                "                       stride-s levels: -(s-1)/(2s)), recorded in the model for scoring\n\n%s%s%s%s",
                feature_options_help(), fit_options_help(), model_options_help(), scoring_options_help());
    return 0;
  }
  const std::string out = a.required("out");
  const feature_setup features = feature_setup_from(a);
  fit_options fit = fit_options_from(a);
  const msflow_config base = config_from(a);
  score_options scoring = scoring_from(a);
  // Feature files carry no grid; with images the extractor gives it (map_cell_offsets).
  if (a.has("cell-offsets")) {
    if (!a.has("features"))
      throw error(errc::invalid_argument, "--cell-offsets is for --features: with images the extractor sets where its cells sit");
    scoring.cell_offsets = a.numbers("cell-offsets");
  }
  const double holdout = a.number("holdout", 0.0);
  const double target_fpr = a.number("target-fpr", 0.01);
  if (!(holdout >= 0.0 && holdout < 0.9)) throw error(errc::invalid_argument, "--holdout must be in [0, 0.9)");

  std::vector<tensor> train;
  std::vector<tensor> held_out;
  std::unique_ptr<extractor> ex;
  std::vector<fs::path> images;
  if (a.has("features")) {
    train = read_feature_files(a.get("features"));
  } else {
    images = a.has("data") ? read_mvtec_category(a.get("data")).train : image_arguments(a);
  }
  a.reject_unknown();

  if (!images.empty()) {
    ex = make_extractor(features.extractor_name, features.weights);
    // The held-out images are the last ones of a seeded shuffle, so the split is repeatable.
    detail::rng r(fit.seed + 17);
    r.shuffle(images);
    const std::size_t keep = images.size() - static_cast<std::size_t>(holdout * static_cast<double>(images.size()));
    const std::vector<fs::path> fit_images(images.begin(), images.begin() + static_cast<std::ptrdiff_t>(keep));
    const std::vector<fs::path> check_images(images.begin() + static_cast<std::ptrdiff_t>(keep), images.end());
    train = extract_with_progress(*ex, fit_images, features.options, "features");
    if (!check_images.empty()) held_out = extract_with_progress(*ex, check_images, features.options, "held out");
  } else if (holdout > 0.0) {
    throw error(errc::invalid_argument, "--holdout needs images (--data or --images)");
  }

  msflow_config cfg = base;
  if (ex) {
    cfg = config_for_extractor(a, *ex, features.options, base);
  } else {
    cfg.scales.clear();
    for (const tensor& t : train) cfg.scales.push_back({t.c(), t.h(), t.w()});
  }
  msflow model(cfg);
  model.check_score_options(scoring);  // before fitting, not after
  if (ex) record_pipeline(model, features, *ex);
  std::fprintf(stderr, "fitting msflow on %lld samples, scales %s: %.2f M parameters, %.2f GMAC per sample\n",
               static_cast<long long>(train[0].n()), codec::encode(cfg.scales).c_str(), model.stats().parameters * 1e-6,
               model.stats().macs_per_image * 1e-9);
  fit_report report;
  {
    progress bar("fit", fit_steps(fit, static_cast<std::size_t>(train[0].n())), "step");
    show_fit_progress(fit, bar);
    report = model.fit(views_of(train), fit);
  }
  for (const std::string& e : report.events) std::fprintf(stderr, "note: %s\n", e.c_str());

  // Maps at the input resolution (feature resolution for feature files), as flowad score makes them:
  // top_k_mean and the threshold depend on the map size.
  scoring.map_height = scoring.map_width = ex ? features.options.image_size : cfg.scales[0].height;
  if (ex) scoring.cell_offsets = map_cell_offsets(*ex, features.options);
  record_scoring(model, scoring);
  record_heatmap_range(model, views_of(train), scoring);
  if (!held_out.empty()) {
    const scores s = model.score(views_of(held_out), scoring);
    const fpr_threshold t = threshold_for_fpr(span<const double>(s.image), target_fpr);
    model.set_metadata("threshold", codec::encode(t.threshold));
    model.set_metadata("threshold.target_fpr", codec::encode(target_fpr));
    model.set_metadata("threshold.held_out_images", std::to_string(held_out[0].n()));
    std::printf("threshold %.6g for a false-positive rate of %g, from %lld held-out images%s\n", t.threshold, target_fpr,
                static_cast<long long>(held_out[0].n()), t.bounded ? "" : " (too few images: the largest score)");
  }
  model.save(out);
  std::printf("fitted in %.1f s (loss %.4f -> %.4f); saved %s\n", report.seconds, report.epoch_losses.front(),
              report.final_loss, out.c_str());
  return 0;
}

}  // namespace cli
}  // namespace flowad
