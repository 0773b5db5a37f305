// Resampling images and masks.
//
// Both functions use half-pixel centres (PyTorch's align_corners = false, PIL): output pixel i of an
// axis of n_out pixels sits at input coordinate (i + 0.5) * n_in / n_out, measured in pixel units
// from the left edge, so the image edges map onto each other.
#pragma once

#include "flowad/io/image.hpp"

namespace flowad {
inline namespace v0 {

// Bilinear resize of a float image with any number of channels, separable (rows, then columns).
//
// Output pixel i is the normalised sum over input pixels j of tri((j + 0.5 - centre) / s) * in[j], with
// tri(t) = max(0, 1 - |t|), centre = (i + 0.5) * n_in / n_out, and s = 1. Enlarging, this is exactly
// bilinear interpolation with edge clamping. When an axis shrinks and `antialias` is true, s is the
// shrink factor n_in / n_out, so every input pixel contributes (PIL's Image.resize(BILINEAR) and
// PyTorch's interpolate(antialias=True)); with `antialias` false a shrunk axis samples only the two
// nearest input pixels and aliases. Weights are normalised per output pixel, so constants stay exact
// up to rounding. Throws errc::invalid_argument for an empty source or a non-positive size.
float_image resize_bilinear(const float_image& src, index_t height, index_t width, bool antialias = true);

// Nearest-neighbour resize for masks and labels (any channel count, values are copied, never
// mixed): output pixel i takes input pixel floor((i + 0.5) * n_in / n_out). Same errors.
byte_image resize_nearest(const byte_image& src, index_t height, index_t width);

}  // namespace v0
}  // namespace flowad
