// Tests of datasets/packing (template, loss masks, packing and padding conserve tokens and masks)
// and datasets/select (each s1 filter does what it says and is counted).
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "datasets/packing/packing.h"
#include "datasets/select/select.h"
#include "datasets/tasks/splits.h"

using namespace audit::datasets;

namespace {
const ByteTokenizer tok;

std::vector<Example> some_examples(std::size_t n, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<Example> v;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& op = all_ops()[i % all_ops().size()];
    v.push_back(make_example(random_problem(op, 2 + static_cast<int>(rng.below(4)), "standard", rng)));
  }
  return v;
}
}  // namespace

TEST(Packing, TemplateAndCompletionMask) {
  Example e = make_example(Problem{"add", {"4821", "379"}, "standard"});
  Sequence s = format_example(tok, e);
  EXPECT_EQ(tok.decode(s.tokens),
            "<bos><|question|>What is 4821 + 379?<think>" + e.trace +
                "</think><answer>5200</answer><eos>");
  const auto prompt = format_prompt(tok, e.question);
  ASSERT_EQ(s.prompt_len, prompt.size());
  EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), s.tokens.begin()));
  EXPECT_EQ(prompt.back(), tok.think_id());
  ASSERT_EQ(s.loss_mask.size(), s.tokens.size());
  // Loss exactly on the trace and answer (with the markers the model must emit), not the prompt.
  std::vector<TokenId> supervised;
  for (std::size_t i = 0; i < s.tokens.size(); ++i) {
    EXPECT_EQ(s.loss_mask[i], i >= s.prompt_len ? 1 : 0) << i;
    if (s.loss_mask[i]) supervised.push_back(s.tokens[i]);
  }
  EXPECT_EQ(tok.decode(supervised), e.trace + "</think><answer>" + e.answer + "</answer><eos>");
  EXPECT_EQ(supervised.size(), e.trace.size() + e.answer.size() + 4);

  Sequence all = format_example(tok, e, LossOn::all);
  EXPECT_EQ(all.tokens, s.tokens);
  EXPECT_EQ(all.loss_mask[0], 0);
  for (std::size_t i = 1; i < all.tokens.size(); ++i) EXPECT_EQ(all.loss_mask[i], 1);
  EXPECT_EQ(parse_loss_on("all"), LossOn::all);
  EXPECT_EQ(parse_loss_on("answer"), LossOn::completion);  // the recipe's name for it
  EXPECT_THROW(parse_loss_on("question"), std::invalid_argument);

  // Direct-answer (base model) data: an empty think block, same prompt.
  Example direct = e;
  direct.trace.clear();
  Sequence d = format_example(tok, direct);
  EXPECT_EQ(tok.decode(d.tokens),
            "<bos><|question|>What is 4821 + 379?<think></think><answer>5200</answer><eos>");
  EXPECT_EQ(d.prompt_len, s.prompt_len);
}

TEST(Packing, ParseCompletion) {
  Example e = make_example(Problem{"sub", {"52", "38"}, "standard"});
  Sequence s = format_example(tok, e);
  std::vector<TokenId> completion(s.tokens.begin() + static_cast<std::ptrdiff_t>(s.prompt_len), s.tokens.end());
  ParsedCompletion p = parse_completion(tok, completion);
  EXPECT_EQ(p.thinking, e.trace);
  EXPECT_EQ(p.thinking_tokens, e.trace.size());
  EXPECT_EQ(p.answer, "14");
  EXPECT_TRUE(p.closed_think && p.has_answer && p.stopped);
  EXPECT_TRUE(check_answer(e, p.answer));
  // Cut off while thinking (a budget ran out): no answer.
  std::vector<TokenId> cut(completion.begin(), completion.begin() + 10);
  p = parse_completion(tok, cut);
  EXPECT_FALSE(p.closed_think);
  EXPECT_FALSE(p.has_answer);
  EXPECT_EQ(p.answer, "");
  // Budget forcing: "Wait" in the thinking, then the answer without </answer>.
  std::vector<TokenId> forced = tok.encode("52 - 38\nWait");
  forced.push_back(tok.end_think_id());
  forced.push_back(tok.answer_id());
  for (TokenId t : tok.encode("14")) forced.push_back(t);
  p = parse_completion(tok, forced);
  EXPECT_EQ(p.thinking, "52 - 38\nWait");
  EXPECT_EQ(p.answer, "14");
  EXPECT_FALSE(p.stopped);
}

