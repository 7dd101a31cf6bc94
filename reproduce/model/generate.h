// Text generation for reproduce/model/model.h: batched decoding with a KV cache (greedy, or
// seeded sampling with temperature, top-k and top-p; stop tokens) and s1's budget forcing, all in
// token ids (the tokenizer lives in datasets/). A no-cache reference path recomputes the whole
// sequence every step; tests check that both give the same tokens, and that greedy decoding of a
// left-padded batch gives transformers' generate() tokens (tests/torch/generate_parity_test.cpp).
// n samples of one prompt: repeat the prompt n times in one call (each copy draws from its own
// generator, seed + its index).
//
// Budget forcing (s1, "Simple test-time scaling"): generation starts inside the thinking phase
// (the prompt ends with the think-start marker) when budget.end_think_id >= 0.
//  - Cap: once max_thinking_tokens thinking tokens have been emitted, end_think_id is forced
//    (whatever the model wanted), followed by answer_prefix_ids.
//  - Extend: while fewer than num_waits extensions were made, a thinking-phase attempt to stop
//    (the model picks end_think_id or a stop id) is suppressed and wait_ids ("Wait") appended.
//  - After end_think_id (natural or forced), answer_prefix_ids are forced, then the model answers
//    until a stop id or max_new_tokens.
// Forced tokens are fed one per step like sampled ones, so every row of a batch stays in step.
#pragma once

#include <cstdint>
#include <vector>

#include "reproduce/model/model.h"  // CausalLM

namespace audit::generate {

struct BudgetForcing {
  int64_t end_think_id = -1;               // < 0: no thinking phase, no forcing
  int64_t max_thinking_tokens = -1;        // cap on thinking tokens; < 0: none
  int64_t num_waits = 0;                   // how many stop attempts become wait_ids
  std::vector<int64_t> wait_ids;           // e.g. the ids of "Wait"; required if num_waits > 0
  std::vector<int64_t> answer_prefix_ids;  // forced right after end_think (may be empty)
};

struct GenerateConfig {
  int64_t max_new_tokens = 256;   // hard limit on generated (incl. forced) tokens per prompt
  double temperature = 0.0;       // 0: greedy argmax; > 0: sample from softmax(logits / T)
  int64_t top_k = 0;              // > 0: sample among the k most likely tokens only
  // Nucleus sampling, Hugging Face's TopPLogitsWarper: after temperature and top_k, keep the
  // smallest set of most likely tokens whose cumulative probability reaches top_p (at least
  // one). In (0, 1]; 1 keeps every token (the step is skipped).
  double top_p = 1.0;
  uint64_t seed = 0;              // prompt i samples from its own generator seeded seed + i
  std::vector<int64_t> stop_ids;  // emitting one ends the generation (it is kept in tokens)
  int64_t pad_id = 0;             // left padding inside a batch (masked, never attended to)
  int64_t batch_size = 16;        // prompts decoded together by generate()
  BudgetForcing budget;
};

enum class StopReason { stop_token, max_new_tokens };

struct Generation {
  std::vector<int64_t> tokens;   // generated ids: prompt excluded, forced and stop ids included
  int64_t thinking_tokens = 0;   // emitted in the thinking phase (waits included, end excluded)
  int64_t waits = 0;             // times wait_ids were appended
  bool thinking_capped = false;  // end_think_id was forced by the cap
  int64_t end_think_at = -1;     // index in tokens of end_think_id; -1 if never emitted
  StopReason reason = StopReason::max_new_tokens;
};

// Batched decoding with a KV cache (left-padded batches of cfg.batch_size). Prompts must be
// non-empty; ids must lie in [0, vocab); top_p in (0, 1]; temperature and top_k not negative.
// Throws std::invalid_argument otherwise.
std::vector<Generation> generate(model::CausalLM& model,
                                 const std::vector<std::vector<int64_t>>& prompts,
                                 const GenerateConfig& cfg);

// The reference: one prompt at a time, a full forward over the whole sequence for every token.
// Same decisions and the same per-prompt generators as generate(); slow, for tests.
std::vector<Generation> generate_reference(model::CausalLM& model,
                                           const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerateConfig& cfg);

}  // namespace audit::generate
