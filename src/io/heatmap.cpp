#include "flowad/io/heatmap.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "flowad/io/image_resize.hpp"

namespace flowad {
inline namespace v0 {
namespace {

void check_range(float lo, float hi) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || !(lo < hi))
    throw error(errc::invalid_argument,
                "heatmap range [" + std::to_string(lo) + ", " + std::to_string(hi) + "] is not finite with lo < hi");
}

// The map as a 1-channel float image; rejects other shapes and NaN.
float_image map_image(const const_view& map) {
  if (map.n() != 1 || map.c() != 1 || map.h() < 1 || map.w() < 1)
    throw error(errc::shape_mismatch, "an anomaly map is a 1x1xHxW view but got " + map.shape().str());
  float_image out(map.h(), map.w(), 1);
  for (index_t y = 0; y < map.h(); ++y)
    for (index_t x = 0; x < map.w(); ++x) {
      const float v = map(0, 0, y, x);
      if (std::isnan(v))
        throw error(errc::non_finite, "anomaly map " + map.shape().str() + " has NaN at (" + std::to_string(y) + ", " +
                                          std::to_string(x) + ")");
      out(y, x) = v;
    }
  return out;
}

// t in [0, 1]; +-Inf clamp (resampling a map holding Inf can make NaN, which clamps to lo).
float normalized(float v, float lo, float hi) noexcept {
  const float t = (v - lo) / (hi - lo);
  return t > 0.0f ? (t < 1.0f ? t : 1.0f) : 0.0f;
}

}  // namespace

std::array<std::uint8_t, 3> turbo_colour(float t) noexcept {
  // Every fifth entry of Turbo's published 256-entry table (Copyright 2019 Google LLC, Apache-2.0),
  // in 8-bit sRGB; linear interpolation between them stays within one level of the full table.
  // (The published degree-5 polynomial fit is off by up to 32 levels at the ends.)
  static constexpr std::uint8_t knots[52][3] = {
      {48, 18, 59},   {54, 33, 95},    {59, 47, 128},  {63, 62, 156},  {66, 75, 181},  {69, 89, 203},  {70, 102, 221},
      {71, 115, 235}, {70, 128, 246},  {69, 140, 253}, {64, 153, 255}, {56, 165, 251}, {47, 178, 244}, {39, 190, 233},
      {31, 201, 221}, {26, 212, 208},  {24, 221, 194}, {26, 228, 182}, {34, 235, 170}, {47, 241, 155}, {63, 246, 138},
      {82, 250, 122}, {101, 253, 105}, {121, 254, 89}, {139, 255, 75}, {156, 254, 64}, {169, 251, 57}, {183, 247, 53},
      {195, 241, 52}, {208, 234, 52},  {219, 226, 54}, {229, 217, 56}, {238, 207, 58}, {245, 197, 58}, {250, 186, 57},
      {253, 174, 53}, {254, 161, 48},  {254, 147, 42}, {252, 132, 35}, {249, 117, 29}, {244, 102, 23}, {239, 88, 17},
      {232, 75, 12},  {225, 65, 9},    {216, 55, 6},   {206, 45, 4},   {195, 37, 3},   {183, 29, 2},   {169, 22, 1},
      {155, 15, 1},   {139, 9, 2},     {122, 4, 3}};
  constexpr int last = 51;
  const float x = std::isnan(t) ? 0.0f : std::min(1.0f, std::max(0.0f, t)) * static_cast<float>(last);
  const int i = std::min(static_cast<int>(x), last - 1);
  const float f = x - static_cast<float>(i);
  std::array<std::uint8_t, 3> rgb{};
  for (int c = 0; c < 3; ++c)
    rgb[static_cast<std::size_t>(c)] =
        static_cast<std::uint8_t>(std::lround((1.0f - f) * knots[i][c] + f * knots[i + 1][c]));
  return rgb;
}

byte_image render_heatmap(const byte_image& rgb, const const_view& map, const heatmap_options& options,
                          const byte_image* ground_truth) {
  if (rgb.channels() != 3 || rgb.empty())
    throw error(errc::shape_mismatch, "render_heatmap takes an RGB image but got " + rgb.shape_str());
  check_range(options.lo, options.hi);
  if (!(options.opacity >= 0.0f && options.opacity <= 1.0f))
    throw error(errc::invalid_argument, "heatmap opacity " + std::to_string(options.opacity) + " is not in [0, 1]");
  if (options.contour_thickness < 1)
    throw error(errc::invalid_argument,
                "heatmap contour thickness " + std::to_string(options.contour_thickness) + " is not >= 1");

  float_image values = map_image(map);
  if (values.height() != rgb.height() || values.width() != rgb.width())
    values = resize_bilinear(values, rgb.height(), rgb.width(), true);

  byte_image out(rgb.height(), rgb.width(), 3);
  const float opacity = options.opacity;
  for (index_t y = 0; y < rgb.height(); ++y)
    for (index_t x = 0; x < rgb.width(); ++x) {
      const std::array<std::uint8_t, 3> colour = turbo_colour(normalized(values(y, x), options.lo, options.hi));
      for (index_t c = 0; c < 3; ++c) {
        const float v = (1.0f - opacity) * rgb(y, x, c) + opacity * colour[static_cast<std::size_t>(c)];
        out(y, x, c) = static_cast<std::uint8_t>(std::lround(std::min(255.0f, std::max(0.0f, v))));
      }
    }

  if (ground_truth) {
    if (ground_truth->channels() != 1 || ground_truth->empty())
      throw error(errc::shape_mismatch, "a ground-truth mask has 1 channel but got " + ground_truth->shape_str());
    const byte_image mask = ground_truth->height() == rgb.height() && ground_truth->width() == rgb.width()
                                ? *ground_truth
                                : resize_nearest(*ground_truth, rgb.height(), rgb.width());
    const index_t t = options.contour_thickness;
    for (index_t y = 0; y < mask.height(); ++y)
      for (index_t x = 0; x < mask.width(); ++x) {
        if (!mask(y, x)) continue;
        bool boundary = false;
        // Only pixels inside the image count as normal neighbours: a defect touching the border
        // is not outlined along the border.
        for (index_t yy = std::max<index_t>(0, y - t); yy <= std::min(mask.height() - 1, y + t) && !boundary; ++yy)
          for (index_t xx = std::max<index_t>(0, x - t); xx <= std::min(mask.width() - 1, x + t); ++xx)
            if (!mask(yy, xx)) {
              boundary = true;
              break;
            }
        if (boundary)
          for (index_t c = 0; c < 3; ++c) out(y, x, c) = options.contour_colour[static_cast<std::size_t>(c)];
      }
  }
  return out;
}

void write_heatmap_png(const std::filesystem::path& path, const byte_image& rgb, const const_view& map,
                       const heatmap_options& options, const byte_image* ground_truth) {
  write_png(path, render_heatmap(rgb, map, options, ground_truth));
}

byte_image map_to_gray(const const_view& map, float lo, float hi) {
  check_range(lo, hi);
  const float_image values = map_image(map);
  byte_image out(values.height(), values.width(), 1);
  for (std::size_t i = 0; i < values.size(); ++i)
    out.data()[i] = static_cast<std::uint8_t>(std::lround(normalized(values.data()[i], lo, hi) * 255.0f));
  return out;
}

void write_map_png(const std::filesystem::path& path, const const_view& map, float lo, float hi) {
  write_png(path, map_to_gray(map, lo, hi));
}

}  // namespace v0
}  // namespace flowad