TEST(Packing, PackingConservesTokensAndMasks) {
  auto ex = some_examples(200, 1);
  auto seqs = format_examples(tok, ex);
  const int block = 1024;  // longer than every sequence (5-digit mul2 sequences are ~600 tokens)
  auto order = shuffled_indices(seqs.size(), 5, 0);
  Packed p = pack_sequences(seqs, order, block);
  const Batch& b = p.blocks;
  EXPECT_EQ(b.cols, block);
  EXPECT_EQ(p.stats.sequences, seqs.size());
  EXPECT_EQ(p.stats.truncated, 0u);
  EXPECT_EQ(p.stats.blocks, static_cast<std::size_t>(b.rows));
  std::size_t tokens = 0, supervised = 0;
  for (const auto& s : seqs) {
    tokens += s.tokens.size();
    for (auto m : s.loss_mask) supervised += m;
  }
  EXPECT_EQ(p.stats.real_tokens, tokens);
  EXPECT_EQ(p.stats.supervised_tokens, supervised);
  EXPECT_EQ(b.supervised_tokens(), supervised);
  EXPECT_EQ(p.stats.real_tokens + p.stats.padding_tokens,
            static_cast<std::size_t>(b.rows) * static_cast<std::size_t>(block));
  EXPECT_GT(p.stats.efficiency(), 0.5);  // next-fit leaves at most one sequence's worth per row

  // Walk the rows segment by segment: they are the sequences, in order, whole.
  std::size_t next = 0;
  for (int r = 0; r < b.rows; ++r) {
    const std::size_t base = static_cast<std::size_t>(r) * block;
    int t = 0;
    std::int32_t expect_seg = 1;
    while (t < block && b.segments[base + static_cast<std::size_t>(t)] != 0) {
      const Sequence& s = seqs[order[next]];
      const int len = static_cast<int>(s.tokens.size());
      for (int i = 0; i < len; ++i) {
        const std::size_t k = base + static_cast<std::size_t>(t + i);
        ASSERT_EQ(b.segments[k], expect_seg);
        ASSERT_EQ(b.positions[k], i);
        ASSERT_EQ(b.tokens[k], s.tokens[static_cast<std::size_t>(i)]);
        ASSERT_EQ(b.loss_mask[k], s.loss_mask[static_cast<std::size_t>(i)]);
      }
      ASSERT_EQ(b.loss_mask[base + static_cast<std::size_t>(t)], 0);  // segment start
      ASSERT_EQ(b.tokens[base + static_cast<std::size_t>(t + len - 1)], tok.eos_id());
      t += len;
      ++expect_seg;
      ++next;
    }
    for (; t < block; ++t) {  // padding tail
      const std::size_t k = base + static_cast<std::size_t>(t);
      ASSERT_EQ(b.segments[k], 0);
      ASSERT_EQ(b.loss_mask[k], 0);
      ASSERT_EQ(b.tokens[k], tok.pad_id());
    }
  }
  EXPECT_EQ(next, seqs.size());

  // Same seed and epoch: same blocks; another epoch: another order.
  Packed again = pack_sequences(seqs, shuffled_indices(seqs.size(), 5, 0), block);
  EXPECT_EQ(again.blocks.tokens, b.tokens);
  Packed other = pack_sequences(seqs, shuffled_indices(seqs.size(), 5, 1), block);
  EXPECT_NE(other.blocks.tokens, b.tokens);
  // LossOn::all sequences still get mask 0 at each segment start.
  auto all = format_examples(tok, ex, LossOn::all);
  Packed pa = pack_sequences(all, order, block);
  for (std::size_t k = 0; k < pa.blocks.tokens.size(); ++k)
    if (pa.blocks.positions[k] == 0) {
      ASSERT_EQ(pa.blocks.loss_mask[k], 0);
    }
}

