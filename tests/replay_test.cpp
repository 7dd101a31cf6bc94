// Tests of the replay extrapolation math (reproduce/replay/replay.h) against hand-computed cases: the
// roofline translation, the work model, the length profile, the collectives, an end-to-end
// prediction with its band and verdict, and the claim side read from the shipped recipes.
#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include "reproduce/replay/replay.h"
#include "tests/support/support.h"

namespace {

using audit::replay::Part;
namespace rp = audit::replay;

// Hidden 8, 2 query heads of 4, 1 KV head, FFN 16, vocab 10, 3 layers, q/k/v biases.
// Per layer: q 8*8+8 = 72, k 8*4+4 = 36, v 36, o 64 -> 208; SwiGLU 3*8*16 = 384; norms 16.
audit::ledger::ArchSpec tiny_dense() {
  audit::ledger::ArchSpec a;
  a.name = "tiny";
  a.vocab = 10;
  a.hidden = 8;
  a.layers = 3;
  a.heads = 2;
  a.kv_heads = 1;
  a.head_dim = 4;
  a.ffn = 16;
  a.qkv_bias = true;
  return a;
}

TEST(ReplayMath, RooflineTranslationByHand) {
  rp::Peak here{"here", 1e12, 1e11, ""};
  rp::Peak there{"there", 1e13, 1e12, ""};
  rp::Work timed{1e12, 1e11};    // roofline 1 s + 1 s = 2 s
  rp::Work claimed{2e12, 1e11};  // there: 0.2 s + 0.1 s
  auto t = rp::translate(4.0, timed, here, claimed, there);
  EXPECT_DOUBLE_EQ(t.efficiency, 0.5);             // 2 s / 4 s
  EXPECT_DOUBLE_EQ(t.compute_fraction_here, 0.5);  // 1 s of 2 s
  EXPECT_NEAR(t.compute_s, 0.4, 1e-12);            // 0.2 / 0.5
  EXPECT_NEAR(t.memory_s, 0.2, 1e-12);             // 0.1 / 0.5
  EXPECT_NEAR(t.seconds, 0.6, 1e-12);
  // Same as scaling each part of the measured time by its own ratio:
  // 4 s * 0.5 * (2e12/1e12) * (1e12/1e13) + 4 s * 0.5 * 1 * (1e11/1e12) = 0.4 + 0.2.
  EXPECT_THROW(rp::translate(0.0, timed, here, claimed, there), std::invalid_argument);
  EXPECT_THROW(rp::translate(1.0, timed, rp::Peak{"x", 0, 1, ""}, claimed, there),
               std::invalid_argument);
}

TEST(ReplayMath, WorkModelByHand) {
  const auto a = tiny_dense();
  const auto lp = rp::layer_params(a, false);
  EXPECT_EQ(lp.total, 608);
  EXPECT_EQ(lp.active, 608);
  // L = 10, batch 2 (20 tokens): 6*608*20 = 72960; causal attention 0.5*12*2*4*10 per token
  // * 20 = 9600. Bytes (fp32): 4 * (4*608 + 34*8*20) = 31488.
  auto w = rp::layer_work(a, false, 10, 2, 4, false);
  EXPECT_DOUBLE_EQ(w.flops, 82560.0);
  EXPECT_DOUBLE_EQ(w.bytes, 31488.0);
  auto wr = rp::layer_work(a, false, 10, 2, 4, true);  // recompute: 4/3 FLOPs, one more read
  EXPECT_DOUBLE_EQ(wr.flops, 82560.0 * 4 / 3);
  EXPECT_DOUBLE_EQ(wr.bytes, 4.0 * (5 * 608 + 34 * 8 * 20));
  // Head: 6*10*8*20 = 9600 FLOPs; 4*(4*80 + 2*8*20) + 12*10*20 = 4960 bytes.
  auto h = rp::embed_head_work(a, 10, 2, 4);
  EXPECT_DOUBLE_EQ(h.flops, 9600.0);
  EXPECT_DOUBLE_EQ(h.bytes, 4960.0);
  auto o = rp::optimizer_work(1000);
  EXPECT_DOUBLE_EQ(o.bytes, 28000.0);
  EXPECT_THROW(rp::layer_params(a, true), std::invalid_argument);
}

TEST(ReplayMath, MoeLayerCountsActiveAndTouchedExperts) {
  auto a = tiny_dense();
  a.qkv_bias = false;
  a.routed_experts = 16;
  a.shared_experts = 1;
  a.top_k = 2;
  a.expert_ffn = 4;
  a.first_dense_layers = 1;
  a.router_bias = true;
  // GQA without biases: q 64, k 32, v 32, o 64 = 192; expert 3*8*4 = 96;
  // router 16*8 + 16 = 144; norms 16.
  const auto lp = rp::layer_params(a, true);
  EXPECT_EQ(lp.total, 192 + 17 * 96 + 144 + 16);
  EXPECT_EQ(lp.active, 192 + 3 * 96 + 144 + 16);
  // One token touches top_k = 2 of 16 routed experts: 14 experts' weights are not read.
  auto w1 = rp::layer_work(a, true, 1, 1, 2, false);
  EXPECT_DOUBLE_EQ(w1.bytes, 2.0 * (4.0 * (lp.total - 14 * 96) + 34.0 * 8));
  const auto dense = rp::layer_params(a, false);
  EXPECT_EQ(dense.total, 192 + 3 * 8 * 16 + 16);
}

TEST(ReplayMath, LengthProfile) {
  EXPECT_NEAR(rp::normal_quantile(0.975), 1.959964, 1e-5);
  EXPECT_NEAR(rp::normal_quantile(0.5), 0.0, 1e-9);
  // A log-normal with sigma 0.5 and mean 1000 has p90 = 1000 * exp(1.28155*0.5 - 0.125).
  const double p90 = 1000 * std::exp(rp::normal_quantile(0.9) * 0.5 - 0.125);
  EXPECT_NEAR(rp::lognormal_sigma(1000, p90), 0.5, 1e-9);
  EXPECT_DOUBLE_EQ(rp::lognormal_sigma(1000, 0), 0.0);  // p90 unknown: a point
  auto q = rp::length_quantiles(1000, 0, 0, 4);
  ASSERT_EQ(q.size(), 4u);
  for (double v : q) EXPECT_DOUBLE_EQ(v, 1000.0);
  // With spread, the quantiles average close to the mean (64 of them) and are clipped at max.
  auto s = rp::length_quantiles(1000, p90, 0, 64);
  double sum = 0;
  for (double v : s) sum += v;
  EXPECT_NEAR(sum / 64, 1000.0, 15.0);
  auto c = rp::length_quantiles(1000, p90, 1200, 64);
  for (double v : c) EXPECT_LE(v, 1200.0);
  EXPECT_DOUBLE_EQ(c.back(), 1200.0);
}

TEST(ReplayCommCheck, LinkBytesPerCollectiveKind) {
  // Ring: all-reduce 2 (G-1)/G of the tensor crosses each rank's link; the others (G-1)/G.
  EXPECT_DOUBLE_EQ(rp::link_bytes_of("all_reduce", 1000, 2), 1000.0);
  EXPECT_DOUBLE_EQ(rp::link_bytes_of("all_reduce", 1000, 4), 1500.0);
  EXPECT_DOUBLE_EQ(rp::link_bytes_of("all_gather", 1000, 4), 750.0);
  EXPECT_DOUBLE_EQ(rp::link_bytes_of("reduce_scatter", 1000, 2), 500.0);
  EXPECT_DOUBLE_EQ(rp::link_bytes_of("broadcast", 1000, 2), 500.0);
  EXPECT_DOUBLE_EQ(rp::link_bytes_of("all_reduce", 1000, 1), 0.0);
  EXPECT_THROW(rp::link_bytes_of("all_to_all", 1000, 2), std::invalid_argument);
  // DDP's all-reduce of every parameter once is collective_bytes_per_step's ddp figure.
  EXPECT_DOUBLE_EQ(rp::link_bytes_of("all_reduce", 4000, 4),
                   rp::collective_bytes_per_step("ddp", 1000, 4, 4));
}

TEST(ReplayCommCheck, CalibrationRecoversLatencyAndBandwidth) {
  // Times made from a known link: 1 GB/s crossing each rank's link, 100 us per call, 2 ranks.
  const double B = 1e9, a = 1e-4, small = 4096, large = 64.0 * 1024 * 1024;
  const double ts = a + rp::link_bytes_of("all_reduce", small, 2) / B;
  const double tl = a + rp::link_bytes_of("all_reduce", large, 2) / B;
  const auto c = rp::calibrate_link(2, small, ts, large, tl);
  EXPECT_NEAR(c.bytes_s, B, B * 1e-9);
  EXPECT_NEAR(c.latency_s, a, 1e-12);
  EXPECT_DOUBLE_EQ(c.plain_bytes_s, large / tl);  // no latency term: a little slower
  EXPECT_LT(c.plain_bytes_s, c.bytes_s);
  // 4 ranks: the link carries 2 * 3/4 of the buffer.
  const double tl4 = a + 1.5 * large / B, ts4 = a + 1.5 * small / B;
  EXPECT_NEAR(rp::calibrate_link(4, small, ts4, large, tl4).bytes_s, B, B * 1e-9);
  // A small buffer slower than its bandwidth share gives no negative latency.
  EXPECT_GE(rp::calibrate_link(2, small, 1e-9, large, tl).latency_s, 0.0);
  EXPECT_THROW(rp::calibrate_link(1, small, ts, large, tl), std::invalid_argument);
  EXPECT_THROW(rp::calibrate_link(2, small, tl, large, ts), std::invalid_argument);  // not slower
  EXPECT_THROW(rp::calibrate_link(2, large, ts, small, tl), std::invalid_argument);  // not larger
  EXPECT_THROW(rp::calibrate_link(2, small, 0, large, tl), std::invalid_argument);
}

TEST(ReplayCommCheck, ALinePerKindFitsEverySize) {
  // all_gather made from 0.2 GB/s and 300 us per call, 2 ranks, at five sizes: recovered.
  const double B = 2e8, a = 3e-4;
  std::vector<double> sizes{4096, 65536, 1 << 20, 16 << 20, 64 << 20}, secs;
  for (double x : sizes) secs.push_back(a + rp::link_bytes_of("all_gather", x, 2) / B);
  const auto k = rp::fit_kind_link("all_gather", 2, sizes, secs);
  EXPECT_NEAR(k.bytes_s, B, B * 1e-6);
  EXPECT_NEAR(k.latency_s, a, 1e-9);
  EXPECT_EQ(k.points, 5);
  // One slow small point (a first call's set-up) moves the line, not the bandwidth by much.
  secs[0] *= 8;
  const auto noisy = rp::fit_kind_link("all_gather", 2, sizes, secs);
  EXPECT_NEAR(noisy.bytes_s, B, 0.2 * B);
  EXPECT_THROW(rp::fit_kind_link("all_gather", 2, {4096}, {1e-3}), std::invalid_argument);
  EXPECT_THROW(rp::fit_kind_link("all_gather", 2, {4096, 8192}, {2e-3, 1e-3}),
               std::invalid_argument);  // slower for less: no bandwidth
  EXPECT_THROW(rp::fit_kind_link("all_gather", 2, {4096, 0}, {1e-3, 1e-3}), std::invalid_argument);
}

TEST(ReplayCommCheck, TrafficByKindAddsUpToTheStepsBytes) {
  rp::StepCollectives sc;
  sc.ddp_buckets = 3;
  sc.layers = 4;
  sc.flats_per_unit = 2;
  sc.norm_all_reduce = true;
  // ddp: every gradient all-reduced once, in the buckets.
  auto ddp = rp::step_traffic_by_kind("ddp", 1000, 100, 2, 4, sc);
  ASSERT_EQ(ddp.size(), 1u);
  EXPECT_DOUBLE_EQ(ddp["all_reduce"].calls, 3);
  EXPECT_DOUBLE_EQ(ddp["all_reduce"].link_bytes, rp::collective_bytes_per_step("ddp", 1000, 2, 4));
  // fsdp: layers gathered twice, the root once; everything reduce-scattered once; the norm.
  auto f = rp::step_traffic_by_kind("fsdp_full_shard", 1000, 100, 2, 4, sc);
  EXPECT_DOUBLE_EQ(f["all_gather"].calls, 2 * (2 * 4 + 1));
  EXPECT_DOUBLE_EQ(f["reduce_scatter"].calls, 2 * (4 + 1));
  EXPECT_DOUBLE_EQ(f["all_reduce"].calls, 1);
  EXPECT_DOUBLE_EQ(f["all_gather"].calls + f["reduce_scatter"].calls + f["all_reduce"].calls,
                   rp::collective_calls_per_step("fsdp_full_shard", 2, sc));
  EXPECT_DOUBLE_EQ(f["all_gather"].link_bytes, 0.5 * 4 * (2 * 900 + 100));
  EXPECT_DOUBLE_EQ(f["reduce_scatter"].link_bytes, 0.5 * 4 * 1000);
  EXPECT_TRUE(rp::step_traffic_by_kind("ddp", 1000, 100, 1, 4, sc).empty());
  EXPECT_THROW(rp::step_traffic_by_kind("zero3", 1000, 100, 2, 4, sc), std::invalid_argument);
  // Seconds: calls x latency + bytes / bandwidth per kind; a kind without a line is named.
  std::map<std::string, rp::KindLink> links;
  links["all_gather"].bytes_s = 1e3;
  links["all_gather"].latency_s = 0.01;
  links["reduce_scatter"].bytes_s = 2e3;
  links["reduce_scatter"].latency_s = 0.02;
  links["all_reduce"].bytes_s = 1e6;
  links["all_reduce"].latency_s = 0.5;
  const double want = 18 * 0.01 + 3800.0 / 1e3 + 10 * 0.02 + 2000.0 / 2e3 + 0.5 +
                      rp::link_bytes_of("all_reduce", 8, 2) / 1e6;
  EXPECT_NEAR(rp::predict_step_comm_by_kind(f, links), want, 1e-12);
  links.erase("reduce_scatter");
  EXPECT_THROW(rp::predict_step_comm_by_kind(f, links), std::invalid_argument);
}

TEST(ReplayCommCheck, CallsPerStep) {
  // DDP: one all-reduce per bucket; each parameter group is cut into 25 MiB buckets of its own.
  const double bucket = 25.0 * 1024 * 1024;
  EXPECT_DOUBLE_EQ(rp::ddp_bucket_count({3.3e6, 4608}, bucket), 2.0);
  EXPECT_DOUBLE_EQ(rp::ddp_bucket_count({38e6, 0}, bucket), 2.0);
  EXPECT_DOUBLE_EQ(rp::ddp_bucket_count({2 * bucket, 1}, bucket), 3.0);
  EXPECT_THROW(rp::ddp_bucket_count({1e6}, 0), std::invalid_argument);
  rp::StepCollectives s;
  s.ddp_buckets = 2;
  EXPECT_DOUBLE_EQ(rp::collective_calls_per_step("ddp", 2, s), 2.0);
  EXPECT_DOUBLE_EQ(rp::collective_calls_per_step("ddp", 1, s), 0.0);
  // FSDP: per layer two gathers and a reduce-scatter, the root one of each, per flat parameter.
  s.layers = 4;
  EXPECT_DOUBLE_EQ(rp::collective_calls_per_step("fsdp_full_shard", 2, s), 14.0);
  s.flats_per_unit = 2;
  s.norm_all_reduce = true;
  EXPECT_DOUBLE_EQ(rp::collective_calls_per_step("fsdp_full_shard", 2, s), 29.0);
  EXPECT_DOUBLE_EQ(rp::collective_calls_per_step("none", 2, s), 0.0);
  EXPECT_THROW(rp::collective_calls_per_step("zero1", 2, s), std::invalid_argument);
}

TEST(ReplayCommCheck, PredictionByHand) {
  rp::LinkCalibration link;
  link.bytes_s = 1e6;
  link.latency_s = 1e-3;
  link.plain_bytes_s = 5e5;
  // FSDP, 1000 fp32 parameters of which 100 in the root unit, 2 ranks: 3 passes of the 900 layer
  // parameters, 2 of the root's: (3 * 900 + 2 * 100) * 4 bytes / 2 = 5800 bytes per rank.
  auto f = rp::predict_step_comm("fsdp_full_shard", 1000, 100, 2, 4, 14, link);
  EXPECT_DOUBLE_EQ(f.bytes, 5800.0);
  EXPECT_DOUBLE_EQ(f.bandwidth_s, 5800.0 / 1e6);
  EXPECT_DOUBLE_EQ(f.latency_s, 14e-3);
  EXPECT_DOUBLE_EQ(f.seconds, 5800.0 / 1e6 + 14e-3);
  EXPECT_DOUBLE_EQ(f.plain_s, 6000.0 / 5e5);  // the claimed-cluster formula: 3 x everything
  // DDP: the root unit does not matter; 2 passes.
  auto d = rp::predict_step_comm("ddp", 1000, 100, 2, 4, 1, link);
  EXPECT_DOUBLE_EQ(d.bytes, 4000.0);
  EXPECT_DOUBLE_EQ(d.seconds, 4000.0 / 1e6 + 1e-3);
  EXPECT_THROW(rp::predict_step_comm("ddp", 1000, 2000, 2, 4, 1, link), std::invalid_argument);
  link.bytes_s = 0;
  EXPECT_THROW(rp::predict_step_comm("ddp", 1000, 0, 2, 4, 1, link), std::invalid_argument);
  // The self-check's error.
  EXPECT_NEAR(rp::relative_error(1.2, 1.0), 0.2, 1e-12);
}

TEST(ReplayMath, CollectivesByHand) {
  // Ring: (G-1)/G * P * bytes per pass; FSDP full shard 3 passes, DDP 2.
  EXPECT_DOUBLE_EQ(rp::collective_bytes_per_step("fsdp_full_shard", 1000, 4, 2), 4500.0);
  EXPECT_DOUBLE_EQ(rp::collective_bytes_per_step("ddp", 1000, 4, 2), 3000.0);
  EXPECT_DOUBLE_EQ(rp::collective_bytes_per_step("none", 1000, 4, 2), 0.0);
  EXPECT_DOUBLE_EQ(rp::collective_bytes_per_step("fsdp_full_shard", 1000, 1, 2), 0.0);
  EXPECT_THROW(rp::collective_bytes_per_step("tensor_magic", 1000, 4, 2), std::invalid_argument);
  auto a = tiny_dense();
  a.layers = 4;
  a.routed_experts = 16;
  a.top_k = 8;
  a.expert_ffn = 4;
  a.first_dense_layers = 1;
  a.mtp_depth = 1;
  a.hidden = 16;
  a.heads = 4;
  // 3 MoE layers + 1 MTP block = 4; node limit 4 copies; 16 * (1 + 2) bytes; x2 fwd+bwd.
  EXPECT_DOUBLE_EQ(rp::ep_bytes_per_token(a, 4, 1, 2), 4.0 * 4 * 16 * 3 * 2);
  EXPECT_DOUBLE_EQ(rp::ep_bytes_per_token(a, 0, 1, 2), 4.0 * 8 * 16 * 3 * 2);
}

// End to end: here == there and timed shapes == claimed shapes, so every measured second maps
// to one predicted second and the totals can be added up by hand.
rp::ReplayInputs hand_inputs() {
  rp::ReplayInputs in;
  in.claimed = tiny_dense();
  in.here = rp::Peak{"dev", 1e6, 1e6, ""};
  in.there = in.here;
  rp::Measurement layer;
  layer.part = Part::kDenseLayer;
  layer.timed_seq_len = layer.claimed_seq_len = 10;
  layer.seconds = 0.01;
  layer.timed = rp::layer_work(in.claimed, false, 10, 1, 2, false);
  rp::Measurement head = layer;
  head.part = Part::kEmbedHead;
  head.seconds = 0.002;
  head.timed = rp::embed_head_work(in.claimed, 10, 1, 2);
  rp::Measurement opt;
  opt.part = Part::kOptimizer;
  opt.seconds = 0.001;
  opt.params = 1992;  // the whole tiny model: DDP keeps all of it per GPU
  opt.timed = rp::optimizer_work(opt.params);
  in.measurements = {layer, head, opt};
  in.cluster.gpu_type = "dev";
  in.cluster.gpus = 2;
  in.cluster.nodes = 1;
  in.cluster.intra_bytes_s = 1e5;
  in.parallelism = "ddp";
  in.sequences = 8;
  in.steps = 2;
  in.micro_batch = 1;
  in.fixed_length = true;
  in.block_size = 10;
  in.overlap_low = 0;
  in.overlap_high = 1;
  in.gpu_hour_usd = audit::ledger::Band(1, 2, 3);
  return in;
}

TEST(ReplayMath, PredictionByHand) {
  auto in = hand_inputs();
  EXPECT_EQ(audit::ledger::count_parameters(in.claimed).total, 1992);
  auto p = rp::predict(in);
  ASSERT_EQ(p.scenarios.size(), 3u);
  // Per GPU 8 / 2 = 4 micro-batches: layers 4 * 3 * 0.01 = 0.12 s, head 4 * 0.002 = 0.008 s,
  // optimizer 2 steps * 0.001 = 0.002 s: compute 0.13 s.
  // DDP: 2 steps * 2 * (1/2) * 1992 * 2 bytes = 7968 bytes / 1e5 B/s = 0.07968 s.
  for (const auto& s : p.scenarios) {
    EXPECT_NEAR(s.layer_s, 0.12, 1e-12);
    EXPECT_NEAR(s.embed_head_s, 0.008, 1e-12);
    EXPECT_NEAR(s.optimizer_s, 0.002, 1e-12);
    EXPECT_NEAR(s.compute_s, 0.13, 1e-12);
    EXPECT_NEAR(s.comm_s, 0.07968, 1e-12);
    EXPECT_DOUBLE_EQ(s.tokens, 80.0);
  }
  EXPECT_NEAR(p.scenarios[0].wall_s, 0.13, 1e-12);            // overlap 1: comm hidden
  EXPECT_NEAR(p.scenarios[1].wall_s, 0.13 + 0.03984, 1e-12);  // overlap 0.5
  EXPECT_NEAR(p.scenarios[2].wall_s, 0.13 + 0.07968, 1e-12);  // overlap 0
  EXPECT_NEAR(p.wall_hours.mid, 0.16984 / 3600, 1e-15);
  EXPECT_NEAR(p.gpu_hours.high, 2 * 0.20968 / 3600, 1e-15);
  EXPECT_NEAR(p.cost_usd.high, 3 * 2 * 0.20968 / 3600, 1e-15);
  EXPECT_NEAR(p.cost_usd.low, 1 * 2 * 0.13 / 3600, 1e-15);
  // MFU at mid: 6 * 1992 * 80 / (2 GPUs * 0.16984 s * 1e6 FLOP/s).
  EXPECT_NEAR(p.mfu.mid, 6.0 * 1992 * 80 / (2 * 0.16984 * 1e6), 1e-9);
  // Throughput per GPU: 80 tokens / (2 GPUs x wall); the fastest case is the band's high end.
  EXPECT_NEAR(p.tokens_per_gpu_s.high, 80 / (2 * 0.13), 1e-9);
  EXPECT_NEAR(p.tokens_per_gpu_s.low, 80 / (2 * 0.20968), 1e-9);

  in.claimed_gpu_hours = 0.5 * p.gpu_hours.low;  // faster than our fastest, beyond 15% slack
  EXPECT_EQ(rp::predict(in).verdict, "not supported");
  in.claimed_gpu_hours = p.gpu_hours.mid;
  EXPECT_EQ(rp::predict(in).verdict, "supported");
  in.claimed_gpu_hours = 0.9 * p.gpu_hours.low;  // inside the slack
  EXPECT_EQ(rp::predict(in).verdict, "supported");
  in.claimed_gpu_hours = 0;
  EXPECT_EQ(rp::predict(in).verdict, "not reproducible here");
}

TEST(ReplayMath, ShrunkShapesScaleThroughTheRoofline) {
  // Timed at half the length on a device 10x slower in both roofs: the claimed time is the
  // claimed roofline divided by the efficiency measured here.
  auto in = hand_inputs();
  in.there = rp::Peak{"fast", 1e7, 1e7, ""};
  auto& layer = in.measurements[0];
  layer.timed_seq_len = 5;
  layer.timed = rp::layer_work(in.claimed, false, 5, 1, 2, false);
  const double e = rp::roofline_seconds(layer.timed, in.here) / layer.seconds;
  const auto claimed = rp::layer_work(in.claimed, false, 10, 1, 2, false);
  EXPECT_NEAR(rp::predicted_part_seconds(in, Part::kDenseLayer, 10, 1e7),
              (claimed.flops / 1e7 + claimed.bytes / 1e7) / e, 1e-15);
  // A MoE part without its own measurement borrows the dense layer's efficiency.
  EXPECT_THROW(rp::predicted_part_seconds(in, Part::kOptimizer, 10, 1e7), std::invalid_argument);
}

TEST(ReplayMath, EfficiencyInterpolatesInLogLength) {
  auto in = hand_inputs();
  auto m1 = in.measurements[0];
  auto m2 = m1;
  m2.claimed_seq_len = m2.timed_seq_len = 40;
  m2.timed = rp::layer_work(in.claimed, false, 40, 1, 2, false);
  m1.seconds = rp::roofline_seconds(m1.timed, in.here) / 0.2;  // e = 0.2 at 10
  m2.seconds = rp::roofline_seconds(m2.timed, in.here) / 0.6;  // e = 0.6 at 40
  in.measurements = {m2, m1, in.measurements[2]};
  const auto w20 = rp::layer_work(in.claimed, false, 20, 1, 2, false);
  // 20 is halfway between 10 and 40 in log length: e = 0.4.
  EXPECT_NEAR(rp::predicted_part_seconds(in, Part::kDenseLayer, 20, 1e6),
              rp::roofline_seconds(w20, in.here) / 0.4, 1e-12);
  const auto w80 = rp::layer_work(in.claimed, false, 80, 1, 2, false);
  EXPECT_NEAR(rp::predicted_part_seconds(in, Part::kDenseLayer, 80, 1e6),
              rp::roofline_seconds(w80, in.here) / 0.6, 1e-12);  // clamped at the ends
}

std::string recipe_path(const char* name) { return std::string(audit::testing::source_dir()) + "/recipes/" + name; }

TEST(ReplayRecipe, S1ClaimSide) {
  auto r = audit::recipe::load_recipe(recipe_path("s1.toml"));
  auto in = rp::inputs_from_recipe(r);
  EXPECT_EQ(in.cluster.gpu_type, "H100-SXM");
  EXPECT_EQ(in.cluster.gpus, 16);
  EXPECT_EQ(in.cluster.nodes, 2);
  EXPECT_DOUBLE_EQ(in.cluster.link_bytes_s(), 400e9 / 8);  // "ib400": InfiniBand per GPU
  EXPECT_DOUBLE_EQ(in.sequences, 5000.0);                   // 1,000 samples x 5 epochs
  EXPECT_DOUBLE_EQ(in.steps, 315.0);
  EXPECT_DOUBLE_EQ(in.micro_batch, 1.0);
  EXPECT_FALSE(in.fixed_length);  // packing = false
  EXPECT_DOUBLE_EQ(in.seq_mean.mid, 5000.0);
  EXPECT_TRUE(in.recompute);
  EXPECT_NEAR(in.claimed_gpu_hours, 16 * 26.0 / 60, 1e-9);
  EXPECT_NEAR(in.claimed_wall_hours, 26.0 / 60, 1e-9);
}

TEST(ReplayRecipe, DeepSeekV3ClaimSide) {
  auto r = audit::recipe::load_recipe(recipe_path("deepseek-v3.toml"));
  auto in = rp::inputs_from_recipe(r);
  EXPECT_EQ(in.cluster.gpus, 2048);
  EXPECT_TRUE(in.fixed_length);
  EXPECT_DOUBLE_EQ(in.sequences, 14.8e12 / 4096);
  EXPECT_DOUBLE_EQ(in.steps, std::ceil(14.8e12 / 4096 / 15360));
  EXPECT_DOUBLE_EQ(in.claimed_gpu_hours, 2664000.0);  // the pretraining phase, not the total
  EXPECT_EQ(in.topk_groups, 4);
  EXPECT_EQ(in.precision, "fp8");
}

TEST(ReplayRecipe, BadClaimNamesTheKey) {
  try {
    rp::inputs_from_recipe(
        audit::recipe::load_recipe(recipe_path("s1.toml"), {"hardware.gpu_type=TPU-v9"}));
    FAIL() << "no error";
  } catch (const audit::InputError& e) {
    EXPECT_EQ(e.key, "hardware.gpu_type");
    EXPECT_NE(std::string(e.what()).find("s1.toml"), std::string::npos);
  }
  try {
    rp::inputs_from_recipe(audit::recipe::load_recipe(
        recipe_path("s1.toml"), {"hardware.gpu_count=0", "claim.gpu_count=0"}));
    FAIL() << "no error";
  } catch (const audit::InputError& e) {
    EXPECT_EQ(e.key, "hardware.gpu_count");
  }
}

TEST(ReplayMath, HostBandwidthIsMeasured) {
  const double bw = rp::measure_host_bandwidth(1, 16e6, 3);
  EXPECT_GT(bw, 1e8);   // any machine of this century moves more than 100 MB/s
  EXPECT_LT(bw, 1e13);  // and less than 10 TB/s from one thread
}

}  // namespace
