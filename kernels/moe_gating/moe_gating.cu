// CUDA MoE gating: the launchers declared in kernels/moe_gating/moe_gating.h. The CPU reference of the same
// contract is kernels/moe_gating/moe_gating_ref.cpp; tests/moe_gating_test.cpp compares the two.
//
// Pipeline on one stream:
//   1. route_kernel   one warp per token: scores, optional group limit, warp arg-max k times,
//                     weights; writes topk_ids/topk_weights and atomically counts experts.
//   2. offsets_kernel one block: exclusive scan of the counts (cub::BlockScan).
//   3. iota + cub::DeviceRadixSort::SortPairs on (expert id, token*k + slot) over the id bits:
//                     LSD radix sort is stable, so within an expert the order stays by token.
//   4. inverse_kernel inverse_index[permuted_index[p]] = p.
// Every value a lane holds is indexed by a compile-time constant (unrolled loops), so the row
// of logits stays in registers: lane l owns experts l, l+32, ..., l+224.
#include "kernels/moe_gating/moe_gating.h"
#include "kernels/moe_gating/moe_gating_math.h"  // exp, sigmoid, better: bit-identical host/device math

#include <cuda_runtime.h>

#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include <string>

namespace audit::kernels {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kPerLane = kMoeMaxExperts / 32;  // values per lane
constexpr unsigned kFullMask = 0xffffffffu;
constexpr std::size_t kAlign = 256;

// Shared-memory slot of expert e, one float of padding per 32: lane g then reads group g's
// experts from distinct banks for every group size.
__device__ __forceinline__ int padded(int e) { return e + e / 32; }

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("moe_gating_cuda: ") + what + " failed: " +
                             cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

struct RouteArgs {
  int64_t num_tokens;
  int num_experts;
  int top_k;
  int n_group;
  int topk_group;
  bool sigmoid;
  bool renormalize;
  float scale;
};

template <bool kBf16>
__device__ __forceinline__ float load_logit(const void* p, int64_t i) {
  if constexpr (kBf16)
    return moe_math::bf16_to_float(static_cast<const uint16_t*>(p)[i]);
  else
    return static_cast<const float*>(p)[i];
}

template <bool kBf16>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    route_kernel(RouteArgs a, const void* __restrict__ logits, const float* __restrict__ bias,
                 int32_t* __restrict__ ids, float* __restrict__ weights,
                 int32_t* __restrict__ counts) {
  __shared__ float sh_choice[kWarpsPerBlock][kMoeMaxExperts + kMoeMaxExperts / 32];
  __shared__ float sh_group[kWarpsPerBlock][kMoeMaxGroups];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int64_t tok = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (tok >= a.num_tokens) return;  // the whole warp leaves together
  const int E = a.num_experts;
  const int64_t row = tok * E;
  const float minus_inf = moe_math::bits_to_float(0xff800000u);

  float score[kPerLane];
  float choice[kPerLane];
  bool eligible[kPerLane];

  // 1. Scores, and the values that rank experts (the reference computes the same bits).
  if (!a.sigmoid) {
    float x[kPerLane];
    float m = minus_inf;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int e = lane + 32 * j;
      x[j] = e < E ? load_logit<kBf16>(logits, row + e) : minus_inf;
      m = fmaxf(m, x[j]);
    }
#pragma unroll
    for (int off = 16; off >= 1; off /= 2) m = fmaxf(m, __shfl_xor_sync(kFullMask, m, off));
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int e = lane + 32 * j;
      score[j] = 0.0f;
      if (e < E) {
        score[j] = moe_math::exp(x[j] - m);
        sum += score[j];
      }
    }
#pragma unroll
    for (int off = 16; off >= 1; off /= 2) sum = sum + __shfl_xor_sync(kFullMask, sum, off);
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      score[j] = score[j] / sum;
      choice[j] = moe_math::rank_value(x[j]);  // softmax is monotone in the logit
    }
  } else {
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int e = lane + 32 * j;
      score[j] = 0.0f;
      choice[j] = minus_inf;
      if (e < E) {
        score[j] = moe_math::sigmoid(load_logit<kBf16>(logits, row + e));
        choice[j] = moe_math::rank_value(bias ? score[j] + bias[e] : score[j]);
      }
    }
  }

  // 2. Group-limited routing: lane g scores group g, then ranks it among the groups.
  if (a.n_group > 1) {
    const int group_size = E / a.n_group;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int e = lane + 32 * j;
      if (e < E) sh_choice[warp][padded(e)] = choice[j];
    }
    __syncwarp();
    if (lane < a.n_group) {
      float b1 = minus_inf, b2 = minus_inf;
      for (int e = lane * group_size; e < (lane + 1) * group_size; ++e) {
        const float v = sh_choice[warp][padded(e)];
        if (v > b1) {
          b2 = b1;
          b1 = v;
        } else if (v > b2) {
          b2 = v;
        }
      }
      const bool top2 = a.sigmoid && group_size >= 2;
      sh_group[warp][lane] = moe_math::rank_value(top2 ? b1 + b2 : b1);
    }
    __syncwarp();
    bool keep = false;
    if (lane < a.n_group) {
      const float mine = sh_group[warp][lane];
      int rank = 0;
      for (int h = 0; h < a.n_group; ++h)
        rank += moe_math::better(sh_group[warp][h], h, mine, lane) ? 1 : 0;
      keep = rank < a.topk_group;
    }
    const unsigned kept_groups = __ballot_sync(kFullMask, keep);
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int e = lane + 32 * j;
      eligible[j] = e < E && ((kept_groups >> (e / group_size)) & 1u);
    }
  } else {
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) eligible[j] = lane + 32 * j < E;
  }

  // 3. Top-k: k rounds of a warp arg-max over (choice desc, id asc); lane s keeps slot s.
  float weight_sum = 0.0f;  // summed in slot order, as the reference does
  int my_id = -1;
  float my_weight = 0.0f;
