// Rotating images, for training-set augmentation.
#pragma once

#include "flowad/io/image.hpp"

namespace flowad {
inline namespace v0 {

// Rotates a float image (any channel count) by `degrees` counter-clockwise about its centre, keeping
// its size. Each output pixel samples the input bilinearly at its rotated position; positions outside
// the input take the nearest edge pixel, so no black corners appear. Throws errc::invalid_argument for
// an empty image or a non-finite angle.
float_image rotate_bilinear(const float_image& src, double degrees);

}  // namespace v0
}  // namespace flowad
