// Claim verdicts, computed from a run's ledger rows alone: the cost claim (claimed vs the final run
// as measured vs the full cost), each claimed benchmark result (claimed score vs our measured
// score with its Wilson interval on the split the recipe maps it to), and generalization (ID vs
// OOD gap of the tuned model; tuned vs base). Also the roll-ups both the verdicts and the report
// use: cost buckets with price bands, and eval rows pooled over seeds.
//
// Storage is idempotent: store_verdicts() appends a verdict only when it differs from the latest
// stored one with the same (kind, claim); readers take the latest per (kind, claim).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ledger/costs/cost_model.h"  // item_cost, in_full_total, cost_totals (the cost rules)
#include "ledger/store/ledger.h"      // Ledger, CostItem, EvalResult, Verdict
#include "common/format.h"
#include "reproduce/recipe/recipe.h"
#include "suites/stats/wilson.h"   // Recipe, parse_recipe_text (the claim's headline and results)

namespace audit::reports {

// Verdict words (ledger::Verdict::verdict).
inline constexpr const char* kSupported = "supported";
inline constexpr const char* kNotSupported = "not supported";
inline constexpr const char* kNotReproducible = "not reproducible here";
// "ID vs OOD" is only judged when the tuned model's ID interval reaches this accuracy; below it
// the verdict is "not reproducible here" (a model near 0% everywhere shows no gap).
inline constexpr double kMinIdAccuracyForGap = 0.10;

// ---- Formatting shared by verdict texts and the report (deterministic) ----
// money, percent, points, share: common/format.h
using text::money;
using text::percent;
using text::points;
using text::share;
using ledger::Band;                     // [low, mid, high] (ledger/costs/prices.h)
std::string money_band(const Band& b);  // "$1.20–$3.40 (mid $2.10)"; one figure when low == high

// ---- Costs (line costs and the full-total rule come from ledger/costs/cost_model.h) ----

// Waterfall buckets of the cost categories. Lines outside the full total (the claim's own
// figures, energy already inside rental prices, CO2: ledger::in_full_total) are not_in_total.
enum class Bucket {
  claimed,
  final_run,
  data,
  failed_and_search,
  evaluation_and_other,
  base_model,
  not_in_total
};
Bucket bucket_of(const ledger::CostItem& c);
const char* bucket_label(Bucket b);

struct CostRollup {
  bool has_claim = false;    // a claimed figure exists ('claimed' cost lines or the recipe)
  Band claimed;              // the claimed figure (low == mid == high for a dollar headline)
  std::string claimed_from;  // what the claimed figure is
  Band final_run, data, failed_and_search, evaluation_and_other, base_model;
  Band full;          // sum of every line in the full total
  Band not_in_total;  // claim figures, energy, CO2 (in their own units' dollars)
  int lines = 0;      // cost lines read
  bool has_final_run = false;
};
// Totals as ledger::cost_totals computes them; the claimed figure falls back to the recipe's
// claim.claimed_cost_usd when the ledger holds no claimed line.
CostRollup roll_up_costs(const std::vector<ledger::CostItem>& items, const recipe::Recipe* r);

// ---- Evaluations ----
using stats::Interval;  // suites/stats/wilson.h
using stats::wilson;

// One (model, suite, split, budget) pooled over seeds.
struct EvalCell {
  std::string model, suite, split;
  bool ood = false;
  int64_t budget = -1;
  int seeds = 0;
  int64_t n = 0, correct = 0;    // summed over seeds
  double mean = 0;               // mean of the per-seed scores
  double min = 0, max = 0;       // spread of the per-seed scores
  std::vector<double> per_seed;  // in seed order
  Interval ci;                   // Wilson on the pooled counts
};
// Cells ordered by model (base, tuned, others), suite, split (id first, then as stored), budget
// (ascending, unlimited last).
std::vector<EvalCell> aggregate_evals(const std::vector<ledger::EvalResult>& rows);
// The cell that stands for a model on a split: unlimited budget when present, else the largest.
const EvalCell* headline_cell(const std::vector<EvalCell>& cells, const std::string& model,
                              const std::string& split);
// Split names in display order (id first), and whether each is OOD.
std::vector<std::pair<std::string, bool>> splits_of(const std::vector<EvalCell>& cells);
// The in-distribution split among splits_of(): the miniature's "id", else the first benchmark
// suite not marked ood; "id" when there is none.
std::string id_split(const std::vector<std::pair<std::string, bool>>& splits);

// ---- The claim, re-read from the ledger ----
struct StoredClaim {
  std::optional<recipe::Recipe> recipe;  // parsed runs.recipe_text
  std::string error;                     // why it could not be parsed ("" when parsed)
};
StoredClaim read_claim(const ledger::Ledger& l, int64_t run_id);

// ---- Verdicts ----
// Computes the verdicts of a run from its ledger rows (nothing is written).
std::vector<ledger::Verdict> compute_verdicts(const ledger::Ledger& l, int64_t run_id);
// Computes and appends those that differ from the latest stored with the same (kind, claim).
// Returns how many were appended (0 on a recomputation over unchanged rows).
int store_verdicts(ledger::Ledger& l, int64_t run_id);
// The latest stored verdict of each (kind, claim), in the order each claim was first stored.
std::vector<ledger::Verdict> current_verdicts(const ledger::Ledger& l, int64_t run_id);
bool any_not_supported(const std::vector<ledger::Verdict>& v);

}  // namespace audit::reports
