#include "flowad/data/mvtec_layout.hpp"

#include <cstdio>
#include <map>
#include <system_error>

#include "flowad/io/dataset.hpp"
#include "io/file_bytes.hpp"

namespace flowad {
inline namespace v0 {

namespace fs = std::filesystem;

void write_mvtec_layout(const synthetic_dataset& data, const fs::path& root) {
  const std::size_t n = data.test.size();
  if (data.labels.size() != n || data.defect_types.size() != n || data.masks.size() != n)
    throw error(errc::invalid_argument, "synthetic data set has " + std::to_string(n) + " test images but " +
                                            std::to_string(data.labels.size()) + " labels, " +
                                            std::to_string(data.defect_types.size()) + " defect types and " +
                                            std::to_string(data.masks.size()) + " masks");
  for (std::size_t i = 0; i < n; ++i) {
    const bool good = data.defect_types[i] == good_defect_type;
    if (good != (data.labels[i] == 0) || data.defect_types[i].empty() ||
        data.defect_types[i].find('/') != std::string::npos)
      throw error(errc::invalid_argument, "test image " + std::to_string(i) + " has label " +
                                              std::to_string(data.labels[i]) + " and defect type '" +
                                              data.defect_types[i] + "'");
  }

  std::error_code ec;
  if (fs::exists(root, ec) && !(fs::is_directory(root, ec) && fs::is_empty(root, ec)))
    throw error(errc::invalid_argument,
                "refusing to write a data set into " + detail::quoted(root) + ": it exists and is not an empty folder");
  const auto make_folder = [](const fs::path& folder) {
    std::error_code mk;
    fs::create_directories(folder, mk);
    if (mk) throw error(errc::io_error, "cannot create folder " + detail::quoted(folder) + ": " + mk.message());
  };
  const auto numbered = [](std::size_t index, const char* suffix) {
    char name[32];
    std::snprintf(name, sizeof name, "%03zu%s.png", index, suffix);
    return std::string(name);
  };

  make_folder(root / "train" / good_defect_type);
  for (std::size_t i = 0; i < data.train.size(); ++i)
    write_png(root / "train" / good_defect_type / numbered(i, ""), data.train[i]);

  std::map<std::string, std::size_t> next_index;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& defect = data.defect_types[i];
    const auto [it, first_of_type] = next_index.emplace(defect, 0);
    const std::size_t index = it->second++;
    if (first_of_type) make_folder(root / "test" / defect);
    write_png(root / "test" / defect / numbered(index, ""), data.test[i]);
    if (defect == good_defect_type) continue;
    if (first_of_type) make_folder(root / "ground_truth" / defect);
    write_mask_png(root / "ground_truth" / defect / numbered(index, "_mask"), data.masks[i]);
  }
}

}  // namespace v0
}  // namespace flowad
