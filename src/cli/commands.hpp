// The commands of the flowad tool, one file each (cmd_<name>.cpp). A command declares its options on
// its own CLI11 subcommand and, when chosen, runs: it parses, calls the library and prints; every
// default and decision is the library's.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>

namespace flowad {
namespace cli {

class command {
 public:
  virtual ~command() = default;
  // Returns the process exit code.
  virtual int run() = 0;
  CLI::App* app = nullptr;
};

std::unique_ptr<command> make_demo(CLI::App& parent);
std::unique_ptr<command> make_fit(CLI::App& parent);
std::unique_ptr<command> make_score(CLI::App& parent);
std::unique_ptr<command> make_eval(CLI::App& parent);
std::unique_ptr<command> make_validate(CLI::App& parent);
std::unique_ptr<command> make_benchmark(CLI::App& parent);
std::unique_ptr<command> make_info(CLI::App& parent);

}  // namespace cli
}  // namespace flowad
