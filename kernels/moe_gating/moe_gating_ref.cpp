// CPU reference of the MoE gating contract in kernels/moe_gating/moe_gating.h: plain loops, one token at a
// time, the same arithmetic as the CUDA kernel (kernels/moe_gating/moe_gating_math.h and the kernel's warp
// summation order), so the GPU test can compare ids, counts and permutations exactly.
// Also the CUDA launchers' stand-ins when the build has no CUDA. No CUDA header here.
#include "kernels/moe_gating/moe_gating.h"
#include "kernels/moe_gating/moe_gating_math.h"  // exp, sigmoid, better: bit-identical host/device math

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace audit::kernels {
namespace {

float load_logit(const void* logits, MoeDType dtype, int64_t i) {
  if (dtype == MoeDType::kBFloat16)
    return moe_math::bf16_to_float(static_cast<const uint16_t*>(logits)[i]);
  return static_cast<const float*>(logits)[i];
}

// The sum the kernel's warp reduction computes: lane l adds experts l, l+32, l+64, ... in that
// order, then partials combine in an xor butterfly over 16, 8, 4, 2, 1 lanes.
float warp_order_sum(const std::vector<float>& v) {
  float lane[32];
  for (int l = 0; l < 32; ++l) {
    float acc = 0.0f;
    for (size_t e = static_cast<size_t>(l); e < v.size(); e += 32) acc += v[e];
    lane[l] = acc;
  }
  for (int off = 16; off >= 1; off /= 2) {
    float next[32];
    for (int l = 0; l < 32; ++l) next[l] = lane[l] + lane[l ^ off];
    std::memcpy(lane, next, sizeof lane);
  }
  return lane[0];
}

}  // namespace

void moe_gating_cpu(const MoeGatingConfig& c, int64_t num_tokens, const MoeGatingTensors& t) {
  check_moe_gating(c, num_tokens, t);
  const int E = c.num_experts;
  const int k = c.top_k;
  const int group_size = E / c.n_group;
  std::vector<float> x(E), expx(E), score(E), choice(E), group_score(c.n_group);
  std::vector<char> eligible(E);

  for (int64_t tok = 0; tok < num_tokens; ++tok) {
    for (int e = 0; e < E; ++e) x[e] = load_logit(t.logits, c.logits_dtype, tok * E + e);

    // Scores, and the values that rank experts.
    if (c.score == MoeScore::kSoftmax) {
      float m = x[0];
      for (int e = 1; e < E; ++e) m = std::fmax(m, x[e]);
      for (int e = 0; e < E; ++e) expx[e] = moe_math::exp(x[e] - m);
      const float sum = warp_order_sum(expx);
      for (int e = 0; e < E; ++e) {
        score[e] = expx[e] / sum;
        choice[e] = moe_math::rank_value(x[e]);  // softmax is monotone in the logit
      }
    } else {
      for (int e = 0; e < E; ++e) {
        score[e] = moe_math::sigmoid(x[e]);
        choice[e] = moe_math::rank_value(t.bias ? score[e] + t.bias[e] : score[e]);
      }
    }

    // Group-limited routing: keep the topk_group best groups.
    std::fill(eligible.begin(), eligible.end(), 1);
    if (c.n_group > 1) {
      for (int g = 0; g < c.n_group; ++g) {
        float b1 = -INFINITY, b2 = -INFINITY;
        for (int e = g * group_size; e < (g + 1) * group_size; ++e) {
          if (choice[e] > b1) {
            b2 = b1;
            b1 = choice[e];
          } else if (choice[e] > b2) {
            b2 = choice[e];
          }
        }
        const bool top2 = c.score == MoeScore::kSigmoid && group_size >= 2;
        group_score[g] = moe_math::rank_value(top2 ? b1 + b2 : b1);
      }
      for (int g = 0; g < c.n_group; ++g) {
        int rank = 0;
        for (int h = 0; h < c.n_group; ++h)
          rank += moe_math::better(group_score[h], h, group_score[g], g) ? 1 : 0;
        if (rank >= c.topk_group)
          std::fill(eligible.begin() + g * group_size, eligible.begin() + (g + 1) * group_size, 0);
      }
    }

    // Top-k in descending order, ties to the lower id; weights from the unbiased scores.
    int32_t* ids = t.topk_ids + tok * k;
    float* w = t.topk_weights + tok * k;
    float sum = 0.0f;
    for (int s = 0; s < k; ++s) {
      int best = -1;
      for (int e = 0; e < E; ++e) {
        const float bv = best < 0 ? 0.0f : choice[best];
        if (eligible[e] && moe_math::better(choice[e], e, bv, best)) best = e;
      }
      eligible[best] = 0;  // check_moe_gating guarantees k eligible experts
      ids[s] = best;
      w[s] = score[best];
      sum += w[s];
    }
    for (int s = 0; s < k; ++s) {
      float v = c.renormalize ? w[s] / (sum + 1e-20f) : w[s];
      w[s] = v * c.routed_scaling_factor;
    }
  }

  // Counts, offsets, and a stable counting sort of (token*k + slot) by expert.
  const int64_t n = num_tokens * k;
  std::fill(t.expert_counts, t.expert_counts + E, 0);
  for (int64_t i = 0; i < n; ++i) ++t.expert_counts[t.topk_ids[i]];
  t.expert_offsets[0] = 0;
  for (int e = 0; e < E; ++e) t.expert_offsets[e + 1] = t.expert_offsets[e] + t.expert_counts[e];
  std::vector<int32_t> cursor(t.expert_offsets, t.expert_offsets + E);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t p = cursor[t.topk_ids[i]]++;
    t.permuted_index[p] = static_cast<int32_t>(i);
    t.inverse_index[i] = p;
  }
}

#if !defined(AUDIT_HAVE_CUDA)
// Built without CUDA: the launchers exist so callers link, and say why they cannot run.
namespace {
[[noreturn]] void no_cuda() {
  throw std::runtime_error(
      "moe_gating_cuda: this build has no CUDA (configure with -DAUDIT_CUDA=ON and nvcc on "
      "PATH); use moe_gating_cpu");
}
}  // namespace

std::size_t moe_gating_cuda_workspace_bytes(const MoeGatingConfig&, int64_t) { no_cuda(); }
void moe_gating_cuda(const MoeGatingConfig&, int64_t, const MoeGatingTensors&, void*,
                     std::size_t, void*) {
  no_cuda();
}
#endif

}  // namespace audit::kernels
