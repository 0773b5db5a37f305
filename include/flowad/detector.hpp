// The stable API: a detector is fitted on feature maps of defect-free images and scores feature maps
// of new images. Feature maps come from any extractor: one N x C x H x W view per scale, any strides.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "flowad/scoring/aggregate.hpp"
#include "flowad/scoring/anomaly_map.hpp"
#include "flowad/scoring/latent.hpp"
#include "flowad/tensor.hpp"
#include "flowad/train/fit.hpp"

namespace flowad {
inline namespace v0 {

// One view per scale, every view with the same batch size N.
using feature_maps = std::vector<const_view>;

// The shape of one scale of a sample.
struct scale_shape {
  index_t channels = 0;
  index_t height = 0;
  index_t width = 0;
  friend bool operator==(const scale_shape& a, const scale_shape& b) noexcept {
    return a.channels == b.channels && a.height == b.height && a.width == b.width;
  }
};

struct score_options {
  // Size of the returned anomaly maps; 0 x 0 means the size of the first scale's feature map.
  index_t map_height = 0;
  index_t map_width = 0;
  // Per scale, where its cells sit in the image, in cells (upsample_bilinear's cell_offset, in
  // scoring/anomaly_map.hpp): feature_level::center_offset / stride. Empty: 0 for every scale,
  // PyTorch's align_corners=False grid. The pipeline sets it from the extractor (map_cell_offsets,
  // pipeline/features.hpp); feature maps from elsewhere leave it empty unless their grid is known.
  std::vector<double> cell_offsets;
  // What each position of a scale's map measures (scoring/latent.hpp). negative_log_likelihood needs
  // a position-wise flow (MS-Flow: every kernel 1) and cannot be combined by product.
  map_statistic statistic = map_statistic::latent_energy;
  // Gaussian blur of the maps after upsampling (0: none, as every flow reference implementation).
  double blur_sigma = 0.0;
  // How per-scale maps (each upsampled to the map size) are combined.
  map_combination combine = map_combination::mean;
  // Image score: top_k_mean (default, MSFlow's mean of the top 3 % of the map), max of the map, or
  // mean, which is CS-Flow's mean of z²/2 over every feature dimension of every scale.
  score_aggregation image_score = score_aggregation::top_k_mean;
  double top_k_fraction = default_top_k_fraction;
  // Samples scored per pass (bounds memory; results do not depend on it beyond float rounding).
  index_t batch_size = 16;
};

struct scores {
  std::vector<double> image;  // one score per sample; higher is more anomalous
  tensor maps;                // N x 1 x H x W anomaly maps (NCHW)
};

// Size of a model.
struct model_stats {
  double parameters = 0.0;      // learnable values
  double macs_per_image = 0.0;  // multiply-accumulates of one forward pass of one sample
};

// Runtime-polymorphic detector. score() is const and safe to call from several threads at once; fit()
// is not (call it from one thread, and not while scoring).
class detector {
 public:
  virtual ~detector() = default;

  virtual const char* kind() const noexcept = 0;
  virtual bool fitted() const noexcept = 0;
  // The per-scale shapes score() accepts (fixed by the configuration).
  virtual std::vector<scale_shape> input_shapes() const = 0;
  virtual model_stats stats() const = 0;

  // Fits on defect-free samples; returns the loss curve and what happened on the way.
  virtual fit_report fit(const feature_maps& train, const fit_options& options = {}) = 0;

  // Scores samples. Throws errc::not_fitted before fit()/load, errc::shape_mismatch for a wrong number
  // of scales, channels or spatial size, errc::non_finite for NaN/Inf in the input.
  virtual scores score(const feature_maps& features, const score_options& options = {}) const = 0;
  // The same into `out`, reusing its buffers: once out has held a result of this size, no allocation.
  virtual void score(const feature_maps& features, const score_options& options, scores& out) const = 0;

  // Saves atomically (temporary file + rename) with a checksum.
  virtual void save(const std::filesystem::path& path) const = 0;

  // Free-form annotations saved with the model: how its features were made (extractor, image size),
  // a decision threshold, provenance. Keys are non-empty [A-Za-z0-9_.-]; values any text.
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  void set_metadata(const std::string& key, const std::string& value) {
    bool ok = !key.empty() && key.size() <= 256;
    for (char ch : key)
      ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                  ch == '.' || ch == '-');
    if (!ok) throw error(errc::invalid_argument, "metadata key '" + key + "' is not [A-Za-z0-9_.-]{1,256}");
    metadata_[key] = value;
  }

 protected:
  std::map<std::string, std::string> metadata_;
};

// Loads any detector saved by flowad. Throws errc::io_error if the file cannot be read and
// errc::bad_file if it is truncated, corrupt, foreign or of an unsupported version or kind.
std::unique_ptr<detector> load_detector(const std::filesystem::path& path);

}  // namespace v0
}  // namespace flowad
