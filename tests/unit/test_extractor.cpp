#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "flowad/detail/backend.hpp"
#include "flowad/detail/inference_net.hpp"
#include "flowad/detail/random.hpp"
#include "flowad/extract/filterbank.hpp"
#include "flowad/extract/mobilenet_v2.hpp"
#include "flowad/extract/resnet18.hpp"
#include "flowad/io/npy.hpp"
#include "support/reference_nets.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using detail::activation_format;
using detail::eltwise;
using detail::inference_net;
namespace ref = flowad::testing::ref;
using flowad::testing::temp_folder;

namespace {

constexpr double tolerance = 1e-4;  // relative to the largest reference value of each output

template <class F>
error thrown_by(F&& f) {
  try {
    f();
  } catch (const error& e) {
    return e;
  } catch (const std::exception& e) {
    FAIL("expected flowad::error, got " << e.what());
  }
  FAIL("expected flowad::error, nothing was thrown");
  return error(errc::invalid_argument, "unreachable");
}

std::vector<float> random_values(std::size_t n, double scale, std::uint64_t seed) {
  detail::rng r(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(scale * r.normal());
  return v;
}

void apply(ref::map& m, eltwise act) {
  for (double& x : m.v) {
    switch (act) {
      case eltwise::none:
        break;
      case eltwise::relu:
        x = std::max(x, 0.0);
        break;
      case eltwise::relu6:
        x = std::min(std::max(x, 0.0), 6.0);
        break;
      case eltwise::abs:
        x = std::abs(x);
        break;
    }
  }
}

void check_levels(const std::vector<tensor>& got, const std::vector<ref::map>& want, const std::string& what) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = ref::relative_error(got[i].view(), want[i]);
    INFO(what << " level " << i << " (" << got[i].shape().str() << "): relative error " << err);
    CHECK(err <= tolerance);
  }
}

bool identical(const std::vector<tensor>& a, const std::vector<tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].shape() != b[i].shape()) return false;
    for (index_t n = 0; n < a[i].shape().n; ++n)
      for (index_t c = 0; c < a[i].shape().c; ++c)
        for (index_t h = 0; h < a[i].shape().h; ++h)
          for (index_t w = 0; w < a[i].shape().w; ++w)
            if (a[i](n, c, h, w) != b[i](n, c, h, w)) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("inference_net convolutions match a naive loop", "[extract]") {
  struct conv_case {
    index_t in_c, out_c, k, stride, pad, groups;
    eltwise act;
    bool residual;
    bool residual_is_output;  // forces the copy path instead of the in-place sum
  };
  const conv_case cases[] = {
      {3, 16, 7, 2, 3, 1, eltwise::relu, false, false},    {16, 32, 3, 1, 1, 1, eltwise::none, true, false},
      {16, 16, 3, 2, 1, 16, eltwise::relu6, false, false}, {24, 24, 3, 1, 1, 24, eltwise::relu6, true, true},
      {8, 12, 1, 2, 0, 1, eltwise::abs, false, false},     {12, 20, 5, 1, 2, 4, eltwise::relu, true, false},
      {5, 7, 3, 3, 0, 1, eltwise::none, false, false},
      // Winograd-eligible under activation_format::winograd (stride 1, 3x3, channels divisible by 16).
      {32, 32, 3, 1, 1, 1, eltwise::relu, true, true},     {16, 48, 3, 1, 1, 1, eltwise::none, false, false},
  };
  for (const activation_format format :
       {activation_format::preferred, activation_format::nhwc, activation_format::winograd}) {
    for (const conv_case& cc : cases) {
      inference_net net(cc.in_c, format);
      inference_net::conv_spec spec;
      spec.out_channels = cc.out_c;
      spec.kernel = cc.k;
      spec.stride = cc.stride;
      spec.padding = cc.pad;
      spec.groups = cc.groups;
      spec.act = cc.act;
      const std::vector<float> w =
          random_values(static_cast<std::size_t>(cc.out_c * (cc.in_c / cc.groups) * cc.k * cc.k), 0.3, 11);
      const std::vector<float> b = random_values(static_cast<std::size_t>(cc.out_c), 0.5, 12);
      const std::vector<float> rw = random_values(static_cast<std::size_t>(cc.out_c * cc.in_c), 0.3, 13);
      inference_net::node_id residual = -1;
      if (cc.residual) {
        inference_net::conv_spec rs;
        rs.out_channels = cc.out_c;
        rs.stride = cc.stride;
        residual = net.conv(inference_net::input_node, rs, rw, {}, "residual");
        spec.residual = residual;
        if (cc.residual_is_output) net.mark_output(residual);
      }
      const inference_net::node_id out = net.conv(inference_net::input_node, spec, w, b, "conv");
      net.mark_output(out);

      const index_t h = 13, wd = 10;
      const tensor nchw = ref::random_images({2, cc.in_c, h, wd}, layout::nchw, 5);
      const tensor nhwc = ref::random_images({2, cc.in_c, h, wd}, layout::nhwc, 6);
      const tensor big = ref::random_images({2, cc.in_c + 3, h, wd}, layout::nhwc, 7);  // sliced: strided input
      const const_view inputs[] = {nchw.view(), nhwc.view(), big.view().channels(2, cc.in_c)};
      workspace ws;
      for (const const_view& x : inputs) {
        for (const layout l : {layout::nchw, layout::nhwc}) {
          std::vector<tensor> outs;
          net.run(x, outs, l, ws);
          const ref::map xin = ref::from_view(x);
          ref::map want = ref::conv(xin, w, b, cc.out_c, cc.k, cc.stride, cc.pad, cc.groups);
          ref::map res;
          if (cc.residual) {
            res = ref::conv(xin, rw, {}, cc.out_c, 1, cc.stride, 0);
            ref::add(want, res);
          }
          apply(want, cc.act);
          INFO("case in " << cc.in_c << " out " << cc.out_c << " k " << cc.k << " stride " << cc.stride << " groups "
                          << cc.groups << " residual " << cc.residual << " format " << static_cast<int>(format)
                          << " input strides c=" << x.strides().c << " out layout " << static_cast<int>(l));
          REQUIRE(outs.size() == (cc.residual_is_output ? 2u : 1u));
          CHECK(outs.back().layout() == l);
          CHECK(outs.back().shape() == net.shape(out, x.shape()));
          CHECK(ref::relative_error(outs.back().view(), want) <= 1e-5);
          if (cc.residual_is_output) CHECK(ref::relative_error(outs[0].view(), res) <= 1e-5);
        }
      }
      CHECK(net.macs({2, cc.in_c, h, wd}) > 0.0);
    }
  }
}

