// Whole-file reads and writes with flowad's error conventions, shared by the image I/O sources.
#pragma once

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// "path" in double quotes, for messages.
inline std::string quoted(const std::filesystem::path& path) {
  return "\"" + path.string() + "\"";
}

// Reads a regular file into memory. errc::io_error when it is missing, not a regular file or
// unreadable; `what` names the kind of file in the message ("image", "mask").
inline std::vector<unsigned char> read_file_bytes(const std::filesystem::path& path, const char* what) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status))
    throw error(errc::io_error, std::string("cannot read ") + what + " " + quoted(path) + ": no such file");
  if (std::filesystem::is_directory(status))
    throw error(errc::io_error, std::string("cannot read ") + what + " " + quoted(path) + ": it is a directory");
  if (!std::filesystem::is_regular_file(status))
    throw error(errc::io_error, std::string("cannot read ") + what + " " + quoted(path) + ": not a regular file");

  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int saved = errno;
    throw error(errc::io_error, std::string("cannot open ") + what + " " + quoted(path) + ": " +
                                    std::generic_category().message(saved));
  }
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (!in || size < 0) throw error(errc::io_error, std::string("cannot read ") + what + " " + quoted(path));
  std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    throw error(errc::io_error, std::string("cannot read ") + what + " " + quoted(path) + ": read " +
                                    std::to_string(in.gcount()) + " of " + std::to_string(size) + " bytes");
  return bytes;
}

// Writes bytes to a file, replacing it. errc::io_error on any failure.
inline void write_file_bytes(const std::filesystem::path& path, const std::vector<unsigned char>& bytes,
                             const char* what) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    const int saved = errno;
    throw error(errc::io_error, std::string("cannot create ") + what + " " + quoted(path) + ": " +
                                    std::generic_category().message(saved));
  }
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw error(errc::io_error, std::string("cannot write ") + what + " " + quoted(path));
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