#pragma unroll
  for (int s = 0; s < kMoeMaxTopK; ++s) {
    if (s >= a.top_k) break;  // uniform across the warp
    float bv = 0.0f, bs = 0.0f;
    int bid = -1;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int e = lane + 32 * j;
      if (eligible[j] && moe_math::better(choice[j], e, bv, bid)) {
        bv = choice[j];
        bid = e;
        bs = score[j];
      }
    }
#pragma unroll
    for (int off = 16; off >= 1; off /= 2) {
      const float ov = __shfl_xor_sync(kFullMask, bv, off);
      const int oid = __shfl_xor_sync(kFullMask, bid, off);
      const float os = __shfl_xor_sync(kFullMask, bs, off);
      if (moe_math::better(ov, oid, bv, bid)) {
        bv = ov;
        bid = oid;
        bs = os;
      }
    }
    // A strict total order: every lane now holds the same winner.
#pragma unroll
    for (int j = 0; j < kPerLane; ++j)
      if (lane + 32 * j == bid) eligible[j] = false;
    if (lane == s) {
      my_id = bid;
      my_weight = bs;
    }
    weight_sum += bs;
  }

  // 4. Weights, ids, counts.
  if (lane < a.top_k) {
    float w = a.renormalize ? my_weight / (weight_sum + 1e-20f) : my_weight;
    w = w * a.scale;
    ids[tok * a.top_k + lane] = my_id;
    weights[tok * a.top_k + lane] = w;
    atomicAdd(&counts[my_id], 1);
  }
}

__global__ void __launch_bounds__(kMoeMaxExperts)
    offsets_kernel(const int32_t* __restrict__ counts, int32_t* __restrict__ offsets, int E) {
  using Scan = cub::BlockScan<int32_t, kMoeMaxExperts>;
  __shared__ typename Scan::TempStorage tmp;
  const int i = threadIdx.x;
  const int32_t v = i < E ? counts[i] : 0;
  int32_t exclusive = 0, total = 0;
  Scan(tmp).ExclusiveSum(v, exclusive, total);
  if (i < E) offsets[i] = exclusive;
  if (i == 0) offsets[E] = total;
}

__global__ void iota_kernel(int32_t* __restrict__ out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = i;
}

__global__ void inverse_kernel(const int32_t* __restrict__ permuted, int32_t* __restrict__ inverse,
                               int n) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p < n) inverse[permuted[p]] = p;
}

std::size_t align_up(std::size_t b) { return (b + kAlign - 1) / kAlign * kAlign; }

int id_bits(int num_experts) {
  int bits = 1;
  while ((1 << bits) < num_experts) ++bits;
  return bits;
}

// Workspace: sorted keys [n], iota values [n], CUB's temporary storage.
struct Workspace {
  std::size_t keys_bytes = 0, values_bytes = 0, cub_bytes = 0;
  std::size_t total() const { return keys_bytes + values_bytes + cub_bytes; }
};

