#include "flowad/extract/filterbank.hpp"

#include <array>
#include <cmath>

#include "core/constants.hpp"

namespace flowad {
inline namespace v0 {

namespace {

using detail::eltwise;
using detail::inference_net;
using node_id = inference_net::node_id;

using detail::pi;
constexpr index_t pool_kernel = 3;  // two 3x3 stride-2 average pools take a bank's output to stride 4

// Scales of the banks (see filterbank.hpp).
constexpr int derivative_orientations = 4;
constexpr double fine_sigma = 1.0;
constexpr double fine_smooth_sigma = 1.5;
constexpr double coarse_derivative_sigma = 1.0;
constexpr int gabor_orientations = 6;
constexpr double gabor_sigma = 2.0;
constexpr double gabor_wavelength = 4.0;
constexpr double coarse_log_sigma = 1.5;
constexpr double coarse_smooth_sigma = 2.0;
constexpr double coarse_colour_sigma = 1.5;

enum class channel { luminance, red_green, blue_yellow };

struct filter {
  std::string name;
  channel on;
  std::vector<double> taps;  // size x size, row-major (y, x)
};

// Samples filters on a size x size grid centred on the origin; x grows to the right, y downwards.
class grid {
 public:
  explicit grid(index_t size) : size_(size), radius_(size / 2) {}
  index_t size() const noexcept { return size_; }

  template <class F>
  std::vector<double> sample(double sigma, F&& f) const {
    std::vector<double> taps(static_cast<std::size_t>(size_ * size_));
    for (index_t y = -radius_; y <= radius_; ++y)
      for (index_t x = -radius_; x <= radius_; ++x) {
        const double env = std::exp(-static_cast<double>(x * x + y * y) / (2.0 * sigma * sigma));
        taps[static_cast<std::size_t>((y + radius_) * size_ + (x + radius_))] =
            f(static_cast<double>(x), static_cast<double>(y), env);
      }
    return taps;
  }

  // Band-pass: remove the DC response with the envelope's shape, then scale to unit L2 norm.
  std::vector<double> band_pass(std::vector<double> taps, double sigma) const {
    const std::vector<double> env = sample(sigma, [](double, double, double e) { return e; });
    double sum = 0.0, env_sum = 0.0;
    for (std::size_t i = 0; i < taps.size(); ++i) {
      sum += taps[i];
      env_sum += env[i];
    }
    double norm = 0.0;
    for (std::size_t i = 0; i < taps.size(); ++i) {
      taps[i] -= env[i] * sum / env_sum;
      norm += taps[i] * taps[i];
    }
    norm = std::sqrt(norm);
    for (double& t : taps) t /= norm;
    return taps;
  }

  // A Gaussian with unit sum.
  std::vector<double> gaussian(double sigma) const {
    std::vector<double> taps = sample(sigma, [](double, double, double e) { return e; });
    double sum = 0.0;
    for (double t : taps) sum += t;
    for (double& t : taps) t /= sum;
    return taps;
  }

  // Derivatives of a Gaussian along direction theta (u = x cos + y sin).
  std::vector<double> first_derivative(double sigma, double theta) const {
    const double c = std::cos(theta), s = std::sin(theta);
    return band_pass(
        sample(sigma, [&](double x, double y, double e) { return -(x * c + y * s) / (sigma * sigma) * e; }), sigma);
  }

  std::vector<double> second_derivative(double sigma, double theta) const {
    const double c = std::cos(theta), s = std::sin(theta);
    return band_pass(sample(sigma,
                            [&](double x, double y, double e) {
                              const double u = x * c + y * s;
                              return (u * u / (sigma * sigma) - 1.0) / (sigma * sigma) * e;
                            }),
                     sigma);
  }

  std::vector<double> gabor(double sigma, double wavelength, double theta, bool odd) const {
    const double c = std::cos(theta), s = std::sin(theta);
    return band_pass(sample(sigma,
                            [&](double x, double y, double e) {
                              const double phase = 2.0 * pi * (x * c + y * s) / wavelength;
                              return e * (odd ? std::sin(phase) : std::cos(phase));
                            }),
                     sigma);
  }

  std::vector<double> laplacian_of_gaussian(double sigma) const {
    return band_pass(sample(sigma,
                            [&](double x, double y, double e) {
                              return (x * x + y * y - 2.0 * sigma * sigma) / (sigma * sigma * sigma * sigma) * e;
                            }),
                     sigma);
  }

 private:
  index_t size_, radius_;
};

std::string degrees(double theta) {
  return std::to_string(static_cast<int>(std::lround(theta * 180.0 / pi))) + "deg";
}

void add_derivatives(std::vector<filter>& f, const grid& g, double sigma) {
  for (int i = 0; i < derivative_orientations; ++i) {
    const double theta = pi * i / derivative_orientations;
    f.push_back({"L d1 " + degrees(theta), channel::luminance, g.first_derivative(sigma, theta)});
  }
  for (int i = 0; i < derivative_orientations; ++i) {
    const double theta = pi * i / derivative_orientations;
    f.push_back({"L d2 " + degrees(theta), channel::luminance, g.second_derivative(sigma, theta)});
  }
}

void add_colour(std::vector<filter>& f, const grid& g, double smooth_sigma, double edge_sigma) {
  f.push_back({"RG gauss", channel::red_green, g.gaussian(smooth_sigma)});
  f.push_back({"BY gauss", channel::blue_yellow, g.gaussian(smooth_sigma)});
  for (channel on : {channel::red_green, channel::blue_yellow}) {
    const std::string prefix = on == channel::red_green ? "RG" : "BY";
    f.push_back({prefix + " d1 0deg", on, g.first_derivative(edge_sigma, 0.0)});
    f.push_back({prefix + " d1 90deg", on, g.first_derivative(edge_sigma, pi / 2)});
  }
}

// The fine bank (full resolution, level1).
std::vector<filter> fine_bank() {
  const grid g(filterbank_extractor::fine_kernel_size);
  std::vector<filter> f;
  add_derivatives(f, g, fine_sigma);
  f.push_back({"L log", channel::luminance, g.laplacian_of_gaussian(fine_sigma)});
  f.push_back({"L gauss", channel::luminance, g.gaussian(fine_smooth_sigma)});
  add_colour(f, g, fine_smooth_sigma, fine_sigma);
  return f;
}

// The coarse bank (half and quarter resolution, level2 and level3).
std::vector<filter> coarse_bank() {
  const grid g(filterbank_extractor::coarse_kernel_size);
  std::vector<filter> f;
  add_derivatives(f, g, coarse_derivative_sigma);
  for (int i = 0; i < gabor_orientations; ++i) {
    const double theta = pi * i / gabor_orientations;
    f.push_back(
        {"L gabor even " + degrees(theta), channel::luminance, g.gabor(gabor_sigma, gabor_wavelength, theta, false)});
    f.push_back(
        {"L gabor odd " + degrees(theta), channel::luminance, g.gabor(gabor_sigma, gabor_wavelength, theta, true)});
  }
  f.push_back({"L log", channel::luminance, g.laplacian_of_gaussian(coarse_log_sigma)});
  f.push_back({"L gauss", channel::luminance, g.gaussian(coarse_smooth_sigma)});
  add_colour(f, g, coarse_smooth_sigma, coarse_colour_sigma);
  return f;
}

// RGB weights of one opponent channel (an orthonormal basis).
std::array<double, 3> rgb_weights(channel on) {
  switch (on) {
    case channel::luminance:
      return {1.0 / std::sqrt(3.0), 1.0 / std::sqrt(3.0), 1.0 / std::sqrt(3.0)};
    case channel::red_green:
      return {1.0 / std::sqrt(2.0), -1.0 / std::sqrt(2.0), 0.0};
    case channel::blue_yellow:
      return {1.0 / std::sqrt(6.0), 1.0 / std::sqrt(6.0), -2.0 / std::sqrt(6.0)};
  }
  return {0.0, 0.0, 0.0};
}

// 2F x 3 x size x size: filter i as output channel 2i, its negation as 2i + 1.
npy_array bank_weights(const std::vector<filter>& f, index_t size) {
  npy_array a;
  a.shape = {2 * static_cast<index_t>(f.size()), 3, size, size};
  a.data.resize(static_cast<std::size_t>(a.numel()));
  const auto plane = static_cast<std::size_t>(size * size);
  for (std::size_t i = 0; i < f.size(); ++i) {
    const std::array<double, 3> mix = rgb_weights(f[i].on);
    for (std::size_t sign = 0; sign < 2; ++sign)
      for (std::size_t c = 0; c < 3; ++c)
        for (std::size_t t = 0; t < plane; ++t)
          a.data[((2 * i + sign) * 3 + c) * plane + t] =
              static_cast<float>((sign == 0 ? 1.0 : -1.0) * mix[c] * f[i].taps[t]);
  }
  return a;
}

npy_array pyramid_weights() {
  constexpr index_t pk = filterbank_extractor::pyramid_kernel_size;
  const double binomial[pk] = {1.0 / 16, 4.0 / 16, 6.0 / 16, 4.0 / 16, 1.0 / 16};
  npy_array a;
  a.shape = {3, 1, pk, pk};
  a.data.resize(static_cast<std::size_t>(a.numel()));
  for (index_t c = 0; c < 3; ++c)
    for (index_t y = 0; y < pk; ++y)
      for (index_t x = 0; x < pk; ++x)
        a.data[static_cast<std::size_t>((c * pk + y) * pk + x)] = static_cast<float>(binomial[y] * binomial[x]);
  return a;
}

std::vector<float> floats(const npy_array& a) {
  return {a.data.begin(), a.data.end()};
}

inference_net build(detail::activation_format format) {
  const npy_array pyramid = pyramid_weights();
  const npy_array fine = bank_weights(fine_bank(), filterbank_extractor::fine_kernel_size);
  const npy_array coarse = bank_weights(coarse_bank(), filterbank_extractor::coarse_kernel_size);
  inference_net net(3, format);

  // A bank of filters (ReLU of +/- responses), then two average pools to stride 4 of its input.
  auto bank = [&](node_id src, const npy_array& weights, const std::string& name) {
    inference_net::conv_spec s;
    s.out_channels = weights.shape[0];
    s.kernel = weights.shape[2];
    s.padding = s.kernel / 2;
    s.act = eltwise::relu;
    const node_id responses = net.conv(src, s, floats(weights), {}, "bank." + name);
    const node_id half = net.avg_pool(responses, pool_kernel, 2, pool_kernel / 2, "pool." + name + ".a");
    return net.avg_pool(half, pool_kernel, 2, pool_kernel / 2, "pool." + name + ".b");
  };
  auto blur = [&](node_id src, const std::string& name) {
    inference_net::conv_spec s;
    s.out_channels = 3;
    s.kernel = filterbank_extractor::pyramid_kernel_size;
    s.stride = 2;
    s.padding = s.kernel / 2;
    s.groups = 3;
    return net.conv(src, s, floats(pyramid), {}, name);
  };
  net.mark_output(bank(inference_net::input_node, fine, "level1"));
  const node_id half = blur(inference_net::input_node, "pyramid.1");
  net.mark_output(bank(half, coarse, "level2"));
  const node_id quarter = blur(half, "pyramid.2");
  net.mark_output(bank(quarter, coarse, "level3"));
  return net;
}

std::vector<feature_level> filterbank_levels() {
  const index_t fine = 2 * static_cast<index_t>(fine_bank().size()),
                coarse = 2 * static_cast<index_t>(coarse_bank().size());
  // Centred odd filters and pools, padded by half their size: cell m is centred on pixel stride·m.
  const auto level = [](std::string name, index_t channels, index_t stride) {
    return feature_level{std::move(name), channels, stride, -0.5 * static_cast<double>(stride - 1)};
  };
  return {level("level1", fine, 4), level("level2", coarse, 8), level("level3", coarse, 16)};
}

std::vector<std::string> names(const std::vector<filter>& f) {
  std::vector<std::string> out;
  for (const filter& x : f) out.push_back(x.name);
  return out;
}

}  // namespace

filterbank_extractor::filterbank_extractor(detail::activation_format format)
    : network_extractor("filterbank", build(format), filterbank_levels()) {}

weight_map filterbank_extractor::filters() {
  weight_map m;
  m.emplace("pyramid.weight", pyramid_weights());
  m.emplace("fine.weight", bank_weights(fine_bank(), fine_kernel_size));
  m.emplace("coarse.weight", bank_weights(coarse_bank(), coarse_kernel_size));
  return m;
}

std::vector<std::string> filterbank_extractor::fine_filter_names() {
  return names(fine_bank());
}
std::vector<std::string> filterbank_extractor::coarse_filter_names() {
  return names(coarse_bank());
}

}  // namespace v0
}  // namespace flowad
