// Writes JPEG files with libjpeg-turbo's encoder, for the decoder's tests: the forms stb_image_write
// cannot produce (progressive scans, restart markers, CMYK).
#pragma once

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include <jpeglib.h>

#include "flowad/io/image.hpp"

namespace flowad {
namespace testing {

struct jpeg_writing {
  int quality = 90;
  bool progressive = false;
  unsigned restart_rows = 0;  // a restart marker every so many MCU rows (0: none)
  bool cmyk = false;          // the image's 4 channels are written as CMYK
};

// Encodes `image` (1, 3 or, with cmyk, 4 channels); libjpeg's errors end the test process, as its
// default handler does, which is acceptable for a writer of known-good input.
inline std::vector<unsigned char> encode_jpeg(const byte_image& image, const jpeg_writing& how = {}) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr errors;
  cinfo.err = jpeg_std_error(&errors);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(image.width());
  cinfo.image_height = static_cast<JDIMENSION>(image.height());
  cinfo.input_components = static_cast<int>(image.channels());
  cinfo.in_color_space = how.cmyk ? JCS_CMYK : (image.channels() == 1 ? JCS_GRAYSCALE : JCS_RGB);
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, how.quality, TRUE);
  if (how.progressive) jpeg_simple_progression(&cinfo);
  cinfo.restart_in_rows = static_cast<int>(how.restart_rows);
  jpeg_start_compress(&cinfo, TRUE);
  const std::size_t row_bytes = static_cast<std::size_t>(image.width() * image.channels());
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<unsigned char*>(image.data()) + cinfo.next_scanline * row_bytes;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<unsigned char> encoded(buffer, buffer + size);
  std::free(buffer);
  return encoded;
}

}  // namespace testing
}  // namespace flowad
