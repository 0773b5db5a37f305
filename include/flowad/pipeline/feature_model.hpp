// Detectors fitted on feature maps from another extractor (one N x C x H x W array per scale, e.g.
// .npy files): how flowad fits them and scores them again, so that a model file records what scoring
// needs (where the feature cells sit on the image).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "flowad/detector.hpp"

namespace flowad {
inline namespace v0 {

struct feature_model_options {
  std::string detector = "msflow";
  detector_config settings;  // changes to recommended_config(detector, the features' shapes)
  // Per scale, where its cells sit in the image, in cells (score_options::cell_offsets); empty: 0,
  // PyTorch's align_corners=False grid. Recorded in the model.
  std::vector<double> cell_offsets;
};

// A detector fitted on `train` (its kind's recommended configuration for these shapes, changed by
// options.settings).
std::unique_ptr<detector> fit_feature_model(const feature_maps& train, const feature_model_options& options = {},
                                            const fit_options& fit = {}, fit_report* report = nullptr);

// Scores with maps at the first scale's resolution, on the grid the model recorded.
scores score_feature_model(const detector& model, const feature_maps& features);

}  // namespace v0
}  // namespace flowad
