// JPEG decoding with libjpeg-turbo, which validates its input (Huffman tables, scans, markers) where
// stb_image did not: four of the image fuzz target's findings were stb decoding lying JPEGs.
#pragma once

#include <string>
#include <vector>

#include "flowad/io/image.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// Decodes a whole JPEG file held in memory to `channels` channels (3: RGB, grey replicated; 1: luminance).
// Corrupt data is an error, not a warning: a truncated or damaged file is refused rather than decoded
// with grey or repeated blocks. Frames of more than max_image_pixels, or more pixels than the file's bytes
// can hold, are refused before any pixel memory is allocated. Throws error(errc::bad_file) whose message
// is `context` followed by the reason.
byte_image decode_jpeg(const std::vector<unsigned char>& bytes, int channels, const std::string& context);

}  // namespace detail
}  // namespace v0
}  // namespace flowad
