// `audit verdicts [RUN|latest] --ledger PATH [--fail-on-verdict] [--quiet]`: computes a run's
// verdicts from its ledger rows and stores those that differ from the latest stored (idempotent),
// then prints each current verdict. `audit run` does this when a run ends; this verb is for runs
// that ended without it (ledgers from before, runs that died) and after the rules change.
// Exit 0; 1 with --fail-on-verdict when a verdict is "not supported"; 2 on bad input.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "ledger/store/ledger.h"        // Ledger, resolve_run
#include "reproduce/verdicts/verdicts.h"  // store_verdicts, current_verdicts, any_not_supported
#include "reproduce/cli/cli.h"
#include "common/errors.h"

namespace audit::cli {

void add_verdicts_command(CLI::App& app, GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "verdicts", "Compute a run's verdicts from the ledger and store them (idempotent)");
  auto run_arg = std::make_shared<std::string>("latest");
  auto fail_on_verdict = std::make_shared<bool>(false);
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("run", *run_arg, "Run id, or 'latest' (the newest run in the ledger)")
      ->capture_default_str();
  add_ledger_option(*cmd, g, LedgerMissing::refuse);
  cmd->add_flag("--fail-on-verdict", *fail_on_verdict,
                "Exit 1 when any verdict is 'not supported' (for CI)");
  cmd->add_flag("--quiet", g.quiet, "Print nothing on success");
  cmd->add_flag("--json", *as_json,
                "Print JSON to stdout: {run, ledger, stored_now, verdicts: [{kind, claim, verdict, "
                "claimed, measured, reason, id}]}");
  cmd->footer(
      "Computes the run's verdicts (cost claim, each claimed result, generalization) from its\n"
      "ledger rows and appends to the ledger those that differ from the latest stored with the\n"
      "same claim (over unchanged rows it stores nothing). `audit run` stores them when a run\n"
      "ends; use this for a ledger written before that, a run that died, or after the rules\n"
      "change. `audit report` shows the stored verdicts and never writes.\n\n"
      "Examples:\n"
      "  audit verdicts --ledger demo/audit.db\n"
      "  audit verdicts 3 --ledger audit.db --fail-on-verdict\n\n"
      "Exit codes: 0 stored; 1 with --fail-on-verdict when a verdict is 'not supported';\n"
      "2 bad input (no such ledger or run); 3 unexpected failure.");
  cmd->callback([run_arg, fail_on_verdict, as_json, &g] {
    run_and_exit("verdicts", [&] {
      if (!std::filesystem::exists(g.ledger))
        throw InputError(g.ledger, 0, 0, "--ledger", "no such ledger file");
      ledger::Ledger l(g.ledger);
      const int64_t run_id = ledger::resolve_run(l, *run_arg);
      const int added = reports::store_verdicts(l, run_id);
      const auto verdicts = reports::current_verdicts(l, run_id);
      if (*as_json) {
        nlohmann::json vs = nlohmann::json::array();
        for (const auto& v : verdicts)
          vs.push_back({{"id", v.id},
                        {"kind", v.kind},
                        {"claim", v.claim},
                        {"verdict", v.verdict},
                        {"claimed", v.claimed},
                        {"measured", v.measured},
                        {"reason", v.reason}});
        print_json({{"run", run_id}, {"ledger", g.ledger}, {"stored_now", added}, {"verdicts", vs}});
      } else if (!g.quiet) {
        for (const auto& v : verdicts)
          std::printf("%-22s %s\n", v.verdict.c_str(), v.claim.c_str());
        std::printf("run %lld: %zu verdicts, %d stored now in %s\n",
                    static_cast<long long>(run_id), verdicts.size(), added, g.ledger.c_str());
      }
      if (*fail_on_verdict && reports::any_not_supported(verdicts)) return kExitVerdictFailed;
      return kExitOk;
    });
  });
}

}  // namespace audit::cli