TEST_CASE("inference_net pooling matches a naive loop", "[extract]") {
  inference_net net(6);
  net.mark_output(net.max_pool(inference_net::input_node, 3, 2, 1, "max"));
  net.mark_output(net.avg_pool(inference_net::input_node, 3, 2, 1, "avg"));
  net.mark_output(net.avg_pool(inference_net::input_node, 2, 2, 0, "avg2"));
  const tensor x = ref::random_images({2, 6, 9, 12}, layout::nchw, 3);
  workspace ws;
  std::vector<tensor> outs;
  net.run(x.view(), outs, layout::nhwc, ws);
  const ref::map xin = ref::from_view(x.view());
  REQUIRE(outs.size() == 3);
  CHECK(outs[0].shape() == shape4{2, 6, 5, 6});
  CHECK(ref::relative_error(outs[0].view(), ref::pool(xin, 3, 2, 1, true)) <= 1e-6);
  CHECK(ref::relative_error(outs[1].view(), ref::pool(xin, 3, 2, 1, false)) <= 1e-6);
  CHECK(ref::relative_error(outs[2].view(), ref::pool(xin, 2, 2, 0, false)) <= 1e-6);
}

TEST_CASE("inference_net rejects bad graphs and inputs", "[extract]") {
  inference_net net(3);
  inference_net::conv_spec s;
  s.out_channels = 4;
  s.kernel = 3;
  CHECK_THROWS_AS(net.conv(inference_net::input_node, s, std::vector<float>(10), {}, "short"), error);
  CHECK_THROWS_AS(net.conv(inference_net::input_node, s, std::vector<float>(4 * 3 * 9), std::vector<float>(3), "bias"),
                  error);
  CHECK_THROWS_AS(net.conv(7, s, std::vector<float>(4 * 3 * 9), {}, "no such source"), error);
  s.groups = 2;
  CHECK_THROWS_AS(net.conv(inference_net::input_node, s, std::vector<float>(4 * 9), {}, "groups"), error);
  CHECK_THROWS_AS(net.max_pool(inference_net::input_node, 2, 2, 2, "pad"), error);
  CHECK_THROWS_AS(net.mark_output(inference_net::input_node), error);
  workspace ws;
  std::vector<tensor> outs;
  const tensor x({1, 3, 8, 8});
  const error no_outputs = thrown_by([&] { net.run(x.view(), outs, layout::nhwc, ws); });
  CHECK(no_outputs.code() == errc::invalid_argument);
  s.groups = 1;
  net.mark_output(net.conv(inference_net::input_node, s, std::vector<float>(4 * 3 * 9), {}, "ok"));
  const tensor wrong({1, 4, 8, 8}), empty({0, 3, 8, 8});
  const error e = thrown_by([&] { net.run(wrong.view(), outs, layout::nhwc, ws); });
  CHECK(e.code() == errc::shape_mismatch);
  CHECK_THAT(e.what(), Catch::Contains("1x4x8x8"));
  CHECK(thrown_by([&] { net.run(empty.view(), outs, layout::nhwc, ws); }).code() == errc::empty_input);
  const tensor tiny({1, 3, 1, 1});
  CHECK(thrown_by([&] { net.run(tiny.view(), outs, layout::nhwc, ws); }).code() == errc::invalid_argument);
}

