// detail::inference_net: per-shape plans of oneDNN primitives with layout propagation, fused
// post-ops, in-place residual sums and an activation arena with liveness-based reuse.
#include "flowad/detail/inference_net.hpp"

#include <algorithm>
#include <mutex>

#include "backend/dnnl_common.hpp"
#include "flowad/workspace.hpp"  // detail::next_layer_id: the id space workspaces key state by

namespace flowad {
inline namespace v0 {
namespace detail {

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;
using node_id = inference_net::node_id;

constexpr std::size_t arena_alignment = 64;
constexpr float relu6_upper = 6.0f;

enum class node_kind { input, conv, max_pool, avg_pool };

struct node {
  node_kind kind = node_kind::input;
  node_id src = -1;
  std::string name;
  index_t in_channels = 0;
  index_t channels = 0;
  inference_net::conv_spec conv;                // conv only
  index_t kernel = 1, stride = 1, padding = 0;  // every kind but input
  std::vector<float> weights, bias;
  // Copies of the weights in the layouts primitives asked for; shared by every plan.
  std::vector<std::pair<memory::desc, memory>> reordered;
  node_id last_consumer = -1;  // the last node that reads this one (as src or residual)
};

index_t out_size(index_t in, index_t kernel, index_t stride, index_t padding) {
  return (in + 2 * padding - kernel) / stride + 1;
}

std::size_t align_up(std::size_t n) {
  return (n + arena_alignment - 1) / arena_alignment * arena_alignment;
}

// Whether this oneDNN has a Winograd kernel for this CPU (oneDNN 2.6: AVX-512 only), probed once
// on a small convolution.
bool winograd_available() {
  static const bool available = [] {
    try {
      const memory::desc src({1, 16, 8, 8}, dt::f32, tag::nChw16c), weights({16, 16, 3, 3}, dt::f32, tag::any);
      const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                                 dnnl::algorithm::convolution_winograd, src, weights, src, {1, 1},
                                                 {1, 1}, {1, 1});
      dnnl::convolution_forward::primitive_desc(desc, cpu_engine());
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return available;
}

// How an input view is described to oneDNN; part of the plan key.
struct input_form {
  shape4 shape;
  int kind = 0;  // 0 dense NCHW, 1 dense NHWC, 2 strided
  strides4 strides{};
  bool operator==(const input_form& o) const noexcept {
    return shape == o.shape && kind == o.kind &&
           (kind != 2 || (strides.n == o.strides.n && strides.c == o.strides.c && strides.h == o.strides.h &&
                          strides.w == o.strides.w));
  }
  memory::desc md() const {
    const memory::dims dims = {shape.n, shape.c, shape.h, shape.w};
    if (kind == 0) return memory::desc(dims, dt::f32, tag::nchw);
    if (kind == 1) return memory::desc(dims, dt::f32, tag::nhwc);
    return memory::desc(dims, dt::f32, memory::dims{strides.n, strides.c, strides.h, strides.w});
  }
};

input_form form_of(const const_view& v) {
  input_form f;
  f.shape = v.shape();
  if (v.is_dense(layout::nchw)) {
    f.kind = 0;
  } else if (v.is_dense(layout::nhwc)) {
    f.kind = 1;
  } else {
    f.kind = 2;
    f.strides = v.strides();
  }
  return f;
}

// ------------------------------------------------------------------------------------------------
// A plan: the primitives for one input form and output layout.
enum class value_place { arena, input, output };

struct value_info {
  memory::desc md;
  value_place place = value_place::arena;
  int output_index = -1;
  std::size_t offset = 0;   // in the arena
  int def = -1, last = -1;  // first and last step touching the value
};

struct arg_ref {
  int arg = 0;
  int value = -1;                    // a plan value, or
  dnnl_memory_t constant = nullptr;  // weights and biases owned by the net / plan
  bool writes = false;
};

struct step {
  std::string kind;  // "conv", "max_pool", "avg_pool", "reorder"
  std::string what;  // for messages and describe()
  dnnl::primitive prim;
  memory::desc scratch_md;
  std::vector<arg_ref> args;
  std::string impl;
  bool interlayer_reorder = false;
  bool layout_copy = false;  // a reorder by use_as(): its destination is only ever read
};

struct plan {
  std::uint64_t serial = 0;
  input_form input;
  layout out_layout = layout::nhwc;
  std::vector<value_info> values;
  std::vector<step> steps;
  std::vector<memory> constants;  // bias memories
  std::vector<shape4> output_shapes;
  std::vector<int> output_values;
  int input_value = 0;
  std::size_t arena_bytes = 0;
  std::size_t scratch_bytes = 0;
};

std::uint64_t next_plan_serial() {
  static std::atomic<std::uint64_t> counter{0};
  return ++counter;
}

// ------------------------------------------------------------------------------------------------
// Per-workspace state: the arena, the scratchpad and, per plan, bound memory objects and argument arrays.
struct byte_deleter {
  std::size_t bytes = 0;
  void operator()(std::uint8_t* p) const noexcept { free_bytes(p, bytes); }
};

class byte_buffer {
 public:
  std::uint8_t* data() const noexcept { return p_.get(); }
  std::size_t size() const noexcept { return size_; }
  // Grows to at least n bytes (detail::allocate_bytes: huge pages for large buffers); returns true
  // if the storage moved.
  bool reserve(std::size_t n) {
    if (n <= size_ && p_) return false;
    p_.reset();
    size_ = 0;
    const std::size_t bytes = std::max<std::size_t>(n, arena_alignment);
    p_ = std::unique_ptr<std::uint8_t[], byte_deleter>(static_cast<std::uint8_t*>(allocate_bytes(bytes)),
                                                       byte_deleter{bytes});
    size_ = bytes;
    return true;
  }

 private:
  std::unique_ptr<std::uint8_t[], byte_deleter> p_;
  std::size_t size_ = 0;
};

struct binding {
  std::uint64_t serial = 0;
  std::uint64_t generation = 0;
  std::vector<memory> values;
  std::vector<memory> scratch;
  std::vector<std::vector<dnnl_exec_arg_t>> args;
};

struct net_state final : layer_state {
  byte_buffer arena, scratch;
  std::uint64_t generation = 1;
  std::vector<std::unique_ptr<binding>> bindings;

  void set_handle(const memory& m, void* p) {
    const dnnl_status_t status = dnnl_memory_set_data_handle(m.get(), p);
    if (status != dnnl_success)
      throw error(errc::backend, "oneDNN could not bind a buffer (status " + std::to_string(status) + ")");
  }

  void rebind(binding& b, const plan& p) {
    for (std::size_t v = 0; v < p.values.size(); ++v)
      if (p.values[v].place == value_place::arena) set_handle(b.values[v], arena.data() + p.values[v].offset);
    for (const memory& m : b.scratch) set_handle(m, scratch.data());
    b.generation = generation;
  }

  binding& bind(const plan& p) {
    bool moved = arena.reserve(p.arena_bytes);
    moved = scratch.reserve(p.scratch_bytes) || moved;
    if (moved) ++generation;
    for (auto& b : bindings) {
      if (b->serial != p.serial) continue;
      if (b->generation != generation) rebind(*b, p);
      return *b;
    }
    auto b = std::make_unique<binding>();
    b->serial = p.serial;
    for (const value_info& v : p.values) b->values.push_back(memory(v.md, cpu_engine(), DNNL_MEMORY_NONE));
    for (const step& s : p.steps) b->scratch.push_back(memory(s.scratch_md, cpu_engine(), DNNL_MEMORY_NONE));
    b->args.resize(p.steps.size());
    for (std::size_t s = 0; s < p.steps.size(); ++s) {
      for (const arg_ref& a : p.steps[s].args)
        b->args[s].push_back({a.arg, a.value >= 0 ? b->values[static_cast<std::size_t>(a.value)].get() : a.constant});
      b->args[s].push_back({DNNL_ARG_SCRATCHPAD, b->scratch[s].get()});
    }
    rebind(*b, p);
    bindings.push_back(std::move(b));
    return *bindings.back();
  }
};

}  // namespace

// ------------------------------------------------------------------------------------------------
struct inference_net::impl {
  std::uint64_t id = next_layer_id();
  activation_format format = activation_format::preferred;
  std::vector<node> nodes;
  std::vector<node_id> outputs;
  index_t max_chunk = default_max_chunk;
  mutable std::mutex mutex;
  mutable std::vector<std::unique_ptr<plan>> plans;

  const node& at(node_id i, const char* what) const {
    if (i < 0 || static_cast<std::size_t>(i) >= nodes.size())
      throw error(errc::invalid_argument, std::string("inference_net: ") + what + " refers to node " +
                                              std::to_string(i) + " of a network with " + std::to_string(nodes.size()) +
                                              " nodes");
    return nodes[static_cast<std::size_t>(i)];
  }

  std::vector<shape4> shapes(shape4 in) const {
    std::vector<shape4> s(nodes.size());
    s[0] = in;
    for (std::size_t i = 1; i < nodes.size(); ++i) {
      const node& nd = nodes[i];
      const shape4 src = s[static_cast<std::size_t>(nd.src)];
      s[i] = {src.n, nd.channels, out_size(src.h, nd.kernel, nd.stride, nd.padding),
              out_size(src.w, nd.kernel, nd.stride, nd.padding)};
    }
    return s;
  }

  // Whether plans run activation_format::winograd as such (else as `preferred`).
  bool blocked_for_winograd() const { return format == activation_format::winograd && winograd_available(); }

  memory::desc activation_md(const shape4& s) const {
    return memory::desc({s.n, s.c, s.h, s.w}, dt::f32, format == activation_format::nhwc ? tag::nhwc : tag::any);
  }

  // The weights of node nd in layout md, reordered once.
  memory weights_for(node& nd, const memory::desc& md, exec_context::impl& ctx) {
    for (auto& [desc, mem] : nd.reordered)
      if (desc == md) return mem;
    const index_t g = nd.conv.groups, o = nd.channels, i = nd.in_channels, k = nd.kernel;
    const memory::desc user_md = g == 1 ? memory::desc({o, i, k, k}, dt::f32, tag::oihw)
                                        : memory::desc({g, o / g, i / g, k, k}, dt::f32, tag::goihw);
    memory user(user_md, cpu_engine(), nd.weights.data());
    memory blocked(md, cpu_engine());
    dnnl::reorder::primitive_desc pd(cpu_engine(), user_md, cpu_engine(), md, user_scratchpad_attr());
    dnnl::reorder r(pd);
    execute(r, ctx,
            {{DNNL_ARG_FROM, user.get()},
             {DNNL_ARG_TO, blocked.get()},
             {DNNL_ARG_SCRATCHPAD, ctx.scratchpad(&nd, pd.scratchpad_desc())}},
            "reordering inference weights");
    nd.reordered.emplace_back(md, blocked);
    return blocked;
  }

  static int add_value(plan& p, const memory::desc& md, value_place place = value_place::arena) {
    value_info v;
    v.md = md;
    v.place = place;
    p.values.push_back(v);
    return static_cast<int>(p.values.size()) - 1;
  }

  static void add_reorder(plan& p, int from, int to, const std::string& what, bool interlayer) {
    dnnl::reorder::primitive_desc pd(cpu_engine(), p.values[static_cast<std::size_t>(from)].md, cpu_engine(),
                                     p.values[static_cast<std::size_t>(to)].md, user_scratchpad_attr());
    step s;
    s.kind = "reorder";
    s.what = what;
    s.prim = dnnl::reorder(pd);
    s.scratch_md = pd.scratchpad_desc();
    s.impl = pd.impl_info_str();
    s.interlayer_reorder = interlayer;
    s.args = {{DNNL_ARG_FROM, from, nullptr, false}, {DNNL_ARG_TO, to, nullptr, true}};
    p.steps.push_back(std::move(s));
  }

  // Value v in layout md: v itself, or a reordered copy, made once for all the consumers that want
  // it in md (ResNet18's stride-2 convolution and its 1x1 downsample read the same copy).
  static int use_as(plan& p, int v, const memory::desc& md, const std::string& consumer) {
    if (p.values[static_cast<std::size_t>(v)].md == md) return v;
    for (const step& s : p.steps) {
      if (!s.layout_copy || s.args[0].value != v) continue;
      const int copy = s.args[1].value;
      if (p.values[static_cast<std::size_t>(copy)].md == md) return copy;
    }
    const bool from_input = p.values[static_cast<std::size_t>(v)].place == value_place::input;
    const int copy = add_value(p, md);
    add_reorder(p, v, copy, (from_input ? "input for " : "layout change for ") + consumer, !from_input);
    p.steps.back().layout_copy = true;
    return copy;
  }

  std::unique_ptr<plan> build(const input_form& in, layout out_layout, exec_context::impl& ctx) {
    auto p = std::make_unique<plan>();
    p->serial = next_plan_serial();
    p->input = in;
    p->out_layout = out_layout;
    const std::vector<shape4> shape = shapes(in.shape);
    std::vector<int> value_of(nodes.size(), -1);
    p->input_value = add_value(*p, in.md(), value_place::input);
    value_of[0] = p->input_value;

    for (std::size_t i = 1; i < nodes.size(); ++i) {
      node& nd = nodes[i];
      const shape4 src_shape = shape[static_cast<std::size_t>(nd.src)], dst_shape = shape[i];
      const int src_value = value_of[static_cast<std::size_t>(nd.src)];
      dnnl::primitive_attr attr = user_scratchpad_attr();
      step s;
      s.what = nd.name;
      if (nd.kind == node_kind::conv) {
        const index_t g = nd.conv.groups, o = nd.channels, ic = nd.in_channels, k = nd.kernel;
        const memory::desc weights_any = g == 1 ? memory::desc({o, ic, k, k}, dt::f32, tag::any)
                                                : memory::desc({g, o / g, ic / g, k, k}, dt::f32, tag::any);
        const memory::desc bias_md = nd.bias.empty() ? memory::desc() : memory::desc({o}, dt::f32, tag::x);
        const int residual_value = nd.conv.residual >= 0 ? value_of[static_cast<std::size_t>(nd.conv.residual)] : -1;
        const bool residual_in_arena =
            residual_value >= 0 && p->values[static_cast<std::size_t>(residual_value)].place == value_place::arena;
        // Winograd takes nChw16c only: its source and destination are fixed to that layout, and a
        // residual in another layout is copied (reordered) into the destination.
        const bool winograd =
            blocked_for_winograd() && k == 3 && nd.stride == 1 && g == 1 && ic % 16 == 0 && o % 16 == 0;
        auto layout_md = [&](const shape4& s) {
          return winograd ? memory::desc({s.n, s.c, s.h, s.w}, dt::f32, tag::nChw16c) : activation_md(s);
        };
        const memory::desc residual_md =
            residual_in_arena ? p->values[static_cast<std::size_t>(residual_value)].md : memory::desc();
        const bool into_residual = residual_in_arena && (!winograd || residual_md == layout_md(dst_shape));
        const memory::desc dst_md = into_residual ? residual_md : layout_md(dst_shape);
        dnnl::post_ops ops;
        if (residual_value >= 0) ops.append_sum(1.0f);
        switch (nd.conv.act) {
          case eltwise::none:
            break;
          case eltwise::relu:
            ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
            break;
          case eltwise::relu6:
            ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip, 0.0f, relu6_upper);
            break;
          case eltwise::abs:
            ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_abs, 0.0f, 0.0f);
            break;
        }
        attr.set_post_ops(ops);
        const memory::dims strides = {nd.stride, nd.stride}, pad = {nd.padding, nd.padding};
        auto make_pd = [&](const memory::desc& src_md) {
          auto pd_of = [&](dnnl::algorithm algorithm) {
            const auto desc =
                nd.bias.empty()
                    ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, src_md,
                                                      weights_any, dst_md, strides, pad, pad)
                    : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, src_md,
                                                      weights_any, bias_md, dst_md, strides, pad, pad);
            return dnnl::convolution_forward::primitive_desc(desc, attr, cpu_engine());
          };
          if (winograd) {
            try {
              return pd_of(dnnl::algorithm::convolution_winograd);
            } catch (const dnnl::error&) {
              // Not implemented for this shape or these post-ops: the direct method.
            }
          }
          return pd_of(dnnl::algorithm::convolution_direct);
        };
        // oneDNN chooses the source layout (memory_format_propagation): between layers it is the
        // layout the producer was given, so use_as() adds no reorder; for the network input it is
        // oneDNN's preferred layout (NHWC for brgconv here), which measured faster than running the
        // whole network in the blocked layout a plain NCHW source would select. A Winograd
        // convolution's nChw16c source is the exception: use_as() reorders into it. The other
        // convolutions keep the layout oneDNN prefers for them (NHWC brgconv, as above).
        const dnnl::convolution_forward::primitive_desc pd = make_pd(layout_md(src_shape));
        const int src_use = use_as(*p, src_value, pd.src_desc(), nd.name);
        int dst_value;
        if (residual_value >= 0) {
          const node& res = nodes[static_cast<std::size_t>(nd.conv.residual)];
          const bool in_place = residual_in_arena && res.last_consumer == static_cast<node_id>(i) &&
                                residual_value != src_use &&
                                p->values[static_cast<std::size_t>(residual_value)].md == pd.dst_desc();
          if (in_place) {
            dst_value = residual_value;
          } else {
            dst_value = add_value(*p, pd.dst_desc());
            add_reorder(*p, residual_value, dst_value, "residual copy for " + nd.name, false);
          }
        } else {
          dst_value = add_value(*p, pd.dst_desc());
        }
        memory weights = weights_for(nd, pd.weights_desc(), ctx);
        s.kind = "conv";
        s.prim = dnnl::convolution_forward(pd);
        s.scratch_md = pd.scratchpad_desc();
        s.impl = pd.impl_info_str();
        s.args.push_back({DNNL_ARG_SRC, src_use, nullptr, false});
        s.args.push_back({DNNL_ARG_WEIGHTS, -1, weights.get(), false});
        p->constants.push_back(weights);
        if (!nd.bias.empty()) {
          memory bias(bias_md, cpu_engine(), nd.bias.data());
          s.args.push_back({DNNL_ARG_BIAS, -1, bias.get(), false});
          p->constants.push_back(bias);
        }
        s.args.push_back({DNNL_ARG_DST, dst_value, nullptr, true});
        value_of[i] = dst_value;
      } else {
        const bool is_max = nd.kind == node_kind::max_pool;
        const memory::desc src_md = p->values[static_cast<std::size_t>(src_value)].md;
        const memory::desc dst_md = memory::desc({dst_shape.n, dst_shape.c, dst_shape.h, dst_shape.w}, dt::f32,
                                                 format == activation_format::nhwc ? tag::nhwc : tag::any);
        const memory::dims strides = {nd.stride, nd.stride}, kernel = {nd.kernel, nd.kernel},
                           pad = {nd.padding, nd.padding};
        dnnl::pooling_forward::desc desc(
            dnnl::prop_kind::forward_inference,
            is_max ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg_exclude_padding, src_md, dst_md,
            strides, kernel, pad, pad);
        dnnl::pooling_forward::primitive_desc pd(desc, attr, cpu_engine());
        const int src_use = use_as(*p, src_value, pd.src_desc(), nd.name);
        const int dst_value = add_value(*p, pd.dst_desc());
        s.kind = is_max ? "max_pool" : "avg_pool";
        s.prim = dnnl::pooling_forward(pd);
        s.scratch_md = pd.scratchpad_desc();
        s.impl = pd.impl_info_str();
        s.args = {{DNNL_ARG_SRC, src_use, nullptr, false}, {DNNL_ARG_DST, dst_value, nullptr, true}};
        value_of[i] = dst_value;
      }
      p->steps.push_back(std::move(s));
      // Outputs are copied to the caller's tensors as soon as they exist, so their buffers can be reused.
      for (std::size_t k = 0; k < outputs.size(); ++k) {
        if (outputs[k] != static_cast<node_id>(i)) continue;
        const shape4 os = dst_shape;
        const memory::desc out_md({os.n, os.c, os.h, os.w}, dt::f32,
                                  out_layout == layout::nhwc ? tag::nhwc : tag::nchw);
        value_info& produced = p->values[static_cast<std::size_t>(value_of[i])];
        if (produced.place == value_place::arena && produced.md == out_md) {
          // Already in the caller's layout: the caller's tensor becomes this node's buffer. A later
          // residual sum then copies it instead of adding in place (see residual_in_arena).
          produced.place = value_place::output;
          produced.output_index = static_cast<int>(k);
          continue;
        }
        const int out_value = add_value(*p, out_md, value_place::output);
        p->values[static_cast<std::size_t>(out_value)].output_index = static_cast<int>(k);
        add_reorder(*p, value_of[i], out_value, "output " + nd.name, false);
      }
    }
    p->output_shapes.resize(outputs.size());
    p->output_values.resize(outputs.size(), -1);
    for (std::size_t v = 0; v < p->values.size(); ++v) {
      const int k = p->values[v].output_index;
      if (k >= 0) p->output_values[static_cast<std::size_t>(k)] = static_cast<int>(v);
    }
    for (std::size_t k = 0; k < outputs.size(); ++k) p->output_shapes[k] = shape[static_cast<std::size_t>(outputs[k])];
    allocate(*p);
    return p;
  }

  // Liveness-based assignment of arena offsets: a buffer is reused once its last reader has run.
  static void allocate(plan& p) {
    for (std::size_t s = 0; s < p.steps.size(); ++s) {
      for (const arg_ref& a : p.steps[s].args) {
        if (a.value < 0) continue;
        value_info& v = p.values[static_cast<std::size_t>(a.value)];
        if (v.def < 0) v.def = static_cast<int>(s);
        v.last = static_cast<int>(s);
      }
      p.scratch_bytes = std::max(p.scratch_bytes, p.steps[s].scratch_md.get_size());
    }
    struct slot {
      std::size_t size = 0;
      int free_after = -1;
    };
    std::vector<slot> slots;
    std::vector<std::size_t> slot_of(p.values.size(), 0);
    std::vector<std::size_t> order;
    for (std::size_t v = 0; v < p.values.size(); ++v)
      if (p.values[v].place == value_place::arena) order.push_back(v);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return p.values[a].def < p.values[b].def; });
    for (std::size_t v : order) {
      value_info& val = p.values[v];
      const std::size_t need = align_up(val.md.get_size());
      std::size_t best = slots.size();
      for (std::size_t k = 0; k < slots.size(); ++k) {
        if (slots[k].free_after >= val.def) continue;
        if (best == slots.size()) {
          best = k;
          continue;
        }
        const bool fits = slots[k].size >= need, best_fits = slots[best].size >= need;
        if ((fits && (!best_fits || slots[k].size < slots[best].size)) ||
            (!fits && !best_fits && slots[k].size > slots[best].size))
          best = k;
      }
      if (best == slots.size()) slots.push_back({});
      slots[best].size = std::max(slots[best].size, need);
      slots[best].free_after = std::max(val.last, val.def);
      slot_of[v] = best;
    }
    std::vector<std::size_t> offset(slots.size(), 0);
    std::size_t total = 0;
    for (std::size_t k = 0; k < slots.size(); ++k) {
      offset[k] = total;
      total += slots[k].size;
    }
    for (std::size_t v : order) p.values[v].offset = offset[slot_of[v]];
    p.arena_bytes = total;
  }

  const plan& find(const input_form& in, layout out_layout, exec_context::impl& ctx) {
    for (const auto& p : plans)
      if (p->input == in && p->out_layout == out_layout) return *p;
    const std::vector<shape4> s = shapes(in.shape);
    for (std::size_t i = 1; i < s.size(); ++i)
      if (s[i].h <= 0 || s[i].w <= 0)
        throw error(errc::invalid_argument, "inference_net: an input of " + in.shape.str() + " is too small for " +
                                                nodes[i].name + " (kernel " + std::to_string(nodes[i].kernel) +
                                                ", stride " + std::to_string(nodes[i].stride) + ")");
    plans.push_back(build(in, out_layout, ctx));
    return *plans.back();
  }
};

