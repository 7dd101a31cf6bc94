// The CI regression dashboard (`audit dashboard`): every run of one or more ledgers grouped by
// claim (run name; `audit replay` runs apart), their trends by time and commit (full cost,
// GPU-hours, training tokens/s, tuned ID and OOD accuracy, verdicts), one baseline and one
// current run per claim, and the regression rules of the claim's [regression] recipe section
// (reproduce/recipe) judged between them. Built as a plain model first (build_dashboard), then
// rendered: the HTML page (dashboard_html.cpp), JUnit XML and JSON (dashboard_out.cpp). Reads
// only; every figure comes from a RunSnapshot (compare.h), i.e. the report's own model of a run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reports/compare/compare.h"  // RunSnapshot
#include "reproduce/recipe/recipe.h"  // RegressionSection

namespace audit::reports::compare {

struct DashboardOptions {
  std::vector<std::string> ledgers;  // each opened read-only; missing file: InputError (exit 2)
  std::string baseline;              // --baseline LEDGER:ID | ID (ID: in the first ledger)
  std::string baseline_branch;       // --baseline-branch NAME: the newest run on it
};

// One rule judged between a claim's baseline and current run.
struct RuleResult {
  std::string rule;       // the [regression] key, e.g. "cost_growth_pct"
  std::string what;       // what it checks, in words
  double threshold = 0;   // the key's value
  bool judged = false;    // false: off (0), or a figure missing in either run (see message)
  bool failed = false;    // a regression
  std::optional<double> baseline, current;  // the figures compared (accuracy: per split below)
  std::string message;    // one line: the figures and the verdict of the rule
};

// A verdict of the current run, next to the baseline's verdict on the same (kind, claim).
struct VerdictCase {
  std::string kind, claim;
  std::string current, baseline;  // verdict words; baseline "" when it has none
  std::string measured;
  bool failed = false;            // verdict_changes: supported in the baseline, not now
};

struct ClaimTrend {
  std::string claim;              // run name
  bool replay = false;            // the `audit replay` runs of that name
  std::vector<RunSnapshot> runs;  // oldest first (started_at, then ledger order)
  std::optional<size_t> current, baseline;  // indices into runs
  std::string baseline_how;       // "previous run", "--baseline", "last run on branch main"
  std::string no_baseline;        // why no rule was judged ("" when a baseline was found)
  recipe::RegressionSection rules;
  bool rules_stated = false;      // the current run's stored recipe has a [regression] section
  std::vector<RuleResult> results;
  std::vector<VerdictCase> verdicts;
  bool regressed() const;
};

struct Dashboard {
  std::vector<std::string> ledgers;
  DashboardOptions options;
  std::vector<ClaimTrend> claims;  // by claim name
  bool regressed() const;
  // One line per failed rule or verdict: "CLAIM: RULE: ... (baseline L:ID, current L:ID)".
  std::vector<std::string> regressions() const;
};

// Reads every run of the ledgers and judges each claim. Throws audit::InputError (exit 2) for a
// missing ledger, an unknown --baseline run, a --baseline-branch no run recorded, or a stored
// [regression] section with a bad value (file:line:key, the file named "LEDGER:ID recipe").
Dashboard build_dashboard(const DashboardOptions& o);

// The renderers.
std::string render_dashboard_html(const Dashboard& d);  // one self-contained page
std::string render_junit(const Dashboard& d);           // JUnit XML
nlohmann::json dashboard_json(const Dashboard& d);

}  // namespace audit::reports::compare
