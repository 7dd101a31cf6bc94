// Metering: samples at the configured interval, CPU seconds of a busy stage, stage totals in the
// ledger, heartbeat, and the honest record of a machine without NVML.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "ledger/store/ledger.h"
#include "ledger/meter/meter.h"
#include "tests/support/support.h"

using namespace audit::ledger;

namespace {
// Burns `cpu_seconds` of this process's CPU time (however loaded the machine is: the wall time
// it takes may be longer when other processes compete for the cores).
double spin(double cpu_seconds) {
  double c0 = process_cpu_seconds();
  volatile double x = 1.0;
  while (process_cpu_seconds() - c0 < cpu_seconds)
    for (int i = 0; i < 1000; ++i) x = std::sqrt(x + i);
  return x;
}

RunInfo test_run() {
  RunInfo r;
  r.name = "meter-test";
  r.recipe_text = "[claim]\nname = \"meter-test\"\n";
  r.recipe_sha256 = sha256_hex(r.recipe_text);
  r.host = "test";
  r.device = "cpu";
  return r;
}
}  // namespace

TEST(Meter, SamplesStageAtInterval) {
  const audit::testing::TempDir dir("audit_meter_interval");
  Ledger l(dir.file("audit.db"));
  int64_t run = l.begin_run(test_run());
  MeterOptions opt;
  opt.interval_s = 0.05;
  opt.flush_every = 3;
  StageMeter m(l, run, "busy", opt);
  spin(0.5);
  StageInfo s = m.finish();

  EXPECT_GE(s.cpu_s, 0.5) << "the stage burned 0.5 CPU seconds";
  EXPECT_LT(s.cpu_s, 0.5 + 0.2) << "the sampler itself must cost little CPU";
  EXPECT_GE(s.wall_s, s.cpu_s * 0.95) << "one busy thread cannot use more CPU than wall time";
  EXPECT_EQ(s.gpu_count, 0);
  EXPECT_EQ(s.gpu_s, 0.0);

  auto samples = l.meter_samples(run, s.id);
  // One sample per 0.05 s of wall time plus the closing one (the sampler sleeps between them).
  const double expected = s.wall_s / 0.05;
  EXPECT_GE(double(samples.size()), 0.6 * expected);
  EXPECT_LE(double(samples.size()), expected + 3);
  for (size_t i = 1; i < samples.size(); ++i) {
    EXPECT_GE(samples[i].wall_s, samples[i - 1].wall_s);
    EXPECT_GE(samples[i].cpu_s, samples[i - 1].cpu_s);
    EXPECT_EQ(samples[i].device, "cpu");
    EXPECT_GT(samples[i].mem_bytes, 0.0);
  }
  EXPECT_NEAR(samples.back().wall_s, s.wall_s, 0.05);

  auto stages = l.stages(run);
  ASSERT_EQ(stages.size(), 1u);
  EXPECT_EQ(stages[0].name, "busy");
  EXPECT_EQ(stages[0].status, "succeeded");
  EXPECT_NEAR(stages[0].cpu_s, s.cpu_s, 1e-9);
  auto info = l.run(run);
  ASSERT_TRUE(info.has_value());
  EXPECT_GT(info->heartbeat_at, info->started_at) << "samples must refresh the heartbeat";
  EXPECT_TRUE(l.verify().ok) << l.verify().message;
}

TEST(Meter, IdleStageHasLittleCpu) {
  const audit::testing::TempDir dir("audit_meter_idle");
  Ledger l(dir.file("audit.db"));
  int64_t run = l.begin_run(test_run());
  MeterOptions opt;
  opt.interval_s = 0.05;
  StageMeter m(l, run, "idle", opt);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  StageInfo s = m.finish();
  EXPECT_NEAR(s.wall_s, 0.3, 0.15);
  EXPECT_LT(s.cpu_s, 0.5 * s.wall_s) << "a sleeping stage is not CPU-bound";
}

TEST(Meter, NoNvmlIsRecordedNotFaked) {
  const Nvml& nvml = Nvml::instance();
  if (nvml.available()) GTEST_SKIP() << "NVML present: this test covers machines without it";
  EXPECT_FALSE(nvml.why_absent().empty());
  const audit::testing::TempDir dir("audit_meter_nonvml");
  Ledger l(dir.file("audit.db"));
  int64_t run = l.begin_run(test_run());
  MeterOptions opt;
  opt.interval_s = 0.05;
  opt.gpus = {0};  // asked for a GPU that cannot be read: GPU-seconds are still billed
  StageMeter m(l, run, "gpu-less", opt);
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  StageInfo s = m.finish();
  EXPECT_EQ(s.gpu_count, 1);
  EXPECT_NEAR(s.gpu_s, s.wall_s, 1e-9) << "GPU-seconds = devices allocated x wall";
  EXPECT_EQ(s.gpu_busy_s, 0.0);
  EXPECT_FALSE(s.power_metered);
  EXPECT_EQ(s.energy_j, 0.0);
  for (const auto& smp : l.meter_samples(run, s.id)) EXPECT_EQ(smp.device, "cpu");
}

TEST(Meter, ProcessCounters) {
  double c0 = process_cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  spin(0.1);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(process_cpu_seconds() - c0, 0.1);
  EXPECT_GE(wall, 0.09) << "CPU seconds of one thread cannot outrun the wall clock";
  EXPECT_GT(process_rss_bytes(), 1e6);
  EXPECT_GE(process_peak_rss_bytes(), process_rss_bytes() * 0.5);
}
