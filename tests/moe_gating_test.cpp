// Tests of the MoE gating contract (kernels/moe_gating/moe_gating.h): the CPU reference against
// hand-computed cases and invariants, then the CUDA kernel against the reference over many
// shapes (skipped, with the reason, where there is no CUDA device).
#include "kernels/devices/devices.h"           // cuda_available, kernel_support
#include "kernels/moe_gating/moe_gating.h"        // the contract and both launchers
#include "kernels/moe_gating/moe_gating_math.h"   // exp/sigmoid shared by host and device

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#ifdef AUDIT_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace audit::kernels {
namespace {

struct Routing {
  std::vector<int32_t> ids, counts, offsets, permuted, inverse;
  std::vector<float> weights;
};

Routing alloc_routing(const MoeGatingConfig& c, int64_t T) {
  Routing r;
  r.ids.assign(T * c.top_k, -7);
  r.weights.assign(T * c.top_k, -7.0f);
  r.counts.assign(c.num_experts, -7);
  r.offsets.assign(c.num_experts + 1, -7);
  r.permuted.assign(T * c.top_k, -7);
  r.inverse.assign(T * c.top_k, -7);
  return r;
}

MoeGatingTensors tensors_of(Routing& r, const void* logits, const float* bias) {
  MoeGatingTensors t;
  t.logits = logits;
  t.bias = bias;
  t.topk_ids = r.ids.data();
  t.topk_weights = r.weights.data();
  t.expert_counts = r.counts.data();
  t.expert_offsets = r.offsets.data();
  t.permuted_index = r.permuted.data();
  t.inverse_index = r.inverse.data();
  return t;
}

Routing run_cpu(const MoeGatingConfig& c, int64_t T, const void* logits,
                const std::vector<float>& bias = {}) {
  Routing r = alloc_routing(c, T);
  moe_gating_cpu(c, T, tensors_of(r, logits, bias.empty() ? nullptr : bias.data()));
  return r;
}

MoeGatingConfig softmax_config(int E, int k, bool renormalize) {
  MoeGatingConfig c;
  c.num_experts = E;
  c.top_k = k;
  c.score = MoeScore::kSoftmax;
  c.renormalize = renormalize;
  return c;
}

MoeGatingConfig sigmoid_config(int E, int k, float scale, int n_group = 1, int topk_group = 1) {
  MoeGatingConfig c;
  c.num_experts = E;
  c.top_k = k;
  c.score = MoeScore::kSigmoid;
  c.renormalize = true;
  c.routed_scaling_factor = scale;
  c.n_group = n_group;
  c.topk_group = topk_group;
  return c;
}

double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// ---------------------------------------------------------------- shared math

TEST(MoeGatingMath, ExpIsWithinThreeUlpOfLibm) {
  double worst = 0;
  for (float x = -79.9f; x < 88.0f; x += 0.0173f) {
    const double want = std::exp(static_cast<double>(x));
    const double got = moe_math::exp(x);
    worst = std::max(worst, std::fabs(got - want) / want);
  }
  EXPECT_LT(worst, 3 * 5.97e-8) << "worst relative error " << worst;
  EXPECT_EQ(moe_math::exp(0.0f), 1.0f);
  EXPECT_EQ(moe_math::exp(-100.0f), 0.0f);
  EXPECT_TRUE(std::isinf(moe_math::exp(100.0f)));
  EXPECT_NEAR(moe_math::sigmoid(1.0f), sig(1.0), 1e-7);
  EXPECT_EQ(moe_math::sigmoid(-200.0f), 0.0f);
  EXPECT_EQ(moe_math::sigmoid(200.0f), 1.0f);
}

// ---------------------------------------------------------------- hand-computed cases

TEST(MoeGatingCpu, SoftmaxTop2HandComputed) {
  const std::vector<float> logits = {1, 3, 2, 0};
  const double z = std::exp(1.0) + std::exp(3.0) + std::exp(2.0) + std::exp(0.0);

  Routing r = run_cpu(softmax_config(4, 2, /*renormalize=*/false), 1, logits.data());
  EXPECT_EQ(r.ids, (std::vector<int32_t>{1, 2}));
  EXPECT_NEAR(r.weights[0], std::exp(3.0) / z, 1e-6);  // 0.6439
  EXPECT_NEAR(r.weights[1], std::exp(2.0) / z, 1e-6);  // 0.2369

  r = run_cpu(softmax_config(4, 2, /*renormalize=*/true), 1, logits.data());
  EXPECT_EQ(r.ids, (std::vector<int32_t>{1, 2}));
  EXPECT_NEAR(r.weights[0], sig(1.0), 1e-6);  // e^3 / (e^3 + e^2)
  EXPECT_NEAR(r.weights[1], sig(-1.0), 1e-6);
}

TEST(MoeGatingCpu, SigmoidBiasSteersSelectionNotWeights) {
  // DeepSeek-V3: choice = sigmoid(x) + bias picks the experts; the weights are the unbiased
  // sigmoids, renormalized over the k chosen and scaled.
  const std::vector<float> logits = {0, 1, 2, -1};
  const std::vector<float> bias = {0, 0, -2, 3};  // choices 0.5, 0.731, -1.119, 3.269
  Routing r = run_cpu(sigmoid_config(4, 2, 2.5f), 1, logits.data(), bias);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{3, 1}));
  // sig(-1) + sig(1) = 1, so the normalized weights are the sigmoids themselves.
  EXPECT_NEAR(r.weights[0], 2.5 * sig(-1.0), 1e-6);  // 0.6724
  EXPECT_NEAR(r.weights[1], 2.5 * sig(1.0), 1e-6);   // 1.8277

  r = run_cpu(sigmoid_config(4, 2, 2.5f), 1, logits.data());  // no bias: the plain top-2
  EXPECT_EQ(r.ids, (std::vector<int32_t>{2, 1}));
  const double s = sig(2.0) + sig(1.0);
  EXPECT_NEAR(r.weights[0], 2.5 * sig(2.0) / s, 1e-6);
  EXPECT_NEAR(r.weights[1], 2.5 * sig(1.0) / s, 1e-6);
}

