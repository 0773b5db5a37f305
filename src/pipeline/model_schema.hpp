// The keys an inspector writes into its detector's metadata, and reads back: the one place that knows
// the model file's image-pipeline schema.
//
//   pipeline.extractor, pipeline.weights (absolute path, or empty), pipeline.weights_embedded,
//   pipeline.height, pipeline.width, pipeline.levels, pipeline.neighbourhood, pipeline.pool_stride,
//   pipeline.cell_offsets                                           how features are made from images
//   threshold, threshold.target_fpr, threshold.held_out_images, threshold.bounded     the verdict
//   threshold.method (out_of_fold, holdout, manual), threshold.folds   how it was set (absent in older
//                                                                    files: held-out images or by hand)
//   heatmap.lo, heatmap.hi                                          the overlay's colour range
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "flowad/detector.hpp"
#include "flowad/io/heatmap.hpp"
#include "flowad/pipeline/features.hpp"
#include "flowad/pipeline/inspector.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// What an inspector needs to score images with its detector.
struct pipeline_record {
  std::string extractor;
  std::string weights;  // absolute path; empty when embedded or weight-free
  bool weights_embedded = false;
  feature_options features;
  std::vector<double> cell_offsets;
  std::optional<decision_threshold> threshold;
  heatmap_options heatmap;
};

// Into a model's metadata (a copy of detector::metadata() that save() writes to the file).
void write_pipeline_record(const pipeline_record& record, std::map<std::string, std::string>& metadata);
// Throws errc::bad_file naming the file and the key for a missing or malformed entry, a value out of its
// domain (an unknown extractor, sizes, neighbourhood and pool stride outside feature_options' domains,
// cell offsets not one per level within one cell, a non-finite or empty heatmap range) or entries that
// disagree (threshold.* without threshold); and for a model without pipeline.* entries (fitted on
// feature maps: there is no way to make its features from images). What needs the extractor (its
// levels, the shapes it makes) is inspector::load's to check.
pipeline_record read_pipeline_record(const detector& model, const std::string& origin);

}  // namespace detail
}  // namespace v0
}  // namespace flowad
