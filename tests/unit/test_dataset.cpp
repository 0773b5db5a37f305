#include <catch2/catch.hpp>

#include "flowad/error.hpp"
#include "flowad/io/dataset.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using flowad::testing::temp_folder;
namespace fs = std::filesystem;

namespace {

// The reader only lists files, so their content does not matter.
void touch(const fs::path& path) {
  flowad::testing::write_bytes(path, {0x42});
}

// A valid category: 3 training images (+ files to ignore), 2 good and 3 defective test images.
void make_category(const fs::path& root) {
  touch(root / "train" / "good" / "b.png");
  touch(root / "train" / "good" / "a.PNG");
  touch(root / "train" / "good" / "c.jpeg");
  touch(root / "train" / "good" / "notes.txt");
  touch(root / "train" / "good" / ".hidden.png");
  fs::create_directories(root / "train" / "good" / "sub.png");
  touch(root / "test" / "good" / "001.png");
  touch(root / "test" / "good" / "000.png");
  touch(root / "test" / "scratch" / "001.JPG");
  touch(root / "test" / "scratch" / "000.bmp");
  touch(root / "test" / "crack" / "000.png");
  touch(root / "ground_truth" / "scratch" / "000_mask.png");
  touch(root / "ground_truth" / "scratch" / "001_mask.png");
  touch(root / "ground_truth" / "crack" / "000_mask.png");
  touch(root / "license.txt");
}

// Asserts that reading root throws flowad::error with `code` and a message containing each of `parts`.
void check_layout_error(const fs::path& root, errc code, const std::vector<std::string>& parts) {
  try {
    (void)read_mvtec_category(root);
    FAIL("expected a layout error");
  } catch (const error& e) {
    INFO(e.what());
    CHECK(e.code() == code);
    for (const std::string& part : parts) CHECK_THAT(e.what(), Catch::Contains(part));
  }
}

}  // namespace

TEST_CASE("MVTec reader lists a category in sorted order with labels and masks", "[io]") {
  const temp_folder dir;
  const fs::path root = dir / "widget";
  make_category(root);
  const mvtec_category cat = read_mvtec_category(root);

  REQUIRE(cat.train.size() == 3);
  CHECK(cat.train[0].filename() == "a.PNG");
  CHECK(cat.train[1].filename() == "b.png");
  CHECK(cat.train[2].filename() == "c.jpeg");

  REQUIRE(cat.test.size() == 5);
  const std::vector<std::string> defects = {"crack", "good", "good", "scratch", "scratch"};
  const std::vector<std::string> names = {"000.png", "000.png", "001.png", "000.bmp", "001.JPG"};
  for (std::size_t i = 0; i < 5; ++i) {
    CHECK(cat.test[i].defect_type == defects[i]);
    CHECK(cat.test[i].image.filename() == names[i]);
    CHECK(cat.test[i].label == (defects[i] == "good" ? 0 : 1));
    CHECK(cat.test[i].mask.empty() == (defects[i] == "good"));
  }
  CHECK(cat.test[0].mask == root / "ground_truth" / "crack" / "000_mask.png");
  CHECK(cat.test[4].mask == root / "ground_truth" / "scratch" / "001_mask.png");
  CHECK(cat.test_labels() == std::vector<int>{1, 0, 0, 1, 1});
  CHECK(cat.defect_types() == std::vector<std::string>{"crack", "scratch"});
  CHECK(cat.test_images()[3] == root / "test" / "scratch" / "000.bmp");
  CHECK(cat.test_masks()[1].empty());
  CHECK(cat.root == root);

  // Listing is deterministic.
  const mvtec_category again = read_mvtec_category(root);
  CHECK(again.train == cat.train);
  CHECK(again.test_images() == cat.test_images());
}

TEST_CASE("image file names are recognised case-insensitively", "[io]") {
  for (const char* name : {"a.png", "a.PNG", "a.jpg", "a.JpG", "a.jpeg", "a.JPEG", "a.bmp", "dir/x.Bmp"})
    CHECK(is_image_file_name(name));
  for (const char* name : {"a.gif", "a.png.txt", "png", "a.tif", "a."}) CHECK_FALSE(is_image_file_name(name));
}

TEST_CASE("MVTec reader rejects wrong layouts with the offending path", "[io]") {
  const temp_folder dir;

  SECTION("missing root or a file as root") {
    check_layout_error(dir / "nowhere", errc::io_error, {"nowhere", "does not exist"});
    touch(dir / "file_root");
    check_layout_error(dir / "file_root", errc::io_error, {"file_root", "not a folder"});
  }
  const fs::path root = dir / "cat";
  make_category(root);

  SECTION("missing train/good") {
    fs::remove_all(root / "train");
    check_layout_error(root, errc::bad_file, {(root / "train" / "good").string(), "missing training folder"});
  }
  SECTION("no training images") {
    for (const char* name : {"a.PNG", "b.png", "c.jpeg"}) fs::remove(root / "train" / "good" / name);
    check_layout_error(root, errc::bad_file, {(root / "train" / "good").string(), "no"});
  }
  SECTION("missing test folder") {
    fs::remove_all(root / "test");
    check_layout_error(root, errc::bad_file, {(root / "test").string(), "missing test folder"});
  }
  SECTION("a test folder without images") {
    fs::remove_all(root / "test" / "crack");
    fs::remove_all(root / "ground_truth" / "crack");
    fs::create_directories(root / "test" / "dent");
    check_layout_error(root, errc::bad_file, {(root / "test" / "dent").string(), "no"});
  }
  SECTION("a defective image without its mask names the expected mask") {
    fs::remove(root / "ground_truth" / "scratch" / "001_mask.png");
    check_layout_error(root, errc::bad_file,
                       {(root / "test" / "scratch" / "001.JPG").string(),
                        (root / "ground_truth" / "scratch" / "001_mask.png").string()});
  }
  SECTION("a missing ground-truth folder") {
    fs::remove_all(root / "ground_truth" / "crack");
    check_layout_error(root, errc::bad_file, {(root / "ground_truth" / "crack").string()});
  }
  SECTION("a mask for a good image") {
    touch(root / "ground_truth" / "good" / "000_mask.png");
    check_layout_error(root, errc::bad_file, {"good test images have no masks", "000_mask.png"});
  }
  SECTION("a mask without its image") {
    touch(root / "ground_truth" / "crack" / "007_mask.png");
    check_layout_error(root, errc::bad_file, {"007_mask.png", "has no test image"});
  }
  SECTION("a mask folder without a test folder") {
    touch(root / "ground_truth" / "dent" / "000_mask.png");
    check_layout_error(root, errc::bad_file, {(root / "ground_truth" / "dent").string()});
  }
  SECTION("two masks for one image") {
    touch(root / "ground_truth" / "crack" / "000_mask.bmp");
    check_layout_error(root, errc::bad_file, {"two masks", "000_mask.bmp"});
  }
  SECTION("a mask not named <stem>_mask") {
    touch(root / "ground_truth" / "crack" / "000.png");
    check_layout_error(root, errc::bad_file, {"not named", "000.png"});
  }
  SECTION("two test images with one stem") {
    touch(root / "test" / "crack" / "000.jpg");
    check_layout_error(root, errc::bad_file, {"share a stem", "000.jpg"});
  }
}
