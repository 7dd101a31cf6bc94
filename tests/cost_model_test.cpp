// Tests of the cost model: parameter counts computed from architectures against published
// totals (Qwen2.5-32B, DeepSeek-V3, Llama-2-70B), FLOPs formulas, the MFU verdict, the hardware
// table and CPU parsing, price bands and overrides, and the cost rows built for the ledger.
#include <gtest/gtest.h>

#include <stdexcept>

#include "ledger/costs/cost_model.h"

namespace L = audit::ledger;

namespace {

// Qwen2.5-32B (config.json of Qwen/Qwen2.5-32B-Instruct).
L::ArchSpec qwen25_32b() {
  L::ArchSpec a;
  a.name = "Qwen2.5-32B";
  a.vocab = 152064;
  a.hidden = 5120;
  a.layers = 64;
  a.heads = 40;
  a.kv_heads = 8;
  a.head_dim = 128;
  a.ffn = 27648;
  a.qkv_bias = true;
  a.tie_embeddings = false;
  return a;
}

// DeepSeek-V3 (config.json of deepseek-ai/DeepSeek-V3).
L::ArchSpec deepseek_v3() {
  L::ArchSpec a;
  a.name = "DeepSeek-V3";
  a.vocab = 129280;
  a.hidden = 7168;
  a.layers = 61;
  a.heads = 128;
  a.ffn = 18432;
  a.routed_experts = 256;
  a.shared_experts = 1;
  a.top_k = 8;
  a.expert_ffn = 2048;
  a.first_dense_layers = 3;
  a.router_bias = true;
  a.q_lora_rank = 1536;
  a.kv_lora_rank = 512;
  a.qk_nope_head_dim = 128;
  a.qk_rope_head_dim = 64;
  a.v_head_dim = 128;
  a.mtp_depth = 1;
  return a;
}

// Llama-2-70B (config.json of meta-llama/Llama-2-70b-hf): 68.98B parameters.
L::ArchSpec llama2_70b() {
  L::ArchSpec a;
  a.name = "Llama-2-70B";
  a.vocab = 32000;
  a.hidden = 8192;
  a.layers = 80;
  a.heads = 64;
  a.kv_heads = 8;
  a.head_dim = 128;
  a.ffn = 28672;
  return a;
}

}  // namespace

TEST(ParamCount, Qwen25_32B_Is_32_76e9) {
  const L::ParamCount p = L::count_parameters(qwen25_32b());
  EXPECT_NEAR(p.total / 1e9, 32.76, 0.01) << p.counted;
  EXPECT_EQ(p.total, p.active);  // dense
  // Exact count by hand: embedding + head + 64 x (attention with biases + SwiGLU + 2 norms) + norm.
  const int64_t per_layer = (5120LL * 5120 + 5120) + 2 * (5120LL * 1024 + 1024) + 5120LL * 5120 +
                            3LL * 5120 * 27648 + 2 * 5120;
  EXPECT_EQ(p.total, 2LL * 152064 * 5120 + 64 * per_layer + 5120);
  EXPECT_EQ(p.total, 32763876352LL);
}

TEST(ParamCount, TyingAndBiasesChangeTheCount) {
  L::ArchSpec a = qwen25_32b();
  const int64_t untied = L::count_parameters(a).total;
  a.tie_embeddings = true;
  EXPECT_EQ(untied - L::count_parameters(a).total, 152064LL * 5120);
  a.qkv_bias = false;
  a.tie_embeddings = false;
  EXPECT_EQ(untied - L::count_parameters(a).total, 64LL * (5120 + 2 * 1024));
}

TEST(ParamCount, DeepSeekV3_671B_Total_37B_Active) {
  const L::ParamCount p = L::count_parameters(deepseek_v3());
  // Published: 671B total, 37B activated per token (DeepSeek-V3 Technical Report), MTP apart
  // (the 685B Hugging Face checkpoint = 671B main + 14B MTP incl. its copy of embedding/head).
  EXPECT_NEAR(p.total / 671e9, 1.0, 0.02) << p.total;
  EXPECT_NEAR(p.active / 37e9, 1.0, 0.03) << p.active;
  EXPECT_GT(p.mtp_total, 11e9);
  EXPECT_LT(p.mtp_total, 14e9);
  EXPECT_LT(p.mtp_active, p.mtp_total);
  EXPECT_GT(p.routed_experts, 0.9 * p.total);
  EXPECT_NE(p.counted.find("MLA"), std::string::npos);
}

