// Benchmark suite files: the loader behind `[[eval.suites]]`. A suite is a JSONL file (read
// with datasets/jsonl's strict line reader: BOM, CRLF, blank lines, UTF-8, line size and
// duplicate keys checked there), one item per line, of one kind:
//   math    question + reference answer (a string, or a JSON number written back as its
//           shortest text); scored by the final \boxed{} answer or number (reproduce/eval)
//   exact   question + reference answer, scored by string match after trimming
//   choice  question + choices, the correct one given either as
//             "choices": [2..26 strings] with "answer": a letter "A".."Z", a 0-based integer
//             index or the text of one choice, or
//             "correct_answer": string with "incorrect_answers": [strings] (GPQA's form,
//             the same item as choices = [correct, incorrect...] with answer 0);
//           the choices are shuffled with a fixed per-item permutation (below) and the item
//           asks the question with lettered choices; the reference is the correct letter.
// Key names are the spec's (question_field, answer_field, choices_field); "problem" (MATH500's
// key) is read when question_field is the default and "question" is absent.
//
// The shuffle: for the item on file line L (1-based), the permutation is Fisher-Yates driven
// by datasets::Rng::stream(shuffle_seed, "choice:" + L): a std::mt19937_64 seeded with
// splitmix64(splitmix64(shuffle_seed) ^ fnv1a64("choice:L")), drawing with rejection sampling
// (datasets/tasks/random.h). It is the same on every platform and for every run, and differs
// between items. Choice k (0-based) of the shuffled list is original choice perm[k].
//
// Bad input throws audit::InputError(file, line, column, key, message): a missing question or
// answer (column 0, the key), an empty question, a wrong type, an unknown choice letter, an
// index out of range, an answer that matches no choice, fewer than 2 or more than 26 choices,
// duplicate choices, both choice forms on one line, an empty suite file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.h"  // InputError, what load_suite throws

namespace audit::suites {

enum class SuiteKind { math, choice, exact };
// "math" | "choice" | "exact"; anything else throws std::invalid_argument naming the three.
SuiteKind parse_suite_kind(std::string_view s);
const char* to_string(SuiteKind k);

struct SuiteSpec {                 // one [[eval.suites]] entry of a recipe
  std::string name;                // e.g. "MATH500"; names the eval rows (ledger suite column)
  std::string path;                // JSONL file (already resolved by the caller)
  SuiteKind kind = SuiteKind::math;
  bool ood = false;
  std::string question_field = "question";  // "problem" is also accepted when this is the default and "question" is absent
  std::string answer_field = "answer";
  std::string choices_field = "choices";     // choice kind
  uint64_t shuffle_seed = 0;                  // choice order (fixed per item: seed and line)
  int64_t limit = 0;                          // > 0: the first `limit` items only
};

struct SuiteItem {
  std::string question;     // what the model is asked (choice: the question with lettered choices, GPQA/lm-eval style)
  std::string reference;    // math/exact: the reference answer text; choice: the correct letter after shuffling ("A".."Z")
  int n_choices = 0;        // choice kind
  std::string id;           // "<file>:<line>"
};

struct Suite {
  SuiteSpec spec;
  std::vector<SuiteItem> items;
};

// Reads spec.path and loads it. Every line is validated, also past `limit`; the items are in
// file order. Throws audit::InputError (an unreadable file: line 0).
Suite load_suite(const SuiteSpec& spec);
// The same from text already in memory; spec.path names it in errors and item ids.
Suite parse_suite(std::string_view text, const SuiteSpec& spec);

// The asked text of a choice item: the question, a blank line, then one line per choice,
// "A) first", "B) second", ... (simple-evals' GPQA layout, without its instruction line; the
// prompt template adds the instruction).
std::string format_choice_question(const std::string& question,
                                   const std::vector<std::string>& choices);
// The permutation of an item's n choices (see the header comment): shuffled[k] = choices[perm[k]].
std::vector<int> choice_permutation(int n, uint64_t shuffle_seed, long line);

}  // namespace audit::suites
