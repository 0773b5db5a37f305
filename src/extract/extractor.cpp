#include "flowad/extract/extractor.hpp"

#include "flowad/extract/filterbank.hpp"
#include "flowad/extract/mobilenet_v2.hpp"
#include "flowad/extract/resnet18.hpp"

namespace flowad {
inline namespace v0 {

std::vector<std::string> extractor::level_names() const {
  std::vector<std::string> out;
  for (const feature_level& l : levels()) out.push_back(l.name);
  return out;
}

std::vector<index_t> extractor::level_channels() const {
  std::vector<index_t> out;
  for (const feature_level& l : levels()) out.push_back(l.channels);
  return out;
}

std::vector<index_t> extractor::level_strides() const {
  std::vector<index_t> out;
  for (const feature_level& l : levels()) out.push_back(l.stride);
  return out;
}

network_extractor::network_extractor(std::string name, detail::inference_net net, std::vector<feature_level> levels)
    : name_(std::move(name)), net_(std::move(net)), levels_(std::move(levels)) {
  if (levels_.size() != net_.outputs().size())
    throw error(errc::invalid_argument, name_ + ": " + std::to_string(levels_.size()) + " levels for " +
                                            std::to_string(net_.outputs().size()) + " network outputs");
  for (std::size_t i = 0; i < levels_.size(); ++i)
    if (net_.channels(net_.outputs()[i]) != levels_[i].channels)
      throw error(errc::invalid_argument, name_ + ": level " + levels_[i].name + " declares " +
                                              std::to_string(levels_[i].channels) + " channels, the network gives " +
                                              std::to_string(net_.channels(net_.outputs()[i])));
}

shape4 network_extractor::level_shape(std::size_t level, shape4 images) const {
  if (level >= levels_.size())
    throw error(errc::invalid_argument, name_ + ": level " + std::to_string(level) + " requested, the extractor has " +
                                            std::to_string(levels_.size()));
  return net_.shape(net_.outputs()[level], images);
}

void network_extractor::extract(const_view images, std::vector<tensor>& maps, workspace& ws, layout l) const {
  if (images.c() != input_channels())
    throw error(errc::shape_mismatch, name_ + ": images have shape " + images.shape().str() +
                                          " but the extractor expects " + std::to_string(input_channels()) +
                                          " channels (N x 3 x H x W)");
  net_.run(images, maps, l, ws);
}

std::vector<std::string> extractor_names() {
  return {"filterbank", "mobilenet_v2", "resnet18"};
}

namespace {
[[noreturn]] void unknown_extractor(const std::string& name) {
  std::string known;
  for (const std::string& n : extractor_names()) known += (known.empty() ? "" : ", ") + n;
  throw error(errc::invalid_argument, "unknown extractor '" + name + "' (known: " + known + ")");
}
}  // namespace

std::unique_ptr<extractor> make_extractor(const std::string& name, const std::string& weights_path) {
  if (name == "filterbank") {
    if (!weights_path.empty())
      throw error(errc::invalid_argument, "the filterbank extractor takes no weights, got '" + weights_path + "'");
    return std::make_unique<filterbank_extractor>();
  }
  if (name == "resnet18" || name == "mobilenet_v2") {
    if (weights_path.empty())
      throw error(errc::invalid_argument,
                  "the " + name + " extractor needs a weights path (a directory of .npy files or an .npz archive)");
    if (name == "resnet18") return std::make_unique<resnet18_extractor>(weights_path);
    return std::make_unique<mobilenet_v2_extractor>(weights_path);
  }
  unknown_extractor(name);
}

std::unique_ptr<extractor> make_extractor(const std::string& name, const weight_map& weights, const std::string& origin) {
  if (name == "filterbank") {
    if (!weights.empty()) throw error(errc::invalid_argument, "the filterbank extractor takes no weights, got some from " + origin);
    return std::make_unique<filterbank_extractor>();
  }
  if (name == "resnet18") return std::make_unique<resnet18_extractor>(weights, origin);
  if (name == "mobilenet_v2") return std::make_unique<mobilenet_v2_extractor>(weights, origin);
  unknown_extractor(name);
}

}  // namespace v0
}  // namespace flowad
