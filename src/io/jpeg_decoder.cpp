#include "io/jpeg_decoder.hpp"

// jpeglib.h needs FILE and size_t declared first.
#include <cstddef>
#include <cstdio>
#include <csetjmp>
#include <cstring>
#include <cstdint>

#include <jpeglib.h>

#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {
namespace {

// Every 8x8 block costs at least one bit, so a complete JPEG holds at most 512 pixels per byte; a frame
// declaring more is cut short or lying, and libjpeg would allocate for all of it first.
constexpr std::int64_t max_jpeg_pixels_per_byte = 512;
// Progressive files take ten or so scans; libjpeg-turbo's own fuzzers stop at 500, which bounds the time a
// file of many empty scans can take (each scan re-reads the whole coefficient buffer).
constexpr int max_jpeg_scans = 500;
// The whole-image coefficient buffer of progressive and multi-scan files (max_image_pixels at 4:4:4 needs 768 MiB).
constexpr long max_jpeg_memory = 1L << 30;

// libjpeg reports errors by calling error_exit, which must not return: it jumps back to decode_into.
// Nothing between the setjmp and libjpeg's frames has a destructor (decode_into keeps C++ objects out).
struct jpeg_failure {
  jpeg_error_mgr manager;  // first: libjpeg's pointer to it is a pointer to the whole
  std::jmp_buf jump;
  char reason[JMSG_LENGTH_MAX + 64];
  bool from_libjpeg;  // the reason is libjpeg's message, not one of flowad's checks
};

[[noreturn]] void fail_with(j_common_ptr cinfo) {
  auto* failure = reinterpret_cast<jpeg_failure*>(cinfo->err);
  char message[JMSG_LENGTH_MAX] = {};
  (*cinfo->err->format_message)(cinfo, message);
  std::snprintf(failure->reason, sizeof failure->reason, "%s", message);
  failure->from_libjpeg = true;
  std::longjmp(failure->jump, 1);
}

extern "C" void on_jpeg_error(j_common_ptr cinfo) {
  fail_with(cinfo);
}

// Level -1 is a warning about corrupt data (a truncated file, a bad Huffman code, extraneous bytes), which
// libjpeg would decode on from; higher levels are trace messages.
extern "C" void on_jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0) fail_with(cinfo);
}

extern "C" void on_jpeg_progress(j_common_ptr cinfo) {
  const auto* decompress = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (decompress->input_scan_number > max_jpeg_scans) {
    auto* failure = reinterpret_cast<jpeg_failure*>(cinfo->err);
    std::snprintf(failure->reason, sizeof failure->reason, "the file holds more than %d scans", max_jpeg_scans);
    std::longjmp(failure->jump, 1);
  }
}

struct jpeg_request {
  const std::vector<unsigned char>* bytes;
  int channels;
  byte_image* result;
};

// Fills *request.result, or failure.reason with why the file was refused. Locals that live across the
// setjmp are trivial (libjpeg's structs), so a longjmp out of libjpeg skips no destructor.
void decode_into(const jpeg_request& request, jpeg_failure& failure) {
  jpeg_decompress_struct cinfo;
  jpeg_progress_mgr progress;
  cinfo.err = jpeg_std_error(&failure.manager);
  failure.manager.error_exit = on_jpeg_error;
  failure.manager.emit_message = on_jpeg_message;
  failure.reason[0] = '\0';
  failure.from_libjpeg = false;
  if (setjmp(failure.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return;
  }
  jpeg_create_decompress(&cinfo);
  progress.progress_monitor = on_jpeg_progress;
  cinfo.progress = &progress;
  cinfo.mem->max_memory_to_use = max_jpeg_memory;
  jpeg_mem_src(&cinfo, request.bytes->data(), static_cast<unsigned long>(request.bytes->size()));
  jpeg_read_header(&cinfo, TRUE);

  const std::int64_t width = cinfo.image_width, height = cinfo.image_height, pixels = width * height;
  const auto refuse = [&](const std::string& reason) {
    std::snprintf(failure.reason, sizeof failure.reason, "%s", reason.c_str());
  };
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    refuse("a CMYK JPEG, which flowad does not read (convert it to RGB)");
  } else if (pixels > max_image_pixels) {
    refuse("the JPEG header declares " + std::to_string(width) + "x" + std::to_string(height) +
           " pixels, more than the " + std::to_string(max_image_pixels) + " flowad reads");
  } else if (pixels > max_jpeg_pixels_per_byte * static_cast<std::int64_t>(request.bytes->size())) {
    refuse("corrupt or truncated JPEG file: its header declares " + std::to_string(width) + "x" +
           std::to_string(height) + " pixels, more than " + std::to_string(request.bytes->size()) +
           " bytes can hold (a JPEG spends at least one bit on each 8x8 block)");
  }
  if (failure.reason[0] != '\0') {
    jpeg_destroy_decompress(&cinfo);
    return;
  }

  cinfo.out_color_space = request.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  // The output's shape is known now; the assignment's temporaries end before libjpeg runs again.
  try {
    *request.result = byte_image(height, width, request.channels);
  } catch (...) {
    jpeg_destroy_decompress(&cinfo);
    throw;
  }
  const std::size_t row_bytes = static_cast<std::size_t>(width) * request.channels;
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = request.result->data() + cinfo.output_scanline * row_bytes;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
}

}  // namespace

byte_image decode_jpeg(const std::vector<unsigned char>& bytes, int channels, const std::string& context) {
  byte_image result;
  jpeg_failure failure;
  decode_into(jpeg_request{&bytes, channels, &result}, failure);
  if (failure.reason[0] != '\0') {
    const std::string reason = failure.from_libjpeg
                                   ? std::string("corrupt or truncated JPEG file; libjpeg-turbo: ") + failure.reason
                                   : std::string(failure.reason);
    throw error(errc::bad_file, context + reason);
  }
  return result;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
