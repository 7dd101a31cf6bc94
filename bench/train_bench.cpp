// Google Benchmark cases for the C++ trainer: one full train step (forward, masked loss,
// backward, clip, AdamW) per iteration on the s1-mini recipe's base (mini), a small model
// (small, 0.83M parameters) and one ~11x larger (large), batch 16 x seq 256, reported as tokens/s. The PyTorch eager counterpart and the ratio come from
// `audit bench train` (reproduce/cli_torch/cmd_bench.cpp); figures in docs/benchmarks.md.
// Compiled to nothing when LibTorch is not built (audit_bench then holds the other benches).
#include <benchmark/benchmark.h>

#if defined(AUDIT_HAVE_TORCH)
#include <torch/torch.h>

#include "reproduce/model/model.h"
#include "reproduce/trainer/trainer.h"

namespace {

void BM_TrainStep(benchmark::State& state, const std::string& size) {
  const int threads = static_cast<int>(state.range(0));
  if (threads > 0) torch::set_num_threads(threads);
  const int64_t batch = 16, seq = 256;
  const auto mc = audit::train::bench_model_config(size);
  audit::model::CausalLM m(mc);
  audit::model::init_weights(m, 0);
  audit::train::TrainData data;
  data.tokens = torch::randint(0, mc.vocab, {batch, seq}, torch::kLong);
  data.loss_mask = torch::ones({batch, seq}, torch::kLong);
  audit::train::TrainConfig cfg;
  cfg.global_batch = cfg.micro_batch = batch;
  cfg.lr = 1e-3;
  cfg.max_steps = 1 << 30;
  cfg.warmup_steps = 0;
  cfg.shuffle = false;
  audit::train::Trainer trainer(m, cfg, data);
  trainer.step();  // warm up allocator and kernels
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step().loss);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(batch * seq),
                                                  benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = torch::get_num_threads();
  state.counters["params_M"] = mc.parameter_count() / 1e6;
}

// Arg: torch threads (0: torch's default).
BENCHMARK_CAPTURE(BM_TrainStep, mini, std::string("mini"))
    ->Arg(0)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK_CAPTURE(BM_TrainStep, small, std::string("small"))
    ->Arg(0)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK_CAPTURE(BM_TrainStep, large, std::string("large"))
    ->Arg(0)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(5.0);

}  // namespace
#endif