TEST(MoeGatingCpu, TiesGoToTheLowerExpertId) {
  const std::vector<float> flat(8, 0.25f);
  Routing r = run_cpu(softmax_config(8, 3, true), 1, flat.data());
  EXPECT_EQ(r.ids, (std::vector<int32_t>{0, 1, 2}));
  for (float w : r.weights) EXPECT_NEAR(w, 1.0 / 3.0, 1e-6);

  // Sigmoid with a bias that makes experts 5 and 2 tie for first, 6 and 1 for third.
  const std::vector<float> logits(8, 0.0f);  // every score 0.5
  const std::vector<float> bias = {0, 0.25f, 0.5f, 0, 0, 0.5f, 0.25f, 0};
  r = run_cpu(sigmoid_config(8, 4, 1.0f), 1, logits.data(), bias);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{2, 5, 1, 6}));
  for (float w : r.weights) EXPECT_NEAR(w, 0.25, 1e-7);
}

TEST(MoeGatingCpu, GroupLimitedSigmoidKeepsTheBestGroupsByTop2Sum) {
  // 4 groups of 2. Every score is 0.5, so the bias sets the choices:
  // group 0 {1.4, 0.0} sum 1.4; group 1 {0.8, 0.8} 1.6; group 2 {0.75, 0.75} 1.5; group 3 1.0.
  // Two groups survive (1 and 2): expert 0, the best single expert, is excluded.
  const std::vector<float> logits(8, 0.0f);
  const std::vector<float> bias = {0.9f, -0.5f, 0.3f, 0.3f, 0.25f, 0.25f, 0, 0};
  Routing r = run_cpu(sigmoid_config(8, 2, 1.0f, 4, 2), 1, logits.data(), bias);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{2, 3}));
  EXPECT_NEAR(r.weights[0], 0.5, 1e-7);
  EXPECT_NEAR(r.weights[1], 0.5, 1e-7);

  r = run_cpu(sigmoid_config(8, 2, 1.0f, 4, 3), 1, logits.data(), bias);  // 3 groups: 0 back
  EXPECT_EQ(r.ids, (std::vector<int32_t>{0, 2}));
  r = run_cpu(sigmoid_config(8, 2, 1.0f), 1, logits.data(), bias);  // no groups
  EXPECT_EQ(r.ids, (std::vector<int32_t>{0, 2}));
}

