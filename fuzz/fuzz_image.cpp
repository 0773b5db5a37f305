// Fuzzes image decoding: BMP through stb with flowad's own checks (dimensions, pixel-array sizes), PNG
// through libspng and JPEG through libjpeg-turbo with flowad's limits (pixels; for JPEG bytes per pixel and
// scans), as images (RGB) and as masks (gray, thresholded). Images are read from
// files, so each input is written to a scratch file first.
#include <cstddef>
#include <cstdint>

#include "flowad/error.hpp"
#include "flowad/io/image.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = flowad::fuzz::write_scratch_file("input.img", data, size);
  try {
    flowad::read_image(path);
  } catch (const flowad::error&) {
  }
  try {
    flowad::read_mask(path);
  } catch (const flowad::error&) {
  }
  return 0;
}
