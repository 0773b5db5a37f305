#include "cli/images.hpp"

#include "flowad/detail/checks.hpp"
#include "flowad/detector.hpp"
#include "flowad/io/npy.hpp"
#include "flowad/pipeline/inspector.hpp"

namespace flowad {
namespace cli {

std::vector<std::filesystem::path> expand_images(const std::vector<std::string>& items) {
  std::vector<std::filesystem::path> images;
  for (const std::string& item : items) {
    std::error_code ec;  // an item whose type cannot be told is read as a file, which names the problem
    if (std::filesystem::is_directory(item, ec)) {
      const auto in_folder = image_folder(item);
      images.insert(images.end(), in_folder.begin(), in_folder.end());
    } else {
      images.emplace_back(item);
    }
  }
  return images;
}

std::vector<tensor> read_feature_files(const std::vector<std::string>& paths) {
  if (paths.empty()) throw error(errc::invalid_argument, "--features needs at least one .npy file");
  std::vector<tensor> maps;
  for (const std::string& path : paths) {
    maps.push_back(read_npy_tensor(path, layout::nhwc));
    // Checked here too, where the message can name the file rather than a scale.
    detail::require_within(maps.back().cview(), max_feature_magnitude, path.c_str());
  }
  return maps;
}

}  // namespace cli
}  // namespace flowad
