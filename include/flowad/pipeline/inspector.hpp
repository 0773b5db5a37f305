// The image-level API: from defect-free images to a fitted inspector that gives every new image a
// score, a verdict against a threshold set from defect-free images only, and an anomaly map at the
// image's own size; saved and loaded as one model file.
//
//   flowad::inspector insp(flowad::pipeline_config::recommended("resnet18", "weights/resnet18"));
//   insp.fit(flowad::image_folder("part/train/good"));         // threshold from out-of-fold scores
//   flowad::verdict v = insp.inspect(flowad::read_image("new.png"));
//   insp.save("part.flowad");
//   flowad::inspector again = flowad::inspector::load("part.flowad");
//
// An inspector owns the extractor and its preprocessing (resize to the model's input size, ImageNet
// normalisation), the detector, the decision threshold and the heatmap colour range. Everything a
// model file needs to score images again is written into it (the keys pipeline.*, threshold*,
// heatmap.* of the detector's metadata); with pipeline_config::embed_weights the extractor's weights
// are stored too, and the file is all a deployment needs.
//
// Threading: inspect(), score(), heatmap() and save() are const and safe to call from several threads at
// once; fit() is not. Scoring from many threads: set each thread's OpenMP thread count
// (docs/reliability.md, "Concurrent scoring").
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flowad/detector.hpp"
#include "flowad/extract/extractor.hpp"
#include "flowad/io/heatmap.hpp"
#include "flowad/io/image.hpp"
#include "flowad/pipeline/features.hpp"