TEST_CASE("resnet18 extractor matches a naive ResNet18 on random weights", "[extract]") {
  const weight_map w = ref::random_weights(resnet18_extractor::required_weights(), 21);
  const resnet18_extractor e(w);
  CHECK(e.name() == "resnet18");
  CHECK(e.level_names() == std::vector<std::string>{"layer1", "layer2", "layer3"});
  CHECK(e.level_channels() == std::vector<index_t>{64, 128, 256});
  CHECK(e.level_strides() == std::vector<index_t>{4, 8, 16});
  CHECK(resnet18_extractor::required_weights().size() == 30);

  const tensor x = ref::random_images({2, 3, 64, 80}, layout::nchw, 22);
  const std::vector<ref::map> want = ref::resnet18(w, ref::from_view(x.view()));
  workspace ws;
  for (const layout l : {layout::nhwc, layout::nchw}) {
    const std::vector<tensor> got = e.extract(x.view(), ws, l);
    for (std::size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i].layout() == l);
      CHECK(got[i].shape() == e.level_shape(i, x.shape()));
    }
    check_levels(got, want, "resnet18");
  }
  CHECK(e.level_shape(2, {1, 3, 65, 33}) == shape4{1, 256, 5, 3});
  CHECK(e.macs({2, 3, 64, 64}) == Approx(2.0 * e.macs({1, 3, 64, 64})));
  CHECK_THAT(e.describe({2, 3, 64, 80}), Catch::Contains("layer3.1.conv2"));

  // The direct method throughout: oneDNN's preferred layout everywhere, no reorder between layers.
  const resnet18_extractor direct(w, "weight map", activation_format::preferred);
  check_levels(direct.extract(x.view(), ws), want, "resnet18 (preferred)");
  CHECK(direct.network().interlayer_reorders({2, 3, 64, 80}) == 0);
  CHECK(direct.describe({2, 3, 64, 80}).find("wino") == std::string::npos);
}

TEST_CASE("resnet18 runs its stride-1 3x3 convolutions on Winograd on AVX-512", "[extract]") {
  if (detail::backend_description().find("avx512_core") == std::string::npos) {
    WARN("the CPU has no AVX-512: oneDNN has no Winograd kernels here");
    return;
  }
  const resnet18_extractor e(ref::random_weights(resnet18_extractor::required_weights(), 23));
  const std::string plan = e.describe({2, 3, 64, 80});
  INFO(plan);
  // Two per block in layer1, and every convolution of layer2 and layer3 but the stride-2 first and
  // the 1x1 downsample.
  std::size_t count = 0;
  for (std::size_t at = plan.find("wino"); at != std::string::npos; at = plan.find("wino", at + 1)) ++count;
  CHECK(count == 10);
}

TEST_CASE("mobilenet_v2 extractor matches a naive MobileNetV2 on random weights", "[extract]") {
  const weight_map w = ref::random_weights(mobilenet_v2_extractor::required_weights(), 31);
  const mobilenet_v2_extractor e(w);
  CHECK(e.level_names() == std::vector<std::string>{"features.3", "features.6", "features.13"});
  CHECK(e.level_channels() == std::vector<index_t>{24, 32, 96});
  CHECK(e.level_strides() == std::vector<index_t>{4, 8, 16});
  CHECK(mobilenet_v2_extractor::required_weights().size() == 78);

  const tensor x = ref::random_images({2, 3, 48, 64}, layout::nhwc, 32);
  const std::vector<ref::map> want = ref::mobilenet_v2(w, ref::from_view(x.view()));
  workspace ws;
  check_levels(e.extract(x.view(), ws), want, "mobilenet_v2");
  CHECK(e.network().interlayer_reorders(x.shape()) == 0);
  // Depthwise convolutions are grouped convolutions in the plan.
  CHECK_THAT(e.describe(x.shape()), Catch::Contains("features.13.conv.1.0"));
}

