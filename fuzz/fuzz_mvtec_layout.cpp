// Fuzzes the reader of the MVTec AD folder layout (read_mvtec_category, and image_folder): the input
// is turned into a small folder tree, one entry per line,
//   train/good/000.png          an empty file (the layout reader opens no image)
//   test/crack/                 a folder
//   test/good -> ../train/good  a symbolic link (relative; it cannot point out of the tree)
// and the reader lists it: names of any bytes but '/' and NUL, folders where files are expected and
// the reverse, links to folders, to files, to nothing and in loops, masks without images.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "flowad/error.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/pipeline/inspector.hpp"
#include "fuzz_support.hpp"

namespace {

namespace fs = std::filesystem;

constexpr std::size_t max_entries = 64;
constexpr std::size_t max_depth = 8;
constexpr std::size_t max_name = 64;

// The path's names, without empty, "." and ".." ones (entries stay inside the tree).
std::vector<std::string> names_of(const std::string& text) {
  std::vector<std::string> names;
  std::string name;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '/') {
      if (!name.empty() && name != "." && name != ".." && names.size() < max_depth)
        names.push_back(name.substr(0, max_name));
      name.clear();
    } else if (text[i] != '\0') {
      name += text[i];
    }
  }
  return names;
}

fs::path joined(const std::vector<std::string>& names) {
  fs::path p;
  for (const std::string& n : names) p /= n;
  return p;
}

// A link's target, relative to the link's folder: ".." no further up than the tree's root.
fs::path link_target(const std::string& text, std::size_t link_depth) {
  fs::path target;
  std::size_t depth = link_depth;
  std::string name;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '/') {
      if (name == ".." && depth > 0) {
        target /= "..";
        --depth;
      } else if (!name.empty() && name != "." && name != "..") {
        target /= name.substr(0, max_name);
        ++depth;
      }
      name.clear();
    } else if (text[i] != '\0') {
      name += text[i];
    }
  }
  return target.empty() ? fs::path(".") : target;
}

void make_tree(const fs::path& root, const std::string& text) {
  std::error_code ec;
  fs::remove_all(root, ec);
  fs::create_directories(root, ec);
  std::size_t begin = 0, entries = 0;
  while (begin <= text.size() && entries++ < max_entries) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    const std::size_t arrow = line.find(" -> ");
    const std::vector<std::string> names = names_of(line.substr(0, arrow));
    if (names.empty()) continue;
    const fs::path path = root / joined(names);
    fs::create_directories(path.parent_path(), ec);  // fails, harmlessly, where a file is in the way
    if (arrow != std::string::npos) {
      fs::create_symlink(link_target(line.substr(arrow + 4), names.size() - 1), path, ec);
    } else if (line.back() == '/') {
      fs::create_directories(path, ec);
    } else {
      std::ofstream touch(path);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fs::path root = flowad::fuzz::scratch_folder() / "category";
  make_tree(root, std::string(reinterpret_cast<const char*>(data), size));
  try {
    const flowad::mvtec_category category = flowad::read_mvtec_category(root);
    const std::size_t images = category.test_images().size();
    if (images != category.test_masks().size() || images != category.test_labels().size()) std::abort();
    category.defect_types();
  } catch (const flowad::error&) {
  }
  try {
    flowad::image_folder(root / "train" / flowad::good_defect_type);
  } catch (const flowad::error&) {
  }
  return 0;
}