// ------------------------------------------------------------------------------------------------
inference_net::inference_net(index_t input_channels, activation_format format) : impl_(std::make_unique<impl>()) {
  if (input_channels <= 0)
    throw error(errc::invalid_argument,
                "inference_net: input channels must be positive, got " + std::to_string(input_channels));
  impl_->format = format;
  node in;
  in.kind = node_kind::input;
  in.name = "input";
  in.channels = input_channels;
  impl_->nodes.push_back(std::move(in));
}
inference_net::~inference_net() = default;
inference_net::inference_net(inference_net&&) noexcept = default;
inference_net& inference_net::operator=(inference_net&&) noexcept = default;

inference_net::node_id inference_net::conv(node_id src, const conv_spec& spec, std::vector<float> weights,
                                           std::vector<float> bias, std::string name) {
  const node& s = impl_->at(src, ("convolution " + name + " source").c_str());
  const index_t in = s.channels, out = spec.out_channels, g = spec.groups, k = spec.kernel;
  const std::string who = "inference_net: convolution " + name + ": ";
  if (out <= 0 || k <= 0 || spec.stride <= 0 || spec.padding < 0 || g <= 0)
    throw error(errc::invalid_argument,
                who + "channels, kernel, stride and groups must be positive and padding non-negative");
  if (in % g != 0 || out % g != 0)
    throw error(errc::invalid_argument, who + std::to_string(g) + " groups do not divide " + std::to_string(in) +
                                            " input and " + std::to_string(out) + " output channels");
  const auto expected = static_cast<std::size_t>(out * (in / g) * k * k);
  if (weights.size() != expected)
    throw error(errc::shape_mismatch, who + "weights hold " + std::to_string(weights.size()) + " values, expected " +
                                          std::to_string(out) + "x" + std::to_string(in / g) + "x" + std::to_string(k) +
                                          "x" + std::to_string(k) + " = " + std::to_string(expected));
  if (!bias.empty() && bias.size() != static_cast<std::size_t>(out))
    throw error(errc::shape_mismatch,
                who + "bias holds " + std::to_string(bias.size()) + " values, expected " + std::to_string(out));
  if (spec.residual >= 0) {
    const node& r = impl_->at(spec.residual, ("convolution " + name + " residual").c_str());
    if (r.channels != out)
      throw error(errc::shape_mismatch, who + "residual " + r.name + " has " + std::to_string(r.channels) +
                                            " channels, the convolution " + std::to_string(out));
  }
  node nd;
  nd.kind = node_kind::conv;
  nd.src = src;
  nd.name = std::move(name);
  nd.in_channels = in;
  nd.channels = out;
  nd.conv = spec;
  nd.kernel = k;
  nd.stride = spec.stride;
  nd.padding = spec.padding;
  nd.weights = std::move(weights);
  nd.bias = std::move(bias);
  const node_id id = static_cast<node_id>(impl_->nodes.size());
  impl_->nodes[static_cast<std::size_t>(src)].last_consumer = id;
  if (spec.residual >= 0) impl_->nodes[static_cast<std::size_t>(spec.residual)].last_consumer = id;
  impl_->nodes.push_back(std::move(nd));
  return id;
}

