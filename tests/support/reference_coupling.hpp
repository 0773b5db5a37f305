// A double-precision reference of affine_coupling, written directly from its definition.
#pragma once

#include <cmath>

#include "flowad/layers/affine_coupling.hpp"
#include "flowad/layers/all_in_one_block.hpp"
#include "support/layer_checks.hpp"
#include "support/naive.hpp"

namespace flowad {
namespace testing {

// The coupling written out directly from its definition, in double, with naive convolutions; a
// conditional coupling's first subnet reads [x_1 | condition].
inline reference_output naive_coupling(affine_coupling& layer, const dtensor& xd, const dtensor* condition = nullptr) {
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
    const index_t extra = k == 0 && condition ? condition->c : 0;
    dtensor in(x.n(), sizes[k] + extra, x.h(), x.w());
    for (index_t i = 0; i < x.n(); ++i)
      for (index_t j = 0; j < sizes[k] + extra; ++j)
        for (index_t y = 0; y < x.h(); ++y)
          for (index_t xx = 0; xx < x.w(); ++xx)
            in.at(i, j, y, xx) = j < sizes[k] ? ref.y.at(i, offsets[k] + j, y, xx) : condition->at(i, j - sizes[k], y, xx);
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

// all_in_one_block from its definition, in double: naive coupling, then Ψ(g)·y + offset (softplus),
// then out(:, c) = in(:, perm[c]).
inline reference_output naive_block(all_in_one_block& block, const_view x, const dtensor* condition = nullptr) {
  reference_output coupled = naive_coupling(block.coupling(), to_double(x), condition);
  const dtensor& y = coupled.y;
  reference_output ref{dtensor(y.n, y.c, y.h, y.w), coupled.logdet};
  const float* g = block.affine().global_scale().data();
  const float* t = block.affine().global_offset().data();
  const std::vector<index_t>& perm = block.permutation().permutation();
  double log_psi = 0.0;
  for (index_t c = 0; c < y.c; ++c) log_psi += std::log(0.2 * std::log1p(std::exp(0.5 * g[c])));
  for (double& v : ref.logdet) v += static_cast<double>(y.h * y.w) * log_psi;
  for (index_t n = 0; n < y.n; ++n)
    for (index_t c = 0; c < y.c; ++c) {
      const index_t from = perm[static_cast<std::size_t>(c)];
      const double psi = 0.2 * std::log1p(std::exp(0.5 * static_cast<double>(g[from])));
      for (index_t h = 0; h < y.h; ++h)
        for (index_t w = 0; w < y.w; ++w) ref.y.at(n, c, h, w) = y.at(n, from, h, w) * psi + t[from];
    }
  return ref;
}

inline reference_forward reference_of(affine_coupling& layer) {
  return [&layer](const_view x) { return naive_coupling(layer, x); };
}

}  // namespace testing
}  // namespace flowad
