// `audit diff RUN_A RUN_B [--ledger PATH] [--json]`: two runs side by side (reports/compare): cost
// lines with provenance, the totals, stage meters, eval cells with the significance of each
// accuracy change, and verdicts. A RUN is "latest", an id, or LEDGER:ID to compare two ledgers.
// Reads only (ledgers opened read-only). Exit 0 (a difference is not a failure); 2 bad input.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "common/errors.h"
#include "ledger/store/ledger.h"        // Ledger (read-only)
#include "reports/compare/compare.h"    // resolve_run_ref, read_snapshot, diff_runs
#include "reproduce/cli/cli.h"

namespace audit::cli {

void add_diff_command(CLI::App& app, GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "diff", "Compare two runs: costs, meters, evals (with significance) and verdicts");
  auto a = std::make_shared<std::string>();
  auto b = std::make_shared<std::string>();
  auto json_out = std::make_shared<bool>(false);
  cmd->add_option("run_a", *a, "First run (A): latest, an id, or LEDGER:ID")->required();
  cmd->add_option("run_b", *b, "Second run (B): latest, an id, or LEDGER:ID")->required();
  cmd->add_option("--ledger", g.ledger,
                  "Ledger of a RUN given without LEDGER: (opened read-only; a missing file is "
                  "an error, exit 2)")
      ->capture_default_str()
      ->envname("AUDIT_LEDGER");
  cmd->add_flag("--json", *json_out, "Print the diff as JSON to stdout");
  cmd->footer(
      "Pairs cost lines by category, description and unit (each with its provenance:\n"
      "measured, declared or estimated), the report's totals, stage meters (wall, CPU,\n"
      "GPU-hours, energy, training tokens/s), eval cells by model, suite, split and budget\n"
      "(pooled over seeds) and verdicts, with the change B - A. An accuracy change is\n"
      "significant by the two-proportion z-test at 95% (|z| > 1.96) on the pooled counts;\n"
      "whether the Wilson 95% intervals are apart is shown beside it. docs/dashboard.md.\n\n"
      "Examples:\n"
      "  audit diff 3 latest --ledger audit.db\n"
      "  audit diff main.db:12 branch.db:latest --json\n\n"
      "Exit codes: 0 compared (whatever the differences); 2 bad input (no such ledger or run);\n"
      "3 unexpected failure.");
  cmd->callback([a, b, json_out, &g] {
    run_and_exit("diff", [&] {
      const auto ra = reports::compare::resolve_run_ref(*a, g.ledger);
      const auto rb = reports::compare::resolve_run_ref(*b, g.ledger);
      auto snap = [](const reports::compare::RunRef& r) {
        const ledger::Ledger l(r.ledger, ledger::OpenMode::read_only);
        return reports::compare::read_snapshot(l, r.ledger, r.id);
      };
      const auto d = reports::compare::diff_runs(snap(ra), snap(rb));
      if (*json_out)
        std::printf("%s\n", reports::compare::diff_json(d).dump(2).c_str());
      else
        std::fputs(reports::compare::diff_text(d).c_str(), stdout);
      return kExitOk;
    });
  });
}

}  // namespace audit::cli
