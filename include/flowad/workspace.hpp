// Per-thread execution state.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "flowad/detail/backend.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

namespace detail {
// Process-unique ids of everything that keeps state in workspaces (layers, extractors, detectors).
inline std::uint64_t next_layer_id() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return ++counter;
}
}  // namespace detail

// What a layer keeps in a workspace between calls (saved activations, sized buffers).
class layer_state {
 public:
  virtual ~layer_state() = default;
};

// Everything a computation writes besides its outputs: a oneDNN stream and scratchpad, each layer's
// saved state, and shared temporaries. One workspace per thread lets const layers and detectors
// run concurrently. Buffers grow to the largest shape seen and are reused, so once a shape has been
// seen, calls on it do not allocate.
class workspace {
 public:
  workspace() : exec_(std::make_unique<detail::exec_context>()) {}
  workspace(const workspace&) = delete;
  workspace& operator=(const workspace&) = delete;
  workspace(workspace&&) noexcept = default;
  workspace& operator=(workspace&&) noexcept = default;

  detail::exec_context& exec() noexcept { return *exec_; }

  // The state of type State that the layer with id `owner` keeps here; created on first use.
  template <class State>
  State& state(std::uint64_t owner) {
    for (auto& e : states_) {
      if (e.owner != owner) continue;
      if (auto* s = dynamic_cast<State*>(e.state.get())) return *s;
      e.state = std::make_unique<State>();
      return static_cast<State&>(*e.state);
    }
    states_.push_back({owner, std::make_unique<State>()});
    return static_cast<State&>(*states_.back().state);
  }

  // A temporary shared by every layer; its contents live only during one layer call. The reference
  // stays valid when other slots are requested afterwards (each slot is a separate allocation).
  // Layers that call other layers while holding a temporary (all_in_one_block) take their slots from
  // composite_slots up; every other layer uses slots below it.
  static constexpr std::size_t composite_slots = 32;
  tensor& scratch(std::size_t slot) {
    while (slot >= scratch_.size()) scratch_.push_back(std::make_unique<tensor>());
    return *scratch_[slot];
  }

 private:
  struct entry {
    std::uint64_t owner;
    std::unique_ptr<layer_state> state;
  };
  std::unique_ptr<detail::exec_context> exec_;
  std::vector<entry> states_;
  std::vector<std::unique_ptr<tensor>> scratch_;
};

}  // namespace v0
}  // namespace flowad
