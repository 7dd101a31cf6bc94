// The two binaries: `audit` never loads LibTorch and hands run, replay and bench to
// `audit-torch` beside it; alone, it refuses them with exit 2 and says why.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/support/support.h"

namespace {
namespace fs = std::filesystem;
using audit::testing::run_command;

TEST(Cli, HelpListsEveryVerbIncludingTheLibTorchOnes) {
  const auto r = audit::testing::run_audit("--help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const char* verb : {"run", "replay", "bench", "estimate", "report", "ledger", "check"})
    EXPECT_NE(r.output.find(std::string("\n  ") + verb), std::string::npos) << verb << "\n" << r.output;
}

TEST(Cli, TheTorchFreeBinaryDoesNotLinkLibTorch) {
  const auto r = run_command("ldd '" + audit::testing::audit_binary() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("libtorch"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("libc10"), std::string::npos) << r.output;
}

TEST(Cli, ATorchVerbWithoutAuditTorchBesideItExitsTwoAndSaysWhy) {
  const audit::testing::TempDir tmp("audit_cli");
  const fs::path dir = tmp.path();
  fs::copy_file(audit::testing::audit_binary(), dir / "audit", fs::copy_options::overwrite_existing);
  const auto r = run_command("'" + (dir / "audit").string() + "' run recipes/s1-mini.toml");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("needs the LibTorch part of audit, audit-torch"), std::string::npos)
      << r.output;
}

TEST(Cli, RunHelpIsAnsweredByAuditTorch) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const auto r = audit::testing::run_audit("run --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--meter-interval"), std::string::npos) << r.output;
}

}  // namespace

namespace {

// `audit model` is a torch-free parent: `inspect` runs in `audit`, `compare` (LibTorch) is handed
// to audit-torch; `audit model --help` lists both.
TEST(Cli, ModelCompareIsHandedToAuditTorchAndInspectIsNot) {
  const audit::testing::TempDir tmp("audit_cli");
  const fs::path dir = tmp.path();
  fs::copy_file(audit::testing::audit_binary(), dir / "audit", fs::copy_options::overwrite_existing);
  auto r = run_command("'" + (dir / "audit").string() + "' model compare x y");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("needs the LibTorch part of audit, audit-torch"), std::string::npos)
      << r.output;
  r = run_command("'" + (dir / "audit").string() + "' model inspect " + tmp.file("none"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("not a checkpoint directory"), std::string::npos) << r.output;
  r = audit::testing::run_audit("model --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("inspect"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("compare"), std::string::npos) << r.output;
}

}  // namespace