TEST_CASE("extractors read weights from .npy folders and .npz archives", "[extract]") {
  temp_folder dir;
  const weight_map rw = ref::random_weights(resnet18_extractor::required_weights(), 41);
  const std::string resnet_dir = (dir / "resnet18").string();
  std::filesystem::create_directories(resnet_dir);
  for (const auto& [name, array] : rw) write_npy(resnet_dir + "/" + name + ".npy", array);
  const weight_map mw = ref::random_weights(mobilenet_v2_extractor::required_weights(), 42);
  std::vector<npz_entry> entries;
  for (const auto& [name, array] : mw) entries.push_back({name, array});
  npz_entry extra;  // the classifier of the real file: present but unused
  extra.name = "classifier.1.weight";
  extra.array.shape = {2, 2};
  extra.array.data.assign(4, 0.5f);
  entries.push_back(extra);
  const std::string mobilenet_npz = (dir / "mobilenet_v2.npz").string();
  write_npz(mobilenet_npz, entries);

  const tensor x = ref::random_images({1, 3, 32, 48}, layout::nchw, 43);
  workspace ws;
  {
    const std::unique_ptr<extractor> from_file = make_extractor("resnet18", resnet_dir);
    const resnet18_extractor from_map(rw);
    CHECK(identical(from_file->extract(x.view(), ws), from_map.extract(x.view(), ws)));
  }
  {
    const std::unique_ptr<extractor> from_file = make_extractor("mobilenet_v2", mobilenet_npz);
    const mobilenet_v2_extractor from_map(mw);
    CHECK(identical(from_file->extract(x.view(), ws), from_map.extract(x.view(), ws)));
  }
  CHECK(read_weights(resnet_dir).size() == 30);
  CHECK(read_weights(mobilenet_npz, {"features.0.0.bias"}).size() == 1);
}

TEST_CASE("extractor weights are validated on load", "[extract]") {
  temp_folder dir;
  const weight_map good = ref::random_weights(resnet18_extractor::required_weights(), 51);
  {
    weight_map w = good;
    w.erase("layer2.0.downsample.0.weight");
    const error e = thrown_by([&] { resnet18_extractor{w}; });
    CHECK_THAT(e.what(), Catch::Contains("layer2.0.downsample.0.weight") && Catch::Contains("128x64x1x1"));
  }
  {
    weight_map w = good;
    w["conv1.weight"].shape = {64, 3, 3, 3};
    w["conv1.weight"].data.resize(64 * 27);
    const error e = thrown_by([&] { resnet18_extractor{w}; });
    CHECK(e.code() == errc::bad_file);
    CHECK_THAT(e.what(), Catch::Contains("64x3x3x3") && Catch::Contains("64x3x7x7") && Catch::Contains("conv1.weight"));
  }
  {
    weight_map w = good;
    w["layer1.0.conv1.bias"].dtype = "<f8";
    const error e = thrown_by([&] { resnet18_extractor{w}; });
    CHECK_THAT(e.what(), Catch::Contains("'<f8'") && Catch::Contains("layer1.0.conv1.bias"));
  }

  const std::string folder = (dir / "weights").string();
  std::filesystem::create_directories(folder);
  for (const auto& [name, array] : good) write_npy(folder + "/" + name + ".npy", array);
  {
    const error e = thrown_by([&] { resnet18_extractor{(dir / "nowhere").string()}; });
    CHECK(e.code() == errc::io_error);
    CHECK_THAT(e.what(), Catch::Contains("nowhere"));
  }
  {
    std::filesystem::remove(folder + "/layer3.1.conv2.bias.npy");
    const error e = thrown_by([&] { resnet18_extractor{folder}; });
    CHECK(e.code() == errc::io_error);
    CHECK_THAT(e.what(), Catch::Contains(folder + "/layer3.1.conv2.bias.npy"));
    write_npy(folder + "/layer3.1.conv2.bias.npy", good.at("layer3.1.conv2.bias"));
  }
  {
    npy_array wrong;
    wrong.shape = {255};
    wrong.data.assign(255, 0.0f);
    write_npy(folder + "/layer3.1.conv2.bias.npy", wrong);
    const error e = thrown_by([&] { resnet18_extractor{folder}; });
    CHECK(e.code() == errc::bad_file);
    CHECK_THAT(e.what(), Catch::Contains(folder + "/layer3.1.conv2.bias.npy") && Catch::Contains("255") &&
                             Catch::Contains("256"));
  }
  {
    // A float64 file: readable as data, but not accepted as network weights.
    const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (256,), }";
    std::string header = dict;
    const std::size_t total = (10 + dict.size() + 1 + 63) / 64 * 64;
    header.append(total - 10 - dict.size() - 1, ' ');
    header.push_back('\n');
    std::vector<unsigned char> b = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<unsigned char>(header.size()), 0};
    b.insert(b.end(), header.begin(), header.end());
    b.resize(b.size() + 256 * 8, 0);
    testing::write_bytes(folder + "/layer3.1.conv2.bias.npy", b);
    REQUIRE(read_npy(folder + "/layer3.1.conv2.bias.npy").dtype == "<f8");
    const error e = thrown_by([&] { resnet18_extractor{folder}; });
    CHECK(e.code() == errc::bad_file);
    CHECK_THAT(e.what(), Catch::Contains("'<f8'") && Catch::Contains("float32"));
  }
  {
    std::vector<npz_entry> entries;
    for (const auto& [name, array] : ref::random_weights(mobilenet_v2_extractor::required_weights(), 52))
      if (name != "features.7.conv.1.0.weight") entries.push_back({name, array});
    const std::string npz = (dir / "partial.npz").string();
    write_npz(npz, entries);
    const error e = thrown_by([&] { mobilenet_v2_extractor{npz}; });
    CHECK(e.code() == errc::bad_file);
    CHECK_THAT(e.what(), Catch::Contains(npz) && Catch::Contains("features.7.conv.1.0.weight"));
  }
}

