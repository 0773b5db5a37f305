// Feature extractors: a batch of normalised images in, one feature map per level out.
//
// The stable API of flowad starts at feature maps; extractors are a convenience in front of it.
// Three are built in (make_extractor): "resnet18" and "mobilenet_v2" (ImageNet backbones whose
// weights are read from .npy/.npz files) and "filterbank" (a fixed, weight-free multi-scale filter
// bank, the default on a fresh machine). Any other extractor can feed the detectors through .npy
// files (flowad/io/npy.hpp).
//
// Threading. extract() is const and safe to call from several threads at once, each with its own
// flowad::workspace: the workspace that carries a thread's oneDNN stream and scratchpad through the
// flows also carries the extractor's activation arena (as the state of the extractor's id), so one
// per-thread object serves the whole pipeline and nothing is allocated per call once a shape has
// been seen. The extractor itself keeps only immutable weights and, behind a mutex, the oneDNN
// primitives of every input shape it has met (created on first use).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "flowad/detail/inference_net.hpp"
#include "flowad/io/npy.hpp"
#include "flowad/io/preprocess.hpp"
#include "flowad/tensor.hpp"
#include "flowad/workspace.hpp"

namespace flowad {
inline namespace v0 {

// ------------------------------------------------------------------------------------------------
// Weights: named float32 arrays with PyTorch's (torchvision's) names and OIHW convolution layout.
using weight_map = std::map<std::string, npy_array>;

struct weight_spec {
  std::string name;
  std::vector<index_t> shape;
};

// One output of an extractor: its name, channel count and stride (input pixels per feature pixel).
//
// center_offset says where in the image a cell's response is centred: cell m on input pixel
// stride·m + (stride - 1)/2 + center_offset. 0 is the grid that bilinear upsampling with
// align_corners=False assumes (every PyTorch anomaly detector upsamples so). It fits ResNet18 and
// MobileNetV2: a small spot's response, upsampled so, is centred within 3 px of the spot at every
// level (tests/real_data/test_map_alignment.cpp). The filter bank's symmetric filters centre cell m on
// pixel stride·m exactly, so its levels have center_offset = -(stride - 1)/2. Anomaly maps use it
// to sit on the image (score_options::cell_offsets, map_cell_offsets in pipeline/features.hpp).
struct feature_level {
  std::string name;
  index_t channels = 0;
  index_t stride = 1;
  double center_offset = 0.0;  // input pixels
};

class extractor {
 public:
  virtual ~extractor() = default;

  // "resnet18", "mobilenet_v2", "filterbank".
  virtual const std::string& name() const noexcept = 0;
  // The levels, finest first, in the order extract() returns them.
  virtual const std::vector<feature_level>& levels() const noexcept = 0;
  // The levels a detector reads unless its recipe or the user says otherwise (every level unless the
  // extractor declares fewer: ResNet18 and MobileNetV2 give their two deepest, strides 8 and 16).
  virtual std::vector<std::string> default_levels() const { return level_names(); }
  // Whether detectors that can standardise features per position (MS-Flow's relative positions) should
  // by default: true for the extractors on whose features that was validated on the three development
  // categories (docs/lab/positions-on-three-categories.md), false for the others.
  virtual bool position_statistics() const { return false; }
  // The weight tensors the extractor was built from, with their shapes (none for a weight-free
  // extractor): what read_weights() reads, and what an inspector embeds in a model file.
  virtual std::vector<weight_spec> weight_specs() const { return {}; }
  // What the extractor expects of its input (flowad/io/preprocess.hpp applies it): ImageNet's
  // statistics for every built-in extractor.
  virtual channel_normalization normalization() const noexcept { return imagenet_normalization; }
  // Input channels (3: RGB).
  virtual index_t input_channels() const noexcept { return 3; }

  // The shape of level `level` for a batch of shape `images` (N x 3 x H x W): N x C x ceil(H / s) x
  // ceil(W / s) for the built-in extractors.
  virtual shape4 level_shape(std::size_t level, shape4 images) const = 0;

  // The no-allocation path: maps is resized to levels().size() and maps[i] to level i's shape in
  // layout l; a tensor whose capacity suffices keeps its storage. images: N x 3 x H x W, normalised
  // (see normalization()), any non-negative strides.
  virtual void extract(const_view images, std::vector<tensor>& maps, workspace& ws, layout l = layout::nhwc) const = 0;
  // Convenience: fresh output tensors.
  std::vector<tensor> extract(const_view images, workspace& ws, layout l = layout::nhwc) const {
    std::vector<tensor> maps;
    extract(images, maps, ws, l);
    return maps;
  }

  // Multiply-accumulates for a batch of shape `images`.
  virtual double macs(shape4 images) const = 0;
  // The oneDNN primitives used for a batch of shape `images`, one line each (diagnostics).
  virtual std::string describe(shape4 images) const = 0;
  // Drops cached primitives (for cold-start benchmarks). Not thread-safe with extract().
  virtual void clear_primitive_cache() = 0;

  std::vector<std::string> level_names() const;
  std::vector<index_t> level_channels() const;
  std::vector<index_t> level_strides() const;
};

// The built-in extractors: a detail::inference_net whose outputs are the levels.
class network_extractor : public extractor {
 public:
  const std::string& name() const noexcept override { return name_; }
  const std::vector<feature_level>& levels() const noexcept override { return levels_; }
  shape4 level_shape(std::size_t level, shape4 images) const override;
  void extract(const_view images, std::vector<tensor>& maps, workspace& ws, layout l = layout::nhwc) const override;
  using extractor::extract;
  double macs(shape4 images) const override { return net_.macs(images); }
  std::string describe(shape4 images) const override { return net_.describe(images); }
  void clear_primitive_cache() override { net_.clear_cache(); }

  // The network (for tests and benchmarks; e.g. set_max_chunk, not while extracting).
  const detail::inference_net& network() const noexcept { return net_; }
  detail::inference_net& network() noexcept { return net_; }

 protected:
  network_extractor(std::string name, detail::inference_net net, std::vector<feature_level> levels);

 private:
  std::string name_;
  detail::inference_net net_;
  std::vector<feature_level> levels_;
};

// Reads weights from a directory of <name>.npy files or from an .npz archive. With `names`, only
// those tensors are read (a missing one throws, naming the file or member); without, every .npy in
// the directory or every member of the archive.
weight_map read_weights(const std::string& path, const std::vector<std::string>& names = {});

// ------------------------------------------------------------------------------------------------
// The names make_extractor accepts: "filterbank", "mobilenet_v2", "resnet18".
std::vector<std::string> extractor_names();

// A built-in extractor. "resnet18" takes a directory of .npy files or an .npz archive (see
// resnet18.hpp), "mobilenet_v2" an .npz archive or a directory (mobilenet_v2.hpp); "filterbank"
// takes no weights (weights_path must be empty). Throws errc::invalid_argument for an unknown name
// and the weight readers' errors for missing or malformed weights.
std::unique_ptr<extractor> make_extractor(const std::string& name, const std::string& weights_path = {});
// The same from weights in memory (e.g. embedded in a model file); `origin` names them in messages.
std::unique_ptr<extractor> make_extractor(const std::string& name, const weight_map& weights, const std::string& origin);

}  // namespace v0
}  // namespace flowad
