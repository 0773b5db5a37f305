// Text encoding of configuration values in model files: strict parsing, errors name the key.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "flowad/detector.hpp"
#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {
namespace codec {

[[noreturn]] inline void bad(const std::string& key, const std::string& value, const char* expected) {
  throw error(errc::bad_file, "model file configuration '" + key + "' = '" + value + "' is not " + expected);
}

inline std::string encode(index_t v) { return std::to_string(v); }
inline std::string encode(std::uint64_t v) { return std::to_string(v); }
inline std::string encode(bool v) { return v ? "true" : "false"; }
inline std::string encode(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
inline std::string encode(float v) { return encode(static_cast<double>(v)); }

inline index_t parse_index(const std::string& key, const std::string& value, index_t lo, index_t hi) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || v < lo || v > hi)
    bad(key, value, ("an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]").c_str());
  return static_cast<index_t>(v);
}

inline std::uint64_t parse_u64(const std::string& key, const std::string& value) {
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(value.c_str(), &end, 10);
  if (value.empty() || value[0] == '-' || *end != '\0' || errno != 0) bad(key, value, "an unsigned integer");
  return static_cast<std::uint64_t>(v);
}

inline double parse_double(const std::string& key, const std::string& value) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || errno != 0 || !std::isfinite(v)) bad(key, value, "a finite number");
  return v;
}

inline bool parse_bool(const std::string& key, const std::string& value) {
  if (value == "true") return true;
  if (value == "false") return false;
  bad(key, value, "true or false");
}

// "304x24x24,128x32x32"
inline std::string encode(const std::vector<scale_shape>& scales) {
  std::string out;
  for (const scale_shape& s : scales) {
    if (!out.empty()) out += ",";
    out += std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width);
  }
  return out;
}

inline std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, sep)) parts.push_back(part);
  if (!text.empty() && text.back() == sep) parts.emplace_back();
  return parts;
}

inline std::vector<scale_shape> parse_scales(const std::string& key, const std::string& value) {
  std::vector<scale_shape> scales;
  for (const std::string& item : split(value, ',')) {
    const std::vector<std::string> dims = split(item, 'x');
    if (dims.size() != 3) bad(key, value, "a list of CxHxW shapes");
    constexpr index_t limit = 1 << 20;
    scales.push_back({parse_index(key, dims[0], 1, limit), parse_index(key, dims[1], 1, limit),
                      parse_index(key, dims[2], 1, limit)});
  }
  if (scales.empty() || scales.size() > 16) bad(key, value, "a list of 1 to 16 CxHxW shapes");
  return scales;
}

inline std::string encode(const std::vector<index_t>& values) {
  std::string out;
  for (index_t v : values) out += (out.empty() ? "" : ",") + std::to_string(v);
  return out;
}

inline std::vector<index_t> parse_indices(const std::string& key, const std::string& value, index_t lo, index_t hi) {
  std::vector<index_t> values;
  for (const std::string& item : split(value, ',')) values.push_back(parse_index(key, item, lo, hi));
  if (values.empty() || values.size() > 64) bad(key, value, "a list of 1 to 64 integers");
  return values;
}

inline std::string encode(const std::vector<double>& values) {
  std::string out;
  for (double v : values) out += (out.empty() ? "" : ",") + encode(v);
  return out;
}

inline std::vector<double> parse_doubles(const std::string& key, const std::string& value) {
  std::vector<double> values;
  for (const std::string& item : split(value, ',')) values.push_back(parse_double(key, item));
  if (values.empty() || values.size() > 64) bad(key, value, "a list of 1 to 64 numbers");
  return values;
}

}  // namespace codec
}  // namespace v0
}  // namespace flowad
