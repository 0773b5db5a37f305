// NumPy .npy / .npz reader and writer. See include/flowad/io/npy.hpp for what is accepted.
//
// References: numpy/lib/format.py (the .npy format, versions 1.0-3.0) and PKWARE's APPNOTE.TXT
// (zip local headers, central directory, zip64 end records and extra fields).
#include "flowad/io/npy.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <system_error>

#include "io/bytes.hpp"

namespace flowad {
inline namespace v0 {

namespace {

namespace fs = std::filesystem;

constexpr char npy_magic[] = "\x93NUMPY";
constexpr std::size_t npy_magic_size = 6;
constexpr int max_npy_dims = 64;                                // numpy 2.x's NPY_MAXDIMS
constexpr std::size_t max_header_bytes = std::size_t{1} << 20;  // numpy refuses headers above 10 000 bytes by default
constexpr std::size_t npy_header_alignment = 64;
constexpr std::size_t convert_chunk_bytes = std::size_t{1} << 20;

[[noreturn]] void fail(errc code, const std::string& where, const std::string& what) {
  throw error(code, where + ": " + what);
}

// ------------------------------------------------------------------------------------------------
// A running CRC-32 over a stream of chunks (the zip checksum).
class crc32 {
 public:
  void update(const void* data, std::size_t size) noexcept { value_ = detail::crc32(data, size, value_); }
  std::uint32_t value() const noexcept { return value_; }

 private:
  std::uint32_t value_ = 0;
};

// ------------------------------------------------------------------------------------------------
// Little-endian field access.
std::uint16_t le16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
std::uint32_t le32(const std::uint8_t* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
std::uint64_t le64(const std::uint8_t* p) noexcept {
  return static_cast<std::uint64_t>(le32(p)) | (static_cast<std::uint64_t>(le32(p + 4)) << 32);
}
void put16(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>(v & 0xFFu));
  out.push_back(static_cast<char>((v >> 8) & 0xFFu));
}
void put32(std::string& out, std::uint32_t v) {
  put16(out, v & 0xFFFFu);
  put16(out, v >> 16);
}

// ------------------------------------------------------------------------------------------------
// Sequential byte sources: a region of a file (optionally checksummed) or a memory buffer.
class byte_source {
 public:
  virtual ~byte_source() = default;
  virtual std::uint64_t remaining() const noexcept = 0;
  // Reads exactly n bytes; the caller has checked n <= remaining().
  virtual void read(void* dst, std::size_t n) = 0;
  const std::string& where() const noexcept { return where_; }

 protected:
  explicit byte_source(std::string where) : where_(std::move(where)) {}

 private:
  std::string where_;
};

class file_region final : public byte_source {
 public:
  file_region(std::ifstream& file, std::string where, std::uint64_t offset, std::uint64_t size, crc32* crc)
      : byte_source(std::move(where)), file_(file), remaining_(size), crc_(crc) {
    file_.clear();
    file_.seekg(static_cast<std::streamoff>(offset));
    if (!file_) fail(errc::io_error, this->where(), "cannot seek to byte " + std::to_string(offset));
  }
  std::uint64_t remaining() const noexcept override { return remaining_; }
  void read(void* dst, std::size_t n) override {
    file_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (static_cast<std::size_t>(file_.gcount()) != n)
      fail(errc::io_error, where(),
           "read failed (" + std::to_string(file_.gcount()) + " of " + std::to_string(n) + " bytes)");
    if (crc_ != nullptr) crc_->update(dst, n);
    remaining_ -= n;
  }

 private:
  std::ifstream& file_;
  std::uint64_t remaining_;
  crc32* crc_;
};

class memory_source final : public byte_source {
 public:
  memory_source(const void* data, std::size_t size, std::string where)
      : byte_source(std::move(where)), p_(static_cast<const std::uint8_t*>(data)), remaining_(size) {}
  std::uint64_t remaining() const noexcept override { return remaining_; }
  void read(void* dst, std::size_t n) override {
    std::memcpy(dst, p_, n);
    p_ += n;
    remaining_ -= n;
  }

 private:
  const std::uint8_t* p_;
  std::uint64_t remaining_;
};

void read_exact(byte_source& src, void* dst, std::size_t n, const char* what) {
  if (src.remaining() < n)
    fail(errc::bad_file, src.where(),
         std::string("truncated ") + what + " (needs " + std::to_string(n) + " bytes, " +
             std::to_string(src.remaining()) + " left)");
  src.read(dst, n);
}

// ------------------------------------------------------------------------------------------------
// The header dictionary: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
struct npy_header {
  std::string descr;
  bool fortran_order = false;
  std::vector<index_t> shape;
};

class header_parser {
 public:
  header_parser(const std::string& text, const std::string& where) : s_(text), where_(where) {}

  npy_header parse() {
    npy_header h;
    bool has_descr = false, has_fortran = false, has_shape = false;
    skip_space();
    expect('{');
    for (;;) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      skip_space();
      expect(':');
      skip_space();
      if (key == "descr") {
        if (has_descr) bad("duplicate key 'descr'");
        if (peek() == '[') bad("structured dtypes (a list as 'descr') are not supported");
        h.descr = string_literal();
        has_descr = true;
      } else if (key == "fortran_order") {
        if (has_fortran) bad("duplicate key 'fortran_order'");
        h.fortran_order = boolean();
        has_fortran = true;
      } else if (key == "shape") {
        if (has_shape) bad("duplicate key 'shape'");
        h.shape = tuple();
        has_shape = true;
      } else {
        bad("unexpected key '" + key + "'");
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') bad(std::string("expected ',' or '}' at offset ") + std::to_string(pos_));
    }
    ++pos_;  // '}'
    skip_space();
    if (pos_ != s_.size()) bad("unexpected text after the dictionary at offset " + std::to_string(pos_));
    if (!has_descr) bad("the header has no 'descr' key");
    if (!has_fortran) bad("the header has no 'fortran_order' key");
    if (!has_shape) bad("the header has no 'shape' key");
    return h;
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail(errc::bad_file, where_, "malformed .npy header: " + what);
  }
  char peek() const {
    if (pos_ >= s_.size()) bad("the dictionary is not closed");
    return s_[pos_];
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  void expect(char c) {
    if (peek() != c) bad(std::string("expected '") + c + "' at offset " + std::to_string(pos_));
    ++pos_;
  }
  std::string string_literal() {
    const char quote = peek();
    if (quote != '\'' && quote != '"') bad("expected a quoted string at offset " + std::to_string(pos_));
    ++pos_;
    std::string out;
    for (;;) {
      const char c = peek();
      ++pos_;
      if (c == quote) return out;
      if (c == '\\') bad("escape sequences are not supported in header strings");
      out.push_back(c);
    }
  }
  bool boolean() {
    if (s_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (s_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    bad("'fortran_order' must be True or False");
  }
  std::vector<index_t> tuple() {
    expect('(');
    std::vector<index_t> dims;
    bool trailing_comma = false;
    for (;;) {
      skip_space();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9')
        bad("a shape entry is not a non-negative integer (offset " + std::to_string(pos_) + ")");
      index_t v = 0;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        const index_t digit = s_[pos_] - '0';
        if (v > (std::numeric_limits<index_t>::max() - digit) / 10) bad("a shape entry overflows a 64-bit integer");
        v = v * 10 + digit;
        ++pos_;
      }
      if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;  // Python 2 long literal
      dims.push_back(v);
      if (static_cast<int>(dims.size()) > max_npy_dims)
        bad("more than " + std::to_string(max_npy_dims) + " dimensions");
      skip_space();
      if (peek() == ',') {
        ++pos_;
        trailing_comma = true;
        continue;
      }
      trailing_comma = false;
      if (peek() != ')') bad("expected ',' or ')' in the shape at offset " + std::to_string(pos_));
    }
    ++pos_;
    // "(5)" is an integer in Python, not a tuple: a one-element shape needs its comma, "(5,)".
    if (dims.size() == 1 && !trailing_comma) bad("'shape' is not a tuple (a one-element shape is written (n,))");
    return dims;
  }

  const std::string& s_;
  const std::string& where_;
  std::size_t pos_ = 0;
};

// ------------------------------------------------------------------------------------------------
// Element types.
enum class kind { float_, signed_, unsigned_, boolean };

struct dtype_info {
  kind k = kind::float_;
  std::size_t size = 4;
  bool swap = false;  // stored with the opposite byte order from the host
};

[[noreturn]] void unsupported_dtype(const std::string& descr, const std::string& where, const std::string& why) {
  fail(errc::bad_file, where,
       "unsupported dtype '" + descr + "' (" + why +
           "); supported: float32 (read as is), float16/float64, integers and bool (converted to float32)");
}

dtype_info parse_descr(const std::string& descr, const std::string& where) {
  auto unsupported = [&](const std::string& why) { unsupported_dtype(descr, where, why); };
  if (descr.size() < 3) unsupported("not a simple type");
  const char order = descr[0];
  if (order != '<' && order != '>' && order != '|' && order != '=') unsupported("no byte-order character");
  const char k = descr[1];
  std::size_t size = 0;
  for (std::size_t i = 2; i < descr.size(); ++i) {
    if (descr[i] < '0' || descr[i] > '9' || size > 1000) unsupported("not a simple type");
    size = size * 10 + static_cast<std::size_t>(descr[i] - '0');
  }
  dtype_info d;
  d.size = size;
  switch (k) {
    case 'f':
      if (size != 2 && size != 4 && size != 8) unsupported("only 2-, 4- and 8-byte floats");
      d.k = kind::float_;
      break;
    case 'i':
      if (size != 1 && size != 2 && size != 4 && size != 8) unsupported("integer size");
      d.k = kind::signed_;
      break;
    case 'u':
      if (size != 1 && size != 2 && size != 4 && size != 8) unsupported("integer size");
      d.k = kind::unsigned_;
      break;
    case 'b':
      if (size != 1) unsupported("bool size");
      d.k = kind::boolean;
      break;
    case 'c':
      unsupported_dtype(descr, where, "complex numbers");
    case 'O':
      unsupported_dtype(descr, where, "Python objects");
    case 'U':
    case 'S':
    case 'V':
      unsupported_dtype(descr, where, "strings or raw bytes");
    case 'M':
    case 'm':
      unsupported_dtype(descr, where, "dates and times");
    default:
      unsupported_dtype(descr, where, "unknown kind");
  }
  if (size > 1) {
    if (order == '|' || order == '=') unsupported("a multi-byte type needs '<' or '>' byte order");
    d.swap = (order == '>') == detail::host_is_little_endian();
  }
  return d;
}

void byte_swap(std::uint8_t* p, std::size_t count, std::size_t size) noexcept {
  for (std::size_t i = 0; i < count; ++i, p += size) std::reverse(p, p + size);
}

float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = (h >> 15) & 1u, exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    magnitude = mantissa == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  }
  return sign ? -magnitude : magnitude;
}

// Converts `count` elements of type d (already in host byte order) at src to float.
void convert(const std::uint8_t* src, std::size_t count, const dtype_info& d, float* dst, std::size_t first_index,
             const std::string& where) {
  for (std::size_t i = 0; i < count; ++i, src += d.size) {
    float v = 0.0f;
    switch (d.k) {
      case kind::float_:
        if (d.size == 2) {
          std::uint16_t h;
          std::memcpy(&h, src, 2);
          v = half_to_float(h);
        } else if (d.size == 4) {
          std::memcpy(&v, src, 4);
        } else {
          double x;
          std::memcpy(&x, src, 8);
          if (std::isfinite(x) && std::abs(x) > static_cast<double>(std::numeric_limits<float>::max()))
            fail(errc::bad_file, where,
                 "element " + std::to_string(first_index + i) + " (" + std::to_string(x) +
                     ") is outside the float32 range");
          v = static_cast<float>(x);
        }
        break;
      case kind::signed_:
        switch (d.size) {
          case 1: {
            std::int8_t x;
            std::memcpy(&x, src, 1);
            v = static_cast<float>(x);
            break;
          }
          case 2: {
            std::int16_t x;
            std::memcpy(&x, src, 2);
            v = static_cast<float>(x);
            break;
          }
          case 4: {
            std::int32_t x;
            std::memcpy(&x, src, 4);
            v = static_cast<float>(x);
            break;
          }
          default: {
            std::int64_t x;
            std::memcpy(&x, src, 8);
            v = static_cast<float>(x);
            break;
          }
        }
        break;
      case kind::unsigned_:
        switch (d.size) {
          case 1:
            v = static_cast<float>(*src);
            break;
          case 2: {
            std::uint16_t x;
            std::memcpy(&x, src, 2);
            v = static_cast<float>(x);
            break;
          }
          case 4: {
            std::uint32_t x;
            std::memcpy(&x, src, 4);
            v = static_cast<float>(x);
            break;
          }
          default: {
            std::uint64_t x;
            std::memcpy(&x, src, 8);
            v = static_cast<float>(x);
            break;
          }
        }
        break;
      case kind::boolean:
        if (*src > 1)
          fail(errc::bad_file, where, "element " + std::to_string(first_index + i) + " is not a valid bool");
        v = static_cast<float>(*src);
        break;
    }
    dst[i] = v;
  }
}

// Parses one .npy image from src; afterwards src.remaining() must be 0.
npy_array parse(byte_source& src) {
  const std::string& where = src.where();
  std::uint8_t prefix[npy_magic_size + 2];
  if (src.remaining() < sizeof prefix)
    fail(errc::bad_file, where,
         "not a .npy file (" + std::to_string(src.remaining()) + " bytes, too short for the magic)");
  src.read(prefix, sizeof prefix);
  if (std::memcmp(prefix, npy_magic, npy_magic_size) != 0) fail(errc::bad_file, where, "not a .npy file (bad magic)");
  const int major = prefix[npy_magic_size], minor = prefix[npy_magic_size + 1];
  if ((major != 1 && major != 2 && major != 3) || minor != 0)
    fail(errc::bad_file, where,
         "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
             " (1.0, 2.0 and 3.0 are supported)");
  std::uint8_t len_bytes[4] = {0, 0, 0, 0};
  const std::size_t len_size = major == 1 ? 2 : 4;
  read_exact(src, len_bytes, len_size, "header length");
  const std::size_t header_len = major == 1 ? le16(len_bytes) : le32(len_bytes);
  if (header_len > max_header_bytes)
    fail(errc::bad_file, where,
         "the .npy header claims " + std::to_string(header_len) + " bytes (limit " + std::to_string(max_header_bytes) +
             ")");
  std::string text(header_len, '\0');
  read_exact(src, text.data(), header_len, ".npy header");
  if (major < 3) {
    for (char c : text)
      if (static_cast<unsigned char>(c) >= 0x80)
        fail(errc::bad_file, where, "malformed .npy header: non-ASCII byte in a version 1/2 header");
  }
  if (text.find('\0') != std::string::npos) fail(errc::bad_file, where, "malformed .npy header: NUL byte");
  const npy_header h = header_parser(text, where).parse();
  if (h.fortran_order)
    fail(errc::bad_file, where,
         "Fortran-order (column-major) arrays are not supported; save with np.ascontiguousarray");
  const dtype_info d = parse_descr(h.descr, where);

  npy_array out;
  out.shape = h.shape;
  out.dtype = h.descr;
  // Element count and byte size with overflow checks.
  std::uint64_t count = 1;
  std::string shape_text = out.shape_str();
  for (index_t dim : h.shape) {
    if (dim != 0 &&
        count > static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()) / static_cast<std::uint64_t>(dim))
      fail(errc::bad_file, where, "shape " + shape_text + " overflows a 64-bit element count");
    count *= static_cast<std::uint64_t>(dim);
  }
  if (count > std::numeric_limits<std::uint64_t>::max() / d.size)
    fail(errc::bad_file, where, "shape " + shape_text + " overflows a 64-bit byte count");
  const std::uint64_t payload = count * d.size;
  if (src.remaining() != payload)
    fail(errc::bad_file, where,
         "the payload holds " + std::to_string(src.remaining()) + " bytes but shape " + shape_text + " of '" + h.descr +
             "' needs " + std::to_string(payload) +
             (src.remaining() < payload ? " (truncated file)" : " (trailing bytes)"));
  if (count > static_cast<std::uint64_t>(std::numeric_limits<std::size_t>::max() / sizeof(float)))
    fail(errc::bad_file, where, "shape " + shape_text + " is too large for this machine");

  const auto n = static_cast<std::size_t>(count);
  out.data.resize(n);
  if (d.k == kind::float_ && d.size == 4) {
    if (n > 0) src.read(out.data.data(), n * 4);
    if (d.swap) byte_swap(reinterpret_cast<std::uint8_t*>(out.data.data()), n, 4);
  } else {
    const std::size_t per_chunk = std::max<std::size_t>(1, convert_chunk_bytes / d.size);
    std::vector<std::uint8_t> buffer(std::min(n, per_chunk) * d.size);
    for (std::size_t first = 0; first < n; first += per_chunk) {
      const std::size_t m = std::min(per_chunk, n - first);
      src.read(buffer.data(), m * d.size);
      if (d.swap) byte_swap(buffer.data(), m, d.size);
      convert(buffer.data(), m, d, out.data.data() + first, first, where);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Files.
std::ifstream open_for_reading(const std::string& path, std::uint64_t& size) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw error(errc::io_error, path + ": cannot open (no such file)");
  if (fs::is_directory(st)) throw error(errc::io_error, path + ": cannot open (it is a directory)");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw error(errc::io_error, path + ": cannot open for reading");
  f.seekg(0, std::ios::end);
  const std::streamoff end = f.tellg();
  if (!f || end < 0) throw error(errc::io_error, path + ": cannot determine the file size");
  size = static_cast<std::uint64_t>(end);
  f.seekg(0);
  return f;
}

// Writes through `body` into a temporary file next to `path`, then renames it over `path`.
template <class Body>
void write_atomically(const std::string& path, Body&& body) {
  static std::atomic<std::uint64_t> counter{0};
  std::random_device rd;
  const std::string tmp = path + ".tmp-" + std::to_string(rd()) + "-" + std::to_string(++counter);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw error(errc::io_error, path + ": cannot create the temporary file " + tmp);
    try {
      body(f);
      f.flush();
      if (!f) throw error(errc::io_error, path + ": write failed (disk full?)");
      f.close();
      if (f.fail()) throw error(errc::io_error, path + ": closing the temporary file failed");
    } catch (...) {
      f.close();
      std::error_code ignored;
      fs::remove(tmp, ignored);
      throw;
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw error(errc::io_error, path + ": cannot rename the temporary file into place (" + ec.message() + ")");
  }
}

void write_bytes(std::ostream& f, const void* data, std::size_t n, const std::string& path) {
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  if (!f) throw error(errc::io_error, path + ": write failed");
}

std::uint64_t checked_numel(const std::vector<index_t>& shape, const std::string& where) {
  std::uint64_t n = 1;
  for (index_t d : shape) {
    if (d < 0) throw error(errc::invalid_argument, where + ": negative dimension in the shape");
    if (d != 0 && n > static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()) / static_cast<std::uint64_t>(d))
      throw error(errc::invalid_argument, where + ": the shape overflows a 64-bit element count");
    n *= static_cast<std::uint64_t>(d);
  }
  return n;
}

// The complete .npy header (magic to padding) for a float32 C-order array.
std::string npy_header_bytes(const std::vector<index_t>& shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    dict += (shape.size() == 1 || i + 1 < shape.size()) ? "," : "";
    if (i + 1 < shape.size()) dict += " ";
  }
  dict += "), }";
  // Version 1.0 if the header length fits 16 bits, else 2.0. The total is padded with spaces to a
  // multiple of 64 bytes and ends with '\n', as numpy writes it.
  for (int major = 1; major <= 2; ++major) {
    const std::size_t prefix = npy_magic_size + 2 + (major == 1 ? 2 : 4);
    std::size_t total = prefix + dict.size() + 1;
    total = (total + npy_header_alignment - 1) / npy_header_alignment * npy_header_alignment;
    const std::size_t header_len = total - prefix;
    if (major == 1 && header_len > 0xFFFF) continue;
    std::string out(npy_magic, npy_magic_size);
    out.push_back(static_cast<char>(major));
    out.push_back(0);
    if (major == 1) {
      put16(out, static_cast<std::uint32_t>(header_len));
    } else {
      put32(out, static_cast<std::uint32_t>(header_len));
    }
    out += dict;
    out.append(header_len - dict.size() - 1, ' ');
    out.push_back('\n');
    return out;
  }
  throw error(errc::invalid_argument, "a .npy header of " + std::to_string(shape.size()) + " dimensions is too long");
}

// Little-endian float32 bytes of data (a copy only on big-endian hosts).
void write_float_payload(std::ostream& f, const float* data, std::size_t n, const std::string& path, crc32* crc) {
  if (detail::host_is_little_endian()) {
    if (crc != nullptr) crc->update(data, n * sizeof(float));
    write_bytes(f, data, n * sizeof(float), path);
    return;
  }
  std::vector<std::uint8_t> chunk;
  const std::size_t per_chunk = convert_chunk_bytes / sizeof(float);
  for (std::size_t first = 0; first < n; first += per_chunk) {
    const std::size_t m = std::min(per_chunk, n - first);
    chunk.resize(m * sizeof(float));
    std::memcpy(chunk.data(), data + first, chunk.size());
    byte_swap(chunk.data(), m, sizeof(float));
    if (crc != nullptr) crc->update(chunk.data(), chunk.size());
    write_bytes(f, chunk.data(), chunk.size(), path);
  }
}

// ------------------------------------------------------------------------------------------------
// Zip archives.
constexpr std::uint32_t sig_local = 0x04034b50u;
constexpr std::uint32_t sig_central = 0x02014b50u;
constexpr std::uint32_t sig_eocd = 0x06054b50u;
constexpr std::uint32_t sig_zip64_eocd = 0x06064b50u;
constexpr std::uint32_t sig_zip64_locator = 0x07064b50u;
constexpr std::size_t local_header_size = 30;
constexpr std::size_t central_header_size = 46;
constexpr std::size_t eocd_size = 22;
constexpr std::size_t zip64_eocd_size = 56;
constexpr std::size_t zip64_locator_size = 20;
constexpr std::size_t max_zip_comment = 0xFFFF;
constexpr std::uint16_t method_stored = 0;
constexpr std::uint16_t method_deflated = 8;

struct zip_member {
  std::string name;  // as stored, with ".npy"
  std::uint16_t method = 0;
  std::uint16_t flags = 0;
  std::uint32_t crc = 0;
  std::uint64_t compressed_size = 0;
  std::uint64_t size = 0;
  std::uint64_t local_offset = 0;
};

struct zip_directory {
  std::uint64_t file_size = 0;
  std::uint64_t cd_offset = 0;
  std::vector<zip_member> members;
};

void read_at(std::ifstream& f, const std::string& path, std::uint64_t offset, void* dst, std::size_t n) {
  f.clear();
  f.seekg(static_cast<std::streamoff>(offset));
  f.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
  if (!f || static_cast<std::size_t>(f.gcount()) != n)
    throw error(errc::io_error,
                path + ": read of " + std::to_string(n) + " bytes at offset " + std::to_string(offset) + " failed");
}

zip_directory read_directory(std::ifstream& f, const std::string& path, std::uint64_t file_size) {
  auto bad = [&](const std::string& what) -> void {
    fail(errc::bad_file, path, "corrupt .npz (zip) archive: " + what);
  };
  if (file_size < eocd_size)
    fail(errc::bad_file, path, "not an .npz (zip) archive: too short (" + std::to_string(file_size) + " bytes)");

  // The end-of-central-directory record: the last 22 bytes unless the archive has a comment.
  const std::size_t tail_size =
      static_cast<std::size_t>(std::min<std::uint64_t>(file_size, eocd_size + max_zip_comment));
  const std::uint64_t tail_offset = file_size - tail_size;
  std::vector<std::uint8_t> tail(tail_size);
  read_at(f, path, tail_offset, tail.data(), tail_size);
  std::size_t eocd = std::string::npos;
  for (std::size_t i = tail_size - eocd_size + 1; i-- > 0;) {
    if (le32(&tail[i]) == sig_eocd && i + eocd_size + le16(&tail[i + 20]) == tail_size) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) {
    std::uint8_t head[4] = {0, 0, 0, 0};
    read_at(f, path, 0, head, 4);
    if (le32(head) != sig_local) fail(errc::bad_file, path, "not an .npz (zip) archive (bad signature)");
    bad("no end-of-central-directory record");
  }
  const std::uint8_t* e = &tail[eocd];
  const std::uint64_t eocd_offset = tail_offset + eocd;
  std::uint64_t disk = le16(e + 4), cd_disk = le16(e + 6), entries_here = le16(e + 8), entries = le16(e + 10);
  std::uint64_t cd_size = le32(e + 12), cd_offset = le32(e + 16);
  std::uint64_t cd_end_limit = eocd_offset;  // the central directory ends before the end records

  if (entries == 0xFFFF || entries_here == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_offset == 0xFFFFFFFFu ||
      disk == 0xFFFF || cd_disk == 0xFFFF) {
    if (eocd_offset < zip64_locator_size) bad("zip64 markers without a zip64 locator");
    std::uint8_t loc[zip64_locator_size];
    read_at(f, path, eocd_offset - zip64_locator_size, loc, zip64_locator_size);
    if (le32(loc) != sig_zip64_locator) bad("zip64 markers without a zip64 locator");
    const std::uint64_t z64_offset = le64(loc + 8);
    if (z64_offset > eocd_offset - zip64_locator_size ||
        eocd_offset - zip64_locator_size - z64_offset < zip64_eocd_size)
      bad("the zip64 end record lies outside the file");
    std::uint8_t z[zip64_eocd_size];
    read_at(f, path, z64_offset, z, zip64_eocd_size);
    if (le32(z) != sig_zip64_eocd) bad("bad zip64 end record signature");
    disk = le32(z + 16);
    cd_disk = le32(z + 20);
    entries_here = le64(z + 24);
    entries = le64(z + 32);
    cd_size = le64(z + 40);
    cd_offset = le64(z + 48);
    cd_end_limit = z64_offset;
  }
  if (disk != 0 || cd_disk != 0 || entries_here != entries) bad("multi-volume archives are not supported");
  if (cd_offset > cd_end_limit || cd_size > cd_end_limit - cd_offset)
    bad("the central directory (offset " + std::to_string(cd_offset) + ", " + std::to_string(cd_size) +
        " bytes) lies outside the file");
  if (entries > cd_size / central_header_size)
    bad(std::to_string(entries) + " entries cannot fit a central directory of " + std::to_string(cd_size) + " bytes");

  std::vector<std::uint8_t> cd(static_cast<std::size_t>(cd_size));
  if (!cd.empty()) read_at(f, path, cd_offset, cd.data(), cd.size());
  zip_directory dir;
  dir.file_size = file_size;
  dir.cd_offset = cd_offset;
  std::set<std::string> seen;
  std::size_t pos = 0;
  for (std::uint64_t i = 0; i < entries; ++i) {
    const std::string entry_where = "central directory entry " + std::to_string(i);
    if (cd.size() - pos < central_header_size) bad(entry_where + " is truncated");
    const std::uint8_t* c = &cd[pos];
    if (le32(c) != sig_central) bad(entry_where + " has a bad signature");
    zip_member m;
    m.flags = le16(c + 8);
    m.method = le16(c + 10);
    m.crc = le32(c + 16);
    m.compressed_size = le32(c + 20);
    m.size = le32(c + 24);
    const std::size_t name_len = le16(c + 28), extra_len = le16(c + 30), comment_len = le16(c + 32);
    const std::uint64_t disk_start = le16(c + 34);
    m.local_offset = le32(c + 42);
    if (cd.size() - pos - central_header_size < name_len + extra_len + comment_len) bad(entry_where + " is truncated");
    m.name.assign(reinterpret_cast<const char*>(c + central_header_size), name_len);
    // Zip64 extended information: the 64-bit values of the fields saturated above, in this order.
    const std::uint8_t* x = c + central_header_size + name_len;
    for (std::size_t xp = 0; xp + 4 <= extra_len;) {
      const std::uint16_t id = le16(x + xp), len = le16(x + xp + 2);
      if (xp + 4 + len > extra_len) bad(entry_where + " ('" + m.name + "') has a truncated extra field");
      if (id == 0x0001) {
        const std::uint8_t* v = x + xp + 4;
        std::size_t used = 0;
        auto take = [&](std::uint64_t& field) {
          if (used + 8 > len) bad(entry_where + " ('" + m.name + "') has a short zip64 field");
          field = le64(v + used);
          used += 8;
        };
        if (m.size == 0xFFFFFFFFu) take(m.size);
        if (m.compressed_size == 0xFFFFFFFFu) take(m.compressed_size);
        if (m.local_offset == 0xFFFFFFFFu) take(m.local_offset);
      }
      xp += 4 + len;
    }
    pos += central_header_size + name_len + extra_len + comment_len;
    if (disk_start != 0 && disk_start != 0xFFFF) bad("multi-volume archives are not supported");
    if (m.local_offset > cd_offset || m.compressed_size > cd_offset - m.local_offset)
      bad("member '" + m.name + "' (offset " + std::to_string(m.local_offset) + ", " +
          std::to_string(m.compressed_size) + " bytes) lies outside the archive data");
    if (!seen.insert(m.name).second) bad("member '" + m.name + "' appears twice");
    dir.members.push_back(std::move(m));
  }
  if (pos != cd.size()) bad("the central directory has " + std::to_string(cd.size() - pos) + " unexplained bytes");
  return dir;
}

bool is_npy_member(const zip_member& m) {
  return m.name.size() > 4 && m.name.compare(m.name.size() - 4, 4, ".npy") == 0;
}

std::string key_of(const zip_member& m) {
  return m.name.substr(0, m.name.size() - 4);
}

npy_array read_member(std::ifstream& f, const std::string& path, const zip_directory& dir, const zip_member& m) {
  const std::string where = path + " (member '" + m.name + "')";
  if (m.flags & 0x1u) fail(errc::bad_file, where, "encrypted members are not supported");
  if (m.method == method_deflated)
    fail(errc::bad_file, where,
         "compressed .npz (np.savez_compressed, deflate) is not supported; save it with np.savez");
  if (m.method != method_stored)
    fail(errc::bad_file, where, "unsupported zip compression method " + std::to_string(m.method));
  if (m.compressed_size != m.size)
    fail(errc::bad_file, where,
         "a stored member whose compressed size (" + std::to_string(m.compressed_size) + ") differs from its size (" +
             std::to_string(m.size) + ")");
  std::uint8_t lh[local_header_size];
  if (dir.cd_offset - m.local_offset < local_header_size) fail(errc::bad_file, where, "truncated local header");
  read_at(f, path, m.local_offset, lh, local_header_size);
  if (le32(lh) != sig_local) fail(errc::bad_file, where, "bad local header signature");
  const std::uint64_t name_len = le16(lh + 26), extra_len = le16(lh + 28);
  const std::uint64_t data_offset = m.local_offset + local_header_size + name_len + extra_len;
  if (data_offset > dir.cd_offset || m.size > dir.cd_offset - data_offset)
    fail(errc::bad_file, where, "the member data lies outside the archive data");
  std::string local_name(static_cast<std::size_t>(name_len), '\0');
  read_at(f, path, m.local_offset + local_header_size, local_name.data(), local_name.size());
  if (local_name != m.name)
    fail(errc::bad_file, where, "the local header names '" + local_name + "' (central directory mismatch)");
  crc32 crc;
  file_region region(f, where, data_offset, m.size, &crc);
  npy_array a = parse(region);
  if (crc.value() != m.crc) fail(errc::bad_file, where, "CRC-32 mismatch (the member is corrupt)");
  return a;
}

std::string member_file_name(const std::string& member) {
  if (member.size() > 4 && member.compare(member.size() - 4, 4, ".npy") == 0) return member;
  return member + ".npy";
}

}  // namespace

