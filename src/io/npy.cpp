// NumPy .npy files: the header parser, the dtype conversions and the float32 writer. .npz archives
// are these inside the zip container of io/zip_archive.hpp. See include/flowad/io/npy.hpp for what is
// accepted.
//
// Reference: numpy/lib/format.py (the .npy format, versions 1.0-3.0).
#include "flowad/io/npy.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <system_error>

#include "io/byte_source.hpp"
#include "io/bytes.hpp"
#include "io/zip_archive.hpp"

namespace flowad {
inline namespace v0 {

namespace {

namespace fs = std::filesystem;
using detail::byte_source;
using detail::le16;
using detail::le32;
using detail::put16;
using detail::put32;

constexpr char npy_magic[] = "\x93NUMPY";
constexpr std::size_t npy_magic_size = 6;
constexpr int max_npy_dims = 64;                                // numpy 2.x's NPY_MAXDIMS
constexpr std::size_t max_header_bytes = std::size_t{1} << 20;  // numpy refuses headers above 10 000 bytes by default
constexpr std::size_t npy_header_alignment = 64;
constexpr std::size_t convert_chunk_bytes = std::size_t{1} << 20;

[[noreturn]] void fail(errc code, const std::string& where, const std::string& what) {
  throw error(code, where + ": " + what);
}

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
// Writing.
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
void write_float_payload(std::ostream& f, const float* data, std::size_t n, const std::string& path) {
  if (detail::host_is_little_endian()) {
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
    write_bytes(f, chunk.data(), chunk.size(), path);
  }
}

// ------------------------------------------------------------------------------------------------
// .npz members.
bool is_npy_member(const detail::zip_member& m) {
  return m.name.size() > 4 && m.name.compare(m.name.size() - 4, 4, ".npy") == 0;
}

std::string key_of(const detail::zip_member& m) {
  return m.name.substr(0, m.name.size() - 4);
}

npy_array read_member(detail::zip_reader& zip, const detail::zip_member& m) {
  const std::unique_ptr<detail::zip_member_reader> src = zip.open(m);
  npy_array a;
  try {
    a = parse(*src);
  } catch (const error&) {
    // A damaged member (a wrong size or CRC, a broken deflate stream) explains a malformed array
    // better than the parser can: its error wins when there is one.
    src->finish();
    throw;
  }
  src->finish();
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
  detail::memory_source src(bytes, size, name);
  return parse(src);
}

npy_array read_npy(const std::string& path) {
  std::uint64_t size = 0;
  std::ifstream f = detail::open_for_reading(path, size);
  detail::file_region src(f, path, 0, size);
  return parse(src);
}

std::vector<std::string> list_npz(const std::string& path) {
  const detail::zip_reader zip(path);
  std::vector<std::string> names;
  for (const detail::zip_member& m : zip.members())
    if (is_npy_member(m)) names.push_back(key_of(m));
  return names;
}

std::vector<npz_entry> read_npz(const std::string& path) {
  detail::zip_reader zip(path);
  std::vector<npz_entry> out;
  for (const detail::zip_member& m : zip.members()) {
    if (!is_npy_member(m)) continue;  // numpy exposes other members as raw bytes; flowad has no use for them
    out.push_back({key_of(m), read_member(zip, m)});
  }
  return out;
}

npy_array read_npz_member(const std::string& path, const std::string& member) {
  detail::zip_reader zip(path);
  const std::string wanted = member_file_name(member);
  for (const detail::zip_member& m : zip.members())
    if (m.name == wanted) return read_member(zip, m);
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
    write_float_payload(f, data.data(), data.size(), path);
  });
}

void write_npy(const std::string& path, const npy_array& array) {
  write_npy(path, span<const float>(array.data.data(), array.data.size()), array.shape);
}

void write_npz(const std::string& path, const std::vector<npz_entry>& entries) {
  std::vector<detail::stored_zip_layout::member> members;
  std::vector<std::string> headers;
  std::set<std::string> names;
  for (const npz_entry& e : entries) {
    if (e.name.empty() || e.name.find_first_of(std::string("/\\\0", 3)) != std::string::npos)
      throw error(errc::invalid_argument, path + ": invalid .npz member name '" + e.name + "'");
    detail::stored_zip_layout::member m;
    m.name = e.name + ".npy";
    if (!names.insert(m.name).second)
      throw error(errc::invalid_argument, path + ": member '" + e.name + "' given twice");
    const std::uint64_t n = checked_numel(e.array.shape, path + " (member '" + m.name + "')");
    if (n != e.array.data.size())
      throw error(errc::invalid_argument, path + " (member '" + m.name + "'): shape " + e.array.shape_str() + " for " +
                                              std::to_string(e.array.data.size()) + " values");
    headers.push_back(npy_header_bytes(e.array.shape));
    m.size = headers.back().size() + n * sizeof(float);
    // The CRC-32 of the bytes write_float_payload will write: little-endian floats.
    m.crc = detail::crc32(headers.back().data(), headers.back().size());
    if (detail::host_is_little_endian()) {
      m.crc = detail::crc32(e.array.data.data(), e.array.data.size() * sizeof(float), m.crc);
    } else {
      for (float v : e.array.data) {
        std::uint8_t b[4];
        std::memcpy(b, &v, 4);
        std::reverse(b, b + 4);
        m.crc = detail::crc32(b, 4, m.crc);
      }
    }
    members.push_back(std::move(m));
  }
  const detail::stored_zip_layout layout(path, std::move(members));

  write_atomically(path, [&](std::ofstream& f) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const std::string local = layout.local_header(i) + headers[i];
      write_bytes(f, local.data(), local.size(), path);
      write_float_payload(f, entries[i].array.data.data(), entries[i].array.data.size(), path);
    }
    write_bytes(f, layout.directory().data(), layout.directory().size(), path);
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
