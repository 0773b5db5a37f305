// Saving a model is crash-safe: a process killed (SIGKILL) at any point of a save, or a write that fails
// (a full disk, here a file-size limit), leaves the previous model file loading and scoring exactly as
// before; a failed write is a clear flowad::error and leaves no temporary file; leftovers of killed
// saves do not disturb later saves. The saves run in forked children, which only encode and write (no
// OpenMP, which does not survive fork). docs/reliability.md, "Crash-safe saves".
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flowad/detectors/msflow.hpp"
#include "flowad/error.hpp"
#include "flowad/io/model_file.hpp"
#include "io/atomic_file.hpp"
#include "support/feature_data.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using namespace flowad::testing;
namespace fs = std::filesystem;

namespace {

// Two fitted MS-Flows of 1.8 MB each (440 k parameters): large enough that a save, whose fsync reaches
// the disk, lasts long enough to be killed in the middle. Fitted once for both tests.
struct saved_models {
  feature_dataset data = make_feature_dataset(64, 8, 8, 2, 2, 5);
  std::vector<model_file_contents> contents;
  std::vector<std::vector<std::uint8_t>> encodings;  // what save() writes for each
  std::vector<scores> references;                     // what each scores on data.test

  saved_models() {
    for (const std::uint64_t seed : {1, 2}) {
      msflow_config cfg;
      cfg.scales = {{64, 8, 8}};
      cfg.groups = 2;
      cfg.hidden = 128;
      cfg.blocks = 4;
      cfg.kernels = {3};
      cfg.seed = seed;
      cfg.training.epochs = 1;
      cfg.training.batch_size = 8;
      msflow model(cfg);
      model.fit({data.train});
      contents.push_back(model.to_model_file());
      encodings.push_back(encode_model(contents.back()));
      references.push_back(model.score({data.test}));
    }
  }

  // The index of the model whose bytes the file holds, -1 for anything else; the file must load.
  int held_by(const fs::path& path) const {
    const std::vector<unsigned char> bytes = read_bytes(path);
    const auto it = std::find(encodings.begin(), encodings.end(), bytes);
    load_detector(path);
    return it == encodings.end() ? -1 : static_cast<int>(it - encodings.begin());
  }
  // The same, and the loaded model must score exactly as the saved one did.
  int held_and_scoring_as_saved(const fs::path& path) const {
    const int index = held_by(path);
    if (index < 0) return index;
    const scores s = load_detector(path)->score({data.test});
    const scores& expected = references[static_cast<std::size_t>(index)];
    const bool same = s.image == expected.image &&
                      std::memcmp(s.maps.data(), expected.maps.data(), expected.maps.bytes()) == 0;
    return same ? index : -1;
  }
};

const saved_models& two_models() {
  static const saved_models models;
  return models;
}

std::size_t leftover_count(const fs::path& dir, const fs::path& target) {
  const std::string prefix = detail::temporary_file_prefix(target);
  std::size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().rfind(prefix, 0) == 0) ++n;
  return n;
}

std::size_t open_descriptors() {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator()));
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("a save killed at any point leaves the previous model loading and scoring as before", "[crash_safety]") {
  const saved_models& models = two_models();
  REQUIRE(models.references[0].image != models.references[1].image);

  temp_folder dir;
  const fs::path target = dir / "model.flowad";
  // How long one save takes here: the kills are spread over twice that, from the end of a child's first
  // save on (it saves the two models alternately, without pause, so the kills land all over a save).
  double save_seconds = 1e9;
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    write_model_file(target, models.contents[0]);
    save_seconds = std::min(save_seconds, seconds_since(start));
  }

  constexpr int kills = 60;
  int mid_save = 0, replaced = 0;
  bool scored[2] = {false, false};
  for (int k = 0; k < kills; ++k) {
    const double delay = 2.0 * save_seconds * k / kills;
    CAPTURE(k, delay);
    const std::size_t leftovers_before = leftover_count(dir.path(), target);
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::close(ready[0]);
      try {
        write_model_file(target, models.contents[1]);
        const char go = 1;
        if (::write(ready[1], &go, 1) != 1) ::_exit(2);
        for (std::size_t i = 0;; ++i) write_model_file(target, models.contents[i % 2]);
      } catch (...) {
        ::_exit(3);
      }
    }
    ::close(ready[1]);
    char go = 0;
    REQUIRE(::read(ready[0], &go, 1) == 1);
    ::close(ready[0]);
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    REQUIRE(::kill(child, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));  // killed while saving, not stopped by an error of its own
    CHECK(WTERMSIG(status) == SIGKILL);

    // Every file must load and hold one of the two models; the first time each turns up, it must also
    // score as saved (loading is deterministic: the same bytes score the same).
    const int found = models.held_by(target);
    CHECK(found >= 0);
    if (found >= 0 && !scored[static_cast<std::size_t>(found)]) {
      CHECK(models.held_and_scoring_as_saved(target) == found);
      scored[static_cast<std::size_t>(found)] = true;
    }
    if (found == 1) ++replaced;
    if (leftover_count(dir.path(), target) > leftovers_before) ++mid_save;
  }
  // Both outcomes must have happened for the test to mean anything: kills between saves and in the
  // middle of one (a temporary file left behind), and both models in place.
  CHECK(mid_save > 0);
  CHECK(mid_save < kills);
  CHECK((scored[0] && scored[1]));
  WARN(kills << " kills over " << 2.0 * save_seconds * 1e3 << " ms (a save takes " << save_seconds * 1e3
             << " ms): " << mid_save << " in the middle of writing a temporary file, " << replaced
             << " found the second model in place, every file loaded and held a complete model");

  // The leftovers are hidden files that no load reads and no save reuses: saving again works, and
  // only the model and the leftovers are in the folder.
  const std::size_t leftovers = leftover_count(dir.path(), target);
  write_model_file(target, models.contents[0]);
  CHECK(models.held_and_scoring_as_saved(target) == 0);
  CHECK(leftover_count(dir.path(), target) == leftovers);
  CHECK(static_cast<std::size_t>(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator())) ==
        leftovers + 1);
}

