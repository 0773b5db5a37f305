// Steady-state calls do not allocate: every heap allocation of the process is counted (global operator
// new and malloc are replaced in this binary) and attributed to the shared object that asked for it.
//
// flowad's own code must make none once a shape has been seen. oneDNN 2.6 builds a small argument map
// inside every primitive execution (its exec_ctx_t); that is inside libdnnl and not avoidable through
// its API, so those allocations are reported separately and only bounded, not forbidden.
#include <catch2/catch.hpp>

#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "flowad/detectors/cflow.hpp"
#include "flowad/detectors/csflow.hpp"
#include "flowad/detectors/differnet.hpp"
#include "flowad/detectors/msflow.hpp"
#include "flowad/detectors/patchcore.hpp"
#include "flowad/detectors/teacher_student.hpp"
#include "flowad/layers/actnorm.hpp"
#include "flowad/layers/affine_coupling.hpp"
#include "flowad/layers/all_in_one_block.hpp"
#include "flowad/layers/invertible_1x1.hpp"
#include "flowad/layers/permute.hpp"
#include "flowad/layers/sequential_flow.hpp"
#include "flowad/nn/batch_norm.hpp"
#include "flowad/nn/consistency.hpp"
#include "flowad/nn/conv.hpp"
#include "flowad/nn/deconv.hpp"
#include "flowad/nn/elementwise.hpp"
#include "flowad/nn/layer_norm.hpp"
#include "flowad/nn/pooling.hpp"
#include "flowad/nn/snc.hpp"
#include "support/feature_data.hpp"
#include "support/layer_checks.hpp"

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}

namespace {

std::atomic<bool> armed{false};
std::atomic<long> ours{0}, onednn{0}, onednn_bytes{0}, onednn_largest{0};
thread_local bool inside_hook = false;

void record(const void* caller, std::size_t bytes) {
  if (!armed.load(std::memory_order_relaxed) || inside_hook) return;
  inside_hook = true;
  Dl_info info{};
  const bool from_onednn = dladdr(caller, &info) != 0 && info.dli_fname != nullptr &&
                           std::strstr(info.dli_fname, "libdnnl") != nullptr;
  if (from_onednn) {
    ++onednn;
    onednn_bytes += static_cast<long>(bytes);
    long largest = onednn_largest.load();
    while (static_cast<long>(bytes) > largest && !onednn_largest.compare_exchange_weak(largest, static_cast<long>(bytes))) {
    }
  } else {
    ++ours;
  }
  inside_hook = false;
}

void* checked(void* p) {
  if (!p) throw std::bad_alloc();
  return p;
}

std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

struct counts {
  long ours, onednn, onednn_bytes;
};
counts snapshot() { return {ours.load(), onednn.load(), onednn_bytes.load()}; }

// Runs f with counting on and returns what it allocated.
template <class F>
counts count_allocations(F&& f) {
  onednn_largest = 0;
  const counts before = snapshot();
  armed = true;
  f();
  armed = false;
  const counts after = snapshot();
  return {after.ours - before.ours, after.onednn - before.onednn, after.onednn_bytes - before.onednn_bytes};
}

// Scores twice to warm up, then three times more with counting on: no allocation of flowad's, and
// nothing inside oneDNN beyond its small per-call bookkeeping.
void check_scoring_allocates_nothing(const flowad::detector& model, const flowad::feature_maps& features,
                                     const flowad::score_options& options, const std::string& what) {
  flowad::scores out;
  for (int warm = 0; warm < 2; ++warm) model.score(features, options, out);
  const counts c = count_allocations([&] {
    for (int round = 0; round < 3; ++round) model.score(features, options, out);
  });
  INFO(what << ": flowad allocations " << c.ours << ", inside oneDNN " << c.onednn << " (largest "
            << onednn_largest.load() << " bytes)");
  CHECK(c.ours == 0);
  CHECK(onednn_largest.load() <= 1024);
}

}  // namespace

