// Test support (see support.h).
#include "tests/support/support.h"

#include <cstdio>
#include <cstdlib>
#include <sys/wait.h>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace audit::testing {
namespace fs = std::filesystem;
namespace {

// The build folder: the nearest folder above the test binary holding CMakeCache.txt.
fs::path find_build_dir() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec).parent_path();
  for (; !ec && !p.empty() && p != p.root_path(); p = p.parent_path())
    if (fs::exists(p / "CMakeCache.txt")) return p;
  throw std::runtime_error("no CMakeCache.txt above the test binary: run the tests from a build folder");
}

// $name, else what the build folder's CMakeCache.txt says (gtest discovery runs without the
// environment ctest gives the tests).
std::string env_or(const char* name, std::string (*fallback)()) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback();
}

std::string source_from_cache() {
  std::ifstream in(find_build_dir() / "CMakeCache.txt");
  const std::string key = "CMAKE_HOME_DIRECTORY:INTERNAL=";
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  throw std::runtime_error("CMakeCache.txt names no CMAKE_HOME_DIRECTORY");
}

}  // namespace

std::string source_dir() { return env_or("AUDIT_SOURCE_DIR", source_from_cache); }
std::string build_dir() {
  return env_or("AUDIT_BUILD_DIR", [] { return find_build_dir().string(); });
}
std::string audit_binary() {
  return env_or("AUDIT_BINARY", [] { return (find_build_dir() / "audit").string(); });
}

CommandResult run_command(const std::string& shell_command) {
  CommandResult r;
  FILE* p = popen((shell_command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
  const int rc = pclose(p);
  r.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return r;
}

bool has_torch_part() {
  std::error_code ec;
  return fs::exists(fs::path(audit_binary()).parent_path() / "audit-torch", ec);
}

}  // namespace audit::testing
