// MoE gating (router) launchers: scores, top-k, normalized weights, per-expert counts and the
// token permutation for grouped expert compute. One contract, two implementations:
//   moe_gating_cpu   kernels/moe_gating/moe_gating_ref.cpp  (the reference, host pointers)
//   moe_gating_cuda  kernels/moe_gating/moe_gating.cu       (device pointers, a stream)
// Plain C++: no CUDA header here. Model code calls these launchers, never kernel internals;
// kernels/devices/devices.h says whether the CUDA one can run on a device.
//
// Routing, per token t (rows of logits [T, E]):
//   score[e]  = softmax(logits[t])[e]              (MoeScore::kSoftmax, Mixtral/Qwen-MoE)
//             | sigmoid(logits[t, e])              (MoeScore::kSigmoid, DeepSeek-V3)
//   choice[e] = score[e] + bias[e]   (bias: sigmoid only, optional; it steers selection only)
//   group-limited (n_group > 1): experts form n_group contiguous groups; a group's score is the
//     sum of its top-2 choice values (sigmoid, DeepSeek-V3) or its best choice value (softmax,
//     DeepSeek-V2); the topk_group best groups stay eligible, the others are excluded.
//   topk_ids  = the k eligible experts with the largest choice, in descending order; ties go to
//     the lower expert id (groups likewise), so both implementations agree exactly on ids.
//   weight    = score[id] (unbiased); if renormalize: weight / (sum of the k weights + 1e-20);
//     then * routed_scaling_factor.
//   counts[e] = number of (token, slot) routed to e; offsets = exclusive scan of counts [E+1];
//   permuted_index[p] = token*k + slot, sorted by expert, ascending within an expert;
//   inverse_index[token*k + slot] = p.
// Selection for softmax ranks the logits (softmax is monotone) and sigmoid scores are computed
// with the same operation sequence on host and device (kernels/moe_gating/moe_gating_math.h), so ids agree
// bit for bit. Logits must be finite: NaN ranks lowest but its weights are unspecified.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace audit::kernels {

inline constexpr int kMoeMaxExperts = 256;  // E limit: one warp holds a row, 8 values per lane
inline constexpr int kMoeMaxTopK = 8;       // k limit
inline constexpr int kMoeMaxGroups = 32;    // n_group limit: one lane per group

enum class MoeScore { kSoftmax, kSigmoid };
enum class MoeDType { kFloat32, kBFloat16 };  // dtype of logits; bf16 is raw uint16 bits

// One router's configuration. Defaults: plain softmax top-2 over 8 experts (Mixtral).
struct MoeGatingConfig {
  int num_experts = 8;                   // E, 1..256
  int top_k = 2;                         // k, 1..min(8, E)
  MoeScore score = MoeScore::kSoftmax;   // score function
  bool renormalize = true;               // divide the k weights by their sum (norm_topk_prob)
  float routed_scaling_factor = 1.0f;    // applied last to every weight (DeepSeek-V3: 2.5)
  int n_group = 1;                       // expert groups; 1 = plain top-k (DeepSeek-V3: 8)
  int topk_group = 1;                    // groups kept per token when n_group > 1 (V3: 4)
  MoeDType logits_dtype = MoeDType::kFloat32;
};

// DeepSeek-V3's router (config.json of deepseek-ai/DeepSeek-V3): 256 routed experts, top-8,
// sigmoid scores with e_score_correction_bias, 8 groups of which 4 are kept, weights
// renormalized and scaled by 2.5.
inline MoeGatingConfig deepseek_v3_gating() {
  MoeGatingConfig c;
  c.num_experts = 256;
  c.top_k = 8;
  c.score = MoeScore::kSigmoid;
  c.renormalize = true;
  c.routed_scaling_factor = 2.5f;
  c.n_group = 8;
  c.topk_group = 4;
  return c;
}

// The tensors of one call, row-major. Host pointers for the CPU reference, device pointers for
// CUDA. All are required except bias.
struct MoeGatingTensors {
  const void* logits = nullptr;      // [T, E] float32 or bf16 (config.logits_dtype)
  const float* bias = nullptr;       // [E] selection bias (sigmoid only) or nullptr
  int32_t* topk_ids = nullptr;       // [T, k] out
  float* topk_weights = nullptr;     // [T, k] out
  int32_t* expert_counts = nullptr;  // [E] out
  int32_t* expert_offsets = nullptr; // [E + 1] out, exclusive scan of counts
  int32_t* permuted_index = nullptr; // [T * k] out, token*k + slot grouped by expert
  int32_t* inverse_index = nullptr;  // [T * k] out, position of token*k + slot in permuted_index
};

