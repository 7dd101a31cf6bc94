// Tests of `audit replay`'s timing side on the CPU at reduced shapes (reproduce/replay_layers/
// replay_layers.h and the verb): dense Qwen2 and DeepSeek-V3-style MLA + MoE layers time real
// forward + backward + AdamW steps, the self-check compares the replay's prediction with a real
// Trainer run of the whole small model, and the CLI writes its ledger run (and exits 2 on a bad
// recipe).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "kernels/devices/devices.h"
#include "ledger/store/ledger.h"
#include "reproduce/replay_layers/replay_layers.h"
#include "tests/support/support.h"

namespace {

namespace rp = audit::replay;

audit::ledger::ArchSpec tiny_qwen() {
  audit::ledger::ArchSpec a;
  a.name = "tiny-qwen";
  a.vocab = 128;
  a.hidden = 32;
  a.layers = 4;
  a.heads = 2;
  a.kv_heads = 1;
  a.head_dim = 16;
  a.ffn = 64;
  a.qkv_bias = true;
  return a;
}

// DeepSeek-V3's router at full size (256 routed experts, top-8, 8 groups of which 4 kept,
// sigmoid + bias, scaling 2.5) on a tiny MLA body.
audit::ledger::ArchSpec tiny_deepseek() {
  audit::ledger::ArchSpec a;
  a.name = "tiny-deepseek";
  a.vocab = 128;
  a.hidden = 32;
  a.layers = 3;
  a.heads = 2;
  a.kv_heads = 2;
  a.ffn = 64;
  a.routed_experts = 256;
  a.shared_experts = 1;
  a.top_k = 8;
  a.expert_ffn = 8;
  a.first_dense_layers = 1;
  a.router_bias = true;
  a.q_lora_rank = 16;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 8;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 8;
  return a;
}

audit::recipe::BaseSection deepseek_base() {
  audit::recipe::BaseSection b;
  b.score_func = "sigmoid";
  b.routed_scaling = 2.5;
  b.expert_groups = 8;
  b.topk_groups = 4;
  return b;
}

int count_part(const rp::TimingResult& r, rp::Part p) {
  int n = 0;
  for (const auto& m : r.measurements) n += m.part == p;
  return n;
}

TEST(ReplayTorch, DenseLayersTimeOnCpu) {
  torch::set_num_threads(1);
  rp::TimingOptions t;
  t.layers = 2;
  t.warmup = 1;
  t.steps = 2;
  t.seq_lens = {32, 64};
  t.claimed_lens = {256, 512};
  auto r = rp::time_parts(tiny_qwen(), audit::recipe::BaseSection{}, t);
  EXPECT_EQ(r.layers_timed, 2);
  EXPECT_EQ(r.dtype, "fp32");
  EXPECT_EQ(count_part(r, rp::Part::kDenseLayer), 2);
  EXPECT_EQ(count_part(r, rp::Part::kEmbedHead), 2);
  EXPECT_EQ(count_part(r, rp::Part::kOptimizer), 1);
  EXPECT_GT(r.here.flops, 0);
  EXPECT_GT(r.here.bytes_s, 0);
  for (const auto& m : r.measurements) {
    EXPECT_GT(m.seconds, 0) << rp::part_name(m.part);
    // Timed steps per length; the optimizer row pools both lengths' steps.
    EXPECT_EQ(m.samples.size(), m.part == rp::Part::kOptimizer ? 4u : 2u) << rp::part_name(m.part);
    if (m.part == rp::Part::kDenseLayer) {
      const auto w = rp::layer_work(tiny_qwen(), false, m.timed_seq_len, 1, 4, false);
      EXPECT_DOUBLE_EQ(m.timed.flops, w.flops);
      EXPECT_EQ(m.claimed_seq_len, m.timed_seq_len * 8);
    }
    if (m.part == rp::Part::kOptimizer) {
      // Two layers' parameters: 2 x (attention + SwiGLU + norms).
      EXPECT_DOUBLE_EQ(m.params, 2.0 * rp::layer_params(tiny_qwen(), false).total);
    }
  }
}

TEST(ReplayTorch, DeepSeekMlaMoeLayersTimeOnCpu) {
  torch::set_num_threads(1);
  rp::TimingOptions t;
  t.layers = 1;
  t.warmup = 1;
  t.steps = 2;
  t.seq_lens = {64};
  t.claimed_lens = {4096};
  auto r = rp::time_parts(tiny_deepseek(), deepseek_base(), t);
  EXPECT_EQ(count_part(r, rp::Part::kDenseLayer), 1);
  EXPECT_EQ(count_part(r, rp::Part::kMoeLayer), 1);
  for (const auto& m : r.measurements) EXPECT_GT(m.seconds, 0) << rp::part_name(m.part);
  // The optimizer row is the MoE stack's: every routed expert, the shared one, MLA and router
  // weights; the score-correction bias (256 values) is a buffer, set by the balancing rule and
  // not by AdamW, while the cost model counts it with the router.
  for (const auto& m : r.measurements)
    if (m.part == rp::Part::kOptimizer)
      EXPECT_DOUBLE_EQ(m.params,
                       static_cast<double>(rp::layer_params(tiny_deepseek(), true).total - 256));
  // Fewer physical experts than routed ones: routing still over 256, weights shared modulo.
  t.expert_slots = 16;
  auto r2 = rp::time_parts(tiny_deepseek(), deepseek_base(), t);
  for (const auto& m : r2.measurements)
    if (m.part == rp::Part::kOptimizer)
      EXPECT_LT(m.params, static_cast<double>(rp::layer_params(tiny_deepseek(), true).total));
}

TEST(ReplayTorchGpu, DeepSeekLayerOnCuda) {
  if (!audit::kernels::cuda_available() || !torch::cuda::is_available())
    GTEST_SKIP() << "no CUDA device: " << audit::kernels::cuda_unavailable_reason();
  rp::TimingOptions t;
  t.device = "cuda";
  t.layers = 1;
  t.warmup = 1;
  t.steps = 2;
  t.seq_lens = {256};
  t.claimed_lens = {256};
  auto r = rp::time_parts(tiny_deepseek(), deepseek_base(), t);
  EXPECT_EQ(r.dtype, "bf16 autocast");
  EXPECT_EQ(count_part(r, rp::Part::kMoeLayer), 1);
}

TEST(ReplayTorch, ShrinkKeepsRoutingAndDividesWidths) {
  audit::ledger::ArchSpec q;
  q.vocab = 152064;
  q.hidden = 5120;
  q.layers = 64;
  q.heads = 40;
  q.kv_heads = 8;
  q.head_dim = 128;
  q.ffn = 27648;
  auto s = rp::shrink_arch(q, 16);
  EXPECT_EQ(s.hidden, 320);
  EXPECT_EQ(s.ffn, 1728);
  EXPECT_EQ(s.vocab, 9504);
  EXPECT_EQ(s.heads, 3);
  EXPECT_EQ(s.heads % s.kv_heads, 0);
  EXPECT_EQ(s.layers, 64);
  auto d = rp::shrink_arch(tiny_deepseek(), 2);
  EXPECT_EQ(d.routed_experts, 256);
  EXPECT_EQ(d.top_k, 8);
  EXPECT_EQ(d.kv_heads, d.heads);  // MLA: every head its own key
  EXPECT_THROW(rp::shrink_arch(q, 0), std::invalid_argument);
}

// The method against reality: replay 1 of 4 layers for a few steps, then train the whole model
// with train::Trainer over the same tokens. The goal is 15%; on this shared 2-core machine the
// test allows 50% and prints (and writes) the measured error.
TEST(ReplayTorch, SelfCheckPredictsARealTrainingRun) {
  torch::set_num_threads(1);
  auto o = rp::default_self_check();
  o.samples = 32;
  o.seq_len = 128;
  o.batch = 8;
  o.replay_layers = 1;
  o.replay_warmup = 2;
  o.replay_steps = 5;
  auto r = rp::self_check(o);
  std::printf("[self-check] predicted %.4f s, measured %.4f s, error %+.1f%% (%lld steps)\n",
              r.predicted_s, r.measured_s, 100 * r.error, static_cast<long long>(r.steps));
  std::ofstream(std::string(audit::testing::build_dir()) + "/replay_self_check.json") << r.to_json().dump(2);
  EXPECT_EQ(r.steps, 4);
  EXPECT_GT(r.predicted_s, 0);
  EXPECT_GT(r.measured_s, 0);
  EXPECT_LT(std::fabs(r.error), 0.5) << "prediction error " << 100 * r.error << "%";
}

TEST(ReplayTorch, CliReplaysS1AtReducedShapesIntoTheLedger) {
  const audit::testing::TempDir dir("audit_replay_cli");
  const std::string db = dir.file("audit.db");
  const std::string recipe = std::string(audit::testing::source_dir()) + "/recipes/s1.toml";
  auto [code, out] = audit::testing::run_audit(
      "replay " + recipe + " --ledger " + db +
      " --shrink 32 --seq-shrink 16 --set replay.seq_lens=[512,1024]"
      " --layers 1 --steps 1 --warmup 0 --threads 1 --quiet");
  ASSERT_TRUE(code == 0 || code == 1) << out;  // 1 = the claim is faster than the band
  EXPECT_NE(out.find("REDUCED SHAPES"), std::string::npos) << out;
  EXPECT_NE(out.find("predicted wall time"), std::string::npos) << out;
  audit::ledger::Ledger L(db);
  const auto run = L.latest_run();
  ASSERT_GT(run, 0);
  auto art = L.artifact(run, "replay");
  ASSERT_TRUE(art.has_value());
  EXPECT_EQ((*art)["timing"]["layers_timed"], 1);
  EXPECT_TRUE((*art)["reduced_shapes"].get<bool>());
  EXPECT_GT((*art)["prediction"]["wall_hours"][1].get<double>(), 0);
  EXPECT_EQ(L.verdicts(run).size(), 1u);
  EXPECT_EQ(L.stages(run).at(0).name, "replay");
  EXPECT_EQ(L.run(run)->status, audit::ledger::RunStatus::succeeded);

  const auto [bad_code, bad] = audit::testing::run_audit(
      "replay " + recipe + " --ledger " + db + " --set hardware.gpu_type=TPU-v9 --quiet");
  EXPECT_EQ(bad_code, 2) << bad;
  EXPECT_NE(bad.find("hardware.gpu_type"), std::string::npos) << bad;
  EXPECT_NE(bad.find("s1.toml"), std::string::npos) << bad;
}

}  // namespace
