// Anomaly evidence from a flow's latent z ~ N(0, I) on normal data.
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

// What an anomaly map's value at a position measures, from the latent's energy E = mean_c z²/2 there.
enum class latent_statistic {
  energy,               // E: how far the position's latent lies from the mode (CS-Flow, MS-Flow)
  negative_likelihood,  // −exp(−E), in [−1, 0): FastFlow's map, the position's relative likelihood negated
};

// map(n, 0, h, w) = the statistic of z(n, :, h, w). z has any strides (dense NHWC is fastest); map is
// N x 1 x H x W.
void latent_map(const_view z, view map, latent_statistic statistic = latent_statistic::energy);

// out[n] += Σ_{c,h,w} z(n, c, h, w)², each sample summed in a fixed order (independent of threads).
void add_squared_norms(const_view z, span<double> out);

}  // namespace v0
}  // namespace flowad
