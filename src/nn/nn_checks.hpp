// Private to src/nn: argument checks shared by the teacher-student layers.
#pragma once

#include <string>

#include "flowad/error.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace nn {
namespace detail_checks {

inline void require_pointer(const void* p, const char* layer, const char* what) {
  if (!p) throw error(errc::invalid_argument, std::string(layer) + ": " + what + " is null");
}

inline void require_extents(index_t n, index_t h, index_t w, const char* layer) {
  if (n <= 0 || h <= 0 || w <= 0)
    throw error(errc::invalid_argument, std::string(layer) + ": batch and spatial sizes must be positive, got n " +
                                            std::to_string(n) + ", h " + std::to_string(h) + ", w " +
                                            std::to_string(w));
}

}  // namespace detail_checks
}  // namespace nn
}  // namespace v0
}  // namespace flowad
