// `audit report [RUN|latest] --ledger PATH --out report.html [--fail-on-verdict] [--quiet]`:
// computes and stores the run's verdicts (idempotent), then writes the executive HTML report, read
// from the ledger alone. Exit 0; 1 with --fail-on-verdict when a verdict is "not supported";
// 2 on bad input.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "ledger/store/ledger.h"
#include "reports/html/html_report.h"  // write_report
#include "reproduce/verdicts/verdicts.h"     // any_not_supported, verdict words
#include "reproduce/cli/cli.h"
#include "common/errors.h"

namespace audit::cli {

void add_report_command(CLI::App& app, GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "report", "Write the executive HTML report of a run (verdicts, costs, charts, evidence)");
  auto run_arg = std::make_shared<std::string>("latest");
  auto fail_on_verdict = std::make_shared<bool>(false);
  cmd->add_option("run", *run_arg, "Run id, or 'latest' (the newest run in the ledger)")
      ->capture_default_str();
  add_ledger_option(*cmd, g);
  add_out_option(*cmd, g, "HTML file to write (default: report.html)");
  cmd->add_flag("--fail-on-verdict", *fail_on_verdict,
                "Exit 1 when any verdict is 'not supported' (for CI)");
  cmd->add_flag("--quiet", g.quiet, "Print nothing on success");
  cmd->footer(
      "Computes the run's verdicts (cost claim, each claimed result, generalization) from its\n"
      "ledger rows and stores them in the ledger (a recomputation over unchanged rows stores\n"
      "nothing), then writes one self-contained HTML page: no script, no network, inline SVG\n"
      "charts, print-friendly. The page is regenerated from the ledger alone.\n\n"
      "Examples:\n"
      "  audit report --ledger demo/audit.db --out reports/s1-mini.html\n"
      "  audit report 3 --ledger audit.db --out run3.html --fail-on-verdict\n\n"
      "Exit codes: 0 written; 1 with --fail-on-verdict when a verdict is 'not supported';\n"
      "2 bad input (no such ledger or run).");
  cmd->callback([run_arg, fail_on_verdict, &g] {
    run_and_exit("report", [&] {
      if (!std::filesystem::exists(g.ledger))
        throw InputError(g.ledger, 0, 0, "--ledger", "no such ledger file");
      ledger::Ledger l(g.ledger);
      int64_t run_id = 0;
      if (*run_arg == "latest") {
        run_id = l.latest_run();
        if (run_id == 0) throw InputError(g.ledger, 0, 0, "run", "the ledger holds no runs");
      } else {
        try {
          size_t used = 0;
          run_id = std::stoll(*run_arg, &used);
          if (used != run_arg->size() || run_id <= 0) throw std::invalid_argument("run");
        } catch (const std::exception&) {
          throw InputError(
              "", 0, 0, "run",
              "expected a run id (a positive integer) or 'latest', got '" + *run_arg + "'");
        }
        if (!l.run(run_id))
          throw InputError(
              g.ledger, 0, 0, "run",
              "no run " + std::to_string(run_id) + " in the ledger (see `audit ledger list`)");
      }
      const std::string out = g.out.empty() ? "report.html" : g.out;
      auto verdicts = reports::write_report(l, run_id, out);
      if (!g.quiet) {
        for (const auto& v : verdicts)
          std::printf("%-22s %s\n", v.verdict.c_str(), v.claim.c_str());
        std::printf("report of run %lld written to %s\n", static_cast<long long>(run_id),
                    out.c_str());
      }
      if (*fail_on_verdict && reports::any_not_supported(verdicts)) return kExitVerdictFailed;
      return kExitOk;
    });
  });
}

}  // namespace audit::cli