TEST_CASE("make_extractor knows the built-in extractors", "[extract]") {
  CHECK(extractor_names() == std::vector<std::string>{"filterbank", "mobilenet_v2", "resnet18"});
  const std::unique_ptr<extractor> fb = make_extractor("filterbank");
  CHECK(fb->name() == "filterbank");
  const error unknown = thrown_by([] { make_extractor("vgg16"); });
  CHECK(unknown.code() == errc::invalid_argument);
  CHECK_THAT(unknown.what(), Catch::Contains("vgg16") && Catch::Contains("resnet18"));
  CHECK(thrown_by([] { make_extractor("filterbank", "/tmp/weights"); }).code() == errc::invalid_argument);
  CHECK(thrown_by([] { make_extractor("resnet18"); }).code() == errc::invalid_argument);
  CHECK(fb->normalization().mean[0] == Approx(0.485f));
}

TEST_CASE("filterbank filters follow their formulas", "[extract]") {
  const weight_map f = filterbank_extractor::filters();
  const npy_array& pyramid = f.at("pyramid.weight");
  CHECK(pyramid.shape == std::vector<index_t>{3, 1, 5, 5});
  double pyramid_sum = 0.0;
  for (index_t i = 0; i < 25; ++i) pyramid_sum += pyramid.data[static_cast<std::size_t>(i)];
  CHECK(pyramid_sum == Approx(1.0));
  struct bank_case {
    const char* key;
    std::vector<std::string> names;
    index_t size;
  };
  const bank_case banks[] = {{"fine.weight", filterbank_extractor::fine_filter_names(), 7},
                             {"coarse.weight", filterbank_extractor::coarse_filter_names(), 11}};
  CHECK(banks[0].names.size() == 16);
  CHECK(banks[1].names.size() == 28);
  for (const bank_case& b : banks) {
    const npy_array& bank = f.at(b.key);
    CHECK(bank.shape == std::vector<index_t>{2 * static_cast<index_t>(b.names.size()), 3, b.size, b.size});
    const auto plane = static_cast<std::size_t>(b.size * b.size), per_filter = 3 * plane;
    for (std::size_t i = 0; i < b.names.size(); ++i) {
      INFO(b.key << " filter " << i << " " << b.names[i]);
      const float* plus = bank.data.data() + 2 * i * per_filter;
      const float* minus = plus + per_filter;
      for (std::size_t t = 0; t < per_filter; ++t) CHECK(minus[t] == -plus[t]);
      // The RGB weights are an orthonormal colour mix of one spatial filter: the sum of squares over
      // RGB is the filter's squared norm, the sum over RGB and taps its DC response times the mix sum.
      double sum = 0.0, norm2 = 0.0;
      for (std::size_t t = 0; t < per_filter; ++t) {
        sum += plus[t];
        norm2 += static_cast<double>(plus[t]) * plus[t];
      }
      const bool gaussian = b.names[i].find("gauss") != std::string::npos;
      const bool luminance = b.names[i].rfind("L ", 0) == 0;
      if (gaussian) {
        // Unit sum: luminance weights 1/sqrt3 per RGB channel sum to sqrt3, opponent mixes to 0.
        CHECK(sum == Approx(luminance ? std::sqrt(3.0) : 0.0).margin(1e-5));
      } else {
        CHECK(norm2 == Approx(1.0).epsilon(1e-5));
        CHECK(std::abs(sum) < 1e-5);
      }
    }
  }
}

