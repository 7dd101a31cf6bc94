// Metering: wall seconds, process CPU seconds and RSS, and per GPU busy seconds, memory, power
// and energy through NVML (libnvidia-ml loaded at run time; its absence is recorded, not faked).
// A StageMeter samples from a background thread at a fixed interval into the ledger's
// meter_samples, keeps the run's heartbeat fresh, and writes the stage's totals when it ends;
// a stage with GPUs also gets a gpu_metering event (device names, where its energy came from:
// the NVML energy counter or integrated power samples, and which of its PIDs used which GPU).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ledger/store/ledger.h"

namespace audit::ledger {

double now_unix();              // wall clock, unix seconds
double process_cpu_seconds();   // user + system CPU seconds of this process (getrusage)
double process_rss_bytes();     // resident set size now
double process_peak_rss_bytes();

// NVML loaded with dlopen("libnvidia-ml.so.1"). All calls are no-ops when it is absent. Entry
// points that the loaded driver lacks (an old driver) make only their own call unsupported;
// unsupported() lists them. Indices are NVML's (all GPUs of the machine, in PCI order), not
// CUDA's, which CUDA_VISIBLE_DEVICES renumbers.
class Nvml {
 public:
  static Nvml& instance();
  bool available() const { return ok_; }
  const std::string& why_absent() const { return why_; }
  int device_count() const { return count_; }
  struct Reading {
    double util_pct = 0;     // GPU utilization over the driver's last sample period
    double mem_used = 0;     // bytes
    double mem_total = 0;    // bytes of device memory in all
    double power_w = -1;     // -1 when the device does not report power
  };
  bool read(int index, Reading* out) const;

  // The product name (nvmlDeviceGetName), e.g. "NVIDIA H100 80GB HBM3"; "" when it cannot be
  // read. ledger/costs gpu_type_from_nvml_name() maps it to the hardware table.
  std::string name(int index) const;
  // The device UUID (nvmlDeviceGetUUID), "GPU-..."; "" when it cannot be read.
  std::string uuid(int index) const;
  // The device's energy counter in millijoules since the driver was loaded
  // (nvmlDeviceGetTotalEnergyConsumption, Volta and newer). False where the device or driver
  // does not have it (then a stage's energy is integrated from power samples).
  bool energy_mj(int index, uint64_t* out) const;
  // A process using the device for compute, and the device memory it holds (-1 when NVML does
  // not say: NVML_VALUE_NOT_AVAILABLE, e.g. without the rights to see it).
  struct Process {
    int pid = 0;
    double used_mem_bytes = -1;
  };
  // The compute processes on the device (nvmlDeviceGetComputeRunningProcesses_v3, else _v2, else
  // the v1 entry point, whichever the driver has). nullopt when they cannot be listed (no NVML,
  // no entry point, or the call failed); an empty list when none runs. PIDs are as the driver
  // sees them: inside a container without the host's PID namespace they may not be this
  // container's PIDs.
  std::optional<std::vector<Process>> processes(int index) const;
  // NVML entry points the loaded library lacks, by name (empty when NVML is absent altogether:
  // why_absent() says so).
  const std::vector<std::string>& unsupported() const { return missing_; }