TEST(Packing, TruncationSkipAndErrors) {
  auto seqs = format_examples(tok, some_examples(3, 2));
  Sequence tiny;
  tiny.tokens = {tok.bos_id()};
  tiny.loss_mask = {0};
  seqs.push_back(tiny);
  Packed p = pack_sequences(seqs, {0, 1, 2, 3}, 16);
  EXPECT_EQ(p.stats.truncated, 3u);
  EXPECT_EQ(p.stats.skipped, 1u);
  EXPECT_EQ(p.stats.blocks, 3u);
  EXPECT_EQ(p.stats.padding_tokens, 0u);
  for (int t = 0; t < 16; ++t)
    EXPECT_EQ(p.blocks.tokens[static_cast<std::size_t>(t)], seqs[0].tokens[static_cast<std::size_t>(t)]);
  EXPECT_THROW(pack_sequences(seqs, {7}, 16), std::invalid_argument);
  EXPECT_THROW(pack_sequences(seqs, {0}, 0), std::invalid_argument);
  Sequence broken = seqs[0];
  broken.loss_mask.pop_back();
  EXPECT_THROW(pack_sequences({broken}, {0}, 512), std::invalid_argument);
  nlohmann::json j = p.stats;
  EXPECT_EQ(j["truncated"], 3);
  EXPECT_EQ(j["blocks"], 3);
}

TEST(Packing, AttentionMaskIsBlockDiagonalCausal) {
  auto seqs = format_examples(tok, some_examples(6, 3));
  Packed p = pack_sequences(seqs, {0, 1, 2, 3, 4, 5}, 512);
  const Batch& b = p.blocks;
  ASSERT_GE(b.rows, 1);
  auto m = b.attention_mask(0);
  const std::size_t T = static_cast<std::size_t>(b.cols);
  for (std::size_t i = 0; i < T; ++i)
    for (std::size_t j = 0; j < T; ++j) {
      const auto si = b.segments[i], sj = b.segments[j];
      ASSERT_EQ(m[i * T + j], (j <= i && si != 0 && si == sj) ? 1 : 0) << i << "," << j;
    }
  // The same segmentation is recoverable from the position ids alone (the trainer's contract).
  for (std::size_t k = 1; k < T; ++k)
    if (b.segments[k] != 0) {
      EXPECT_EQ(b.positions[k] != b.positions[k - 1] + 1, b.segments[k] != b.segments[k - 1]);
    }
  Batch one = b.slice_rows(0, 1);
  EXPECT_EQ(one.rows, 1);
  EXPECT_EQ(std::vector<TokenId>(b.tokens.begin(), b.tokens.begin() + static_cast<std::ptrdiff_t>(T)), one.tokens);
  EXPECT_THROW(b.slice_rows(0, b.rows + 1), std::out_of_range);
}

TEST(Packing, PadBatch) {
  auto seqs = format_examples(tok, some_examples(5, 4));
  Batch b = pad_batch(seqs, {4, 0, 2});
  std::size_t longest = 0;
  for (std::size_t i : {4, 0, 2}) longest = std::max(longest, seqs[i].tokens.size());
  EXPECT_EQ(b.rows, 3);
  EXPECT_EQ(static_cast<std::size_t>(b.cols), longest);
  std::size_t supervised = 0;
  for (std::size_t i : {4, 0, 2})
    for (auto m : seqs[i].loss_mask) supervised += m;
  EXPECT_EQ(b.supervised_tokens(), supervised);
  const Sequence& s = seqs[0];  // row 1
  for (std::size_t t = 0; t < static_cast<std::size_t>(b.cols); ++t) {
    const std::size_t k = static_cast<std::size_t>(b.cols) + t;
    if (t < s.tokens.size()) {
      EXPECT_EQ(b.tokens[k], s.tokens[t]);
      EXPECT_EQ(b.loss_mask[k], s.loss_mask[t]);
      EXPECT_EQ(b.positions[k], static_cast<std::int32_t>(t));
      EXPECT_EQ(b.segments[k], 1);
    } else {
      EXPECT_EQ(b.tokens[k], tok.pad_id());
      EXPECT_EQ(b.segments[k], 0);
      EXPECT_EQ(b.loss_mask[k], 0);
    }
  }
  Batch capped = pad_batch(seqs, {0, 1}, 10);
  EXPECT_EQ(capped.cols, 10);
  EXPECT_EQ(capped.tokens.size(), 20u);
}

