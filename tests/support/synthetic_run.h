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

// Writes the whole run and ends it succeeded; returns its id. Five metered stages, nine cost
// lines (one per provenance and bucket, energy and the claim outside the total), eval rows of
// base and tuned models on four splits over three seeds (two budget points on id), two loss
// curves, selection counts, trace errors and decontamination. No verdicts are stored.
// node_rank >= 0 makes it the run of one node of a multi-node job (tests/ledger_merge_test.cpp):
// the run records node_rank and nnodes (node_from "test") and its stages carry the node.
int64_t add_synthetic_run(ledger::Ledger& l, bool hostile, double claimed_usd,
                          int node_rank = -1, int nnodes = 1);

// One eval row per seed (seeds 1, 2, ...), each of n questions with `correct` right.
void add_seed_evals(ledger::Ledger& l, int64_t run, const std::string& model,
                    const std::string& split, int64_t budget,
                    std::initializer_list<int64_t> correct, const std::string& suite,
                    int64_t n = 200);

}  // namespace audit::testing