TEST(ParamCount, Llama2_70B) {
  const L::ParamCount p = L::count_parameters(llama2_70b());
  EXPECT_NEAR(p.total / 1e9, 68.98, 0.01);  // Llama-2-70b-hf safetensors: 68,976,648,192
  EXPECT_EQ(p.total, 68976648192LL);
}

TEST(ParamCount, InvalidSpecIsRefusedNamingTheField) {
  L::ArchSpec a = qwen25_32b();
  a.kv_heads = 7;
  try {
    L::count_parameters(a);
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("kv_heads"), std::string::npos);
  }
  L::ArchSpec m = deepseek_v3();
  m.top_k = 300;
  EXPECT_THROW(L::count_parameters(m), std::invalid_argument);
}

TEST(Flops, TrainingAndInference) {
  EXPECT_DOUBLE_EQ(L::training_flops(2e9, 1e6), 1.2e16);
  EXPECT_DOUBLE_EQ(L::training_flops(2e9, 1e6, true), 1.6e16);
  EXPECT_DOUBLE_EQ(L::inference_flops(2e9, 1e3), 4e12);
  // s1 base: Qwen2.5-32B on 18T tokens ~= 3.5e24 FLOP.
  const double n = static_cast<double>(L::count_parameters(qwen25_32b()).total);
  EXPECT_NEAR(L::training_flops(n, 18e12) / 1e24, 3.54, 0.01);
  // The attention term grows with sequence length.
  EXPECT_DOUBLE_EQ(L::attention_training_flops_per_token(qwen25_32b(), 1000),
                   12.0 * 64 * 40 * 128 * 1000);
}

TEST(Mfu, VerdictThresholds) {
  EXPECT_EQ(L::judge_mfu(1.2).verdict, "impossible");
  EXPECT_EQ(L::judge_mfu(0.7).verdict, "implausible");
  EXPECT_EQ(L::judge_mfu(0.6).verdict, "plausible");
  EXPECT_EQ(L::judge_mfu(0.35).verdict, "plausible");
  EXPECT_EQ(L::judge_mfu(0).verdict, "unknown");
  EXPECT_FALSE(L::judge_mfu(1.2).reason.empty());
  EXPECT_NE(L::judge_mfu(0.7).reason.find("60%"), std::string::npos);
  EXPECT_DOUBLE_EQ(L::implied_mfu(1e18, 10, 100, 1e15), 1e18 / (10 * 100 * 1e15));
  EXPECT_EQ(L::implied_mfu(1e18, 0, 100, 1e15), 0);
  EXPECT_NEAR(L::gpu_hours_for(3.6e18, 1e15, 0.5), 2.0, 1e-12);
}

TEST(Mfu, DeepSeekV3ImpliesAbout35PercentOfH800Bf16Peak) {
  const L::ParamCount p = L::count_parameters(deepseek_v3());
  const auto h800 = L::find_hardware("H800");
  ASSERT_TRUE(h800);
  EXPECT_NEAR(h800->bf16_dense_flops, 989e12, 1e12);
  const double mfu = L::implied_mfu(L::training_flops(static_cast<double>(p.active), 14.8e12),
                                    1, 2.788e6 * 3600, h800->bf16_dense_flops);
  EXPECT_GT(mfu, 0.30);
  EXPECT_LT(mfu, 0.40);
  EXPECT_EQ(L::judge_mfu(mfu).verdict, "plausible");
}

TEST(Hardware, TableRowsHaveSourcesAndDatasheetFigures) {
  ASSERT_EQ(L::gpu_table().size(), 4u);
  for (const auto& h : L::gpu_table()) {
    EXPECT_FALSE(h.source.empty()) << h.id;
    EXPECT_GT(h.bf16_dense_flops, 0) << h.id;
    EXPECT_GT(h.memory_bw_bytes_s, 0) << h.id;
    EXPECT_GT(h.tdp_w, 0) << h.id;
    EXPECT_FALSE(h.interconnect.empty()) << h.id;
    EXPECT_FALSE(h.estimated) << h.id;
  }
  auto h100 = L::find_hardware("h100 sxm");
  auto h800 = L::find_hardware("H800-SXM");
  auto a100 = L::find_hardware("A100");
  auto h200 = L::find_hardware("H200");
  ASSERT_TRUE(h100 && h800 && a100 && h200);
  EXPECT_DOUBLE_EQ(h100->bf16_dense_flops, h800->bf16_dense_flops);
  EXPECT_NEAR(h100->fp8_dense_flops, 2 * h100->bf16_dense_flops, 1e12);
  EXPECT_DOUBLE_EQ(h800->nvlink_bytes_s, 400e9);
  EXPECT_DOUBLE_EQ(h100->nvlink_bytes_s, 900e9);
  EXPECT_DOUBLE_EQ(a100->bf16_dense_flops, 312e12);
  EXPECT_EQ(a100->fp8_dense_flops, 0);
  EXPECT_GT(h200->memory_bw_bytes_s, h100->memory_bw_bytes_s);
  EXPECT_FALSE(L::find_hardware("TPU v5"));
  EXPECT_FALSE(L::find_hardware(""));
}

