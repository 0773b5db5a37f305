// Images named on the command line.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "flowad/tensor.hpp"

namespace flowad {
namespace cli {

// Files, or folders whose image files are taken in name order.
std::vector<std::filesystem::path> expand_images(const std::vector<std::string>& items);

// Feature maps from .npy files, one per scale (N x C x H x W float32), as dense NHWC tensors.
std::vector<tensor> read_feature_files(const std::vector<std::string>& paths);

}  // namespace cli
}  // namespace flowad
