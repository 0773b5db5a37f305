// The backend convolution's three passes against naive double loops, with either algorithm. Backward
// data runs as a forward convolution with the transposed, flipped kernel, so kernels larger than 1 and
// asymmetric weights are what catch a wrong flip or transpose; 3x3 kernels take Winograd on AVX-512,
// whose activations are staged through nChw16c, so odd channel counts catch a wrong staging.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "flowad/detail/backend.hpp"
#include "flowad/detail/random.hpp"

using namespace flowad;
using flowad::detail::conv2d;

namespace {

struct conv_case {
  index_t n, in, out, h, w, kernel;
};

std::vector<float> random_values(std::size_t count, std::uint64_t seed) {
  detail::rng r(seed);
  std::vector<float> v(count);
  for (float& x : v) x = static_cast<float>(r.uniform(-1.0, 1.0));
  return v;
}

void fill(parameter& p, std::uint64_t seed, float scale = 1.0f) {
  const std::vector<float> v = random_values(p.size(), seed);
  std::transform(v.begin(), v.end(), p.values().begin(), [scale](float x) { return x * scale; });
  p.mark_updated();
}

// NHWC index of (n, c, y, x); -1 when (y, x) lies in the zero padding.
index_t at(const conv_case& k, index_t channels, index_t n, index_t c, index_t y, index_t x) {
  if (y < 0 || y >= k.h || x < 0 || x >= k.w) return -1;
  return ((n * k.h + y) * k.w + x) * channels + c;
}

// Visits every (output element, input element, weight) triple of the convolution.
template <class Visit>
void for_each_tap(const conv_case& k, Visit visit) {
  const index_t pad = k.kernel / 2;
  for (index_t n = 0; n < k.n; ++n)
    for (index_t y = 0; y < k.h; ++y)
      for (index_t x = 0; x < k.w; ++x)
        for (index_t o = 0; o < k.out; ++o)
          for (index_t i = 0; i < k.in; ++i)
            for (index_t ky = 0; ky < k.kernel; ++ky)
              for (index_t kx = 0; kx < k.kernel; ++kx) {
                const index_t src = at(k, k.in, n, i, y + ky - pad, x + kx - pad);
                if (src < 0) continue;
                visit(at(k, k.out, n, o, y, x), src, ((o * k.in + i) * k.kernel + ky) * k.kernel + kx);
              }
}

void require_close(const std::vector<float>& got, const std::vector<double>& want, const char* what) {
  REQUIRE(got.size() == want.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::abs(got[i] - want[i]) / (1.0 + std::abs(want[i])));
  INFO(what << ": worst relative error " << worst);
  CHECK(worst <= 1e-4);
}

}  // namespace