Workspace plan_workspace(const MoeGatingConfig& c, int64_t num_tokens) {
  Workspace w;
  const int n = static_cast<int>(num_tokens * c.top_k);
  if (n == 0) return w;
  w.keys_bytes = align_up(sizeof(uint32_t) * n);
  w.values_bytes = align_up(sizeof(int32_t) * n);
  check_cuda(cub::DeviceRadixSort::SortPairs(nullptr, w.cub_bytes,
                                             static_cast<const uint32_t*>(nullptr),
                                             static_cast<uint32_t*>(nullptr),
                                             static_cast<const int32_t*>(nullptr),
                                             static_cast<int32_t*>(nullptr), n, 0,
                                             id_bits(c.num_experts)),
             "cub::DeviceRadixSort::SortPairs (workspace query)");
  w.cub_bytes = align_up(w.cub_bytes);
  return w;
}

}  // namespace

std::size_t moe_gating_cuda_workspace_bytes(const MoeGatingConfig& config, int64_t num_tokens) {
  check_moe_gating_config(config, num_tokens);
  return plan_workspace(config, num_tokens).total();
}

void moe_gating_cuda(const MoeGatingConfig& c, int64_t num_tokens, const MoeGatingTensors& t,
                     void* workspace, std::size_t workspace_bytes, void* stream_ptr) {
  check_moe_gating(c, num_tokens, t);
  const Workspace plan = plan_workspace(c, num_tokens);
  if (workspace_bytes < plan.total() || (plan.total() > 0 && workspace == nullptr))
    throw std::invalid_argument("moe_gating: workspace of " + std::to_string(workspace_bytes) +
                                " bytes; this call needs " + std::to_string(plan.total()) +
                                " (moe_gating_cuda_workspace_bytes)");
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const int E = c.num_experts;
  const int n = static_cast<int>(num_tokens * c.top_k);

  check_cuda(cudaMemsetAsync(t.expert_counts, 0, sizeof(int32_t) * E, stream),
             "cudaMemsetAsync(expert_counts)");
  if (num_tokens > 0) {
    const RouteArgs a{num_tokens,   E,
                      c.top_k,      c.n_group,
                      c.topk_group, c.score == MoeScore::kSigmoid,
                      c.renormalize, c.routed_scaling_factor};
    const int64_t blocks = (num_tokens + kWarpsPerBlock - 1) / kWarpsPerBlock;
    if (c.logits_dtype == MoeDType::kBFloat16)
      route_kernel<true><<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(
          a, t.logits, t.bias, t.topk_ids, t.topk_weights, t.expert_counts);
    else
      route_kernel<false><<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(
          a, t.logits, t.bias, t.topk_ids, t.topk_weights, t.expert_counts);
    check_cuda(cudaGetLastError(), "route_kernel launch");
  }
  offsets_kernel<<<1, kMoeMaxExperts, 0, stream>>>(t.expert_counts, t.expert_offsets, E);
  check_cuda(cudaGetLastError(), "offsets_kernel launch");
  if (n == 0) return;

  char* ws = static_cast<char*>(workspace);
  auto* keys_out = reinterpret_cast<uint32_t*>(ws);
  auto* values_in = reinterpret_cast<int32_t*>(ws + plan.keys_bytes);
  void* cub_tmp = ws + plan.keys_bytes + plan.values_bytes;
  std::size_t cub_bytes = plan.cub_bytes;
  const int threads = 256;
  const unsigned grid = static_cast<unsigned>((n + threads - 1) / threads);
  iota_kernel<<<grid, threads, 0, stream>>>(values_in, n);
  check_cuda(cudaGetLastError(), "iota_kernel launch");
  // Expert ids are in [0, E): as unsigned keys only the low id_bits(E) bits matter.
  check_cuda(cub::DeviceRadixSort::SortPairs(cub_tmp, cub_bytes,
                                             reinterpret_cast<const uint32_t*>(t.topk_ids),
                                             keys_out, values_in, t.permuted_index, n, 0,
                                             id_bits(E), stream),
             "cub::DeviceRadixSort::SortPairs");
  inverse_kernel<<<grid, threads, 0, stream>>>(t.permuted_index, t.inverse_index, n);
  check_cuda(cudaGetLastError(), "inverse_kernel launch");
}

}  // namespace audit::kernels
