// `make install` (cmake --install): the binaries, recipes, peer scripts and docs under a prefix,
// and the installed binaries run from any folder and after the prefix is moved, since no source
// or build path is compiled in (shipped files are found beside the binary, common/resources.h).
#include <gtest/gtest.h>

#include <string>

#include "tests/support/support.h"

namespace {
using audit::testing::run_command;

std::string q(const std::string& s) { return "'" + s + "'"; }

TEST(Install, InstalledBinariesRunFromAnyFolderAndAfterTheyMove) {
  const audit::testing::TempDir tmp("audit_install");
  const std::string prefix = tmp.file("prefix");
  auto r = run_command("cmake --install " + q(audit::testing::build_dir()) + " --prefix " + q(prefix));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"bin/audit", "share/audit/recipes/s1.toml", "share/audit/recipes/s1-mini.toml",
                        "share/audit/peers/bench_train.py", "share/audit/peers/bench_layer.py",
                        "share/audit/peers/qwen2_eager.py", "share/audit/peers/hf_forward_peer.py",
                        "share/audit/peers/bench_forward.py", "share/doc/audit/architecture.md"})
    EXPECT_EQ(run_command("test -f " + q(prefix + "/" + f)).exit_code, 0) << f << " not installed";

  // Moved, and run from another folder: nothing may point back at the build or the sources.
  const std::string moved = tmp.file("moved");
  ASSERT_EQ(run_command("mv " + q(prefix) + " " + q(moved)).exit_code, 0);
  r = run_command("cd / && " + q(moved + "/bin/audit") + " check " +
                  q(moved + "/share/audit/recipes/s1-mini.toml") + " > /dev/null");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = run_command("cd / && " + q(moved + "/bin/audit") + " --version");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  if (audit::testing::has_torch_part()) {
    // audit hands run to the installed audit-torch, which finds LibTorch on its own.
    r = run_command("cd / && " + q(moved + "/bin/audit") + " run --help");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("--meter-interval"), std::string::npos) << r.output;
  }
}

}  // namespace
