// Mathematical constants the library's sources share (C++17 has no std::numbers).
#pragma once

namespace flowad {
inline namespace v0 {
namespace detail {

inline constexpr double pi = 3.14159265358979323846;

}  // namespace detail
}  // namespace v0
}  // namespace flowad
