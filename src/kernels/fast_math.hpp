// Branch-free float exp, atan and tanh that compilers vectorise (std:: versions are calls into libm
// that block vectorisation without -ffast-math). Accuracy: a few ulp over the whole float range,
// checked against std:: in tests/unit/test_fast_math.cpp. Private to src/.
#pragma once

#include <cstdint>
#include <cstring>

namespace flowad {
inline namespace v0 {
namespace kernels {

inline float bits_to_float(std::uint32_t u) noexcept {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// exp(x), Cephes-style: x = n·ln2 + r with |r| <= ln2/2, a degree-6 polynomial for exp(r), and 2^n
// built in the exponent bits. Saturates to 0 below -87.3 and to +inf above 88.7; NaN stays NaN.
inline float fast_exp(float x) noexcept {
  constexpr float hi = 88.7228391f, lo = -87.3365448f;
  const bool overflow = x > hi;
  const bool is_nan = x != x;
  // NaN maps to lo here (so the integer conversion below stays defined) and is restored at the end.
  x = x >= lo ? (x <= hi ? x : hi) : lo;
  constexpr float log2e = 1.44269504088896341f;
  const float fn = __builtin_floorf(x * log2e + 0.5f);
  // ln2 split in two so that x - n·ln2 is exact to float precision.
  constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  float r = x - fn * ln2_hi;
  r = r - fn * ln2_lo;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  // 2^n for n in [-126, 128]: build the exponent; n = 128 only at the clamp, handled as overflow.
  const int n = static_cast<int>(fn);
  const int e = (n < -126 ? -126 : (n > 127 ? 127 : n)) + 127;
  const float scale = bits_to_float(static_cast<std::uint32_t>(e) << 23);
  const float result = p * scale;
  return is_nan ? __builtin_nanf("") : (overflow ? __builtin_inff() : (x <= lo ? 0.0f : result));
}

// atan(x), Cephes atanf: reduce by symmetry to x >= 0, then to [0, tan(pi/8)] via x > tan(3pi/8) ->
// pi/2 + atan(-1/x) and x > tan(pi/8) -> pi/4 + atan((x-1)/(x+1)); odd polynomial of degree 9.
inline float fast_atan(float x) noexcept {
  const float sign = x < 0.0f ? -1.0f : 1.0f;
  float a = x * sign;
  constexpr float tan3pi8 = 2.414213562373095f, tanpi8 = 0.4142135623730950f;
  constexpr float pio2 = 1.5707963267948966f, pio4 = 0.7853981633974483f;
  const bool big = a > tan3pi8;
  const bool mid = !big && a > tanpi8;
  const float base = big ? pio2 : (mid ? pio4 : 0.0f);
  // Division guarded so that no lane computes 1/0 (a = 0 only reaches the plain branch).
  const float num = big ? -1.0f : (mid ? a - 1.0f : a);
  const float den = big ? a : (mid ? a + 1.0f : 1.0f);
  a = num / den;
  const float z = a * a;
  float p = 8.05374449538e-2f;
  p = p * z - 1.38776856032e-1f;
  p = p * z + 1.99777106478e-1f;
  p = p * z - 3.33329491539e-1f;
  const float result = base + (p * z * a + a);
  return sign * result;
}

// tanh(x), Cephes tanhf: an odd polynomial for |x| < 0.625, 1 - 2/(exp(2|x|) + 1) beyond.
inline float fast_tanh(float x) noexcept {
  const float sign = x < 0.0f ? -1.0f : 1.0f;
  const float a = x * sign;
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float e = fast_exp(2.0f * (a > 10.0f ? 10.0f : a));  // tanh(10) rounds to 1 in float
  const float large = sign * (1.0f - 2.0f / (e + 1.0f));
  return a < 0.625f ? small : large;
}

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
