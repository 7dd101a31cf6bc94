// Google Benchmark cases for batched greedy generation with the KV cache
// (reproduce/model/generate.h), without the Python peer: for iterating on generate.cpp's speed.
// The comparison with transformers is `audit bench generate` (docs/benchmarks.md). Shapes as
// there: tiny (vocab 1000, hidden 64, 2 layers, tied) and 57m (vocab 32000, hidden 512, 8 layers,
// 8/2 heads of 64, ffn 1536, untied); random weights, 64 new tokens, prompts of 32 down to 17
// tokens (left-padded). One intra-op thread. Compiled to nothing when LibTorch is not built.
#include <benchmark/benchmark.h>

#if defined(AUDIT_HAVE_TORCH)
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "reproduce/model/generate.h"
#include "reproduce/model/model.h"

namespace {

audit::model::CausalLM bench_model(bool big) {
  audit::model::ModelConfig c;
  c.vocab = big ? 32000 : 1000;
  c.hidden = big ? 512 : 64;
  c.layers = big ? 8 : 2;
  c.heads = big ? 8 : 4;
  c.kv_heads = 2;
  c.head_dim = big ? 64 : 16;
  c.ffn = big ? 1536 : 128;
  c.tie_embeddings = !big;
  c.rope_theta = 1e6;
  audit::model::CausalLM m(c);
  audit::model::init_weights(m, 0);
  m->eval();
  return m;
}

void BM_Generate(benchmark::State& state) {
  torch::set_num_threads(1);
  const bool big = state.range(0) != 0;
  const int64_t batch = state.range(1);
  static auto tiny = bench_model(false);
  static auto large = bench_model(true);
  auto& m = big ? large : tiny;
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t i = 0; i < batch; ++i) {
    std::vector<int64_t> p(static_cast<size_t>(32 - (i * 5) % 16));
    for (size_t t = 0; t < p.size(); ++t) p[t] = 1 + static_cast<int64_t>((i * 131 + t * 17) % 997);
    prompts.push_back(p);
  }
  audit::generate::GenerateConfig cfg;
  cfg.max_new_tokens = 64;
  cfg.batch_size = batch;
  for (auto _ : state) benchmark::DoNotOptimize(audit::generate::generate(m, prompts, cfg));
  state.counters["tok/s"] =
      benchmark::Counter(static_cast<double>(batch * cfg.max_new_tokens), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Generate)
    ->ArgNames({"57m", "batch"})
    ->Args({0, 1})
    ->Args({0, 16})
    ->Args({1, 1})
    ->Args({1, 16})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
#endif