// ---------------------------------------------------------------------------------------------
namespace {
std::vector<Example> distilled_pool(std::size_t n, std::uint64_t seed) {
  SplitConfig c;
  c.seed = seed;
  c.min_digits = 1;
  c.max_digits = 4;
  c.pool_size = n;
  c.id_test_size = 10;
  c.ood_test_size = 10;
  c.pretrain_size = 0;
  Splits s = make_splits(c);
  attach_solver_traces(s.pool);
  return s.pool;
}
}  // namespace

TEST(Select, QualityRejectsEachKindOfBadTrace) {
  auto pool = distilled_pool(300, 1);
  EXPECT_EQ(quality_reject_reason(pool[0]), "");
  std::map<std::string, std::size_t> planted;
  auto plant = [&](std::size_t i, const std::string& why, auto mutate) {
    mutate(pool[i]);
    ++planted[why];
    EXPECT_EQ(quality_reject_reason(pool[i]), why) << pool[i].question << "\n" << pool[i].trace;
  };
  plant(1, "empty_trace", [](Example& e) { e.trace = "  "; });
  plant(2, "empty_answer", [](Example& e) { e.answer = ""; });
  plant(3, "template_marker", [](Example& e) { e.trace += "</think>"; });
  plant(4, "malformed_trace", [](Example& e) { e.trace.insert(0, "Let me think.\n"); });
  plant(5, "arithmetic_error", [](Example& e) {
    auto pos = e.trace.find(" write ");
    char& d = e.trace[pos + 7];
    d = d == '9' ? '8' : static_cast<char>(d + 1);
  });
  plant(6, "answer_mismatch", [](Example& e) { e.answer += "1"; });
  plant(7, "unparseable_question", [](Example& e) { e.question = "What is 1 + 01?"; });
  plant(8, "empty_question", [](Example& e) { e.question = ""; });
  // Right for different operands: caught by the solver comparison, and by the answer check.
  plant(9, "differs_from_solver", [&](Example& e) { e.trace = pool[10].trace; });
  EXPECT_EQ(quality_reject_reason(pool[9], false), "answer_mismatch");
  // Right arithmetic and answer, other layout (operands swapped): only the solver comparison.
  std::size_t k = 11;
  for (; k < pool.size(); ++k)
    if (pool[k].op == "add" && parse_question(pool[k].question)->operands[0] !=
                                   parse_question(pool[k].question)->operands[1])
      break;
  ASSERT_LT(k, pool.size());
  plant(k, "differs_from_solver", [](Example& e) {
    Problem p = *parse_question(e.question);
    std::swap(p.operands[0], p.operands[1]);
    e.trace = solve(p).trace;
  });
  EXPECT_EQ(quality_reject_reason(pool[k], false), "");

  SelectionConfig cfg;
  cfg.difficulty = false;
  cfg.n = 1000;
  Selection s = select_s1(pool, std::vector<bool>(), cfg);
  EXPECT_EQ(s.counts.pool, 300u);
  EXPECT_EQ(s.counts.after_quality, 300u - 10u);
  EXPECT_EQ(s.counts.quality_rejects, planted);
  EXPECT_EQ(s.counts.selected, 290u);  // n larger than what is left: all of it
  std::set<std::size_t> idx(s.indices.begin(), s.indices.end());
  EXPECT_EQ(idx.size(), 290u);
  for (std::size_t i = 1; i <= 9; ++i) EXPECT_EQ(idx.count(i), 0u);
  EXPECT_EQ(idx.count(k), 0u);
  EXPECT_EQ(idx.count(0), 1u);
  const auto survivors = quality_survivors(pool);
  EXPECT_EQ(std::set<std::size_t>(survivors.begin(), survivors.end()), idx);
}

