// Timing real training steps of the claimed architecture's parts with LibTorch, for `audit
// replay`: forward + backward of k transformer layers at each timed sequence length (dense
// Qwen2 layers from reproduce/model/model.h; DeepSeek-V3-style layers with multi-head latent
// attention and an MoE FFN of routed + shared SwiGLU experts, routed by the gating launchers of
// kernels/moe_gating/moe_gating.h: CUDA kernel on CUDA, CPU reference on CPU), the embedding + output head
// + cross-entropy, and one fused AdamW step over the timed parameters. bf16 autocast on CUDA,
// fp32 on CPU. The results are replay::Measurement rows for reproduce/replay/replay.h's extrapolation.
//
// Also the self-check of the method: replay a small model from k of its layers and a few steps,
// then really train the whole model with train::Trainer for the same tokens, and compare.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ledger/costs/cost_model.h"  // ArchSpec
#include "reproduce/recipe/recipe.h"   // BaseSection (rope, eps, router settings)
#include "reproduce/replay/replay.h"   // Measurement, Peak

namespace audit::replay {

// The claimed architecture shrunk for timing on a small device: hidden, ffn, expert_ffn,
// vocab, q/kv LoRA ranks divided by `width_div`; query heads divided too (at least 1) with the
// KV heads reduced to a divisor of them; per-head dims, layer counts, routed experts, top-k and
// groups kept (the routing is what is being timed). width_div 1 returns `a` unchanged.
ledger::ArchSpec shrink_arch(const ledger::ArchSpec& a, int64_t width_div);

// "hidden=320 heads=3/1 head_dim=128 ffn=1728 vocab=9504 ..." for printing which shapes ran.
std::string describe_arch(const ledger::ArchSpec& a);

struct TimingOptions {
  std::string device = "cpu";        // "cpu" | "cuda" | "cuda:N"
  int64_t layers = 0;                // k per timed stack; 0 = as many as fit (at most max_layers)
  int64_t max_layers = 4;            // cap on automatic k
  int warmup = 2;                    // untimed steps first
  int steps = 5;                     // timed steps (median reported)
  int64_t batch = 1;                 // sequences per forward + backward
  std::vector<int64_t> seq_lens;     // timed lengths
  std::vector<int64_t> claimed_lens; // the claimed length each stands for (same size)
  int64_t expert_slots = 0;          // physical experts allocated per MoE layer (token routing
                                     // still over all routed experts; expert e computes with
                                     // slot e % slots); 0 = all routed experts
  bool time_dense_layer = true;      // MoE models: also time their dense (first) layer kind
  double memory_fraction = 0.5;      // of free memory the timed stack may plan for
  uint64_t seed = 0;
  std::function<void(const std::string&)> progress;  // progress lines (may be empty)
};

struct TimingResult {
  std::vector<Measurement> measurements;
  int64_t layers_timed = 0;          // k
  std::string layers_reason;         // why k (requested, or memory estimate)
  std::string dtype;                 // "bf16 autocast" | "fp32"
  std::string device_name;           // "cpu: <model>" or the CUDA device name
  Peak here;                         // the device's roofline at that precision
  double memory_budget_bytes = 0;
  double seconds_total = 0;          // wall seconds spent timing
  nlohmann::json to_json() const;
};

// Times every part of `timed` (dense and/or MoE layers, embed/head, optimizer). `base` gives
// RoPE theta, RMSNorm eps and the router settings. Throws std::invalid_argument for shapes the
// layer cannot build (message names the field) and std::runtime_error for a device problem.
TimingResult time_parts(const ledger::ArchSpec& timed, const recipe::BaseSection& base,
                        const TimingOptions& opt);

// The roofline of the timing device: CPU (this_cpu() fp32 peak and a measured triad bandwidth)
// or the CUDA device (hardware table row matched on its name, bf16 dense peak and bandwidth).
Peak device_peak(const std::string& device);

// ---------------------------------------------------------------------------------------------
// Self-check

struct SelfCheckOptions {
  std::string device = "cpu";
  ledger::ArchSpec arch;        // the small model (dense Qwen2); defaults: see default_self_check
  int64_t samples = 32;         // training sequences
  int64_t seq_len = 128;        // tokens per sequence
  int64_t batch = 8;            // global batch = micro-batch
  int64_t epochs = 1;
  int64_t replay_layers = 1;    // k layers timed by the replay
  int replay_warmup = 2;
  int replay_steps = 5;
  int threads = 0;              // torch threads (0: unchanged)
  uint64_t seed = 0;
  std::function<void(const std::string&)> progress;
};
SelfCheckOptions default_self_check();

struct SelfCheckResult {
  double predicted_s = 0;       // replay's prediction of the full training
  double measured_s = 0;        // the real Trainer's wall time over the same steps
  double error = 0;             // (predicted - measured) / measured
  int64_t steps = 0;
  double tokens = 0;
  TimingResult timing;
  Prediction prediction;
  nlohmann::json to_json() const;
};
SelfCheckResult self_check(const SelfCheckOptions& opt);

}  // namespace audit::replay
