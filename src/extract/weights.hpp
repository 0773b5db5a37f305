// Private to src/extract: reading network weights and checking them against the expected names,
// shapes and dtype before a network is built.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "flowad/extract/extractor.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// Float32 weights checked against a list of specs: every spec present, dtype float32 in the file,
// exact shape. Errors (flowad::error) name the network, the file or member, and both shapes.
class checked_weights {
 public:
  // From a directory of .npy files or an .npz archive.
  checked_weights(const std::string& path, const std::vector<weight_spec>& specs, const std::string& network);
  // From tensors in memory.
  checked_weights(const weight_map& weights, const std::string& origin, const std::vector<weight_spec>& specs,
                  const std::string& network);

  // The values of tensor `name` (moved out; each name is taken once).
  std::vector<float> take(const std::string& name);

 private:
  void check(const std::string& where, const std::string& network, const weight_spec& spec, const npy_array& a);
  std::map<std::string, std::vector<float>> values_;
  std::string network_;
};

}  // namespace detail
}  // namespace v0
}  // namespace flowad