TEST_CASE("filterbank matches a naive pyramid, filter and pool", "[extract]") {
  const filterbank_extractor e;
  CHECK(e.level_names() == std::vector<std::string>{"level1", "level2", "level3"});
  CHECK(e.level_channels() == std::vector<index_t>{32, 56, 56});
  CHECK(e.level_strides() == std::vector<index_t>{4, 8, 16});
  const tensor x = ref::random_images({2, 3, 72, 56}, layout::nchw, 61);
  workspace ws;
  const std::vector<tensor> got = e.extract(x.view(), ws);
  check_levels(got, ref::filterbank(filterbank_extractor::filters(), ref::from_view(x.view())), "filterbank");
  CHECK(got[0].shape() == shape4{2, 32, 18, 14});
  CHECK(got[2].shape() == shape4{2, 56, 5, 4});
  CHECK(e.level_shape(1, {1, 3, 100, 33}) == shape4{1, 56, 13, 5});
  // Deterministic: a second instance gives bit-identical features.
  const filterbank_extractor again;
  CHECK(identical(got, again.extract(x.view(), ws)));
  CHECK(e.network().interlayer_reorders(x.shape()) == 0);
}

namespace {

// A stationary colour texture: 24 gratings (periods 5 to 20 px) whose orientations, periods,
// amplitudes and tints are fixed (the "product"), with phases and fine noise drawn per image.
std::vector<double> texture(index_t size, std::uint64_t seed) {
  detail::rng product(12345), sample(seed);
  std::vector<double> img(static_cast<std::size_t>(3 * size * size), 0.0);
  const double base[3] = {0.55, 0.47, 0.38};
  for (int g = 0; g < 24; ++g) {
    const double angle = product.uniform(0.0, 3.14159265), period = product.uniform(5.0, 20.0);
    const double amp = product.uniform(0.01, 0.03);
    const double tint[3] = {product.uniform(0.8, 1.2), product.uniform(0.8, 1.2), product.uniform(0.8, 1.2)};
    const double phase = sample.uniform(0.0, 6.2832);
    for (index_t y = 0; y < size; ++y)
      for (index_t x = 0; x < size; ++x) {
        const double v = amp * std::sin(2 * 3.14159265 * (x * std::cos(angle) + y * std::sin(angle)) / period + phase);
        for (int c = 0; c < 3; ++c) img[static_cast<std::size_t>((c * size + y) * size + x)] += tint[c] * v;
      }
  }
  for (index_t i = 0; i < size * size; ++i) {
    const double n = 0.02 * sample.normal();
    for (int c = 0; c < 3; ++c) img[static_cast<std::size_t>(c * size * size + i)] += base[c] + n;
  }
  return img;
}

// Paints a disc of radius `radius` around each point with `delta`; marks the mask.
void paint(std::vector<double>& img, std::vector<unsigned char>& mask, index_t size,
           const std::vector<std::pair<double, double>>& points, double radius, double delta) {
  for (index_t y = 0; y < size; ++y)
    for (index_t x = 0; x < size; ++x) {
      bool hit = false;
      for (const auto& [px, py] : points)
        if ((x - px) * (x - px) + (y - py) * (y - py) <= radius * radius) {
          hit = true;
          break;
        }
      if (!hit) continue;
      mask[static_cast<std::size_t>(y * size + x)] = 1;
      for (int c = 0; c < 3; ++c) {
        double& v = img[static_cast<std::size_t>((c * size + y) * size + x)];
        v = std::min(1.0, std::max(0.0, v + delta));
      }
    }
}

tensor normalized(const std::vector<double>& img, index_t size) {
  tensor t({1, 3, size, size}, layout::nchw);
  const channel_normalization norm = imagenet_normalization;
  for (int c = 0; c < 3; ++c)
    for (index_t i = 0; i < size * size; ++i)
      t.data()[c * size * size + i] = static_cast<float>(
          (img[static_cast<std::size_t>(c * size * size + i)] - norm.mean[static_cast<std::size_t>(c)]) /
          norm.std[static_cast<std::size_t>(c)]);
  return t;
}

}  // namespace

