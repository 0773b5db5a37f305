// What msflow's sources share: the size of a configuration and how its flows are built.
#pragma once

#include <memory>
#include <string>

#include "flowad/detectors/msflow.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/layers/sequential_flow.hpp"

namespace flowad {
inline namespace v0 {
namespace msflow_detail {

// The sizes of a configuration, from one walk over its layers.
struct sizes {
  double learned = 0.0;     // values the optimiser updates (the LU factors' strict triangles only)
  double statistics = 0.0;  // values set from the training set and then fixed (position_norm, actnorm)
  double stored = 0.0;      // float values a model file holds (parameters as allocated, permutations, signs)
  double macs = 0.0;        // multiply-accumulates per image
};
sizes size_of(const msflow_config& cfg);

// The flow of stream `stream` (msflow_streams); fixed permutations come from `stored` when loading.
std::unique_ptr<sequential_flow> build_flow(const msflow_config& cfg, std::size_t stream, const model_file_contents* stored);

// Model-file name prefix of layer `layer` of stream `stream`: "scale1.layer03." for a scale's first
// flow, "scale1.relative.layer03." for a paired scale's second.
std::string layer_prefix(const msflow_config& cfg, std::size_t stream, std::size_t layer);

}  // namespace msflow_detail
}  // namespace v0
}  // namespace flowad