TEST_CASE("convolution forward, backward data and backward weights match naive loops", "[conv2d]") {
  const auto algorithm = GENERATE(detail::conv_algorithm::automatic, detail::conv_algorithm::direct);
  for (const conv_case k : {conv_case{2, 5, 7, 4, 6, 3}, conv_case{1, 3, 9, 5, 3, 5}, conv_case{3, 8, 4, 3, 5, 1},
                            conv_case{2, 76, 19, 3, 4, 3}, conv_case{2, 33, 48, 9, 7, 3},
                            conv_case{4, 33, 48, 16, 13, 3},  // 64 output tiles: Winograd under `automatic`
                            conv_case{2, 20, 24, 17, 19, 1}}) {  // the last: more than one chunk of pixels
    INFO("n " << k.n << ", " << k.in << " -> " << k.out << " channels, " << k.h << "x" << k.w << ", kernel "
              << k.kernel << (algorithm == detail::conv_algorithm::direct ? ", direct" : ", automatic"));
    conv2d conv({k.in, k.out, k.kernel, detail::activation::none, 0.0f, true, algorithm});
    parameter weights("w", {k.out, k.in, k.kernel, k.kernel}), bias("b", {k.out});
    fill(weights, 1);
    fill(bias, 2);
    const std::vector<float> src = random_values(static_cast<std::size_t>(k.n * k.in * k.h * k.w), 3);
    const std::vector<float> diff_dst = random_values(static_cast<std::size_t>(k.n * k.out * k.h * k.w), 4);
    detail::exec_context ctx;

    std::vector<double> want_dst(diff_dst.size(), 0.0), want_diff_src(src.size(), 0.0);
    std::vector<double> want_diff_w(weights.size(), 0.0);
    for (std::size_t i = 0; i < want_dst.size(); ++i) want_dst[i] = bias.data()[i % static_cast<std::size_t>(k.out)];
    for_each_tap(k, [&](index_t d, index_t s, index_t wi) {
      const auto di = static_cast<std::size_t>(d), si = static_cast<std::size_t>(s);
      want_dst[di] += double(src[si]) * weights.data()[wi];
      want_diff_src[si] += double(diff_dst[di]) * weights.data()[wi];
      want_diff_w[static_cast<std::size_t>(wi)] += double(diff_dst[di]) * src[si];
    });
    std::vector<double> want_diff_b(static_cast<std::size_t>(k.out), 0.0);
    for (std::size_t i = 0; i < diff_dst.size(); ++i) want_diff_b[i % static_cast<std::size_t>(k.out)] += diff_dst[i];

    std::vector<float> dst(diff_dst.size()), diff_src(src.size());
    conv.forward(src.data(), dst.data(), k.n, k.h, k.w, weights, &bias, ctx);
    require_close(dst, want_dst, "forward");
    // With a fused activation (leaky ReLU runs as a separate pass after a Winograd convolution).
    for (const detail::activation act : {detail::activation::relu, detail::activation::leaky_relu}) {
      const float slope = act == detail::activation::leaky_relu ? 0.1f : 0.0f;
      const conv2d activated({k.in, k.out, k.kernel, act, slope, true, algorithm});
      std::vector<double> want_activated = want_dst;
      for (double& v : want_activated) v = v < 0.0 ? slope * v : v;
      activated.forward(src.data(), dst.data(), k.n, k.h, k.w, weights, &bias, ctx);
      require_close(dst, want_activated, act == detail::activation::relu ? "forward, relu" : "forward, leaky relu");
    }
    conv.backward_data(diff_dst.data(), diff_src.data(), k.n, k.h, k.w, weights, ctx);
    require_close(diff_src, want_diff_src, "backward data");
    conv.backward_weights(src.data(), diff_dst.data(), k.n, k.h, k.w, weights, &bias, ctx);
    require_close({weights.grad(), weights.grad() + weights.size()}, want_diff_w, "backward weights");
    require_close({bias.grad(), bias.grad() + bias.size()}, want_diff_b, "backward bias");

    // A weight update (new stamp) must reach the cached transposed kernel of backward data.
    for (float& v : weights.values()) v = -v;
    weights.mark_updated();
    for (double& v : want_diff_src) v = -v;
    conv.backward_data(diff_dst.data(), diff_src.data(), k.n, k.h, k.w, weights, ctx);
    require_close(diff_src, want_diff_src, "backward data after a weight update");

    // Both passes in one call, which stages diff_dst once for the two.
    weights.zero_grad();
    bias.zero_grad();
    std::fill(diff_src.begin(), diff_src.end(), 0.0f);
    // (The weight gradient does not depend on the weights: want_diff_w still holds.)
    conv.backward(src.data(), diff_dst.data(), diff_src.data(), k.n, k.h, k.w, weights, &bias, ctx);
    require_close(diff_src, want_diff_src, "combined backward: data");
    require_close({weights.grad(), weights.grad() + weights.size()}, want_diff_w, "combined backward: weights");
    require_close({bias.grad(), bias.grad() + bias.size()}, want_diff_b, "combined backward: bias");
  }
}

