// A double-precision reference of affine_coupling, written directly from its definition.
#pragma once

#include <cmath>

#include "flowad/layers/affine_coupling.hpp"
#include "support/layer_checks.hpp"
#include "support/naive.hpp"

namespace flowad {
namespace testing {

// The coupling written out directly from its definition, in double, with naive convolutions.
inline reference_output naive_coupling(affine_coupling& layer, const dtensor& xd) {
  const auto& cfg = layer.config();
  const auto& sizes = layer.groups();
  std::vector<index_t> offsets(sizes.size(), 0);
  for (std::size_t g = 1; g < sizes.size(); ++g) offsets[g] = offsets[g - 1] + sizes[g - 1];
  const std::vector<parameter*> ps = layer.parameters();
  struct {
    index_t n_, h_, w_;
    index_t n() const { return n_; }
    index_t h() const { return h_; }
    index_t w() const { return w_; }
  } x{xd.n, xd.h, xd.w};
  reference_output ref{xd, std::vector<double>(static_cast<std::size_t>(x.n()), 0.0)};
  const double slope = cfg.activation == subnet_activation::relu ? 0.0 : cfg.negative_slope;
  for (std::size_t k = 0; k + 1 < sizes.size(); ++k) {
    const double gamma = cfg.learn_gain ? ps.back()->data()[k] : cfg.gain_init;
    const index_t out = sizes[k + 1];
    dtensor in(x.n(), sizes[k], x.h(), x.w());
    for (index_t i = 0; i < x.n(); ++i)
      for (index_t j = 0; j < sizes[k]; ++j)
        for (index_t y = 0; y < x.h(); ++y)
          for (index_t xx = 0; xx < x.w(); ++xx) in.at(i, j, y, xx) = ref.y.at(i, offsets[k] + j, y, xx);
    const dtensor hidden = naive_conv(in, *ps[4 * k], ps[4 * k + 1], cfg.hidden, cfg.kernel, true, slope);
    const dtensor raw = naive_conv(hidden, *ps[4 * k + 2], ps[4 * k + 3], 2 * out, cfg.kernel);
    for (index_t i = 0; i < x.n(); ++i)
      for (index_t j = 0; j < out; ++j)
        for (index_t y = 0; y < x.h(); ++y)
          for (index_t xx = 0; xx < x.w(); ++xx) {
            const double phi = cfg.clamp.apply(gamma * raw.at(i, j, y, xx));
            const double t = gamma * raw.at(i, out + j, y, xx);
            ref.y.at(i, offsets[k + 1] + j, y, xx) = xd.at(i, offsets[k + 1] + j, y, xx) * std::exp(phi) + t;
            ref.logdet[static_cast<std::size_t>(i)] += phi;
          }
  }
  return ref;
}

inline reference_output naive_coupling(affine_coupling& layer, const_view x) {
  return naive_coupling(layer, to_double(x));
}

inline reference_forward reference_of(affine_coupling& layer) {
  return [&layer](const_view x) { return naive_coupling(layer, x); };
}

}  // namespace testing
}  // namespace flowad
