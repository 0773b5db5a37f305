#include "flowad/io/dataset.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <system_error>

#include "flowad/error.hpp"
#include "io/file_bytes.hpp"

namespace flowad {
inline namespace v0 {
namespace {

namespace fs = std::filesystem;

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

bool is_hidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name.front() == '.';
}

bool is_folder(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

// The entries of a folder that satisfy keep(), sorted by file name.
template <class Keep>
std::vector<fs::path> list_sorted(const fs::path& folder, const Keep& keep) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& path = it->path();
    if (!is_hidden(path) && keep(*it)) entries.push_back(path);
  }
  if (ec) throw error(errc::io_error, "cannot list folder " + detail::quoted(folder) + ": " + ec.message());
  std::sort(entries.begin(), entries.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename().string() < b.filename().string(); });
  return entries;
}

std::vector<fs::path> list_images(const fs::path& folder) {
  return list_sorted(folder, [](const fs::directory_entry& e) {
    std::error_code ec;
    return e.is_regular_file(ec) && is_image_file_name(e.path());
  });
}

std::vector<fs::path> list_folders(const fs::path& folder) {
  return list_sorted(folder, [](const fs::directory_entry& e) {
    std::error_code ec;
    return e.is_directory(ec);
  });
}

error layout_error(const std::string& message) {
  return error(errc::bad_file, "MVTec layout: " + message);
}

// Masks of one ground-truth folder, by the stem of the image they belong to ("000" for 000_mask.png).
std::map<std::string, fs::path> masks_by_image_stem(const fs::path& folder) {
  static const std::string suffix = "_mask";
  std::map<std::string, fs::path> masks;
  for (const fs::path& mask : list_images(folder)) {
    const std::string stem = mask.stem().string();
    if (stem.size() <= suffix.size() || stem.compare(stem.size() - suffix.size(), suffix.size(), suffix) != 0)
      throw layout_error("mask " + detail::quoted(mask) + " is not named <image stem>_mask.<extension>");
    const std::string image_stem = stem.substr(0, stem.size() - suffix.size());
    const auto [it, inserted] = masks.emplace(image_stem, mask);
    if (!inserted)
      throw layout_error("image stem '" + image_stem + "' has two masks: " + detail::quoted(it->second) + " and " +
                         detail::quoted(mask));
  }
  return masks;
}

}  // namespace

bool is_image_file_name(const fs::path& path) {
  const std::string ext = lower(path.extension().string());
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

std::vector<fs::path> mvtec_category::test_images() const {
  std::vector<fs::path> out;
  for (const test_sample& s : test) out.push_back(s.image);
  return out;
}
std::vector<fs::path> mvtec_category::test_masks() const {
  std::vector<fs::path> out;
  for (const test_sample& s : test) out.push_back(s.mask);
  return out;
}
std::vector<int> mvtec_category::test_labels() const {
  std::vector<int> out;
  for (const test_sample& s : test) out.push_back(s.label);
  return out;
}
std::vector<std::string> mvtec_category::defect_types() const {
  std::vector<std::string> out;
  for (const test_sample& s : test)
    if (s.label != 0 && (out.empty() || out.back() != s.defect_type)) out.push_back(s.defect_type);
  return out;
}

mvtec_category read_mvtec_category(const fs::path& root) {
  std::error_code ec;
  if (!fs::exists(root, ec))
    throw error(errc::io_error, "MVTec category folder " + detail::quoted(root) + " does not exist");
  if (!is_folder(root)) throw error(errc::io_error, "MVTec category " + detail::quoted(root) + " is not a folder");

  mvtec_category category;
  category.root = root;

  const fs::path train_good = root / "train" / good_defect_type;
  if (!is_folder(train_good)) throw layout_error("missing training folder " + detail::quoted(train_good));
  category.train = list_images(train_good);
  if (category.train.empty())
    throw layout_error("training folder " + detail::quoted(train_good) + " holds no .png/.jpg/.jpeg/.bmp images");

  const fs::path test_root = root / "test";
  const fs::path truth_root = root / "ground_truth";
  if (!is_folder(test_root)) throw layout_error("missing test folder " + detail::quoted(test_root));
  const std::vector<fs::path> defect_folders = list_folders(test_root);
  if (defect_folders.empty())
    throw layout_error("test folder " + detail::quoted(test_root) + " has no sub-folders (expected good/ and defects)");

  for (const fs::path& folder : defect_folders) {
    const std::string defect = folder.filename().string();
    const bool good = defect == good_defect_type;
    const std::vector<fs::path> images = list_images(folder);
    if (images.empty())
      throw layout_error("test folder " + detail::quoted(folder) + " holds no .png/.jpg/.jpeg/.bmp images");

    const fs::path truth_folder = truth_root / defect;
    std::map<std::string, fs::path> masks;
    if (is_folder(truth_folder)) masks = masks_by_image_stem(truth_folder);
    if (good) {
      if (!masks.empty())
        throw layout_error("good test images have no masks, but " + detail::quoted(masks.begin()->second) + " exists");
    } else if (!is_folder(truth_folder)) {
      throw layout_error("missing mask folder " + detail::quoted(truth_folder) + " for the defective images in " +
                         detail::quoted(folder));
    }

    std::map<std::string, fs::path> image_by_stem;
    for (const fs::path& image : images) {
      const std::string stem = image.stem().string();
      const auto [it, inserted] = image_by_stem.emplace(stem, image);
      if (!inserted)
        throw layout_error("test images " + detail::quoted(it->second) + " and " + detail::quoted(image) +
                           " share a stem, so their masks cannot be told apart");
      test_sample sample;
      sample.image = image;
      sample.defect_type = defect;
      sample.label = good ? 0 : 1;
      if (!good) {
        const auto mask = masks.find(stem);
        if (mask == masks.end())
          throw layout_error("defective test image " + detail::quoted(image) + " has no mask " +
                             detail::quoted(truth_folder / (stem + "_mask.png")));
        sample.mask = mask->second;
      }
      category.test.push_back(std::move(sample));
    }
    for (const auto& [stem, mask] : masks)
      if (image_by_stem.count(stem) == 0)
        throw layout_error("mask " + detail::quoted(mask) + " has no test image " + detail::quoted(folder / stem) +
                           ".*");
  }

  if (is_folder(truth_root))
    for (const fs::path& folder : list_folders(truth_root))
      if (!is_folder(test_root / folder.filename()) && !list_images(folder).empty())
        throw layout_error("mask folder " + detail::quoted(folder) + " has no test folder " +
                           detail::quoted(test_root / folder.filename()));
  return category;
}

}  // namespace v0
}  // namespace flowad
