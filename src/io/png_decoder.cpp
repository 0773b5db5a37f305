#include "io/png_decoder.hpp"

#include <spng.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "flowad/error.hpp"
#include "io/bytes.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {
namespace {

// Ancillary chunks (text, ICC profiles) libspng keeps in memory while decoding, and the largest one it
// reads: far above what real images carry, far below what would strain a machine.
constexpr std::size_t max_png_chunk_bytes = std::size_t{64} << 20;
constexpr std::size_t max_png_chunk_cache = std::size_t{128} << 20;

struct spng_context_deleter {
  void operator()(spng_ctx* ctx) const noexcept { spng_ctx_free(ctx); }
};

// Whether the chunk list reaches a complete IEND chunk (libspng checks the chunks' CRCs, but stops
// reading once it has what it was asked for, and a file cut inside IEND's checksum decodes).
bool reaches_iend(const std::vector<unsigned char>& bytes) {
  std::size_t pos = 8;  // after the signature
  while (bytes.size() - pos >= 12) {
    const std::size_t length = be32(&bytes[pos]);
    if (std::memcmp(&bytes[pos + 4], "IEND", 4) == 0) return true;
    if (length > bytes.size() - pos - 12) return false;
    pos += 12 + length;
  }
  return false;
}

std::string corrupt(int code) {
  return std::string("corrupt or truncated PNG file; libspng: ") + spng_strerror(code);
}

}  // namespace

byte_image decode_png(const std::vector<unsigned char>& bytes, int channels, const std::string& context) {
  const auto fail = [&](const std::string& reason) { return error(errc::bad_file, context + reason); };
  const std::unique_ptr<spng_ctx, spng_context_deleter> ctx(spng_ctx_new(0));
  if (!ctx) throw error(errc::backend, context + "libspng could not create a decoder");
  // CRC mismatches are errors in every chunk (libspng's default for critical ones, not ancillary ones).
  spng_set_crc_action(ctx.get(), SPNG_CRC_ERROR, SPNG_CRC_ERROR);
  spng_set_chunk_limits(ctx.get(), max_png_chunk_bytes, max_png_chunk_cache);
  if (const int rc = spng_set_png_buffer(ctx.get(), bytes.data(), bytes.size())) throw fail(corrupt(rc));

  spng_ihdr header{};
  if (const int rc = spng_get_ihdr(ctx.get(), &header)) throw fail(corrupt(rc));
  if (std::uint64_t{header.width} * header.height > static_cast<std::uint64_t>(max_image_pixels))
    throw fail("the PNG header declares " + std::to_string(header.width) + "x" + std::to_string(header.height) +
               " pixels, more than the " + std::to_string(max_image_pixels) + " flowad reads");

  std::size_t rgb_bytes = 0;
  if (const int rc = spng_decoded_image_size(ctx.get(), SPNG_FMT_RGB8, &rgb_bytes)) throw fail(corrupt(rc));
  const auto height = static_cast<index_t>(header.height), width = static_cast<index_t>(header.width);
  if (static_cast<index_t>(rgb_bytes) != height * width * 3)
    throw fail("libspng decodes this PNG to " + std::to_string(rgb_bytes) + " bytes, not " +
               std::to_string(height * width * 3) + " (RGB)");
  byte_image rgb(height, width, 3);
  if (const int rc = spng_decode_image(ctx.get(), rgb.data(), rgb_bytes, SPNG_FMT_RGB8, 0)) throw fail(corrupt(rc));
  // The chunks after the image data, up to IEND: a file cut after its last IDAT is truncated too.
  if (const int rc = spng_decode_chunks(ctx.get())) throw fail(corrupt(rc));
  if (!reaches_iend(bytes))
    throw fail("corrupt or truncated PNG file: the file ends at byte " + std::to_string(bytes.size()) +
               " before the end of its IEND chunk (truncated)");
  if (channels == 3) return rgb;

  // Luminance with stb_image's weights (77, 150, 29)/256, so masks read as they always have.
  byte_image gray(height, width, 1);
  const std::uint8_t* in = rgb.data();
  for (std::size_t i = 0; i < gray.size(); ++i, in += 3)
    gray.data()[i] = static_cast<std::uint8_t>((in[0] * 77 + in[1] * 150 + in[2] * 29) >> 8);
  return gray;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
