#include "flowad/io/image_resize.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace flowad {
inline namespace v0 {
namespace {

void check_resize_arguments(index_t src_height, index_t src_width, index_t src_channels, index_t height, index_t width,
                            const char* what) {
  if (src_height <= 0 || src_width <= 0 || src_channels <= 0)
    throw error(errc::invalid_argument, std::string(what) + ": the source image is empty (" +
                                            std::to_string(src_height) + "x" + std::to_string(src_width) + "x" +
                                            std::to_string(src_channels) + ")");
  if (height <= 0 || width <= 0)
    throw error(errc::invalid_argument, std::string(what) + ": target size " + std::to_string(height) + "x" +
                                            std::to_string(width) + " is not positive");
}

// The taps of one axis: output i reads input pixels [first[i], first[i] + taps) with
// weights[i * taps ..], zero-padded when fewer inputs fall under the filter.
struct axis_taps {
  index_t taps = 0;
  std::vector<index_t> first;
  std::vector<float> weights;
};

axis_taps triangle_taps(index_t in_size, index_t out_size, bool antialias) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filter_scale = antialias ? std::max(scale, 1.0) : 1.0;
  const double support = filter_scale;  // the triangle reaches 1 pixel, widened by the filter scale
  axis_taps result;
  result.taps = static_cast<index_t>(std::ceil(support)) * 2 + 1;
  result.first.resize(static_cast<std::size_t>(out_size));
  result.weights.assign(static_cast<std::size_t>(out_size * result.taps), 0.0f);
  std::vector<double> w(static_cast<std::size_t>(result.taps));
  for (index_t i = 0; i < out_size; ++i) {
    const double centre = (static_cast<double>(i) + 0.5) * scale;
    const index_t lo = std::max<index_t>(static_cast<index_t>(std::floor(centre - support + 0.5)), 0);
    const index_t hi = std::min<index_t>(static_cast<index_t>(std::floor(centre + support + 0.5)), in_size);
    double total = 0.0;
    index_t count = 0;
    for (index_t j = lo; j < hi && count < result.taps; ++j, ++count) {
      const double t = std::abs((static_cast<double>(j) + 0.5 - centre) / filter_scale);
      w[static_cast<std::size_t>(count)] = t < 1.0 ? 1.0 - t : 0.0;
      total += w[static_cast<std::size_t>(count)];
    }
    result.first[static_cast<std::size_t>(i)] = lo;
    float* out = &result.weights[static_cast<std::size_t>(i * result.taps)];
    // total > 0 always: the input pixel containing the centre lies within half a pixel of it.
    for (index_t k = 0; k < count; ++k) out[k] = static_cast<float>(w[static_cast<std::size_t>(k)] / total);
  }
  return result;
}

}  // namespace

float_image resize_bilinear(const float_image& src, index_t height, index_t width, bool antialias) {
  check_resize_arguments(src.height(), src.width(), src.channels(), height, width, "resize_bilinear");
  const index_t channels = src.channels();

  // Rows first: src.height() x width.
  float_image rows_done;
  if (width == src.width()) {
    rows_done = src;
  } else {
    const axis_taps tx = triangle_taps(src.width(), width, antialias);
    rows_done = float_image(src.height(), width, channels);
    for (index_t y = 0; y < src.height(); ++y)
      for (index_t x = 0; x < width; ++x) {
        const index_t first = tx.first[static_cast<std::size_t>(x)];
        const float* wx = &tx.weights[static_cast<std::size_t>(x * tx.taps)];
        const index_t count = std::min(tx.taps, src.width() - first);
        for (index_t c = 0; c < channels; ++c) {
          float sum = 0.0f;
          for (index_t k = 0; k < count; ++k) sum += wx[k] * src(y, first + k, c);
          rows_done(y, x, c) = sum;
        }
      }
  }
  if (height == src.height()) return rows_done;

  const axis_taps ty = triangle_taps(src.height(), height, antialias);
  float_image result(height, width, channels);
  const index_t row_elements = width * channels;
  for (index_t y = 0; y < height; ++y) {
    const index_t first = ty.first[static_cast<std::size_t>(y)];
    const float* wy = &ty.weights[static_cast<std::size_t>(y * ty.taps)];
    const index_t count = std::min(ty.taps, src.height() - first);
    float* out = &result(y, 0, 0);
    std::fill(out, out + row_elements, 0.0f);
    for (index_t k = 0; k < count; ++k) {
      const float* in = &rows_done(first + k, 0, 0);
      const float weight = wy[k];
      for (index_t e = 0; e < row_elements; ++e) out[e] += weight * in[e];
    }
  }
  return result;
}

byte_image resize_nearest(const byte_image& src, index_t height, index_t width) {
  check_resize_arguments(src.height(), src.width(), src.channels(), height, width, "resize_nearest");
  const auto source_index = [](index_t i, index_t in_size, index_t out_size) {
    // floor((i + 0.5) * in / out) in integers: exact, no rounding surprises at pixel boundaries.
    return std::min((2 * i + 1) * in_size / (2 * out_size), in_size - 1);
  };
  byte_image result(height, width, src.channels());
  std::vector<index_t> sx(static_cast<std::size_t>(width));
  for (index_t x = 0; x < width; ++x) sx[static_cast<std::size_t>(x)] = source_index(x, src.width(), width);
  for (index_t y = 0; y < height; ++y) {
    const index_t yy = source_index(y, src.height(), height);
    for (index_t x = 0; x < width; ++x)
      for (index_t c = 0; c < src.channels(); ++c) result(y, x, c) = src(yy, sx[static_cast<std::size_t>(x)], c);
  }
  return result;
}

}  // namespace v0
}  // namespace flowad