TEST_CASE("a save that cannot write fails clearly, removes its temporary file and keeps the old model",
          "[crash_safety]") {
  const saved_models& models = two_models();
  const model_file_contents& old_model = models.contents[0];
  const model_file_contents& new_model = models.contents[1];
  temp_folder dir;
  const fs::path target = dir / "model.flowad";
  write_model_file(target, old_model);

  // A child writes under file-size limits below the model's size (what a full disk does to a write,
  // without needing one: the write fails with EFBIG once SIGXFSZ is ignored), then under one that fits.
  // It reports each attempt as a line: error code (0: none), change in open descriptors, leftovers,
  // whether the target still holds the old model's bytes, message.
  const std::size_t size = models.encodings[1].size();
  const std::vector<rlim_t> limits = {0, 4096, static_cast<rlim_t>(size / 2), static_cast<rlim_t>(size - 1),
                                      static_cast<rlim_t>(size)};
  int report[2];
  REQUIRE(::pipe(report) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(report[0]);
    ::signal(SIGXFSZ, SIG_IGN);
    std::ostringstream out;
    for (const rlim_t limit : limits) {
      rlimit l{};
      ::getrlimit(RLIMIT_FSIZE, &l);
      l.rlim_cur = limit;
      if (::setrlimit(RLIMIT_FSIZE, &l) != 0) ::_exit(2);
      const std::size_t fds = open_descriptors();
      int code = 0;
      std::string message;
      try {
        write_model_file(target, new_model);
      } catch (const error& e) {
        code = static_cast<int>(e.code());
        message = e.what();
      } catch (...) {
        code = -1;
      }
      const bool unchanged = read_bytes(target) == models.encodings[0];
      out << code << ' ' << static_cast<long>(open_descriptors()) - static_cast<long>(fds) << ' '
          << leftover_count(dir.path(), target) << ' ' << unchanged << ' ' << message << '\n';
    }
    const std::string text = out.str();
    const bool sent = ::write(report[1], text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::_exit(sent ? 0 : 4);
  }
  ::close(report[1]);
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = ::read(report[0], buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<std::size_t>(n));
  ::close(report[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  std::istringstream lines(text);
  for (std::size_t i = 0; i < limits.size(); ++i) {
    CAPTURE(limits[i], size);
    int code = -2;
    long fd_change = -1;
    std::size_t leftovers = 1;
    bool unchanged = false;
    std::string message;
    lines >> code >> fd_change >> leftovers >> unchanged;
    std::getline(lines, message);
    CHECK(fd_change == 0);
    CHECK(leftovers == 0);
    if (limits[i] < size) {
      CHECK(code == static_cast<int>(errc::io_error));
      CHECK_THAT(message, Catch::Contains("cannot save the model to " + target.string()) &&
                              Catch::Contains("File too large") && Catch::Contains("unchanged"));
      CHECK(unchanged);
    } else {
      CHECK(code == 0);
    }
  }
  CHECK(models.held_and_scoring_as_saved(target) == 1);
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);
}
