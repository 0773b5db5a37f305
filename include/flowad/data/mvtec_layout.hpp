// Writing a synthetic data set to disk in the MVTec AD layout, so that whatever reads real data
// (flowad/io/dataset.hpp) reads it too.
#pragma once

#include <filesystem>

#include "flowad/data/fabric.hpp"

namespace flowad {
inline namespace v0 {

// Writes the data set in the MVTec AD layout (see flowad/io/dataset.hpp): train/good/000.png,
// test/<type>/000.png, ground_truth/<type>/000_mask.png (0/255), numbering each folder from 0.
// The root is created; it must not exist or be empty, so files of an older data set never mix in
// (errc::invalid_argument otherwise). errc::invalid_argument when the data set's columns disagree,
// errc::io_error when a file cannot be written.
void write_mvtec_layout(const synthetic_dataset& dataset, const std::filesystem::path& root);

}  // namespace v0
}  // namespace flowad
