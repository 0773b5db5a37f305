#include "flowad/io/synthetic.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <system_error>

#include "flowad/detail/random.hpp"
#include "flowad/detail/reflect_index.hpp"
#include "flowad/io/dataset.hpp"
#include "io/file_bytes.hpp"
#include "io/parallel_for.hpp"

namespace flowad {
inline namespace v0 {
namespace {

namespace fs = std::filesystem;
using detail::rng;

constexpr double pi = 3.14159265358979323846;
constexpr index_t min_side = 32;
// Sizes below are given for a 256-pixel image and scaled with the shorter side.
constexpr double reference_side = 256.0;

// splitmix64's finaliser: turns structured seeds (seed, split, index) into unrelated rng seeds.
std::uint64_t mix(std::uint64_t z) noexcept {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

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

float clamp01(double v) noexcept {
  return static_cast<float>(std::min(1.0, std::max(0.0, v)));
}

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
// Defects. Each is drawn as a coverage field in [0, 1] (anti-aliased), blended into the image, and
// masked where coverage >= 1/2.

struct point {
  double x, y;
};

// A line segment whose half width varies linearly from a to b.
struct stroke {
  point a, b;
  double half_width_a, half_width_b;
};

// Max-accumulates the coverage of a stroke: 1 inside, falling to 0 over one pixel at the edge.
void add_stroke(std::vector<float>& coverage, index_t height, index_t width, const stroke& s) {
  const double reach = std::max(s.half_width_a, s.half_width_b) + 1.0;
  const index_t x0 = std::max<index_t>(0, static_cast<index_t>(std::floor(std::min(s.a.x, s.b.x) - reach)));
  const index_t x1 = std::min<index_t>(width - 1, static_cast<index_t>(std::ceil(std::max(s.a.x, s.b.x) + reach)));
  const index_t y0 = std::max<index_t>(0, static_cast<index_t>(std::floor(std::min(s.a.y, s.b.y) - reach)));
  const index_t y1 = std::min<index_t>(height - 1, static_cast<index_t>(std::ceil(std::max(s.a.y, s.b.y) + reach)));
  const double dx = s.b.x - s.a.x, dy = s.b.y - s.a.y;
  const double length_sq = dx * dx + dy * dy;
  for (index_t y = y0; y <= y1; ++y)
    for (index_t x = x0; x <= x1; ++x) {
      const double px = static_cast<double>(x) + 0.5 - s.a.x, py = static_cast<double>(y) + 0.5 - s.a.y;
      const double t = length_sq > 0.0 ? std::min(1.0, std::max(0.0, (px * dx + py * dy) / length_sq)) : 0.0;
      const double distance = std::hypot(px - t * dx, py - t * dy);
      const double half_width = s.half_width_a + t * (s.half_width_b - s.half_width_a);
      const float c = clamp01(half_width + 0.5 - distance);
      float& out = coverage[static_cast<std::size_t>(y * width + x)];
      out = std::max(out, c);
    }
}

// A polyline whose half width goes from w0 at the first point to w1 at the last.
void add_polyline(std::vector<float>& coverage, index_t height, index_t width, const std::vector<point>& points,
                  double w0, double w1) {
  const std::size_t segments = points.size() - 1;
  for (std::size_t k = 0; k < segments; ++k) {
    const double t0 = static_cast<double>(k) / static_cast<double>(segments);
    const double t1 = static_cast<double>(k + 1) / static_cast<double>(segments);
    add_stroke(coverage, height, width, {points[k], points[k + 1], w0 + t0 * (w1 - w0), w0 + t1 * (w1 - w0)});
  }
}

point random_centre(rng& r, index_t height, index_t width) {
  return {r.uniform(0.2, 0.8) * static_cast<double>(width), r.uniform(0.2, 0.8) * static_cast<double>(height)};
}

// Blends pixel -> target(pixel) by coverage * strength.
template <class Target>
void blend(float_image& image, const std::vector<float>& coverage, double strength, const Target& target) {
  for (index_t y = 0; y < image.height(); ++y)
    for (index_t x = 0; x < image.width(); ++x) {
      const double a = coverage[static_cast<std::size_t>(y * image.width() + x)] * strength;
      if (a <= 0.0) continue;
      for (index_t c = 0; c < 3; ++c) {
        const double v = image(y, x, c);
        image(y, x, c) = clamp01(v + a * (target(v, c) - v));
      }
    }
}

// A closed outline around the origin: radius·(1 + Σ_k a_k sin((k + 2)θ + φ_k)) in direction θ, with three
// harmonics of amplitude up to max_amplitude each.
struct wobbly_outline {
  static constexpr int harmonics = 3;
  double radius;
  double amplitude[harmonics], phase[harmonics];
  wobbly_outline(rng& r, double radius_, double max_amplitude) : radius(radius_) {
    for (int k = 0; k < harmonics; ++k) {
      amplitude[k] = r.uniform(0.0, max_amplitude);
      phase[k] = r.uniform(0.0, 2.0 * pi);
    }
  }
  // The outline's radius in the direction of (a, b).
  double radius_towards(double a, double b) const {
    const double theta = std::atan2(b, a);
    double factor = 1.0;
    for (int k = 0; k < harmonics; ++k) factor += amplitude[k] * std::sin((k + 2) * theta + phase[k]);
    return radius * factor;
  }
};

// A thin curved line: quadratic Bezier with tapered ends, lighter (70%) or darker than the fabric.
void draw_scratch(float_image& image, std::vector<float>& coverage, rng& r, double scale) {
  const double side = static_cast<double>(std::min(image.height(), image.width()));
  const point c = random_centre(r, image.height(), image.width());
  const double length = r.uniform(0.25, 0.5) * side, angle = r.uniform(0.0, 2.0 * pi);
  const double ux = std::cos(angle), uy = std::sin(angle), bend = r.uniform(-0.3, 0.3) * length;
  const point p0{c.x - ux * length / 2, c.y - uy * length / 2}, p2{c.x + ux * length / 2, c.y + uy * length / 2};
  const point p1{c.x - uy * bend, c.y + ux * bend};
  const double half_width = std::max(0.5, r.uniform(0.6, 1.1) * scale);
  constexpr int segments = 48;
  std::vector<point> points;
  for (int k = 0; k <= segments; ++k) {
    const double t = static_cast<double>(k) / segments;
    points.push_back({(1 - t) * (1 - t) * p0.x + 2 * (1 - t) * t * p1.x + t * t * p2.x,
                      (1 - t) * (1 - t) * p0.y + 2 * (1 - t) * t * p1.y + t * t * p2.y});
  }
  // Taper: the tenth of the length at either end narrows to 40%.
  for (int k = 0; k < segments; ++k) {
    const double t = (static_cast<double>(k) + 0.5) / segments;
    const double taper = std::min(1.0, std::max(0.4, std::min(t, 1 - t) / 0.1));
    add_stroke(coverage, image.height(), image.width(),
               {points[static_cast<std::size_t>(k)], points[static_cast<std::size_t>(k + 1)], half_width * taper,
                half_width * taper});
  }
  const double strength = r.uniform(0.8, 1.0);
  if (r.uniform() < 0.7)
    blend(image, coverage, strength, [](double v, index_t) { return v + 0.25; });
  else
    blend(image, coverage, strength, [](double v, index_t) { return v * 0.5; });
}

// An irregular blob (an ellipse with a wobbly outline) tinted like rust, oil or a bluish residue.
void draw_spot(float_image& image, std::vector<float>& coverage, rng& r, double scale) {
  const point c = random_centre(r, image.height(), image.width());
  const double radius = std::max(3.0, r.uniform(6.0, 15.0) * scale);
  const double stretch = r.uniform(1.0, 1.6), angle = r.uniform(0.0, pi);
  const wobbly_outline outline(r, radius, 0.12);
  const double edge = std::max(0.7, 1.2 * scale);  // soft edge width in pixels
  const double reach = radius * stretch * 1.4 + edge + 1.0;
  const index_t x0 = std::max<index_t>(0, static_cast<index_t>(c.x - reach));
  const index_t x1 = std::min<index_t>(image.width() - 1, static_cast<index_t>(c.x + reach));
  const index_t y0 = std::max<index_t>(0, static_cast<index_t>(c.y - reach));
  const index_t y1 = std::min<index_t>(image.height() - 1, static_cast<index_t>(c.y + reach));
  const double ca = std::cos(angle), sa = std::sin(angle);
  for (index_t y = y0; y <= y1; ++y)
    for (index_t x = x0; x <= x1; ++x) {
      const double dx = static_cast<double>(x) + 0.5 - c.x, dy = static_cast<double>(y) + 0.5 - c.y;
      const double a = (ca * dx + sa * dy) / stretch, b = -sa * dx + ca * dy;
      coverage[static_cast<std::size_t>(y * image.width() + x)] =
          clamp01((outline.radius_towards(a, b) - std::hypot(a, b)) / edge + 0.5);
    }
  static constexpr double tints[3][3] = {{1.15, 0.82, 0.6}, {0.55, 0.55, 0.6}, {0.8, 0.92, 1.25}};
  const auto& tint = tints[r.below(3)];
  blend(image, coverage, r.uniform(0.75, 0.95),
        [&tint](double v, index_t ch) { return v * tint[static_cast<std::size_t>(ch)]; });
}

// A dark crack: a tapering random walk with one to three branches.
void draw_crack(float_image& image, std::vector<float>& coverage, rng& r, double scale) {
  const double side = static_cast<double>(std::min(image.height(), image.width()));
  const double step = std::max(1.0, 1.5 * scale);
  const auto walk = [&r, step](point start, double angle, double length) {
    std::vector<point> points{start};
    const int steps = std::max(2, static_cast<int>(length / step));
    for (int k = 0; k < steps; ++k) {
      angle += 0.22 * r.normal();
      points.push_back({points.back().x + step * std::cos(angle), points.back().y + step * std::sin(angle)});
    }
    return points;
  };
  const double length = r.uniform(0.22, 0.4) * side, angle = r.uniform(0.0, 2.0 * pi);
  const double half_width = std::max(0.5, r.uniform(0.7, 1.2) * scale);
  const std::vector<point> trunk = walk(random_centre(r, image.height(), image.width()), angle, length);
  add_polyline(coverage, image.height(), image.width(), trunk, half_width, 0.35 * half_width);
  const int branches = 1 + static_cast<int>(r.below(3));
  for (int b = 0; b < branches; ++b) {
    const double at = r.uniform(0.2, 0.8);
    const std::size_t k = static_cast<std::size_t>(at * static_cast<double>(trunk.size() - 1));
    const point from = trunk[k], next = trunk[k + 1];
    const double side_sign = r.uniform() < 0.5 ? -1.0 : 1.0;
    const double branch_angle = std::atan2(next.y - from.y, next.x - from.x) + side_sign * r.uniform(0.5, 1.1);
    const double width_there = half_width * (1.0 - 0.65 * at);
    add_polyline(coverage, image.height(), image.width(), walk(from, branch_angle, r.uniform(0.3, 0.6) * length),
                 0.8 * width_there, 0.3 * half_width);
  }
  const double darkness = r.uniform(0.15, 0.3);
  blend(image, coverage, 1.0, [darkness](double v, index_t) { return v * darkness; });
}

// A patch of the image itself, mirrored and with a brightness change, pasted elsewhere (CutPaste,
// Li et al. 2021): a structural anomaly of the product's own material, with soft 2-pixel edges. Tries
// again while the pasted content would be nearly invisible (a patch of background on background).
void draw_patch(float_image& image, std::vector<float>& coverage, rng& r, double scale) {
  const index_t h = image.height(), w = image.width();
  const float_image source = image;
  for (int attempt = 0; attempt < 20; ++attempt) {
    const index_t ph = static_cast<index_t>(r.uniform(0.08, 0.25) * static_cast<double>(h));
    const index_t pw = static_cast<index_t>(r.uniform(0.08, 0.25) * static_cast<double>(w));
    const index_t sy = static_cast<index_t>(r.below(static_cast<std::uint64_t>(h - ph)));
    const index_t sx = static_cast<index_t>(r.below(static_cast<std::uint64_t>(w - pw)));
    const index_t dy = static_cast<index_t>(r.below(static_cast<std::uint64_t>(h - ph)));
    const index_t dx = static_cast<index_t>(r.below(static_cast<std::uint64_t>(w - pw)));
    const bool flip_x = r.uniform() < 0.5, flip_y = r.uniform() < 0.5;
    const double gain = r.uniform(0.75, 1.25);
    double difference = 0.0;
    for (index_t y = 0; y < ph; ++y)
      for (index_t x = 0; x < pw; ++x)
        for (index_t c = 0; c < 3; ++c) {
          const float v = source(sy + (flip_y ? ph - 1 - y : y), sx + (flip_x ? pw - 1 - x : x), c);
          difference += std::abs(gain * v - source(dy + y, dx + x, c));
        }
    if (difference / static_cast<double>(ph * pw * 3) < 0.06 && attempt < 19) continue;
    const double edge = 2.0 * std::max(1.0, scale * 0.5);
    for (index_t y = 0; y < ph; ++y)
      for (index_t x = 0; x < pw; ++x) {
        const double inside = std::min({static_cast<double>(y) + 0.5, static_cast<double>(ph - y) - 0.5,
                                        static_cast<double>(x) + 0.5, static_cast<double>(pw - x) - 0.5});
        const float a = static_cast<float>(std::min(1.0, inside / edge));
        coverage[static_cast<std::size_t>((dy + y) * w + dx + x)] = a;
        for (index_t c = 0; c < 3; ++c) {
          const float v = clamp01(gain * source(sy + (flip_y ? ph - 1 - y : y), sx + (flip_x ? pw - 1 - x : x), c));
          image(dy + y, dx + x, c) = (1.0f - a) * source(dy + y, dx + x, c) + a * v;
        }
      }
    return;
  }
}

// A large piece of the part where it does not belong: an irregular region (a wobbly ellipse 40 to 150
// pixels across at a 256-pixel side, the size of a broken-off or missing part) showing the image itself
// translated by a quarter to half of its side. Every pixel in it is normal somewhere else in the image;
// only where it sits, and the seams, are wrong. Soft 2-pixel edges. Tries again while the translated
// content would be nearly invisible (background on background, or a period of a texture).
void draw_displaced(float_image& image, std::vector<float>& coverage, rng& r, double scale) {
  const index_t h = image.height(), w = image.width();
  const double side = static_cast<double>(std::min(h, w));
  const float_image source = image;
  const double edge = 2.0 * std::max(1.0, scale * 0.5);
  for (int attempt = 0; attempt < 20; ++attempt) {
    const point c = random_centre(r, h, w);
    const double radius = r.uniform(0.08, 0.18) * side;
    const double stretch = r.uniform(1.0, 1.6), angle = r.uniform(0.0, pi);
    const wobbly_outline outline(r, radius, 0.15);
    const double shift = r.uniform(0.25, 0.5) * side, direction = r.uniform(0.0, 2.0 * pi);
    const index_t oy = static_cast<index_t>(std::lround(shift * std::sin(direction)));
    const index_t ox = static_cast<index_t>(std::lround(shift * std::cos(direction)));
    const double reach = radius * stretch * 1.5 + edge + 1.0;
    const index_t x0 = std::max<index_t>(0, static_cast<index_t>(c.x - reach));
    const index_t x1 = std::min<index_t>(w - 1, static_cast<index_t>(c.x + reach));
    const index_t y0 = std::max<index_t>(0, static_cast<index_t>(c.y - reach));
    const index_t y1 = std::min<index_t>(h - 1, static_cast<index_t>(c.y + reach));
    const double ca = std::cos(angle), sa = std::sin(angle);
    // What shows at (y, x): the image's pixel (y + oy, x + ox), reflected at its edges.
    const auto shifted = [&](index_t y, index_t x, index_t ch) {
      return source(detail::reflect_index(y + oy, h), detail::reflect_index(x + ox, w), ch);
    };
    std::fill(coverage.begin(), coverage.end(), 0.0f);
    double difference = 0.0, inside = 0.0;
    for (index_t y = y0; y <= y1; ++y)
      for (index_t x = x0; x <= x1; ++x) {
        const double dx = static_cast<double>(x) + 0.5 - c.x, dy = static_cast<double>(y) + 0.5 - c.y;
        const double a = (ca * dx + sa * dy) / stretch, b = -sa * dx + ca * dy;
        const float cover = clamp01((outline.radius_towards(a, b) - std::hypot(a, b)) / edge + 0.5);
        coverage[static_cast<std::size_t>(y * w + x)] = cover;
        if (cover < 0.5f) continue;
        inside += 1.0;
        for (index_t ch = 0; ch < 3; ++ch)
          difference += std::abs(shifted(y, x, ch) - source(y, x, ch));
      }
    if ((inside == 0.0 || difference / (3.0 * inside) < 0.06) && attempt < 19) continue;
    for (index_t y = y0; y <= y1; ++y)
      for (index_t x = x0; x <= x1; ++x) {
        const float a = coverage[static_cast<std::size_t>(y * w + x)];
        if (a <= 0.0f) continue;
        for (index_t ch = 0; ch < 3; ++ch)
          image(y, x, ch) = (1.0f - a) * source(y, x, ch) + a * shifted(y, x, ch);
      }
    return;
  }
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
  if (defect != good_defect_type) {
    // A defect that falls mostly outside the image is drawn again: every anomalous image gets a
    // mask of a visible size.
    const index_t min_mask_pixels = std::max<index_t>(8, static_cast<index_t>(20.0 * scale * scale));
    const float_image clean = crop;
    std::vector<float> coverage;
    for (int attempt = 0;; ++attempt) {
      crop = clean;
      coverage.assign(static_cast<std::size_t>(o.height * o.width), 0.0f);
      if (defect == "scratch")
        draw_scratch(crop, coverage, r, scale);
      else if (defect == "spot")
        draw_spot(crop, coverage, r, scale);
      else
        draw_crack(crop, coverage, r, scale);
      const index_t masked = std::count_if(coverage.begin(), coverage.end(), [](float a) { return a >= 0.5f; });
      if (masked >= min_mask_pixels || attempt == 100) break;
    }
    for (std::size_t p = 0; p < coverage.size(); ++p) out.mask.data()[p] = coverage[p] >= 0.5f ? 1 : 0;
  }

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

defect_sample add_synthetic_defect(const byte_image& image, std::uint64_t seed, const std::string& type) {
  return type.empty() ? add_synthetic_defect(image, seed,
                                             std::vector<std::string>(default_validation_defect_types.begin(),
                                                                      default_validation_defect_types.end()))
                      : add_synthetic_defect(image, seed, std::vector<std::string>{type});
}

defect_sample add_synthetic_defect(const byte_image& image, std::uint64_t seed,
                                   const std::vector<std::string>& choose_from) {
  if (image.channels() != 3 || image.height() < min_side || image.width() < min_side)
    throw error(errc::invalid_argument, "add_synthetic_defect needs an RGB image of at least " + std::to_string(min_side) +
                                            "x" + std::to_string(min_side) + ", got " + std::to_string(image.height()) +
                                            "x" + std::to_string(image.width()) + "x" + std::to_string(image.channels()));
  if (choose_from.empty()) throw error(errc::invalid_argument, "add_synthetic_defect: no defect type to choose from");
  for (const std::string& kind : choose_from)
    if (std::find(validation_defect_types.begin(), validation_defect_types.end(), kind) == validation_defect_types.end())
      throw error(errc::invalid_argument,
                  "unknown synthetic defect type '" + kind + "' (crack, displaced, patch, scratch or spot)");
  rng r(mix(seed ^ 0xD1B54A32D192ED03ull));
  // A single type is not drawn: it gets the same defect as when asked for by name.
  const std::string& kind = choose_from.size() == 1 ? choose_from.front()
                                                    : choose_from[static_cast<std::size_t>(r.below(choose_from.size()))];
  const index_t h = image.height(), w = image.width();
  const double scale = static_cast<double>(std::min(h, w)) / 256.0;
  const float_image clean = to_float(image);
  const index_t min_mask_pixels = std::max<index_t>(8, static_cast<index_t>(20.0 * scale * scale));
  float_image drawn;
  std::vector<float> coverage;
  for (int attempt = 0;; ++attempt) {
    drawn = clean;
    coverage.assign(static_cast<std::size_t>(h * w), 0.0f);
    if (kind == "scratch")
      draw_scratch(drawn, coverage, r, scale);
    else if (kind == "spot")
      draw_spot(drawn, coverage, r, scale);
    else if (kind == "patch")
      draw_patch(drawn, coverage, r, scale);
    else if (kind == "displaced")
      draw_displaced(drawn, coverage, r, scale);
    else
      draw_crack(drawn, coverage, r, scale);
    const index_t masked = std::count_if(coverage.begin(), coverage.end(), [](float a) { return a >= 0.5f; });
    if (masked >= min_mask_pixels || attempt == 100) break;
  }
  defect_sample out{to_bytes(drawn), byte_image(h, w, 1), kind};
  for (std::size_t p = 0; p < coverage.size(); ++p) out.mask.data()[p] = coverage[p] >= 0.5f ? 1 : 0;
  return out;
}

void write_mvtec_layout(const synthetic_dataset& data, const fs::path& root) {
  const std::size_t n = data.test.size();
  if (data.labels.size() != n || data.defect_types.size() != n || data.masks.size() != n)
    throw error(errc::invalid_argument, "synthetic data set has " + std::to_string(n) + " test images but " +
                                            std::to_string(data.labels.size()) + " labels, " +
                                            std::to_string(data.defect_types.size()) + " defect types and " +
                                            std::to_string(data.masks.size()) + " masks");
  for (std::size_t i = 0; i < n; ++i) {
    const bool good = data.defect_types[i] == good_defect_type;
    if (good != (data.labels[i] == 0) || data.defect_types[i].empty() ||
        data.defect_types[i].find('/') != std::string::npos)
      throw error(errc::invalid_argument, "test image " + std::to_string(i) + " has label " +
                                              std::to_string(data.labels[i]) + " and defect type '" +
                                              data.defect_types[i] + "'");
  }

  std::error_code ec;
  if (fs::exists(root, ec) && !(fs::is_directory(root, ec) && fs::is_empty(root, ec)))
    throw error(errc::invalid_argument,
                "refusing to write a data set into " + detail::quoted(root) + ": it exists and is not an empty folder");
  const auto make_folder = [](const fs::path& folder) {
    std::error_code mk;
    fs::create_directories(folder, mk);
    if (mk) throw error(errc::io_error, "cannot create folder " + detail::quoted(folder) + ": " + mk.message());
  };
  const auto numbered = [](std::size_t index, const char* suffix) {
    char name[32];
    std::snprintf(name, sizeof name, "%03zu%s.png", index, suffix);
    return std::string(name);
  };

  make_folder(root / "train" / good_defect_type);
  for (std::size_t i = 0; i < data.train.size(); ++i)
    write_png(root / "train" / good_defect_type / numbered(i, ""), data.train[i]);

  std::map<std::string, std::size_t> next_index;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& defect = data.defect_types[i];
    const auto [it, first_of_type] = next_index.emplace(defect, 0);
    const std::size_t index = it->second++;
    if (first_of_type) make_folder(root / "test" / defect);
    write_png(root / "test" / defect / numbered(index, ""), data.test[i]);
    if (defect == good_defect_type) continue;
    if (first_of_type) make_folder(root / "ground_truth" / defect);
    write_mask_png(root / "ground_truth" / defect / numbered(index, "_mask"), data.masks[i]);
  }
}

}  // namespace v0
}  // namespace flowad
