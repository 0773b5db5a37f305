// The commands of the flowad tool; each lives in its own cmd_<name>.cpp.
#pragma once

namespace flowad {
namespace cli {

// Each takes the arguments after the command name and returns the process exit code.
int run_info(int argc, char** argv, int first);
int run_eval(int argc, char** argv, int first);
int run_fit(int argc, char** argv, int first);
int run_score(int argc, char** argv, int first);
int run_demo(int argc, char** argv, int first);
int run_validate(int argc, char** argv, int first);

}  // namespace cli
}  // namespace flowad
