// Naive double-precision references for the oneDNN paths: direct loops, no blocking, no tricks.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "flowad/parameter.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
namespace testing {

// A dense NCHW double array.
struct dtensor {
  index_t n = 0, c = 0, h = 0, w = 0;
  std::vector<double> v;
  dtensor() = default;
  dtensor(index_t n_, index_t c_, index_t h_, index_t w_)
      : n(n_), c(c_), h(h_), w(w_), v(static_cast<std::size_t>(n_ * c_ * h_ * w_), 0.0) {}
  double& at(index_t i, index_t j, index_t y, index_t x) { return v[static_cast<std::size_t>(((i * c + j) * h + y) * w + x)]; }
  double at(index_t i, index_t j, index_t y, index_t x) const {
    return v[static_cast<std::size_t>(((i * c + j) * h + y) * w + x)];
  }
};

// max |actual − expected| / max |expected|.
inline double relative_error(const_view actual, const dtensor& expected) {
  double diff = 0.0, scale = 0.0;
  for (index_t n = 0; n < actual.n(); ++n)
    for (index_t c = 0; c < actual.c(); ++c)
      for (index_t h = 0; h < actual.h(); ++h)
        for (index_t w = 0; w < actual.w(); ++w) {
          diff = std::max(diff, std::abs(actual(n, c, h, w) - expected.at(n, c, h, w)));
          scale = std::max(scale, std::abs(expected.at(n, c, h, w)));
        }
  return diff / std::max(scale, std::numeric_limits<double>::min());
}

inline dtensor to_double(const_view t, index_t c0 = 0, index_t count = -1) {
  if (count < 0) count = t.c() - c0;
  dtensor d(t.n(), count, t.h(), t.w());
  for (index_t i = 0; i < t.n(); ++i)
    for (index_t j = 0; j < count; ++j)
      for (index_t y = 0; y < t.h(); ++y)
        for (index_t x = 0; x < t.w(); ++x) d.at(i, j, y, x) = t(i, c0 + j, y, x);
  return d;
}

// Stride-1 convolution with zero padding k/2; weights OIHW; optional (leaky) ReLU with slope.
inline dtensor naive_conv(const dtensor& in, const parameter& weights, const parameter* bias, index_t out_channels,
                          index_t k, bool activate = false, double slope = 0.0) {
  dtensor out(in.n, out_channels, in.h, in.w);
  const index_t pad = k / 2;
  const float* wt = weights.data();
  for (index_t i = 0; i < in.n; ++i)
    for (index_t o = 0; o < out_channels; ++o)
      for (index_t y = 0; y < in.h; ++y)
        for (index_t x = 0; x < in.w; ++x) {
          double acc = bias ? bias->data()[o] : 0.0;
          for (index_t c = 0; c < in.c; ++c)
            for (index_t ky = 0; ky < k; ++ky)
              for (index_t kx = 0; kx < k; ++kx) {
                const index_t yy = y + ky - pad, xx = x + kx - pad;
                if (yy < 0 || yy >= in.h || xx < 0 || xx >= in.w) continue;
                acc += wt[((o * in.c + c) * k + ky) * k + kx] * in.at(i, c, yy, xx);
              }
          if (activate && acc < 0.0) acc *= slope;
          out.at(i, o, y, x) = acc;
        }
  return out;
}

}  // namespace testing
}  // namespace flowad
