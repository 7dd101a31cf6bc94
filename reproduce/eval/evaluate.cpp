// Evaluation suite implementation: prompts from the chat template, batched KV-cache decoding
// with budget forcing, completion parsing and exact checking (datasets/), Wilson intervals.
#include "reproduce/eval/evaluate.h"

#include <algorithm>

#include "datasets/packing/packing.h"
#include "suites/grading/grading.h"
#include "suites/stats/wilson.h"

namespace audit::eval {
namespace {

generate::GenerateConfig generate_config(const datasets::ChatFormat& format, const EvalSettings& s) {
  generate::GenerateConfig g;
  g.max_new_tokens = s.max_new_tokens;
  g.temperature = s.temperature;
  g.seed = s.seed;
  for (auto id : format.stop_ids()) g.stop_ids.push_back(id);
  g.pad_id = format.pad_id();
  g.batch_size = s.batch_size;
  g.budget.end_think_id = format.end_think_id();
  g.budget.max_thinking_tokens = s.think_budget;
  g.budget.num_waits = s.waits;
  for (auto id : format.wait_ids()) g.budget.wait_ids.push_back(id);
  for (auto id : format.answer_prefix()) g.budget.answer_prefix_ids.push_back(id);
  return g;
}

// Decodes the prompts in chunks of four batches, each prompt with its own generator (seed + its
// index), calling on(index, generation) in order and progress(done, total) after each chunk.
void generate_all(model::CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                  const generate::GenerateConfig& g,
                  const std::function<void(int64_t, const generate::Generation&)>& on,
                  const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t n = int64_t(prompts.size());
  const int64_t chunk = std::max<int64_t>(g.batch_size * 4, 1);
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t end = std::min(n, begin + chunk);
    std::vector<std::vector<int64_t>> part(prompts.begin() + begin, prompts.begin() + end);
    auto cfg = g;
    cfg.seed = g.seed + uint64_t(begin);
    auto gens = generate::generate(model, part, cfg);
    for (int64_t i = begin; i < end; ++i) on(i, gens[size_t(i - begin)]);
    if (progress) progress(end, n);
  }
}

// Accuracy of correct / n with its Wilson 95% interval.
void score(int64_t correct, int64_t n, double* accuracy, double* low, double* high) {
  *accuracy = n ? double(correct) / double(n) : 0;
  const auto ci = stats::wilson(correct, n);
  *low = ci.low;
  *high = ci.high;
}

}  // namespace

SuiteOutcome evaluate_suite(model::CausalLM& model, const datasets::ChatFormat& format,
                            const suites::Suite& suite, const SuiteSettings& s,
                            const std::function<void(int64_t, int64_t)>& progress) {
  SuiteOutcome out;
  out.items = int64_t(suite.items.size());
  const int64_t samples = std::max<int64_t>(1, s.samples);
  out.n = out.items * samples;
  auto g = generate_config(format, s);
  g.top_p = s.top_p;
  const char* kind = suites::to_string(suite.spec.kind);
  // Prompt p = item * samples + k decodes with generator seed + p: every sample its own draw.
  double thinking = 0;
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& item : suite.items) {
    auto p = format.prompt(item.question);
    for (int64_t k = 0; k < samples; ++k) prompts.emplace_back(p.begin(), p.end());
  }
  generate_all(model, prompts, g, [&](int64_t p, const generate::Generation& gen) {
    const auto& item = suite.items[size_t(p / samples)];
    std::vector<datasets::TokenId> ids(gen.tokens.begin(), gen.tokens.end());
    auto parsed = format.parse(ids);
    const std::string graded =
        parsed.has_answer ? parsed.answer : format.tokenizer().decode(ids, true);
    auto grade = suites::grade(kind, graded, item.reference, item.n_choices);
    out.correct += grade.correct ? 1 : 0;
    thinking += double(gen.thinking_tokens);
    out.generated_tokens += double(gen.tokens.size());
    out.rows.push_back(
        {{"doc_id", item.id}, {"sample", p % samples}, {"question", item.question},
         {"reference", item.reference}, {"completion", format.tokenizer().decode(ids)},
         {"graded_text", parsed.has_answer ? "answer" : "whole completion"},
         {"extracted", grade.extracted}, {"correct", grade.correct},
         {"thinking_tokens", gen.thinking_tokens},
         {"generated_tokens", int64_t(gen.tokens.size())}, {"waits", gen.waits},
         {"thinking_capped", gen.thinking_capped},
         {"stop", gen.reason == generate::StopReason::stop_token ? "stop_token" : "max_new_tokens"}});
  }, progress);
  score(out.correct, out.n, &out.accuracy, &out.ci_low, &out.ci_high);
  out.mean_thinking_tokens = out.n ? thinking / double(out.n) : 0;
  return out;
}

EvalOutcome evaluate(model::CausalLM& model, const datasets::ChatFormat& format,
                     const std::vector<datasets::Example>& examples, const EvalSettings& s,
                     const std::function<void(int64_t, int64_t)>& progress) {
  EvalOutcome out;
  out.n = int64_t(examples.size());
  auto g = generate_config(format, s);

  for (const auto& k : datasets::trace_error_kinds()) out.trace_errors[k] = 0;
  double thinking = 0;
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& e : examples) {
    auto p = format.prompt(e.question);
    prompts.emplace_back(p.begin(), p.end());
  }
  generate_all(model, prompts, g, [&](int64_t i, const generate::Generation& gen) {
    const auto& ex = examples[size_t(i)];
    std::vector<datasets::TokenId> ids(gen.tokens.begin(), gen.tokens.end());
    auto parsed = format.parse(ids);
    bool ok = parsed.has_answer && datasets::check_answer(ex, parsed.answer);
    out.correct_flags.push_back(ok);
    out.correct += ok ? 1 : 0;
    thinking += double(gen.thinking_tokens);
    out.generated_tokens += double(gen.tokens.size());
    ++out.trace_errors[datasets::first_trace_error(ex.question, parsed.thinking, parsed.answer).kind];
    if (s.keep_completions) out.completions.push_back(format.tokenizer().decode(ids));
  }, progress);
  score(out.correct, out.n, &out.accuracy, &out.ci_low, &out.ci_high);
  out.mean_thinking_tokens = out.n ? thinking / double(out.n) : 0;
  return out;
}

}  // namespace audit::eval
