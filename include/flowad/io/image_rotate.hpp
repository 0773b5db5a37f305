// Rotating images, as torchvision's RandomRotation does on PIL images (DifferNet's only augmentation).
#pragma once

#include "flowad/io/image.hpp"

namespace flowad {
inline namespace v0 {

// The image rotated by `degrees` counter-clockwise about its centre, same size (no expand), nearest
// neighbour, pixels from outside the source filled with `fill` (0: black, before normalisation, as
// RandomRotation(fill=0)). PIL's convention: output pixel (x, y) samples the source at
// floor(c + R(θ)·((x, y) + 0.5 − c)) with c = (w/2, h/2). Any channel count; errc::invalid_argument for
// an empty image or a non-finite angle.
float_image rotate_nearest(const float_image& src, double degrees, float fill = 0.0f);

}  // namespace v0
}  // namespace flowad
