#include "flowad/layers/sequential_flow.hpp"

#include "flowad/detail/checks.hpp"

namespace flowad {
inline namespace v0 {

struct sequential_flow::state : layer_state {
  std::vector<tensor> outputs;  // training: output of layer i for i < L-1
  tensor ping[2];               // inference and inverse: alternating intermediates
  tensor diff[2];               // backward: alternating gradients
  shape4 trained_shape{};
  bool has_training = false;
};

sequential_flow::sequential_flow(index_t channels) : channels_(channels) {
  if (channels <= 0) throw error(errc::invalid_argument, "sequential_flow needs positive channels, got " + std::to_string(channels));
}

flow_layer& sequential_flow::add(std::unique_ptr<flow_layer> layer) {
  if (!layer) throw error(errc::invalid_argument, "sequential_flow::add got a null layer");
  if (layer->channels() != channels_)
    throw error(errc::shape_mismatch, std::string("cannot add a ") + layer->kind() + " of " +
                                          std::to_string(layer->channels()) + " channels to a flow of " +
                                          std::to_string(channels_));
  layers_.push_back(std::move(layer));
  return *layers_.back();
}

void sequential_flow::check(const_view in, const char* in_name, const_view out, const char* out_name) const {
  detail::require_layer_pair("sequential_flow", channels_, in, in_name, out, out_name);
}

void sequential_flow::forward(const_view src, view dst, span<double> logdet, workspace& ws, pass_mode mode) const {
  check(src, "src", dst, "dst");
  detail::require_size(logdet.size(), static_cast<std::size_t>(src.n()), "logdet");
  if (layers_.empty()) {
    copy(src, dst);
    return;
  }
  state& st = ws.state<state>(id());
  const bool training = mode == pass_mode::training;
  if (training) {
    st.has_training = false;
    st.outputs.resize(layers_.size() - 1);
  }
  const_view in = src;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    view out = dst;
    if (i + 1 < layers_.size()) {
      tensor& t = training ? st.outputs[i] : st.ping[i % 2];
      t.resize(src.shape(), layout::nhwc);
      out = t.view();
    }
    layers_[i]->forward(in, out, logdet, ws, mode);
    in = out;
  }
  if (training) {
    st.trained_shape = src.shape();
    st.has_training = true;
  }
}

void sequential_flow::inverse(const_view dst, view src, workspace& ws) const {
  check(dst, "dst", src, "src");
  if (layers_.empty()) {
    copy(dst, src);
    return;
  }
  state& st = ws.state<state>(id());
  const_view in = dst;
  for (std::size_t k = 0; k < layers_.size(); ++k) {
    const std::size_t i = layers_.size() - 1 - k;
    view out = src;
    if (i > 0) {
      tensor& t = st.ping[k % 2];
      t.resize(dst.shape(), layout::nhwc);
      out = t.view();
    }
    layers_[i]->inverse(in, out, ws);
    in = out;
  }
}

void sequential_flow::backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet,
                               view diff_src, workspace& ws) {
  check(src, "src", dst, "dst");
  detail::require_same_shape(src, "src", diff_dst, "diff_dst");
  detail::require_same_shape(src, "src", diff_src, "diff_src");
  if (layers_.empty()) {
    copy(diff_dst, diff_src);
    return;
  }
  state& st = ws.state<state>(id());
  if (!st.has_training || st.trained_shape != src.shape())
    throw error(errc::invalid_argument, "sequential_flow::backward needs a training-mode forward on this workspace "
                                        "with the same shape first (src " + src.shape().str() + ")");
  const std::size_t count = layers_.size();
  const_view diff_out = diff_dst;
  for (std::size_t i = count; i-- > 0;) {
    const const_view in = i == 0 ? src : st.outputs[i - 1].cview();
    const const_view out = i + 1 == count ? dst : st.outputs[i].cview();
    view diff_in = diff_src;
    if (i > 0) {
      tensor& t = st.diff[i % 2];
      t.resize(src.shape(), layout::nhwc);
      diff_in = t.view();
    }
    layers_[i]->backward(in, out, diff_out, diff_logdet, diff_in, ws);
    diff_out = diff_in;
  }
}

std::vector<parameter*> sequential_flow::parameters() {
  std::vector<parameter*> all;
  for (auto& l : layers_) {
    const auto ps = l->parameters();
    all.insert(all.end(), ps.begin(), ps.end());
  }
  return all;
}

double sequential_flow::macs_per_sample(index_t h, index_t w) const noexcept {
  double macs = 0.0;
  for (const auto& l : layers_) macs += l->macs_per_sample(h, w);
  return macs;
}

void sequential_flow::clear_primitive_cache() {
  for (auto& l : layers_) l->clear_primitive_cache();
}

}  // namespace v0
}  // namespace flowad