TEST_CASE("filterbank features make scratches spots and cracks stand out", "[extract]") {
  constexpr index_t size = 128;
  const filterbank_extractor e;
  workspace ws;
  // Per-level, per-channel statistics of defect-free textures (a diagonal Gaussian, like the
  // simplest feature-space detector).
  constexpr int train_images = 6;
  std::vector<std::vector<double>> mean(3), var(3);
  for (int i = 0; i < train_images; ++i) {
    const std::vector<tensor> f = e.extract(normalized(texture(size, 100 + i), size).view(), ws, layout::nchw);
    for (std::size_t l = 0; l < 3; ++l) {
      const shape4 s = f[l].shape();
      mean[l].resize(static_cast<std::size_t>(s.c), 0.0);
      var[l].resize(static_cast<std::size_t>(s.c), 0.0);
      for (index_t c = 0; c < s.c; ++c)
        for (index_t y = 0; y < s.h; ++y)
          for (index_t x = 0; x < s.w; ++x) {
            const double v = f[l](0, c, y, x);
            mean[l][static_cast<std::size_t>(c)] += v / (train_images * s.h * s.w);
            var[l][static_cast<std::size_t>(c)] += v * v / (train_images * s.h * s.w);
          }
    }
  }
  for (std::size_t l = 0; l < 3; ++l)
    for (std::size_t c = 0; c < mean[l].size(); ++c) var[l][c] = std::max(var[l][c] - mean[l][c] * mean[l][c], 1e-8);

  struct defect {
    const char* name;
    std::vector<std::pair<double, double>> points;
    double radius, delta;
  };
  std::vector<defect> defects;
  {
    defect scratch{"scratch", {}, 0.6, 0.25};  // a bright line about one pixel wide, 45 px long
    for (int t = 0; t <= 90; ++t) scratch.points.push_back({30.0 + 0.45 * t, 40.0 + 0.2 * t});
    defects.push_back(scratch);
    defects.push_back({"spot", {{70.0, 60.0}}, 3.0, -0.25});
    defect crack{"crack", {}, 0.7, -0.25};  // a dark random walk
    detail::rng r(7);
    double x = 40.0, y = 80.0, angle = 0.3;
    for (int t = 0; t < 90; ++t) {
      angle += r.uniform(-0.35, 0.35);
      x += 0.5 * std::cos(angle);
      y += 0.5 * std::sin(angle);
      crack.points.push_back({x, y});
    }
    defects.push_back(crack);
  }
  for (std::size_t d = 0; d < defects.size(); ++d) {
    std::vector<double> img = texture(size, 200 + d);
    std::vector<unsigned char> mask(static_cast<std::size_t>(size * size), 0);
    paint(img, mask, size, defects[d].points, defects[d].radius, defects[d].delta);
    const std::vector<tensor> f = e.extract(normalized(img, size).view(), ws, layout::nchw);
    // Level 1 (stride 4): per position, the largest squared z-score over the channels, on the
    // defect versus clearly away from it (more than 3 feature pixels, and off the padded border).
    const std::size_t l = 0;
    const shape4 s = f[l].shape();
    const index_t stride = 4;
    double inside = 0.0, outside = 0.0;
    for (index_t y = 1; y < s.h - 1; ++y)
      for (index_t x = 1; x < s.w - 1; ++x) {
        double score = 0.0;
        for (index_t c = 0; c < s.c; ++c) {
          const double z = (f[l](0, c, y, x) - mean[l][static_cast<std::size_t>(c)]) /
                           std::sqrt(var[l][static_cast<std::size_t>(c)]);
          score = std::max(score, z * z);
        }
        // The defect's pixels in this cell's own stride x stride block, and within 3 cells of it.
        bool in_cell = false, near = false;
        for (index_t yy = std::max<index_t>(0, (y - 3) * stride); yy < std::min(size, (y + 4) * stride); ++yy)
          for (index_t xx = std::max<index_t>(0, (x - 3) * stride); xx < std::min(size, (x + 4) * stride); ++xx) {
            if (!mask[static_cast<std::size_t>(yy * size + xx)]) continue;
            near = true;
            if (yy / stride == y && xx / stride == x) in_cell = true;
          }
        if (in_cell) inside = std::max(inside, score);
        if (!near) outside = std::max(outside, score);
      }
    INFO(defects[d].name << ": largest score on the defect " << inside << ", largest elsewhere " << outside);
    CHECK(inside > 1.5 * outside);
  }
}

