// GPU metering beyond GPU 0: the choice of a stage's energy source (counter, integrated power,
// not metered), NVML names mapped to the hardware table, and what a stage records on a machine
// without NVML. The NvmlGpu suite reads a real device (label gpu; it skips without NVML).
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <thread>

#include <nlohmann/json.hpp>

#include "ledger/costs/hardware.h"
#include "ledger/meter/meter.h"
#include "ledger/store/event_keys.h"
#include "ledger/store/ledger.h"
#include "tests/support/support.h"

using namespace audit::ledger;
using nlohmann::json;

namespace {
RunInfo test_run() {
  RunInfo r;
  r.name = "gpu-metering-test";
  r.recipe_text = "[claim]\nname = \"gpu-metering-test\"\n";
  r.recipe_sha256 = sha256_hex(r.recipe_text);
  r.host = "test";
  r.device = "cpu";
  return r;
}

std::vector<json> gpu_events(const Ledger& l, int64_t run) {
  std::vector<json> out;
  for (const auto& e : l.events(run))
    if (e.key == keys::kGpuMetering) out.push_back(json::parse(e.value));
  return out;
}
}  // namespace

TEST(StageEnergy, CounterDifferenceWhenPresent) {
  auto e = choose_stage_energy(1'000'000, 1'250'500, true, 999.0);
  EXPECT_DOUBLE_EQ(e.joules, 250.5) << "mJ difference, not the power integral";
  EXPECT_EQ(e.source, kEnergyCounter);
  EXPECT_EQ(e.note, "");
  // Without a power sample the counter still stands.
  e = choose_stage_energy(10, 10, false, 0.0);
  EXPECT_EQ(e.source, kEnergyCounter);
  EXPECT_DOUBLE_EQ(e.joules, 0.0);
  // Near the top of the 64-bit range: no overflow in the difference.
  const uint64_t top = std::numeric_limits<uint64_t>::max();
  e = choose_stage_energy(top - 2000, top - 1000, true, 5.0);
  EXPECT_DOUBLE_EQ(e.joules, 1.0);
}

TEST(StageEnergy, IntegratedPowerWithoutCounter) {
  auto e = choose_stage_energy(std::nullopt, std::nullopt, true, 123.5);
  EXPECT_DOUBLE_EQ(e.joules, 123.5);
  EXPECT_EQ(e.source, kEnergyIntegrated);
  EXPECT_NE(e.note.find("no energy counter"), std::string::npos) << e.note;
  e = choose_stage_energy(100, std::nullopt, true, 7.0);
  EXPECT_EQ(e.source, kEnergyIntegrated);
  EXPECT_NE(e.note.find("only at the start"), std::string::npos) << e.note;
}

TEST(StageEnergy, CounterThatWentBackwardsIsNotTrusted) {
  auto e = choose_stage_energy(5000, 100, true, 42.0);
  EXPECT_EQ(e.source, kEnergyIntegrated);
  EXPECT_DOUBLE_EQ(e.joules, 42.0);
  EXPECT_NE(e.note.find("went backwards (5000 -> 100 mJ"), std::string::npos) << e.note;
  e = choose_stage_energy(5000, 100, false, 0.0);
  EXPECT_EQ(e.source, kEnergyNotMetered);
  EXPECT_DOUBLE_EQ(e.joules, 0.0);
}

TEST(StageEnergy, NotMeteredWithNeither) {
  auto e = choose_stage_energy(std::nullopt, std::nullopt, false, 0.0);
  EXPECT_EQ(e.source, kEnergyNotMetered);
  EXPECT_DOUBLE_EQ(e.joules, 0.0);
  EXPECT_NE(e.note.find("no power sample"), std::string::npos) << e.note;
}

TEST(StageEnergy, StageSourceIsTheWeakestGpus) {
  EXPECT_EQ(weakest_energy_source({}), kEnergyNotMetered);
  EXPECT_EQ(weakest_energy_source({kEnergyCounter, kEnergyCounter}), kEnergyCounter);
  EXPECT_EQ(weakest_energy_source({kEnergyCounter, kEnergyIntegrated}), kEnergyIntegrated);
  EXPECT_EQ(weakest_energy_source({kEnergyIntegrated, kEnergyNotMetered, kEnergyCounter}),
            kEnergyNotMetered);
  EXPECT_EQ(weakest_energy_source({"something else"}), kEnergyNotMetered);
}

