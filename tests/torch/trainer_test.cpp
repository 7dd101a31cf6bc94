// Trainer tests: learning a tiny copy task, bit-for-bit resume (STYLE.md 7), the lr schedule,
// loss masks, gradient accumulation, and refusal of bad checkpoints.
#include <cmath>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/errors.h"
#include "reproduce/model/model.h"
#include "reproduce/recipe/recipe.h"
#include "reproduce/trainer/trainer.h"
#include "tests/support/support.h"

namespace {

// Tiny tensors: one intra-op thread is faster and immune to a busy machine (these are
// correctness tests; bit-exactness never depends on it, both runs of a comparison share it).
const bool kOneThread = (torch::set_num_threads(1), true);

using audit::InputError;
using audit::model::CausalLM;
using audit::model::ModelConfig;
using audit::train::TrainConfig;
using audit::train::TrainData;
using audit::train::Trainer;

ModelConfig tiny() {
  ModelConfig c;
  c.vocab = 16;
  c.hidden = 32;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 8;
  c.ffn = 64;
  return c;
}

CausalLM make_model(uint64_t seed) {
  CausalLM m(tiny());
  audit::model::init_weights(m, seed);
  return m;
}

// [BOS, a1..a5, SEP, a1..a5]: the loss covers the copy (tokens 7..11) only.
TrainData copy_task(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto src = torch::randint(3, 16, {n, 5}, gen, torch::kLong);
  TrainData d;
  d.tokens = torch::cat({torch::full({n, 1}, 1, torch::kLong), src,
                         torch::full({n, 1}, 2, torch::kLong), src}, 1);
  d.loss_mask = torch::zeros({n, 12}, torch::kLong);
  d.loss_mask.narrow(1, 7, 5).fill_(1);
  return d;
}

TEST(Trainer, LearnsTinyCopyTask) {
  TrainConfig cfg;
  cfg.lr = 1e-2;
  cfg.global_batch = 16;
  cfg.micro_batch = 16;
  cfg.max_steps = 150;
  cfg.warmup_steps = 10;
  cfg.weight_decay = 0.0;
  Trainer t(make_model(1), cfg, copy_task(64, 7));
  auto steps = t.train();
  ASSERT_EQ(steps.size(), 150u);
  double first = steps[0].loss, last = 0;
  for (size_t i = steps.size() - 5; i < steps.size(); ++i) last += steps[i].loss / 5;
  // Uniform guessing over 13 symbols is ln 13 = 2.56; copying must get well below half of that.
  EXPECT_NEAR(first, std::log(16.0), 0.5);
  EXPECT_LT(last, 0.5 * first) << "first " << first << " last " << last;
  EXPECT_EQ(steps.back().step, 150);
  EXPECT_EQ(steps.back().tokens, 16 * 12);
  EXPECT_EQ(steps.back().target_tokens, 16 * 5);
  EXPECT_EQ(steps.back().tokens_total, 150 * 16 * 12);
  EXPECT_GT(steps.back().tokens_per_s, 0);
}

TEST(Trainer, ResumedRunEqualsUninterruptedBitForBit) {
  // 20 samples, batch 6: epochs of 4 steps with a last batch of 2; micro-batch 4 splits a batch
  // unevenly; 2 epochs = 8 steps; interrupted after 3 steps (mid-epoch) and after 4 (epoch end).
  TrainConfig cfg;
  cfg.lr = 5e-3;
  cfg.global_batch = 6;
  cfg.micro_batch = 4;
  cfg.epochs = 2;
  cfg.seed = 11;
  auto data = copy_task(20, 3);

  torch::manual_seed(123);
  Trainer full(make_model(1), cfg, data);
  ASSERT_EQ(full.total_steps(), 8);
  std::vector<double> losses;
  for (const auto& s : full.train()) losses.push_back(s.loss);
  auto after_full = torch::rand({4});  // the torch RNG continues identically after a resume

  const audit::testing::TempDir dir("trainer_test");

  for (int stop_at : {3, 4}) {
    SCOPED_TRACE("interrupted after step " + std::to_string(stop_at));
    const std::string ckpt = dir.file("resume_" + std::to_string(stop_at) + ".ckpt");
    std::vector<double> resumed;
    {
      torch::manual_seed(123);
      Trainer first(make_model(1), cfg, data);
      for (int i = 0; i < stop_at; ++i) resumed.push_back(first.step().loss);
      first.save_checkpoint(ckpt);
    }
    torch::manual_seed(999);  // a fresh process: other RNG state, other initial weights
    Trainer second(make_model(77), cfg, data);
    second.load_checkpoint(ckpt);
    EXPECT_EQ(second.position().step, stop_at);
    for (const auto& s : second.train()) resumed.push_back(s.loss);
    auto after_resumed = torch::rand({4});
    ASSERT_EQ(resumed.size(), losses.size());
    for (size_t i = 0; i < losses.size(); ++i) EXPECT_EQ(resumed[i], losses[i]) << "step " << i + 1;
    auto pa = full.model()->named_parameters();
    auto pb = second.model()->named_parameters();
    for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
    EXPECT_TRUE(torch::equal(after_full, after_resumed));
    EXPECT_EQ(second.position().epoch, full.position().epoch);
    EXPECT_EQ(second.position().cursor, full.position().cursor);
  }
}

TEST(Trainer, LrScheduleMatchesHfCosineWithWarmup) {
  using audit::train::lr_schedule;
  EXPECT_DOUBLE_EQ(lr_schedule(1.0, 0.0, 10, 110, 0), 0.0);
  EXPECT_DOUBLE_EQ(lr_schedule(1.0, 0.0, 10, 110, 5), 0.5);
  EXPECT_DOUBLE_EQ(lr_schedule(1.0, 0.0, 10, 110, 10), 1.0);
  EXPECT_NEAR(lr_schedule(1.0, 0.0, 10, 110, 60), 0.5, 1e-12);
  EXPECT_NEAR(lr_schedule(1.0, 0.0, 10, 110, 35), 0.5 * (1 + std::cos(M_PI / 4)), 1e-12);
  EXPECT_NEAR(lr_schedule(1.0, 0.0, 10, 110, 110), 0.0, 1e-12);
  EXPECT_NEAR(lr_schedule(1.0, 0.1, 10, 110, 60), 0.55, 1e-12);
  EXPECT_NEAR(lr_schedule(1.0, 0.1, 10, 110, 110), 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(lr_schedule(2.0, 0.0, 0, 10, 0), 2.0);  // no warmup: starts at the peak

  // s1's shape: 1,000 samples, batch 16, 5 epochs -> 63 steps per epoch, 315 steps, 5% warmup
  // = ceil(15.75) = 16 steps.
  TrainData d;
  d.tokens = torch::zeros({1000, 2}, torch::kLong);
  d.loss_mask = torch::ones({1000, 2}, torch::kLong);
  TrainConfig cfg;
  cfg.lr = 1e-5;
  cfg.epochs = 5;
  cfg.global_batch = 16;
  Trainer t(make_model(1), cfg, d);
  EXPECT_EQ(t.steps_per_epoch(), 63);
  EXPECT_EQ(t.total_steps(), 315);
  EXPECT_EQ(t.warmup_steps(), 16);
  EXPECT_DOUBLE_EQ(t.lr_at(8), 0.5e-5);
  EXPECT_DOUBLE_EQ(t.lr_at(16), 1e-5);
}

// One set of training defaults: the trainer's config is the recipe's [train] settings, with the
// same defaults, and takes a recipe's as they stand (no field-by-field copy to get wrong).
TEST(Trainer, ConfigIsTheRecipesTrainSettings) {
  using audit::settings::TrainSettings;
  const auto plain = audit::recipe::parse_recipe_text("[claim]\nname = \"d\"\n", "d.toml");
  EXPECT_EQ(static_cast<const TrainSettings&>(TrainConfig{}),
            static_cast<const TrainSettings&>(plain.train));
  const auto r = audit::recipe::parse_recipe_text(
      "[claim]\nname = \"t\"\n[train]\nepochs = 3\nglobal_batch = 8\nmicro_batch = 2\n"
      "lr = 3e-4\nwarmup_frac = 0.1\nmin_lr_frac = 0.2\nbeta1 = 0.8\nbeta2 = 0.9\n"
      "adam_eps = 1e-6\nweight_decay = 0.3\ngrad_clip = 0.5\nseed = 9\nthreads = 1\n",
      "t.toml");
  const TrainConfig cfg(r.train);
  EXPECT_EQ(static_cast<const TrainSettings&>(cfg), static_cast<const TrainSettings&>(r.train));
  EXPECT_EQ(cfg.global_batch, 8);
  EXPECT_DOUBLE_EQ(cfg.min_lr_frac, 0.2);
  EXPECT_EQ(cfg.seed, 9);

  // What the trainer makes of them: warmup_frac of the steps, the lr floor as a fraction of the
  // peak, micro-batches of micro_batch (0: the whole global batch in one).
  TrainData d;
  d.tokens = torch::zeros({80, 2}, torch::kLong);
  d.loss_mask = torch::ones({80, 2}, torch::kLong);
  Trainer t(make_model(1), cfg, d);
  EXPECT_EQ(t.total_steps(), 30);  // 3 epochs of 10 steps
  EXPECT_EQ(t.warmup_steps(), 3);
  EXPECT_EQ(t.accumulation_steps(), 4);
  EXPECT_NEAR(t.lr_at(3), 3e-4, 1e-15);
  EXPECT_NEAR(t.lr_at(30), 0.2 * 3e-4, 1e-15);
  TrainConfig whole = cfg;
  whole.micro_batch = 0;
  EXPECT_EQ(Trainer(make_model(1), whole, d).accumulation_steps(), 1);
}

TEST(Trainer, LossIgnoresTokensOutsideTheMask) {
  auto m = make_model(2);
  auto data = copy_task(4, 5);
  auto mask = torch::zeros({4, 12}, torch::kLong);
  mask.narrow(1, 2, 6).fill_(1);  // targets 2..7

  auto loss_and_grads = [&](const torch::Tensor& tokens) {
    m->zero_grad();
    auto logits = m->forward(tokens);
    auto loss = audit::train::masked_lm_loss(logits, tokens, mask, 24);
    loss.backward();
    std::vector<torch::Tensor> grads;
    for (auto& p : m->parameters()) grads.push_back(p.grad().clone());
    return std::make_pair(loss.detach(), grads);
  };
  auto [loss, grads] = loss_and_grads(data.tokens);

  // Tokens 8..11 are targets outside the mask, and inputs only to predictions outside it.
  auto outside = data.tokens.clone();
  outside.narrow(1, 8, 4).copy_((outside.narrow(1, 8, 4) + 5) % 16);
  auto [loss2, grads2] = loss_and_grads(outside);
  EXPECT_TRUE(torch::equal(loss, loss2));
  for (size_t i = 0; i < grads.size(); ++i) EXPECT_TRUE(torch::equal(grads[i], grads2[i])) << i;

  // A target inside the mask does count (so this test can fail).
  auto inside = data.tokens.clone();
  inside.select(1, 7).copy_((inside.select(1, 7) + 5) % 16);
  auto [loss3, grads3] = loss_and_grads(inside);
  EXPECT_FALSE(torch::equal(loss, loss3));

  // The loss is the mean over exactly the masked targets: mask only position 3 of row 0.
  auto one = torch::zeros({4, 12}, torch::kLong);
  one[0][3] = 1;
  torch::NoGradGuard no_grad;
  auto logits = m->forward(data.tokens);
  auto expected = torch::nn::functional::cross_entropy(
      logits[0][2].unsqueeze(0), data.tokens[0][3].unsqueeze(0));
  EXPECT_NEAR(audit::train::masked_lm_loss(logits, data.tokens, one, 1).item<double>(),
              expected.item<double>(), 1e-6);
}

TEST(Trainer, TrailingUntargetedColumnsAreNotRunAndChangeNothing) {
  // Rows whose targets end early (padded SFT rows): the trainer runs columns only up to the
  // last target of the micro-batch, and its loss and gradients equal the full rows' ones.
  auto data = copy_task(4, 9);
  const int64_t T = data.tokens.size(1);
  data.loss_mask.zero_();
  data.loss_mask[0].narrow(0, 2, 3).fill_(1);  // last target column 4
  data.loss_mask[1].narrow(0, 5, 2).fill_(1);  // last target column 6
  data.loss_mask[2][3] = 1;
  data.loss_mask[3][1] = 1;
  ASSERT_GT(T, 8);
  TrainConfig cfg;
  cfg.global_batch = 4;
  cfg.micro_batch = 2;
  Trainer t(make_model(4), cfg, data);
  t.model()->zero_grad();
  int64_t run = 0;
  const double loss = t.accumulate_gradients({0, 1, 2, 3}, &run);
  EXPECT_EQ(run, 2 * 7 + 2 * 4);  // rows 0-1 up to column 6, rows 2-3 up to column 3
  std::vector<torch::Tensor> trimmed;
  for (auto& p : t.model()->parameters()) trimmed.push_back(p.grad().clone());

  t.model()->zero_grad();
  auto logits = t.model()->forward(data.tokens);
  const double n = (data.loss_mask.narrow(1, 1, T - 1) != 0).sum().item<double>();
  auto full = audit::train::masked_lm_loss(logits, data.tokens, data.loss_mask, n);
  full.backward();
  EXPECT_NEAR(loss, full.item<double>(), 1e-6 * std::abs(loss));
  size_t i = 0;
  for (auto& p : t.model()->parameters()) {
    const double scale = p.grad().abs().max().item<double>();
    EXPECT_LE((trimmed[i] - p.grad()).abs().max().item<double>(), 1e-5 * scale + 1e-9) << i;
    ++i;
  }
}

TEST(Trainer, MicroBatchesAccumulateTheSameGradient) {
  auto data = copy_task(4, 9);
  // Uneven target counts per sample, so a per-micro-batch mean would be wrong.
  data.loss_mask.zero_();
  data.loss_mask[0].narrow(0, 7, 5).fill_(1);
  data.loss_mask[1].narrow(0, 10, 2).fill_(1);
  data.loss_mask[2].narrow(0, 1, 11).fill_(1);
  data.loss_mask[3][11] = 1;
  auto grads_with = [&](int64_t micro) {
    TrainConfig cfg;
    cfg.global_batch = 4;
    cfg.micro_batch = micro;
    Trainer t(make_model(4), cfg, data);
    EXPECT_EQ(t.accumulation_steps(), 4 / micro);
    t.model()->zero_grad();
    const double loss = t.accumulate_gradients({0, 1, 2, 3});
    std::vector<torch::Tensor> g;
    for (auto& p : t.model()->parameters()) g.push_back(p.grad().clone());
    return std::make_pair(loss, g);
  };
  auto [loss4, g4] = grads_with(4);
  auto [loss1, g1] = grads_with(1);
  EXPECT_NEAR(loss1, loss4, 1e-6 * std::abs(loss4));
  ASSERT_EQ(g1.size(), g4.size());
  for (size_t i = 0; i < g1.size(); ++i) {
    // Summation order differs (four backward passes added): fp32 rounding, ~1e-7 relative.
    const double scale = g4[i].abs().max().item<double>();
    EXPECT_LE((g1[i] - g4[i]).abs().max().item<double>(), 1e-5 * scale + 1e-9) << "param " << i;
  }
}

TEST(Trainer, FirstStepFollowsTheAdamWFormula) {
  // Step 1 of AdamW: m_hat = g, v_hat = g^2, so p' = p * (1 - lr * wd) - lr * g / (|g| + eps),
  // with wd only on matrices and embeddings (biases and norm scales are not decayed).
  TrainConfig cfg;
  cfg.lr = 0.01;
  cfg.weight_decay = 0.1;
  cfg.warmup_steps = 0;
  cfg.grad_clip = 0;
  cfg.global_batch = cfg.micro_batch = 4;
  cfg.max_steps = 2;
  Trainer t(make_model(3), cfg, copy_task(4, 2));
  std::map<std::string, torch::Tensor> before;
  for (const auto& p : t.model()->named_parameters()) before[p.key()] = p.value().detach().clone();
  t.step();
  for (const auto& p : t.model()->named_parameters()) {
    const double wd = p.value().dim() >= 2 ? 0.1 : 0.0;
    auto g = p.value().grad();
    auto expected = before[p.key()] * (1 - 0.01 * wd) - 0.01 * g / (g.abs() + 1e-8);
    EXPECT_LE((p.value() - expected).abs().max().item<double>(), 1e-6) << p.key();
  }
}

TEST(Trainer, GradientClippingBoundsTheUpdateNorm) {
  TrainConfig cfg;
  cfg.global_batch = 8;
  cfg.micro_batch = 8;
  cfg.max_steps = 1;
  cfg.grad_clip = 1e-3;
  Trainer t(make_model(1), cfg, copy_task(8, 1));
  auto info = t.step();
  EXPECT_GT(info.grad_norm, 1e-3);  // reported before clipping
  double norm2 = 0;
  for (auto& p : t.model()->parameters()) norm2 += p.grad().pow(2).sum().item<double>();
  EXPECT_NEAR(std::sqrt(norm2), 1e-3, 1e-5);
}

TEST(Trainer, BadCheckpointsAreRefusedWithInputError) {
  TrainConfig cfg;
  cfg.global_batch = 4;
  cfg.micro_batch = 4;
  cfg.max_steps = 2;
  auto data = copy_task(8, 1);
  Trainer t(make_model(1), cfg, data);
  t.step();
  const audit::testing::TempDir dir("trainer_test");
  const std::string good_path = dir.file("good.ckpt");
  t.save_checkpoint(good_path);
  const std::string good = audit::testing::read_file(good_path);

  auto expect_refused = [&](const std::string& bytes, const std::string& needle) {
    const std::string p = dir.file("bad.ckpt");
    audit::testing::write_file(p, bytes);
    Trainer fresh(make_model(1), cfg, data);
    try {
      fresh.load_checkpoint(p);
      ADD_FAILURE() << "accepted a bad checkpoint; expected: " << needle;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_refused("hello", "magic");
  expect_refused("PK\x03\x04" + good.substr(4), "magic");
  std::string newer = good;
  newer[8] = 3;
  expect_refused(newer, "version 3");
  std::string older = good;  // version 1 kept a shorter model and train config
  older[8] = 1;
  expect_refused(older, "version 1");
  expect_refused(good.substr(0, good.size() / 2), "checksum");
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x40;
  expect_refused(flipped, "checksum");

  // Intact, but for another model or other data.
  ModelConfig other = tiny();
  other.ffn = 32;
  CausalLM m2(other);
  Trainer wrong_model(m2, cfg, data);
  EXPECT_THROW(wrong_model.load_checkpoint(good_path), InputError);
  Trainer wrong_data(make_model(1), cfg, copy_task(8, 2));
  try {
    wrong_data.load_checkpoint(good_path);
    ADD_FAILURE() << "accepted other data";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("data"), std::string::npos) << e.what();
  }
  // And the intact file loads, weights readable on their own too.
  Trainer ok(make_model(9), cfg, data);
  EXPECT_NO_THROW(ok.load_checkpoint(good_path));
  EXPECT_EQ(ok.position().step, 1);
  CausalLM only(tiny());
  audit::train::load_checkpoint_weights(good_path, only);
  EXPECT_TRUE(torch::equal(only->model->norm->weight, t.model()->model->norm->weight));
  EXPECT_EQ(audit::train::read_checkpoint_info(good_path).position.step, 1);
}

TEST(Trainer, RejectsDataThatDoesNotFitTheModel) {
  TrainData d = copy_task(4, 1);
  d.tokens[0][0] = 16;  // vocab is 16
  EXPECT_THROW(Trainer(make_model(1), TrainConfig{}, d), std::invalid_argument);
  TrainData e = copy_task(4, 1);
  e.loss_mask = torch::ones({4, 11});
  EXPECT_THROW(Trainer(make_model(1), TrainConfig{}, e), std::invalid_argument);
}

TEST(Trainer, PackedPositionIdsAreAccepted) {
  TrainData d = copy_task(8, 1);
  d.position_ids = torch::cat({torch::arange(6), torch::arange(6)}).unsqueeze(0).expand({8, 12}).contiguous();
  TrainConfig cfg;
  cfg.global_batch = 4;
  cfg.micro_batch = 2;
  cfg.max_steps = 2;
  Trainer t(make_model(1), cfg, d);
  auto steps = t.train();
  EXPECT_TRUE(std::isfinite(steps.back().loss));
}

}  // namespace
