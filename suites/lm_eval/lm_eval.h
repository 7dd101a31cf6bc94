// lm-evaluation-harness results files, both ways: read the aggregated results JSON that
// `lm_eval --output_path` writes (one row per task and metric, with its stderr, sample count,
// model and lm-eval version), turn those rows into ledger eval rows (Wilson intervals from
// suites/stats), and write a run's eval rows as an lm-eval-shaped results JSON.
//
// The layout read is lm-eval 0.4.x's (EleutherAI/lm-evaluation-harness, read at commit
// 4e7e0d47f33bc71070c1d38394bafbb52b117163, version 0.4.13.dev0): lm_eval/loggers/
// evaluation_tracker.py (save_results_aggregated: `<output_path>/<model_name_sanitized>/
// results_<ISO date with ':' as '-'>.json`, or `<stem>_<date>.json` beside an output path ending
// in .json), lm_eval/result_schema.py (the keys: "results" {task: {"alias", "<metric>,<filter>",
// "<metric>_stderr,<filter>" (a number or "N/A")}}, "n-samples" {task: {"original",
// "effective"}}, "config" {"model", "model_args" (string or object), ...}, "versions",
// "n-shot", "higher_is_better", "configs", "lm_eval_version", "date", "model_name", ...), and
// lm_eval/evaluator.py (simple_evaluate fills "config"). docs/ledger.md says which keys are
// read and which are written.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ledger/store/ledger.h"  // ledger::EvalResult

namespace audit::lm_eval {

// One metric of one task in an lm-eval results file.
struct LmEvalResult {
  std::string task;            // key of "results", e.g. "gsm8k" (group rows included, as written)
  std::string metric;          // the full key, e.g. "acc,none", "exact_match,strict-match"
  std::string metric_name;     // the part before the comma: "acc", "exact_match"
  std::string filter;          // the part after it: "none", "strict-match" ("" when absent)
  double value = 0;            // the metric's value as written (accuracies are 0..1)
  bool has_stderr = false;     // false when "<metric>_stderr,<filter>" is absent or "N/A"
  double stderr_ = 0;          // its value when has_stderr
  int64_t n = -1;              // "n-samples"[task]["effective"]; -1 when the file has none
  int64_t n_original = -1;     // "n-samples"[task]["original"]; -1 when absent
  std::string model;           // "config"."model" (e.g. "hf"); "" when absent
  std::string model_args;      // "config"."model_args": the string, or the object as JSON text
  std::string model_name;      // top-level "model_name" (e.g. "EleutherAI/pythia-14m"); "" if absent
  std::string lm_eval_version; // top-level "lm_eval_version"; "" when absent
  std::string file;            // the results file read (the newest one for a folder)
};

// The results file lm-eval wrote under an --output_path: `path` itself when it is a file; for a
// folder, the newest `results_*.json` (by the date in its name, which sorts as text) in it or
// in its sub-folders one level down (`<output_path>/<model_name_sanitized>/`). Throws
// audit::InputError naming the path when there is none.
std::string find_lm_eval_results_file(const std::string& path);

// Reads every "<metric>,<filter>" value of every task in "results" of a results file (or of the
// newest one under an --output_path folder, as find_lm_eval_results_file). Rows come in the
// file's task order, then its metric order; stderr keys are folded into their metric's row, "alias"
// and other non-numeric entries are skipped. Throws audit::InputError naming the file and the
// key for: a missing or unreadable file, text that is not JSON, no "results" object, a task
// that is not an object, a metric value that is not a number, a bad "n-samples" entry.
std::vector<LmEvalResult> read_lm_eval_results(const std::string& path);

// The same from JSON already parsed; `file` names it in errors and in each row. An ordered_json
// keeps the file's task order (read_lm_eval_results parses into one); a plain json iterates
// tasks and metrics by name.
std::vector<LmEvalResult> parse_lm_eval_results(const nlohmann::ordered_json& j,
                                                const std::string& file);
std::vector<LmEvalResult> parse_lm_eval_results(const nlohmann::json& j, const std::string& file);

// The rows whose metric key is `metric` (e.g. "acc,none", "exact_match,strict-match"), in order;
// tasks without that metric (groups, other kinds of tasks) are left out.
std::vector<LmEvalResult> select_metric(const std::vector<LmEvalResult>& rows,
                                        const std::string& metric);

// How to file lm-eval rows as ledger eval rows.
struct EvalRowOptions {
  std::string model;           // EvalResult.model; "" = the row's model_name, else its "model"
  std::string split;           // EvalResult.split; "" = the row's filter
  bool ood = false;            // EvalResult.ood
  int64_t seed = 0;            // EvalResult.seed (lm-eval's own seed lives in "config")
  int64_t budget = -1;         // EvalResult.budget (-1: unlimited)
};

// One ledger::EvalResult per row: suite = task, score = value, n = the row's n, correct =
// round(score * n), [ci_low, ci_high] = the Wilson 95% interval of correct of n
// (suites/stats). ids and run_id are left 0 for the caller. Throws audit::InputError naming the
// file and "results.<task>.<metric>" when a row has no sample count (n < 1) or a value outside
// [0, 1] (not an accuracy: pick rows with accuracy metrics first).
std::vector<ledger::EvalResult> to_eval_results(const std::vector<LmEvalResult>& rows,
                                                const EvalRowOptions& opt = {});

// What write_lm_eval_results puts besides the rows.
struct WriteOptions {
  std::string model;           // "config"."model" and "model_name", e.g. "audit:s1-mini/tuned"
  std::string model_args;      // "config"."model_args"
  std::string audit_version;   // "audit_version" (lm-eval's own "lm_eval_version" is not faked)
  std::string git_hash;        // "git_hash": the commit the run was made at
  double date = 0;             // "date": unix seconds (the run's start)
};

// An lm-eval-shaped results JSON of ledger eval rows, one task per row, named
// "<suite>_<split>" (with "_seed<S>" and "_budget<B>" appended when several rows share a suite
// and split): "results" {task: {"alias", "acc,none", "acc_stderr,none" = sqrt(p(1-p)/(n-1))
// as lm-eval's mean stderr}}, "n-samples" {task: {"original": n, "effective": n}}, "configs"
// {task: {"task", "metadata": {the ledger row: eval_id, model, suite, split, ood, seed, budget,
// n, correct, ci_low, ci_high}}}, "versions", "n-shot" (0), "higher_is_better" {"acc": true},
// "config", "git_hash", "date", "model_name", "model_name_sanitized", "audit_version".
// read_lm_eval_results reads it back to the same task, value and n.
// Keys and tasks are in lm-eval's order and the rows' order (an ordered_json).
nlohmann::ordered_json write_lm_eval_results(const std::vector<ledger::EvalResult>& rows,
                                             const WriteOptions& opt);

// lm-eval's sanitize_model_name: runs of the characters "<>:/|\?*[] and '"' become "__".
std::string sanitize_model_name(const std::string& name);

}  // namespace audit::lm_eval
