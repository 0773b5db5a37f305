#include "flowad/detector_config.hpp"

#include <algorithm>

namespace flowad {
inline namespace v0 {

detector_config::detector_config(std::initializer_list<entry> entries) {
  for (const entry& e : entries) set(e.first, e.second);
}

const std::string* detector_config::find(const std::string& key) const noexcept {
  for (const entry& e : entries_)
    if (e.first == key) return &e.second;
  return nullptr;
}

const std::string& detector_config::at(const std::string& key) const {
  if (const std::string* value = find(key)) return *value;
  throw error(errc::invalid_argument, "the configuration has no setting '" + key + "'");
}

void detector_config::set(const std::string& key, std::string value) {
  for (entry& e : entries_)
    if (e.first == key) {
      e.second = std::move(value);
      return;
    }
  entries_.emplace_back(key, std::move(value));
}

void detector_config::update(const detector_config& overrides) {
  for (const entry& e : overrides.entries_) {
    if (!has(e.first)) {
      std::string known;
      for (const entry& k : entries_) known += (known.empty() ? "" : ", ") + k.first;
      throw error(errc::invalid_argument, "unknown setting '" + e.first + "' (this detector's settings: " + known + ")");
    }
    set(e.first, e.second);
  }
}

detector_config::entry detector_config::parse_assignment(const std::string& text) {
  const std::size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw error(errc::invalid_argument, "a setting is written key=value, got '" + text + "'");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

namespace detail {

detector_config config_writer::take() {
  detector_config out;
  for (auto& [key, value] : entries_) out.set(key, std::move(value));
  entries_.clear();
  return out;
}

const std::string& config_reader::value_of(const char* key) {
  read_.emplace_back(key);
  if (const std::string* value = text_.find(key)) return *value;
  throw error(code_, "the configuration lacks the setting '" + std::string(key) + "'");
}

void config_reader::finish() const {
  for (const auto& [key, value] : text_.entries())
    if (std::find(read_.begin(), read_.end(), key) == read_.end())
      throw error(code_, "unknown setting '" + key + "' = '" + value + "'");
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
