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

// ---- command-line consistency: unknown verbs, exit codes, --json, a missing --ledger ----

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "ledger/store/ledger.h"
#include "reproduce/cli/cli.h"
#include "tests/support/synthetic_run.h"

namespace {

// Runs `audit ARGS`, keeping stdout and stderr apart.
struct Split {
  int exit_code = -1;
  std::string out, err;
};
Split run_split(const std::string& binary, const std::string& args, const std::string& dir) {
  const std::string o = dir + "/stdout", e = dir + "/stderr";
  const auto r = run_command("'" + binary + "' " + args + " >'" + o + "' 2>'" + e + "'");
  return {r.exit_code, audit::testing::read_file(o), audit::testing::read_file(e)};
}
std::string torch_binary() {
  return (fs::path(audit::testing::audit_binary()).parent_path() / "audit-torch").string();
}

TEST(CliNames, EditDistanceAndTheClosestName) {
  using audit::cli::closest_name;
  using audit::cli::edit_distance;
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("reprot", "report"), 2u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  const std::vector<std::string> verbs = {"run", "replay", "report", "verdicts", "ledger"};
  EXPECT_EQ(closest_name("reprot", verbs), "report");
  EXPECT_EQ(closest_name("rpelay", verbs), "replay");
  EXPECT_EQ(closest_name("ledgr", verbs), "ledger");
  EXPECT_EQ(closest_name("xyzzyplugh", verbs), "");  // too far from every verb
}

TEST(CliNames, AnUnknownVerbNamesItselfAndTheClosest) {
  const audit::testing::TempDir tmp("audit_cli_names");
  const std::string bin = audit::testing::audit_binary();
  auto r = run_split(bin, "reprot --out x.html", tmp.path());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("audit: unknown command 'reprot'. Did you mean 'report'?"), std::string::npos)
      << r.err;
  r = run_split(bin, "ledger lsit", tmp.path());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("audit ledger: unknown command 'lsit'. Did you mean 'list'?"),
            std::string::npos)
      << r.err;
  // Past an option and its value.
  r = run_split(bin, "ledger --ledger some.db verfiy", tmp.path());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("unknown command 'verfiy'. Did you mean 'verify'?"), std::string::npos)
      << r.err;
  r = run_split(bin, "xyzzyplugh", tmp.path());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("audit: unknown command 'xyzzyplugh'. Known commands: "), std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(tmp.file("some.db")));
  // Known verbs and their own arguments are not taken for commands.
  r = run_split(bin, "check " + audit::testing::source_dir() + "/recipes/s1.toml --sha256",
                tmp.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (audit::testing::has_torch_part()) {
    r = run_split(torch_binary(), "benhc", tmp.path());
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("Did you mean 'bench'?"), std::string::npos) << r.err;
  }
}

TEST(CliExitCodes, TheMappingOfExceptions) {
  using audit::cli::exit_code_for;
  std::string m;
  auto code = [&](auto thrower) {
    try {
      thrower();
    } catch (...) {
      return exit_code_for(std::current_exception(), "x", &m);
    }
    return -1;
  };
  EXPECT_EQ(code([] { throw audit::InputError("r.toml", 3, 1, "train.lr", "bad"); }), 2);
  EXPECT_NE(m.find("r.toml:3:1: 'train.lr': bad"), std::string::npos) << m;
  EXPECT_EQ(code([] { throw audit::ledger::LedgerError("no ledger"); }), 2);
  EXPECT_EQ(code([] { throw std::runtime_error("disk full"); }), audit::kExitUnexpected);
  EXPECT_NE(m.find("unexpected"), std::string::npos) << m;
  EXPECT_EQ(code([] { throw 42; }), 3);
}

// An unexpected failure (an output that cannot be written) exits 3 in both binaries, and
// --help says what each exit code means.
TEST(CliExitCodes, AnUnexpectedFailureExitsThreeAndHelpSaysSo) {
  const audit::testing::TempDir tmp("audit_cli_exit");
  const std::string recipe = audit::testing::source_dir() + "/recipes/s1.toml";
  const std::string out = " --out " + tmp.file("no-such-folder") + "/e.json";
  std::vector<std::string> bins = {audit::testing::audit_binary()};
  if (audit::testing::has_torch_part()) bins.push_back(torch_binary());
  for (const auto& bin : bins) {
    auto r = run_split(bin, "estimate " + recipe + out, tmp.path());
    EXPECT_EQ(r.exit_code, 3) << bin << "\n" << r.err;
    EXPECT_NE(r.err.find("cannot write"), std::string::npos) << r.err;
    r = run_split(bin, "--help", tmp.path());
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("3 unexpected failure"), std::string::npos) << bin << "\n" << r.out;
  }
  {
    audit::ledger::Ledger l(tmp.file("a.db"));
    audit::testing::add_synthetic_run(l, false, 0.05);
  }
  auto r = run_split(audit::testing::audit_binary(),
                     "report --ledger " + tmp.file("a.db") + out, tmp.path());
  EXPECT_EQ(r.exit_code, 3) << r.err;
  for (const char* verb : {"report", "verdicts", "estimate", "check", "ledger", "model inspect",
                           "tokenize"}) {
    r = run_split(audit::testing::audit_binary(), std::string(verb) + " --help", tmp.path());
    EXPECT_NE(r.out.find("3 unexpected"), std::string::npos) << verb << "\n" << r.out;
  }
}