// ------------------------------------------------------------------------------------------------
std::string npy_array::shape_str() const {
  if (shape.empty()) return "scalar";
  std::string s;
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

npy_array parse_npy(const void* bytes, std::size_t size, const std::string& name) {
  memory_source src(bytes, size, name);
  return parse(src);
}

npy_array read_npy(const std::string& path) {
  std::uint64_t size = 0;
  std::ifstream f = open_for_reading(path, size);
  file_region src(f, path, 0, size, nullptr);
  return parse(src);
}

std::vector<std::string> list_npz(const std::string& path) {
  std::uint64_t size = 0;
  std::ifstream f = open_for_reading(path, size);
  const zip_directory dir = read_directory(f, path, size);
  std::vector<std::string> names;
  for (const zip_member& m : dir.members)
    if (is_npy_member(m)) names.push_back(key_of(m));
  return names;
}

std::vector<npz_entry> read_npz(const std::string& path) {
  std::uint64_t size = 0;
  std::ifstream f = open_for_reading(path, size);
  const zip_directory dir = read_directory(f, path, size);
  std::vector<npz_entry> out;
  for (const zip_member& m : dir.members) {
    if (!is_npy_member(m)) continue;  // numpy exposes other members as raw bytes; flowad has no use for them
    out.push_back({key_of(m), read_member(f, path, dir, m)});
  }
  return out;
}

npy_array read_npz_member(const std::string& path, const std::string& member) {
  std::uint64_t size = 0;
  std::ifstream f = open_for_reading(path, size);
  const zip_directory dir = read_directory(f, path, size);
  const std::string wanted = member_file_name(member);
  for (const zip_member& m : dir.members)
    if (m.name == wanted) return read_member(f, path, dir, m);
  throw error(errc::bad_file, path + ": the archive has no member '" + wanted + "'");
}

void write_npy(const std::string& path, span<const float> data, const std::vector<index_t>& shape) {
  const std::uint64_t n = checked_numel(shape, path);
  if (n != data.size())
    throw error(errc::invalid_argument,
                path + ": shape of " + std::to_string(n) + " elements for " + std::to_string(data.size()) + " values");
  const std::string header = npy_header_bytes(shape);
  write_atomically(path, [&](std::ofstream& f) {
    write_bytes(f, header.data(), header.size(), path);
    write_float_payload(f, data.data(), data.size(), path, nullptr);
  });
}

void write_npy(const std::string& path, const npy_array& array) {
  write_npy(path, span<const float>(array.data.data(), array.data.size()), array.shape);
}

void write_npz(const std::string& path, const std::vector<npz_entry>& entries) {
  struct planned {
    std::string name;
    std::string header;
    std::uint64_t size = 0;
    std::uint32_t crc = 0;
    std::uint64_t offset = 0;
  };
  std::vector<planned> plan;
  std::set<std::string> names;
  std::uint64_t offset = 0;
  for (const npz_entry& e : entries) {
    if (e.name.empty() || e.name.find_first_of(std::string("/\\\0", 3)) != std::string::npos)
      throw error(errc::invalid_argument, path + ": invalid .npz member name '" + e.name + "'");
    planned p;
    p.name = e.name + ".npy";
    if (!names.insert(p.name).second)
      throw error(errc::invalid_argument, path + ": member '" + e.name + "' given twice");
    if (p.name.size() > 0xFFFF) throw error(errc::invalid_argument, path + ": member name too long");
    const std::uint64_t n = checked_numel(e.array.shape, path + " (member '" + p.name + "')");
    if (n != e.array.data.size())
      throw error(errc::invalid_argument, path + " (member '" + p.name + "'): shape " + e.array.shape_str() + " for " +
                                              std::to_string(e.array.data.size()) + " values");
    p.header = npy_header_bytes(e.array.shape);
    p.size = p.header.size() + n * sizeof(float);
    crc32 crc;
    crc.update(p.header.data(), p.header.size());
    if (detail::host_is_little_endian()) {
      crc.update(e.array.data.data(), e.array.data.size() * sizeof(float));
    } else {
      for (float v : e.array.data) {
        std::uint8_t b[4];
        std::memcpy(b, &v, 4);
        std::reverse(b, b + 4);
        crc.update(b, 4);
      }
    }
    p.crc = crc.value();
    p.offset = offset;
    offset += local_header_size + p.name.size() + p.size;
    plan.push_back(std::move(p));
  }
  std::string central;
  for (const planned& p : plan) {
    put32(central, sig_central);
    put16(central, 20);  // made by: version 2.0
    put16(central, 20);  // needed: version 2.0
    put16(central, 0);   // flags
    put16(central, method_stored);
    put16(central, 0);             // time
    put16(central, (1 << 5) | 1);  // date 1980-01-01
    put32(central, p.crc);
    put32(central, static_cast<std::uint32_t>(p.size));
    put32(central, static_cast<std::uint32_t>(p.size));
    put16(central, static_cast<std::uint32_t>(p.name.size()));
    put16(central, 0);  // extra
    put16(central, 0);  // comment
    put16(central, 0);  // disk
    put16(central, 0);  // internal attributes
    put32(central, 0);  // external attributes
    put32(central, static_cast<std::uint32_t>(p.offset));
    central += p.name;
  }
  if (offset + central.size() > 0xFFFFFFFFu || plan.size() > 0xFFFE)
    throw error(errc::invalid_argument,
                path + ": archives of 4 GiB or 65535 members and more need zip64, which the writer does not produce");
  std::string end;
  put32(end, sig_eocd);
  put16(end, 0);
  put16(end, 0);
  put16(end, static_cast<std::uint32_t>(plan.size()));
  put16(end, static_cast<std::uint32_t>(plan.size()));
  put32(end, static_cast<std::uint32_t>(central.size()));
  put32(end, static_cast<std::uint32_t>(offset));
  put16(end, 0);

  write_atomically(path, [&](std::ofstream& f) {
    for (std::size_t i = 0; i < plan.size(); ++i) {
      const planned& p = plan[i];
      std::string local;
      put32(local, sig_local);
      put16(local, 20);
      put16(local, 0);
      put16(local, method_stored);
      put16(local, 0);
      put16(local, (1 << 5) | 1);
      put32(local, p.crc);
      put32(local, static_cast<std::uint32_t>(p.size));
      put32(local, static_cast<std::uint32_t>(p.size));
      put16(local, static_cast<std::uint32_t>(p.name.size()));
      put16(local, 0);
      local += p.name;
      local += p.header;
      write_bytes(f, local.data(), local.size(), path);
      write_float_payload(f, entries[i].array.data.data(), entries[i].array.data.size(), path, nullptr);
    }
    write_bytes(f, central.data(), central.size(), path);
    write_bytes(f, end.data(), end.size(), path);
  });
}

void write_npy(const std::string& path, const_view v) {
  if (v.n() < 0 || v.c() < 0 || v.h() < 0 || v.w() < 0)
    throw error(errc::invalid_argument, path + ": negative dimension in " + v.shape().str());
  const std::vector<index_t> shape = {v.n(), v.c(), v.h(), v.w()};
  if (v.is_dense(layout::nchw)) {
    write_npy(path, span<const float>(v.data(), static_cast<std::size_t>(v.numel())), shape);
    return;
  }
  tensor dense(v.shape(), layout::nchw);
  copy(v, dense.view());
  write_npy(path, span<const float>(dense.data(), static_cast<std::size_t>(dense.numel())), shape);
}

tensor to_tensor(const npy_array& array, const std::string& what, layout l) {
  if (array.shape.size() != 4)
    throw error(errc::bad_file, what + ": expected a 4-d N x C x H x W array, got shape " + array.shape_str() + " (" +
                                    std::to_string(array.shape.size()) + "-d)");
  const shape4 s{array.shape[0], array.shape[1], array.shape[2], array.shape[3]};
  tensor t(s, l);
  const const_view src(array.data.data(), s, layout::nchw);
  if (l == layout::nchw) {
    if (t.numel() > 0) std::memcpy(t.data(), array.data.data(), t.bytes());
  } else {
    copy(src, t.view());
  }
  return t;
}

tensor read_npy_tensor(const std::string& path, layout l) {
  return to_tensor(read_npy(path), path, l);
}

}  // namespace v0
}  // namespace flowad
