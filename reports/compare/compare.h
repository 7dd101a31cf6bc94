// Two runs side by side (`audit diff`) and what the dashboard reads of each run: a RunSnapshot is
// the report's model of a run (read_report_model: the same totals, cells and verdicts the report
// shows, not recomputed) plus the stage meters, the SFT tokens/s from the trainer's
// "train_summary" events and the branch the run was made on. diff_runs() pairs the two runs'
// cost lines, totals, stage meters, eval cells and verdicts, with the change in each; for an
// accuracy it runs the two-proportion z-test at 95% on the pooled counts (the rule that calls a
// change significant) and says whether the Wilson intervals are apart (shown, not a rule).
// Reads only; renders text and JSON, no markup.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ledger/store/branch.h"          // BranchInfo
#include "ledger/store/ledger.h"          // Ledger, RunInfo, StageInfo, Verdict
#include "reports/html/report_model.h"   // ReportModel, read_report_model
#include "suites/stats/two_proportion.h"  // TwoProportionTest

namespace audit::reports::compare {

// A run in some ledger file.
struct RunRef {
  std::string ledger;  // path as given
  int64_t id = 0;
  std::string label() const;  // "LEDGER:ID"
};

// Splits a RUN argument: "latest", "ID", "LEDGER:ID" or "LEDGER:latest" (the ledger part is the
// text before the last ':'); without a ledger part, default_ledger. Opens nothing.
std::pair<std::string, std::string> split_run_spec(const std::string& spec,
                                                   const std::string& default_ledger);
// Resolves a RUN argument against its ledger (opened read-only). Throws audit::InputError for a
// missing ledger file or an unknown run (exit 2).
RunRef resolve_run_ref(const std::string& spec, const std::string& default_ledger);

// A stage's meters as the diff and the dashboard show them.
struct StageMeters {
  std::string name;
  double wall_s = 0, cpu_s = 0;
  double gpu_hours = 0;            // StageInfo.gpu_s / 3600 (what a cloud bills)
  double energy_kwh = 0;           // StageInfo.energy_j / 3.6e6; 0 when not metered
  bool power_metered = false;
  std::optional<double> tokens_per_s;  // the stage's "train_summary" event (training stages)
  double tokens = 0;                   // training tokens of that event
};

struct RunSnapshot {
  RunRef ref;
  ReportModel model;                        // the report's model of the run
  std::optional<ledger::BranchInfo> branch;  // ledger/store/branch.h; nullopt when not recorded
  std::vector<StageMeters> stages;          // in stage order
  // Training throughput: the tokens over the seconds of the final run's training stages (stage
  // category final_run: "sft", "sft-seed1"; not the repeats with other seeds), else of all
  // training stages; nullopt when the run trained nothing (or predates the events).
  std::optional<double> train_tokens_per_s;
  std::string train_tokens_per_s_from;  // "final-run training stages" | "all training stages"
  bool replay = false;  // an `audit replay` run (a replay or replay_self_check artifact)

  double full_cost_mid() const { return model.costs.full.mid; }
  double gpu_hours() const;  // summed over the stages
  double cpu_hours() const;
};

// Reads one run (the ledger may be read-only). Throws ledger::LedgerError for an unknown run.
RunSnapshot read_snapshot(const ledger::Ledger& l, const std::string& ledger_path, int64_t run_id);

// ---- The diff ----

// Two optional figures and their change (b - a; pct: relative to a, when a != 0).
struct Change {
  std::optional<double> a, b;
  std::optional<double> delta() const;
  std::optional<double> pct() const;
};

struct CostLineDiff {
  std::string category, description, unit;
  std::optional<ledger::Band> a, b;        // the line's cost (ledger::item_cost)
  std::string provenance_a, provenance_b;  // measured | declared | estimated ("" when absent)
  std::string formula_a, formula_b;
  bool in_total = true;
  Change mid() const;
};

struct TotalDiff {
  std::string label;  // "Claimed", "Final run", ..., "Full cost"
  ledger::Band a, b;
  Change mid() const { return {a.mid, b.mid}; }
};

struct StageDiff {
  std::string name;
  std::optional<StageMeters> a, b;
};

// One eval cell (model, suite, split, budget), pooled over seeds, in each run.
struct EvalDiff {
  std::string model, suite, split;
  bool ood = false;
  int64_t budget = -1;
  std::optional<EvalCell> a, b;
  std::optional<stats::TwoProportionTest> test;  // when both runs have the cell
  bool intervals_apart = false;                  // Wilson 95% intervals do not overlap
};

struct VerdictDiff {
  std::string kind, claim;
  std::optional<ledger::Verdict> a, b;
  bool changed() const;  // the verdict word differs (or one side has none)
};

struct RunDiff {
  RunSnapshot a, b;
  bool same_recipe = false;  // the stored recipes' SHA-256 are equal
  std::vector<CostLineDiff> cost_lines;  // a's lines in report order, then b's new ones
  std::vector<TotalDiff> totals;
  std::vector<StageDiff> stages;
  Change tokens_per_s;                   // RunSnapshot::train_tokens_per_s
  std::vector<EvalDiff> evals;
  std::vector<VerdictDiff> verdicts;
};

RunDiff diff_runs(RunSnapshot a, RunSnapshot b);

// The diff as aligned text for a terminal, and as JSON (docs/dashboard.md lists the fields).
std::string diff_text(const RunDiff& d);
nlohmann::json diff_json(const RunDiff& d);

// The significance rule as one sentence (printed by the diff and the dashboard).
inline constexpr const char* kSignificanceRule =
    "two-proportion z-test at 95% (|z| > 1.96) on the counts pooled over seeds";

}  // namespace audit::reports::compare
