#include "detectors/teacher_student/reverse_distillation_net.hpp"

#include <algorithm>
#include <cstring>

#include "flowad/error.hpp"
#include "flowad/nn/elementwise.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

namespace {

index_t halved(index_t s) { return (s - 1) / 2 + 1; }

// dst (n x c x h x w) = the top-left h x w cells of src (n x c x H x W, H >= h, W >= w).
void crop(const tensor& src, tensor& dst, index_t h, index_t w) {
  shape_nhwc(dst, src.n(), src.c(), h, w);
  const std::size_t row = static_cast<std::size_t>(w * src.c());
  for (index_t n = 0; n < src.n(); ++n)
    for (index_t y = 0; y < h; ++y)
      std::memcpy(dst.data() + ((n * h + y) * w) * src.c(), src.data() + ((n * src.h() + y) * src.w()) * src.c(),
                  row * sizeof(float));
}

// The adjoint of crop: dst (the source's shape) holds src in its top-left corner and 0 elsewhere.
void uncrop(const tensor& src, tensor& dst, const shape4& full) {
  dst.resize(full, layout::nhwc);
  if (full == src.shape()) {
    std::memcpy(dst.data(), src.data(), static_cast<std::size_t>(src.numel()) * sizeof(float));
    return;
  }
  dst.fill(0.0f);
  const std::size_t row = static_cast<std::size_t>(src.w() * src.c());
  for (index_t n = 0; n < src.n(); ++n)
    for (index_t y = 0; y < src.h(); ++y)
      std::memcpy(dst.data() + ((n * full.h + y) * full.w) * src.c(), src.data() + ((n * src.h() + y) * src.w()) * src.c(),
                  row * sizeof(float));
}

// dst (n x (ca + cb + cc) x h x w) = the channels of a, b and c one after the other.
void concatenate(const tensor& a, const tensor& b, const tensor& c, tensor& dst) {
  const index_t cells = a.n() * a.h() * a.w(), ca = a.c(), cb = b.c(), cc = c.c(), ct = ca + cb + cc;
  shape_nhwc(dst, a.n(), ct, a.h(), a.w());
#pragma omp parallel for schedule(static) if (cells >= 1024)
  for (index_t i = 0; i < cells; ++i) {
    float* out = dst.data() + i * ct;
    std::memcpy(out, a.data() + i * ca, static_cast<std::size_t>(ca) * sizeof(float));
    std::memcpy(out + ca, b.data() + i * cb, static_cast<std::size_t>(cb) * sizeof(float));
    std::memcpy(out + ca + cb, c.data() + i * cc, static_cast<std::size_t>(cc) * sizeof(float));
  }
}

// The first two channel groups of `joined`'s gradient, into da and db.
void split_gradient(const tensor& joined, tensor& da, tensor& db, index_t ca, index_t cb) {
  const index_t cells = joined.n() * joined.h() * joined.w(), ct = joined.c();
  shape_nhwc(da, joined.n(), ca, joined.h(), joined.w());
  shape_nhwc(db, joined.n(), cb, joined.h(), joined.w());
#pragma omp parallel for schedule(static) if (cells >= 1024)
  for (index_t i = 0; i < cells; ++i) {
    std::memcpy(da.data() + i * ca, joined.data() + i * ct, static_cast<std::size_t>(ca) * sizeof(float));
    std::memcpy(db.data() + i * cb, joined.data() + i * ct + ca, static_cast<std::size_t>(cb) * sizeof(float));
  }
}

const std::vector<scale_shape>& checked(const std::vector<scale_shape>& t) {
  if (t.size() != 3) throw error(errc::invalid_argument, "reverse distillation needs three teacher levels, got " + std::to_string(t.size()));
  for (std::size_t l = 1; l < 3; ++l)
    if (t[l].height != halved(t[l - 1].height) || t[l].width != halved(t[l - 1].width))
      throw error(errc::invalid_argument, "reverse distillation needs each teacher level half the size of the one before, got " +
                                              to_config_text(t));
  return t;
}

}  // namespace