TEST(GpuTypeFromNvml, NamesMapToTheHardwareTable) {
  // Names as nvmlDeviceGetName / nvidia-smi print them.
  const std::pair<const char*, const char*> cases[] = {
      {"NVIDIA H100 80GB HBM3", "H100-SXM"},
      {"NVIDIA H100 SXM5 80GB", "H100-SXM"},
      {"NVIDIA H100 PCIe", ""},  // 350 W, 2.0 TB/s: not the SXM row
      {"NVIDIA H100 NVL", ""},
      {"NVIDIA H800", "H800-SXM"},
      {"NVIDIA H800 80GB HBM3", "H800-SXM"},
      {"NVIDIA H800 PCIe", ""},
      {"NVIDIA H200", "H200-SXM"},
      {"NVIDIA H200 NVL", ""},
      {"NVIDIA GH200 480GB", ""},
      {"NVIDIA A100-SXM4-80GB", "A100-80GB-SXM"},
      {"NVIDIA A100-SXM4-40GB", ""},  // 40 GB, 1.6 TB/s
      {"NVIDIA A100 80GB PCIe", ""},
      {"NVIDIA A100-PCIE-40GB", ""},
      {"NVIDIA L40S", ""},
      {"NVIDIA GeForce RTX 4090", ""},
      {"Tesla V100-SXM2-32GB", ""},
      {"NVIDIA H100", ""},  // no memory or form factor: not guessed
      {"", ""},
  };
  for (const auto& [name, id] : cases) {
    EXPECT_EQ(gpu_type_from_nvml_name(name), id) << "'" << name << "'";
    if (*id) {
      auto hw = find_hardware(id);
      ASSERT_TRUE(hw.has_value()) << id << " must be a key of the hardware table";
      EXPECT_EQ(hw->id, id);
    }
  }
}

TEST(GpuMetering, WithoutNvmlEveryCallSaysUnavailable) {
  const Nvml& nvml = Nvml::instance();
  if (nvml.available()) GTEST_SKIP() << "NVML present: this test covers machines without it";
  EXPECT_EQ(nvml.name(0), "");
  EXPECT_EQ(nvml.uuid(0), "");
  uint64_t mj = 12345;
  EXPECT_FALSE(nvml.energy_mj(0, &mj));
  EXPECT_EQ(mj, 12345u) << "untouched when unsupported";
  EXPECT_FALSE(nvml.processes(0).has_value()) << "unlisted is not 'no process'";
  EXPECT_TRUE(nvml.unsupported().empty()) << "no library: why_absent() says it, not this list";
}

