// flowad: fit, score and evaluate anomaly detectors from the command line.
#include <cstdio>
#include <exception>
#include <memory>
#include <vector>

#include "cli/commands.hpp"
#include "flowad/error.hpp"
#include "flowad/version.hpp"

int main(int argc, char** argv) {
  CLI::App app{"flowad: visual anomaly detection on a CPU. `flowad COMMAND --help` lists a command's options."};
  app.set_version_flag("--version", std::string(flowad::version().string));
  app.require_subcommand(1);
  app.fallthrough(false);
  std::vector<std::unique_ptr<flowad::cli::command>> commands;
  commands.push_back(flowad::cli::make_demo(app));
  commands.push_back(flowad::cli::make_fit(app));
  commands.push_back(flowad::cli::make_score(app));
  commands.push_back(flowad::cli::make_eval(app));
  commands.push_back(flowad::cli::make_validate(app));
  commands.push_back(flowad::cli::make_benchmark(app));
  commands.push_back(flowad::cli::make_info(app));
  // CLI11 would only say that a command is required: name the word it did not know.
  const auto known = [&](const char* word) {
    for (const auto& c : commands)
      if (c->app->get_name() == word) return true;
    return false;
  };
  if (argc > 1 && argv[1][0] != '-' && !known(argv[1])) {
    std::fprintf(stderr, "flowad: unknown command '%s'\n%s", argv[1], app.help().c_str());
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (const auto& c : commands) {
    if (!c->app->parsed()) continue;
    try {
      return c->run();
    } catch (const flowad::error& e) {
      std::fprintf(stderr, "flowad %s: %s\n", c->app->get_name().c_str(), e.message().c_str());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "flowad %s: unexpected error: %s\n", c->app->get_name().c_str(), e.what());
      return 1;
    }
  }
  return 2;
}
