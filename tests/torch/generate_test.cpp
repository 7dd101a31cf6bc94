// Generation tests: the KV-cache path against the no-cache reference (greedy and sampled, batched
// with left padding, with and without a sliding window), seeded sampling, nucleus (top-p)
// sampling on a programmed distribution, and budget forcing (cap, "Wait" extensions) on a model
// whose next token is programmed exactly.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "reproduce/model/generate.h"
#include "reproduce/model/model.h"

namespace {

// Tiny tensors: one intra-op thread is faster and immune to a busy machine (these are
// correctness tests; bit-exactness never depends on it, both runs of a comparison share it).
const bool kOneThread = (torch::set_num_threads(1), true);

using audit::generate::GenerateConfig;
using audit::generate::Generation;
using audit::generate::StopReason;
using audit::model::CausalLM;
using audit::model::ModelConfig;
using Ids = std::vector<int64_t>;

// A random model with peaked logits (init std 0.5), so greedy choices are not near-ties that
// rounding differences between the two paths could flip. window > 0: a mistral model with that
// sliding window (no q/k/v bias).
CausalLM random_model(uint64_t seed, int64_t window = 0) {
  ModelConfig c;
  if (window > 0) {
    c.arch = "mistral";
    c.qkv_bias = false;
    c.sliding_window = window;
  }
  c.vocab = 32;
  c.hidden = 32;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 8;
  c.ffn = 48;
  CausalLM m(c);
  audit::model::init_weights(m, seed, 0.5);
  m->eval();
  return m;
}

const std::vector<Ids> kPrompts = {{1, 5, 9, 3}, {2}, {7, 7, 8, 30, 12, 4, 4}, {11, 6}, {3, 1, 4, 1, 5}};

void expect_cached_logits_equal_full_forward(int64_t window) {
  auto m = random_model(1, window);
  torch::NoGradGuard no_grad;
  auto seq = torch::tensor(Ids{1, 5, 9, 3, 17, 22, 8, 0, 31}, torch::kLong).unsqueeze(0);
  auto full = m->forward(seq);  // [1, 9, V]
  auto cache = m->make_cache(1, 16);
  auto pos = torch::arange(9, torch::kLong).unsqueeze(0);
  auto valid = torch::ones({1, 9}, torch::kBool);
  // Prefill 4 tokens, then 2 at once (offset causal mask), then one at a time.
  auto l4 = m->forward_cached(seq.narrow(1, 0, 4), pos.narrow(1, 0, 4), valid.narrow(1, 0, 4), cache);
  auto l6 = m->forward_cached(seq.narrow(1, 4, 2), pos.narrow(1, 4, 2), valid.narrow(1, 4, 2), cache);
  std::vector<torch::Tensor> steps = {l4, l6};
  for (int64_t t = 6; t < 9; ++t)
    steps.push_back(m->forward_cached(seq.narrow(1, t, 1), pos.narrow(1, t, 1), valid.narrow(1, t, 1), cache));
  const std::vector<int64_t> at = {3, 5, 6, 7, 8};
  for (size_t i = 0; i < at.size(); ++i) {
    auto ref = full[0][at[i]];
    const double diff = (steps[i][0] - ref).abs().max().item<double>();
    EXPECT_LE(diff, 1e-5 * ref.abs().max().item<double>()) << "position " << at[i];
  }
}

TEST(Generate, CachedLogitsEqualFullForward) { expect_cached_logits_equal_full_forward(0); }

// Window 3 over 9 tokens: the prefill, the 2-token step and the single steps all cut keys.
TEST(Generate, CachedLogitsEqualFullForwardWithSlidingWindow) {
  expect_cached_logits_equal_full_forward(3);
}

void expect_same(const std::vector<Generation>& a, const std::vector<Generation>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].tokens, b[i].tokens) << "prompt " << i;
    EXPECT_EQ(a[i].reason, b[i].reason) << "prompt " << i;
  }
}

TEST(Generate, CachedGreedyEqualsUncachedReference) {
  auto m = random_model(2);
  GenerateConfig cfg;
  cfg.max_new_tokens = 24;
  cfg.stop_ids = {0};
  auto ref = audit::generate::generate_reference(m, kPrompts, cfg);
  for (int64_t batch : {1, 2, 5}) {  // with and without left padding
    SCOPED_TRACE("batch " + std::to_string(batch));
    cfg.batch_size = batch;
    expect_same(audit::generate::generate(m, kPrompts, cfg), ref);
  }
  // The outputs are not degenerate: prompts lead to different continuations.
  EXPECT_NE(ref[0].tokens, ref[2].tokens);
}

