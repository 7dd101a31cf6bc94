// Evaluation suite of the s1 miniature: greedy (or seeded sampled) decoding with a KV cache over
// a test set, exact answer checking, accuracy with a Wilson 95% interval, and accuracy against a
// thinking budget with s1's budget forcing (cap the thinking tokens, or suppress the end of
// thinking and append "Wait").
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/tasks/tasks.h"
#include "suites/benchmarks/benchmarks.h"
#include "datasets/chat_format/chat_format.h"
#include "reproduce/model/generate.h"
#include "reproduce/model/model.h"

namespace audit::eval {

struct EvalSettings {
  int64_t max_new_tokens = 512;   // thinking + answer
  int64_t batch_size = 64;        // prompts decoded together
  double temperature = 0.0;       // 0 = greedy
  uint64_t seed = 0;              // sampling seed (unused when greedy)
  int64_t think_budget = -1;      // cap on thinking tokens; -1 = none
  int64_t waits = 0;              // budget forcing: suppress </think> this many times, append "Wait"
  bool keep_completions = false;  // fill EvalOutcome::completions with every decoded completion
};

struct EvalOutcome {
  int64_t n = 0, correct = 0;
  double accuracy = 0, ci_low = 0, ci_high = 0;  // Wilson 95%
  double mean_thinking_tokens = 0;
  double generated_tokens = 0;                    // all tokens generated (for inference FLOPs)
  std::vector<bool> correct_flags;                // per example, in order
  std::vector<std::string> completions;           // every decoded completion, in order, when
                                                  // EvalSettings::keep_completions
  // Per example, where its trace first departs from the solver's (datasets::first_trace_error),
  // counted by kind over every kind of datasets::trace_error_kinds() (zeros included).
  std::map<std::string, int64_t> trace_errors;
};

// Decodes every example's prompt in the chat format (the miniature's bytes or a real tokenizer's
// chat template) and checks its answer exactly. progress(done, total) is called after each batch.
EvalOutcome evaluate(model::CausalLM& model, const datasets::ChatFormat& format,
                     const std::vector<datasets::Example>& examples, const EvalSettings& s,
                     const std::function<void(int64_t, int64_t)>& progress = {});

// A benchmark file ([[eval.suites]], suites/benchmarks): every item prompted through the chat
// format, `samples` completions each (prompt copies decode with their own generators, so
// sampled completions differ), graded by the suite's kind (suites/grading): the answer after
// the thinking when the model reached it, else the whole completion (as lm-eval grades a
// response). The score is the mean correctness over items x samples (pass@1 estimated from
// `samples` draws); the Wilson interval counts items x samples.
struct SuiteSettings : EvalSettings {
  double top_p = 1.0;   // nucleus sampling (temperature > 0)
  int64_t samples = 1;  // completions per item
};

struct SuiteOutcome {
  int64_t items = 0, n = 0, correct = 0;          // n = items x samples
  double accuracy = 0, ci_low = 0, ci_high = 0;   // Wilson 95% over n
  double mean_thinking_tokens = 0;
  double generated_tokens = 0;
  // One row per completion, in item then sample order, as lm-eval's --log_samples writes them:
  // doc_id, sample, question, reference, completion, graded_text, extracted, correct,
  // thinking_tokens, generated_tokens, waits, thinking_capped, stop.
  nlohmann::json rows = nlohmann::json::array();
};

SuiteOutcome evaluate_suite(model::CausalLM& model, const datasets::ChatFormat& format,
                            const suites::Suite& suite, const SuiteSettings& s,
                            const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace audit::eval
