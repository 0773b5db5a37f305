// From image files to feature maps: the convenience in front of the stable feature-map API.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "flowad/extract/extractor.hpp"
#include "flowad/detector.hpp"
#include "flowad/io/image.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

// The domains of feature_options' sizes, shared by every check of them (fit, extraction, model files).
inline constexpr index_t max_image_side = 16384;  // height and width are in [1, max_image_side]
inline constexpr index_t max_neighbourhood = 63;  // odd, in [1, max_neighbourhood]
inline constexpr index_t max_pool_stride = 8;     // in [1, max_pool_stride]

struct feature_options {
  index_t height = 256;             // images are resized (antialiased bilinear) to height x width
  index_t width = 256;
  std::vector<std::string> levels;  // extractor levels to keep, by name; empty: the extractor's default_levels()
  index_t batch_size = 16;          // images per extraction pass
  // Local aggregation (PatchCore's): each feature vector becomes the mean of the vectors in its
  // neighbourhood x neighbourhood window (odd; positions outside the map are left out of the mean).
  // 1: none.
  index_t neighbourhood = 1;
  // Keep every pool_stride-th cell of each (aggregated) map in each direction, from cell 0: with
  // neighbourhood 3 and pool_stride 2 this is MSFlow's AvgPool2d(3, 2, 1) (which feeds a 2x larger
  // image to the backbone and pools its maps back to the size of the smaller image's). In [1, 8];
  // 1: none.
  index_t pool_stride = 1;
};

// Called with (images done, images in total).
using progress_callback = std::function<void(long, long)>;

// Indices into ex.levels() of options.levels (or the defaults); throws naming an unknown level.
std::vector<std::size_t> level_indices(const extractor& ex, const feature_options& options);

// The shape of each kept level for images of options.height x options.width.
std::vector<scale_shape> feature_shapes(const extractor& ex, const feature_options& options);

// Reads, resizes, normalises and extracts the images in batches: one dense NHWC tensor per kept level,
// N = images.size(). Throws flowad::error naming a file that cannot be read.
std::vector<tensor> extract_features(const extractor& ex, const std::vector<std::filesystem::path>& images,
                                     const feature_options& options, const progress_callback& progress = {});

// The same for images already in memory (RGB byte images of any size).
std::vector<tensor> extract_features(const extractor& ex, const std::vector<byte_image>& images,
                                     const feature_options& options, const progress_callback& progress = {});
// The same through pointers (a subset of images in memory, without copying them).
std::vector<tensor> extract_features(const extractor& ex, const std::vector<const byte_image*>& images,
                                     const feature_options& options, const progress_callback& progress = {});

// One rotated copy of an image: which image (an index into the images given) and the angle in degrees,
// counter-clockwise (detector::rotations()).
struct image_copy {
  std::size_t image = 0;
  double degrees = 0.0;
};
// Features of rotated copies of images in memory, sample i from copies[i]: each image is resized to
// the options' size, rotated (rotate_nearest, io/image_rotate.hpp; filled with 0 before normalisation,
// as DifferNet's Resize → RandomRotation → Normalize) and normalised.
std::vector<tensor> extract_features(const extractor& ex, const std::vector<const byte_image*>& images,
                                     const std::vector<image_copy>& copies, const feature_options& options,
                                     const progress_callback& progress = {});

// Where each kept level's cells sit in the image, in cells (score_options::cell_offsets):
// center_offset / stride of each level, so that anomaly maps lie on the image.
std::vector<double> map_cell_offsets(const extractor& ex, const feature_options& options);

// Views of extract_features' output, as fit() and score() take them.
feature_maps views_of(const std::vector<tensor>& maps);

// The largest stride of the kept levels times the pool stride: image sides that are a multiple of
// it give feature cells that tile the image exactly (map_cell_offsets is then exact).
index_t feature_stride(const extractor& ex, const feature_options& options);

}  // namespace v0
}  // namespace flowad