// The window (4) is shorter than prompt + continuation: the cache path must drop the same keys as
// the full forward, also in left-padded batches. And the window matters: the same weights
// without it continue differently.
TEST(Generate, CachedGreedyEqualsUncachedReferenceWithSlidingWindow) {
  auto m = random_model(2, 4);
  GenerateConfig cfg;
  cfg.max_new_tokens = 24;
  auto ref = audit::generate::generate_reference(m, kPrompts, cfg);
  for (int64_t batch : {1, 2, 5}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    cfg.batch_size = batch;
    expect_same(audit::generate::generate(m, kPrompts, cfg), ref);
  }
  ModelConfig full = m->cfg;
  full.sliding_window = 0;
  CausalLM unwindowed(full);
  audit::model::load_state(unwindowed, audit::model::state(m), "test");
  auto other = audit::generate::generate_reference(unwindowed, kPrompts, cfg);
  bool differs = false;
  for (size_t i = 0; i < ref.size(); ++i) differs = differs || ref[i].tokens != other[i].tokens;
  EXPECT_TRUE(differs) << "the sliding window changed no generation";
}

TEST(Generate, SamplingIsSeededPerPrompt) {
  auto m = random_model(3);
  GenerateConfig cfg;
  cfg.max_new_tokens = 20;
  cfg.temperature = 1.0;
  cfg.seed = 5;
  cfg.batch_size = 3;
  auto a = audit::generate::generate(m, kPrompts, cfg);
  auto b = audit::generate::generate(m, kPrompts, cfg);
  expect_same(a, b);
  // Each prompt has its own generator, so the batch split and the cache do not matter.
  expect_same(a, audit::generate::generate_reference(m, kPrompts, cfg));
  cfg.seed = 6;
  auto c = audit::generate::generate(m, kPrompts, cfg);
  int differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ += a[i].tokens != c[i].tokens;
  EXPECT_GE(differ, 4);
  cfg.top_k = 1;  // top-1 sampling is greedy
  cfg.temperature = 0.7;
  GenerateConfig greedy;
  greedy.max_new_tokens = 20;
  expect_same(audit::generate::generate(m, kPrompts, cfg), audit::generate::generate(m, kPrompts, greedy));
}

// A bigram model with exact, programmed transitions: attention and MLP outputs are zeroed, so
// the last hidden state is the current token's one-hot embedding, and lm_head maps token cur to
// logit 40 for next(cur), 0 for every other token.
CausalLM bigram_model(const std::map<int64_t, int64_t>& next) {
  ModelConfig c;
  c.vocab = 16;
  c.hidden = 16;
  c.layers = 1;
  c.heads = 2;
  c.kv_heads = 1;
  c.head_dim = 8;
  c.ffn = 16;
  CausalLM m(c);
  torch::NoGradGuard no_grad;
  for (auto& p : m->parameters()) p.zero_();
  m->model->embed_tokens->weight.copy_(torch::eye(16));
  m->model->norm->weight.fill_(1);
  for (const auto& layer : *m->model->layers) {
    auto l = layer->as<audit::model::DecoderLayer>();
    l->input_layernorm->weight.fill_(1);
    l->post_attention_layernorm->weight.fill_(1);
  }
  for (const auto& [cur, nxt] : next) m->lm_head->weight[nxt][cur] = 10.0;  // x 4 after the norm
  return m;
}

// Token ids of the programmed vocabulary.
constexpr int64_t kEos = 2, kThink = 3, kEndThink = 9, kAnswer = 10, kWait1 = 12, kWait2 = 13;

