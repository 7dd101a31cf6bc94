// s1's three data filters, in miniature (s1: 59K -> 1K by quality, difficulty, diversity):
//   quality     drop malformed examples: empty fields, template markers inside the text, and for
//               arithmetic questions a trace that fails check_trace (grammar, column arithmetic,
//               optionally identity with the solver) or an answer that is not the solver's
//   difficulty  drop questions the base model already answers correctly (the caller runs the
//               base model: a callback, or one flag per pool item)
//   diversity   draw N: pick an op:digits bucket uniformly at random, then a question in it with
//               weight 2^-rank, rank 0 = longest trace (s1's preference for longer traces);
//               repeat without replacement until N are drawn or the buckets are empty
// Every step is counted per bucket for the ledger.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/tasks/tasks.h"

namespace audit::datasets {

struct SelectionConfig {
  std::size_t n = 1000;               // samples to select (s1: 1,000)
  bool quality = true;                // run the quality filter
  bool difficulty = true;             // run the difficulty filter
  bool diversity = true;              // false: uniform random N of the survivors instead
  bool require_solver_match = true;   // quality: trace must equal the solver's, not only be
                                      // well-formed and arithmetically right
  std::uint64_t seed = 1;             // diversity draws
};

// "" when e passes the quality filter, else the reason: empty_question, empty_trace,
// empty_answer, template_marker, unparseable_question, malformed_trace, arithmetic_error,
// differs_from_solver, answer_mismatch.
std::string quality_reject_reason(const Example& e, bool require_solver_match = true);

struct BucketCounts {
  std::size_t pool = 0, after_quality = 0, after_difficulty = 0, selected = 0;
};
struct SelectionCounts {
  std::size_t pool = 0;
  std::size_t after_quality = 0;
  std::size_t after_difficulty = 0;
  std::size_t selected = 0;
  std::size_t base_correct = 0;                        // dropped by difficulty
  std::map<std::string, std::size_t> quality_rejects;  // reason -> count
  std::map<std::string, BucketCounts> per_bucket;      // "add:4" -> counts
};
void to_json(nlohmann::json& j, const BucketCounts& c);
void to_json(nlohmann::json& j, const SelectionCounts& c);

struct Selection {
  std::vector<std::size_t> indices;  // into the pool, in draw order
  std::vector<Example> examples;     // pool[indices[i]]
  SelectionCounts counts;
};

// base_correct(e) is called once per quality survivor (in pool order) when difficulty is on.
Selection select_s1(const std::vector<Example>& pool,
                    const std::function<bool(const Example&)>& base_correct,
                    const SelectionConfig& config);
// base_correct[i] is pool[i]'s flag; its size must equal the pool's (std::invalid_argument).
// Flags of items the quality filter drops are never read: a caller that batches base-model
// inference can run it on quality_survivors() only and leave the other flags false.
Selection select_s1(const std::vector<Example>& pool, const std::vector<bool>& base_correct,
                    const SelectionConfig& config);

// Indices of the pool items that pass the quality filter, in pool order.
std::vector<std::size_t> quality_survivors(const std::vector<Example>& pool,
                                           bool require_solver_match = true);

// The diversity draw alone: up to n of the candidate indices (see above).
std::vector<std::size_t> diversity_sample(const std::vector<Example>& pool,
                                          const std::vector<std::size_t>& candidates,
                                          std::size_t n, std::uint64_t seed);

}  // namespace audit::datasets
