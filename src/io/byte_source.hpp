// Sequential byte sources for the file parsers: a region of a file or a memory buffer, read in
// order and never past their end. The .npy parser reads through this interface, so the same code
// parses a file, an image in memory and a member of an .npz archive (io/zip_archive.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

class byte_source {
 public:
  virtual ~byte_source() = default;
  virtual std::uint64_t remaining() const noexcept = 0;
  // Reads exactly n bytes; the caller has checked n <= remaining().
  virtual void read(void* dst, std::size_t n) = 0;
  // What error messages name: a file, or an archive and its member.
  const std::string& where() const noexcept { return where_; }

 protected:
  explicit byte_source(std::string where) : where_(std::move(where)) {}

 private:
  std::string where_;
};

// `size` bytes of an open file from `offset` on.
class file_region final : public byte_source {
 public:
  file_region(std::ifstream& file, std::string where, std::uint64_t offset, std::uint64_t size)
      : byte_source(std::move(where)), file_(file), remaining_(size) {
    file_.clear();
    file_.seekg(static_cast<std::streamoff>(offset));
    if (!file_) throw error(errc::io_error, this->where() + ": cannot seek to byte " + std::to_string(offset));
  }
  std::uint64_t remaining() const noexcept override { return remaining_; }
  void read(void* dst, std::size_t n) override {
    file_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (static_cast<std::size_t>(file_.gcount()) != n)
      throw error(errc::io_error, where() + ": read failed (" + std::to_string(file_.gcount()) + " of " +
                                      std::to_string(n) + " bytes)");
    remaining_ -= n;
  }

 private:
  std::ifstream& file_;
  std::uint64_t remaining_;
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

// Opens a file for binary reading and tells its size; errc::io_error naming it when it is missing,
// a directory or unreadable.
inline std::ifstream open_for_reading(const std::string& path, std::uint64_t& size) {
  namespace fs = std::filesystem;
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

}  // namespace detail
}  // namespace v0
}  // namespace flowad