TEST_CASE("extractors run concurrently with one workspace per thread", "[extract]") {
  const filterbank_extractor fb;
  const resnet18_extractor rn(ref::random_weights(resnet18_extractor::required_weights(), 71));
  const extractor* extractors[] = {&fb, &rn};
  std::vector<tensor> inputs;
  for (int i = 0; i < 4; ++i) inputs.push_back(ref::random_images({2, 3, 48 + 16 * (i % 2), 64}, layout::nchw, 80 + i));
  std::vector<std::vector<std::vector<tensor>>> expected(2);
  {
    workspace ws;
    for (std::size_t k = 0; k < 2; ++k)
      for (const tensor& x : inputs) expected[k].push_back(extractors[k]->extract(x.view(), ws));
  }
  std::vector<std::vector<std::vector<tensor>>> got(2, std::vector<std::vector<tensor>>(inputs.size()));
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      workspace ws;
      for (int round = 0; round < 3; ++round)
        for (std::size_t i = 0; i < inputs.size(); ++i)
          for (std::size_t k = 0; k < 2; ++k) {
            const std::size_t j = (i + t) % inputs.size();  // the threads work on different inputs
            if (t == k)
              extractors[k]->extract(inputs[j].view(), got[k][j], ws);
            else {
              std::vector<tensor> scratch;
              extractors[k]->extract(inputs[j].view(), scratch, ws);
            }
          }
    });
  for (std::thread& th : threads) th.join();
  for (std::size_t k = 0; k < 2; ++k)
    for (std::size_t i = 0; i < inputs.size(); ++i)
      for (std::size_t l = 0; l < got[k][i].size(); ++l) {
        const double err = ref::relative_error(got[k][i][l].view(), ref::from_view(expected[k][i][l].view()));
        INFO("extractor " << k << " input " << i << " level " << l);
        CHECK(err <= 1e-6);
      }
}

TEST_CASE("inference_net runs a batch in chunks as it runs it whole", "[extract]") {
  const weight_map w = ref::random_weights(resnet18_extractor::required_weights(), 23);
  resnet18_extractor e(w);
  CHECK(e.network().max_chunk() == inference_net::default_max_chunk);
  CHECK(thrown_by([&] { e.network().set_max_chunk(0); }).code() == errc::invalid_argument);
  const tensor x = ref::random_images({7, 3, 48, 40}, layout::nhwc, 24);
  const std::vector<ref::map> want = ref::resnet18(w, ref::from_view(x.view()));
  workspace ws;
  std::vector<tensor> whole, chunked;
  e.network().set_max_chunk(7);
  e.extract(x.view(), whole, ws, layout::nchw);
  check_levels(whole, want, "resnet18 (one chunk of 7)");
  for (const index_t chunk : {1, 3, 4}) {  // 3 and 4 leave a remainder
    e.network().set_max_chunk(chunk);
    e.extract(x.view(), chunked, ws, layout::nchw);
    INFO("chunks of " << chunk);
    check_levels(chunked, want, "resnet18 (chunked)");
    for (std::size_t i = 0; i < chunked.size(); ++i) CHECK(chunked[i].shape() == whole[i].shape());
  }
  // A strided batch (every other image of a larger one) is cut into chunks by its own strides.
  const tensor wide = ref::random_images({14, 3, 48, 40}, layout::nchw, 25);
  const const_view every_other(wide.data(), {7, 3, 48, 40},
                               {2 * wide.view().strides().n, wide.view().strides().c, wide.view().strides().h,
                                wide.view().strides().w});
  const std::vector<ref::map> want_strided = ref::resnet18(w, ref::from_view(every_other));
  e.network().set_max_chunk(3);
  check_levels(e.extract(every_other, ws), want_strided, "resnet18 (strided, chunked)");
}

TEST_CASE("extract reuses its output tensors and workspace across calls", "[extract]") {
  const filterbank_extractor e;
  workspace ws;
  const tensor a = ref::random_images({2, 3, 64, 64}, layout::nchw, 91);
  const tensor b = ref::random_images({1, 3, 32, 48}, layout::nhwc, 92);
  std::vector<tensor> maps;
  e.extract(a.view(), maps, ws);
  std::vector<const float*> pointers;
  for (const tensor& m : maps) pointers.push_back(m.data());
  const std::vector<tensor> first = maps;
  e.extract(b.view(), maps, ws);  // smaller: fits in the same storage
  e.extract(a.view(), maps, ws);
  for (std::size_t i = 0; i < maps.size(); ++i) CHECK(maps[i].data() == pointers[i]);
  CHECK(identical(maps, first));
  const error wrong = thrown_by([&] { e.extract(tensor({1, 1, 32, 32}).view(), maps, ws); });
  CHECK(wrong.code() == errc::shape_mismatch);
  CHECK(thrown_by([&] { e.level_shape(3, a.shape()); }).code() == errc::invalid_argument);
}
