// The field visitors behind to_detector_config() and from_detector_config(): a typed configuration
// lists its fields once,
//
//   template <class Fields> void fields(Fields& f) {
//     f("groups", groups);                      // integers, floats, bool, strings, lists of numbers
//     f("clamp", clamp.kind, clamp_kind_names);  // enumerations, with their names
//     f("scales", scales);                       // other types: ADL to_config_text / parse_config_text
//   }
//
// and config_writer turns it into text while config_reader parses it back. Values are parsed
// strictly (the whole text, finite numbers); ranges are the configuration's validate()'s business.
#pragma once

#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {

class detector_config;

namespace detail {

// Number <-> text: the shortest decimal that reads back as the same value ("0.1" for 0.1f, not
// "0.100000001"; "90", not "9e+01"; "1e+12", not "1000000000000").
template <class T>
std::string number_text(T v) {
  static_assert(std::is_floating_point_v<T>, "number_text formats floats and doubles");
  char buf[64];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(v));
    if (static_cast<T>(std::strtod(buf, nullptr)) == v) break;
  }
  const double d = static_cast<double>(v);
  if (d > -1e17 && d < 1e17 && d == static_cast<double>(static_cast<long long>(d)) && !(d == 0.0 && std::signbit(d))) {
    char whole[32];
    std::snprintf(whole, sizeof whole, "%lld", static_cast<long long>(d));
    if (std::strlen(whole) <= std::strlen(buf)) return whole;
  }
  return buf;
}

// Splits on `sep`; "" gives no parts, "a," gives {"a", ""}.
inline std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  if (text.empty()) return parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = text.find(sep, start);
    parts.push_back(text.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return parts;
    start = at + 1;
  }
}

// The inverse of split: the parts with `sep` between them.
inline std::string join(const std::vector<std::string>& parts, char sep) {
  std::string text;
  for (const std::string& part : parts) {
    if (&part != &parts.front()) text += sep;
    text += part;
  }
  return text;
}

// Strict parses: the whole text, or false.
inline bool parse_integer(const std::string& text, long long& out) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtoll(text.c_str(), &end, 10);
  return *end == '\0' && errno == 0;
}
inline bool parse_unsigned(const std::string& text, unsigned long long& out) {
  if (text.empty() || text[0] == '-' || text[0] == '+' || std::isspace(static_cast<unsigned char>(text[0]))) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtoull(text.c_str(), &end, 10);
  return *end == '\0' && errno == 0;
}
inline bool parse_real(const std::string& text, double& out) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return *end == '\0' && errno == 0 && std::isfinite(out);
}

// A field whose text does not parse: "setting 'groups' = 'x' is not an integer".
[[noreturn]] inline void bad_setting(errc code, const std::string& key, const std::string& value, const std::string& expected) {
  throw error(code, "setting '" + key + "' = '" + value + "' is not " + expected);
}

template <class T>
using enum_names = std::vector<std::pair<T, const char*>>;

// The name of an enumerator in its table.
template <class E, class Names>
const char* enum_name(E value, const Names& names) {
  for (const auto& [v, name] : names)
    if (v == value) return name;
  return "?";
}

// Parses one value of type T from text (used for scalars and list items).
template <class T>
void parse_value(errc code, const std::string& key, const std::string& text, T& out) {
  if constexpr (std::is_same_v<T, bool>) {
    if (text == "true") out = true;
    else if (text == "false") out = false;
    else bad_setting(code, key, text, "true or false");
  } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    long long v = 0;
    if (!parse_integer(text, v) || v < static_cast<long long>(std::numeric_limits<T>::min()) ||
        v > static_cast<long long>(std::numeric_limits<T>::max()))
      bad_setting(code, key, text, "an integer");
    out = static_cast<T>(v);
  } else if constexpr (std::is_integral_v<T>) {
    unsigned long long v = 0;
    if (!parse_unsigned(text, v) || v > static_cast<unsigned long long>(std::numeric_limits<T>::max()))
      bad_setting(code, key, text, "an unsigned integer");
    out = static_cast<T>(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    double v = 0;
    // A double beyond the type's range would not convert (undefined behaviour for float).
    if (!parse_real(text, v) || std::abs(v) > static_cast<double>(std::numeric_limits<T>::max()))
      bad_setting(code, key, text, "a finite number");
    out = static_cast<T>(v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    out = text;
  } else {
    parse_config_text(code, key, text, out);  // ADL customisation point
  }
}

template <class T>
std::string value_text(const T& v) {
  if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
  else if constexpr (std::is_integral_v<T>) return std::to_string(v);
  else if constexpr (std::is_floating_point_v<T>) return number_text(v);
  else if constexpr (std::is_same_v<T, std::string>) return v;
  else return to_config_text(v);  // ADL customisation point
}

// std::vector of numbers (or bools): written as a comma-separated list.
template <class T>
struct is_number_list : std::false_type {};
template <class T, class A>
struct is_number_list<std::vector<T, A>> : std::is_arithmetic<T> {};

// Writes each field as text, in order.
class config_writer {
 public:
  template <class T>
  void operator()(const char* key, const T& value) {
    if constexpr (is_number_list<T>::value) {
      std::string text;
      for (const auto& item : value) text += (text.empty() ? "" : ",") + value_text(item);
      add(key, std::move(text));
    } else {
      add(key, value_text(value));
    }
  }
  template <class E>
  void operator()(const char* key, const E& value, const enum_names<E>& names) {
    add(key, enum_name(value, names));
  }
  detector_config take();

 private:
  void add(const char* key, std::string value) { entries_.emplace_back(key, std::move(value)); }
  std::vector<std::pair<std::string, std::string>> entries_;
};

// Parses each field from the text, in order; finish() rejects keys no field asked for.
class config_reader {
 public:
  config_reader(const detector_config& text, errc code) : text_(text), code_(code) {}

  template <class T>
  void operator()(const char* key, T& value) {
    const std::string& text = value_of(key);
    if constexpr (is_number_list<T>::value) {
      value.clear();
      for (const std::string& item : split(text, ',')) {
        typename T::value_type v{};
        parse_value(code_, key, item, v);
        value.push_back(v);
      }
    } else {
      parse_value(code_, key, text, value);
    }
  }
  template <class E>
  void operator()(const char* key, E& value, const enum_names<E>& names) {
    const std::string& text = value_of(key);
    std::string known;
    for (const auto& [v, name] : names) {
      if (text == name) {
        value = v;
        return;
      }
      known += (known.empty() ? "" : ", ") + std::string(name);
    }
    bad_setting(code_, key, text, "one of " + known);
  }
  void finish() const;

 private:
  const std::string& value_of(const char* key);
  const detector_config& text_;
  errc code_;
  std::vector<std::string> read_;
};

}  // namespace detail
}  // namespace v0
}  // namespace flowad