namespace {
inference_net::node_id add_pool(std::vector<node>& nodes, node_kind kind, node_id src, index_t kernel, index_t stride,
                                index_t padding, std::string name) {
  if (kernel <= 0 || stride <= 0 || padding < 0 || padding >= kernel)
    throw error(errc::invalid_argument,
                "inference_net: pooling " + name + " needs kernel, stride > 0 and 0 <= padding < kernel");
  node nd;
  nd.kind = kind;
  nd.src = src;
  nd.name = std::move(name);
  nd.in_channels = nodes[static_cast<std::size_t>(src)].channels;
  nd.channels = nd.in_channels;
  nd.kernel = kernel;
  nd.stride = stride;
  nd.padding = padding;
  const auto id = static_cast<inference_net::node_id>(nodes.size());
  nodes[static_cast<std::size_t>(src)].last_consumer = id;
  nodes.push_back(std::move(nd));
  return id;
}
}  // namespace

inference_net::node_id inference_net::max_pool(node_id src, index_t kernel, index_t stride, index_t padding,
                                               std::string name) {
  impl_->at(src, ("pooling " + name + " source").c_str());
  return add_pool(impl_->nodes, node_kind::max_pool, src, kernel, stride, padding, std::move(name));
}

inference_net::node_id inference_net::avg_pool(node_id src, index_t kernel, index_t stride, index_t padding,
                                               std::string name) {
  impl_->at(src, ("pooling " + name + " source").c_str());
  return add_pool(impl_->nodes, node_kind::avg_pool, src, kernel, stride, padding, std::move(name));
}

