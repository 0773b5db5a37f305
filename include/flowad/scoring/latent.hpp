// Anomaly evidence from a flow's latent z ~ N(0, I) on normal data.
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

// map(n, 0, h, w) = mean_c z(n, c, h, w)² / 2: the per-position negative log-likelihood up to constants
// (CS-Flow's localisation). z has any strides (dense NHWC is fastest); map is N x 1 x H x W.
void latent_map(const_view z, view map);

// out[n] += Σ_{c,h,w} z(n, c, h, w)², each sample summed in a fixed order (independent of threads).
void add_squared_norms(const_view z, span<double> out);

}  // namespace v0
}  // namespace flowad
