// Google Benchmark cases for MoE gating (kernels/moe_gating/moe_gating.h): the CPU reference's throughput
// always; the CUDA launcher's time per call and achieved memory bandwidth against the device's
// peak when a CUDA device is present (otherwise the case reports why it is skipped).
// Bandwidth counts the compulsory traffic of the contract (compulsory_bytes below): logits and
// bias read once, every output written once. The radix sort's extra passes are not counted, so
// the figure is what the whole gating step achieves on its useful bytes.
#include "kernels/devices/devices.h"     // cuda_available, cuda_device_info (peak bandwidth)
#include "kernels/moe_gating/moe_gating.h"  // moe_gating_cpu, moe_gating_cuda

#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#ifdef AUDIT_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace audit::kernels {
namespace {

// Router shapes: arg 1 of every case.
struct Variant {
  const char* name;
  MoeGatingConfig config;
  bool bias;
};

Variant variant(int64_t i) {
  MoeGatingConfig mixtral;  // softmax top-2 of 8
  MoeGatingConfig softmax64;
  softmax64.num_experts = 64;
  softmax64.top_k = 8;
  MoeGatingConfig v3_bf16 = deepseek_v3_gating();
  v3_bf16.logits_dtype = MoeDType::kBFloat16;
  switch (i) {
    case 0: return {"deepseek_v3 sigmoid+bias E=256 k=8 groups 8/4 f32", deepseek_v3_gating(), true};
    case 1: return {"deepseek_v3 sigmoid+bias E=256 k=8 groups 8/4 bf16", v3_bf16, true};
    case 2: return {"softmax E=64 k=8 f32", softmax64, false};
    default: return {"mixtral softmax E=8 k=2 f32", mixtral, false};
  }
}

size_t logit_bytes(const MoeGatingConfig& c) {
  return c.logits_dtype == MoeDType::kBFloat16 ? 2 : 4;
}

// Bytes the contract must move at least once.
double compulsory_bytes(const MoeGatingConfig& c, int64_t T, bool bias) {
  const double E = c.num_experts, k = c.top_k;
  return T * E * logit_bytes(c) + (bias ? E * 4 : 0)  // read
         + T * k * (4 + 4 + 4 + 4)                    // ids, weights, permuted, inverse
         + E * 4 + (E + 1) * 4;                       // counts, offsets
}

// Random logits in the dtype of the config (bf16 as raw bits) and a bias.
std::vector<uint8_t> make_logits(const MoeGatingConfig& c, int64_t T) {
  std::mt19937 rng(1234);
  std::normal_distribution<float> n(0.0f, 2.0f);
  std::vector<uint8_t> bytes(T * c.num_experts * logit_bytes(c));
  for (int64_t i = 0; i < T * c.num_experts; ++i) {
    const float x = n(rng);
    if (c.logits_dtype == MoeDType::kBFloat16) {
      uint32_t u;
      std::memcpy(&u, &x, 4);
      const uint16_t h = static_cast<uint16_t>(u >> 16);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    } else {
      std::memcpy(bytes.data() + 4 * i, &x, 4);
    }
  }
  return bytes;
}

std::vector<float> make_bias(int E) {
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  std::vector<float> b(E);
  for (auto& x : b) x = u(rng);
  return b;
}

void BM_MoeGatingCpu(benchmark::State& state) {
  const int64_t T = state.range(0);
  const Variant v = variant(state.range(1));
  const MoeGatingConfig& c = v.config;
  const auto logits = make_logits(c, T);
  const auto bias = make_bias(c.num_experts);
  std::vector<int32_t> ids(T * c.top_k), counts(c.num_experts), offsets(c.num_experts + 1),
      perm(T * c.top_k), inv(T * c.top_k);
  std::vector<float> w(T * c.top_k);
  MoeGatingTensors t{logits.data(), v.bias ? bias.data() : nullptr, ids.data(), w.data(),
                     counts.data(), offsets.data(), perm.data(), inv.data()};
  for (auto _ : state) {
    moe_gating_cpu(c, T, t);
    benchmark::DoNotOptimize(ids.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * T);  // tokens
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() *
                                               compulsory_bytes(c, T, v.bias)));
  state.SetLabel(v.name);
}
BENCHMARK(BM_MoeGatingCpu)
    ->ArgNames({"T", "router"})
    ->ArgsProduct({{128, 4096}, {0, 1, 2, 3}})
    ->Unit(benchmark::kMicrosecond);