// The replacements. Each calls glibc's allocator directly, so an operator new is not counted twice.
extern "C" void* malloc(std::size_t n) {
  record(__builtin_return_address(0), n);
  return __libc_malloc(n);
}
extern "C" void* calloc(std::size_t n, std::size_t size) {
  record(__builtin_return_address(0), n * size);
  return __libc_calloc(n, size);
}
extern "C" void* realloc(void* p, std::size_t n) {
  record(__builtin_return_address(0), n);
  return __libc_realloc(p, n);
}
extern "C" int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
  record(__builtin_return_address(0), n);
  *out = __libc_memalign(alignment, n);
  return *out ? 0 : ENOMEM;
}
extern "C" void* aligned_alloc(std::size_t alignment, std::size_t n) {
  record(__builtin_return_address(0), n);
  return __libc_memalign(alignment, n);
}
extern "C" void free(void* p) { __libc_free(p); }

void* operator new(std::size_t n) {
  record(__builtin_return_address(0), n);
  return checked(__libc_malloc(n ? n : 1));
}
void* operator new[](std::size_t n) {
  record(__builtin_return_address(0), n);
  return checked(__libc_malloc(n ? n : 1));
}
void* operator new(std::size_t n, std::align_val_t a) {
  record(__builtin_return_address(0), n);
  return checked(__libc_memalign(static_cast<std::size_t>(a), round_up(n ? n : 1, static_cast<std::size_t>(a))));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  record(__builtin_return_address(0), n);
  return checked(__libc_memalign(static_cast<std::size_t>(a), round_up(n ? n : 1, static_cast<std::size_t>(a))));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  record(__builtin_return_address(0), n);
  return __libc_malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  record(__builtin_return_address(0), n);
  return __libc_malloc(n ? n : 1);
}
void operator delete(void* p) noexcept { __libc_free(p); }
void operator delete[](void* p) noexcept { __libc_free(p); }
void operator delete(void* p, std::size_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::size_t) noexcept { __libc_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { __libc_free(p); }

using namespace flowad;
using namespace flowad::testing;

namespace {

// Forward (inference), forward (training) + backward, and inverse of a layer, on one workspace.
void exercise(flow_layer& layer, const tensor& x, tensor& y, tensor& back, tensor& diff, const tensor& diff_y,
              std::vector<double>& logdet, const std::vector<double>& diff_logdet, workspace& ws) {
  std::fill(logdet.begin(), logdet.end(), 0.0);
  layer.forward(x.view(), y.view(), logdet, ws);
  layer.forward(x.view(), y.view(), logdet, ws, pass_mode::training);
  layer.backward(x.view(), y.view(), diff_y.view(), diff_logdet, diff.view(), ws);
  layer.inverse(y.view(), back.view(), ws);
}

void check_layer(flow_layer& layer, shape4 s, layout l) {
  const tensor x = random_tensor(s, l, 1), diff_y = random_tensor(s, l, 2);
  tensor y(s, l), back(s, l), diff(s, l);
  std::vector<double> logdet(static_cast<std::size_t>(s.n)), diff_logdet(static_cast<std::size_t>(s.n), -0.01);
  workspace ws;
  for (int warm = 0; warm < 2; ++warm) exercise(layer, x, y, back, diff, diff_y, logdet, diff_logdet, ws);
  const counts c = count_allocations([&] {
    for (int round = 0; round < 3; ++round) exercise(layer, x, y, back, diff, diff_y, logdet, diff_logdet, ws);
  });
  INFO(layer.kind() << " on " << s.str() << (l == layout::nhwc ? " NHWC" : " NCHW") << ": flowad allocations "
                    << c.ours << ", inside oneDNN " << c.onednn << " (" << c.onednn_bytes << " bytes, largest "
                    << onednn_largest.load() << ")");
  CHECK(c.ours == 0);
  // oneDNN's per-execution argument map: small nodes only, never a buffer.
  CHECK(onednn_largest.load() <= 1024);
}

affine_coupling_config coupling(index_t channels) {
  affine_coupling_config cfg;
  cfg.channels = channels;
  cfg.groups = 4;
  cfg.hidden = 32;
  cfg.kernel = 3;
  cfg.gain_init = 0.5f;
  return cfg;
}

}  // namespace

TEST_CASE("flow layers do not allocate once a shape has been seen", "[alloc]") {
  const shape4 s{3, 76, 6, 5};
  for (const layout l : {layout::nhwc, layout::nchw}) {
    permute p(s.c, 1);
    check_layer(p, s, l);
    actnorm a(s.c);
    a.initialize(random_tensor(s, l, 3).view());
    check_layer(a, s, l);
    invertible_1x1 inv(s.c, 4);
    check_layer(inv, s, l);
    affine_coupling c(coupling(s.c));
    check_layer(c, s, l);
    all_in_one_config block;
    block.coupling = coupling(s.c);
    all_in_one_block aio(block);
    check_layer(aio, s, l);
    sequential_flow flow(s.c);
    flow.emplace<permute>(s.c, 5);
    flow.emplace<affine_coupling>(coupling(s.c));
    flow.emplace<invertible_1x1>(s.c, 6);
    flow.emplace<affine_coupling>(coupling(s.c));
    check_layer(flow, s, l);
  }
}

TEST_CASE("layer_norm forward and backward do not allocate once a shape has been seen", "[alloc]") {
  const shape4 s{3, 16, 6, 5};
  layer_norm ln(s.c, s.h, s.w);
  for (const layout l : {layout::nhwc, layout::nchw}) {
    for (const bool strided : {false, true}) {
      // Strided: channels 1.. of a wider tensor, which the layer copies through workspace scratch.
      tensor wide = random_tensor({s.n, s.c + 1, s.h, s.w}, l, 1);
      const tensor dense = random_tensor(s, l, 1), diff_y = random_tensor(s, l, 2);
      const const_view x = strided ? const_view(wide.view().channels(1, s.c)) : dense.view();
      tensor y(s, l), diff_x(s, l);
      workspace ws;
      auto step = [&] {
        ln.forward(x, y.view(), ws);
        ln.forward(x, y.view(), ws, pass_mode::training);
        ln.backward(x, diff_y.view(), view(), ws);  // parameter gradients only
        ln.backward(x, diff_y.view(), diff_x.view(), ws);
        ln.weight().mark_updated();  // an optimiser step: the NHWC copies of the parameters are rebuilt
      };
      for (int warm = 0; warm < 2; ++warm) step();
      const counts c = count_allocations([&] {
        for (int round = 0; round < 3; ++round) step();
      });
      INFO("layer_norm on " << s.str() << (l == layout::nhwc ? " NHWC" : " NCHW") << (strided ? " strided" : "")
                            << ": allocations " << c.ours);
      CHECK(c.ours == 0);
    }
  }
}

TEST_CASE("teacher-student layers do not allocate in a repeated training step", "[alloc][nn]") {
  // conv(s2) -> batch_norm(relu) -> max_pool -> conv -> batch_norm -> + residual -> relu -> deconv.
  const index_t n = 2, in = 3, h = 17, w = 13, ch = 8;
  nn::conv stem({in, ch, 7, 2, false, 1}, "conv1"), body({ch, ch, 3, 1, false, 2}, "conv2");
  nn::batch_norm bn1(ch, true, "bn1"), bn2(ch, false, "bn2");
  nn::deconv up({ch, 4, 2, true, 3}, "up");
  const index_t h1 = stem.output_size(h), w1 = stem.output_size(w);
  const index_t h2 = nn::max_pool_output_size(h1), w2 = nn::max_pool_output_size(w1);
  auto buffer = [](index_t count) { return std::vector<float>(static_cast<std::size_t>(count)); };
  const tensor input = random_tensor({n, in, h, w}, layout::nhwc, 1);
  const tensor diff_out = random_tensor({n, 4, 2 * h2, 2 * w2}, layout::nhwc, 2);
  const index_t cells1 = n * h1 * w1, cells2 = n * h2 * w2;
  std::vector<float> c1 = buffer(cells1 * ch), b1 = buffer(cells1 * ch), d1 = buffer(cells1 * ch);
  std::vector<float> pooled = buffer(cells2 * ch), d_pooled = buffer(cells2 * ch), c2 = buffer(cells2 * ch),
                     b2 = buffer(cells2 * ch), d2 = buffer(cells2 * ch), sum = buffer(cells2 * ch),
                     d_sum = buffer(cells2 * ch), out = buffer(cells2 * 4 * 4);
  const auto count = static_cast<std::size_t>(cells2 * ch);
  workspace ws;
  auto forward = [&](bool training) {
    stem.forward(input.data(), c1.data(), n, h, w, ws);
    if (training) bn1.forward_training(c1.data(), b1.data(), cells1, ws);
    else bn1.forward_inference(c1.data(), b1.data(), cells1, ws);
    nn::max_pool_forward(b1.data(), pooled.data(), n, ch, h1, w1);
    body.forward(pooled.data(), c2.data(), n, h2, w2, ws);
    if (training) bn2.forward_training(c2.data(), b2.data(), cells2, ws);
    else bn2.forward_inference(c2.data(), b2.data(), cells2, ws);
    nn::add(b2.data(), pooled.data(), sum.data(), count);
    nn::relu_forward(sum.data(), sum.data(), count);
    up.forward(sum.data(), out.data(), n, h2, w2, ws);
  };
  auto step = [&] {
    forward(true);
    up.backward(sum.data(), diff_out.data(), d_sum.data(), n, h2, w2, ws);
    nn::relu_backward(sum.data(), d_sum.data(), d_sum.data(), count);
    bn2.backward(c2.data(), b2.data(), d_sum.data(), d2.data(), cells2, ws);
    body.backward(pooled.data(), d2.data(), d_pooled.data(), n, h2, w2, ws);
    nn::accumulate(d_sum.data(), d_pooled.data(), count);  // the residual branch
    nn::max_pool_backward(b1.data(), d_pooled.data(), d1.data(), n, ch, h1, w1);
    bn1.backward(c1.data(), b1.data(), d1.data(), d1.data(), cells1, ws);
    stem.backward(input.data(), d1.data(), nullptr, n, h, w, ws);
    for (parameter* p : {&stem.weight(), &body.weight(), &up.weight()}) p->mark_updated();  // an optimiser step
  };
  step();
  const counts training = count_allocations(step);
  INFO("training step: flowad allocations " << training.ours << ", inside oneDNN " << training.onednn);
  CHECK(training.ours == 0);
  forward(false);
  const counts inference = count_allocations([&] { forward(false); });
  INFO("inference: flowad allocations " << inference.ours);
  CHECK(inference.ours == 0);
}

TEST_CASE("msflow scoring does not allocate in steady state", "[alloc]") {
  const feature_dataset data = make_feature_dataset(16, 8, 32, 6, 6, 3);
  for (const score_aggregation how : {score_aggregation::top_k_mean, score_aggregation::max, score_aggregation::mean}) {
    msflow_config cfg;
    cfg.scales = {{16, 8, 8}};
    cfg.groups = 4;
    cfg.hidden = 16;
    cfg.blocks = 2;
    cfg.image_score = how;
    cfg.training.epochs = 1;
    msflow model(cfg);
    model.fit({data.train});
    score_options so;
    so.map_height = so.map_width = 32;
    so.batch_size = 5;  // a full and a partial batch
    const feature_maps features{data.test};  // built once: a braced list would allocate a vector per call
    check_scoring_allocates_nothing(model, features, so, std::string("msflow score with ") + to_string(how));
  }
}

TEST_CASE("differnet scoring does not allocate in steady state", "[alloc][differnet]") {
  const feature_dataset data = make_feature_dataset(16, 6, 16, 6, 6, 3);
  differnet_config cfg = differnet_config::recommended({{16, 6, 6}});
  cfg.hidden = 32;
  cfg.blocks = 2;
  cfg.train_rotations = 1;
  cfg.training.epochs = 1;
  differnet model(cfg);
  model.fit({data.train});
  score_options so;
  so.batch_size = 5;  // a full and a partial batch
  const feature_maps features{data.test};
  check_scoring_allocates_nothing(model, features, so, "differnet score");
}

TEST_CASE("msflow training steps do not allocate after the first epoch", "[alloc]") {
  const feature_dataset data = make_feature_dataset(16, 8, 40, 1, 1, 5);
  msflow_config cfg;
  cfg.scales = {{16, 8, 8}};
  cfg.groups = 4;
  cfg.hidden = 16;
  cfg.blocks = 2;
  cfg.mixing = block_mixing::invertible_1x1;
  cfg.training.epochs = 3;
  cfg.training.batch_size = 16;  // steps of 16, 16 and 8 samples
  msflow model(cfg);
  fit_options opt;
  std::vector<counts> at_step;
  at_step.reserve(64);
  onednn_largest = 0;
  opt.on_progress = [&](const fit_progress& p) {
    armed = false;
    if (p.epoch >= 1) {
      if (at_step.empty()) onednn_largest = 0;  // epoch 1 created primitives for both batch sizes
      at_step.push_back(snapshot());
    }
    armed = true;
  };
  model.fit({data.train}, opt);
  armed = false;
  REQUIRE(at_step.size() == 6);
  for (std::size_t i = 1; i < at_step.size(); ++i) {
    INFO("between steps " << i << " and " << i + 1 << " of epochs 2-3: flowad allocations "
                          << at_step[i].ours - at_step[i - 1].ours << ", inside oneDNN "
                          << at_step[i].onednn - at_step[i - 1].onednn);
    CHECK(at_step[i].ours - at_step[i - 1].ours == 0);
  }
  CHECK(onednn_largest.load() <= 1024);
}

TEST_CASE("cflow scoring does not allocate in steady state", "[alloc]") {
  const feature_dataset a = make_feature_dataset(16, 8, 12, 6, 6, 3);
  const feature_dataset b = make_feature_dataset(12, 4, 12, 6, 6, 4);
  cflow_config cfg = cflow_config::recommended({{16, 8, 8}, {12, 4, 4}});
  cfg.blocks = 2;
  cfg.condition_channels = 8;
  cfg.training.epochs = 1;
  cfg.training.batch_size = 64;
  cflow model(cfg);
  model.fit({a.train, b.train});
  score_options so;
  so.map_height = so.map_width = 32;
  so.cell_offsets = {0.0, 0.25};
  so.batch_size = 5;  // a full and a partial batch
  const feature_maps features{a.test, b.test};
  check_scoring_allocates_nothing(model, features, so, "cflow score");
}

TEST_CASE("csflow scoring does not allocate in steady state", "[alloc]") {
  const feature_dataset data = make_feature_dataset(8, 8, 16, 3, 3, 9);
  const tensor scale1 = random_tensor({6, 6, 4, 4}, layout::nchw, 10), scale2 = random_tensor({6, 4, 2, 2}, layout::nchw, 11);
  const tensor train1 = random_tensor({16, 6, 4, 4}, layout::nchw, 12), train2 = random_tensor({16, 4, 2, 2}, layout::nchw, 13);
  csflow_config cfg;
  cfg.scales = {{8, 8, 8}, {6, 4, 4}, {4, 2, 2}};
  cfg.hidden = 8;
  cfg.training.epochs = 1;
  csflow model(cfg);
  model.fit({data.train.cview(), train1.cview(), train2.cview()});
  score_options so;
  so.map_height = so.map_width = 32;
  so.batch_size = 4;  // a full and a partial batch
  const feature_maps features{data.test.cview(), scale1.cview(), scale2.cview()};
  check_scoring_allocates_nothing(model, features, so, "csflow score");
}

TEST_CASE("patchcore scoring does not allocate in steady state", "[alloc]") {
  const feature_dataset a = make_feature_dataset(16, 8, 24, 8, 8, 5);
  const feature_dataset b = make_feature_dataset(12, 4, 24, 8, 8, 6);
  for (const search_precision precision : {search_precision::float32, search_precision::bfloat16}) {
    patchcore_config cfg = patchcore_config::recommended({{16, 8, 8}, {12, 4, 4}});
    cfg.coreset_fraction = 0.25;
    cfg.search = precision;
    patchcore model(cfg);
    model.fit({a.train, b.train});
    score_options so;
    so.map_height = so.map_width = 32;
    so.cell_offsets = {0.0, 0.25};
    so.batch_size = 5;  // a full and a partial batch
    const feature_maps features{a.test, b.test};
    check_scoring_allocates_nothing(model, features, so, std::string("patchcore score, ") + (precision == search_precision::float32 ? "float32" : "bfloat16") + " search");
  }
}

namespace {

// Small teacher-student features: the RD host's three levels, or the image and three levels for STFPM.
std::vector<tensor> teacher_student_features(bool image, index_t n, std::uint64_t seed) {
  std::vector<tensor> scales;
  if (image) scales.push_back(random_tensor({n, 3, 32, 32}, layout::nhwc, seed));
  const index_t first = image ? 8 : 16;
  scales.push_back(random_tensor({n, 8, first, first}, layout::nhwc, seed + 1));
  scales.push_back(random_tensor({n, 16, first / 2, first / 2}, layout::nhwc, seed + 2));
  scales.push_back(random_tensor({n, 32, first / 4, first / 4}, layout::nhwc, seed + 3));
  return scales;
}

feature_maps views(const std::vector<tensor>& t) {
  feature_maps v;
  for (const tensor& x : t) v.push_back(x.cview());
  return v;
}

teacher_student_config teacher_student_setup(const char* kind, const std::vector<tensor>& scales) {
  feature_geometry g;
  for (const tensor& t : scales) g.shapes.push_back({t.c(), t.h(), t.w()});
  teacher_student_config cfg = teacher_student_config::recommended(kind, g);
  cfg.training.batch_size = 8;
  return cfg;
}

}  // namespace

TEST_CASE("teacher-student scoring does not allocate in steady state", "[alloc][teacher_student]") {
  for (const bool image : {false, true}) {
    for (const char* kind : {"fcl", image ? "stfpm" : "rd"}) {
      const std::vector<tensor> train = teacher_student_features(image, 8, 1), test = teacher_student_features(image, 5, 2);
      teacher_student_config cfg = teacher_student_setup(kind, train);
      cfg.training.epochs = 1;
      teacher_student model(kind, cfg);
      model.fit(views(train));
      score_options so;
      so.map_height = so.map_width = 32;
      so.batch_size = 3;  // a full and a partial batch
      check_scoring_allocates_nothing(model, views(test), so,
                                      std::string(kind) + (image ? " on the STFPM host" : " on the RD host") + " score");
    }
  }
}

TEST_CASE("teacher-student training steps do not allocate after the first epoch", "[alloc][teacher_student]") {
  for (const bool image : {false, true}) {
    INFO((image ? "fcl on the STFPM host" : "fcl on the RD host"));
    const std::vector<tensor> train = teacher_student_features(image, 20, 3);  // steps of 8, 8 and 4
    teacher_student_config cfg = teacher_student_setup("fcl", train);
    cfg.training.epochs = 3;
    teacher_student model("fcl", cfg);
    fit_options opt;
    std::vector<counts> at_step;
    at_step.reserve(64);
    onednn_largest = 0;
    opt.on_progress = [&](const fit_progress& p) {
      armed = false;
      if (p.epoch >= 1) {
        if (at_step.empty()) onednn_largest = 0;
        at_step.push_back(snapshot());
      }
      armed = true;
    };
    model.fit(views(train), opt);
    armed = false;
    REQUIRE(at_step.size() == 6);
    for (std::size_t i = 1; i < at_step.size(); ++i) {
      INFO("between steps " << i << " and " << i + 1 << " of epochs 2-3: flowad allocations "
                            << at_step[i].ours - at_step[i - 1].ours);
      CHECK(at_step[i].ours - at_step[i - 1].ours == 0);
    }
    CHECK(onednn_largest.load() <= 1024);
  }
}

TEST_CASE("snc and the teacher-student distances do not allocate once a shape has been seen", "[alloc]") {
  const shape4 s{3, 40, 9, 11};  // large enough for the parallel paths
  const tensor t = random_tensor(s, layout::nhwc, 1), u = random_tensor(s, layout::nhwc, 2);
  tensor code(s, layout::nhwc), diff_t(s, layout::nhwc), diff_s(s, layout::nhwc);
  tensor map({s.n, 1, s.h, s.w}, layout::nhwc);
  map.fill(1.0f);
  double flat[3] = {}, diff_flat[3] = {1.0, -1.0, 0.5};
  flowad::nn::snc layer(s.c, 5, "snc");
  auto step = [&] {
    layer.forward(t.data(), code.data(), s.n, s.h, s.w);
    layer.backward(t.data(), u.data(), nullptr, s.n, s.h, s.w);
    layer.backward(t.data(), u.data(), diff_t.data(), s.n, s.h, s.w);
    layer.logits().mark_updated();
    for (const auto d : {flowad::nn::ts_distance::cosine, flowad::nn::ts_distance::normalized_l2}) {
      flowad::nn::distance_map(d, t.data(), u.data(), map.data(), s.n, s.c, s.h, s.w);
      flowad::nn::distance_map_backward(d, t.data(), u.data(), map.data(), diff_t.data(), diff_s.data(), s.n, s.c,
                                        s.h, s.w);
    }
    flowad::nn::flattened_cosine_distance(t.data(), u.data(), flat, s.n, s.c, s.h, s.w);
    flowad::nn::flattened_cosine_distance_backward(t.data(), u.data(), diff_flat, diff_t.data(), diff_s.data(), s.n,
                                                   s.c, s.h, s.w);
  };
  for (int warm = 0; warm < 2; ++warm) step();
  const counts c = count_allocations([&] {
    for (int round = 0; round < 3; ++round) step();
  });
  INFO("snc and distances on " << s.str() << ": allocations " << c.ours);
  CHECK(c.ours == 0);
}