TEST(Hardware, CpuFromCpuinfoEstimatesPeak) {
  const std::string text =
      "processor\t: 0\nmodel name\t: Test CPU 9000\ncpu MHz\t\t: 2000.000\nphysical id\t: 0\n"
      "core id\t\t: 0\nflags\t\t: fpu sse avx avx2 fma\n\n"
      "processor\t: 1\nmodel name\t: Test CPU 9000\ncpu MHz\t\t: 2000.000\nphysical id\t: 0\n"
      "core id\t\t: 0\nflags\t\t: fpu sse avx avx2 fma\n\n"
      "processor\t: 2\nmodel name\t: Test CPU 9000\ncpu MHz\t\t: 2000.000\nphysical id\t: 0\n"
      "core id\t\t: 1\nflags\t\t: fpu sse avx avx2 fma\n\n";
  L::Hardware h = L::cpu_from_cpuinfo(text, 0);
  EXPECT_EQ(h.name, "Test CPU 9000");
  EXPECT_EQ(h.cores, 2);  // two physical cores, three logical processors
  EXPECT_EQ(h.flops_per_cycle, 32);
  EXPECT_DOUBLE_EQ(h.fp32_flops, 2 * 2e9 * 32);
  EXPECT_DOUBLE_EQ(h.bf16_dense_flops, h.fp32_flops);
  EXPECT_TRUE(h.estimated);
  EXPECT_NE(h.source.find("estimated"), std::string::npos);
  // The affinity cap wins when smaller.
  EXPECT_EQ(L::cpu_from_cpuinfo(text, 1).cores, 1);
  // AVX-512 doubles the FLOP per cycle.
  std::string t512 = text;
  for (size_t pos = 0; (pos = t512.find("fma\n", pos)) != std::string::npos; pos += 12)
    t512.replace(pos, 4, "fma avx512f\n");
  EXPECT_EQ(L::cpu_from_cpuinfo(t512, 0).flops_per_cycle, 64);
}

TEST(Hardware, ThisCpuIsReadFromProc) {
  const L::Hardware& h = L::this_cpu();
  EXPECT_EQ(h.kind, "cpu");
  EXPECT_TRUE(h.estimated);
  EXPECT_FALSE(h.source.empty());
  if (h.clock_hz > 0) {
    EXPECT_GT(h.cores, 0);
    EXPECT_GT(h.fp32_flops, 1e9);
  }
  EXPECT_EQ(L::find_hardware("cpu")->name, h.name);
}

TEST(Prices, DefaultsAreOrderedBandsWithSources) {
  const L::PriceTable t = L::PriceTable::defaults();
  for (const auto& r : t.all()) {
    EXPECT_TRUE(r.band.ordered()) << r.key;
    EXPECT_GT(r.band.high, 0) << r.key;
    EXPECT_FALSE(r.source.empty()) << r.key;
    EXPECT_FALSE(r.date.empty()) << r.key;
  }
  for (const auto& h : L::gpu_table()) EXPECT_TRUE(t.has(L::gpu_hour_key(h.id))) << h.id;
  for (const char* k : {L::price_keys::kCpuHour, L::price_keys::kTeacherOutput,
                        L::price_keys::kFrontierOutput, L::price_keys::kKwh,
                        L::price_keys::kExpertHour, L::price_keys::kPue, L::price_keys::kBaseMfu})
    EXPECT_TRUE(t.has(k)) << k;
  EXPECT_DOUBLE_EQ(t.get("gpu_hour.H800-SXM").band.mid, 2.0);  // DeepSeek's own assumption
  EXPECT_THROW(t.get("gpu_hour.TPU"), std::out_of_range);
}

