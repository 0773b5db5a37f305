// Generated feature maps for detector tests: normal maps are a fixed random smooth field plus noise;
// anomalous maps carry local patches drawn from another distribution.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "flowad/detail/random.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
namespace testing {

struct feature_dataset {
  tensor train;              // N x C x S x S, normal only
  tensor test;               // M x C x S x S
  std::vector<int> labels;   // 1 = anomalous
  tensor masks;              // M x 1 x S x S, 1 inside anomalous patches
};

// Draws train_count normal training maps, then normal_count normal and anomalous_count anomalous test
// maps, with normal_sample(tensor, n); each anomalous map then gets one patch x patch square at a random
// place: start_patch(r) is called once per square and returns the change made to each of its cells,
// change(tensor, n, y, x), after the cell's mask is set.
template <class NormalSample, class StartPatch>
feature_dataset assemble_feature_dataset(index_t channels, index_t size, index_t train_count, index_t normal_count,
                                         index_t anomalous_count, index_t patch, detail::rng& r,
                                         NormalSample normal_sample, StartPatch start_patch) {
  feature_dataset d;
  d.train = tensor({train_count, channels, size, size});
  for (index_t n = 0; n < train_count; ++n) normal_sample(d.train, n);
  const index_t total = normal_count + anomalous_count;
  d.test = tensor({total, channels, size, size});
  d.masks = tensor({total, 1, size, size});
  d.masks.fill(0.0f);
  for (index_t n = 0; n < total; ++n) {
    normal_sample(d.test, n);
    const bool anomalous = n >= normal_count;
    d.labels.push_back(anomalous ? 1 : 0);
    if (!anomalous) continue;
    const index_t y0 = static_cast<index_t>(r.below(static_cast<std::uint64_t>(size - patch + 1)));
    const index_t x0 = static_cast<index_t>(r.below(static_cast<std::uint64_t>(size - patch + 1)));
    auto change = start_patch(r);
    for (index_t y = y0; y < y0 + patch; ++y)
      for (index_t x = x0; x < x0 + patch; ++x) {
        d.masks(n, 0, y, x) = 1.0f;
        change(d.test, n, y, x);
      }
  }
  return d;
}

inline feature_dataset make_feature_dataset(index_t channels, index_t size, index_t train_count, index_t normal_count,
                                            index_t anomalous_count, std::uint64_t seed, float noise = 0.3f,
                                            index_t patch = 4) {
  detail::rng r(seed);
  patch = std::min(patch, size);
  // The field: per channel a sum of three random plane waves, and channel correlations through a
  // shared component, so that the flow has structure to learn.
  const std::size_t plane = static_cast<std::size_t>(size * size);
  std::vector<float> field(static_cast<std::size_t>(channels) * plane);
  std::vector<float> shared(plane);
  auto waves = [&](std::vector<float>& out, std::size_t offset) {
    for (int k = 0; k < 3; ++k) {
      const double fy = r.uniform(0.1, 0.7), fx = r.uniform(0.1, 0.7), phase = r.uniform(0.0, 6.28), amp = r.uniform(0.3, 0.8);
      for (index_t y = 0; y < size; ++y)
        for (index_t x = 0; x < size; ++x)
          out[offset + static_cast<std::size_t>(y * size + x)] += static_cast<float>(amp * std::sin(fy * y + fx * x + phase));
    }
  };
  waves(shared, 0);
  for (index_t c = 0; c < channels; ++c) {
    waves(field, static_cast<std::size_t>(c) * plane);
    const float mix = static_cast<float>(r.uniform(-1.0, 1.0));
    for (std::size_t i = 0; i < plane; ++i) field[static_cast<std::size_t>(c) * plane + i] += mix * shared[i];
  }
  auto normal_sample = [&](tensor& t, index_t n) {
    for (index_t c = 0; c < channels; ++c)
      for (index_t y = 0; y < size; ++y)
        for (index_t x = 0; x < size; ++x)
          t(n, c, y, x) = field[static_cast<std::size_t>(c) * plane + static_cast<std::size_t>(y * size + x)] +
                          noise * static_cast<float>(r.normal());
  };
  // A patch whose channel vector comes from another distribution: a random direction, scaled.
  auto start_patch = [channels](detail::rng& rr) {
    std::vector<float> offset(static_cast<std::size_t>(channels));
    for (float& o : offset) o = static_cast<float>(1.2 * rr.normal());
    return [offset, channels](tensor& t, index_t n, index_t y, index_t x) {
      for (index_t c = 0; c < channels; ++c) t(n, c, y, x) += offset[static_cast<std::size_t>(c)];
    };
  };
  return assemble_feature_dataset(channels, size, train_count, normal_count, anomalous_count, patch, r, normal_sample,
                                  start_patch);
}

// Feature maps whose channels are correlated: at every position the C channels are two shared latent
// factors mixed in per channel plus small noise. Anomalous test maps
// carry a patch whose channels are drawn independently with exactly the normal marginal spread, so
// that per-channel statistics (an untrained flow's input normalisation) cannot tell them apart:
// only a model that learned the channels' joint distribution can. Labels and masks as above.
inline feature_dataset make_correlated_feature_dataset(index_t channels, index_t size, index_t train_count,
                                                       index_t normal_count, index_t anomalous_count, std::uint64_t seed,
                                                       index_t patch = 4) {
  detail::rng r(seed);
  patch = std::min(patch, size);
  const std::size_t c_count = static_cast<std::size_t>(channels);
  std::vector<float> a(c_count), b(c_count), spread(c_count);
  constexpr float noise = 0.1f;
  for (std::size_t c = 0; c < c_count; ++c) {
    a[c] = static_cast<float>(r.uniform(-1.0, 1.0));
    b[c] = static_cast<float>(r.uniform(-1.0, 1.0));
    spread[c] = std::sqrt(a[c] * a[c] + b[c] * b[c] + noise * noise);
  }
  auto normal_sample = [&](tensor& t, index_t n) {
    for (index_t y = 0; y < size; ++y)
      for (index_t x = 0; x < size; ++x) {
        const double u = r.normal(), v = r.normal();
        for (index_t c = 0; c < channels; ++c) {
          const std::size_t k = static_cast<std::size_t>(c);
          t(n, c, y, x) = static_cast<float>(a[k] * u + b[k] * v + noise * r.normal());
        }
      }
  };
  // A patch whose channels are independent, each with exactly its normal marginal spread.
  auto start_patch = [&](detail::rng& rr) {
    return [&](tensor& t, index_t n, index_t y, index_t x) {
      for (index_t c = 0; c < channels; ++c)
        t(n, c, y, x) = spread[static_cast<std::size_t>(c)] * static_cast<float>(rr.normal());
    };
  };
  return assemble_feature_dataset(channels, size, train_count, normal_count, anomalous_count, patch, r, normal_sample,
                                  start_patch);
}

}  // namespace testing
}  // namespace flowad
