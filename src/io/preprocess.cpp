#include "flowad/io/preprocess.hpp"

#include <cstdint>
#include <string>

#include "flowad/io/image_resize.hpp"
#include "io/parallel_for.hpp"

namespace flowad {
inline namespace v0 {
namespace {

void check_target_size(index_t height, index_t width, const char* what) {
  if (height <= 0 || width <= 0)
    throw error(errc::invalid_argument, std::string(what) + ": target size " + std::to_string(height) + "x" +
                                            std::to_string(width) + " is not positive");
}

// dst(n, c, y, x) = (value(y, x, c) - mean) / std for an RGB image of either pixel type.
template <class Image, class Value>
void write_normalized_image(const Image& rgb, const view& dst, index_t n, const channel_normalization& norm,
                            Value&& value) {
  if (rgb.channels() != 3)
    throw error(errc::shape_mismatch, "write_normalized takes an RGB image but got " + rgb.shape_str());
  if (dst.c() != 3 || dst.h() != rgb.height() || dst.w() != rgb.width())
    throw error(errc::shape_mismatch, "image " + rgb.shape_str() + " does not fit destination " + dst.shape().str());
  if (n < 0 || n >= dst.n())
    throw error(errc::invalid_argument, "sample " + std::to_string(n) + " is outside destination " + dst.shape().str());
  for (index_t c = 0; c < 3; ++c) {
    const float std_dev = norm.std[static_cast<std::size_t>(c)];
    if (!(std_dev > 0.0f))
      throw error(errc::invalid_argument,
                  "normalisation std of channel " + std::to_string(c) + " is " + std::to_string(std_dev) + ", not > 0");
    const float mean = norm.mean[static_cast<std::size_t>(c)];
    const float inv_std = 1.0f / std_dev;
    for (index_t y = 0; y < rgb.height(); ++y)
      for (index_t x = 0; x < rgb.width(); ++x) dst(n, c, y, x) = (value(rgb(y, x, c)) - mean) * inv_std;
  }
}

}  // namespace

void write_normalized(const float_image& rgb, const view& dst, index_t n, const channel_normalization& norm) {
  write_normalized_image(rgb, dst, n, norm, [](float v) { return v; });
}

void write_normalized(const byte_image& rgb, const view& dst, index_t n, const channel_normalization& norm) {
  constexpr float inv_255 = 1.0f / 255.0f;  // as to_float, so both paths give the same floats
  write_normalized_image(rgb, dst, n, norm, [](std::uint8_t v) { return static_cast<float>(v) * inv_255; });
}

tensor normalize_images(const std::vector<float_image>& images, const channel_normalization& norm) {
  if (images.empty()) throw error(errc::empty_input, "normalize_images got no images");
  const float_image& first = images.front();
  for (std::size_t i = 1; i < images.size(); ++i)
    if (images[i].height() != first.height() || images[i].width() != first.width() ||
        images[i].channels() != first.channels())
      throw error(errc::shape_mismatch, "image " + std::to_string(i) + " is " + images[i].shape_str() +
                                            " but image 0 is " + first.shape_str());
  tensor result({static_cast<index_t>(images.size()), 3, first.height(), first.width()}, layout::nchw);
  for (std::size_t i = 0; i < images.size(); ++i)
    write_normalized(images[i], result.view(), static_cast<index_t>(i), norm);
  return result;
}

tensor load_image_batch(const std::vector<std::filesystem::path>& paths, index_t height, index_t width,
                        const channel_normalization& norm) {
  if (paths.empty()) throw error(errc::empty_input, "load_image_batch got no paths");
  check_target_size(height, width, "load_image_batch");
  tensor result({static_cast<index_t>(paths.size()), 3, height, width}, layout::nchw);
  const view out = result.view();
  detail::parallel_for_each_index(static_cast<index_t>(paths.size()), [&](index_t i) {
    const float_image rgb = to_float(read_image(paths[static_cast<std::size_t>(i)]));
    write_normalized(resize_bilinear(rgb, height, width, true), out, i, norm);
  });
  return result;
}

tensor load_mask_batch(const std::vector<std::filesystem::path>& paths, index_t height, index_t width) {
  if (paths.empty()) throw error(errc::empty_input, "load_mask_batch got no paths");
  check_target_size(height, width, "load_mask_batch");
  tensor result({static_cast<index_t>(paths.size()), 1, height, width}, layout::nchw);
  const view out = result.view();
  detail::parallel_for_each_index(static_cast<index_t>(paths.size()), [&](index_t i) {
    const std::filesystem::path& path = paths[static_cast<std::size_t>(i)];
    if (path.empty()) {
      for (index_t y = 0; y < height; ++y)
        for (index_t x = 0; x < width; ++x) out(i, 0, y, x) = 0.0f;
      return;
    }
    const byte_image mask = resize_nearest(read_mask(path), height, width);
    for (index_t y = 0; y < height; ++y)
      for (index_t x = 0; x < width; ++x) out(i, 0, y, x) = mask(y, x) ? 1.0f : 0.0f;
  });
  return result;
}

}  // namespace v0
}  // namespace flowad
