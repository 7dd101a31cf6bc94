// Metering overhead: the same CPU-bound workload with and without a StageMeter sampling into a
// ledger. Reports overhead_pct (goal: under 1% of a stage's wall time at the default 1 s
// interval; measured here at 10 samples/s, ten times the default rate, as an upper bound) and
// the cost of one sample + flush.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "ledger/store/ledger.h"
#include "ledger/meter/meter.h"

using namespace audit::ledger;

namespace {
double workload(int reps) {
  double x = 0;
  for (int r = 0; r < reps; ++r)
    for (int i = 1; i < 2000000; ++i) x += std::sqrt(double(i)) * 1e-9;
  return x;
}
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

static void BM_MeterOverhead(benchmark::State& state) {
  auto path = (std::filesystem::temp_directory_path() / "audit_meter_bench.db").string();
  std::filesystem::remove(path);
  Ledger l(path);
  RunInfo r;
  r.name = "meter-bench";
  r.recipe_text = "bench";
  r.recipe_sha256 = sha256_hex(r.recipe_text);
  int64_t run = l.begin_run(r);
  const int reps = int(state.range(0));
  double plain = 0, metered = 0;
  int64_t samples = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(workload(reps));
    plain += seconds_since(t0);
    MeterOptions opt;
    opt.interval_s = 0.1;
    t0 = std::chrono::steady_clock::now();
    StageMeter m(l, run, "bench", opt);
    benchmark::DoNotOptimize(workload(reps));
    m.finish();
    metered += seconds_since(t0);
    samples += m.samples_written();
  }
  state.counters["plain_s"] = plain / double(state.iterations());
  state.counters["metered_s"] = metered / double(state.iterations());
  state.counters["overhead_pct"] = 100.0 * (metered - plain) / plain;
  state.counters["samples"] = double(samples) / double(state.iterations());
}
BENCHMARK(BM_MeterOverhead)->Arg(100)->Unit(benchmark::kMillisecond)->Iterations(3);

static void BM_OneSampleFlush(benchmark::State& state) {
  auto path = (std::filesystem::temp_directory_path() / "audit_meter_bench2.db").string();
  std::filesystem::remove(path);
  Ledger l(path);
  RunInfo r;
  r.name = "meter-bench";
  r.recipe_text = "bench";
  r.recipe_sha256 = sha256_hex(r.recipe_text);
  int64_t run = l.begin_run(r);
  int64_t stage = l.begin_stage(run, "bench");
  for (auto _ : state) {
    MeterSample s;
    s.run_id = run;
    s.stage_id = stage;
    s.t = now_unix();
    s.device = "cpu";
    s.cpu_s = process_cpu_seconds();
    s.mem_bytes = process_rss_bytes();
    l.transaction([&] {
      l.add_meter_samples({s});
      l.heartbeat(run);
    });
  }
}
BENCHMARK(BM_OneSampleFlush)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
