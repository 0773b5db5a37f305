// flowad: visual anomaly detection with normalizing flows. Umbrella header.
#pragma once

#include "flowad/error.hpp"
#include "flowad/parameter.hpp"
#include "flowad/tensor.hpp"
#include "flowad/version.hpp"
#include "flowad/workspace.hpp"

#include "flowad/layers/flow_layer.hpp"
#include "flowad/layers/permute.hpp"
