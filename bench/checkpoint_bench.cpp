// Google Benchmark case for loading a Hugging Face checkpoint (reproduce/model/checkpoint.h):
// a random model of Qwen2.5-0.5B's shapes (hidden 896, 24 layers, 14/2 heads, ffn 4864, vocab
// 151936, tied; 494M parameters, bf16 on disk, one 988 MB file) loaded into an fp32 CPU model,
// against transformers' AutoModelForCausalLM.from_pretrained(dir, dtype=float32) timed in the
// same run by tests/golden/bench_load.py (each of its loads after a warm-up one is the time of one
// iteration of the *_transformers case; the ratio is in docs/benchmarks.md). Both sides load once
// untimed first.
//
// The checkpoint is $AUDIT_BENCH_CHECKPOINT, else made once in $TMPDIR/audit_bench_qwen2_0.5b by
// tests/golden/make_hf_checkpoints.py --arch none --big-0.5b (about 1 GB, kept for later runs).
// Compiled to nothing when LibTorch is not built.
#include <benchmark/benchmark.h>

#if defined(AUDIT_HAVE_TORCH)
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/stat.h>

#include <torch/torch.h>

#include "common/python_peer.h"
#include "common/resources.h"
#include "reproduce/model/checkpoint.h"

namespace {

// A peer script (share/audit/peers: tests/golden in a build tree).
std::string source_script(const std::string& name) { return audit::resource_path("peers/" + name); }

const std::string& checkpoint_dir() {
  static const std::string dir = [] {
    const char* env = std::getenv("AUDIT_BENCH_CHECKPOINT");
    if (env && *env) return std::string(env);
    const char* tmp = std::getenv("TMPDIR");
    const std::string root = std::string(tmp && *tmp ? tmp : "/tmp") + "/audit_bench_qwen2_0.5b";
    const std::string dir = root + "/qwen2-0.5b-bf16";
    struct stat st {};
    if (::stat((dir + "/model.safetensors").c_str(), &st) != 0) {
      const std::string cmd = audit::shell_quote(audit::default_python()) + " " +
                              audit::shell_quote(source_script("make_hf_checkpoints.py")) +
                              " " + audit::shell_quote(root) + " --arch none --big-0.5b >/dev/null";
      if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
    }
    return dir;
  }();
  return dir;
}

void BM_LoadCheckpoint_audit(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  if (threads > 0) torch::set_num_threads(threads);
  const std::string dir = checkpoint_dir();
  int64_t params = 0;
  audit::model::load_model(dir, torch::kCPU, torch::kFloat);  // warm-up: page cache, allocator
  for (auto _ : state) {
    auto m = audit::model::load_model(dir, torch::kCPU, torch::kFloat);
    params = 0;
    for (const auto& p : m->parameters()) params += p.numel();
    benchmark::DoNotOptimize(params);
  }
  state.counters["params_M"] = params / 1e6;
  state.counters["threads"] = torch::get_num_threads();
}

void BM_LoadCheckpoint_transformers(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const std::string dir = checkpoint_dir();
  // One Python process loads 1 + iterations times (transformers imported before the clock; the
  // first load, which also imports the model's code, is a warm-up like ours); each timed
  // iteration reports one of the later loads.
  const int64_t n = state.max_iterations;
  const auto j = audit::run_python_json(
      audit::shell_quote(audit::default_python()) + " " +
          audit::shell_quote(source_script("bench_load.py")) + " " + audit::shell_quote(dir) +
          " " + std::to_string(n + 1) + " " + std::to_string(threads) + " 2>/dev/null",
      "transformers checkpoint loading");
  const auto times = j["times_s"].get<std::vector<double>>();
  size_t i = 1;
  for (auto _ : state) state.SetIterationTime(times.at(i++));
  state.counters["threads"] = j["threads"].get<double>();
}

// Arg: torch threads (0: torch's default). Both cases run in the same process, alternately
// when --benchmark_repetitions is given.
BENCHMARK(BM_LoadCheckpoint_audit)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime()
    ->Iterations(3);
BENCHMARK(BM_LoadCheckpoint_transformers)->Arg(0)->Unit(benchmark::kMillisecond)
    ->UseManualTime()->Iterations(3);

}  // namespace

#endif  // AUDIT_HAVE_TORCH