namespace flowad {
inline namespace v0 {

struct detector_selection;  // pipeline/auto_select.hpp

// How images become a detector's input, and which detector.
struct pipeline_config {
  // Features.
  std::string extractor = "filterbank";  // make_extractor(): filterbank, resnet18, mobilenet_v2
  std::string weights;                   // the extractor's weights (a folder of .npy or an .npz); none for filterbank
  bool embed_weights = false;            // store the weights in the model file (one-file deployment)
  // The model's input size. 0 x 0: the first training image's aspect ratio with the shorter side
  // `shorter_side`, each side rounded to a multiple of the features' stride (feature_stride()).
  index_t height = 0;
  index_t width = 0;
  index_t shorter_side = 256;
  // Extractor levels, optionally preceded by image_level (the input image); empty: the detector's
  // recipe, else the extractor's default_levels(). pipeline_levels() adds the image for a detector
  // that reads it.
  std::vector<std::string> levels;
  index_t neighbourhood = 1;        // feature_options::neighbourhood
  index_t pool_stride = 1;          // feature_options::pool_stride
  // The detector: its kind, and changes to recommended_config(kind, feature shapes) (key=value).
  std::string detector = "msflow";
  detector_config settings;

  // The validated defaults with a given extractor (what `flowad fit --extractor NAME` does).
  static pipeline_config recommended(const std::string& extractor, const std::string& weights = {},
                                     const std::string& detector = "msflow");
  // Throws errc::invalid_argument naming the first field out of its domain.
  void validate() const;
};

// How fit() sets the decision threshold from defect-free images alone.
enum class calibration_method {
  // out_of_fold with calibration_folds folds when there are at least 2 x calibration_folds images,
  // else holdout.
  automatic,
  // A share `holdout` of the images is kept out of fitting and scored: fast (one fit), but the threshold
  // rests on few scores and the model sees fewer images.
  holdout,
  // The images are cut into calibration_folds seeded folds (calibration_fold_of); each fold is scored by
  // a detector fitted on the other folds, and the final model is fitted on all images. The threshold
  // then rests on one score per image; it costs calibration_folds + 1 fits.
  out_of_fold,
};

// Before each fit (out-of-fold calibration runs calibration_folds + 1 of them): fit `index` of `count`
// (from 1); the final model on all images, or the model of calibration fold `fold` (from 0), fitted on
// the other folds.
struct fit_stage {
  std::size_t index = 0;
  std::size_t count = 0;
  bool final_model = true;
  std::size_t fold = 0;
  std::size_t images = 0;  // images it fits on
};

// How fit() runs: the training callbacks and recovery (fit_options), feature-extraction progress,
// and the decision threshold.
struct inspector_fit_options : fit_options {
  calibration_method calibration = calibration_method::automatic;
  // Out-of-fold calibration: the number of folds, in [2, images].
  std::size_t calibration_folds = 5;
  // Holdout calibration: the share of the images kept out of fitting, scored to set the threshold (at
  // least one image when > 0). 0 with holdout or automatic calibration: no threshold (verdicts then
  // need set_threshold()).
  double holdout = 0.1;
  // The threshold is the score a defect-free image reaches with at most this probability
  // (threshold_for_fpr, metrics/threshold.hpp).
  double target_fpr = 0.01;
  std::uint64_t holdout_seed = 0;  // which images are held out, and the calibration folds
  progress_callback on_extract;    // (images done, total) while extracting features
  std::function<void(const fit_stage&)> on_fit;  // before each fit
};

// What fit() did.
struct inspector_fit_report {
  fit_report training;           // the final model's (with the calibration fits' events appended)
  std::size_t fit_images = 0;    // images the final model is fitted on
  std::size_t held_out_images = 0;  // images held out of the final model (holdout calibration)
  std::size_t calibration_fits = 0;  // extra fits of out-of-fold calibration (its folds)
  // The defect-free scores the threshold was set from: held-out images, or one out-of-fold score per
  // image in the order given; empty without a threshold.
  std::vector<double> calibration_scores;
  double extract_seconds = 0.0;  // reading images and extracting the training features
  double calibration_seconds = 0.0;  // out-of-fold calibration's fits and scoring
  double seconds = 0.0;          // everything: extraction, training, threshold and heatmap range
};

// The decision threshold and where it came from.
struct decision_threshold {
  double value = 0.0;            // an image is anomalous iff its score >= value
  double target_fpr = 0.0;       // 0 when set by hand
  // The number of defect-free scores it was set from: held-out images, or with out-of-fold
  // calibration every image (each is held out of one fold's model).
  std::size_t held_out_images = 0;
  bool bounded = true;           // false: too few held-out images for the target; the largest score
  std::size_t folds = 0;         // out-of-fold calibration's folds; 0: held-out images or by hand
};

// "out_of_fold", "holdout" or "manual" (set by hand): how a threshold was set.
std::string calibration_name(const decision_threshold& t);

// The calibration fold (0 .. folds - 1) of each of `count` images: a seeded shuffle (seed as
// inspector_fit_options::holdout_seed) dealt round-robin, so fold sizes differ by at most one. Throws
// errc::invalid_argument unless 2 <= folds <= count.
std::vector<std::size_t> calibration_fold_of(std::size_t count, std::size_t folds, std::uint64_t seed);

struct verdict {
  double score = 0.0;      // higher is more anomalous
  bool anomalous = false;  // score >= threshold (false when the inspector has no threshold)
  tensor map;              // 1 x 1 x h x w at the image's own size; empty when the detector does not
                           // localise (detector::localises(), DifferNet)
};

class inspector {
 public:
  // Builds the extractor (reading its weights) and checks the configuration; fit() builds the detector
  // once the input size, and so the feature shapes, are known.
  explicit inspector(pipeline_config config);
  ~inspector();
  inspector(inspector&&) noexcept;
  inspector& operator=(inspector&&) noexcept;

  // Fits on defect-free images: files, or images in memory (RGB, any size). Throws errc::empty_input
  // for no images, errc::io_error / bad_file naming an image that cannot be read, and the detector's
  // errors.
  inspector_fit_report fit(const std::vector<std::filesystem::path>& good_images, const inspector_fit_options& options = {});
  inspector_fit_report fit(const std::vector<byte_image>& good_images, const inspector_fit_options& options = {});

  // Score, verdict and anomaly map at the image's own size. Throws errc::not_fitted before fit()/load().
  verdict inspect(const byte_image& image) const;
  std::vector<verdict> inspect(const std::vector<byte_image>& images) const;
  std::vector<verdict> inspect(const std::vector<std::filesystem::path>& images) const;

  // Scores and maps at the model's input size, or at map_height x map_width (what metrics compare
  // with masks resized to it). For a detector that asks for rotated copies (detector::rotations()) an
  // image's score is the mean of its test copies' scores; a detector that does not localise gives maps
  // of N x 1 x 0 x 0. The backbone and the detector work through a batch four images at a time, so a
  // large batch costs little more memory than its features and maps.
  scores score(const std::vector<byte_image>& images, index_t map_height = 0, index_t map_width = 0) const;
  // The same into `out`, whose buffers are reused: scoring batches of one size again and again (a
  // camera's frames) allocates no large buffer after the first call on each thread (the backbone's
  // activations, the features and the maps are kept; small bookkeeping vectors are not), which is faster
  // where fresh memory is slow to touch.
  void score(const std::vector<byte_image>& images, scores& out, index_t map_height = 0, index_t map_width = 0) const;
  scores score(const std::vector<std::filesystem::path>& images, index_t map_height = 0, index_t map_width = 0,
               const progress_callback& on_extract = {}) const;

  // The colour overlay of a verdict's map on its image, on the inspector's fixed colour range
  // (heatmap_range()); the ground-truth outline is drawn when given. errc::invalid_argument when the
  // detector does not localise.
  byte_image heatmap(const byte_image& image, const verdict& v, const byte_image* ground_truth = nullptr) const;

  // One model file: the detector, how its features are made, the threshold and the heatmap range (and
  // the extractor's weights with embed_weights). Throws errc::not_fitted before fit().
  void save(const std::filesystem::path& path) const;
  // Throws errc::bad_file for a model fitted on feature maps (it does not know how to make them from
  // images), for a damaged image-pipeline record or embedded weights (naming the file and the entry;
  // checked before anything is sized by them), and the usual model-file errors; errc::io_error when
  // weights recorded by path cannot be read.
  static inspector load(const std::filesystem::path& path);

  bool fitted() const noexcept;
  const pipeline_config& config() const noexcept;
  const extractor& features() const noexcept;
  // errc::not_fitted before fit() or load().
  const detector& model() const;
  // The input size and feature options fit() settled on (errc::not_fitted before).
  const feature_options& feature_settings() const;
  const std::optional<decision_threshold>& threshold() const noexcept;
  void set_threshold(double value);
  const heatmap_options& heatmap_range() const noexcept;
  // How the detector was chosen (`flowad fit --model auto`, fit_selected in pipeline/auto_select.hpp,
  // which declares the type); none for a detector given by hand. Saved and loaded with the model.
  std::optional<detector_selection> selection() const;
  // errc::invalid_argument when the selection's chosen kind is not this inspector's detector.
  void set_selection(const detector_selection& selection);

 private:
  struct state;
  struct image_source;
  explicit inspector(std::unique_ptr<state> s);
  inspector_fit_report fit_from(const image_source& images, const inspector_fit_options& options);
  std::unique_ptr<state> state_;
};

// The levels fit() reads: `requested` (pipeline_config::levels), else the detector's recipe (the
// extractor's last recipe_levels levels), else the extractor's default_levels(); with image_level put
// first when the detector reads the image (detector_info::reads_image) and it is not there already.
std::vector<std::string> pipeline_levels(const std::vector<std::string>& requested, const detector_info& detector,
                                         const extractor& ex);
// What fit() settles for images of image_height x image_width (0 x 0: square images of the shorter
// side): the levels (pipeline_levels) and the input size (the configuration's, or the images' aspect
// ratio).
feature_options pipeline_features(const pipeline_config& config, const extractor& ex, index_t image_height = 0,
                                  index_t image_width = 0);
// The detector configuration fit() builds for these features: the kind's recommended one for their
// geometry (feature_geometry_of), changed by config.settings.
detector_config pipeline_detector_config(const pipeline_config& config, const extractor& ex, const feature_options& features);
// The shapes, strides and position recommendation of an extractor's features.
feature_geometry feature_geometry_of(const extractor& ex, const feature_options& features);

// The image files of a folder (extensions is_image_file_name accepts), sorted by name. Throws
// errc::io_error when the folder cannot be read and errc::empty_input when it holds no image.
std::vector<std::filesystem::path> image_folder(const std::filesystem::path& folder);

// The model input size for an image of image_height x image_width: the shorter side `shorter_side`,
// the longer one keeping the aspect ratio, both rounded to the nearest multiple of `stride` (at least
// one stride).
struct input_size {
  index_t height = 0;
  index_t width = 0;
};
input_size aspect_preserving_size(index_t image_height, index_t image_width, index_t shorter_side, index_t stride);

}  // namespace v0
}  // namespace flowad
