// The test support itself (tests/support/support.h): TempDir makes a fresh folder and removes it
// with everything in it (not what a symbolic link in it points to), or keeps it when
// $AUDIT_KEEP_TEST_DIRS is set; write_file and read_file round-trip bytes and name the path when
// they fail; run_command returns the exit code and stdout and stderr together.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include <unistd.h>

#include "tests/support/support.h"

namespace {
namespace fs = std::filesystem;
using audit::testing::read_file;
using audit::testing::run_command;
using audit::testing::TempDir;
using audit::testing::write_file;

// Sets an environment variable for one scope and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// The message of the std::runtime_error `fn` throws ("" and a test failure when it throws none).
template <class F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a std::runtime_error, none was thrown";
  return "";
}

TEST(TempDir, IsAFreshEmptyFolderUnderTheSystemTempFolder) {
  TempDir a("support_test"), b("support_test");
  EXPECT_NE(a.path(), b.path());
  EXPECT_TRUE(fs::is_directory(a.path()));
  EXPECT_TRUE(fs::is_empty(a.path()));
  EXPECT_TRUE(fs::equivalent(fs::path(a.path()).parent_path(), fs::temp_directory_path()))
      << a.path();
  EXPECT_EQ(fs::path(a.path()).filename().string().rfind("support_test.", 0), 0u) << a.path();
  EXPECT_EQ(a.file("x.txt"), a.path() + "/x.txt");
  EXPECT_FALSE(fs::exists(a.file("x.txt"))) << "file() makes nothing";
}

TEST(TempDir, RemovedWithEverythingInItButNotWhatALinkPointsTo) {
  ScopedEnv no_keep("AUDIT_KEEP_TEST_DIRS", "");
  TempDir outside("support_test_outside");
  write_file(outside.file("kept.txt"), "kept");
  std::string path;
  {
    TempDir dir("support_test");
    path = dir.path();
    fs::create_directories(dir.file("a/b/c"));
    write_file(dir.file("top.txt"), "top");
    write_file(dir.file("a/b/c/deep.bin"), std::string("\0\1\2", 3));
    write_file(dir.file("a/b/mid.txt"), "mid");
    fs::create_directory_symlink(outside.path(), dir.file("a/link_to_outside"));
    fs::create_symlink(dir.file("nowhere"), dir.file("dangling"));
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(path))) << path;
  EXPECT_EQ(read_file(outside.file("kept.txt")), "kept") << "the removal followed a link";
}

TEST(TempDir, KeptWhenAuditKeepTestDirsIsSet) {
  std::string path;
  {
    ScopedEnv keep("AUDIT_KEEP_TEST_DIRS", "1");
    TempDir dir("support_test_kept");
    path = dir.path();
    write_file(dir.file("f.txt"), "f");
  }
  EXPECT_EQ(read_file(path + "/f.txt"), "f");
  audit::testing::remove_tree(path);
  EXPECT_FALSE(fs::exists(path));
}

TEST(TempDir, AnEmptyAuditKeepTestDirsDoesNotKeep) {
  std::string path;
  {
    ScopedEnv keep("AUDIT_KEEP_TEST_DIRS", "");
    TempDir dir("support_test");
    path = dir.path();
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(RemoveTree, AMissingPathIsNoErrorAndAFileIsRemoved) {
  TempDir dir("support_test");
  EXPECT_NO_THROW(audit::testing::remove_tree(dir.file("missing")));
  write_file(dir.file("f"), "x");
  audit::testing::remove_tree(dir.file("f"));
  EXPECT_FALSE(fs::exists(dir.file("f")));
}

TEST(Files, WriteReadRoundTripKeepsEveryByteAndTruncates) {
  TempDir dir("support_test");
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  bytes += std::string(100000, 'z');  // more than one read
  write_file(dir.file("b.bin"), bytes);
  EXPECT_EQ(read_file(dir.file("b.bin")), bytes);
  write_file(dir.file("b.bin"), "short");
  EXPECT_EQ(read_file(dir.file("b.bin")), "short");
  write_file(dir.file("empty"), "");
  EXPECT_EQ(read_file(dir.file("empty")), "");
}

TEST(Files, FailuresNameThePath) {
  TempDir dir("support_test");
  const std::string missing = dir.file("no/such/file.txt");
  EXPECT_NE(error_of([&] { read_file(missing); }).find(missing), std::string::npos);
  EXPECT_NE(error_of([&] { write_file(missing, "x"); }).find(missing), std::string::npos);
  EXPECT_NE(error_of([&] { read_file(dir.path()); }).find(dir.path()), std::string::npos)
      << "a folder is not a file";
}

TEST(RunCommand, ExitCodeAndStdoutAndStderrTogether) {
  const auto r = run_command("printf 'to stdout\\n'; printf 'to stderr\\n' >&2; exit 3");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.output, "to stdout\nto stderr\n");
  const auto ok = run_command("true");
  EXPECT_EQ(ok.exit_code, 0);
  EXPECT_EQ(ok.output, "");
}

TEST(RunCommand, KilledBySignalIsMinusOne) {
  EXPECT_EQ(run_command("kill -KILL $$").exit_code, -1);
}

TEST(RunCommand, RedirectionsInTheCommandApplyAsWritten) {
  TempDir dir("support_test");
  const auto r = run_command("{ echo out; echo err >&2; } > '" + dir.file("out") + "' 2> '" +
                             dir.file("err") + "'");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "");
  EXPECT_EQ(read_file(dir.file("out")), "out\n");
  EXPECT_EQ(read_file(dir.file("err")), "err\n");
}

TEST(RunCommand, RunAuditRunsTheAuditBinary) {
  const auto r = audit::testing::run_audit("--help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("estimate"), std::string::npos) << r.output;
}

}  // namespace
