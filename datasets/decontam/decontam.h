// N-gram decontamination: how many items of each test set share an n-gram with the training
// data (pretraining documents, SFT examples with their traces). The report is stored with the
// run. Default: word 8-grams (s1 decontaminated with 8-grams), where a "word" is a run of
// letters/digits and every other non-space character (+ - * = ? . ,) is a word of its own, after
// ASCII lower-casing. A test item shorter than n words counts as one n-gram of its own length
// (whole-item containment), as GPT-3's decontamination did for short items, so a short
// arithmetic question is flagged exactly when its full text occurs inside a training document.
// Why not byte n-grams here: the questions are a template plus numbers, and any byte n-gram
// short enough to fit inside a short question also fits inside "What is 4821 + " - it matches
// by chance whenever a training question shares one operand (docs/datasets.md has figures).
// N-grams are stored as 64-bit FNV-1a hashes (collision odds negligible at these sizes).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/tasks/tasks.h"

namespace audit::datasets {

enum class NgramUnit { word, byte };
const char* to_string(NgramUnit u);
NgramUnit parse_ngram_unit(std::string_view s);  // "word" | "byte"; throws std::invalid_argument

struct DecontamConfig {
  int n = 8;                         // n-gram length in units
  NgramUnit unit = NgramUnit::word;  // what a unit is
  int min_units = 4;                 // test items with fewer units are not checked (too_short)
  std::size_t max_examples = 5;      // overlapping test items quoted per test set
};

struct TextSet {
  std::string name;                // "pretrain", "sft", "id_test", ...
  std::vector<std::string> texts;  // one document or test item each
};

struct DecontamSetReport {
  std::string test_set;
  std::size_t items = 0;
  std::size_t items_with_overlap = 0;   // any n-gram (or the whole short item) in training
  std::size_t items_fully_covered = 0;  // every n-gram in training (near-verbatim copies)
  std::size_t too_short = 0;            // fewer than min_units units: not checked
  double fraction = 0;                  // items_with_overlap / items
  std::map<std::string, std::size_t> by_training_set;  // items overlapping each training set
  std::vector<std::string> examples;    // up to max_examples overlapping test items
};

struct DecontamReport {
  int n = 0;
  std::string unit;
  std::vector<std::string> training_sets;
  std::size_t training_docs = 0;
  std::size_t training_ngrams = 0;  // distinct n-grams (all lengths used) in training
  std::vector<DecontamSetReport> sets;
};
void to_json(nlohmann::json& j, const DecontamSetReport& r);
void to_json(nlohmann::json& j, const DecontamReport& r);

// The units of a text after normalization (lower-case; words: see above; bytes: whitespace runs
// collapsed to one space, trimmed).
std::vector<std::string> ngram_units(std::string_view text, NgramUnit unit);

// The overlap report of each test set against the union of the training sets (at most 32).
// Throws std::invalid_argument for n < 1 or more than 32 training sets.
DecontamReport decontaminate(const std::vector<TextSet>& training, const std::vector<TextSet>& tests,
                             const DecontamConfig& config = {});

// Text of examples as decontamination sees them: the question alone (test items), or the
// question, trace and answer of a training document.
TextSet questions_of(const std::string& name, const std::vector<Example>& examples);
TextSet documents_of(const std::string& name, const std::vector<Example>& examples);

}  // namespace audit::datasets
