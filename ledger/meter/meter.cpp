// Metering implementation: getrusage and /proc for the process, NVML via dlopen for GPUs, and a
// sampler thread that writes meter_samples and heartbeats through its own ledger connection.
#include "ledger/meter/meter.h"

#include <dlfcn.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>

namespace audit::ledger {

double now_unix() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec * 1e-6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

double process_rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long pages_total = 0, pages_rss = 0;
  if (!(f >> pages_total >> pages_rss)) return 0;
  return double(pages_rss) * double(sysconf(_SC_PAGESIZE));
}

double process_peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) * 1024.0;  // Linux reports KiB
}

// ---- NVML -------------------------------------------------------------------------------
namespace {
using nvmlReturn_t = int;
using nvmlDevice_t = void*;
struct nvmlUtilization_t { unsigned int gpu, memory; };
struct nvmlMemory_t { unsigned long long total, free, used; };
}  // namespace

struct Nvml::Fns {
  nvmlReturn_t (*init)();
  nvmlReturn_t (*count)(unsigned int*);
  nvmlReturn_t (*handle)(unsigned int, nvmlDevice_t*);
  nvmlReturn_t (*util)(nvmlDevice_t, nvmlUtilization_t*);
  nvmlReturn_t (*mem)(nvmlDevice_t, nvmlMemory_t*);
  nvmlReturn_t (*power)(nvmlDevice_t, unsigned int*);
};

Nvml& Nvml::instance() {
  static Nvml nvml;
  return nvml;
}

Nvml::Nvml() : fns_(std::make_unique<Fns>()) {
  lib_ = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib_) {
    why_ = "libnvidia-ml.so.1 not found (no NVIDIA driver on this machine)";
    return;
  }
  auto sym = [&](const char* name) { return dlsym(lib_, name); };
  fns_->init = reinterpret_cast<decltype(fns_->init)>(sym("nvmlInit_v2"));
  fns_->count = reinterpret_cast<decltype(fns_->count)>(sym("nvmlDeviceGetCount_v2"));
  fns_->handle = reinterpret_cast<decltype(fns_->handle)>(sym("nvmlDeviceGetHandleByIndex_v2"));
  fns_->util = reinterpret_cast<decltype(fns_->util)>(sym("nvmlDeviceGetUtilizationRates"));
  fns_->mem = reinterpret_cast<decltype(fns_->mem)>(sym("nvmlDeviceGetMemoryInfo"));
  fns_->power = reinterpret_cast<decltype(fns_->power)>(sym("nvmlDeviceGetPowerUsage"));
  if (!fns_->init || !fns_->count || !fns_->handle || !fns_->util || !fns_->mem) {
    why_ = "libnvidia-ml.so.1 lacks the NVML v2 entry points";
    return;
  }
  if (fns_->init() != 0) {
    why_ = "nvmlInit_v2 failed";
    return;
  }
  unsigned int n = 0;
  if (fns_->count(&n) != 0) {
    why_ = "nvmlDeviceGetCount_v2 failed";
    return;
  }
  count_ = int(n);
  ok_ = true;
}

bool Nvml::read(int index, Reading* out) const {
  if (!ok_ || index < 0 || index >= count_) return false;
  nvmlDevice_t dev = nullptr;
  if (fns_->handle(unsigned(index), &dev) != 0) return false;
  nvmlUtilization_t u{};
  nvmlMemory_t m{};
  if (fns_->util(dev, &u) != 0 || fns_->mem(dev, &m) != 0) return false;
  out->util_pct = u.gpu;
  out->mem_used = double(m.used);
  out->mem_total = double(m.total);
  unsigned int mw = 0;
  out->power_w = (fns_->power && fns_->power(dev, &mw) == 0) ? mw / 1000.0 : -1;
  return true;
}

// ---- StageMeter -------------------------------------------------------------------------
StageMeter::StageMeter(Ledger& ledger, int64_t run_id, const std::string& stage, MeterOptions opt)
    : ledger_(ledger), run_id_(run_id), name_(stage), opt_(std::move(opt)) {
  stage_id_ = ledger_.begin_stage(run_id_, name_);
  writer_ = std::make_unique<Ledger>(ledger_.path());
  t0_ = now_unix();
  cpu0_ = process_cpu_seconds();
  last_t_ = t0_;
  busy_s_.assign(opt_.gpus.size(), 0.0);
  peak_mem_.assign(opt_.gpus.size(), 0.0);
  energy_j_.assign(opt_.gpus.size(), 0.0);
  thread_ = std::thread([this] { loop(); });
}

