// What every detector's implementation shares: input checks, the parts of a model file every
// detector writes alike (metadata, parameters), and the base of detector's non-virtual members.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flowad/detector.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/parameter.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// Tensors an inspector stores beside the detector's (the extractor's weights) start with this.
inline constexpr const char* extractor_tensor_prefix = "extractor.";
inline bool is_extractor_tensor(const stored_tensor& t) { return t.name.rfind(extractor_tensor_prefix, 0) == 0; }

// Checks a batch against the configured scales (count, non-empty, same N, shapes, finite values within
// ±max_feature_magnitude);
// returns N. `what` names the batch in messages. Allocates only to report a failure.
index_t check_features(const feature_maps& features, const std::vector<scale_shape>& scales, const char* what);

// The checks of score_options every detector applies (map size, batch size, one cell offset per scale).
void check_score_options(const score_options& options, std::size_t scales);

// The map size score() produces for these options: theirs, else the first scale's.
inline index_t map_height(const score_options& o, const std::vector<scale_shape>& scales) {
  return o.map_height > 0 ? o.map_height : scales[0].height;
}
inline index_t map_width(const score_options& o, const std::vector<scale_shape>& scales) {
  return o.map_width > 0 ? o.map_width : scales[0].width;
}

// A model file's contents with kind, configuration and the detector's metadata filled in.
model_file_contents model_file_header(const detector& d);
// Copies a model file's metadata into the detector.
void restore_metadata(detector& d, const model_file_contents& contents);

// Appends every parameter as "<prefix><name>".
void store_parameters(model_file_contents& m, const std::string& prefix, const std::vector<parameter*>& params);
// Overwrites every parameter from "<prefix><name>", checking shapes and finiteness (errc::bad_file);
// returns how many tensors it read.
std::size_t restore_parameters(const model_file_contents& m, const std::string& prefix, const std::vector<parameter*>& params);

// The seed of block `block` of scale `scale`'s flow, derived from the configuration's seed (CFlow-AD,
// FastFlow); changing it changes every fitted model.
std::uint64_t scale_block_seed(std::uint64_t seed, std::size_t scale, index_t block);
// "scale<s>.": the prefix of scale s's tensors in a model file.
inline std::string scale_prefix(std::size_t scale) { return "scale" + std::to_string(scale) + "."; }
// "block<b>.": the prefix of flow block b's tensors.
inline std::string block_prefix(index_t block) { return "block" + std::to_string(block) + "."; }

// Float values the detector's tensors hold (what a configuration's expected size is checked against
// before anything is allocated for it).
double stored_values(const model_file_contents& m);

// errc::bad_file unless the file holds exactly `expected` tensors.
void require_tensor_count(const model_file_contents& m, std::size_t expected);

}  // namespace detail
}  // namespace v0
}  // namespace flowad
