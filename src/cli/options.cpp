#include "cli/options.hpp"

#include "flowad/detail/config_fields.hpp"

namespace flowad {
namespace cli {

image_dims parse_dims(const std::string& option, const std::string& text) {
  const std::vector<std::string> parts = detail::split(text, 'x');
  long long h = 0, w = 0;
  bool ok = (parts.size() == 1 || parts.size() == 2) && detail::parse_integer(parts[0], h) &&
            detail::parse_integer(parts.back(), w) && h > 0 && w > 0 && h <= max_image_side && w <= max_image_side;
  if (!ok) throw error(errc::invalid_argument, option + " expects HxW (e.g. 400x300: height 400, width 300) or S, got '" + text + "'");
  return {static_cast<index_t>(h), static_cast<index_t>(w)};
}

void detector_options::attach(CLI::App& app) {
  std::string kinds;
  for (const detector_info& k : detector_kinds()) kinds += (kinds.empty() ? "" : ", ") + k.kind;
  app.add_option("--model", kind, "detector kind: " + kinds + "; or auto (flowad fit): the best of several on validation")
      ->capture_default_str();
  app.add_option("--set", assignments,
                 "change a setting of the detector's recommended configuration, KEY=VALUE (repeatable; "
                 "`flowad info --model KIND` lists them)");
  app.add_option("--epochs", epochs, "training epochs (the setting train.epochs; default: the detector's recipe)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--host", host, "the teacher-student host of --model fcl: rd or stfpm (the setting host)")
      ->check(CLI::IsMember({"rd", "stfpm"}));
}

detector_config detector_options::settings() const {
  detector_config c;
  for (const std::string& a : assignments) {
    const auto [key, value] = detector_config::parse_assignment(a);
    c.set(key, value);
  }
  if (epochs > 0) c.set("train.epochs", std::to_string(epochs));
  if (!host.empty()) c.set("host", host);
  return c;
}

void pipeline_options::attach(CLI::App& app, bool with_embedding) {
  std::string names;
  for (const std::string& n : extractor_names()) names += (names.empty() ? "" : ", ") + n;
  app.add_option("--extractor", extractor, "feature extractor: " + names)->capture_default_str();
  app.add_option("--weights", weights, "the extractor's weights: a folder of .npy files or an .npz archive");
  if (with_embedding)
    app.add_flag("--embed-weights", embed_weights, "store the extractor's weights in the model file (one file to deploy)");
  app.add_option("--size", size,
                 "model input size HxW (e.g. 400x300) or S; default: the first training image's aspect ratio, "
                 "shorter side --shorter-side");
  app.add_option("--shorter-side", shorter_side, "shorter side of the input size when --size is not given")
      ->capture_default_str();
  app.add_option("--levels", levels,
                 "extractor levels to read, optionally after 'image' (the input image; default: the detector's "
                 "recipe or the extractor's)")
      ->delimiter(',');
  app.add_option("--neighbourhood", neighbourhood,
                 "replace each feature vector by the mean of its K x K neighbours (odd; PatchCore aggregates 3 x 3)")
      ->capture_default_str();
  app.add_option("--pool-stride", pool_stride,
                 "keep every P-th cell of each (aggregated) map (MSFlow pools with --neighbourhood 3 --pool-stride 2)")
      ->capture_default_str();
  detector.attach(app);
}

pipeline_config pipeline_options::config() const {
  if (detector.kind == auto_detector)  // flowad fit handles it before asking for a configuration
    throw error(errc::invalid_argument,
                "--model auto is for flowad fit, which chooses a detector by validating each candidate on your images "
                "and records the choice in the model file; this command needs one kind (compare kinds on a test set "
                "with flowad benchmark --models)");
  pipeline_config c;
  c.extractor = extractor;
  c.weights = weights;
  c.embed_weights = embed_weights;
  if (!size.empty()) {
    const image_dims d = parse_dims("--size", size);
    c.height = d.height;
    c.width = d.width;
  }
  c.shorter_side = shorter_side;
  c.levels = levels;
  c.neighbourhood = neighbourhood;
  c.pool_stride = pool_stride;
  c.detector = detector.kind;
  c.settings = detector.settings();
  c.validate();
  return c;
}

void parse_calibration(const std::string& text, inspector_fit_options& options) {
  long long folds = 0;
  if (text == "auto") {
    options.calibration = calibration_method::automatic;
  } else if (text == "holdout") {
    options.calibration = calibration_method::holdout;
  } else if (text.rfind("folds:", 0) == 0 && detail::parse_integer(text.substr(6), folds) && folds >= 2) {
    options.calibration = calibration_method::out_of_fold;
    options.calibration_folds = static_cast<std::size_t>(folds);
  } else {
    throw error(errc::invalid_argument, "--calibration expects auto, holdout or folds:K with K >= 2, got '" + text + "'");
  }
}

void threshold_options::attach(CLI::App& app) {
  app.add_option("--calibration", calibration,
                 "how the threshold is set: folds:K (out-of-fold scores of K models, then a final fit on all "
                 "images: K+1 fits), holdout (score a held-out share --holdout: one fit, few scores), or auto "
                 "(folds:" + std::to_string(inspector_fit_options{}.calibration_folds) + " with at least " +
                     std::to_string(2 * inspector_fit_options{}.calibration_folds) + " images, else holdout)")
      ->capture_default_str();
  app.add_option("--holdout", holdout,
                 "with --calibration holdout: share of the images kept out of fitting and scored to set the decision "
                 "threshold (0: no threshold, with auto too)")
      ->capture_default_str();
  app.add_option("--target-fpr", target_fpr, "false-positive rate the threshold aims at on defect-free images")
      ->capture_default_str();
  app.add_option("--holdout-seed", holdout_seed, "which images are held out (and in which calibration fold)")->capture_default_str();
}

void threshold_options::apply(inspector_fit_options& options) const {
  parse_calibration(calibration, options);
  options.holdout = holdout;
  options.target_fpr = target_fpr;
  options.holdout_seed = holdout_seed;
}

}  // namespace cli
}  // namespace flowad