void inference_net::mark_output(node_id node) {
  impl_->at(node, "mark_output");
  if (node == input_node) throw error(errc::invalid_argument, "inference_net: the input cannot be an output");
  impl_->outputs.push_back(node);
}

index_t inference_net::input_channels() const noexcept {
  return impl_->nodes[0].channels;
}
std::size_t inference_net::node_count() const noexcept {
  return impl_->nodes.size();
}
index_t inference_net::channels(node_id node) const {
  return impl_->at(node, "channels").channels;
}
const std::string& inference_net::name(node_id node) const {
  return impl_->at(node, "name").name;
}
const std::vector<inference_net::node_id>& inference_net::outputs() const noexcept {
  return impl_->outputs;
}
activation_format inference_net::format() const noexcept {
  return impl_->format;
}
std::uint64_t inference_net::id() const noexcept {
  return impl_->id;
}

shape4 inference_net::shape(node_id node, shape4 input) const {
  impl_->at(node, "shape");
  return impl_->shapes(input)[static_cast<std::size_t>(node)];
}

double inference_net::macs(shape4 input) const {
  const std::vector<shape4> s = impl_->shapes(input);
  double total = 0.0;
  for (std::size_t i = 1; i < impl_->nodes.size(); ++i) {
    const node& nd = impl_->nodes[i];
    if (nd.kind != node_kind::conv) continue;
    total += static_cast<double>(s[i].numel()) * static_cast<double>(nd.in_channels / nd.conv.groups) *
             static_cast<double>(nd.kernel * nd.kernel);
  }
  return total;
}

