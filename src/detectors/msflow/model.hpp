// msflow's private state: its flows and the per-workspace buffers of scoring.
#pragma once

#include <memory>
#include <vector>

#include "detectors/msflow/flows.hpp"
#include "flowad/detail/workspace_pool.hpp"
#include "flowad/detectors/msflow.hpp"
#include "flowad/layers/actnorm.hpp"
#include "flowad/layers/position_norm.hpp"
#include "flowad/layers/sequential_flow.hpp"
#include "flowad/scoring/anomaly_map.hpp"

namespace flowad {
inline namespace v0 {

struct msflow::impl {
  std::vector<msflow_stream> streams;
  std::vector<std::unique_ptr<sequential_flow>> flows;  // one per stream
  std::vector<position_norm*> position_norms;           // each flow's position_norm, if any
  std::vector<actnorm*> norms;                          // each flow's input actnorm, if any
  mutable detail::workspace_pool pool;

  // Buffers of one scoring call, kept per workspace.
  struct score_state : layer_state {
    std::vector<tensor> z, scale_maps;
    std::vector<const_view> map_views;
    std::vector<double> logdet, squares;
    std::vector<float> top_k_scratch;
    map_buffers maps;
  };
  std::uint64_t score_state_id = detail::next_layer_id();

  void build(const msflow_config& cfg, const model_file_contents* stored);
  std::vector<parameter*> parameters();

  // What the optimiser updates: everything but the input normalisation, which stays as the training
  // set's statistics set it. Its bias is in the features' own units, so an Adam step (about lr in
  // parameter units, whatever the gradient) moves a channel of standard deviation σ by lr/σ standard
  // deviations: harmless for σ ~ 0.1, but a feature channel that is constant on the training set
  // (a ReLU channel that never fires, seen with the filter bank on the demo fabric) has σ ~ 0, and
  // training then blew up (loss −2.75 at the start, +135 over the first epoch, +10^4 in the sixth).
  std::vector<parameter*> trained_parameters();
};

}  // namespace v0
}  // namespace flowad
