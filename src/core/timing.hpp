// Wall-clock seconds for the timings reports carry.
#pragma once

#include <chrono>

namespace flowad {
inline namespace v0 {
namespace detail {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
