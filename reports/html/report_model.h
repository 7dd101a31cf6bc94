// The report's model: every figure the executive page shows, read from one run's ledger rows
// (and the recipe text stored with the run), as plain structs with no markup. read_report_model()
// reads only; the renderers (html_report.h) turn the model into HTML, one function per section.
// Tests assert on these numbers; a few markup tests check escaping and self-containment.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ledger/store/ledger.h"        // RunInfo, StageInfo, CostItem, Verdict, VerifyReport
#include "reproduce/verdicts/verdicts.h"  // CostRollup, EvalCell, Band, verdict words

namespace audit::reports {

// The claim as the page states it (from the recipe stored with the run).
struct ClaimInfo {
  std::string title;     // claim.title, else the run name, else "run"
  std::string headline;  // claim.headline ("" when none)
  std::vector<std::string> sources;
  double claimed_gpu_hours = 0;  // recipe::claimed_gpu_hours (0 when not stated)
  std::string gpu_type;          // claim.gpu_type, "GPU" when not stated
  std::string parse_error;       // why runs.recipe_text could not be parsed ("" when parsed)
};

// The recipe text and its hash, stored and recomputed.
struct RecipeInfo {
  std::string text, path;
  std::string sha256_stored, sha256_actual;
  bool hash_matches = false;
};

// The one-line verdict at the top: its tone and the numbers its sentences are made of.
enum class Tone { good, warn, bad };  // all supported; one not reproducible here; one not supported
struct Summary {
  Tone tone = Tone::good;
  int results_supported = 0, results_not_supported = 0, results_not_reproducible = 0;
  bool has_id_and_ood = false;  // the tuned model has an ID cell and at least one OOD cell
  double tuned_id = 0;          // its ID headline mean
  double tuned_ood = 0;         // mean over the OOD splits of their headline means
  int ood_splits = 0;
};

// Wall, CPU and GPU seconds summed over the stages of one cost category (the "final run" card).
struct CategoryMetering {
  std::vector<std::string> stages;  // their names, in stage order
  double wall_s = 0, cpu_s = 0, gpu_s = 0;
};

// One cost line as the evidence table shows it, in bucket order.
struct CostLine {
  ledger::CostItem item;
  Bucket bucket = Bucket::evaluation_and_other;
  Band quantity;  // ledger::quantity_band
  Band cost;      // ledger::item_cost
  bool in_total = true;
};

// The marginal cost beside the full cost: the base model's pretraining (the base_model cost lines)
// taken out, then put back at the share the recipe declares (base.amortize_share with
// base.amortize_source), or all of it when none is declared. Every figure is a sum of the ledger
// cost rows named by id.
struct MarginalCost {
  Band marginal;         // every line in the full total except the base model's pretraining
  Band base_all;         // the base_model lines: all of the base's pretraining
  Band full_with_share;  // marginal + share x base_all (== the full total when share is 1)
  double share = 1.0;    // the share of the base carried in full_with_share
  bool declared = false; // the share comes from the recipe (base.amortize_share), not the default
  std::string source;    // where the share comes from (base.amortize_source, or the default)
  std::vector<int64_t> marginal_rows, base_rows;  // cost_items ids behind marginal and base_all
};

// One step of the waterfall: a total bar (claimed, final run, marginal, full cost) or an added
// part.
enum class StepKind { claimed, final_run, added, marginal, full };
struct CostStep {
  std::string label;
  Band cost;
  StepKind kind = StepKind::added;
};

// A split in the ID vs OOD chart and table: the headline cell of each model (null when none).
struct SplitRow {
  std::string split;
  bool ood = false;
  std::optional<EvalCell> base, tuned;
  std::optional<double> tuned_minus_base;  // tuned mean - base mean
  std::optional<double> tuned_gap_to_id;   // OOD splits: tuned mean - tuned ID mean
};

// One line of the thinking-budget chart: a model on a split, one point per budget it has.
struct BudgetLine {
  std::string split, model;
  size_t split_index = 0;            // the split's place in ReportModel::splits (its colour)
  std::vector<size_t> budget_index;  // into ReportModel::budgets
  std::vector<double> mean, low, high;  // low, high: the Wilson interval of each point
};

struct LossCurve {
  std::string stage;
  std::vector<double> step, loss;
};

struct StageRow {
  ledger::StageInfo stage;
  std::string category;  // ledger::stage_category
  size_t meter_samples = 0;
  // A stage trained by several ranks (`audit run --nproc`): "2 ranks, ddp on gloo: CPU-s 0.28 ·
  // 0.29; rank 0's collectives 0.052 s (all_reduce 16 calls, 1.7 MB)", from its rank_meters event
  // and its comm/<stage> artifact; "" for one process.
  std::string ranks;
};
struct StageTotals {
  double wall_s = 0, cpu_s = 0, gpu_s = 0, gpu_busy_s = 0;
  size_t meter_samples = 0;
  bool any_gpu = false;  // a stage had a GPU allocated (the GPU columns are shown)
};

// The "trace_errors" artifact pooled over the tuned seeds: one row per split, one column per
// kind that occurs (and "none").
struct TraceErrors {
  std::vector<std::string> kinds, splits;
  std::vector<std::vector<int64_t>> counts;  // [split][kind]
};

// The "replay" and "replay_self_check" artifacts (audit replay). A figure missing from the
// artifact is empty here and "—" on the page.
using OptNum = std::optional<double>;
struct ReplayMeasurement {
  std::string part;  // "" when missing
  OptNum timed_seq_len, claimed_seq_len, batch, seconds;
};
struct ReplayScenario {
  std::string name;
  OptNum mean_len, overlap, compute_s, comm_s, wall_s, mfu;
};
struct Replay {
  std::string device_name, dtype, claimed_arch, timed_arch;
  int64_t layers_timed = 0;
  bool reduced_shapes = false;
  OptNum shrink_width, shrink_seq;
  std::optional<Band> wall_hours, gpu_hours, cost_usd, mfu, tokens_per_gpu_s;  // predicted
  OptNum claimed_wall_hours, claimed_gpu_hours;
  std::string claimed_basis, verdict, reason;
  bool has_eager = false;
  OptNum eager_ours_layer_s, eager_layer_s, eager_ratio;
  bool has_measurements = false, has_scenarios = false;
  std::vector<ReplayMeasurement> measurements;
  std::vector<ReplayScenario> scenarios;
  nlohmann::json raw;
};
struct ReplaySelfCheck {
  OptNum replay_layers, predicted_s, measured_s, error;
  nlohmann::json raw;
};

struct ReportModel {
  ledger::RunInfo run;
  ClaimInfo claim;
  RecipeInfo recipe;
  ledger::VerifyReport verify;