StageMeter::~StageMeter() {
  if (!finished_) {
    try {
      finish("failed");
    } catch (...) {
    }
  }
}

double StageMeter::elapsed_s() const { return now_unix() - t0_; }

void StageMeter::take_sample(std::vector<MeterSample>* buf) {
  double t = now_unix();
  double dt = std::max(0.0, t - last_t_);
  last_t_ = t;
  MeterSample cpu;
  cpu.run_id = run_id_;
  cpu.stage_id = stage_id_;
  cpu.t = t;
  cpu.device = "cpu";
  cpu.wall_s = t - t0_;
  if (opt_.tree_probe) {
    double c = 0, rss = 0;
    if (!opt_.tree_probe(&c, &rss)) c = rss = 0;
    cpu.cpu_s = c;
    cpu.mem_bytes = rss;
  } else {
    cpu.cpu_s = process_cpu_seconds() - cpu0_;
    cpu.mem_bytes = process_rss_bytes();
  }
  buf->push_back(cpu);
  const Nvml& nvml = Nvml::instance();
  for (size_t i = 0; i < opt_.gpus.size(); ++i) {
    Nvml::Reading r;
    if (!nvml.read(opt_.gpus[i], &r)) continue;
    busy_s_[i] += dt * r.util_pct / 100.0;
    peak_mem_[i] = std::max(peak_mem_[i], r.mem_used);
    if (r.power_w >= 0) {
      energy_j_[i] += dt * r.power_w;
      power_seen_ = true;
    }
    MeterSample g;
    g.run_id = run_id_;
    g.stage_id = stage_id_;
    g.t = t;
    g.device = "cuda:" + std::to_string(opt_.gpus[i]);
    g.wall_s = t - t0_;
    g.busy_s = busy_s_[i];
    g.mem_bytes = r.mem_used;
    g.power_w = r.power_w;
    buf->push_back(g);
  }
}

void StageMeter::flush(std::vector<MeterSample>* buf) {
  if (buf->empty()) return;
  writer_->transaction([&] {
    writer_->add_meter_samples(*buf);
    writer_->heartbeat(run_id_);
  });
  written_ += int64_t(buf->size());
  buf->clear();
}

void StageMeter::loop() {
  std::vector<MeterSample> buf;
  std::unique_lock<std::mutex> lock(mu_);
  const auto period = std::chrono::duration<double>(opt_.interval_s);
  auto next = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
  int pending = 0;
  while (!stop_) {
    if (cv_.wait_until(lock, next, [this] { return stop_; })) break;
    next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
    lock.unlock();
    take_sample(&buf);
    if (++pending >= opt_.flush_every) {
      flush(&buf);
      pending = 0;
    }
    lock.lock();
  }
  lock.unlock();
  take_sample(&buf);  // the closing sample: the stage's final wall and CPU seconds
  flush(&buf);
}

StageInfo StageMeter::finish(const std::string& status) {
  if (finished_) throw std::logic_error("StageMeter::finish called twice for stage " + name_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  finished_ = true;
  StageInfo s;
  s.id = stage_id_;
  s.run_id = run_id_;
  s.name = name_;
  s.started_at = t0_;
  s.ended_at = now_unix();
  s.wall_s = s.ended_at - t0_;
  s.cpu_s = process_cpu_seconds() - cpu0_;
  if (opt_.tree_probe) {
    double c = 0, rss = 0;
    s.cpu_s = opt_.tree_probe(&c, &rss) ? c : 0;
  }
  s.gpu_count = int(opt_.gpus.size());
  s.gpu_s = s.gpu_count * s.wall_s;
  for (size_t i = 0; i < opt_.gpus.size(); ++i) {
    s.gpu_busy_s += busy_s_[i];
    s.gpu_peak_mem_bytes = std::max(s.gpu_peak_mem_bytes, peak_mem_[i]);
    s.energy_j += energy_j_[i];
  }
  s.power_metered = power_seen_;
  s.status = status;
  ledger_.end_stage(s);
  return s;
}

}  // namespace audit::ledger
