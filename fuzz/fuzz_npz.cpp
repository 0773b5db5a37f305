// Fuzzes .npz archives, stored and deflated: the zip central directory (zip64 included), local
// headers, inflation, CRC-32 and size checks, and the .npy members inside. The archive reader works on
// files, so each input is written to a scratch file first.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "flowad/error.hpp"
#include "flowad/io/npy.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = flowad::fuzz::write_scratch_file("input.npz", data, size).string();
  std::vector<std::string> names;
  try {
    names = flowad::list_npz(path);
  } catch (const flowad::error&) {
  }
  try {
    flowad::read_npz(path);
  } catch (const flowad::error&) {
  }
  // One member alone: the reader seeks to it instead of walking the archive in order.
  if (!names.empty()) {
    try {
      flowad::read_npz_member(path, names.back());
    } catch (const flowad::error&) {
    }
  }
  return 0;
}
