// Anomaly-map visualisation: colour overlays and raw grayscale maps.
//
// Normalisation is fixed by the caller, never taken from the map itself: a map value v is shown at
// t = clamp((v - lo) / (hi - lo), 0, 1), so two heatmaps rendered with the same [lo, hi] are
// comparable (a typical choice: lo = the largest score on defect-free validation images or 0,
// hi = a high quantile of scores). +-Inf clamps like any other value; NaN is an error.
//
// Maps are passed as a 1 x 1 x h x w view (any strides): the sample of an N x 1 x H x W tensor is
// maps.view().batch(i, 1).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>

#include "flowad/io/image.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

struct heatmap_options {
  float lo = 0.0f;                                            // map value shown in the coldest colour
  float hi = 1.0f;                                            // map value shown in the hottest colour
  float opacity = 0.5f;                                       // weight of the colour map against the image, in [0, 1]
  std::array<std::uint8_t, 3> contour_colour{255, 255, 255};  // white: a colour Turbo never produces
  index_t contour_thickness = 1;                              // pixels, >= 1
};

// The Turbo colour map (Mikhailov 2019: a perceptually smoother rainbow, dark blue -> cyan -> green
// -> yellow -> red -> dark red) at t, clamped to [0, 1] (NaN -> 0); within one level of the
// published 256-entry table.
std::array<std::uint8_t, 3> turbo_colour(float t) noexcept;

// Overlay of a map on an RGB image: every pixel is (1 - opacity) * image + opacity * turbo(t), with
// the map resampled to the image size by resize_bilinear first when the sizes differ. When
// ground_truth is given (1 channel, 0/1, any size: resized with resize_nearest), its boundary, the
// mask pixels within contour_thickness (Chebyshev distance) of a normal pixel, is painted in
// contour_colour. Throws errc::shape_mismatch when the image is not RGB or the map is not
// 1 x 1 x h x w, errc::invalid_argument for lo >= hi, non-finite bounds, an opacity outside [0, 1] or
// a thickness < 1, errc::non_finite for a NaN in the map.
byte_image render_heatmap(const byte_image& rgb, const const_view& map, const heatmap_options& options = {},
                          const byte_image* ground_truth = nullptr);

// render_heatmap, written as PNG (errc::io_error when it cannot be written).
void write_heatmap_png(const std::filesystem::path& path, const byte_image& rgb, const const_view& map,
                       const heatmap_options& options = {}, const byte_image* ground_truth = nullptr);

// The map at its own resolution as 8-bit gray: round(255 * t). Same errors as render_heatmap.
byte_image map_to_gray(const const_view& map, float lo, float hi);
void write_map_png(const std::filesystem::path& path, const const_view& map, float lo, float hi);

}  // namespace v0
}  // namespace flowad