namespace {
void check_input(const const_view& images, index_t channels, std::size_t outputs) {
  if (outputs == 0) throw error(errc::invalid_argument, "inference_net: the network has no outputs");
  if (images.empty())
    throw error(errc::empty_input, "inference_net: the input is empty (shape " + images.shape().str() + ")");
  if (images.c() != channels)
    throw error(errc::shape_mismatch, "inference_net: the input has shape " + images.shape().str() +
                                          " but the network expects " + std::to_string(channels) + " channels");
  const strides4 st = images.strides();
  if (st.n < 0 || st.c < 0 || st.h < 0 || st.w < 0 || images.data() == nullptr)
    throw error(errc::invalid_argument, "inference_net: the input view needs non-negative strides and data");
}
}  // namespace

void inference_net::run(const_view images, std::vector<tensor>& outs, layout l, workspace& ws) const {
  check_input(images, input_channels(), impl_->outputs.size());
  const index_t n = images.n();
  const index_t chunk = std::max<index_t>(1, std::min(n, impl_->max_chunk));
  auto& ctx = ws.exec().get();
  // A batch runs in chunks of at most max_chunk images through the plan of one chunk (and one of the
  // remainder): the arena holds one chunk's activations, not the batch's.
  const plan* chunk_plan = nullptr;
  const plan* rest_plan = nullptr;
  {
    const input_form in = form_of(images.batch(0, chunk));
    const index_t rest = n % chunk;
    std::lock_guard<std::mutex> lock(impl_->mutex);
    translate_dnnl("planning an inference network", [&] {
      chunk_plan = &impl_->find(in, l, ctx);
      if (rest != 0) rest_plan = &impl_->find(form_of(images.batch(n - rest, rest)), l, ctx);
    });
  }
  outs.resize(chunk_plan->output_shapes.size());
  for (std::size_t k = 0; k < outs.size(); ++k) {
    shape4 s = chunk_plan->output_shapes[k];
    s.n = n;
    outs[k].resize(s, l);
  }

  net_state& st = ws.state<net_state>(impl_->id);
  for (index_t first = 0; first < n; first += chunk) {
    const plan& p = (n - first >= chunk) ? *chunk_plan : *rest_plan;
    binding& b = translate_dnnl("binding an inference network", [&]() -> binding& { return st.bind(p); });
    st.set_handle(b.values[static_cast<std::size_t>(p.input_value)],
                  const_cast<float*>(images.data() + first * images.strides().n));
    for (std::size_t k = 0; k < outs.size(); ++k)
      st.set_handle(b.values[static_cast<std::size_t>(p.output_values[k])],
                    outs[k].data() + first * outs[k].view().strides().n);
    for (std::size_t s = 0; s < p.steps.size(); ++s) {
      const dnnl_status_t status = dnnl_primitive_execute(p.steps[s].prim.get(), ctx.stream.get(),
                                                          static_cast<int>(b.args[s].size()), b.args[s].data());
      if (status != dnnl_success)
        throw error(errc::backend, "oneDNN failed while running " + p.steps[s].kind + " " + p.steps[s].what +
                                       " on an input of " + images.shape().str() + " (status " +
                                       std::to_string(status) + ")");
    }
    const dnnl_status_t status = dnnl_stream_wait(ctx.stream.get());
    if (status != dnnl_success)
      throw error(errc::backend,
                  "oneDNN failed while waiting for an inference network (status " + std::to_string(status) + ")");
  }
}

