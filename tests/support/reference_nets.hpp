// Naive double-precision references for the extractors: direct convolution and pooling loops, and
// ResNet18 / MobileNetV2 / filter-bank forward passes written from torchvision's definitions (not
// from flowad's network builders), for the [extract] and [real-data] tests.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "flowad/detail/random.hpp"
#include "flowad/extract/extractor.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
namespace testing {
namespace ref {

// A dense NCHW double array.
struct map {
  index_t n = 0, c = 0, h = 0, w = 0;
  std::vector<double> v;
  map() = default;
  map(index_t n_, index_t c_, index_t h_, index_t w_)
      : n(n_), c(c_), h(h_), w(w_), v(static_cast<std::size_t>(n_ * c_ * h_ * w_), 0.0) {}
  double& at(index_t i, index_t j, index_t y, index_t x) {
    return v[static_cast<std::size_t>(((i * c + j) * h + y) * w + x)];
  }
  double at(index_t i, index_t j, index_t y, index_t x) const {
    return v[static_cast<std::size_t>(((i * c + j) * h + y) * w + x)];
  }
};

inline map from_view(const_view t) {
  map m(t.n(), t.c(), t.h(), t.w());
  for (index_t i = 0; i < t.n(); ++i)
    for (index_t j = 0; j < t.c(); ++j)
      for (index_t y = 0; y < t.h(); ++y)
        for (index_t x = 0; x < t.w(); ++x) m.at(i, j, y, x) = t(i, j, y, x);
  return m;
}

// out = conv(in, w) + b: w is O x (C / groups) x k x k, zero padding, floor output size (PyTorch's Conv2d).
inline map conv(const map& in, const std::vector<float>& w, const std::vector<float>& b, index_t out_channels,
                index_t k, index_t stride, index_t pad, index_t groups = 1) {
  const index_t oh = (in.h + 2 * pad - k) / stride + 1, ow = (in.w + 2 * pad - k) / stride + 1;
  const index_t in_per_group = in.c / groups, out_per_group = out_channels / groups;
  REQUIRE(w.size() == static_cast<std::size_t>(out_channels * in_per_group * k * k));
  map out(in.n, out_channels, oh, ow);
  for (index_t i = 0; i < in.n; ++i)
    for (index_t o = 0; o < out_channels; ++o) {
      const index_t g = o / out_per_group;
      for (index_t y = 0; y < oh; ++y)
        for (index_t x = 0; x < ow; ++x) {
          double acc = b.empty() ? 0.0 : static_cast<double>(b[static_cast<std::size_t>(o)]);
          for (index_t cc = 0; cc < in_per_group; ++cc) {
            const index_t ci = g * in_per_group + cc;
            for (index_t ky = 0; ky < k; ++ky) {
              const index_t yy = y * stride + ky - pad;
              if (yy < 0 || yy >= in.h) continue;
              for (index_t kx = 0; kx < k; ++kx) {
                const index_t xx = x * stride + kx - pad;
                if (xx < 0 || xx >= in.w) continue;
                acc += static_cast<double>(w[static_cast<std::size_t>(((o * in_per_group + cc) * k + ky) * k + kx)]) *
                       in.at(i, ci, yy, xx);
              }
            }
          }
          out.at(i, o, y, x) = acc;
        }
    }
  return out;
}

inline void relu(map& m) {
  for (double& x : m.v) x = std::max(x, 0.0);
}
inline void relu6(map& m) {
  for (double& x : m.v) x = std::min(std::max(x, 0.0), 6.0);
}
inline void add(map& m, const map& other) {
  REQUIRE(m.v.size() == other.v.size());
  for (std::size_t i = 0; i < m.v.size(); ++i) m.v[i] += other.v[i];
}

// Max pooling ignoring padding, and average pooling over the unpadded elements only.
inline map pool(const map& in, index_t k, index_t stride, index_t pad, bool is_max) {
  const index_t oh = (in.h + 2 * pad - k) / stride + 1, ow = (in.w + 2 * pad - k) / stride + 1;
  map out(in.n, in.c, oh, ow);
  for (index_t i = 0; i < in.n; ++i)
    for (index_t j = 0; j < in.c; ++j)
      for (index_t y = 0; y < oh; ++y)
        for (index_t x = 0; x < ow; ++x) {
          double best = -std::numeric_limits<double>::infinity(), sum = 0.0;
          int count = 0;
          for (index_t ky = 0; ky < k; ++ky)
            for (index_t kx = 0; kx < k; ++kx) {
              const index_t yy = y * stride + ky - pad, xx = x * stride + kx - pad;
              if (yy < 0 || yy >= in.h || xx < 0 || xx >= in.w) continue;
              best = std::max(best, in.at(i, j, yy, xx));
              sum += in.at(i, j, yy, xx);
              ++count;
            }
          out.at(i, j, y, x) = is_max ? best : sum / count;
        }
  return out;
}

// ---- torchvision ResNet18, conv1 .. layer3 (BatchNorm folded into conv biases) ------------------
inline std::vector<map> resnet18(const weight_map& w, const map& image) {
  auto cv = [&](const map& x, const std::string& name, index_t out, index_t k, index_t stride) {
    const npy_array& weight = w.at(name + ".weight");
    const npy_array& bias = w.at(name + ".bias");
    return conv(x, {weight.data.begin(), weight.data.end()}, {bias.data.begin(), bias.data.end()}, out, k, stride,
                k / 2);
  };
  map x = cv(image, "conv1", 64, 7, 2);
  relu(x);
  x = pool(x, 3, 2, 1, true);
  std::vector<map> levels;
  const index_t widths[3] = {64, 128, 256};
  for (int layer = 1; layer <= 3; ++layer) {
    for (int block = 0; block < 2; ++block) {
      const std::string b = "layer" + std::to_string(layer) + "." + std::to_string(block);
      const index_t stride = (layer > 1 && block == 0) ? 2 : 1;
      map y = cv(x, b + ".conv1", widths[layer - 1], 3, stride);
      relu(y);
      map z = cv(y, b + ".conv2", widths[layer - 1], 3, 1);
      if (layer > 1 && block == 0) {
        add(z, cv(x, b + ".downsample.0", widths[layer - 1], 1, 2));
      } else {
        add(z, x);
      }
      relu(z);
      x = std::move(z);
    }
    levels.push_back(x);
  }
  return levels;
}

// ---- torchvision MobileNetV2, features.0 .. features.13; levels after features.3, .6, .13 --------
inline std::vector<map> mobilenet_v2(const weight_map& w, const map& image) {
  auto cv = [&](const map& x, const std::string& name, index_t out, index_t k, index_t stride, index_t groups) {
    const npy_array& weight = w.at(name + ".weight");
    const npy_array& bias = w.at(name + ".bias");
    return conv(x, {weight.data.begin(), weight.data.end()}, {bias.data.begin(), bias.data.end()}, out, k, stride,
                (k - 1) / 2, groups);
  };
  map x = cv(image, "features.0.0", 32, 3, 2, 1);
  relu6(x);
  // torchvision's inverted_residual_setting: t, c, n, s
  const int setting[5][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}};
  std::vector<map> levels;
  int index = 1;
  index_t in = 32;
  for (const auto& s : setting) {
    for (int r = 0; r < s[2]; ++r, ++index) {
      const index_t stride = r == 0 ? s[3] : 1, hidden = in * s[0], out = s[1];
      const std::string p = "features." + std::to_string(index) + ".conv.";
      map y = x;
      int part = 0;
      if (s[0] != 1) {
        y = cv(y, p + "0.0", hidden, 1, 1, 1);
        relu6(y);
        part = 1;
      }
      y = cv(y, p + std::to_string(part) + ".0", hidden, 3, stride, hidden);
      relu6(y);
      y = cv(y, p + std::to_string(part + 1), out, 1, 1, 1);
      if (stride == 1 && in == out) add(y, x);
      x = std::move(y);
      in = out;
      if (index == 3 || index == 6 || index == 13) levels.push_back(x);
    }
  }
  return levels;
}

// ---- the filter bank as filterbank.hpp documents it, from its published filters ------------------
inline std::vector<map> filterbank(const weight_map& filters, const map& image) {
  const npy_array& pyr = filters.at("pyramid.weight");
  const std::vector<float> blur(pyr.data.begin(), pyr.data.end());
  auto bank = [&](const map& x, const std::string& name) {
    const npy_array& b = filters.at(name);
    map r = conv(x, {b.data.begin(), b.data.end()}, {}, b.shape[0], b.shape[2], 1, b.shape[2] / 2);
    relu(r);
    return pool(pool(r, 3, 2, 1, false), 3, 2, 1, false);
  };
  const map half = conv(image, blur, {}, 3, 5, 2, 2, 3);
  const map quarter = conv(half, blur, {}, 3, 5, 2, 2, 3);
  return {bank(image, "fine.weight"), bank(half, "coarse.weight"), bank(quarter, "coarse.weight")};
}

// max |got - want| / max |want| (the tolerance is relative to the output's scale).
inline double relative_error(const_view got, const map& want) {
  REQUIRE(got.n() == want.n);
  REQUIRE(got.c() == want.c);
  REQUIRE(got.h() == want.h);
  REQUIRE(got.w() == want.w);
  double err = 0.0, scale = 0.0;
  for (index_t i = 0; i < want.n; ++i)
    for (index_t j = 0; j < want.c; ++j)
      for (index_t y = 0; y < want.h; ++y)
        for (index_t x = 0; x < want.w; ++x) {
          err = std::max(err, std::abs(static_cast<double>(got(i, j, y, x)) - want.at(i, j, y, x)));
          scale = std::max(scale, std::abs(want.at(i, j, y, x)));
        }
  return scale > 0.0 ? err / scale : err;
}

// Random weights for a list of specs: He-normal weights (fan-in = product of all but the first
// dimension) and small normal biases, so activations stay of order one through deep networks.
inline weight_map random_weights(const std::vector<weight_spec>& specs, std::uint64_t seed) {
  detail::rng r(seed);
  weight_map m;
  for (const weight_spec& s : specs) {
    npy_array a;
    a.shape = s.shape;
    a.data.resize(static_cast<std::size_t>(a.numel()));
    index_t fan_in = 1;
    for (std::size_t d = 1; d < s.shape.size(); ++d) fan_in *= s.shape[d];
    const double scale = s.shape.size() == 1 ? 0.1 : std::sqrt(2.0 / static_cast<double>(fan_in));
    for (float& v : a.data) v = static_cast<float>(scale * r.normal());
    m.emplace(s.name, std::move(a));
  }
  return m;
}

inline tensor random_images(shape4 s, layout l, std::uint64_t seed) {
  tensor t(s, l);
  detail::rng r(seed);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(r.normal());
  return t;
}

}  // namespace ref
}  // namespace testing
}  // namespace flowad
