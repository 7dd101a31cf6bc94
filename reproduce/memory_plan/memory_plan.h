// The memory plan `audit run` prints before it trains, and the refusal when the plan cannot fit
// the device. It counts what one SFT step of this project's trainer holds at its peak:
//   weights           4 B per parameter (fp32 master weights, also under bf16 autocast)
//   gradients         4 B per parameter, plus a transient 4 B when the trainer gathers them into
//                     one flat buffer before clipping (reproduce/trainer/trainer.cpp)
//   optimizer states  8 B per parameter (AdamW's exp_avg and exp_avg_sq, fp32)
//   activations       what autograd keeps for backward for one micro-batch at the longest
//                     sample: per token and layer, the tensors our decoder layer saves
//                     (norm inputs and outputs, q/k/v and the attention output, the SwiGLU's
//                     gate, up, silu and product), bf16 under autocast; with recompute only each
//                     layer's input plus one layer's set while it is recomputed. The logits
//                     (fp32, with their log-softmax and gradient: 3 x vocab per token) are
//                     counted apart because they dominate small models with large vocabularies.
// Attention is counted at O(T) per head (scaled_dot_product_attention's fused kernels keep no
// T x T matrix); the plan says so. Every figure is a formula over the architecture: the plan is
// an estimate, and tests/torch compares it with a measured peak.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reproduce/settings/settings.h"

namespace audit::plan {

struct MemoryInputs {
  settings::ModelSettings model;
  int64_t micro_batch = 1;         // sequences per forward/backward
  int64_t longest_tokens = 0;      // the longest training row (after block_size truncation)
  bool recompute = false;          // activation checkpointing per layer
  bool bf16 = false;               // bf16 autocast (activations at 2 bytes)
  std::string device = "cpu";      // where it trains
  int64_t device_bytes = 0;        // memory available there; 0 = unknown (no verdict)
  std::string device_source;       // where device_bytes came from (/proc/meminfo, cgroup, CUDA)
};

struct MemoryLine {
  std::string key;       // weights | gradients | optimizer | activations | logits | total
  std::string label;
  double bytes = 0;
  std::string formula;   // how it was computed, with the numbers
};

struct MemoryPlan {
  int64_t parameters = 0;
  std::vector<MemoryLine> lines;  // the parts, then "total"
  double total_bytes = 0;
  int64_t device_bytes = 0;
  bool fits = true;               // total_bytes <= device_bytes (always true when unknown)
  std::string to_text() const;    // the table printed before training
  nlohmann::json to_json() const; // the ledger event
};

MemoryPlan plan_memory(const MemoryInputs& in);

// Memory this process may still use on the CPU: MemAvailable of /proc/meminfo, lowered to the
// cgroup v2 limit's headroom (memory.max - memory.current) when one is set. source says which.
int64_t cpu_available_bytes(std::string* source = nullptr);

}  // namespace audit::plan