 private:
  Nvml();
  void* handle(int index) const;  // the nvmlDevice_t, nullptr when unavailable
  bool ok_ = false;
  int count_ = 0;
  std::string why_;
  std::vector<std::string> missing_;
  void* lib_ = nullptr;
  struct Fns;
  std::unique_ptr<Fns> fns_;
};

// Where a GPU stage's energy comes from, the weakest first (StageMeter records it per GPU and
// for the stage; docs/ledger.md, event gpu_metering).
inline constexpr const char* kEnergyNotMetered = "not metered";
inline constexpr const char* kEnergyIntegrated = "integrated power samples";
inline constexpr const char* kEnergyCounter = "nvml energy counter";

// One GPU's energy over a stage, and what it was measured with.
struct StageEnergy {
  double joules = 0;
  std::string source;  // one of the kEnergy* names
  std::string note;    // why the weaker source was used, when it was; else ""
};

// The choice a StageMeter makes for one GPU: the energy counter's difference (start to finish)
// when the device had the counter at both ends and it did not go backwards; else the integral
// of the power samples when any power sample was read; else not metered (0 J). A counter that
// went backwards (the driver was reloaded, or the 64-bit counter wrapped) is not trusted.
StageEnergy choose_stage_energy(std::optional<uint64_t> counter_start_mj,
                                std::optional<uint64_t> counter_end_mj, bool power_sampled,
                                double integrated_j);

// The stage's source from its GPUs': the weakest of them (a stage is "nvml energy counter" only
// when every GPU's energy came from its counter). kEnergyNotMetered for no GPU.
std::string weakest_energy_source(const std::vector<std::string>& per_gpu);

struct MeterOptions {
  double interval_s = 1.0;       // sampling period of the background thread
  int flush_every = 5;           // samples buffered before one ledger transaction
  std::vector<int> gpus;         // NVML indices allocated to this stage (empty on CPU runs)
  // When set, the "cpu" samples and the stage's cpu_s come from this probe instead of this
  // process's getrusage: CPU seconds since the stage began and resident bytes now, of another
  // process tree (reproduce/launch meters the claimant's command with it). Called from the
  // sampler thread and once more by finish(); returns false when it has nothing yet (the sample
  // then carries 0).
  std::function<bool(double* cpu_s, double* rss_bytes)> tree_probe;
  // The PIDs whose GPU use this stage owns (for a launched command: its process tree, read at
  // each sample). Empty: this process only. Called from the sampler thread.
  std::function<std::set<int>()> pid_filter;
};

class StageMeter {
 public:
  // Begins the stage in the ledger and starts sampling. The meter writes through its own
  // connection to the ledger file, so the caller's connection stays single-threaded.
  StageMeter(Ledger& ledger, int64_t run_id, const std::string& stage, MeterOptions opt = {});
  ~StageMeter();  // finishes as "failed" if finish() was not called
  StageMeter(const StageMeter&) = delete;
  StageMeter& operator=(const StageMeter&) = delete;

  int64_t stage_id() const { return stage_id_; }
  double elapsed_s() const;
  // Stops sampling, flushes, writes the stage totals and returns them.
  StageInfo finish(const std::string& status = "succeeded");
  int64_t samples_written() const { return written_.load(); }
  // Which of the stage's PIDs (MeterOptions::pid_filter) NVML saw on which GPU (NVML index), so
  // far; complete after finish(). Samples only: a process that used a GPU for less than one
  // sampling interval can be missed.
  std::map<int, std::set<int>> gpu_pids() const;
  // The stage's energy source after finish() (one of the kEnergy* names); "" before.
  const std::string& energy_source() const { return energy_source_; }

 private:
  void loop();
  void take_sample(std::vector<MeterSample>* buf);
  void flush(std::vector<MeterSample>* buf);
  std::set<int> stage_pids() const;  // pid_filter(), else this process
  void sample_gpu_pids();             // one NVML process listing per GPU: the stage's PIDs kept

  Ledger& ledger_;
  std::unique_ptr<Ledger> writer_;  // the sampler thread's own connection
  int64_t run_id_, stage_id_;
  std::string name_;
  MeterOptions opt_;
  double t0_, cpu0_;
  // Integrals kept by the sampler, per GPU.
  std::vector<double> busy_s_, peak_mem_, energy_j_;
  std::vector<char> power_seen_gpu_;              // per GPU: a power sample was read
  std::vector<std::optional<uint64_t>> counter0_;  // per GPU: energy counter at the start, mJ
  std::vector<std::string> gpu_name_, gpu_uuid_;
  std::string energy_source_;
  // GPU -> PID -> the most device memory NVML reported for it (-1: not reported); and whether a
  // process listing failed (recorded in the event rather than read as "no process").
  mutable std::mutex gpu_mu_;
  std::map<int, std::map<int, double>> gpu_pid_mem_;
  std::set<int> process_list_failed_;
  bool power_seen_ = false;
  double last_t_ = 0;
  std::atomic<int64_t> written_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, finished_ = false;
  std::thread thread_;
};

}  // namespace audit::ledger