void BM_MoeGatingCuda(benchmark::State& state) {
#ifdef AUDIT_HAVE_CUDA
  if (!cuda_available()) {
    state.SkipWithError(("skipped: no CUDA device: " + cuda_unavailable_reason()).c_str());
    return;
  }
  const KernelSupport support = kernel_support(Kernel::kMoeGating, "cuda");
  if (!support.supported) {
    state.SkipWithError(("skipped: " + support.reason).c_str());
    return;
  }
  const CudaDeviceInfo info = cuda_device_info(0);
  const int64_t T = state.range(0);
  const Variant v = variant(state.range(1));
  const MoeGatingConfig& c = v.config;
  const auto h_logits = make_logits(c, T);
  const auto h_bias = make_bias(c.num_experts);
  const int64_t n = T * c.top_k;
  const size_t ws_bytes = moe_gating_cuda_workspace_bytes(c, T);
  // One allocation for everything, carved into 256-byte aligned pieces.
  const size_t sizes[] = {h_logits.size(), h_bias.size() * 4, size_t(n) * 4, size_t(n) * 4,
                          size_t(c.num_experts) * 4, size_t(c.num_experts + 1) * 4,
                          size_t(n) * 4, size_t(n) * 4, ws_bytes};
  size_t total = 0;
  for (size_t s : sizes) total += (s + 255) / 256 * 256;
  void* mem = nullptr;
  if (cudaMalloc(&mem, total) != cudaSuccess) {
    state.SkipWithError("cudaMalloc failed");
    return;
  }
  char* base = static_cast<char*>(mem);
  char* ptr[9];
  size_t at = 0;
  for (int i = 0; i < 9; ++i) {
    ptr[i] = base + at;
    at += (sizes[i] + 255) / 256 * 256;
  }
  cudaMemcpy(ptr[0], h_logits.data(), h_logits.size(), cudaMemcpyHostToDevice);
  cudaMemcpy(ptr[1], h_bias.data(), h_bias.size() * 4, cudaMemcpyHostToDevice);
  MoeGatingTensors t{ptr[0],
                     v.bias ? reinterpret_cast<const float*>(ptr[1]) : nullptr,
                     reinterpret_cast<int32_t*>(ptr[2]),
                     reinterpret_cast<float*>(ptr[3]),
                     reinterpret_cast<int32_t*>(ptr[4]),
                     reinterpret_cast<int32_t*>(ptr[5]),
                     reinterpret_cast<int32_t*>(ptr[6]),
                     reinterpret_cast<int32_t*>(ptr[7])};
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  moe_gating_cuda(c, T, t, ptr[8], ws_bytes, stream);  // warm-up
  cudaStreamSynchronize(stream);
  double seconds = 0;
  for (auto _ : state) {
    cudaEventRecord(start, stream);
    moe_gating_cuda(c, T, t, ptr[8], ws_bytes, stream);
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    state.SetIterationTime(ms / 1e3);
    seconds += ms / 1e3;
  }
  const double bytes = compulsory_bytes(c, T, v.bias);
  const double achieved = bytes * state.iterations() / seconds;
  state.SetItemsProcessed(state.iterations() * T);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["achieved_GBps"] = achieved / 1e9;
  state.counters["peak_GBps"] = info.peak_memory_bytes_per_s / 1e9;
  state.counters["pct_of_peak"] = 100.0 * achieved / info.peak_memory_bytes_per_s;
  state.SetLabel(std::string(v.name) + " on " + info.name + ", peak: " + info.peak_memory_source);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
  cudaFree(base);
#else
  state.SkipWithError(("skipped: " + cuda_unavailable_reason()).c_str());
#endif
}
BENCHMARK(BM_MoeGatingCuda)
    ->ArgNames({"T", "router"})
    ->ArgsProduct({{128, 4096, 65536}, {0, 1, 2, 3}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace audit::kernels