reverse_distillation_net::reverse_distillation_net(const std::vector<scale_shape>& teacher, std::uint64_t seed)
    : teacher_(checked(teacher)),
      a1_conv_(nn::conv::config{teacher[0].channels, teacher[1].channels, 3, 2, false, seed + 1}, "ocbe.conv1"),
      a2_conv_(nn::conv::config{teacher[1].channels, teacher[2].channels, 3, 2, false, seed + 2}, "ocbe.conv2"),
      b_conv_(nn::conv::config{teacher[1].channels, teacher[2].channels, 3, 2, false, seed + 3}, "ocbe.conv3"),
      a1_bn_(teacher[1].channels, true, "ocbe.bn1"),
      a2_bn_(teacher[2].channels, true, "ocbe.bn2"),
      b_bn_(teacher[2].channels, true, "ocbe.bn3") {
  const index_t c1 = teacher[0].channels, c2 = teacher[1].channels, c3 = teacher[2].channels;
  bottleneck_.reserve(2);
  bottleneck_.emplace_back(3 * c3, 2 * c3, resample::down, "ocbe.layer.0", seed + 16);
  bottleneck_.emplace_back(2 * c3, 2 * c3, resample::none, "ocbe.layer.1", seed + 24);
  const index_t widths[4] = {2 * c3, c3, c2, c1};
  decoder_.reserve(6);
  for (int l = 0; l < 3; ++l) {
    const std::string name = "decoder.layer" + std::to_string(l + 1);
    decoder_.emplace_back(widths[l], widths[l + 1], resample::up, name + ".0", seed + 32 + 16 * static_cast<std::uint64_t>(l));
    decoder_.emplace_back(widths[l + 1], widths[l + 1], resample::none, name + ".1", seed + 40 + 16 * static_cast<std::uint64_t>(l));
  }
}

double reverse_distillation_net::parameter_count(const std::vector<scale_shape>& teacher) {
  const index_t c1 = checked(teacher)[0].channels, c2 = teacher[1].channels, c3 = teacher[2].channels;
  double count = 9.0 * static_cast<double>(c1 * c2 + 2 * c2 * c3) + 4.0 * static_cast<double>(c2 + 2 * c3);
  count += residual_block::parameter_count(3 * c3, 2 * c3, resample::down);
  count += residual_block::parameter_count(2 * c3, 2 * c3, resample::none);
  const index_t widths[4] = {2 * c3, c3, c2, c1};
  for (int l = 0; l < 3; ++l) {
    count += residual_block::parameter_count(widths[l], widths[l + 1], resample::up);
    count += residual_block::parameter_count(widths[l + 1], widths[l + 1], resample::none);
  }
  return count;
}

void reverse_distillation_net::forward_training(const tensor* f, activations& a, workspace& ws) {
  const index_t n = f[0].n();
  shape_nhwc(a.a1_conv, n, teacher_[1].channels, teacher_[1].height, teacher_[1].width);
  a1_conv_.forward(f[0].data(), a.a1_conv.data(), n, f[0].h(), f[0].w(), ws);
  a.a1.resize(a.a1_conv.shape(), layout::nhwc);
  a1_bn_.forward_training(a.a1_conv.data(), a.a1.data(), n * a.a1.h() * a.a1.w(), ws);
  shape_nhwc(a.a2_conv, n, teacher_[2].channels, teacher_[2].height, teacher_[2].width);
  a2_conv_.forward(a.a1.data(), a.a2_conv.data(), n, a.a1.h(), a.a1.w(), ws);
  a.a2.resize(a.a2_conv.shape(), layout::nhwc);
  a2_bn_.forward_training(a.a2_conv.data(), a.a2.data(), n * a.a2.h() * a.a2.w(), ws);
  shape_nhwc(a.b_conv, n, teacher_[2].channels, teacher_[2].height, teacher_[2].width);
  b_conv_.forward(f[1].data(), a.b_conv.data(), n, f[1].h(), f[1].w(), ws);
  a.b.resize(a.b_conv.shape(), layout::nhwc);
  b_bn_.forward_training(a.b_conv.data(), a.b.data(), n * a.b.h() * a.b.w(), ws);
  concatenate(a.a2, a.b, f[2], a.joined);
  a.bottleneck.resize(2);
  a.decoder.resize(6);
  bottleneck_[0].forward_training(a.joined, a.bottleneck[0], ws);
  bottleneck_[1].forward_training(a.bottleneck[0].out, a.bottleneck[1], ws);
  const tensor* x = &a.bottleneck[1].out;
  for (int l = 0; l < 3; ++l) {
    decoder_[2 * l].forward_training(*x, a.decoder[2 * l], ws);
    decoder_[2 * l + 1].forward_training(a.decoder[2 * l].out, a.decoder[2 * l + 1], ws);
    const scale_shape& t = teacher_[2 - l];
    crop(a.decoder[2 * l + 1].out, a.levels[2 - l], t.height, t.width);
    x = &a.levels[2 - l];
    a.level_in_place[2 - l] = false;
  }
}