TEST(GpuMetering, StageWithoutNvmlRecordsNotMeteredAndWhy) {
  const Nvml& nvml = Nvml::instance();
  if (nvml.available()) GTEST_SKIP() << "NVML present: this test covers machines without it";
  const audit::testing::TempDir dir("audit_gpu_metering_nonvml");
  Ledger l(dir.file("audit.db"));
  int64_t run = l.begin_run(test_run());
  MeterOptions opt;
  opt.interval_s = 0.03;
  opt.gpus = {0, 1};
  std::atomic<int> filter_calls{0};
  opt.pid_filter = [&] {
    ++filter_calls;
    return std::set<int>{int(getpid())};
  };
  StageMeter m(l, run, "launch", opt);
  EXPECT_EQ(m.energy_source(), "") << "not decided before finish";
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  StageInfo s = m.finish();
  EXPECT_EQ(m.energy_source(), kEnergyNotMetered);
  EXPECT_EQ(s.gpu_count, 2);
  EXPECT_DOUBLE_EQ(s.energy_j, 0.0);
  EXPECT_FALSE(s.power_metered);
  EXPECT_TRUE(m.gpu_pids().empty());
  EXPECT_EQ(filter_calls.load(), 0) << "without NVML the process tree is not walked for GPUs";

  auto evs = gpu_events(l, run);
  ASSERT_EQ(evs.size(), 1u);
  const json& v = evs[0];
  EXPECT_EQ(v["energy_source"], kEnergyNotMetered);
  EXPECT_EQ(v["why_not_metered"], nvml.why_absent());
  ASSERT_EQ(v["gpus"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const json& g = v["gpus"][i];
    EXPECT_EQ(g["gpu"], i);
    EXPECT_EQ(g["name"], "");
    EXPECT_EQ(g["energy_source"], kEnergyNotMetered);
    EXPECT_TRUE(g["counter_start_mj"].is_null());
    EXPECT_TRUE(g["integrated_power_j"].is_null());
    EXPECT_TRUE(g["processes"].empty());
    EXPECT_NE(g["note"].get<std::string>().find("no energy counter"), std::string::npos);
  }
  // The event sits in the stage, before its stage_stop, and the chain still verifies.
  const auto events = l.events(run);
  size_t at_gpu = 0, at_stop = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].key == keys::kGpuMetering) at_gpu = i;
    if (events[i].key == keys::kStageStop) at_stop = i;
  }
  EXPECT_LT(at_gpu, at_stop);
  EXPECT_EQ(events[at_gpu].stage_id, s.id);
  auto report = l.verify();
  EXPECT_TRUE(report.ok) << report.message;
}

TEST(GpuMetering, CpuStageWritesNoGpuEvent) {
  const audit::testing::TempDir dir("audit_gpu_metering_cpu");
  Ledger l(dir.file("audit.db"));
  int64_t run = l.begin_run(test_run());
  MeterOptions opt;
  opt.interval_s = 0.05;
  StageMeter m(l, run, "cpu-only", opt);
  m.finish();
  EXPECT_EQ(m.energy_source(), kEnergyNotMetered);
  EXPECT_TRUE(gpu_events(l, run).empty());
}

// On a machine with NVML (label gpu): every new call on a real device, and an idle stage on
// GPU 0 metered by the counter where the device has one.
TEST(NvmlGpu, ReadsNamesCountersAndProcesses) {
  const Nvml& nvml = Nvml::instance();
  if (!nvml.available()) GTEST_SKIP() << "no NVML: " << nvml.why_absent();
  ASSERT_GT(nvml.device_count(), 0);
  for (const auto& miss : nvml.unsupported()) std::fprintf(stderr, "NVML lacks %s\n", miss.c_str());
  for (int i = 0; i < nvml.device_count(); ++i) {
    const std::string name = nvml.name(i);
    EXPECT_FALSE(name.empty()) << "GPU " << i;
    EXPECT_EQ(nvml.uuid(i).rfind("GPU-", 0), 0u) << nvml.uuid(i);
    std::fprintf(stderr, "GPU %d: %s -> hardware table '%s'\n", i, name.c_str(),
                 gpu_type_from_nvml_name(name).c_str());
    uint64_t a = 0, b = 0;
    if (nvml.energy_mj(i, &a)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      ASSERT_TRUE(nvml.energy_mj(i, &b));
      EXPECT_GE(b, a) << "the counter only grows";
    }
    auto procs = nvml.processes(i);
    ASSERT_TRUE(procs.has_value()) << "listing compute processes failed on GPU " << i;
  }
  const audit::testing::TempDir dir("audit_gpu_metering_gpu");
  Ledger l(dir.file("audit.db"));
  int64_t run = l.begin_run(test_run());
  MeterOptions opt;
  opt.interval_s = 0.1;
  opt.gpus = {0};
  StageMeter m(l, run, "idle-gpu", opt);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  StageInfo s = m.finish();
  EXPECT_NE(m.energy_source(), kEnergyNotMetered);
  EXPECT_GT(s.energy_j, 0.0) << "an idle GPU still draws power";
  auto evs = gpu_events(l, run);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0]["gpus"][0]["name"], nvml.name(0));
  EXPECT_TRUE(l.verify().ok);
}
