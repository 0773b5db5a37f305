// Owned images, and reading and writing image files: PNG (libspng), JPEG (libjpeg-turbo), BMP (stb_image);
// PNG files are written by stb_image_write.
//
// An image is H x W x C, rows top to bottom, channels interleaved: pixel (y, x) channel c is element
// (y * W + x) * C + c. Conventions used across flowad::io:
//   - an RGB image has C = 3 (byte_image: 0..255, float_image: 0..1);
//   - a mask has C = 1 and holds 0 (normal) or 1 (anomalous);
//   - a single-channel float_image is a map (e.g. an anomaly map).
// The interleaved layout is the one files and decoders use; conversion to the N x C x H x W tensors that
// extractors take happens once, in flowad/io/preprocess.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "flowad/error.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

template <class T>
class basic_image {
 public:
  using value_type = T;

  basic_image() noexcept = default;
  basic_image(index_t height, index_t width, index_t channels, T fill = T{})
      : height_(height), width_(width), channels_(channels) {
    if (height < 0 || width < 0 || channels < 0)
      throw error(errc::invalid_argument, "negative image dimension " + shape_str());
    if (height > 0 && width > 0 && channels > 0 && height > std::numeric_limits<index_t>::max() / width / channels)
      throw error(errc::invalid_argument, "image of " + shape_str() + " elements is too large");
    pixels_.assign(static_cast<std::size_t>(height * width * channels), fill);
  }

  index_t height() const noexcept { return height_; }
  index_t width() const noexcept { return width_; }
  index_t channels() const noexcept { return channels_; }
  // Number of elements (H * W * C).
  std::size_t size() const noexcept { return pixels_.size(); }
  bool empty() const noexcept { return pixels_.empty(); }
  T* data() noexcept { return pixels_.data(); }
  const T* data() const noexcept { return pixels_.data(); }

  T& operator()(index_t y, index_t x, index_t c = 0) noexcept {
    return pixels_[static_cast<std::size_t>((y * width_ + x) * channels_ + c)];
  }
  const T& operator()(index_t y, index_t x, index_t c = 0) const noexcept {
    return pixels_[static_cast<std::size_t>((y * width_ + x) * channels_ + c)];
  }

  // "HxWxC", for messages.
  std::string shape_str() const {
    return std::to_string(height_) + "x" + std::to_string(width_) + "x" + std::to_string(channels_);
  }

  friend bool operator==(const basic_image& a, const basic_image& b) {
    return a.height_ == b.height_ && a.width_ == b.width_ && a.channels_ == b.channels_ && a.pixels_ == b.pixels_;
  }
  friend bool operator!=(const basic_image& a, const basic_image& b) { return !(a == b); }

 private:
  index_t height_ = 0;
  index_t width_ = 0;
  index_t channels_ = 0;
  std::vector<T> pixels_;
};

using byte_image = basic_image<std::uint8_t>;
using float_image = basic_image<float>;

// The most pixels an image file may declare (16384 x 8192): what a header claims is allocated before
// the pixels are read, so a small damaged file could otherwise ask for gigabytes.
inline constexpr index_t max_image_pixels = index_t{1} << 27;

// Reads a PNG, JPEG or BMP file (recognised by its signature, not its extension) as 8-bit RGB.
// Gray is replicated to R = G = B, alpha is dropped (not composited), 16-bit PNG samples are
// reduced to their high byte; CMYK JPEGs are refused. Throws errc::io_error when the file is missing, a
// directory or unreadable, and errc::bad_file when it is empty, of another format, truncated or corrupt
// (a damaged PNG chunk or zlib stream; any JPEG data libjpeg-turbo calls corrupt, even where it could
// decode on; a BMP pixel array cut short), declares no pixels or more than max_image_pixels, checked before
// pixel memory is allocated; the message names the file and, when a decoder rejected it, the decoder's
// reason.
byte_image read_image(const std::filesystem::path& path);

// Reads a single-channel mask (e.g. MVTec ground truth, 0/255) as a 1-channel image of 0/1: a pixel
// is anomalous when its gray level is >= 128. Colour files are reduced to luminance first. Same
// errors as read_image.
byte_image read_mask(const std::filesystem::path& path);

// Writes an 8-bit image with 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels as PNG.
// The parent folder must exist. Throws errc::invalid_argument for an empty image or another channel
// count, errc::io_error when the file cannot be written.
void write_png(const std::filesystem::path& path, const byte_image& image);

// Writes a 0/1 mask as a gray PNG of 0/255 (the MVTec convention, readable by read_mask).
void write_mask_png(const std::filesystem::path& path, const byte_image& mask);

// 0..255 -> 0..1, channel count unchanged.
float_image to_float(const byte_image& image);
// 0..1 -> 0..255, clamped and rounded to nearest; throws errc::non_finite on NaN.
byte_image to_bytes(const float_image& image);

}  // namespace v0
}  // namespace flowad
