// Shared command-line pieces: the common options and the error-to-exit-code mapping.
#include "reproduce/cli.h"

#include <cstdio>
#include <cstdlib>
#include <exception>

#include <CLI/CLI.hpp>

#include "ledger/ledger.h"
#include "reproduce/errors.h"

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
