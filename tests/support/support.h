// Support shared by the test suites: where the sources, the build and the binaries are (read
// from the environment ctest sets, never compiled in), temporary folders, files, subprocesses.
#pragma once

#include <string>

namespace audit::testing {

// $AUDIT_SOURCE_DIR, $AUDIT_BUILD_DIR, $AUDIT_BINARY (set by ctest, tests/CMakeLists.txt), else
// read from the CMakeCache.txt of the build folder the test binary sits in.
std::string source_dir();
std::string build_dir();
std::string audit_binary();
// Runs a shell command; its exit code (-1 when it did not exit) and what it printed on stdout
// and stderr together.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult run_command(const std::string& shell_command);

// Whether this build has the LibTorch part (audit-torch beside audit); tests of run, replay and
// bench skip with a reason when it does not (a build with -DAUDIT_TORCH=OFF).
bool has_torch_part();
#define AUDIT_SKIP_WITHOUT_TORCH()                                                            \
  do {                                                                                        \
    if (!audit::testing::has_torch_part())                                                    \
      GTEST_SKIP() << "built without LibTorch (-DAUDIT_TORCH=OFF): no audit-torch beside audit"; \
  } while (0)

}  // namespace audit::testing
