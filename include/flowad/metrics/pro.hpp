// Per-region overlap (PRO) curve and the area under it up to an FPR limit (AUPRO), with the
// semantics of MVTec's official evaluation code (Bergmann, Sattlegger; pro_curve_util.py and
// generic_util.py, vendored in TArdelean/AnomalyLocalizationFCA@afe8326):
//
//  1. Each mask is split into ground-truth regions: connected components with 8-connectivity
//     (scipy.ndimage.label with a 3x3 structure of ones), per image.
//  2. Every pixel score of the dataset is a threshold (exact curve). With pixels ranked by
//     descending score:
//       FPR(t) = #{normal pixels with score >= t} / #{normal pixels}
//       PRO(t) = (1/R) * sum over regions r of #{pixels of r with score >= t} / |r|
//     where R is the number of regions in the whole dataset. Equal scores form one point.
//  3. The curve is padded with (0, 0) in front and (1, 1) at the end.
//  4. AUPRO = trapezoid integral of PRO over FPR in [0, fpr_limit], linearly interpolating the
//     curve at fpr_limit when no point lies exactly there, divided by fpr_limit.
//
// One deliberate difference: the official code accumulates the FPR in float32; flowad uses double
// throughout (differences are of the order of 1e-7).
//
// Maps and masks follow the conventions of flowad/metrics/roc.hpp (N x 1 x H x W, masks exactly
// 0 or 1, NaN rejected). The pixels are sorted once as in pixel_auroc(); temporary memory is 4 bytes
// per normal pixel, 8 per anomalous pixel (score key + region id), 8 per region, and H x W labels
// per thread; no per-pixel heap objects. The walk down the sorted scores stops at fpr_limit unless
// the curve is kept.
#pragma once

#include <cstdint>
#include <vector>

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

inline constexpr double default_fpr_limit = 0.3;

struct pro_options {
  double fpr_limit = default_fpr_limit;  // in (0, 1]
  bool keep_curve = false;               // fill pro_result::fpr / ::pro (one point per distinct score)
};

struct pro_result {
  double aupro = 0.0;            // normalized area in [0, 1]
  std::int64_t regions = 0;      // ground-truth regions in the dataset
  std::int64_t ok_pixels = 0;    // normal pixels in the dataset
  // The whole curve, padded: (0,0), one point per distinct score in descending order, (1,1).
  // Empty unless pro_options::keep_curve. Up to (number of pixels + 2) points, 16 bytes each.
  std::vector<double> fpr;
  std::vector<double> pro;
};

// Throws flowad::error: no maps or an empty map (errc::empty_input); map/mask count or shape
// mismatch, or a map with more than one channel (errc::shape_mismatch); a NaN score
// (errc::non_finite); a mask value other than 0/1, no anomalous region or no normal pixel in the
// dataset, fpr_limit outside (0, 1] (errc::invalid_argument).
pro_result aupro(const_view maps, const_view masks, const pro_options& options = {});
pro_result aupro(span<const const_view> maps, span<const const_view> masks, const pro_options& options = {});

// Pixel AUROC and AUPRO from a single sort of the pixels (what an evaluation loop wants).
struct pixel_metrics_result {
  double auroc = 0.0;
  pro_result pro;
};
pixel_metrics_result pixel_metrics(const_view maps, const_view masks, const pro_options& options = {});
pixel_metrics_result pixel_metrics(span<const const_view> maps, span<const const_view> masks,
                                   const pro_options& options = {});

// Connected components of one binary mask (a 1 x 1 x H x W view holding 0/1) with 8-connectivity,
// numbered 1..count in raster order of their first pixel, exactly like scipy.ndimage.label with
// a 3x3 structure. labels is H*W row-major, 0 = background.
struct region_labels {
  std::int32_t count = 0;
  std::vector<std::int32_t> labels;
};
region_labels label_regions(const_view mask);

}  // namespace v0
}  // namespace flowad