void reverse_distillation_net::forward_inference(const tensor* f, activations& a, workspace& ws) const {
  const index_t n = f[0].n();
  shape_nhwc(a.a1, n, teacher_[1].channels, teacher_[1].height, teacher_[1].width);
  a1_conv_.forward(f[0].data(), a.a1.data(), n, f[0].h(), f[0].w(), ws);
  a1_bn_.forward_inference(a.a1.data(), a.a1.data(), n * a.a1.h() * a.a1.w(), ws);
  shape_nhwc(a.a2, n, teacher_[2].channels, teacher_[2].height, teacher_[2].width);
  a2_conv_.forward(a.a1.data(), a.a2.data(), n, a.a1.h(), a.a1.w(), ws);
  a2_bn_.forward_inference(a.a2.data(), a.a2.data(), n * a.a2.h() * a.a2.w(), ws);
  shape_nhwc(a.b, n, teacher_[2].channels, teacher_[2].height, teacher_[2].width);
  b_conv_.forward(f[1].data(), a.b.data(), n, f[1].h(), f[1].w(), ws);
  b_bn_.forward_inference(a.b.data(), a.b.data(), n * a.b.h() * a.b.w(), ws);
  concatenate(a.a2, a.b, f[2], a.joined);
  a.bottleneck.resize(2);
  a.decoder.resize(6);
  bottleneck_[0].forward_inference(a.joined, a.bottleneck[0], ws);
  bottleneck_[1].forward_inference(a.bottleneck[0].out, a.bottleneck[1], ws);
  const tensor* x = &a.bottleneck[1].out;
  for (int l = 0; l < 3; ++l) {
    decoder_[2 * l].forward_inference(*x, a.decoder[2 * l], ws);
    decoder_[2 * l + 1].forward_inference(a.decoder[2 * l].out, a.decoder[2 * l + 1], ws);
    const scale_shape& t = teacher_[2 - l];
    const tensor& out = a.decoder[2 * l + 1].out;
    a.level_in_place[2 - l] = out.h() == t.height && out.w() == t.width;  // image sides a multiple of 32
    if (!a.level_in_place[2 - l]) crop(out, a.levels[2 - l], t.height, t.width);
    x = &level(a, static_cast<std::size_t>(2 - l));
  }
}

