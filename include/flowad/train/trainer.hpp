// The training loop every trainable detector shares: seeded shuffling, batches, the learning-rate
// schedule, Adam, gradient clipping, recovery from non-finite steps (drop the step and lower the rate,
// roll back to the last completed epoch, give up), progress and the report. A detector supplies what
// one step computes; the loop supplies everything else, so that every detector trains alike.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "flowad/parameter.hpp"
#include "flowad/tensor.hpp"
#include "flowad/train/fit.hpp"
#include "flowad/workspace.hpp"

namespace flowad {
inline namespace v0 {

struct training_problem {
  // What an epoch visits, each once, in a seeded random order: images for most detectors, positions
  // (fibres) for CFlow-AD.
  index_t samples = 0;
  // Updated by Adam and restored on rollback.
  std::vector<parameter*> trained;
  // Every parameter whose gradient a step writes (a superset of `trained`): cleared after each step.
  std::vector<parameter*> with_gradients;
  // One step on the samples `batch` (indices into 0 .. samples - 1): forward and backward, adding
  // dL/dθ to the gradients, returning the loss. A non-finite loss may leave the gradients unwritten.
  std::function<double(span<const index_t> batch, workspace& ws)> step;
  // Names the detector in messages ("msflow::fit gave up ...").
  std::string name = "fit";
};

// Runs `recipe` on `problem`. Throws errc::invalid_argument for a recipe out of its domain or an empty
// problem, errc::training_failed after options.max_consecutive_failures non-finite steps in a row.
// No heap allocation between steps once the first epoch has run (the step's own buffers aside).
fit_report train(const training_problem& problem, const training_options& recipe, const fit_options& options);

// Copies samples `batch` of `features` (any strides) into dense NHWC tensors, one per view.
void gather_samples(const std::vector<const_view>& features, span<const index_t> batch, std::vector<tensor>& out);

}  // namespace v0
}  // namespace flowad
