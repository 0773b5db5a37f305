// The demo's settings: a synthetic inspection data set (data/fabric.hpp) and a small MS-Flow on the
// weight-free filter bank's two coarser levels, so that `flowad demo` fits, evaluates and draws
// heatmaps in a few minutes on two cores with nothing to download.
#pragma once

#include "flowad/pipeline/inspector.hpp"

namespace flowad {
inline namespace v0 {

// The filter bank's level2 and level3; MS-Flow with hidden 128 and 4 blocks, 20 epochs.
pipeline_config demo_pipeline_config();

}  // namespace v0
}  // namespace flowad