void reverse_distillation_net::backward(const tensor* f, activations& a, std::vector<tensor>& d_levels, workspace& ws) {
  // Decoder, finest level first: the gradient at a level's (cropped) output is its loss gradient plus,
  // for all but the finest, what the next finer level's first block sends back.
  tensor* d_level = &d_levels[0];
  for (int l = 2; l >= 0; --l) {
    const tensor& x = l == 0 ? a.bottleneck[1].out : a.levels[3 - l];
    uncrop(*d_level, a.d_tmp, a.decoder[2 * l + 1].out.shape());
    decoder_[2 * l + 1].backward(a.decoder[2 * l].out, a.decoder[2 * l + 1], a.d_tmp, &a.grad[0], ws);
    decoder_[2 * l].backward(x, a.decoder[2 * l], a.grad[0], &a.grad[1], ws);
    if (l > 0) {
      // a.grad[1] is dL/d levels[3 − l], the coarser level's output: add that level's loss gradient.
      tensor& coarser = d_levels[3 - l];
      nn::accumulate(a.grad[1].data(), coarser.data(), static_cast<std::size_t>(coarser.numel()));
      d_level = &coarser;
    }
  }
  // a.grad[1] = dL/d bottleneck output.
  bottleneck_[1].backward(a.bottleneck[0].out, a.bottleneck[1], a.grad[1], &a.grad[0], ws);
  bottleneck_[0].backward(a.joined, a.bottleneck[0], a.grad[0], &a.d_joined, ws);
  const index_t c3 = teacher_[2].channels, n = f[0].n();
  split_gradient(a.d_joined, a.grad[0], a.grad[1], c3, c3);  // grad[0] = dL/da2, grad[1] = dL/db
  const index_t cells3 = n * teacher_[2].height * teacher_[2].width;
  a2_bn_.backward(a.a2_conv.data(), a.a2.data(), a.grad[0].data(), a.grad[0].data(), cells3, ws);
  a.d_a1.resize(a.a1.shape(), layout::nhwc);
  a2_conv_.backward(a.a1.data(), a.grad[0].data(), a.d_a1.data(), n, a.a1.h(), a.a1.w(), ws);
  a1_bn_.backward(a.a1_conv.data(), a.a1.data(), a.d_a1.data(), a.d_a1.data(), n * a.a1.h() * a.a1.w(), ws);
  a1_conv_.backward(f[0].data(), a.d_a1.data(), nullptr, n, f[0].h(), f[0].w(), ws);
  b_bn_.backward(a.b_conv.data(), a.b.data(), a.grad[1].data(), a.grad[1].data(), cells3, ws);
  b_conv_.backward(f[1].data(), a.grad[1].data(), nullptr, n, f[1].h(), f[1].w(), ws);
}

std::vector<parameter*> reverse_distillation_net::trained() {
  std::vector<parameter*> all;
  for (nn::conv* c : {&a1_conv_, &a2_conv_, &b_conv_})
    for (parameter* p : c->parameters()) all.push_back(p);
  for (nn::batch_norm* b : {&a1_bn_, &a2_bn_, &b_bn_})
    for (parameter* p : b->trained()) all.push_back(p);
  for (auto* blocks : {&bottleneck_, &decoder_})
    for (auto& b : *blocks)
      for (parameter* p : b.trained()) all.push_back(p);
  return all;
}

std::vector<parameter*> reverse_distillation_net::parameters() {
  std::vector<parameter*> all;
  for (nn::conv* c : {&a1_conv_, &a2_conv_, &b_conv_})
    for (parameter* p : c->parameters()) all.push_back(p);
  for (nn::batch_norm* b : {&a1_bn_, &a2_bn_, &b_bn_})
    for (parameter* p : b->parameters()) all.push_back(p);
  for (auto* blocks : {&bottleneck_, &decoder_})
    for (auto& b : *blocks)
      for (parameter* p : b.parameters()) all.push_back(p);
  return all;
}

double reverse_distillation_net::macs() const {
  const scale_shape& t0 = teacher_[0];
  const scale_shape& t1 = teacher_[1];
  const scale_shape& t2 = teacher_[2];
  double m = a1_conv_.macs(1, t0.height, t0.width) + a2_conv_.macs(1, t1.height, t1.width) + b_conv_.macs(1, t1.height, t1.width);
  m += bottleneck_[0].macs(1, t2.height, t2.width);
  index_t h = bottleneck_[0].output_size(t2.height), w = bottleneck_[0].output_size(t2.width);
  m += bottleneck_[1].macs(1, h, w);
  for (int l = 0; l < 3; ++l) {
    m += decoder_[2 * l].macs(1, h, w);
    const index_t uh = decoder_[2 * l].output_size(h), uw = decoder_[2 * l].output_size(w);
    m += decoder_[2 * l + 1].macs(1, uh, uw);
    h = teacher_[2 - l].height;
    w = teacher_[2 - l].width;
  }
  return m;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
