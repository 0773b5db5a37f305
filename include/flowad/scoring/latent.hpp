// Anomaly evidence from a flow's latent z ~ N(0, I) on normal data.
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

// What an anomaly map's value at a position measures.
enum class map_statistic {
  // mean_c z²/2: how far the position's latent lies from the mode (CS-Flow, FastFlow, MSFlow).
  latent_energy,
  // The flow's own density of the position's feature vector, as a negative log-likelihood per channel:
  // (‖z‖²/2 − log|det J| at that position) / C, up to a constant per scale (CFlow-AD's map). Defined
  // only for flows that map each position on its own (every conditioner kernel 1), whose Jacobian is
  // block-diagonal over positions. Values can be negative.
  negative_log_likelihood,
};

// Name of a statistic ("latent_energy", "negative_log_likelihood").
const char* to_string(map_statistic statistic) noexcept;

// map(n, 0, h, w) = mean_c z(n, c, h, w)² / 2: the per-position negative log-likelihood up to constants
// (CS-Flow's localisation). z has any strides (dense NHWC is fastest); map is N x 1 x H x W.
void latent_map(const_view z, view map);

// map(n, 0, h, w) = (Σ_c z(n, c, h, w)²/2 − position_logdet[(n·H + h)·W + w]) / C, where
// position_logdet holds log|det J| of each position's own map (N·H·W values, positions in NHW order).
void negative_log_likelihood_map(const_view z, span<const double> position_logdet, view map);

// out[n] += Σ_{c,h,w} z(n, c, h, w)², each sample summed in a fixed order (independent of threads).
void add_squared_norms(const_view z, span<double> out);

}  // namespace v0
}  // namespace flowad