TEST(MoeGatingCpu, GroupLimitedSoftmaxRanksGroupsByTheirBest) {
  // DeepSeek-V2 style: a group's score is its best logit.
  const std::vector<float> logits = {5, -10, 4, 4, 1, 1, 0, 0};
  MoeGatingConfig c = softmax_config(8, 2, true);
  c.n_group = 4;
  c.topk_group = 1;
  Routing r = run_cpu(c, 1, logits.data());
  EXPECT_EQ(r.ids, (std::vector<int32_t>{0, 1}));  // only group 0 survives
  EXPECT_NEAR(r.weights[0], sig(15.0), 1e-6);
  c.topk_group = 2;
  r = run_cpu(c, 1, logits.data());
  EXPECT_EQ(r.ids, (std::vector<int32_t>{0, 2}));  // 2 and 3 tie: 2 wins
}

TEST(MoeGatingCpu, PermutationHandComputed) {
  // ids: token 0 -> {1, 2}, token 1 -> {0, 3}, token 2 -> {3, 1}.
  const std::vector<float> logits = {0, 3, 2, 0, 5, 0, 0, 4, 0, 1, 0, 2};
  Routing r = run_cpu(softmax_config(4, 2, true), 3, logits.data());
  EXPECT_EQ(r.ids, (std::vector<int32_t>{1, 2, 0, 3, 3, 1}));
  EXPECT_EQ(r.counts, (std::vector<int32_t>{1, 2, 1, 2}));
  EXPECT_EQ(r.offsets, (std::vector<int32_t>{0, 1, 3, 4, 6}));
  EXPECT_EQ(r.permuted, (std::vector<int32_t>{2, 0, 5, 1, 3, 4}));
  EXPECT_EQ(r.inverse, (std::vector<int32_t>{1, 3, 0, 4, 5, 2}));
}

TEST(MoeGatingCpu, NoTokensGiveZeroCounts) {
  MoeGatingConfig c = softmax_config(8, 2, true);
  Routing r = alloc_routing(c, 0);
  moe_gating_cpu(c, 0, tensors_of(r, nullptr, nullptr));
  EXPECT_EQ(r.counts, std::vector<int32_t>(8, 0));
  EXPECT_EQ(r.offsets, std::vector<int32_t>(9, 0));
}

