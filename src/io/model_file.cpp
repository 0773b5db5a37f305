#include "flowad/io/model_file.hpp"

#include <array>
#include <cstring>
#include <limits>
#include <set>

#include "flowad/error.hpp"
#include "flowad/version.hpp"
#include "io/atomic_file.hpp"
#include "io/bytes.hpp"
#include "io/file_bytes.hpp"

namespace flowad {
inline namespace v0 {

namespace fs = std::filesystem;

namespace {

constexpr std::array<std::uint8_t, 8> magic{0x89, 'F', 'L', 'O', 'W', 'A', 'D', '\n'};
constexpr std::size_t header_size = 8 + 4 + 8;
constexpr std::size_t checksum_size = 4;
constexpr std::uint32_t max_string = 1u << 20;
constexpr std::uint32_t max_rank = 8;

static_assert(std::numeric_limits<float>::is_iec559, "model files store IEEE 754 floats");

class writer {
 public:
  void bytes(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
  template <class T>
  void scalar(T v) {
    bytes(&v, sizeof v);
  }
  void string(const std::string& s) {
    if (s.size() > max_string) throw error(errc::invalid_argument, "model file string longer than 1 MiB");
    scalar<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
    bytes(s.data(), s.size());
  }
  std::vector<std::uint8_t> out;
};

class reader {
 public:
  reader(const std::uint8_t* data, std::size_t size, const std::string& origin)
      : p_(data), end_(data + size), origin_(origin) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw error(errc::bad_file, origin_ + ": " + what);
  }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }
  void bytes(void* dst, std::size_t n, const char* what) {
    if (n > remaining()) fail(std::string("truncated while reading ") + what);
    if (n == 0) return;  // p_ is null for an empty file, and memcpy(null, ...) is undefined even for 0 bytes
    std::memcpy(dst, p_, n);
    p_ += n;
  }
  template <class T>
  T scalar(const char* what) {
    T v;
    bytes(&v, sizeof v, what);
    return v;
  }
  std::string string(const char* what) {
    const auto n = scalar<std::uint32_t>(what);
    if (n > max_string) fail(std::string(what) + " has an implausible length " + std::to_string(n));
    std::string s(n, '\0');
    bytes(s.data(), n, what);
    return s;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
  const std::string& origin_;
};

}  // namespace


const stored_tensor* model_file_contents::find_tensor(const std::string& name) const noexcept {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const stored_tensor& model_file_contents::tensor_named(const std::string& name) const {
  if (const stored_tensor* t = find_tensor(name)) return *t;
  throw error(errc::bad_file, "model file has no tensor '" + name + "'");
}

std::vector<std::uint8_t> encode_model(const model_file_contents& m) {
  if (!detail::host_is_little_endian()) throw error(errc::invalid_argument, "model files are written on little-endian hosts only");
  writer payload;
  payload.string(FLOWAD_VERSION_STRING);
  payload.string(m.kind);
  for (const auto* list : {&m.config.entries(), &m.metadata}) {
    payload.scalar<std::uint32_t>(static_cast<std::uint32_t>(list->size()));
    for (const auto& kv : *list) {
      payload.string(kv.first);
      payload.string(kv.second);
    }
  }
  payload.scalar<std::uint32_t>(static_cast<std::uint32_t>(m.tensors.size()));
  for (const stored_tensor& t : m.tensors) {
    payload.string(t.name);
    if (t.dims.size() > max_rank) throw error(errc::invalid_argument, "tensor " + t.name + " has rank above 8");
    payload.scalar<std::uint32_t>(static_cast<std::uint32_t>(t.dims.size()));
    std::uint64_t count = 1;
    for (index_t d : t.dims) {
      payload.scalar<std::uint64_t>(static_cast<std::uint64_t>(d));
      count *= static_cast<std::uint64_t>(d);
    }
    if (count != t.values.size())
      throw error(errc::invalid_argument, "tensor " + t.name + " has " + std::to_string(t.values.size()) +
                                              " values for dims of " + std::to_string(count));
    payload.scalar<std::uint64_t>(count);
    payload.bytes(t.values.data(), t.values.size() * sizeof(float));
  }

  writer file;
  file.bytes(magic.data(), magic.size());
  file.scalar<std::uint32_t>(model_file_format_version);
  file.scalar<std::uint64_t>(payload.out.size());
  file.bytes(payload.out.data(), payload.out.size());
  file.scalar<std::uint32_t>(detail::crc32(file.out.data(), file.out.size()));
  return std::move(file.out);
}

model_file_contents decode_model(const std::uint8_t* data, std::size_t size, const std::string& origin) {
  if (!detail::host_is_little_endian()) throw error(errc::bad_file, origin + ": model files are read on little-endian hosts only");
  if (size == 0) throw error(errc::bad_file, origin + ": the file is empty (not a flowad model file)");
  if (size < magic.size() || std::memcmp(data, magic.data(), magic.size()) != 0)
    throw error(errc::bad_file, origin + ": not a flowad model file (bad magic number)");
  if (size < header_size + checksum_size) throw error(errc::bad_file, origin + ": truncated header");
  reader head(data + magic.size(), header_size - magic.size(), origin);
  const auto version = head.scalar<std::uint32_t>("format version");
  if (version != model_file_format_version)
    throw error(errc::bad_file, origin + ": model format version " + std::to_string(version) +
                                    " is not supported by this flowad (reads version " +
                                    std::to_string(model_file_format_version) + ")");
  const auto payload_size = head.scalar<std::uint64_t>("payload size");
  if (payload_size != size - header_size - checksum_size)
    throw error(errc::bad_file, origin + ": the file is " + std::to_string(size) + " bytes but its header announces " +
                                    std::to_string(payload_size) + " payload bytes (truncated or extended)");
  std::uint32_t stored_crc;
  std::memcpy(&stored_crc, data + size - checksum_size, checksum_size);
  if (detail::crc32(data, size - checksum_size) != stored_crc)
    throw error(errc::bad_file, origin + ": checksum mismatch (the file is corrupt)");

  reader r(data + header_size, static_cast<std::size_t>(payload_size), origin);
  model_file_contents m;
  m.library_version = r.string("library version");
  m.kind = r.string("detector kind");
  for (const bool is_config : {true, false}) {
    const char* what = is_config ? "configuration" : "metadata";
    const auto count = r.scalar<std::uint32_t>(what);
    if (count > r.remaining() / 8) r.fail(std::string("implausible ") + what + " size " + std::to_string(count));
    std::set<std::string> keys;
    for (std::uint32_t i = 0; i < count; ++i) {
      std::string key = r.string(is_config ? "configuration key" : "metadata key");
      std::string value = r.string(is_config ? "configuration value" : "metadata value");
      if (!keys.insert(key).second) r.fail(std::string(what) + " key '" + key + "' appears twice");
      if (is_config) m.config.set(key, std::move(value));
      else m.metadata.emplace_back(std::move(key), std::move(value));
    }
  }
  const auto tensor_count = r.scalar<std::uint32_t>("tensor count");
  if (tensor_count > r.remaining() / 16) r.fail("implausible tensor count " + std::to_string(tensor_count));
  std::set<std::string> names;
  for (std::uint32_t i = 0; i < tensor_count; ++i) {
    stored_tensor t;
    t.name = r.string("tensor name");
    if (!names.insert(t.name).second) r.fail("tensor '" + t.name + "' appears twice");
    const auto rank = r.scalar<std::uint32_t>("tensor rank");
    if (rank > max_rank) r.fail("tensor '" + t.name + "' has rank " + std::to_string(rank));
    std::uint64_t count = 1;
    for (std::uint32_t d = 0; d < rank; ++d) {
      const auto dim = r.scalar<std::uint64_t>("tensor dimension");
      if (dim > (1ull << 40) || (dim != 0 && count > (std::numeric_limits<std::uint64_t>::max() / dim)))
        r.fail("tensor '" + t.name + "' has an implausible dimension");
      count *= dim;
      t.dims.push_back(static_cast<index_t>(dim));
    }
    const auto stored_count = r.scalar<std::uint64_t>("tensor size");
    if (stored_count != count) r.fail("tensor '" + t.name + "' size does not match its dimensions");
    if (count > r.remaining() / sizeof(float)) r.fail("truncated in tensor '" + t.name + "'");
    t.values.resize(static_cast<std::size_t>(count));
    r.bytes(t.values.data(), t.values.size() * sizeof(float), "tensor values");
    m.tensors.push_back(std::move(t));
  }
  if (r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " unexpected bytes after the last tensor");
  return m;
}

void write_model_file(const fs::path& path, const model_file_contents& contents) {
  detail::replace_file_atomically(path, encode_model(contents), "model");
}

model_file_contents read_model_file(const fs::path& path) {
  const std::vector<unsigned char> bytes = detail::read_file_bytes(path, "model file");
  return decode_model(bytes.data(), bytes.size(), path.string());
}

}  // namespace v0
}  // namespace flowad