std::string inference_net::describe(shape4 input, layout l) const {
  exec_context ctx;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  input_form in;
  in.shape = input;
  const plan& p =
      translate_dnnl("planning an inference network", [&]() -> const plan& { return impl_->find(in, l, ctx.get()); });
  std::string out;
  for (const step& s : p.steps) out += s.kind + " " + s.what + ": " + s.impl + "\n";
  out +=
      "arena " + std::to_string(p.arena_bytes) + " bytes, scratchpad " + std::to_string(p.scratch_bytes) + " bytes\n";
  return out;
}

std::size_t inference_net::interlayer_reorders(shape4 input, layout l) const {
  exec_context ctx;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  input_form in;
  in.shape = input;
  const plan& p =
      translate_dnnl("planning an inference network", [&]() -> const plan& { return impl_->find(in, l, ctx.get()); });
  return static_cast<std::size_t>(
      std::count_if(p.steps.begin(), p.steps.end(), [](const step& s) { return s.interlayer_reorder; }));
}

index_t inference_net::max_chunk() const noexcept { return impl_->max_chunk; }

void inference_net::set_max_chunk(index_t images) {
  if (images < 1)
    throw error(errc::invalid_argument, "inference_net: a chunk must hold at least one image, not " +
                                            std::to_string(images));
  impl_->max_chunk = images;
}

void inference_net::clear_cache() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->plans.clear();
  for (node& nd : impl_->nodes) nd.reordered.clear();
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