// --json prints one JSON document on stdout, and nothing else there.
TEST(CliJson, EveryVerbThatPrintsResultsPrintsParseableJson) {
  const audit::testing::TempDir tmp("audit_cli_json");
  const std::string db = tmp.file("a.db");
  int64_t run = 0;
  {
    audit::ledger::Ledger l(db);
    run = audit::testing::add_synthetic_run(l, false, 0.05);
  }
  const std::string recipe = audit::testing::source_dir() + "/recipes/s1.toml";
  const std::string L = " --ledger " + db;
  struct Case {
    std::string args;
    std::string key;  // a key the document has
  };
  const std::vector<Case> cases = {
      {"check " + recipe + " --json", "sha256"},
      {"estimate " + recipe + " --json", "totals"},
      {"ledger list --json" + L, "runs"},
      {"ledger show latest --json" + L, "run"},
      {"ledger verify --json" + L, "ok"},
      {"verdicts --json" + L, "verdicts"},
      {"report --json --out " + tmp.file("r.html") + L, "costs"},
  };
  for (const auto& c : cases) {
    const auto r = run_split(audit::testing::audit_binary(), c.args, tmp.path());
    EXPECT_EQ(r.exit_code, 0) << c.args << "\n" << r.err;
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(r.out)) << c.args << "\n" << r.out;
    EXPECT_TRUE(j.contains(c.key)) << c.args << "\n" << r.out;
  }
  // The figures of the report are the page's: the marginal cost, the base's share and its rows.
  const auto r = run_split(audit::testing::audit_binary(),
                           "report --json --out " + tmp.file("r.html") + L, tmp.path());
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["run"], run);
  EXPECT_NEAR(j["costs"]["marginal"]["mid"].get<double>(), 1.362, 1e-9);
  EXPECT_NEAR(j["costs"]["full_with_all_of_base"]["mid"].get<double>(), 1.402, 1e-9);
  EXPECT_EQ(j["costs"]["base_model_rows"].size(), 1u);
  EXPECT_DOUBLE_EQ(j["costs"]["base_share"].get<double>(), 1.0);
  EXPECT_TRUE(fs::exists(tmp.file("r.html")));
  // verify --json keeps its exit code: a tampered ledger is 1 with {"ok": false}.
  const auto t =
      run_command("sqlite3 '" + db + "' \"UPDATE cost_items SET quantity = quantity * 2\" 2>&1");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  const auto v = run_split(audit::testing::audit_binary(), "ledger verify --json" + L, tmp.path());
  EXPECT_EQ(v.exit_code, 1) << v.out << v.err;
  EXPECT_FALSE(nlohmann::json::parse(v.out)["ok"].get<bool>()) << v.out;
}

// Verbs that read a ledger refuse a missing file with exit 2 naming it, and create nothing;
// --help says so, and says `run` creates it.
TEST(CliLedger, AMissingLedgerIsRefusedByTheVerbsThatReadIt) {
  const audit::testing::TempDir tmp("audit_cli_ledger");
  const std::string db = tmp.file("missing.db");
  for (const std::string verb : {"report", "verdicts", "ledger list", "ledger show",
                                 "ledger verify", "ledger export"}) {
    auto r = run_split(audit::testing::audit_binary(), verb + " --ledger " + db, tmp.path());
    EXPECT_EQ(r.exit_code, 2) << verb << "\n" << r.err;
    EXPECT_NE(r.err.find(db), std::string::npos) << verb << "\n" << r.err;
    EXPECT_FALSE(fs::exists(db)) << verb << " created the ledger";
    r = run_split(audit::testing::audit_binary(), verb + " --help", tmp.path());
    EXPECT_NE(r.out.find("a missing file is refused with exit 2"), std::string::npos)
        << verb << "\n" << r.out;
  }
  if (audit::testing::has_torch_part())
    for (const char* verb : {"run", "replay"}) {
      const auto r = run_split(torch_binary(), std::string(verb) + " --help", tmp.path());
      EXPECT_NE(r.out.find("created (with its folder's permission) if"), std::string::npos)
          << verb << "\n" << r.out;
    }
}

}  // namespace
