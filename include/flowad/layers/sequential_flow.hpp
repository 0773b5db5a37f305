// A chain of flow layers, itself a flow layer: f = f_L ∘ ... ∘ f_1, log|det J| = Σ log|det J_i|.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "flowad/layers/flow_layer.hpp"

namespace flowad {
inline namespace v0 {

class sequential_flow final : public flow_layer {
 public:
  explicit sequential_flow(index_t channels);

  // Appends a layer; throws unless it has this flow's channel count.
  flow_layer& add(std::unique_ptr<flow_layer> layer);
  template <class Layer, class... Args>
  Layer& emplace(Args&&... args) {
    return static_cast<Layer&>(add(std::make_unique<Layer>(std::forward<Args>(args)...)));
  }

  std::size_t size() const noexcept { return layers_.size(); }
  flow_layer& layer(std::size_t i) { return *layers_.at(i); }
  const flow_layer& layer(std::size_t i) const { return *layers_.at(i); }

  const char* kind() const noexcept override { return "sequential_flow"; }
  index_t channels() const noexcept override { return channels_; }

  // Training mode keeps every intermediate map in ws for backward(); inference keeps two.
  void forward(const_view src, view dst, span<double> logdet, workspace& ws,
               pass_mode mode = pass_mode::inference) const override;
  void inverse(const_view dst, view src, workspace& ws) const override;
  void backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet, view diff_src,
                workspace& ws) override;

  std::vector<parameter*> parameters() override;
  double macs_per_sample(index_t h, index_t w) const noexcept override;
  void clear_primitive_cache() override;

 private:
  struct state;
  void check(const_view in, const char* in_name, const_view out, const char* out_name) const;

  index_t channels_;
  std::vector<std::unique_ptr<flow_layer>> layers_;
};

}  // namespace v0
}  // namespace flowad
