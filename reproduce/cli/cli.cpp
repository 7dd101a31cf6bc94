// Shared command-line pieces: the common options and the error-to-exit-code mapping.
#include "reproduce/cli/cli.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <utility>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "ledger/store/ledger.h"
#include "common/errors.h"
#include "common/resources.h"

namespace audit::cli {

void add_ledger_option(CLI::App& cmd, GlobalOptions& g) {
  cmd.add_option("--ledger", g.ledger, "SQLite ledger file (created if missing)")
      ->capture_default_str()
      ->envname("AUDIT_LEDGER");
}

void add_recipe_options(CLI::App& cmd, GlobalOptions& g) {
  cmd.add_option("--set", g.sets,
                 "Override one recipe key after the file, e.g. --set train.lr=2e-5 (repeatable)")
      ->type_name("SECTION.KEY=VALUE");
  cmd.add_option("--seed", g.seed, "Override the recipe's seed");
}

void add_device_option(CLI::App& cmd, GlobalOptions& g) {
  cmd.add_option("--device", g.device, "Where to compute: cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
}

void add_out_option(CLI::App& cmd, GlobalOptions& g, const std::string& help) {
  cmd.add_option("--out", g.out, help);
}

bool is_torch_verb(const char* arg) {
  for (const auto& v : kTorchVerbs)
    if (std::strcmp(arg, v.name) == 0) return true;
  return false;
}

bool needs_torch(int argc, char** argv) {
  if (argc < 2) return false;
  if (is_torch_verb(argv[1])) return true;
  if (argc < 3) return false;
  for (const auto& s : kTorchSubcommands)
    if (std::strcmp(argv[1], s.verb) == 0 && std::strcmp(argv[2], s.name) == 0) return true;
  return false;
}

void exec_torch_binary(char** argv) {
  namespace fs = std::filesystem;
  const fs::path dir = executable_dir();
  const std::string path = (dir / "audit-torch").string();
  std::error_code ec;
  if (fs::exists(path, ec)) {
    argv[0] = const_cast<char*>(path.c_str());
    ::execv(path.c_str(), argv);
    std::fprintf(stderr, "audit %s: cannot start %s: %s\n", argv[1], path.c_str(),
                 std::strerror(errno));
    std::exit(kExitBadInput);
  }
  std::fprintf(stderr,
               "audit %s: this verb needs the LibTorch part of audit, audit-torch, which is not "
               "beside %s (was the build configured with -DAUDIT_TORCH=OFF?)\n",
               argv[1], dir.string().c_str());
  std::exit(kExitBadInput);
}

void add_torch_verb_forwarders(CLI::App& app) {
  for (const auto& v : kTorchVerbs) {
    auto* cmd = app.add_subcommand(v.name, v.summary);
    cmd->allow_extras();
    cmd->set_help_flag();  // `audit run --help` is answered by audit-torch
  }
}

void add_torch_subcommand_forwarders(CLI::App& verb) {
  for (const auto& s : kTorchSubcommands) {
    if (verb.get_name() != s.verb) continue;
    auto* cmd = verb.add_subcommand(s.name, s.summary);
    cmd->allow_extras();
    cmd->set_help_flag();  // answered by audit-torch
  }
}

namespace {
ReportRenderer& renderer_slot() {
  static ReportRenderer r;
  return r;
}
}  // namespace

void set_report_renderer(ReportRenderer r) { renderer_slot() = std::move(r); }
const ReportRenderer& report_renderer() { return renderer_slot(); }

void run_and_exit(const char* verb, const std::function<int()>& fn) {
  int code = kExitOk;
  try {
    code = fn();
  } catch (const InputError& e) {
    std::fprintf(stderr, "audit %s: error: %s\n", verb, e.what());
    code = kExitBadInput;
  } catch (const ledger::LedgerError& e) {
    std::fprintf(stderr, "audit %s: ledger error: %s\n", verb, e.what());
    code = kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "audit %s: failed: %s\n", verb, e.what());
    code = 3;
  }
  std::fflush(stdout);
  std::exit(code);
}

}  // namespace audit::cli
