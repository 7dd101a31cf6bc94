// Trainer tests: learning a tiny copy task, bit-for-bit resume (STYLE.md 7) by hand and through
// checkpoint_every + resume_if_present, the three lr schedules, precision refusals, activation
// recompute (same loss and gradients, less memory held), loss masks, gradient accumulation, and
// refusal of bad checkpoints.
#include <malloc.h>

#include <cmath>
#include <cstdio>
#include <fstream>
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

TEST(Trainer, LrScheduleMatchesHfSchedulesWithWarmup) {
  using audit::train::lr_schedule;
  using audit::train::Schedule;
  const auto cos = Schedule::cosine, lin = Schedule::linear, con = Schedule::constant;
  // Warmup 10 of 110 steps. HF's lambdas (transformers/optimization.py), by hand:
  //   warmup:   step / max(1, warmup)                     (all three)
  //   cosine:   max(0, 0.5 * (1 + cos(pi * progress)))    progress = (step - 10) / 100
  //   linear:   max(0, (total - step) / max(1, total - warmup))
  //   constant: 1
  for (auto kind : {cos, lin, con}) {
    EXPECT_DOUBLE_EQ(lr_schedule(kind, 1.0, 0.0, 10, 110, 0), 0.0);
    EXPECT_DOUBLE_EQ(lr_schedule(kind, 1.0, 0.0, 10, 110, 5), 0.5);
    EXPECT_DOUBLE_EQ(lr_schedule(kind, 1.0, 0.0, 10, 110, 10), 1.0);
    EXPECT_DOUBLE_EQ(lr_schedule(kind, 2.0, 0.0, 0, 10, 0), 2.0);  // no warmup: the peak
  }
  EXPECT_NEAR(lr_schedule(cos, 1.0, 0.0, 10, 110, 60), 0.5, 1e-12);
  EXPECT_NEAR(lr_schedule(cos, 1.0, 0.0, 10, 110, 35), 0.5 * (1 + std::cos(M_PI / 4)), 1e-12);
  EXPECT_NEAR(lr_schedule(cos, 1.0, 0.0, 10, 110, 110), 0.0, 1e-12);
  EXPECT_NEAR(lr_schedule(cos, 1.0, 0.1, 10, 110, 60), 0.55, 1e-12);
  EXPECT_NEAR(lr_schedule(cos, 1.0, 0.1, 10, 110, 110), 0.1, 1e-12);
  EXPECT_NEAR(lr_schedule(lin, 1.0, 0.0, 10, 110, 35), 0.75, 1e-12);   // (110-35)/100
  EXPECT_NEAR(lr_schedule(lin, 1.0, 0.0, 10, 110, 60), 0.5, 1e-12);
  EXPECT_NEAR(lr_schedule(lin, 1.0, 0.0, 10, 110, 109), 0.01, 1e-12);
  EXPECT_NEAR(lr_schedule(lin, 1.0, 0.0, 10, 110, 110), 0.0, 1e-12);
  EXPECT_NEAR(lr_schedule(lin, 1.0, 0.0, 10, 110, 130), 0.0, 1e-12);  // past the end: max(0, .)
  EXPECT_NEAR(lr_schedule(lin, 2.0, 0.2, 10, 110, 60), 0.2 + 1.8 * 0.5, 1e-12);  // to min_lr
  EXPECT_NEAR(lr_schedule(lin, 2.0, 0.2, 10, 110, 110), 0.2, 1e-12);
  for (int64_t step : {10, 35, 60, 109, 110})
    EXPECT_DOUBLE_EQ(lr_schedule(con, 3e-4, 1e-5, 10, 110, step), 3e-4) << step;
  EXPECT_EQ(audit::train::parse_schedule("linear"), lin);
  EXPECT_THROW(audit::train::parse_schedule("step"), std::invalid_argument);

  // The trainer uses the kind its settings name.
  TrainData small;
  small.tokens = torch::zeros({40, 2}, torch::kLong);
  small.loss_mask = torch::ones({40, 2}, torch::kLong);
  TrainConfig c;
  c.lr = 1.0;
  c.global_batch = 4;
  c.epochs = 11;  // 110 steps
  c.warmup_steps = 10;
  for (const char* name : {"cosine", "linear", "constant"}) {
    c.schedule = name;
    Trainer t(make_model(1), c, small);
    for (int64_t step : {0, 5, 35, 60, 109})
      EXPECT_DOUBLE_EQ(t.lr_at(step), lr_schedule(audit::train::parse_schedule(name), 1.0, 0.0,
                                                  10, 110, step))
          << name << " " << step;
  }
  c.schedule = "step";
  EXPECT_THROW(Trainer(make_model(1), c, small), std::invalid_argument);

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
      "adam_eps = 1e-6\nweight_decay = 0.3\ngrad_clip = 0.5\nseed = 9\nthreads = 1\n"
      "schedule = \"linear\"\nprecision = \"fp32\"\nrecompute = true\ncheckpoint_every = 7\n",
      "t.toml");
  const TrainConfig cfg(r.train);
  EXPECT_EQ(static_cast<const TrainSettings&>(cfg), static_cast<const TrainSettings&>(r.train));
  EXPECT_EQ(cfg.global_batch, 8);
  EXPECT_EQ(cfg.schedule, "linear");
  EXPECT_EQ(cfg.precision, "fp32");
  EXPECT_TRUE(cfg.recompute);
  EXPECT_EQ(cfg.checkpoint_every, 7);
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
  EXPECT_NEAR(t.lr_at(3 + 27 / 3), 3e-4 * (0.2 + 0.8 * 2.0 / 3.0), 1e-15);  // linear
  EXPECT_TRUE(t.model()->recompute());
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

