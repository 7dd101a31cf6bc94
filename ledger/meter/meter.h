// Metering: wall seconds, process CPU seconds and RSS, and per GPU busy seconds, memory, power
// and energy through NVML (libnvidia-ml loaded at run time; its absence is recorded, not faked).
// A StageMeter samples from a background thread at a fixed interval into the ledger's
// meter_samples, keeps the run's heartbeat fresh, and writes the stage's totals when it ends.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ledger/store/ledger.h"

namespace audit::ledger {

double now_unix();              // wall clock, unix seconds
double process_cpu_seconds();   // user + system CPU seconds of this process (getrusage)
double process_rss_bytes();     // resident set size now
double process_peak_rss_bytes();

// NVML loaded with dlopen("libnvidia-ml.so.1"). All calls are no-ops when it is absent.
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

 private:
  Nvml();
  bool ok_ = false;
  int count_ = 0;
  std::string why_;
  void* lib_ = nullptr;
  struct Fns;
  std::unique_ptr<Fns> fns_;
};

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

 private:
  void loop();
  void take_sample(std::vector<MeterSample>* buf);
  void flush(std::vector<MeterSample>* buf);

  Ledger& ledger_;
  std::unique_ptr<Ledger> writer_;  // the sampler thread's own connection
  int64_t run_id_, stage_id_;
  std::string name_;
  MeterOptions opt_;
  double t0_, cpu0_;
  // Integrals kept by the sampler, per GPU.
  std::vector<double> busy_s_, peak_mem_, energy_j_;
  bool power_seen_ = false;
  double last_t_ = 0;
  std::atomic<int64_t> written_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, finished_ = false;
  std::thread thread_;
};

}  // namespace audit::ledger