TEST(Select, DifficultyDropsWhatTheBaseAnswers) {
  auto pool = distilled_pool(400, 2);
  std::vector<bool> flags(pool.size());
  std::size_t easy = 0;
  for (std::size_t i = 0; i < pool.size(); ++i) easy += (flags[i] = pool[i].digits <= 2);
  SelectionConfig cfg;
  cfg.n = 100;
  Selection s = select_s1(pool, flags, cfg);
  EXPECT_EQ(s.counts.base_correct, easy);
  EXPECT_EQ(s.counts.after_difficulty, pool.size() - easy);
  EXPECT_EQ(s.counts.selected, 100u);
  for (const auto& e : s.examples) EXPECT_GT(e.digits, 2);
  // The callback runs once per quality survivor.
  std::size_t calls = 0;
  Selection s2 = select_s1(pool, [&](const Example& e) { ++calls; return e.digits <= 2; }, cfg);
  EXPECT_EQ(calls, s.counts.after_quality);
  EXPECT_EQ(s2.indices, s.indices);
  EXPECT_THROW(select_s1(pool, std::vector<bool>(3), cfg), std::invalid_argument);
  // Flags of quality-rejected items are never read.
  pool[0].trace.clear();
  std::vector<bool> flags2 = flags;
  flags2[0] = !flags2[0];
  EXPECT_EQ(select_s1(pool, flags2, cfg).counts.base_correct,
            select_s1(pool, flags, cfg).counts.base_correct);
  // Bucket counts add up.
  std::size_t sum_pool = 0, sum_sel = 0;
  for (const auto& [k, b] : s.counts.per_bucket) {
    sum_pool += b.pool;
    sum_sel += b.selected;
    EXPECT_LE(b.selected, b.after_difficulty);
    EXPECT_LE(b.after_difficulty, b.after_quality);
    EXPECT_LE(b.after_quality, b.pool);
  }
  EXPECT_EQ(sum_pool, pool.size());
  EXPECT_EQ(sum_sel, 100u);
  nlohmann::json j = s.counts;
  EXPECT_EQ(j["selected"], 100);
  EXPECT_TRUE(j["per_bucket"].contains("add:3"));
}

TEST(Select, DiversitySpreadsOverBucketsAndIsSeeded) {
  auto pool = distilled_pool(3000, 3);
  SelectionConfig cfg;
  cfg.difficulty = false;
  cfg.n = 600;
  Selection s = select_s1(pool, std::vector<bool>(), cfg);
  ASSERT_EQ(s.counts.selected, 600u);
  // Buckets with plenty of candidates get about n / buckets each.
  std::size_t buckets = s.counts.per_bucket.size();
  for (const auto& [k, b] : s.counts.per_bucket)
    if (b.after_difficulty >= 200) {
      EXPECT_GE(b.selected * buckets, 600u / 2) << k;
      EXPECT_LE(b.selected * buckets, 600u * 2) << k;
    }
  EXPECT_EQ(select_s1(pool, std::vector<bool>(), cfg).indices, s.indices);
  cfg.seed = 4;
  EXPECT_NE(select_s1(pool, std::vector<bool>(), cfg).indices, s.indices);
  cfg.diversity = false;
  Selection u = select_s1(pool, std::vector<bool>(), cfg);
  EXPECT_EQ(u.counts.selected, 600u);
}

TEST(Select, DiversityFavoursLongerTraces) {
  std::vector<Example> pool;
  for (int len = 1; len <= 5; ++len) {
    Example e;
    e.op = "user";
    e.question = "q" + std::to_string(len);
    e.trace = std::string(static_cast<std::size_t>(len) * 10, 'x');
    e.answer = "a";
    pool.push_back(e);
  }
  std::vector<int> picks(5, 0);
  for (std::uint64_t seed = 0; seed < 400; ++seed) ++picks[diversity_sample(pool, {0, 1, 2, 3, 4}, 1, seed)[0]];
  // Weights 2^-rank by length: the longest about half the time, the shortest about 3%.
  EXPECT_GT(picks[4], 160);
  EXPECT_LT(picks[0], 30);
  EXPECT_GT(picks[4], picks[3]);
  EXPECT_GT(picks[3], picks[1]);
}