// Checks the shape preconditions both implementations share; throws std::invalid_argument
// naming the field and its limit.
inline void check_moe_gating_config(const MoeGatingConfig& c, int64_t num_tokens) {
  auto fail = [](const std::string& what) {
    throw std::invalid_argument("moe_gating: " + what);
  };
  auto str = [](auto v) { return std::to_string(v); };
  if (num_tokens < 0) fail("num_tokens is " + str(num_tokens) + "; must be >= 0");
  if (c.num_experts < 1 || c.num_experts > kMoeMaxExperts)
    fail("num_experts is " + str(c.num_experts) + "; must be in 1.." + str(kMoeMaxExperts));
  if (c.top_k < 1 || c.top_k > kMoeMaxTopK || c.top_k > c.num_experts)
    fail("top_k is " + str(c.top_k) + "; must be in 1..min(" + str(kMoeMaxTopK) +
         ", num_experts=" + str(c.num_experts) + ")");
  if (num_tokens > INT32_MAX / c.top_k)
    fail("num_tokens=" + str(num_tokens) + " times top_k=" + str(c.top_k) +
         " exceeds the int32 index range");
  if (c.n_group < 1 || c.n_group > kMoeMaxGroups || c.num_experts % c.n_group != 0)
    fail("n_group is " + str(c.n_group) + "; must be in 1.." + str(kMoeMaxGroups) +
         " and divide num_experts=" + str(c.num_experts));
  if (c.topk_group < 1 || c.topk_group > c.n_group)
    fail("topk_group is " + str(c.topk_group) + "; must be in 1..n_group=" + str(c.n_group));
  if (c.topk_group * (c.num_experts / c.n_group) < c.top_k)
    fail("topk_group=" + str(c.topk_group) + " groups of " + str(c.num_experts / c.n_group) +
         " experts hold fewer than top_k=" + str(c.top_k) + " experts");
}

// The above plus the tensors: pointers present, bias only with sigmoid.
inline void check_moe_gating(const MoeGatingConfig& c, int64_t num_tokens,
                             const MoeGatingTensors& t) {
  check_moe_gating_config(c, num_tokens);
  auto fail = [](const std::string& what) {
    throw std::invalid_argument("moe_gating: " + what);
  };
  if (t.bias != nullptr && c.score != MoeScore::kSigmoid)
    fail("a selection bias needs score = sigmoid (DeepSeek-V3 style); softmax takes none");
  if (num_tokens > 0 && t.logits == nullptr) fail("logits is null");
  if (num_tokens > 0 && (t.topk_ids == nullptr || t.topk_weights == nullptr ||
                         t.permuted_index == nullptr || t.inverse_index == nullptr))
    fail("an output pointer (topk_ids, topk_weights, permuted_index, inverse_index) is null");
  if (t.expert_counts == nullptr || t.expert_offsets == nullptr)
    fail("expert_counts or expert_offsets is null");
}

// CPU reference (kernels/moe_gating/moe_gating_ref.cpp). Host pointers.
void moe_gating_cpu(const MoeGatingConfig& config, int64_t num_tokens,
                    const MoeGatingTensors& tensors);

// CUDA (kernels/moe_gating/moe_gating.cu). Device pointers on the current device; `stream` is a
// cudaStream_t (nullptr: the default stream). Asynchronous: results are ready when the stream
// is. `workspace` must hold moe_gating_cuda_workspace_bytes(config, num_tokens) bytes of device
// memory. Throws std::invalid_argument on a broken precondition, std::runtime_error on a CUDA
// error (naming the call), and std::runtime_error when built without CUDA.
std::size_t moe_gating_cuda_workspace_bytes(const MoeGatingConfig& config, int64_t num_tokens);
void moe_gating_cuda(const MoeGatingConfig& config, int64_t num_tokens,
                     const MoeGatingTensors& tensors, void* workspace,
                     std::size_t workspace_bytes, void* stream);

}  // namespace audit::kernels
