// The synthetic defects, each drawn as a coverage field in [0, 1] (anti-aliased), blended into the
// image, and masked where coverage >= 1/2: scratch, spot and crack (the fabric data set's and the
// validation's), patch and displaced (the validation's only).
#include "data/defect_drawing.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/constants.hpp"
#include "flowad/detail/reflect_index.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {
namespace {


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
        for (index_t ch = 0; ch < 3; ++ch) difference += std::abs(shifted(y, x, ch) - source(y, x, ch));
      }
    if ((inside == 0.0 || difference / (3.0 * inside) < 0.06) && attempt < 19) continue;
    for (index_t y = y0; y <= y1; ++y)
      for (index_t x = x0; x <= x1; ++x) {
        const float a = coverage[static_cast<std::size_t>(y * w + x)];
        if (a <= 0.0f) continue;
        for (index_t ch = 0; ch < 3; ++ch) image(y, x, ch) = (1.0f - a) * source(y, x, ch) + a * shifted(y, x, ch);
      }
    return;
  }
}

}  // namespace

byte_image draw_visible_defect(float_image& image, const std::string& type, rng& r, double scale) {
  const index_t h = image.height(), w = image.width();
  const index_t min_mask_pixels = std::max<index_t>(8, static_cast<index_t>(20.0 * scale * scale));
  const float_image clean = image;
  std::vector<float> coverage;
  for (int attempt = 0;; ++attempt) {
    image = clean;
    coverage.assign(static_cast<std::size_t>(h * w), 0.0f);
    if (type == "scratch")
      draw_scratch(image, coverage, r, scale);
    else if (type == "spot")
      draw_spot(image, coverage, r, scale);
    else if (type == "patch")
      draw_patch(image, coverage, r, scale);
    else if (type == "displaced")
      draw_displaced(image, coverage, r, scale);
    else
      draw_crack(image, coverage, r, scale);
    const index_t masked = std::count_if(coverage.begin(), coverage.end(), [](float a) { return a >= 0.5f; });
    if (masked >= min_mask_pixels || attempt == 100) break;
  }
  byte_image mask(h, w, 1);
  for (std::size_t p = 0; p < coverage.size(); ++p) mask.data()[p] = coverage[p] >= 0.5f ? 1 : 0;
  return mask;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
