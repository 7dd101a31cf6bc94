// Test support (see support.h).
#include "tests/support/support.h"

#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "common/python_peer.h"
#include "common/sha256.h"

extern char** environ;

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

// ---- temporary folders and files: POSIX only (see support.h) -------------------------------

namespace {

std::string system_temp_dir() {
  for (const char* name : {"TMPDIR", "TMP", "TEMP", "TEMPDIR"}) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v != '\0') return v;
  }
  return "/tmp";
}

std::string errno_text(int err) { return std::strerror(err); }

// nftw keeps no user pointer: the first failure of the walk in progress (one walk at a time per
// thread).
thread_local std::string remove_failure;

int remove_entry(const char* entry, const struct stat*, int, struct FTW*) {
  if (::remove(entry) != 0 && errno != ENOENT && remove_failure.empty())
    remove_failure = std::string(entry) + ": " + errno_text(errno);
  return 0;  // go on: remove as much as can be removed
}

}  // namespace

void remove_tree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw std::runtime_error("cannot remove " + path + ": " + errno_text(errno));
  }
  remove_failure.clear();
  if (nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && remove_failure.empty())
    remove_failure = path + ": " + errno_text(errno);
  if (!remove_failure.empty()) {
    const std::string what = "cannot remove " + remove_failure;
    remove_failure.clear();
    throw std::runtime_error(what);
  }
}

TempDir::TempDir(const std::string& prefix) : owner_(getpid()) {
  std::string tmpl = system_temp_dir() + "/" + prefix + ".XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr)
    throw std::runtime_error("cannot make a temporary folder " + tmpl + ": " + errno_text(errno));
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (getpid() != owner_) return;
  const char* keep = std::getenv("AUDIT_KEEP_TEST_DIRS");
  if (keep != nullptr && *keep != '\0') {
    std::cerr << "note: kept " << path_ << " ($AUDIT_KEEP_TEST_DIRS is set)\n";
    return;
  }
  try {
    remove_tree(path_);
  } catch (const std::exception& e) {
    std::cerr << "warning: " << e.what() << "\n";
  }
}

std::string read_file(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot read " + path + ": " + errno_text(errno));
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      text.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      const int err = errno;
      close(fd);
      throw std::runtime_error("cannot read " + path + ": " + errno_text(err));
    }
  }
  close(fd);
  return text;
}

void write_file(const std::string& path, const std::string& text) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write " + path + ": " + errno_text(errno));
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n >= 0) {
      done += static_cast<size_t>(n);
    } else if (errno != EINTR) {
      const int err = errno;
      close(fd);
      throw std::runtime_error("cannot write " + path + ": " + errno_text(err));
    }
  }
  if (close(fd) != 0) throw std::runtime_error("cannot write " + path + ": " + errno_text(errno));
}

// ---- subprocesses -----------------------------------------------------------------------------

// posix_spawn, not popen: the command's own redirections apply as written (no "2>&1" appended
// after them), and nothing but the exec happens in the child of a multi-threaded test binary.
CommandResult run_command(const std::string& shell_command) {
  CommandResult r;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return r;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
  std::string arg0 = "sh", arg1 = "-c", arg2 = shell_command;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, "/bin/sh", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (spawned != 0) {
    close(fds[0]);
    return r;
  }
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) r.output.append(buf, static_cast<size_t>(n));
    else if (n == 0 || errno != EINTR) break;
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

CommandResult run_audit(const std::string& args) {
  return run_command("'" + audit_binary() + "' " + args);
}

std::string python() { return audit::default_python(); }

std::string python_fixture(const std::string& name, const std::string& make,
                           const std::vector<std::string>& inputs) {
  std::string key = make;
  for (const auto& f : inputs) key += "\n" + f + "\n" + read_file(f);
  const fs::path dir =
      fs::path(build_dir()) / "test-fixtures" / (name + "-" + audit::sha256_hex(key).substr(0, 12));
  std::error_code ec;
  if (fs::exists(dir / ".made", ec)) return dir.string();
  fs::create_directories(dir.parent_path(), ec);
  const fs::path tmp = dir.string() + ".tmp." + std::to_string(::getpid());
  remove_tree(tmp.string());
  fs::create_directories(tmp, ec);
  std::string cmd = make;
  const std::string quoted = "'" + tmp.string() + "'";
  for (size_t at; (at = cmd.find("{OUT}")) != std::string::npos;) cmd.replace(at, 5, quoted);
  const auto made = run_command(cmd);
  if (made.exit_code != 0) {
    remove_tree(tmp.string());
    ADD_FAILURE() << "fixture " << name << ": `" << cmd << "` exited " << made.exit_code << "\n"
                  << made.output;
    return "";
  }
  write_file((tmp / ".made").string(), made.output);
  fs::rename(tmp, dir, ec);  // a concurrent maker may have won: its fixture is as good
  if (ec) remove_tree(tmp.string());
  return dir.string();
}

nlohmann::json hf_checkpoint_fixtures() {
  const std::string script = source_dir() + "/tests/golden/make_hf_checkpoints.py";
  const std::string dir = python_fixture(
      "hf_checkpoints", "'" + python() + "' '" + script + "' {OUT} 2>/dev/null", {script});
  if (dir.empty()) return nlohmann::json::array();
  auto manifest = nlohmann::json::parse(read_file(dir + "/.made"));
  for (auto& e : manifest) e["dir"] = dir + "/" + e["name"].get<std::string>();
  return manifest;
}

bool has_torch_part() {
  std::error_code ec;
  return fs::exists(fs::path(audit_binary()).parent_path() / "audit-torch", ec);
}

}  // namespace audit::testing
