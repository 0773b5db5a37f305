// PNG decoding with libspng, which checks every chunk's CRC, bounds what it allocates and reads the
// image data in one pass. stb_image decoded PNGs before: it inflated into a buffer it grew without bound,
// so flowad inflated every PNG once more beforehand to check it (a cost equal to a third of the decode).
#pragma once

#include <string>
#include <vector>

#include "flowad/io/image.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// Decodes a whole PNG file held in memory to `channels` channels (3: RGB, grey replicated, alpha dropped,
// 16-bit samples reduced to their high byte; 1: luminance, as stb_image computed it). Damage is an
// error: a bad CRC in any chunk libspng reads, a broken zlib stream or checksum, image data of fewer rows
// than the header declares, a file cut anywhere before the end of IEND. Data beyond the declared rows is
// ignored, as libpng does. Frames of more than max_image_pixels are refused before any pixel
// memory is allocated. Throws error(errc::bad_file) whose message is `context` followed by the reason.
byte_image decode_png(const std::vector<unsigned char>& bytes, int channels, const std::string& context);

}  // namespace detail
}  // namespace v0
}  // namespace flowad
