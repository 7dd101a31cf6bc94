// Seeded data splits of the s1 miniature, all drawn from one seed:
//   pool        SFT candidates (train ops, train digits, train format); answers, no traces yet
//               (the distill stage's teacher writes them)
//   id_test     same distribution as the pool
//   ood_long    train ops with longer operands than any training data (pool or pretraining)
//   ood_heldout held-out ops (default the composition a + b - c), never in pool or pretraining
//   ood_format  train ops and digits, asked in a surface format the SFT data never uses
//   pretrain    "broad" base-model data: direct answers, no traces, train ops and digits, mostly
//               in the train format plus a share in the OOD format (see docs/datasets.md)
// Every split is disjoint from every other by problem (op and operands, whatever the format),
// hence also by question string. Drawing order: the test sets (so they do not change when the
// pool or pretraining sizes do), then pretraining, then the pool.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/tasks/tasks.h"

namespace audit::datasets {

struct SplitConfig {
  std::uint64_t seed = 1;                                    // everything below derives from it
  std::vector<std::string> train_ops = {"add", "sub", "mul1"};  // pool, id_test, pretrain
  std::vector<std::string> heldout_ops = {"addsub"};         // only in ood_heldout; {}: no set
  int min_digits = 1;                                        // train digit range (inclusive)
  int max_digits = 4;
  int long_min_digits = 0;                                   // ood_long range; 0: max_digits + 1
  int long_max_digits = 0;                                   // 0: long_min_digits + 1
  std::string train_format = "standard";                     // pool, tests except ood_format
  std::string ood_format = "words";                          // ood_format test set; "": no set
  std::size_t pool_size = 4000;
  std::size_t id_test_size = 200;
  std::size_t ood_test_size = 200;                           // each OOD set
  std::size_t pretrain_size = 20000;
  double pretrain_ood_format_fraction = 0.2;                 // pretraining share in ood_format
  // Share of the pretraining examples that are number-handling questions with direct answers
  // instead of arithmetic problems: a quarter "Repeat: 4821 + 379" -> "4821 + 379", a quarter
  // "Reverse the digits of 4821." -> "1284", half tables of four one-digit facts in the
  // trace's notation, "Multiplication facts" -> "7*6+3=45\n4*5+0=20\n...". A
  // real base model learned to copy, to read numbers and its tables from its web text; without
  // them a base this small never sees a copy (see docs/datasets.md).
  double pretrain_skills_fraction = 0.0;

  // Throws std::invalid_argument naming the field for an inconsistent configuration.
  void validate() const;
  int long_min() const { return long_min_digits > 0 ? long_min_digits : max_digits + 1; }
  int long_max() const { return long_max_digits > 0 ? long_max_digits : long_min() + 1; }
};
void to_json(nlohmann::json& j, const SplitConfig& c);

struct Splits {
  SplitConfig config;
  std::vector<Example> pool, id_test, ood_long, ood_heldout, ood_format, pretrain;
  std::vector<std::string> warnings;  // e.g. a split smaller than asked (digit space exhausted)

  // ("id_test", &id_test), ("ood_long", ...), ("ood_heldout", ...), ("ood_format", ...); the
  // last two only when configured (heldout_ops non-empty, ood_format non-empty).
  std::vector<std::pair<std::string, const std::vector<Example>*>> test_sets() const;
  // The test sets, then ("pool", ...), ("pretrain", ...).
  std::vector<std::pair<std::string, const std::vector<Example>*>> all() const;
};

// Draws every split. Throws std::invalid_argument for a bad config.
Splits make_splits(const SplitConfig& config);

// Throws std::logic_error naming the question and both splits if any two named sets share a
// question string, or a problem (parse_question key) in any format.
void check_disjoint(const std::vector<std::pair<std::string, const std::vector<Example>*>>& sets);

// Per split: count, requested size, counts per op:digits bucket and per format, and a
// fingerprint (FNV-1a 64 over the JSON of its examples, hex) so two runs can be compared.
nlohmann::json summary(const Splits& s);
std::string fingerprint(const std::vector<Example>& examples);
// "add:4": the op and digit bucket of an example (used by selection and summaries).
std::string bucket_of(const Example& e);

}  // namespace audit::datasets
