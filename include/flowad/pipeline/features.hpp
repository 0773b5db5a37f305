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

// The reserved level name of the normalised input image itself: with every extractor, a level of
// extractor::input_channels() channels, stride 1 and center_offset 0 holding the resized, normalised
// image (the pixels the extractor sees, NHWC). Teacher-student detectors train a student on it.
// It comes first when kept (levels are finest first) and is neither aggregated by `neighbourhood` nor
// subsampled by `pool_stride`: it stays the image, at the input size. No extractor names a level so.
inline constexpr char image_level[] = "image";

struct feature_options {
  index_t height = 256;             // images are resized (antialiased bilinear) to height x width
  index_t width = 256;
  // Levels to keep, by name, finest first: the extractor's, optionally preceded by image_level.
  // Empty: the extractor's default_levels().
  std::vector<std::string> levels;
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

// One kept level: the image (image_level) or an extractor level.
struct kept_level {
  std::string name;
  bool image = false;       // the normalised input image: not aggregated, not pooled
  std::size_t index = 0;    // into ex.levels() (unused for the image)
  index_t channels = 0;
  index_t stride = 1;       // input pixels per cell, before pooling
  double center_offset = 0.0;
};

// The levels of options.levels (or the defaults), in order. Throws errc::invalid_argument naming an
// unknown level, or image_level anywhere but first.
std::vector<kept_level> kept_levels(const extractor& ex, const feature_options& options);

// Indices into ex.levels() of the kept extractor levels (the image level, which has none, is left
// out); throws as kept_levels.
std::vector<std::size_t> level_indices(const extractor& ex, const feature_options& options);

// The shape of each kept level for images of options.height x options.width (the image level's is
// input_channels() x height x width, whatever the pool stride).
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

// What extract_features keeps between calls when it is given one: the extractor's workspace (its
// activations, oneDNN's scratchpad) and the batch's buffers. Reused for batches of a size it has seen,
// extraction allocates no large buffer again (a few small vectors of bookkeeping remain), where a fresh
// one pays for the backbone's activations (about 10 MB an image for ResNet18 at 256 x 256) and the first
// touch of every page of them. Images whose size differs from the options' are still resampled through
// temporaries. One per thread.
struct extraction_buffers {
  workspace ws;
  tensor pixels, scratch, full;
  std::vector<tensor> maps;
};

// extract_features of images in memory into `out` (resized to the kept levels' shapes, reused when they
// fit), with the buffers of earlier calls.
void extract_features(const extractor& ex, const std::vector<byte_image>& images, const feature_options& options,
                      std::vector<tensor>& out, extraction_buffers& buffers);

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
// center_offset / stride of each level, so that anomaly maps lie on the image (0 for the image level).
std::vector<double> map_cell_offsets(const extractor& ex, const feature_options& options);

// Views of extract_features' output, as fit() and score() take them.
feature_maps views_of(const std::vector<tensor>& maps);

// The largest stride of the kept levels times the pool stride (1 for the image level, which is not
// pooled): image sides that are a multiple of it give feature cells that tile the image exactly
// (map_cell_offsets is then exact).
index_t feature_stride(const extractor& ex, const feature_options& options);

}  // namespace v0
}  // namespace flowad