TEST(BudgetForcing, CapForcesEndOfThinkingAtTheCap) {
  // Thinking cycles 4 -> 5 -> 6 -> 4 ... forever; after end_think the answer is 10 -> 11 -> eos.
  auto m = bigram_model({{kThink, 4}, {4, 5}, {5, 6}, {6, 4}, {kEndThink, 7}, {kAnswer, 11}, {11, kEos}});
  GenerateConfig cfg;
  cfg.max_new_tokens = 40;
  cfg.stop_ids = {kEos};
  cfg.budget.end_think_id = kEndThink;
  cfg.budget.max_thinking_tokens = 7;
  cfg.budget.answer_prefix_ids = {kAnswer};
  for (bool cached : {true, false}) {
    SCOPED_TRACE(cached ? "cached" : "reference");
    auto g = (cached ? audit::generate::generate : audit::generate::generate_reference)(
        m, {{1, kThink}, {1, 1, 1, kThink}}, cfg);
    for (const auto& r : g) {
      EXPECT_EQ(r.tokens, (Ids{4, 5, 6, 4, 5, 6, 4, kEndThink, kAnswer, 11, kEos}));
      EXPECT_EQ(r.thinking_tokens, 7);
      EXPECT_TRUE(r.thinking_capped);
      EXPECT_EQ(r.end_think_at, 7);
      EXPECT_EQ(r.reason, StopReason::stop_token);
    }
  }
  // Without a cap the model never stops thinking: it runs into max_new_tokens.
  cfg.budget.max_thinking_tokens = -1;
  auto g = audit::generate::generate(m, {{1, kThink}}, cfg);
  EXPECT_EQ(g[0].reason, StopReason::max_new_tokens);
  EXPECT_EQ(g[0].thinking_tokens, 40);
  EXPECT_FALSE(g[0].thinking_capped);
}

TEST(BudgetForcing, WaitIsAppendedNTimesWhenTheModelWantsToStop) {
  // Thinking 4 -> 5 -> end_think; "Wait" = 12 13, after which thinking resumes at 4.
  auto m = bigram_model({{kThink, 4}, {4, 5}, {5, kEndThink}, {kEndThink, kAnswer}, {kAnswer, kEos},
                         {kWait1, kWait2}, {kWait2, 4}});
  GenerateConfig cfg;
  cfg.max_new_tokens = 40;
  cfg.stop_ids = {kEos};
  cfg.budget.end_think_id = kEndThink;
  cfg.budget.wait_ids = {kWait1, kWait2};
  for (int64_t n : {0, 1, 3}) {
    SCOPED_TRACE("num_waits " + std::to_string(n));
    cfg.budget.num_waits = n;
    Ids expect = {4, 5};
    for (int64_t i = 0; i < n; ++i) expect.insert(expect.end(), {kWait1, kWait2, 4, 5});
    expect.insert(expect.end(), {kEndThink, kAnswer, kEos});
    for (bool cached : {true, false}) {
      auto g = (cached ? audit::generate::generate : audit::generate::generate_reference)(m, {{kThink}}, cfg);
      EXPECT_EQ(g[0].tokens, expect) << (cached ? "cached" : "reference");
      EXPECT_EQ(g[0].waits, n);
      EXPECT_EQ(g[0].thinking_tokens, 2 + 4 * n);
      EXPECT_FALSE(g[0].thinking_capped);
    }
  }
  // A cap still wins over the extensions: thinking never exceeds it.
  cfg.budget.num_waits = 5;
  cfg.budget.max_thinking_tokens = 8;
  auto g = audit::generate::generate(m, {{kThink}}, cfg);
  EXPECT_EQ(g[0].tokens, (Ids{4, 5, kWait1, kWait2, 4, 5, kWait1, kWait2, kEndThink, kAnswer, kEos}));
  EXPECT_EQ(g[0].thinking_tokens, 8);
  EXPECT_TRUE(g[0].thinking_capped);
}

TEST(BudgetForcing, StopTokenWhileThinkingCountsAsAnAttemptToStop) {
  auto m = bigram_model({{kThink, 4}, {4, kEos}, {kWait1, 6}, {6, kEndThink}, {kEndThink, kEos}});
  GenerateConfig cfg;
  cfg.stop_ids = {kEos};
  cfg.budget.end_think_id = kEndThink;
  cfg.budget.wait_ids = {kWait1};
  cfg.budget.num_waits = 1;
  auto g = audit::generate::generate(m, {{kThink}}, cfg);
  EXPECT_EQ(g[0].tokens, (Ids{4, kWait1, 6, kEndThink, kEos}));
  cfg.budget.num_waits = 0;
  g = audit::generate::generate(m, {{kThink}}, cfg);
  EXPECT_EQ(g[0].tokens, (Ids{4, kEos}));
  EXPECT_EQ(g[0].reason, StopReason::stop_token);
}

// ---------------------------------------------------------------------------------------------
// Nucleus (top-p) sampling

