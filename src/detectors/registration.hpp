// How a detector kind joins the registry (detectors/registered.inc lists them, one line each).
#pragma once

#include <memory>
#include <vector>

#include "flowad/detector.hpp"
#include "flowad/io/model_file.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

struct detector_registration {
  detector_info info;
  detector_config (*recommended)(const feature_geometry& geometry);
  std::unique_ptr<detector> (*make)(const detector_config& config);
  // From a model file of this kind (tensors named "extractor.*" already removed).
  std::unique_ptr<detector> (*load)(const model_file_contents& contents);
  // The configuration of the detector's paper, with the paper's feature shapes (nullptr: none).
  detector_config (*paper)() = nullptr;
};

// Each detector's source defines its <kind>_registration().
#define FLOWAD_DETECTOR(kind) detector_registration kind##_registration();
#include "detectors/registered.inc"
#undef FLOWAD_DETECTOR

}  // namespace detail
}  // namespace v0
}  // namespace flowad