TEST_CASE("two chained convolutions equal the second applied to the first's output", "[conv2d]") {
  // Kernels 3,3 chain inside the staging buffers on Winograd; 3,1 and the direct method go through
  // `hidden`. Odd widths catch a wrong channel padding of the blocked intermediate.
  const auto algorithm = GENERATE(detail::conv_algorithm::automatic, detail::conv_algorithm::direct);
  struct chain_case {
    index_t n, in, hidden, out, h, w, first_kernel, second_kernel;
  };
  for (const chain_case k : {chain_case{2, 19, 40, 38, 9, 7, 3, 3}, chain_case{1, 76, 128, 152, 6, 5, 3, 3},
                             chain_case{2, 19, 40, 38, 9, 7, 3, 1}}) {
    INFO("n " << k.n << ", " << k.in << " -> " << k.hidden << " -> " << k.out << ", " << k.h << "x" << k.w
              << ", kernels " << k.first_kernel << "," << k.second_kernel
              << (algorithm == detail::conv_algorithm::direct ? ", direct" : ", automatic"));
    const conv2d first({k.in, k.hidden, k.first_kernel, detail::activation::leaky_relu, 0.1f, true, algorithm});
    const conv2d second({k.hidden, k.out, k.second_kernel, detail::activation::none, 0.0f, true, algorithm});
    parameter w1("w1", {k.hidden, k.in, k.first_kernel, k.first_kernel}), b1("b1", {k.hidden});
    parameter w2("w2", {k.out, k.hidden, k.second_kernel, k.second_kernel}), b2("b2", {k.out});
    // Scaled by 1/sqrt(fan-in) as the layers initialise them: with unit weights the second output
    // reaches ~300, and two Winograd layers then differ from the exact chain by 3e-4 relative.
    fill(w1, 5, 1.0f / std::sqrt(float(k.in * k.first_kernel * k.first_kernel)));
    fill(b1, 6);
    fill(w2, 7, 1.0f / std::sqrt(float(k.hidden * k.second_kernel * k.second_kernel)));
    fill(b2, 8);
    const std::vector<float> src = random_values(static_cast<std::size_t>(k.n * k.in * k.h * k.w), 9);
    detail::exec_context ctx;
    std::vector<float> hidden(static_cast<std::size_t>(k.n * k.hidden * k.h * k.w));
    std::vector<float> want(static_cast<std::size_t>(k.n * k.out * k.h * k.w)), got(want.size());
    first.forward(src.data(), hidden.data(), k.n, k.h, k.w, w1, &b1, ctx);
    second.forward(hidden.data(), want.data(), k.n, k.h, k.w, w2, &b2, ctx);
    // The chain in double: forward_into runs the inference primitives, which may differ from the
    // training ones forward() runs (Winograd's weights transformed ahead); both agree with it.
    std::vector<double> exact_hidden(hidden.size(), 0.0), exact(want.size(), 0.0);
    const conv_case c1{k.n, k.in, k.hidden, k.h, k.w, k.first_kernel}, c2{k.n, k.hidden, k.out, k.h, k.w, k.second_kernel};
    for (std::size_t i = 0; i < exact_hidden.size(); ++i) exact_hidden[i] = b1.data()[i % static_cast<std::size_t>(k.hidden)];
    for_each_tap(c1, [&](index_t d, index_t si, index_t wi) {
      exact_hidden[static_cast<std::size_t>(d)] += double(src[static_cast<std::size_t>(si)]) * w1.data()[wi];
    });
    for (double& v : exact_hidden) v = v < 0.0 ? 0.1 * v : v;
    for (std::size_t i = 0; i < exact.size(); ++i) exact[i] = b2.data()[i % static_cast<std::size_t>(k.out)];
    for_each_tap(c2, [&](index_t d, index_t si, index_t wi) {
      exact[static_cast<std::size_t>(d)] += exact_hidden[static_cast<std::size_t>(si)] * w2.data()[wi];
    });
    require_close(want, exact, "separate forward");
    // Where both run on Winograd the intermediate never reaches `hidden`.
    const bool in_staging = algorithm == detail::conv_algorithm::automatic && k.second_kernel == 3 &&
                            detail::backend_description().find("avx512_core") != std::string::npos;
    for (int repeat = 0; repeat < 2; ++repeat) {  // the second call runs on cached primitives
      std::fill(hidden.begin(), hidden.end(), -7.0f);
      first.forward_into(second, src.data(), hidden.data(), got.data(), k.n, k.h, k.w, w1, &b1, w2, &b2, ctx);
      require_close(got, exact, "chained forward");
      if (in_staging) CHECK(std::all_of(hidden.begin(), hidden.end(), [](float v) { return v == -7.0f; }));
      else require_close(hidden, exact_hidden, "chained forward: intermediate");
    }
  }
  const conv2d a({4, 8, 3, detail::activation::none, 0.0f, true}), b({9, 4, 3, detail::activation::none, 0.0f, true});
  parameter wa("wa", {8, 4, 3, 3}), wb("wb", {4, 9, 3, 3});
  detail::exec_context ctx;
  std::vector<float> buffer(2 * 9 * 5 * 5);
  CHECK_THROWS_AS(a.forward_into(b, buffer.data(), buffer.data(), buffer.data(), 1, 5, 5, wa, nullptr, wb, nullptr, ctx),
                  error);
}

TEST_CASE("3x3 convolutions take Winograd on AVX-512 unless told to take the direct method", "[conv2d]") {
  if (detail::backend_description().find("avx512_core") == std::string::npos) {
    WARN("the CPU has no AVX-512: oneDNN has no Winograd kernels here");
    return;
  }
  // Whatever the activation: oneDNN fuses ReLU into Winograd, leaky ReLU runs after it.
  for (const detail::activation act :
       {detail::activation::none, detail::activation::relu, detail::activation::leaky_relu}) {
    const conv2d automatic({33, 48, 3, act, 0.1f, true});
    const auto winograd_passes = [&](index_t n, index_t h, index_t w) {
      const std::string chosen = automatic.implementation(n, h, w);
      INFO(chosen);
      std::size_t count = 0;
      for (std::size_t at = chosen.find("wino"); at != std::string::npos; at = chosen.find("wino", at + 1)) ++count;
      return count;
    };
    // Forward, backward data (as a forward convolution) and backward weights, from 64 output tiles of
    // 4x4 on (here 4 x 4 x 4); on fewer (2 x 3 x 2) the per-call weight transform costs more than it
    // saves, and all three take the direct method.
    CHECK(winograd_passes(4, 16, 13) == 3);
    CHECK(winograd_passes(2, 9, 7) == 0);
  }
  const conv2d direct({33, 48, 3, detail::activation::relu, 0.0f, true, detail::conv_algorithm::direct});
  CHECK(direct.implementation(2, 9, 7).find("wino") == std::string::npos);
  const conv2d pointwise({33, 48, 1, detail::activation::relu, 0.0f, true});
  CHECK(pointwise.implementation(2, 9, 7).find("wino") == std::string::npos);
}
