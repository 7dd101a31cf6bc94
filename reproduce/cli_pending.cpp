// Verbs whose capability has not landed yet: they exist, explain, and exit 2. No fake output.
// When a verb lands, its module defines add_<verb>_command and its stub here is deleted.
#include <cstdio>
#include <cstdlib>

#include <CLI/CLI.hpp>

#include "reproduce/cli.h"

namespace audit::cli {
namespace {
void pending(CLI::App& app, const char* verb, const char* what) {
  auto* cmd = app.add_subcommand(verb, std::string(what) + " [not built yet]");
  cmd->allow_extras();
  cmd->callback([verb] {
    std::fprintf(stderr, "audit %s: not built yet in this version; see the open issues\n", verb);
    std::exit(2);
  });
}
}  // namespace

void add_run_command(CLI::App& app, GlobalOptions&) { pending(app, "run", "Re-execute a recipe with real training, metered into the ledger"); }
void add_estimate_command(CLI::App& app, GlobalOptions&) { pending(app, "estimate", "Paper-only compute and cost audit of a recipe"); }
void add_replay_command(CLI::App& app, GlobalOptions&) { pending(app, "replay", "Time the claimed shapes here and extrapolate to the claimed cluster"); }
void add_report_command(CLI::App& app, GlobalOptions&) { pending(app, "report", "Write the executive HTML report of a run"); }
void add_dashboard_command(CLI::App& app, GlobalOptions&) { pending(app, "dashboard", "CI regression dashboard across runs"); }
void add_ledger_command(CLI::App& app, GlobalOptions&) { pending(app, "ledger", "List, show, verify and export ledger runs"); }
void add_bench_command(CLI::App& app, GlobalOptions&) { pending(app, "bench", "Benchmarks against PyTorch eager"); }
void add_check_command(CLI::App& app, GlobalOptions&) { pending(app, "check", "Validate a recipe and print it resolved"); }

}  // namespace audit::cli