  // Costs: the three totals and the buckets, how the final run is known, the lines, the steps.
  CostRollup costs;
  std::string final_run_provenance;  // measured | declared | estimated | partly measured
  CategoryMetering final_run_metering;
  std::vector<CostLine> cost_lines;
  MarginalCost marginal;
  // Claimed, final run, the added parts, the marginal cost, + the base's share, the full cost.
  // Drawn on a linear axis (the bars add up); also on a log axis when waterfall_log_scale.
  std::vector<CostStep> waterfall;
  bool waterfall_log_scale = false;  // the mids differ by more than 200x

  // Evaluations.
  std::vector<EvalCell> cells;  // aggregate_evals order
  std::vector<SplitRow> splits;
  bool any_budget_in_headline = false;  // a headline cell has a finite budget
  std::vector<int64_t> budgets;         // every budget evaluated, ascending, unlimited (-1) last
  std::vector<BudgetLine> budget_lines;  // lines with at least two points (tuned, then base)
  size_t eval_rows = 0;                  // ledger rows behind the cells

  std::vector<LossCurve> loss_curves;  // loss_curve/<stage> artifacts, else train_loss events

  // Verdicts: the stored ones (current_verdicts), then any computed now and not stored.
  std::vector<ledger::Verdict> verdicts;
  size_t verdicts_not_stored = 0;
  Summary summary;

  std::vector<StageRow> stages;
  StageTotals stage_totals;

  std::optional<TraceErrors> trace_errors;
  std::optional<nlohmann::json> selection;  // the "selection_counts" artifact
  std::vector<std::pair<std::string, double>> selection_bars;  // its numbers, largest first
  std::optional<nlohmann::json> decontamination;
  // A [launch] run: per stage that ran a command (launch, eval-launch), its launch_start,
  // launch_stop, gpu and log events, by key; the launch_gpus event under "gpus".
  std::optional<nlohmann::json> launch;
  std::optional<Replay> replay;
  std::optional<ReplaySelfCheck> replay_self_check;
  // Artifacts no section shows (loss curves excepted), by name; nullopt when unreadable.
  std::vector<std::pair<std::string, std::optional<nlohmann::json>>> other_artifacts;
};

// Reads run_id's rows into the model. Reads only: verdicts not stored for the run are computed
// in memory (compute_verdicts) and counted in verdicts_not_stored. Throws ledger::LedgerError
// when the run does not exist.
ReportModel read_report_model(const ledger::Ledger& l, int64_t run_id);

// The page's figures as JSON (`audit report --json`): the run, the verdicts and the verdict
// word's inputs, the totals (claimed, final run, marginal, the base's share and where it comes
// from, full with the share, full with all of the base) as {low, mid, high}, each with the
// cost_items ids it sums, and the waterfall's steps.
nlohmann::json figures_json(const ReportModel& m);

// The selection-counts view for the bar chart: an object of numbers, or an array of objects with
// a name-like and a count-like field; empty when it has neither shape. Stored order.
std::vector<std::pair<std::string, double>> numeric_pairs(const nlohmann::json& j);

}  // namespace audit::reports
