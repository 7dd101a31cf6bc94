// Evaluation suite implementation: prompts from the chat template, batched KV-cache decoding
// with budget forcing, completion parsing and exact checking (datasets/), Wilson intervals.
#include "reproduce/eval/evaluate.h"

#include <algorithm>

#include "datasets/packing/packing.h"
#include "suites/stats/wilson.h"

namespace audit::eval {

EvalOutcome evaluate(model::CausalLM& model, const datasets::ChatFormat& format,
                     const std::vector<datasets::Example>& examples, const EvalSettings& s,
                     const std::function<void(int64_t, int64_t)>& progress) {
  EvalOutcome out;
  out.n = int64_t(examples.size());
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

  for (const auto& k : datasets::trace_error_kinds()) out.trace_errors[k] = 0;
  const int64_t chunk = std::max<int64_t>(s.batch_size * 4, 1);
  double thinking = 0;
  for (int64_t begin = 0; begin < out.n; begin += chunk) {
    int64_t end = std::min(out.n, begin + chunk);
    std::vector<std::vector<int64_t>> prompts;
    for (int64_t i = begin; i < end; ++i) {
      auto p = format.prompt(examples[size_t(i)].question);
      prompts.emplace_back(p.begin(), p.end());
    }
    auto gens = generate::generate(model, prompts, g);
    for (int64_t i = begin; i < end; ++i) {
      const auto& gen = gens[size_t(i - begin)];
      std::vector<datasets::TokenId> ids(gen.tokens.begin(), gen.tokens.end());
      auto parsed = format.parse(ids);
      bool ok = parsed.has_answer && datasets::check_answer(examples[size_t(i)], parsed.answer);
      out.correct_flags.push_back(ok);
      out.correct += ok ? 1 : 0;
      thinking += double(gen.thinking_tokens);
      out.generated_tokens += double(gen.tokens.size());
      ++out.trace_errors[datasets::first_trace_error(examples[size_t(i)].question, parsed.thinking,
                                                     parsed.answer)
                             .kind];
      if (s.keep_completions) out.completions.push_back(format.tokenizer().decode(ids));
    }
    if (progress) progress(end, out.n);
  }
  out.accuracy = out.n ? double(out.correct) / double(out.n) : 0;
  auto ci = stats::wilson(out.correct, out.n);
  out.ci_low = ci.low;
  out.ci_high = ci.high;
  out.mean_thinking_tokens = out.n ? thinking / double(out.n) : 0;
  return out;
}

}  // namespace audit::eval
