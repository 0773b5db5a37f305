// The stable API: a detector is fitted on feature maps of defect-free images and scores feature maps
// of new images. Feature maps come from any extractor: one N x C x H x W view per scale, any strides.
//
// Every detector kind is found through one registry: make_detector(kind, config) builds one,
// recommended_config(kind, geometry) gives its validated defaults for given features, and
// load_detector(path) reads any model file flowad wrote.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "flowad/detector_config.hpp"
#include "flowad/tensor.hpp"
#include "flowad/train/fit.hpp"

namespace flowad {
inline namespace v0 {

struct model_file_contents;

// One view per scale, every view with the same batch size N.
using feature_maps = std::vector<const_view>;

// The largest magnitude a feature value may have. Extractors give values of order 1 to 1000; beyond
// this, the squares, distances and products that scoring computes in float could overflow, so fit() and
// score() refuse such features (errc::invalid_argument naming the value) rather than return Inf or NaN.
inline constexpr float max_feature_magnitude = 1e12f;

// The shape of one scale of a sample.
struct scale_shape {
  index_t channels = 0;
  index_t height = 0;
  index_t width = 0;
  friend bool operator==(const scale_shape& a, const scale_shape& b) noexcept {
    return a.channels == b.channels && a.height == b.height && a.width == b.width;
  }
  friend bool operator!=(const scale_shape& a, const scale_shape& b) noexcept { return !(a == b); }
};

// What a detector's defaults may depend on besides the features' shapes, when the features come from a
// known extractor: each scale's stride (input pixels per feature cell) and whether the extractor
// recommends statistics per position (extractor::position_statistics()).
struct feature_geometry {
  std::vector<scale_shape> shapes;
  std::vector<index_t> strides;      // one per scale, or empty: unknown (feature maps from elsewhere)
  bool position_statistics = false;
};

// "128x32x32,256x16x16" (channels x height x width per scale), as configurations write them.
std::string to_config_text(const std::vector<scale_shape>& shapes);
void parse_config_text(errc code, const std::string& key, const std::string& text, std::vector<scale_shape>& out);

// What one score() call produces besides the scores themselves: how large the anomaly maps are and
// where the feature cells sit on them. How a detector turns its features into maps and scores is part
// of its configuration, saved with it.
struct score_options {
  // Size of the returned anomaly maps; 0 x 0 means the size of the first scale's feature map.
  index_t map_height = 0;
  index_t map_width = 0;
  // Per scale, where its cells sit in the image, in cells (upsample_bilinear's cell_offset, in
  // scoring/anomaly_map.hpp): feature_level::center_offset / stride. Empty: 0 for every scale,
  // PyTorch's align_corners=False grid. The image pipeline sets it from the extractor.
  std::vector<double> cell_offsets;
  // Samples scored per pass (bounds memory; results do not depend on it beyond float rounding).
  index_t batch_size = 16;
};

struct scores {
  std::vector<double> image;  // one score per sample; higher is more anomalous
  tensor maps;                // N x 1 x H x W anomaly maps (NCHW); higher is more anomalous
};

// Rotated copies of each image that a detector asks the image pipeline for (DifferNet). The pipeline
// extracts the features of every copy (an image's copies consecutive, in the order of the angles),
// hands them to fit() and score() as samples, and takes an image's score as the mean of its test
// copies' scores. Angles are in degrees, counter-clockwise, about the image's centre
// (rotate_nearest, io/image_rotate.hpp).
struct image_rotations {
  index_t training_copies = 0;     // copies per training image; 0: the images as they are
  std::uint64_t training_seed = 0;
  std::vector<double> test_angles;  // empty: the images as they are
  // The angles of training image `image` (its index in the list fitted on): training_copies draws
  // from U[−180°, 180°), fixed by training_seed and the index.
  std::vector<double> training_angles(std::size_t image) const;
  bool any() const noexcept { return training_copies > 0 || !test_angles.empty(); }
};

// Size of a model.
struct model_stats {
  double parameters = 0.0;      // stored values: learned parameters and fixed statistics
  double macs_per_image = 0.0;  // multiply-accumulates of one forward pass of one sample
};

// Runtime-polymorphic detector. score() is const and safe to call from several threads at once; fit()
// is not (call it from one thread, and not while scoring).
class detector {
 public:
  virtual ~detector() = default;

  // The registry name: "msflow", "fastflow".
  virtual const char* kind() const noexcept = 0;
  virtual bool fitted() const noexcept = 0;
  // The per-scale shapes score() accepts (fixed by the configuration).
  virtual std::vector<scale_shape> input_shapes() const = 0;
  virtual model_stats stats() const = 0;
  // The configuration, as make_detector(kind(), config()) would take it.
  virtual detector_config config() const = 0;
  // Whether score() gives anomaly maps. A detector that does not localise (DifferNet) returns maps of
  // N x 1 x 0 x 0, and evaluation reports pixel AUROC and AUPRO as not applicable.
  virtual bool localises() const noexcept { return true; }
  // Rotated copies the image pipeline should make of each image (default: none).
  virtual image_rotations rotations() const { return {}; }

  // Fits on defect-free samples with the training recipe of the configuration; returns the loss curve
  // and what happened on the way. Throws errc::shape_mismatch for features that do not match
  // input_shapes(), errc::non_finite for NaN/Inf, errc::invalid_argument for values beyond
  // ±max_feature_magnitude, errc::training_failed when training cannot proceed.
  virtual fit_report fit(const feature_maps& train, const fit_options& options = {}) = 0;

  // Scores samples. Throws errc::not_fitted before fit()/load, errc::shape_mismatch for a wrong number
  // of scales, channels or spatial size, errc::non_finite for NaN/Inf in the input, errc::invalid_argument
  // for values beyond ±max_feature_magnitude.
  scores score(const feature_maps& features, const score_options& options = {}) const;
  // The same into `out`, reusing its buffers: once out has held a result of this size, no allocation.
  virtual void score(const feature_maps& features, const score_options& options, scores& out) const = 0;
  // Throws errc::invalid_argument if score() would refuse these options; usable before fit().
  virtual void check_score_options(const score_options& options) const;

  // The model file's contents: kind, configuration, metadata and tensors (errc::not_fitted before
  // fit()). save() writes them atomically (temporary file + rename) with a checksum.
  virtual model_file_contents to_model_file() const = 0;
  void save(const std::filesystem::path& path) const;

  // Free-form annotations saved with the model: provenance, or the image pipeline's settings.
  // Keys are non-empty [A-Za-z0-9_.-]; values any text.
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  void set_metadata(const std::string& key, const std::string& value);
  void erase_metadata(const std::string& key) { metadata_.erase(key); }

 protected:
  std::map<std::string, std::string> metadata_;
};

// ------------------------------------------------------------------------------------------------
// The registry

struct detector_info {
  std::string kind;     // "msflow"
  std::string summary;  // one line
  // How many of an extractor's levels the detector's recipe reads, deepest last: FastFlow reads the
  // three of strides 4, 8, 16; 0 means the extractor's default_levels().
  std::size_t recipe_levels = 0;
  // Whether the detector reads the normalised input image as scale 0, before the extractor's levels
  // (teacher-student detectors train a student on it): the image pipeline then puts the level
  // "image" (pipeline/features.hpp, image_level) first in the levels it chooses.
  bool reads_image = false;
  // A setting, "KEY=VALUE", under which the detector reads the image although reads_image is false
  // (fcl: "host=stfpm"); empty: none.
  std::string reads_image_when = {};
};

// Whether a detector of this kind, with these changes to its recommended configuration, reads the image.
bool reads_image(const detector_info& kind, const detector_config& settings);

// Every kind flowad knows, in registration order.
const std::vector<detector_info>& detector_kinds();
// Throws errc::invalid_argument naming an unknown kind and listing the known ones.
const detector_info& detector_kind(const std::string& kind);

// The kind's validated defaults for features of this geometry (what `flowad fit` uses without options),
// or of these shapes from an unknown extractor.
detector_config recommended_config(const std::string& kind, const feature_geometry& geometry);
detector_config recommended_config(const std::string& kind, const std::vector<scale_shape>& shapes);
// The configuration of the kind's paper, with the paper's feature shapes (what its cost tables count);
// errc::invalid_argument for a kind without one.
detector_config paper_config(const std::string& kind);

// An unfitted detector. Throws errc::invalid_argument for an unknown kind, a configuration with missing
// or unknown keys, or values out of their domains (naming them).
std::unique_ptr<detector> make_detector(const std::string& kind, const detector_config& config);
// The same from a typed configuration (msflow_config, fastflow_config, ...).
template <class Config, class = decltype(std::declval<Config&>().validate())>
std::unique_ptr<detector> make_detector(const std::string& kind, const Config& config) {
  return make_detector(kind, to_detector_config(config));
}

// Loads any detector saved by flowad. Throws errc::io_error if the file cannot be read and
// errc::bad_file if it is truncated, corrupt, foreign or of an unsupported version or kind.
std::unique_ptr<detector> load_detector(const std::filesystem::path& path);
// The same from contents already read (read_model_file); tensors named "extractor.*" are ignored.
std::unique_ptr<detector> detector_from_model_file(const model_file_contents& contents);

}  // namespace v0
}  // namespace flowad
