// Reading and changing one metadata entry of a model file's contents, for tests of what load() refuses.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <optional>
#include <string>

#include "flowad/io/model_file.hpp"

namespace flowad {
namespace testing {

// The contents with the metadata entry `key` set to `value`, or removed (nullopt); the entry must exist.
inline model_file_contents with_entry(model_file_contents m, const std::string& key, const std::optional<std::string>& value) {
  const auto it = std::find_if(m.metadata.begin(), m.metadata.end(), [&](const auto& kv) { return kv.first == key; });
  REQUIRE(it != m.metadata.end());
  if (value)
    it->second = *value;
  else
    m.metadata.erase(it);
  return m;
}

}  // namespace testing
}  // namespace flowad
