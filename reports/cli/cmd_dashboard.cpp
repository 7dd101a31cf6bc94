// `audit dashboard [--ledger A.db ...] [--baseline RUN | --baseline-branch NAME] [--out dash.html]
// [--junit results.xml] [--json]`: every run of the ledgers by claim, trends by time and commit,
// and the claim's [regression] rules judged between a baseline and the current run
// (reports/compare/dashboard.h). Reads only (ledgers opened read-only). Exit 0 no regression; 1 a
// regression (each named on stderr with the rule and both runs); 2 bad input.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/format.h"
#include "reports/compare/dashboard.h"  // build_dashboard and its renderers
#include "reproduce/cli/cli.h"

namespace audit::cli {
namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  f.close();
  if (!f) throw std::runtime_error("cannot write " + path);
}

// The human summary: per claim, the runs compared and each rule's outcome.
void print_summary(const reports::compare::Dashboard& d) {
  for (const auto& c : d.claims) {
    std::printf("%s%s: %zu run(s)", c.claim.c_str(), c.replay ? " (replay)" : "", c.runs.size());
    if (!c.current || !c.baseline) {
      std::printf("; not judged: %s\n", c.no_baseline.c_str());
    } else {
      std::printf("; current %s, baseline %s (%s)\n", c.runs[*c.current].ref.label().c_str(),
                  c.runs[*c.baseline].ref.label().c_str(), c.baseline_how.c_str());
    }
    for (const auto& r : c.results)
      std::printf("  %-8s %-22s %s\n", r.failed ? "FAIL" : r.judged ? "PASS" : "SKIPPED",
                  r.rule.c_str(), r.message.c_str());
    for (const auto& v : c.verdicts)
      std::printf("  %-8s verdict %s: %s%s\n", v.failed ? "FAIL" : "PASS",
                  ("'" + v.claim + "'").c_str(), v.current.c_str(),
                  v.baseline.empty() ? "" : (" (baseline: " + v.baseline + ")").c_str());
  }
}

}  // namespace

void add_dashboard_command(CLI::App& app, GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "dashboard", "CI regression dashboard: trends across runs and regression rules");
  auto o = std::make_shared<reports::compare::DashboardOptions>();
  auto junit = std::make_shared<std::string>();
  auto json_out = std::make_shared<bool>(false);
  cmd->add_option("--ledger", o->ledgers,
                  "Ledger to read (repeatable; opened read-only; a missing file is an error, "
                  "exit 2). Default: $AUDIT_LEDGER, else audit.db");
  cmd->add_option("--baseline", o->baseline,
                  "Baseline run: LEDGER:ID, or an id in the first --ledger");
  cmd->add_option("--baseline-branch", o->baseline_branch,
                  "Baseline: each claim's last succeeded run recorded on this branch");
  add_out_option(*cmd, g, "Write the dashboard page (one self-contained HTML file)");
  cmd->add_option("--junit", *junit, "Write JUnit XML: one test case per rule and per verdict");
  cmd->add_flag("--json", *json_out, "Print the dashboard as JSON to stdout");
  cmd->add_flag("--quiet", g.quiet, "Print nothing but regressions (stderr)");
  cmd->footer(
      "Groups the runs of every ledger by claim (run name; replay runs apart), oldest first.\n"
      "The current run of a claim is its newest succeeded run; its baseline is --baseline,\n"
      "the last succeeded run on --baseline-branch before it, or else the previous succeeded\n"
      "run. The rules are the [regression] section of the recipe stored with the current run\n"
      "(defaults when it has none): cost_growth_pct, gpu_hours_growth_pct,\n"
      "accuracy_drop_points (only a significant drop: two-proportion z-test at 95%),\n"
      "throughput_ratio, verdict_changes. A run records its branch from AUDIT_BRANCH,\n"
      "GITHUB_HEAD_REF, GITHUB_REF_NAME, CI_COMMIT_BRANCH, ... when it starts.\n"
      "docs/dashboard.md has the rules, the outputs and a CI job.\n\n"
      "Examples:\n"
      "  audit dashboard --ledger audit.db --out dash.html\n"
      "  audit dashboard --ledger main.db --ledger pr.db --baseline-branch main \\\n"
      "      --junit results.xml --out dash.html\n\n"
      "Exit codes: 0 no regression; 1 a regression (named on stderr with the rule and both\n"
      "runs); 2 bad input (missing ledger, unknown baseline, a bad [regression] value);\n"
      "3 unexpected failure.");
  cmd->callback([o, junit, json_out, &g] {
    run_and_exit("dashboard", [&] {
      if (o->ledgers.empty()) {
        const char* env = std::getenv("AUDIT_LEDGER");
        o->ledgers.push_back(env != nullptr && *env != '\0' ? env : "audit.db");
      }
      const auto d = reports::compare::build_dashboard(*o);
      if (!g.out.empty()) write_file(g.out, reports::compare::render_dashboard_html(d));
      if (!junit->empty()) write_file(*junit, reports::compare::render_junit(d));
      if (*json_out)
        std::printf("%s\n", reports::compare::dashboard_json(d).dump(2).c_str());
      else if (!g.quiet)
        print_summary(d);
      const auto regs = d.regressions();
      for (const auto& r : regs) std::fprintf(stderr, "audit dashboard: regression: %s\n", r.c_str());
      if (!g.quiet && !*json_out) {
        if (!g.out.empty()) std::printf("dashboard written to %s\n", g.out.c_str());
        if (!junit->empty()) std::printf("JUnit written to %s\n", junit->c_str());
      }
      return regs.empty() ? kExitOk : kExitVerdictFailed;
    });
  });
}

}  // namespace audit::cli
