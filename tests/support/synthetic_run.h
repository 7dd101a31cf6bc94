// The synthetic run the report tests read (tests/report_test.cpp, report_browser_test.cpp): a
// tiny finished run written through the Ledger API, whose figures are chosen so that the totals,
// intervals and verdicts can be computed by hand (the expected values are in
// tests/report_test.cpp). Test input, not a model of a real run.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "ledger/store/ledger.h"

namespace audit::testing {

// A recipe whose claim maps three results: one on the ID split (supported), one on ood_long
// (not supported), one with no split (not reproducible here). hostile: HTML and script in every
// free-text field.
std::string synthetic_recipe(bool hostile, double claimed_usd);

// What may differ between synthetic runs of one claim (the dashboard and diff tests write series
// of them). The defaults give exactly the run add_synthetic_run(l, hostile, claimed_usd) writes.
struct SyntheticRunOptions {
  bool hostile = false;
  double claimed_usd = 0.05;
  std::string name = "mini";                  // run name (the recipe's claim.name stays "mini")
  double started_at = 1735689600;             // 2025-01-01 00:00:00 UTC
  std::string git_commit = "0123456789ab";
  std::string branch;                         // "" = no git_branch event (ledger/store/branch.h)
  double cost_scale = 1.0;                    // multiplies every cost line's quantity but the
                                              // claim's own figure
  int64_t tuned_id_delta = 0;                 // added to each seed's correct count of the tuned
                                              // model on id (unlimited budget, n = 200 per seed)
  int64_t tuned_ood_delta = 0;                // the same on each tuned OOD split (unlimited)
  double tokens_per_s = 0;                    // > 0: "train_summary" events for pretrain and sft
                                              // (sft at this rate, pretrain at twice it)
  int gpu_count = 0;                          // > 0: GPUs allocated to every stage (gpu_s)
  std::string regression_toml;                // appended to the recipe, e.g. "[regression]\n..."
  int node_rank = -1;                         // >= 0: one node's run of a multi-node job
  int nnodes = 1;                             // the job's node count (with node_rank)
};

// Writes the whole run and ends it succeeded; returns its id. Five metered stages, nine cost
// lines (one per provenance and bucket, energy and the claim outside the total), eval rows of
// base and tuned models on four splits over three seeds (two budget points on id), two loss
// curves, selection counts, trace errors and decontamination. No verdicts are stored.
// node_rank >= 0 makes it the run of one node of a multi-node job (tests/ledger_merge_test.cpp):
// the run records node_rank and nnodes (node_from "test") and its stages carry the node.
int64_t add_synthetic_run(ledger::Ledger& l, bool hostile, double claimed_usd,
                          int node_rank = -1, int nnodes = 1);
// The same with what differs between runs of a series (SyntheticRunOptions).
int64_t add_synthetic_run(ledger::Ledger& l, const SyntheticRunOptions& o);

// One eval row per seed (seeds 1, 2, ...), each of n questions with `correct` right.
void add_seed_evals(ledger::Ledger& l, int64_t run, const std::string& model,
                    const std::string& split, int64_t budget,
                    std::initializer_list<int64_t> correct, const std::string& suite,
                    int64_t n = 200);

}  // namespace audit::testing
