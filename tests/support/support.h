// Support shared by the test suites: where the sources, the build and the binaries are (read
// from the environment ctest sets, never compiled in), temporary folders, files, subprocesses.
//
// TempDir, remove_tree, write_file and read_file use POSIX calls only, no std::filesystem: the
// LibTorch test binary links libtorch.so (the PyPI wheel), which exports its own copy of the
// std::filesystem functions, and std::filesystem::remove_all crashes there.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace audit::testing {

// $AUDIT_SOURCE_DIR, $AUDIT_BUILD_DIR, $AUDIT_BINARY (set by ctest, tests/CMakeLists.txt), else
// read from the CMakeCache.txt of the build folder the test binary sits in.
std::string source_dir();
std::string build_dir();
std::string audit_binary();

// A fresh folder of its own under the system temporary folder ($TMPDIR, else /tmp), named
// <prefix>.XXXXXX; it and everything in it are removed when the TempDir goes, unless
// $AUDIT_KEEP_TEST_DIRS is set (not empty): then it stays and its path is printed on stderr.
// Only the process that made it removes it (a forked child that unwinds leaves it alone).
// Throws std::runtime_error when the folder cannot be made.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "audit_test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name; makes nothing.
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
  pid_t owner_;
};

// Removes `path` and, when it is a folder, everything under it (nftw, symbolic links are removed,
// not followed). A path that does not exist is no error. Throws std::runtime_error naming the
// first entry that could not be removed.
void remove_tree(const std::string& path);

// The whole file, byte for byte; throws std::runtime_error naming the path when it cannot be read.
std::string read_file(const std::string& path);
// Makes or truncates the file and writes `text`, byte for byte; throws std::runtime_error naming
// the path on failure. Makes no folders.
void write_file(const std::string& path, const std::string& text);

// Runs a command with /bin/sh -c; its exit code (-1 when it did not exit: killed by a signal, or
// it could not be started) and what it printed on stdout and stderr together. Redirections in
// the command itself apply as written ("cmd > out 2> err" leaves nothing in `output`).
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult run_command(const std::string& shell_command);
// run_command("'<audit_binary()>' " + args).
CommandResult run_audit(const std::string& args);

// The project venv's Python (audit::default_python(): $AUDIT_PYTHON, else the venv set-up makes).
std::string python();
// A fixture made by a Python script at test time (tiny models, tokenizers: nothing is committed
// or downloaded), cached in <build>/test-fixtures/NAME-HASH so that the tests of one build make it
// once. `make` is a shell command that writes the fixture into the folder given as {OUT}
// (substituted, quoted); what it prints is kept in {OUT}/.made. It runs into a fresh temporary
// folder that is renamed into place when the command succeeds, so concurrent tests (ctest -j)
// never see a half-made fixture. HASH covers the command (but {OUT}) and the contents of the
// `inputs` files (the scripts it runs, the files it reads): editing one makes a new fixture. Fails
// the calling test (ADD_FAILURE, returns "") with the command's output when it exits non-zero.
std::string python_fixture(const std::string& name, const std::string& make,
                           const std::vector<std::string>& inputs = {});

// tests/golden/make_hf_checkpoints.py's tiny transformers models (made once per build folder):
// the manifest the script prints, {"name", "dir", "arch", "dtype", "sharded", "tied", ...} per
// fixture, with each "dir" where the fixture now lies. Fails the calling test and returns an
// empty array when the script fails.
nlohmann::json hf_checkpoint_fixtures();

// Whether this build has the LibTorch part (audit-torch beside audit); tests of run, replay and
// bench skip with a reason when it does not (a build with -DAUDIT_TORCH=OFF).
bool has_torch_part();
#define AUDIT_SKIP_WITHOUT_TORCH()                                                            \
  do {                                                                                        \
    if (!audit::testing::has_torch_part())                                                    \
      GTEST_SKIP() << "built without LibTorch (-DAUDIT_TORCH=OFF): no audit-torch beside audit"; \
  } while (0)

}  // namespace audit::testing
