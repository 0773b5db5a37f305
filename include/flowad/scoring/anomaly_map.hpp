// Anomaly maps: bilinear upsampling, Gaussian smoothing, and the combination of per-scale maps.
//
// The map type is flowad's tensor: an anomaly map batch is N x 1 x H x W. Inputs are const_views
// with any strides; outputs are owned dense NCHW tensors or caller-provided views (the no-allocation
// path: the destination's shape says what to produce). Upsampling and blurring work plane by plane,
// so they accept any channel count C (each (n, c) plane is independent); combine_maps wants C = 1.
// Inputs must be finite (NaN/Inf throw errc::non_finite: bilinear weights would turn an Inf into NaN).
// Planes are processed in parallel (OpenMP) over n and c.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

enum class map_combination;

// Reusable buffers of the functions below: repeated calls with the same map_buffers do not allocate
// once they have seen the largest sizes. One per thread (not thread-safe).
class map_buffers {
 public:
  map_buffers();
  ~map_buffers();
  map_buffers(map_buffers&&) noexcept;
  map_buffers& operator=(map_buffers&&) noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  friend void upsample_bilinear(const_view, view, map_buffers&, double);
  friend void gaussian_blur(const_view, view, double, map_buffers&);
  friend void combine_maps(span<const const_view>, view, map_combination, map_buffers&, span<const double>);
};

// ---- bilinear resize ---------------------------------------------------------------------------
// torch.nn.functional.interpolate(src, size=(H', W'), mode="bilinear", align_corners=False) without
// antialiasing, for any src and dst sizes (up or down). Per axis, destination index d maps to
//     x = max(0, (d + 0.5) * in / out - 0.5),   x0 = floor(x),   x1 = min(x0 + 1, in - 1),
//     value = (1 - (x - x0)) * src[x0] + (x - x0) * src[x1]
// (PyTorch's edge clamping: the first half pixel repeats src[0], the last repeats src[in - 1]).
// Weights are computed in double, the result rounded to float once.
// dst must have src's N and C and must not overlap src.
//
// cell_offset moves the source grid: x = max(0, (d + 0.5) * in / out - 0.5 - cell_offset), so source
// cell m lands where PyTorch puts cell m + cell_offset. align_corners=False assumes that cell m stands
// for the centre of its block, image pixel s·m + (s - 1)/2 at stride s; a feature whose cell m is
// centred on pixel s·m + (s - 1)/2 + o (feature_level::center_offset o) needs cell_offset = o / s.
// |cell_offset| <= 1, else errc::invalid_argument.
void upsample_bilinear(const_view src, view dst, double cell_offset = 0.0);
void upsample_bilinear(const_view src, view dst, map_buffers& buffers, double cell_offset = 0.0);
tensor upsample_bilinear(const_view src, index_t height, index_t width, double cell_offset = 0.0);

// ---- Gaussian blur -----------------------------------------------------------------------------
// Taps: radius r = int(4 * sigma + 0.5), 2r + 1 taps w_i = exp(-i^2 / (2 sigma^2)) normalised to sum
// 1 -- scipy.ndimage.gaussian_filter(truncate=4.0) and anomalib's GaussianBlur2d
// (kernel 2 * int(4 sigma + 0.5) + 1) agree on this size. Boundary: scipy's default mode "reflect"
// (d c b a | a b c d | d c b a: the edge sample is repeated), applied repeatedly when r exceeds the
// plane size. Separable (rows, then columns), accumulated in double.
// sigma == 0 copies src to dst (no blur); sigma < 0 or non-finite throws.
int gaussian_radius(double sigma);
std::vector<double> gaussian_kernel(double sigma);  // the 2r + 1 normalised taps

// dst may be src itself (same data and strides: in place); otherwise they must not overlap.
void gaussian_blur(const_view src, view dst, double sigma);
void gaussian_blur(const_view src, view dst, double sigma, map_buffers& buffers);
tensor gaussian_blur(const_view src, double sigma);

// ---- multi-scale maps --------------------------------------------------------------------------
enum class map_combination {
  mean,     // FastFlow: the average of the upsampled maps
  sum,      // MSFlow / RD4AD: the sum
  product,  // STFPM, anomalib CS-Flow: the product
  // MSFlow (Zhou et al., post_process.py's additive map): each map is read as an energy E (a negative
  // log-likelihood per dimension, as latent_energy is), and each image's map of each scale becomes its
  // relative likelihood exp(-(E - min E)), 1 at the image's most normal position; these are upsampled
  // and summed, and the result is the image's maximum of the sum minus the sum (0 at its most normal
  // pixel). A pixel scores high only where every scale finds it unlikely, which a sum of energies
  // does not ask. Each image is scored on its own: no statistics of other images enter.
  likelihood_sum,
};
const char* to_string(map_combination how) noexcept;
// Every combination with its name, for configurations.
inline std::vector<std::pair<map_combination, const char*>> map_combination_names() {
  return {{map_combination::mean, "mean"},
          {map_combination::sum, "sum"},
          {map_combination::product, "product"},
          {map_combination::likelihood_sum, "likelihood_sum"}};
}

// Upsamples each N x 1 x h_i x w_i map of `maps` to dst's H x W (upsample_bilinear, map i with
// cell_offsets[i]; none given: 0 for every map) and combines them elementwise; no temporary is
// allocated. All maps need dst's N and one channel; dst must not overlap any of them.
void combine_maps(span<const const_view> maps, view dst, map_combination how, span<const double> cell_offsets = {});
void combine_maps(span<const const_view> maps, view dst, map_combination how, map_buffers& buffers,
                  span<const double> cell_offsets = {});
tensor combine_maps(span<const const_view> maps, index_t height, index_t width, map_combination how,
                    span<const double> cell_offsets = {});

}  // namespace v0
}  // namespace flowad