// precision: fp32 runs as it is; bf16 is autocast on CUDA only; fp8 is not trained here. The
// refusals name the key and the way out (the lead refuses them earlier as bad input too).
TEST(Trainer, PrecisionIsHonouredOrRefused) {
  TrainConfig cfg;
  cfg.global_batch = 4;
  cfg.max_steps = 1;
  EXPECT_EQ(cfg.precision, "fp32");  // the default: what a recipe without the key trains in
  EXPECT_NO_THROW(Trainer(make_model(1), cfg, copy_task(4, 1)).train());
  for (const char* p : {"bf16", "fp8", "fp16"}) {
    cfg.precision = p;
    try {
      Trainer t(make_model(1), cfg, copy_task(4, 1));
      ADD_FAILURE() << "precision " << p << " on the CPU was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("precision"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
}

// checkpoint_every with checkpoint_path: a checkpoint after every 3rd step and after the last;
// a run killed after step 5 (its last checkpoint is step 3) is continued by a new trainer
// (resume_if_present) to the uninterrupted run's losses and parameters, bit for bit.
TEST(Trainer, CheckpointEveryAndResumeIfPresentContinueBitForBit) {
  const audit::testing::TempDir dir("trainer_test_every");
  TrainConfig cfg;
  cfg.lr = 5e-3;
  cfg.global_batch = 6;
  cfg.micro_batch = 4;
  cfg.epochs = 2;  // 20 samples: 8 steps
  cfg.seed = 5;
  cfg.checkpoint_every = 3;
  auto data = copy_task(20, 3);

  cfg.checkpoint_path = dir.file("full.ckpt");
  torch::manual_seed(1);
  Trainer full(make_model(1), cfg, data);
  EXPECT_FALSE(full.resume_if_present());  // no file yet
  std::vector<double> losses;
  std::vector<int64_t> saved_steps;
  full.train([&](const audit::train::StepInfo& s) {
    losses.push_back(s.loss);
    const bool exists = std::ifstream(cfg.checkpoint_path).good();
    saved_steps.push_back(
        exists ? audit::train::read_checkpoint_info(cfg.checkpoint_path).position.step : 0);
  });
  EXPECT_EQ(saved_steps, (std::vector<int64_t>{0, 0, 3, 3, 3, 6, 6, 8}))
      << "checkpoint after steps 3, 6 and the last (8); none before step 3 (0: no file)";

  cfg.checkpoint_path = dir.file("killed.ckpt");
  struct Killed {};
  std::vector<double> resumed;
  {
    torch::manual_seed(1);
    Trainer first(make_model(1), cfg, data);
    try {
      first.train([&](const audit::train::StepInfo& s) {
        resumed.push_back(s.loss);
        if (s.step == 5) throw Killed{};
      });
    } catch (const Killed&) {
    }
  }
  ASSERT_EQ(resumed.size(), 5u);
  resumed.resize(3);  // steps 4 and 5 are lost with the process: the checkpoint is step 3
  torch::manual_seed(999);
  Trainer second(make_model(77), cfg, data);
  ASSERT_TRUE(second.resume_if_present());
  EXPECT_EQ(second.position().step, 3);
  for (const auto& s : second.train()) resumed.push_back(s.loss);
  ASSERT_EQ(resumed.size(), losses.size());
  for (size_t i = 0; i < losses.size(); ++i) EXPECT_EQ(resumed[i], losses[i]) << "step " << i + 1;
  auto pa = full.model()->named_parameters();
  auto pb = second.model()->named_parameters();
  for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();

  // A checkpoint that does not fit this run is refused as bad input, not silently ignored.
  TrainConfig other = cfg;
  Trainer wrong(make_model(1), other, copy_task(20, 4));  // other data
  EXPECT_THROW(wrong.resume_if_present(), InputError);
}

// The loss, its gradient for every parameter, and a short training run, with and without
// activation recompute: packed rows (position_ids restart mid-row) and a loss mask, fp32 CPU.
// The recomputed forward takes the same kernels as the training forward (model.cpp), so the
// two agree bit for bit.
TEST(Trainer, RecomputeGivesTheSameLossAndEveryGradient) {
  TrainData d = copy_task(6, 2);
  d.position_ids =
      torch::cat({torch::arange(5), torch::arange(7)}).unsqueeze(0).expand({6, 12}).contiguous();
  std::map<std::string, torch::Tensor> grads[2];
  double loss[2];
  for (int on = 0; on < 2; ++on) {
    CausalLM m = make_model(3);
    m->set_recompute(on == 1);
    auto logits = m->forward(d.tokens, d.position_ids);
    auto l = audit::train::masked_lm_loss(logits, d.tokens, d.loss_mask, 30.0);
    l.backward();
    loss[on] = l.item<double>();
    for (const auto& p : m->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key() << (on ? " with" : " without");
      grads[on][p.key()] = p.value().grad().clone();
    }
  }
  EXPECT_EQ(loss[0], loss[1]);
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (const auto& [name, g] : grads[0]) {
    const double rel = (g - grads[1][name]).norm().item<double>() /
                       std::max(1e-30, g.norm().item<double>());
    EXPECT_EQ(rel, 0.0) << name << ": relative difference " << rel;
  }
  // torch::autograd::grad over the parameters sees them too (they are inputs of the node).
  {
    CausalLM m = make_model(3);
    m->set_recompute(true);
    auto l = audit::train::masked_lm_loss(m->forward(d.tokens, d.position_ids), d.tokens,
                                          d.loss_mask, 30.0);
    auto params = m->parameters();
    auto g = torch::autograd::grad({l}, params);
    auto names = m->named_parameters();
    size_t i = 0;
    for (const auto& p : names) EXPECT_TRUE(torch::equal(g[i++], grads[0][p.key()])) << p.key();
  }
  // Through the trainer (cfg.recompute): the same losses and parameters after 4 steps.
  TrainConfig cfg;
  cfg.lr = 1e-2;
  cfg.global_batch = 4;
  cfg.micro_batch = 2;
  cfg.max_steps = 4;
  std::vector<double> l[2];
  std::vector<CausalLM> models;
  for (int on = 0; on < 2; ++on) {
    cfg.recompute = on == 1;
    Trainer t(make_model(4), cfg, d);
    EXPECT_EQ(t.model()->recompute(), cfg.recompute);
    for (const auto& s : t.train()) l[on].push_back(s.loss);
    models.push_back(t.model());
  }
  EXPECT_EQ(l[0], l[1]);
  auto pb = models[1]->named_parameters();
  for (const auto& p : models[0]->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}

// What recompute saves: the bytes the process heap holds once the loss is computed and before
// backward (glibc mallinfo2: in-use arena bytes + mmapped blocks, every thread's arena; LibTorch's
// CPU allocator is plain malloc), i.e. the activations autograd keeps for backward plus the
// logits. A 4-layer model on [4, 128]: each layer keeps a dozen [B, T, hidden] and [B, T, ffn]
// tensors without recompute, one [B, T, hidden] input with it.
TEST(Trainer, RecomputeHoldsLessMemoryForBackward) {
  ModelConfig c = tiny();
  c.vocab = 64;
  c.hidden = 128;
  c.layers = 4;
  c.heads = 8;
  c.kv_heads = 2;
  c.head_dim = 16;
  c.ffn = 512;
  auto tokens = torch::randint(0, c.vocab, {4, 128}, torch::kLong);
  auto mask = torch::ones({4, 128}, torch::kLong);
  auto heap = [] {
    const struct mallinfo2 mi = mallinfo2();
    return static_cast<double>(mi.uordblks + mi.hblkhd);
  };
  double held[2], mlp_grad_norm[2];
  for (int on = 0; on < 2; ++on) {
    CausalLM m(c);
    audit::model::init_weights(m, 1);
    m->set_recompute(on == 1);
    const double before = heap();
    auto loss = audit::train::masked_lm_loss(m->forward(tokens), tokens, mask, 4 * 127);
    held[on] = heap() - before;
    loss.backward();
    mlp_grad_norm[on] = m->model->layers[0]->as<audit::model::DecoderLayer>()
                             ->mlp->parameters()[0].grad().norm().item<double>();
  }
  const double logits = 4.0 * 128 * c.vocab * 4;
  std::printf("held for backward: %.2f MB without recompute, %.2f MB with (logits %.2f MB)\n",
              held[0] / 1e6, held[1] / 1e6, logits / 1e6);
  EXPECT_GT(held[0], 0);
  EXPECT_LT(held[1], 0.35 * held[0]) << "recompute should keep about one [B, T, hidden] per layer";
  EXPECT_EQ(mlp_grad_norm[0], mlp_grad_norm[1]);
}

}  // namespace
