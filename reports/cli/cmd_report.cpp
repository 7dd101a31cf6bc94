// `audit report [RUN|latest] --ledger PATH --out report.html [--fail-on-verdict] [--quiet]`:
// writes the executive HTML report, read from the ledger alone. It only reads: the ledger is
// opened read-only and nothing is stored; verdicts not stored for the run (a run from before
// verdicts were stored at its end, or one that died) are computed for the page, which says so,
// and `audit verdicts RUN` stores them. Exit 0; 1 with --fail-on-verdict when a verdict is "not
// supported"; 2 on bad input.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "ledger/store/ledger.h"        // Ledger (read-only), resolve_run
#include "reports/html/html_report.h"   // write_report
#include "reproduce/verdicts/verdicts.h"  // any_not_supported
#include "reproduce/cli/cli.h"
#include "common/errors.h"

namespace audit::cli {

void add_report_command(CLI::App& app, GlobalOptions& g) {
  // Offered to the verbs below reports/ that attach the report (ledger export --format mlflow).
  set_report_renderer(
      [](const ledger::Ledger& l, int64_t run_id) { return reports::render_report(l, run_id); });
  auto* cmd = app.add_subcommand(
      "report", "Write the executive HTML report of a run (verdicts, costs, charts, evidence)");
  auto run_arg = std::make_shared<std::string>("latest");
  auto fail_on_verdict = std::make_shared<bool>(false);
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("run", *run_arg, "Run id, or 'latest' (the newest run in the ledger)")
      ->capture_default_str();
  add_ledger_option(*cmd, g, LedgerMissing::refuse);
  add_out_option(*cmd, g, "HTML file to write (default: report.html)");
  cmd->add_flag("--fail-on-verdict", *fail_on_verdict,
                "Exit 1 when any verdict is 'not supported' (for CI)");
  cmd->add_flag("--quiet", g.quiet, "Print nothing on success");
  cmd->add_flag("--json", *as_json,
                "Also print the page's figures as JSON to stdout (verdicts, the totals with the "
                "marginal cost and the base's share, the ledger rows behind them)");
  cmd->footer(
      "Writes one self-contained HTML page of the run: no network, inline SVG charts, light\n"
      "and dark, print-friendly (one script opens closed sections for printing). It reads the ledger only (opened read-only: the file's bytes do\n"
      "not change), so the page is regenerated from the ledger alone. The verdicts shown are\n"
      "those stored when the run ended; a run without them (an older ledger, a run that died)\n"
      "gets them computed for the page, which says they are not stored: `audit verdicts RUN`\n"
      "stores them.\n\n"
      "Examples:\n"
      "  audit report --ledger demo/audit.db --out reports/s1-mini.html\n"
      "  audit report 3 --ledger audit.db --out run3.html --fail-on-verdict\n\n"
      "Exit codes: 0 written; 1 with --fail-on-verdict when a verdict is 'not supported';\n"
      "2 bad input (no such ledger or run); 3 unexpected failure (e.g. --out cannot be\n"
      "written).");
  cmd->callback([run_arg, fail_on_verdict, as_json, &g] {
    run_and_exit("report", [&] {
      if (!std::filesystem::exists(g.ledger))
        throw InputError(g.ledger, 0, 0, "--ledger", "no such ledger file");
      const ledger::Ledger l(g.ledger, ledger::OpenMode::read_only);
      const int64_t run_id = ledger::resolve_run(l, *run_arg);
      const std::string out = g.out.empty() ? "report.html" : g.out;
      const reports::ReportModel m = reports::write_report(l, run_id, out);
      if (*as_json) {
        nlohmann::json j = reports::figures_json(m);
        j["out"] = out;
        j["ledger"] = g.ledger;
        print_json(j);
      } else if (!g.quiet) {
        for (const auto& v : m.verdicts)
          std::printf("%-22s %s%s\n", v.verdict.c_str(), v.claim.c_str(),
                      v.id == 0 ? " (not stored)" : "");
        std::printf("report of run %lld written to %s\n", static_cast<long long>(run_id),
                    out.c_str());
        if (m.verdicts_not_stored > 0)
          std::printf("%zu of %zu verdicts computed for the page and not stored; `audit verdicts "
                      "%lld --ledger %s` stores them\n",
                      m.verdicts_not_stored, m.verdicts.size(), static_cast<long long>(run_id),
                      g.ledger.c_str());
      }
      if (*fail_on_verdict && reports::any_not_supported(m.verdicts)) return kExitVerdictFailed;
      return kExitOk;
    });
  });
}

}  // namespace audit::cli
