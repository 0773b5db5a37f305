// Fuzzes the .npy parser (header dictionary, dtypes, byte orders, shapes against the payload) from
// memory, and the conversion of what it returns to a feature-map tensor.
#include <cstddef>
#include <cstdint>

#include "flowad/error.hpp"
#include "flowad/io/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const flowad::npy_array array = flowad::parse_npy(data, size, "fuzzed.npy");
    if (array.shape.size() == 4) flowad::to_tensor(array, "fuzzed.npy", flowad::layout::nhwc);
  } catch (const flowad::error&) {
  }
  return 0;
}
