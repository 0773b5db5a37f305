// Reading one category of a dataset in the MVTec AD layout:
//
//   <root>/train/good/*.png                      defect-free training images
//   <root>/test/good/*.png                       defect-free test images (no masks)
//   <root>/test/<defect>/<stem>.png              defective test images, one folder per defect type
//   <root>/ground_truth/<defect>/<stem>_mask.png their masks (0 / 255), one per defective image
//
// Images may be .png, .jpg, .jpeg or .bmp in any letter case; other files and hidden files (".*")
// are ignored, so are sub-folders of image folders. Only the layout is checked here: no image is
// opened.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace flowad {
inline namespace v0 {

// The name of the defect-free folder, under train/ and test/.
inline constexpr const char* good_defect_type = "good";

struct test_sample {
  std::filesystem::path image;
  int label = 0;               // 0 for test/good, 1 for every other folder
  std::string defect_type;     // the folder name: "good", "broken_large", ...
  std::filesystem::path mask;  // empty for good images
};

struct mvtec_category {
  std::filesystem::path root;
  std::vector<std::filesystem::path> train;  // train/good, sorted by file name
  std::vector<test_sample> test;             // sorted by defect folder name, then by file name

  // Columns of `test`, in the same order.
  std::vector<std::filesystem::path> test_images() const;
  std::vector<std::filesystem::path> test_masks() const;  // empty path for good images
  std::vector<int> test_labels() const;
  // Sorted names of the defect folders (everything under test/ but "good").
  std::vector<std::string> defect_types() const;
};

// True for .png .jpg .jpeg .bmp in any case.
bool is_image_file_name(const std::filesystem::path& path);

// Lists a category. Throws flowad::error (errc::io_error when the root is missing or not a folder,
// errc::bad_file for a wrong layout) with a message naming the offending path when: train/good or
// test/ is missing or holds no images; a test folder holds no images; a defective test image has no
// mask (the expected mask path is named); a mask has no test image, or matches several mask files;
// ground_truth/good exists with masks in it, or ground_truth holds a folder that test/ does not.
mvtec_category read_mvtec_category(const std::filesystem::path& root);

}  // namespace v0
}  // namespace flowad