// Today's sampling written out independently: the full sequence every step, softmax(logits / T)
// over the whole vocabulary, one multinomial draw from prompt i's generator seeded seed + i.
std::vector<Ids> plain_sampling(CausalLM& m, const std::vector<Ids>& prompts, double temperature,
                                uint64_t seed, int64_t steps) {
  torch::NoGradGuard no_grad;
  std::vector<Ids> out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + i);
    Ids seq = prompts[i], tokens;
    for (int64_t s = 0; s < steps; ++s) {
      auto logits = m->forward(torch::tensor(seq, torch::kLong).unsqueeze(0))[0][-1];
      auto probs = torch::softmax(logits / temperature, 0);
      tokens.push_back(torch::multinomial(probs, 1, false, gen).item<int64_t>());
      seq.push_back(tokens.back());
    }
    out.push_back(tokens);
  }
  return out;
}

TEST(TopP, OneEqualsPlainSampling) {
  auto m = random_model(4);
  GenerateConfig cfg;
  cfg.max_new_tokens = 16;
  cfg.temperature = 1.3;
  cfg.seed = 21;
  cfg.top_p = 1.0;
  cfg.batch_size = 3;
  const auto expected = plain_sampling(m, kPrompts, cfg.temperature, cfg.seed, cfg.max_new_tokens);
  for (const auto& g : {audit::generate::generate(m, kPrompts, cfg),
                        audit::generate::generate_reference(m, kPrompts, cfg)})
    for (size_t i = 0; i < kPrompts.size(); ++i) EXPECT_EQ(g[i].tokens, expected[i]) << "prompt " << i;
}

TEST(TopP, TinyTopPIsGreedy) {
  auto m = random_model(4);
  GenerateConfig greedy;
  greedy.max_new_tokens = 20;
  GenerateConfig cfg = greedy;
  cfg.temperature = 1.5;
  cfg.top_p = 1e-6;
  cfg.seed = 3;
  cfg.batch_size = 2;
  const auto g = audit::generate::generate(m, kPrompts, greedy);
  expect_same(audit::generate::generate(m, kPrompts, cfg), g);
  // The same temperature without top-p does not reproduce greedy (the test can fail).
  cfg.top_p = 1.0;
  const auto sampled = audit::generate::generate(m, kPrompts, cfg);
  int differ = 0;
  for (size_t i = 0; i < g.size(); ++i) differ += sampled[i].tokens != g[i].tokens;
  EXPECT_GE(differ, 3);
}

TEST(TopP, CachedEqualsUncachedReference) {
  auto m = random_model(5);
  GenerateConfig cfg;
  cfg.max_new_tokens = 24;
  cfg.temperature = 1.2;
  cfg.top_p = 0.7;
  cfg.seed = 11;
  cfg.stop_ids = {0};
  const auto ref = audit::generate::generate_reference(m, kPrompts, cfg);
  for (int64_t batch : {1, 2, 5}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    cfg.batch_size = batch;
    expect_same(audit::generate::generate(m, kPrompts, cfg), ref);
  }
  cfg.top_k = 5;  // top_k then top_p
  expect_same(audit::generate::generate(m, kPrompts, cfg), audit::generate::generate_reference(m, kPrompts, cfg));
  // top_p changed the draws: the same seeds without it sample differently.
  cfg.top_k = 0;
  cfg.top_p = 1.0;
  const auto full = audit::generate::generate_reference(m, kPrompts, cfg);
  int differ = 0;
  for (size_t i = 0; i < ref.size(); ++i) differ += full[i].tokens != ref[i].tokens;
  EXPECT_GE(differ, 3);
}

// One step from token kFrom of a bigram model whose next-token distribution is programmed:
// probabilities kDist over tokens 4..8 (the rest ~e^-60). `draws` prompts, each its own seed.
constexpr int64_t kFrom = 1;
const std::vector<double> kDist = {0.40, 0.30, 0.15, 0.10, 0.05};  // tokens 4, 5, 6, 7, 8

std::map<int64_t, int> draw_counts(CausalLM& m, double temperature, int64_t top_k, double top_p,
                                   int draws) {
  GenerateConfig cfg;
  cfg.max_new_tokens = 1;
  cfg.temperature = temperature;
  cfg.top_k = top_k;
  cfg.top_p = top_p;
  cfg.seed = 1000;
  cfg.batch_size = 64;
  std::map<int64_t, int> counts;
  for (const auto& g : audit::generate::generate(m, std::vector<Ids>(draws, Ids{kFrom}), cfg))
    ++counts[g.tokens.at(0)];
  return counts;
}