TEST(Prices, OverrideValidates) {
  L::PriceTable t = L::PriceTable::defaults();
  t.set("gpu_hour.H100-SXM", {1, 2, 3}, "my quote", "2026-01");
  EXPECT_TRUE(t.get("gpu_hour.H100-SXM").overridden);
  EXPECT_DOUBLE_EQ(t.get("gpu_hour.H100-SXM").band.mid, 2);
  EXPECT_EQ(t.get("gpu_hour.H100-SXM").source, "my quote");
  EXPECT_THROW(t.set("gpu_hour.H100-SXM", {3, 2, 1}, ""), std::invalid_argument);
  EXPECT_THROW(t.set("no_such_key", {1, 2, 3}, ""), std::invalid_argument);
  EXPECT_THROW(t.set("pue", {0.9, 1.2, 1.5}, ""), std::invalid_argument);
  EXPECT_THROW(t.set("mfu.base", {0.3, 0.5, 1.5}, ""), std::invalid_argument);
  EXPECT_THROW(t.set("kwh", {-1, 0, 1}, ""), std::invalid_argument);
}

TEST(CostItems, MeasuredStagesFailedRunsClaimBaseAndExtras) {
  const L::PriceTable prices = L::PriceTable::defaults();
  L::CostInputs in;
  L::RunMetering run;
  run.run_id = 7;
  run.status = "succeeded";
  run.gpu_type = "H100-SXM";
  L::StageInfo sft;
  sft.name = "sft";
  sft.gpu_count = 2;
  sft.wall_s = 1800;
  sft.gpu_s = 3600;
  sft.cpu_s = 900;
  sft.energy_j = 3.6e6;  // 1 kWh
  sft.power_metered = true;
  sft.status = "succeeded";
  L::StageInfo eval;
  eval.name = "eval";
  eval.cpu_s = 7200;
  eval.status = "succeeded";
  run.stages = {sft, eval};
  in.final_run = run;
  L::RunMetering failed = run;
  failed.run_id = 6;
  failed.status = "aborted";
  failed.stages = {sft};
  failed.stages[0].power_metered = false;
  in.failed_runs = {failed};
  L::ClaimFigures claim;
  claim.name = "s1";
  claim.headline = "under $50";
  claim.usd = 50;
  claim.gpu_type = "H100";
  claim.gpu_count = 16;
  claim.wall_hours = 26.0 / 60;
  claim.source = "s1 paper";
  in.claim = claim;
  L::BaseModelEstimate base;
  base.name = "Qwen2.5-32B";
  base.n_active = 32.76e9;
  base.tokens = 18e12;
  base.tokens_source = "Qwen2.5 report";
  base.gpu_type = "H100-SXM";
  base.mfu = prices.get("mfu.base").band;
  base.mfu_source = "table";
  in.base = base;
  L::ExtraItem teacher;
  teacher.category = "data_generation";
  teacher.description = "teacher traces";
  teacher.quantity = 100;
  teacher.quantity_low = 50;
  teacher.quantity_high = 200;
  teacher.unit = "1M tokens";
  teacher.provenance = L::Provenance::estimated;
  teacher.formula = "59029 x tokens per trace / 1e6";
  in.extras = {teacher};

  const auto items = L::build_cost_items(in, prices);
  int final_gpu = 0, failed_n = 0, energy = 0, co2 = 0, claimed = 0, compute = 0, base_n = 0;
  for (const auto& c : items) {
    EXPECT_FALSE(c.formula.empty()) << c.description;
    EXPECT_FALSE(c.source.empty()) << c.description;
    if (c.category == "final_run" && c.unit == "GPU-hour") {
      ++final_gpu;
      EXPECT_EQ(c.provenance, L::Provenance::measured);
      EXPECT_DOUBLE_EQ(c.quantity, 1.0);
      EXPECT_DOUBLE_EQ(c.price_mid, 2.99);
    }
    if (c.category == "final_run" && c.unit == "CPU-hour") EXPECT_FALSE(L::in_full_total(c));
    if (c.category == "evaluation") {
      EXPECT_DOUBLE_EQ(c.quantity, 2.0);
      EXPECT_TRUE(L::in_full_total(c));
    }
    if (c.category == "failed_runs") ++failed_n;
    if (c.category == "energy") {
      ++energy;
      EXPECT_FALSE(L::in_full_total(c));
      EXPECT_DOUBLE_EQ(L::quantity_band(c).low, 1.1);
    }
    if (c.category == "co2") ++co2;
    if (c.category == "claimed") ++claimed;
    if (c.category == "claimed_compute") {
      ++compute;
      EXPECT_EQ(c.provenance, L::Provenance::declared);
      EXPECT_NEAR(c.quantity, 6.9333, 1e-3);
      EXPECT_FALSE(L::in_full_total(c));
    }
    if (c.category == "base_model") {
      ++base_n;
      EXPECT_EQ(c.provenance, L::Provenance::estimated);
      const L::Band q = L::quantity_band(c);
      EXPECT_LT(q.low, q.mid);  // higher MFU -> fewer GPU-hours
      EXPECT_LT(q.mid, q.high);
      EXPECT_NEAR(c.inputs["flops"].get<double>(), 6 * 32.76e9 * 18e12, 1e20);
    }
  }
  EXPECT_EQ(final_gpu, 1);
  EXPECT_EQ(failed_n, 2);  // GPU + CPU rows of the aborted run; no power metered there
  EXPECT_EQ(energy, 1);
  EXPECT_EQ(co2, 1);
  EXPECT_EQ(claimed, 1);
  EXPECT_EQ(compute, 1);
  EXPECT_EQ(base_n, 1);

  const L::CostTotals t = L::cost_totals(items);
  EXPECT_TRUE(t.claimed_known);
  EXPECT_DOUBLE_EQ(t.claimed.mid, 50);
  EXPECT_DOUBLE_EQ(t.final_run.mid, 2.99);  // GPU-hour only; its CPU time is inside that price
  EXPECT_GT(t.full.mid, 1e6);               // the base model dominates
  EXPECT_LT(t.full.low, t.full.mid);
  EXPECT_LT(t.full.mid, t.full.high);
  EXPECT_TRUE(t.by_category.contains("base_model"));
  EXPECT_FALSE(t.by_category.contains("claimed"));
  EXPECT_EQ(L::cost_item_json(items.front())["provenance"], "declared");
}

