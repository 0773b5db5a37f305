#include "detectors/teacher_student/student_resnet.hpp"

#include "flowad/nn/elementwise.hpp"
#include "flowad/nn/pooling.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

student_resnet::student_resnet(const std::vector<index_t>& widths, index_t image_channels, std::uint64_t seed)
    : widths_(widths),
      stem_(nn::conv::config{image_channels, widths.at(0), 7, 2, false, seed}, "student.conv1"),
      stem_bn_(widths.at(0), true, "student.bn1") {
  blocks_.reserve(2 * widths.size());
  index_t in = widths[0];
  for (std::size_t l = 0; l < widths.size(); ++l) {
    const std::string name = "student.layer" + std::to_string(l + 1);
    const std::uint64_t s = seed + 16 * (l + 1);
    blocks_.emplace_back(in, widths[l], l == 0 ? resample::none : resample::down, name + ".0", s);
    blocks_.emplace_back(widths[l], widths[l], resample::none, name + ".1", s + 8);
    in = widths[l];
  }
}

double student_resnet::parameter_count(const std::vector<index_t>& widths, index_t image_channels) {
  double count = 49.0 * static_cast<double>(image_channels * widths.at(0)) + 4.0 * static_cast<double>(widths[0]);
  index_t in = widths[0];
  for (std::size_t l = 0; l < widths.size(); ++l) {
    count += residual_block::parameter_count(in, widths[l], l == 0 ? resample::none : resample::down);
    count += residual_block::parameter_count(widths[l], widths[l], resample::none);
    in = widths[l];
  }
  return count;
}

index_t student_resnet::level_size(std::size_t level, index_t image) const noexcept {
  index_t s = nn::max_pool_output_size(stem_.output_size(image));
  for (std::size_t l = 1; l <= level; ++l) s = (s - 1) / 2 + 1;
  return s;
}

void student_resnet::forward_training(const tensor& image, activations& a, workspace& ws) {
  const index_t n = image.n(), h = stem_.output_size(image.h()), w = stem_.output_size(image.w());
  shape_nhwc(a.stem_conv, n, widths_[0], h, w);
  stem_.forward(image.data(), a.stem_conv.data(), n, image.h(), image.w(), ws);
  a.stem_out.resize(a.stem_conv.shape(), layout::nhwc);
  stem_bn_.forward_training(a.stem_conv.data(), a.stem_out.data(), n * h * w, ws);
  shape_nhwc(a.pooled, n, widths_[0], nn::max_pool_output_size(h), nn::max_pool_output_size(w));
  nn::max_pool_forward(a.stem_out.data(), a.pooled.data(), n, widths_[0], h, w);
  a.blocks.resize(blocks_.size());
  const tensor* x = &a.pooled;
  for (std::size_t b = 0; b < blocks_.size(); ++b) {
    blocks_[b].forward_training(*x, a.blocks[b], ws);
    x = &a.blocks[b].out;
  }
}

void student_resnet::forward_inference(const tensor& image, activations& a, workspace& ws) const {
  const index_t n = image.n(), h = stem_.output_size(image.h()), w = stem_.output_size(image.w());
  shape_nhwc(a.stem_conv, n, widths_[0], h, w);
  stem_.forward(image.data(), a.stem_conv.data(), n, image.h(), image.w(), ws);
  stem_bn_.forward_inference(a.stem_conv.data(), a.stem_conv.data(), n * h * w, ws);
  shape_nhwc(a.pooled, n, widths_[0], nn::max_pool_output_size(h), nn::max_pool_output_size(w));
  nn::max_pool_forward(a.stem_conv.data(), a.pooled.data(), n, widths_[0], h, w);
  a.blocks.resize(blocks_.size());
  const tensor* x = &a.pooled;
  for (std::size_t b = 0; b < blocks_.size(); ++b) {
    blocks_[b].forward_inference(*x, a.blocks[b], ws);
    x = &a.blocks[b].out;
  }
}

void student_resnet::backward(const tensor& image, activations& a, std::vector<tensor>& d_levels, workspace& ws) {
  // g: the gradient at the current block's output; the level's own loss gradient joins at its output.
  tensor* g = &d_levels[levels() - 1];
  for (std::size_t b = blocks_.size(); b-- > 0;) {
    const tensor& x = b == 0 ? a.pooled : a.blocks[b - 1].out;
    tensor* d_x = &a.grad[b % 2];
    blocks_[b].backward(x, a.blocks[b], *g, d_x, ws);
    if (b > 0 && b % 2 == 0) {  // x is the output of level b/2 − 1
      const tensor& extra = d_levels[b / 2 - 1];
      nn::accumulate(extra.data(), d_x->data(), static_cast<std::size_t>(d_x->numel()));
    }
    g = d_x;
  }
  const index_t n = image.n(), h = a.stem_out.h(), w = a.stem_out.w();
  a.d_stem.resize(a.stem_out.shape(), layout::nhwc);
  nn::max_pool_backward(a.stem_out.data(), g->data(), a.d_stem.data(), n, widths_[0], h, w);
  stem_bn_.backward(a.stem_conv.data(), a.stem_out.data(), a.d_stem.data(), a.d_stem.data(), n * h * w, ws);
  stem_.backward(image.data(), a.d_stem.data(), nullptr, n, image.h(), image.w(), ws);
}

std::vector<parameter*> student_resnet::trained() {
  std::vector<parameter*> all = stem_.parameters();
  for (parameter* p : stem_bn_.trained()) all.push_back(p);
  for (auto& b : blocks_)
    for (parameter* p : b.trained()) all.push_back(p);
  return all;
}

std::vector<parameter*> student_resnet::parameters() {
  std::vector<parameter*> all = stem_.parameters();
  for (parameter* p : stem_bn_.parameters()) all.push_back(p);
  for (auto& b : blocks_)
    for (parameter* p : b.parameters()) all.push_back(p);
  return all;
}

double student_resnet::macs(index_t image_h, index_t image_w) const {
  double m = stem_.macs(1, image_h, image_w);
  index_t h = nn::max_pool_output_size(stem_.output_size(image_h)), w = nn::max_pool_output_size(stem_.output_size(image_w));
  for (const auto& b : blocks_) {
    m += b.macs(1, h, w);
    h = b.output_size(h);
    w = b.output_size(w);
  }
  return m;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