TEST(MoeGatingCpu, PreconditionsAreChecked) {
  const std::vector<float> logits(16, 0.0f);
  const std::vector<float> bias(8, 0.0f);
  auto expect_error = [&](MoeGatingConfig c, const std::vector<float>& b, const char* needle) {
    try {
      run_cpu(c, 1, logits.data(), b);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(softmax_config(8, 9, true), {}, "top_k");
  expect_error(softmax_config(300, 2, true), {}, "num_experts");
  expect_error(softmax_config(8, 2, true), bias, "bias");
  expect_error(sigmoid_config(8, 2, 1.0f, 3, 1), {}, "n_group");
  expect_error(sigmoid_config(8, 2, 1.0f, 4, 5), {}, "topk_group");
  expect_error(sigmoid_config(8, 3, 1.0f, 4, 1), {}, "fewer than top_k");
}

// ---------------------------------------------------------------- invariants

struct Case {
  std::string name;
  MoeGatingConfig config;
  bool bias = false;
};

std::vector<Case> variants(int E, int k) {
  std::vector<Case> out;
  out.push_back({"softmax", softmax_config(E, k, true)});
  out.push_back({"softmax_unnormalized", softmax_config(E, k, false)});
  out.push_back({"sigmoid", sigmoid_config(E, k, 1.0f)});
  out.push_back({"sigmoid_bias", sigmoid_config(E, k, 2.5f), true});
  if (E % 8 == 0 && 4 * (E / 8) >= k)
    out.push_back({"sigmoid_bias_groups_8_4", sigmoid_config(E, k, 2.5f, 8, 4), true});
  return out;
}

std::vector<float> random_logits(int64_t T, int E, uint32_t seed, bool coarse = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 2.0f);
  std::vector<float> v(T * E);
  for (auto& x : v) x = coarse ? std::round(n(rng)) : n(rng);  // coarse: many exact ties
  return v;
}

std::vector<float> random_bias(int E, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  std::vector<float> v(E);
  for (auto& x : v) x = u(rng);
  return v;
}

// The contract's invariants, independent of how the routing was computed.
void check_invariants(const MoeGatingConfig& c, int64_t T, const std::vector<float>& logits,
                      const std::vector<float>& bias, const Routing& r) {
  const int E = c.num_experts, k = c.top_k;
  const int64_t n = T * k;
  ASSERT_EQ(std::accumulate(r.counts.begin(), r.counts.end(), int64_t{0}), n);
  ASSERT_EQ(r.offsets[0], 0);
  for (int e = 0; e < E; ++e) ASSERT_EQ(r.offsets[e + 1] - r.offsets[e], r.counts[e]);
  std::vector<char> seen(n, 0);
  for (int64_t p = 0; p < n; ++p) {
    const int32_t i = r.permuted[p];
    ASSERT_GE(i, 0);
    ASSERT_LT(i, n);
    ASSERT_FALSE(seen[i]) << "permuted_index repeats " << i;
    seen[i] = 1;
    ASSERT_EQ(r.inverse[i], p);
  }
  for (int e = 0; e < E; ++e) {
    for (int32_t p = r.offsets[e]; p < r.offsets[e + 1]; ++p) {
      ASSERT_EQ(r.ids[r.permuted[p]], e) << "position " << p << " is in expert " << e;
      if (p > r.offsets[e]) {
        ASSERT_LT(r.permuted[p - 1], r.permuted[p]) << "unstable order";
      }
    }
  }
  const int group_size = E / c.n_group;
  for (int64_t t = 0; t < T; ++t) {
    std::set<int> distinct, groups;
    double wsum = 0;
    // Independent selection: sort every expert by (choice desc, id asc) with std::sort.
    std::vector<std::pair<float, int>> order;
    for (int e = 0; e < E; ++e) {
      const float x = logits[t * E + e];
      float v = x;
      if (c.score == MoeScore::kSigmoid)
        v = moe_math::sigmoid(x) + (bias.empty() ? 0.0f : bias[e]);
      order.push_back({v, e});
    }
    std::sort(order.begin(), order.end(), [](auto a, auto b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    for (int s = 0; s < k; ++s) {
      const int id = r.ids[t * k + s];
      ASSERT_GE(id, 0);
      ASSERT_LT(id, E);
      distinct.insert(id);
      groups.insert(id / group_size);
      wsum += r.weights[t * k + s];
      if (c.n_group == 1) {
        ASSERT_EQ(id, order[s].second) << "token " << t << " slot " << s;
      }
    }
    ASSERT_EQ(static_cast<int>(distinct.size()), k) << "token " << t << " repeats an expert";
    ASSERT_LE(static_cast<int>(groups.size()), c.topk_group) << "token " << t;
    if (c.renormalize)
      ASSERT_NEAR(wsum, c.routed_scaling_factor, 1e-5 * c.routed_scaling_factor) << "token " << t;
    else
      ASSERT_LE(wsum, 1.0 + 1e-5);
  }
}

TEST(MoeGatingCpu, InvariantsOverShapes) {
  uint32_t seed = 1;
  for (int64_t T : {1, 7, 128, 300}) {
    for (int E : {8, 64, 256}) {
      for (int k : {1, 2, 8}) {
        for (const Case& cs : variants(E, k)) {
          for (bool coarse : {false, true}) {
            SCOPED_TRACE(cs.name + " T=" + std::to_string(T) + " E=" + std::to_string(E) +
                         " k=" + std::to_string(k) + (coarse ? " coarse" : ""));
            const auto logits = random_logits(T, E, ++seed, coarse);
            const auto bias = cs.bias ? random_bias(E, ++seed) : std::vector<float>{};
            const Routing r = run_cpu(cs.config, T, logits.data(), bias);
            check_invariants(cs.config, T, logits, bias, r);
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

uint16_t to_bf16(float f) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

TEST(MoeGatingCpu, Bf16LogitsRouteLikeTheirFloatValues) {
  const int64_t T = 64;
  const int E = 64, k = 8;
  auto logits = random_logits(T, E, 99);
  std::vector<uint16_t> bf(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    bf[i] = to_bf16(logits[i]);
    logits[i] = moe_math::bf16_to_float(bf[i]);
  }
  for (const Case& cs : variants(E, k)) {
    SCOPED_TRACE(cs.name);
    const auto bias = cs.bias ? random_bias(E, 5) : std::vector<float>{};
    MoeGatingConfig c = cs.config;
    const Routing want = run_cpu(c, T, logits.data(), bias);
    c.logits_dtype = MoeDType::kBFloat16;
    const Routing got = run_cpu(c, T, bf.data(), bias);
    EXPECT_EQ(got.ids, want.ids);
    EXPECT_EQ(got.weights, want.weights);
    EXPECT_EQ(got.permuted, want.permuted);
  }
}

// ---------------------------------------------------------------- devices

TEST(KernelDevices, CpuAlwaysRunsAndCudaSaysWhyNot) {
  EXPECT_TRUE(kernel_support(Kernel::kMoeGating, "cpu").supported);
  EXPECT_STREQ(kernel_name(Kernel::kMoeGating), "moe_gating");
  const KernelSupport bad = kernel_support(Kernel::kMoeGating, "tpu:0");
  EXPECT_FALSE(bad.supported);
  EXPECT_NE(bad.reason.find("unknown device"), std::string::npos) << bad.reason;
#ifdef AUDIT_HAVE_CUDA
  EXPECT_TRUE(cuda_compiled());
#else
  EXPECT_FALSE(cuda_compiled());
  EXPECT_FALSE(cuda_available());
  EXPECT_THROW(moe_gating_cuda_workspace_bytes(softmax_config(8, 2, true), 4),
               std::runtime_error);
#endif
  if (!cuda_available()) {
    const KernelSupport s = kernel_support(Kernel::kMoeGating, "cuda");
    EXPECT_FALSE(s.supported);
    EXPECT_EQ(s.reason, cuda_unavailable_reason());
    EXPECT_FALSE(s.reason.empty());
  } else {
    EXPECT_TRUE(cuda_unavailable_reason().empty());
    EXPECT_FALSE(kernel_support(Kernel::kMoeGating, "cuda:999").supported);
  }
}

// ---------------------------------------------------------------- GPU against the reference

#ifdef AUDIT_HAVE_CUDA
void cuda_ok(cudaError_t err, const char* what) {
  ASSERT_EQ(err, cudaSuccess) << what << ": " << cudaGetErrorString(err);
}

struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) {
    if (bytes > 0 && cudaMalloc(&p, bytes) != cudaSuccess) p = nullptr;
  }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T> T* as() const { return static_cast<T*>(p); }
};

template <typename T>
void upload(DeviceBuffer& d, const std::vector<T>& h) {
  cuda_ok(cudaMemcpy(d.p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
}
template <typename T>
void download(std::vector<T>& h, const DeviceBuffer& d) {
  cuda_ok(cudaMemcpy(h.data(), d.p, h.size() * sizeof(T), cudaMemcpyDeviceToHost), "download");
}

Routing run_gpu(const MoeGatingConfig& c, int64_t T, const void* logits, size_t logit_bytes,
                const std::vector<float>& bias) {
  Routing r = alloc_routing(c, T);
  const int64_t n = T * c.top_k;
  DeviceBuffer d_logits(logit_bytes), d_bias(bias.size() * 4), d_ids(n * 4), d_w(n * 4),
      d_counts(c.num_experts * 4), d_offsets((c.num_experts + 1) * 4), d_perm(n * 4),
      d_inv(n * 4);
  if (logit_bytes)
    cuda_ok(cudaMemcpy(d_logits.p, logits, logit_bytes, cudaMemcpyHostToDevice), "logits");
  if (!bias.empty()) upload(d_bias, bias);
  const size_t ws_bytes = moe_gating_cuda_workspace_bytes(c, T);
  DeviceBuffer ws(ws_bytes);
  MoeGatingTensors t;
  t.logits = d_logits.p;
  t.bias = bias.empty() ? nullptr : d_bias.as<float>();
  t.topk_ids = d_ids.as<int32_t>();
  t.topk_weights = d_w.as<float>();
  t.expert_counts = d_counts.as<int32_t>();
  t.expert_offsets = d_offsets.as<int32_t>();
  t.permuted_index = d_perm.as<int32_t>();
  t.inverse_index = d_inv.as<int32_t>();
  moe_gating_cuda(c, T, t, ws.p, ws_bytes, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "moe_gating_cuda");
  if (n > 0) {
    download(r.ids, d_ids);
    download(r.weights, d_w);
    download(r.permuted, d_perm);
    download(r.inverse, d_inv);
  }
  download(r.counts, d_counts);
  download(r.offsets, d_offsets);
  return r;
}

// Exact equality of integer outputs; weights within tol, reporting the max abs/rel diff.
void compare(const Routing& want, const Routing& got, int k) {
  auto first_mismatch = [](const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    size_t i = 0;
    while (i < a.size() && a[i] == b[i]) ++i;
    return i;
  };
  auto int_eq = [&](const char* what, const std::vector<int32_t>& a,
                    const std::vector<int32_t>& b) {
    const size_t i = first_mismatch(a, b);
    int64_t bad = 0;
    for (size_t j = 0; j < a.size(); ++j) bad += a[j] != b[j];
    EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << a.size() << " differ; first at " << i
                      << " (token " << i / std::max(k, 1) << "): cpu " << a[i] << " gpu "
                      << b[i];
  };
  int_eq("topk_ids", want.ids, got.ids);
  int_eq("expert_counts", want.counts, got.counts);
  int_eq("expert_offsets", want.offsets, got.offsets);
  int_eq("permuted_index", want.permuted, got.permuted);
  int_eq("inverse_index", want.inverse, got.inverse);
  double max_abs = 0, max_rel = 0;
  for (size_t i = 0; i < want.weights.size(); ++i) {
    const double d = std::fabs(double(want.weights[i]) - got.weights[i]);
    max_abs = std::max(max_abs, d);
    max_rel = std::max(max_rel, d / std::max(1e-30, std::fabs(double(want.weights[i]))));
  }
  // Both sides run the same float operations in the same order (moe_gating_math.h, the warp
  // summation order), so the weights should agree to the bit; 1e-6 relative leaves room for a
  // compiler that reassociates anyway.
  EXPECT_LE(max_rel, 1e-6) << "topk_weights: max abs diff " << max_abs << ", max rel diff "
                           << max_rel;
}

class MoeGatingGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device: " << cuda_unavailable_reason();
    const KernelSupport s = kernel_support(Kernel::kMoeGating, "cuda");
    if (!s.supported) GTEST_SKIP() << s.reason;
  }
};

TEST_F(MoeGatingGpu, MatchesReferenceOverShapes) {
  uint32_t seed = 1000;
  int runs = 0;
  for (int64_t T : {1, 7, 128, 4096}) {
    for (int E : {8, 64, 256}) {
      for (int k : {1, 2, 8}) {
        for (const Case& cs : variants(E, k)) {
          for (bool coarse : {false, true}) {
            for (bool bf16 : {false, true}) {
              if (bf16 && coarse) continue;
              std::ostringstream name;
              name << cs.name << " T=" << T << " E=" << E << " k=" << k
                   << (coarse ? " coarse(ties)" : "") << (bf16 ? " bf16" : " f32");
              SCOPED_TRACE(name.str());
              MoeGatingConfig c = cs.config;
              auto logits = random_logits(T, E, ++seed, coarse);
              const auto bias = cs.bias ? random_bias(E, ++seed) : std::vector<float>{};
              Routing want, got;
              if (bf16) {
                std::vector<uint16_t> h(logits.size());
                for (size_t i = 0; i < h.size(); ++i) h[i] = to_bf16(logits[i]);
                c.logits_dtype = MoeDType::kBFloat16;
                want = run_cpu(c, T, h.data(), bias);
                got = run_gpu(c, T, h.data(), h.size() * 2, bias);
              } else {
                want = run_cpu(c, T, logits.data(), bias);
                got = run_gpu(c, T, logits.data(), logits.size() * 4, bias);
              }
              if (HasFatalFailure()) return;
              compare(want, got, k);
              ++runs;
              if (HasFailure()) return;  // one shape's report is enough to start from
            }
          }
        }
      }
    }
  }
  EXPECT_GT(runs, 300);
}

TEST_F(MoeGatingGpu, DeepSeekV3RouterAtFullWidth) {
  const MoeGatingConfig c = deepseek_v3_gating();
  const int64_t T = 8192;
  const auto logits = random_logits(T, c.num_experts, 7);
  const auto bias = random_bias(c.num_experts, 8);
  const Routing want = run_cpu(c, T, logits.data(), bias);
  const Routing got = run_gpu(c, T, logits.data(), logits.size() * 4, bias);
  if (HasFatalFailure()) return;
  compare(want, got, c.top_k);
  check_invariants(c, T, logits, bias, got);
}

TEST_F(MoeGatingGpu, NoTokensAndSmallWorkspace) {
  const MoeGatingConfig c = softmax_config(8, 2, true);
  const Routing got = run_gpu(c, 0, nullptr, 0, {});
  if (HasFatalFailure()) return;
  EXPECT_EQ(got.counts, std::vector<int32_t>(8, 0));
  EXPECT_EQ(got.offsets, std::vector<int32_t>(9, 0));

  const size_t need = moe_gating_cuda_workspace_bytes(c, 16);
  ASSERT_GT(need, 0u);
  Routing r = alloc_routing(c, 16);
  std::vector<float> logits(16 * 8, 0.0f);
  // Host pointers are fine here: the size check fails before anything touches them.
  EXPECT_THROW(moe_gating_cuda(c, 16, tensors_of(r, logits.data(), nullptr), nullptr, need - 1,
                               nullptr),
               std::invalid_argument);
}
#else
TEST(MoeGatingGpu, MatchesReferenceOverShapes) {
  GTEST_SKIP() << "GPU comparison not built: " << cuda_unavailable_reason();
}
#endif

}  // namespace
}  // namespace audit::kernels