TEST(CostItems, ClaimAsFinalRunAndErrors) {
  const L::PriceTable prices = L::PriceTable::defaults();
  L::CostInputs in;
  L::ClaimFigures c;
  c.name = "x";
  c.gpu_type = "H800";
  c.gpu_hours = 1000;
  in.claim = c;
  in.claim_as_final_run = true;
  auto items = L::build_cost_items(in, prices);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].category, "final_run");
  auto t = L::cost_totals(items);
  EXPECT_DOUBLE_EQ(t.final_run.mid, 2000);
  EXPECT_TRUE(t.claimed_known);
  EXPECT_DOUBLE_EQ(t.claimed.mid, 2000);
  EXPECT_DOUBLE_EQ(t.full.low, 1500);

  in.claim->gpu_type = "TPU";
  EXPECT_THROW(L::build_cost_items(in, prices), std::invalid_argument);

  L::CostInputs bad;
  L::RunMetering r;
  L::StageInfo s;
  s.name = "sft";
  s.gpu_s = 10;
  r.stages = {s};
  bad.final_run = r;  // GPU seconds but no GPU type
  EXPECT_THROW(L::build_cost_items(bad, prices), std::invalid_argument);

  L::ExtraItem e;
  e.description = "odd";
  e.unit = "furlongs";
  EXPECT_THROW(L::price_extra(e, prices), std::invalid_argument);
  e.unit = "hour";
  e.quantity = 10;
  EXPECT_DOUBLE_EQ(L::price_extra(e, prices).price_mid, 100);
}

TEST(CostItems, StageCategories) {
  EXPECT_EQ(L::stage_category("sft"), "final_run");
  EXPECT_EQ(L::stage_category("sft-seed1"), "final_run");
  EXPECT_EQ(L::stage_category("launch"), "final_run");  // the claimant's own command
  EXPECT_EQ(L::stage_category("eval-launch"), "evaluation");
  EXPECT_EQ(L::stage_category("repeat-sft-seed2"), "evaluation");  // seed repeats: spread only
  EXPECT_EQ(L::stage_category("grpo"), "final_run");
  EXPECT_EQ(L::stage_category("pretrain"), "base_model");
  EXPECT_EQ(L::stage_category("distill"), "data_generation");
  EXPECT_EQ(L::stage_category("select"), "filtering");
  EXPECT_EQ(L::stage_category("eval"), "evaluation");
  EXPECT_EQ(L::stage_category("mystery"), "other");
}
