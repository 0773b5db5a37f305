#include "flowad/data/fabric.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/constants.hpp"
#include "data/defect_drawing.hpp"
#include "flowad/io/dataset.hpp"
#include "io/parallel_for.hpp"

namespace flowad {
inline namespace v0 {
namespace {

using detail::clamp01;
using detail::mix;
using detail::reference_side;
using detail::rng;

using detail::pi;

// FNV-1a, to seed by folder name.
std::uint64_t name_hash(const std::string& name) noexcept {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (const char ch : name) h = (h ^ static_cast<unsigned char>(ch)) * 0x100000001B3ull;
  return h;
}

enum class split : std::uint64_t { fabric = 1, train = 2, test = 3 };

std::uint64_t derived_seed(std::uint64_t seed, split s, std::uint64_t index) noexcept {
  return mix(mix(mix(seed) + static_cast<std::uint64_t>(s)) + index);
}

struct rgb {
  float r, g, b;
};

// ------------------------------------------------------------------------------------------------
// The fabric: one canvas per data set, larger than an image by `margin` on every side so that every
// image is a shifted crop of it.
struct fabric {
  index_t margin = 0;
  float_image canvas;  // (H + 2 margin) x (W + 2 margin) x 3, values in [0, 1]
};

// Cross-section of a thread: rounded top, zero outside the thread. a is the offset from the thread
// axis in cell units.
double thread_profile(double a) noexcept {
  constexpr double thread_width = 0.8;  // of a cell; the rest is the gap between threads
  if (std::abs(a) >= thread_width / 2) return 0.0;
  return std::sqrt(std::cos(pi * a / thread_width));
}

// Box blur of a single-channel field along x (step 1) or y (step = width), `radius` on each side.
std::vector<float> box_blur(const std::vector<float>& in, index_t height, index_t width, bool along_x, index_t radius) {
  std::vector<float> out(in.size());
  for (index_t y = 0; y < height; ++y)
    for (index_t x = 0; x < width; ++x) {
      double sum = 0.0;
      index_t count = 0;
      for (index_t k = -radius; k <= radius; ++k) {
        const index_t xx = along_x ? x + k : x, yy = along_x ? y : y + k;
        if (xx < 0 || xx >= width || yy < 0 || yy >= height) continue;
        sum += in[static_cast<std::size_t>(yy * width + xx)];
        ++count;
      }
      out[static_cast<std::size_t>(y * width + x)] = static_cast<float>(sum / static_cast<double>(count));
    }
  return out;
}

fabric make_fabric(const synthetic_options& o, double scale) {
  rng r(derived_seed(o.seed, split::fabric, 0));
  fabric f;
  f.margin = std::max<index_t>(1, static_cast<index_t>(std::lround(3.0 * scale)));
  const index_t height = o.height + 2 * f.margin, width = o.width + 2 * f.margin;
  f.canvas = float_image(height, width, 3);

  const double period = std::max(4.0, 8.0 * scale);  // thread spacing in pixels
  // Two close yarn colours: weft (horizontal threads) and warp (vertical threads).
  const double red = r.uniform(0.5, 0.7);
  const rgb weft{static_cast<float>(red), static_cast<float>(red * r.uniform(0.82, 0.95)),
                 static_cast<float>(red * r.uniform(0.62, 0.8))};
  const double tone = r.uniform(0.9, 1.05);
  const rgb warp{static_cast<float>(weft.r * tone), static_cast<float>(weft.g * tone * r.uniform(0.97, 1.03)),
                 static_cast<float>(weft.b * tone * r.uniform(0.95, 1.08))};

  // Per-thread brightness: yarns are never perfectly even.
  const auto thread_gains = [&r](index_t count) {
    std::vector<double> g(static_cast<std::size_t>(count));
    for (double& v : g) v = std::min(1.2, std::max(0.8, 1.0 + 0.07 * r.normal()));
    return g;
  };
  const std::vector<double> row_gain = thread_gains(static_cast<index_t>(height / period) + 2);
  const std::vector<double> col_gain = thread_gains(static_cast<index_t>(width / period) + 2);

  // Low-frequency shading: value noise on a coarse grid, smoothstep-interpolated.
  const double cell = std::max(8.0, 48.0 * scale);
  const index_t grid_h = static_cast<index_t>(height / cell) + 2, grid_w = static_cast<index_t>(width / cell) + 2;
  std::vector<double> grid(static_cast<std::size_t>(grid_h * grid_w));
  for (double& v : grid) v = 0.05 * r.normal();
  const auto shading = [&](double x, double y) {
    const double gx = x / cell, gy = y / cell;
    const index_t ix = static_cast<index_t>(gx), iy = static_cast<index_t>(gy);
    const auto smooth = [](double t) { return t * t * (3.0 - 2.0 * t); };
    const double tx = smooth(gx - static_cast<double>(ix)), ty = smooth(gy - static_cast<double>(iy));
    const auto at = [&](index_t yy, index_t xx) { return grid[static_cast<std::size_t>(yy * grid_w + xx)]; };
    return (1 - ty) * ((1 - tx) * at(iy, ix) + tx * at(iy, ix + 1)) +
           ty * ((1 - tx) * at(iy + 1, ix) + tx * at(iy + 1, ix + 1));
  };

  // Fibre grain: white noise smeared along the visible thread's direction.
  std::vector<float> noise(static_cast<std::size_t>(height * width));
  for (float& v : noise) v = static_cast<float>(r.uniform(-1.0, 1.0));
  const index_t grain_radius = std::max<index_t>(1, static_cast<index_t>(std::lround(3.0 * scale)));
  const std::vector<float> grain_x = box_blur(noise, height, width, true, grain_radius);
  const std::vector<float> grain_y = box_blur(noise, height, width, false, grain_radius);
  constexpr double grain_amplitude = 0.18;

  constexpr double hole_level = 0.22;   // brightness where no thread is visible
  constexpr double under_shadow = 0.6;  // a thread passing under is shadowed by the one on top
  for (index_t y = 0; y < height; ++y)
    for (index_t x = 0; x < width; ++x) {
      const double px = (static_cast<double>(x) + 0.5) / period, py = (static_cast<double>(y) + 0.5) / period;
      const index_t i = static_cast<index_t>(px), j = static_cast<index_t>(py);
      const double u = px - static_cast<double>(i), v = py - static_cast<double>(j);
      const bool weft_on_top = (i + j) % 2 == 0;  // plain weave: the top thread alternates per cell
      // Top thread: full brightness, darker where it dives under at the cell ends.
      const double across_top = weft_on_top ? v - 0.5 : u - 0.5;
      const double along_top = weft_on_top ? u : v;
      const double top_gain =
          weft_on_top ? row_gain[static_cast<std::size_t>(j)] : col_gain[static_cast<std::size_t>(i)];
      const double top = thread_profile(across_top) * (0.72 + 0.28 * std::sin(pi * along_top)) * top_gain;
      const double under_gain =
          weft_on_top ? col_gain[static_cast<std::size_t>(i)] : row_gain[static_cast<std::size_t>(j)];
      const double under = thread_profile(weft_on_top ? u - 0.5 : v - 0.5) * under_shadow * under_gain;

      // Where the top thread's cross-section ends, the thread underneath shows.
      const bool top_visible = top > 0.0;
      const double level = top_visible ? top : under;
      const bool weft_visible = top_visible == weft_on_top;
      const rgb colour = weft_visible ? weft : warp;
      const std::size_t p = static_cast<std::size_t>(y * width + x);
      const double grain = grain_amplitude * (weft_visible ? grain_x[p] : grain_y[p]);
      const double brightness = (hole_level + (1.0 - hole_level) * level) * (1.0 + shading(x, y)) * (1.0 + grain);
      f.canvas(y, x, 0) = clamp01(colour.r * brightness);
      f.canvas(y, x, 1) = clamp01(colour.g * brightness);
      f.canvas(y, x, 2) = clamp01(colour.b * brightness);
    }
  return f;
}

// ------------------------------------------------------------------------------------------------
struct sample {
  byte_image image;
  byte_image mask;  // empty for training images
};

// One image: a crop of the fabric, an optional defect, per-image gain, colour balance and noise.
// defect is "good" or one of synthetic_defect_types.
sample make_sample(const fabric& f, const synthetic_options& o, double scale, std::uint64_t seed,
                   const std::string& defect, bool with_mask) {
  rng r(seed);
  const index_t shift_y = static_cast<index_t>(r.below(static_cast<std::uint64_t>(2 * f.margin + 1)));
  const index_t shift_x = static_cast<index_t>(r.below(static_cast<std::uint64_t>(2 * f.margin + 1)));
  float_image crop(o.height, o.width, 3);
  for (index_t y = 0; y < o.height; ++y)
    for (index_t x = 0; x < o.width; ++x)
      for (index_t c = 0; c < 3; ++c) crop(y, x, c) = f.canvas(y + shift_y, x + shift_x, c);

  sample out;
  if (with_mask) out.mask = byte_image(o.height, o.width, 1);
  if (defect != good_defect_type) out.mask = detail::draw_visible_defect(crop, defect, r, scale);

  const double gain = r.uniform(0.93, 1.07);
  double balance[3];
  for (double& b : balance) b = r.uniform(0.98, 1.02);
  constexpr double noise_sigma = 0.012;
  out.image = byte_image(o.height, o.width, 3);
  for (index_t y = 0; y < o.height; ++y)
    for (index_t x = 0; x < o.width; ++x)
      for (index_t c = 0; c < 3; ++c) {
        const double v = crop(y, x, c) * gain * balance[c] + noise_sigma * r.normal();
        out.image(y, x, c) = static_cast<std::uint8_t>(std::lround(clamp01(v) * 255.0));
      }
  return out;
}

void check_options(const synthetic_options& o) {
  const auto fail = [](const std::string& m) { return error(errc::invalid_argument, "synthetic data set: " + m); };
  constexpr index_t min_side = detail::min_defect_image_side;
  if (o.height < min_side || o.width < min_side)
    throw fail("image size " + std::to_string(o.height) + "x" + std::to_string(o.width) + " is below " +
               std::to_string(min_side) + "x" + std::to_string(min_side));
  if (o.height > 8192 || o.width > 8192)
    throw fail("image size " + std::to_string(o.height) + "x" + std::to_string(o.width) + " is above 8192x8192");
  if (o.train_count < 1) throw fail("train_count is " + std::to_string(o.train_count) + ", not >= 1");
  if (o.test_count < 1) throw fail("test_count is " + std::to_string(o.test_count) + ", not >= 1");
  if (!(o.anomaly_fraction >= 0.0 && o.anomaly_fraction <= 1.0))
    throw fail("anomaly_fraction is " + std::to_string(o.anomaly_fraction) + ", not in [0, 1]");
}

}  // namespace
synthetic_dataset generate_synthetic_dataset(const synthetic_options& options) {
  check_options(options);
  const double scale = static_cast<double>(std::min(options.height, options.width)) / reference_side;
  const fabric f = make_fabric(options, scale);

  // The test set in MVTec listing order: folders sorted by name, "good" among the defect types.
  const index_t anomalous =
      static_cast<index_t>(std::lround(options.anomaly_fraction * static_cast<double>(options.test_count)));
  std::map<std::string, index_t> count_of{{good_defect_type, options.test_count - anomalous}};
  const index_t types = static_cast<index_t>(synthetic_defect_types.size());
  for (index_t t = 0; t < types; ++t)
    count_of[synthetic_defect_types[static_cast<std::size_t>(t)]] = anomalous / types + (t < anomalous % types ? 1 : 0);

  synthetic_dataset data;
  std::vector<std::uint64_t> test_seeds;
  for (const auto& [defect, count] : count_of)  // std::map iterates in sorted order
    for (index_t i = 0; i < count; ++i) {
      data.defect_types.push_back(defect);
      data.labels.push_back(defect == good_defect_type ? 0 : 1);
      // Seeded per (folder, index): changing the count of one type leaves the other images alone.
      test_seeds.push_back(
          derived_seed(options.seed, split::test, mix(name_hash(defect)) + static_cast<std::uint64_t>(i)));
    }

  data.train.resize(static_cast<std::size_t>(options.train_count));
  detail::parallel_for_each_index(options.train_count, [&](index_t i) {
    data.train[static_cast<std::size_t>(i)] =
        make_sample(f, options, scale, derived_seed(options.seed, split::train, static_cast<std::uint64_t>(i)),
                    good_defect_type, false)
            .image;
  });

  data.test.resize(static_cast<std::size_t>(options.test_count));
  data.masks.resize(static_cast<std::size_t>(options.test_count));
  detail::parallel_for_each_index(options.test_count, [&](index_t i) {
    const std::size_t k = static_cast<std::size_t>(i);
    sample s = make_sample(f, options, scale, test_seeds[k], data.defect_types[k], true);
    data.test[k] = std::move(s.image);
    data.masks[k] = std::move(s.mask);
  });
  return data;
}

}  // namespace v0
}  // namespace flowad
