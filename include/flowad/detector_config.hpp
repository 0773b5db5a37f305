// A detector's configuration as ordered key/value text: what make_detector() takes, what a model file
// stores, what `flowad fit --set key=value` edits and what `flowad info` prints.
//
// Every detector also has a typed configuration (msflow_config, fastflow_config, ...) for C++ code;
// each lists its fields once, in a fields() member template, and to_detector_config() /
// from_detector_config() convert between the two through that list (flowad/detail/config_fields.hpp).
#pragma once

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {

class detector_config {
 public:
  using entry = std::pair<std::string, std::string>;

  detector_config() = default;
  detector_config(std::initializer_list<entry> entries);

  const std::vector<entry>& entries() const noexcept { return entries_; }
  bool empty() const noexcept { return entries_.empty(); }
  bool has(const std::string& key) const noexcept { return find(key) != nullptr; }
  // nullptr when the key is absent.
  const std::string* find(const std::string& key) const noexcept;
  // Throws errc::invalid_argument naming the key when it is absent.
  const std::string& at(const std::string& key) const;
  // Replaces the value of `key`, or appends the entry.
  void set(const std::string& key, std::string value);

  // Applies `overrides` entry by entry. Every key must already be present: a key that is not throws
  // errc::invalid_argument naming it and listing the known keys (a typo never goes unnoticed).
  void update(const detector_config& overrides);

  // "key=value" -> {key, value}; throws errc::invalid_argument for text without '=' or an empty key.
  static entry parse_assignment(const std::string& text);

  friend bool operator==(const detector_config& a, const detector_config& b) { return a.entries_ == b.entries_; }
  friend bool operator!=(const detector_config& a, const detector_config& b) { return !(a == b); }

 private:
  std::vector<entry> entries_;
};

}  // namespace v0
}  // namespace flowad

#include "flowad/detail/config_fields.hpp"

namespace flowad {
inline namespace v0 {

// The text form of a typed configuration: one entry per field, in the order fields() lists them.
template <class Config>
detector_config to_detector_config(const Config& config) {
  detail::config_writer writer;
  const_cast<Config&>(config).fields(writer);  // the writer only reads
  return writer.take();
}

// The typed configuration held by `text`, validated (Config::validate()). Every field must be present
// and no other key: errors are thrown with `code` (errc::invalid_argument for user input,
// errc::bad_file for model files), naming the key and the value.
template <class Config>
Config from_detector_config(const detector_config& text, errc code = errc::invalid_argument) {
  Config config;
  detail::config_reader reader(text, code);
  config.fields(reader);
  reader.finish();
  try {
    config.validate();
  } catch (const error& e) {
    if (e.code() == code) throw;
    throw error(code, e.message());
  }
  return config;
}

}  // namespace v0
}  // namespace flowad
