// Cross-checks against Python references (scikit-learn, SciPy, PyTorch) run through /usr/bin/python3.
//
// A check writes its inputs to temporary binary files, runs `/usr/bin/python3 -c '<script>' files...`
// and parses the numbers the script prints. These checks carry the tag [python]: they are not part of
// the default test run, and run (ctest label cross-check) after `scripts/install-deps.sh --peer`,
// through `scripts/run-tests.sh --peer`. Then a missing interpreter or module fails the check:
// scripts begin with python_require(...), which reports a failed import, and FLOWAD_REQUIRE_PYTHON
// turns it into a failure naming what to install.
#pragma once

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace flowad {
namespace testing {

inline const char* python_path() { return "/usr/bin/python3"; }

// Python prologue: imports `modules` (comma separated, e.g. "numpy, sklearn.metrics") or reports the
// failed import.
inline std::string python_require(const std::string& modules) {
  return "import sys\n"
         "try:\n"
         "    import " + modules + "\n"
         "except Exception as e:\n"
         "    print(\"SKIP python3 lacks " + modules + ": \" + str(e))\n"
         "    sys.exit(0)\n";
}

// A temporary file removed on destruction.
class temp_file {
 public:
  explicit temp_file(const std::string& tag) {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("flowad_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + tag);
  }
  ~temp_file() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  const std::filesystem::path& path() const { return path_; }

  template <class T>
  void write(const std::vector<T>& values) const {
    std::ofstream out(path_, std::ios::binary);
    out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(T)));
    REQUIRE(out.good());
  }

 private:
  std::filesystem::path path_;
};

struct python_run {
  bool skipped = false;
  std::string skip_reason;
  std::vector<double> numbers;  // every whitespace-separated number printed, in order
};

// Runs the script (which must not contain single quotes) with the given arguments. A failing script
// fails the test with its output; a missing interpreter or module gives skipped = true, which
// FLOWAD_REQUIRE_PYTHON turns into a failure.
inline python_run run_python(const std::string& script, const std::vector<std::string>& args = {}) {
  python_run r;
  if (!std::filesystem::exists(python_path())) {
    r.skipped = true;
    r.skip_reason = std::string(python_path()) + " is absent";
    return r;
  }
  REQUIRE(script.find('\'') == std::string::npos);
  std::string command = std::string(python_path()) + " -c '" + script + "'";
  for (const std::string& a : args) command += " '" + a + "'";
  command += " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int status = ::pclose(pipe);
  if (output.rfind("SKIP", 0) == 0) {
    r.skipped = true;
    r.skip_reason = output.substr(5);
    return r;
  }
  INFO("python output:\n" << output);
  REQUIRE(status == 0);
  std::istringstream in(output);
  std::string token;
  while (in >> token) {
    std::size_t used = 0;
    double value = 0.0;
    try {
      value = std::stod(token, &used);
    } catch (const std::exception&) {
      FAIL("unexpected python output: " << output);
    }
    REQUIRE(used == token.size());
    r.numbers.push_back(value);
  }
  return r;
}

}  // namespace testing
}  // namespace flowad

// Fails the current test case when the Python run could not happen: a cross-check never passes by
// not checking.
#define FLOWAD_REQUIRE_PYTHON(run)                                                                      \
  do {                                                                                                  \
    if ((run).skipped)                                                                                  \
      FAIL("cross-check not run: " << (run).skip_reason << " (install it with scripts/install-deps.sh --peer)"); \
  } while (false)
