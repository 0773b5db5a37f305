// From image files to the N x 3 x H x W tensors that extractors take.
#pragma once

#include <array>
#include <filesystem>
#include <vector>

#include "flowad/io/image.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

// Per-channel affine normalisation of an RGB image in [0, 1]: (value - mean[c]) / std[c].
struct channel_normalization {
  std::array<float, 3> mean;
  std::array<float, 3> std;
};

// The statistics every ImageNet-trained backbone expects.
inline constexpr channel_normalization imagenet_normalization{{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};

// Writes the normalised RGB float image (H x W x 3, values in [0, 1]) into sample n of dst, a view
// of N x 3 x H x W in any layout. Throws errc::shape_mismatch when the image is not 3-channel or
// its size differs from dst's, errc::invalid_argument when n is out of range or a std is not > 0.
void write_normalized(const float_image& rgb, const view& dst, index_t n,
                      const channel_normalization& norm = imagenet_normalization);
// The same from an 8-bit RGB image (values / 255, as to_float), without an intermediate float image.
void write_normalized(const byte_image& rgb, const view& dst, index_t n,
                      const channel_normalization& norm = imagenet_normalization);

// Stacks equally sized RGB float images into a normalised N x 3 x H x W tensor (NCHW).
// errc::empty_input for no images, errc::shape_mismatch when sizes differ (naming both).
tensor normalize_images(const std::vector<float_image>& images,
                        const channel_normalization& norm = imagenet_normalization);

// Reads each file (read_image), converts to [0, 1], resizes to height x width with antialiased
// bilinear resampling (resize_bilinear) and normalises: N x 3 x height x width, NCHW, sample i from
// paths[i]. Files are decoded in parallel (OpenMP). When several files fail, the error of the first
// failing path in the list is thrown. errc::empty_input for no paths.
tensor load_image_batch(const std::vector<std::filesystem::path>& paths, index_t height, index_t width,
                        const channel_normalization& norm = imagenet_normalization);

// Reads ground-truth masks (read_mask), resizes them with resize_nearest and returns
// N x 1 x height x width of 0.0f / 1.0f (NCHW). An empty path stands for an all-normal image (a good
// test image has no mask file). Parallel and with errors like load_image_batch.
tensor load_mask_batch(const std::vector<std::filesystem::path>& paths, index_t height, index_t width);

}  // namespace v0
}  // namespace flowad