CausalLM distribution_model() {
  auto m = bigram_model({});
  torch::NoGradGuard no_grad;
  // The final norm makes the one-hot hidden state 4 (sqrt(hidden)), so logit = 4 * weight.
  auto column = torch::full({16}, -60.0 / 4);
  for (size_t j = 0; j < kDist.size(); ++j) column[4 + j] = std::log(kDist[j]) / 4;
  m->lm_head->weight.select(1, kFrom).copy_(column);
  return m;
}

TEST(TopP, SampledTokensStayInsideTheNucleus) {
  auto m = distribution_model();
  const int draws = 1200;
  // No truncation: every token of the distribution shows up.
  auto all = draw_counts(m, 1.0, 0, 1.0, draws);
  for (int64_t t = 4; t <= 8; ++t) EXPECT_GT(all[t], 0) << "token " << t;
  // top_p 0.75: ascending cumulative 0.05, 0.15, 0.30, ...: tokens 8 and 7 (cumulative <= 0.25)
  // go; the nucleus is {4, 5, 6} (0.85 >= 0.75, while {4, 5} holds only 0.70).
  struct Case {
    double temperature;
    int64_t top_k;
    double top_p;
    std::map<int64_t, double> nucleus;  // renormalised probabilities
  };
  const std::vector<Case> cases = {
      {1.0, 0, 0.75, {{4, 0.40 / 0.85}, {5, 0.30 / 0.85}, {6, 0.15 / 0.85}}},
      {1.0, 0, 0.69, {{4, 0.40 / 0.70}, {5, 0.30 / 0.70}}},  // {4, 5} holds 0.70 >= 0.69
      {1.0, 0, 0.30, {{4, 1.0}}},
      {1.0, 2, 0.95, {{4, 0.40 / 0.70}, {5, 0.30 / 0.70}}},  // top_k first, then top_p
      // Temperature first: at T = 2 the probabilities are ∝ sqrt(p): 0.300 0.260 0.184 0.150
      // 0.106; top_p 0.7 drops tokens 8 and 7 (cumulative 0.106, 0.256 <= 0.3).
      {2.0, 0, 0.70, {{4, 0.300 / 0.744}, {5, 0.260 / 0.744}, {6, 0.184 / 0.744}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE("T " + std::to_string(c.temperature) + " top_k " + std::to_string(c.top_k) +
                 " top_p " + std::to_string(c.top_p));
    auto counts = draw_counts(m, c.temperature, c.top_k, c.top_p, draws);
    int inside = 0;
    for (const auto& [token, n] : counts) {
      EXPECT_TRUE(c.nucleus.count(token)) << "token " << token << " drawn " << n << " times";
      if (c.nucleus.count(token)) inside += n;
    }
    EXPECT_EQ(inside, draws);
    // Every nucleus token is drawn about as often as its renormalised probability says
    // (binomial standard deviation at 1200 draws is at most 0.015).
    for (const auto& [token, p] : c.nucleus)
      EXPECT_NEAR(counts[token] / double(draws), p, 0.06) << "token " << token;
  }
}

TEST(Generate, RejectsBadInput) {
  auto m = random_model(1);
  GenerateConfig cfg;
  EXPECT_THROW(audit::generate::generate(m, {{}}, cfg), std::invalid_argument);
  EXPECT_THROW(audit::generate::generate(m, {{1, 99}}, cfg), std::invalid_argument);
  cfg.budget.num_waits = 1;  // without wait_ids
  EXPECT_THROW(audit::generate::generate(m, {{1}}, cfg), std::invalid_argument);
  cfg.budget.num_waits = 0;
  for (double p : {0.0, -0.5, 1.5, std::nan("")}) {
    cfg.top_p = p;
    EXPECT_THROW(audit::generate::generate(m, {{1}}, cfg), std::invalid_argument) << "top_p " << p;
    EXPECT_THROW(audit::generate::generate_reference(m, {{1}}, cfg), std::invalid_argument);
  }
  cfg.top_p = 1.0;
  cfg.temperature = -1;
  EXPECT_THROW(audit::generate::generate(m, {{1}}, cfg), std::invalid_argument);
}

}  // namespace
