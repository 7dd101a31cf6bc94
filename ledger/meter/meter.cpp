// Metering implementation: getrusage and /proc for the process, NVML via dlopen for GPUs, and a
// sampler thread that writes meter_samples and heartbeats through its own ledger connection.
#include "ledger/meter/meter.h"

#include <dlfcn.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "ledger/store/event_keys.h"

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
// nvml.h: nvmlProcessInfo_v1_t (the unversioned entry point) has pid and usedGpuMemory;
// nvmlProcessInfo_v2_t, which _v2 and _v3 fill, adds gpuInstanceId and computeInstanceId.
struct nvmlProcessInfo_v1_t { unsigned int pid; unsigned long long usedGpuMemory; };
struct nvmlProcessInfo_v2_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId, computeInstanceId;
};
constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr nvmlReturn_t kNvmlInsufficientSize = 7;
constexpr unsigned long long kNvmlValueNotAvailable = ~0ULL;
constexpr unsigned kNvmlNameBuffer = 96;  // NVML_DEVICE_NAME_V2_BUFFER_SIZE
constexpr unsigned kNvmlUuidBuffer = 96;  // NVML_DEVICE_UUID_V2_BUFFER_SIZE
}  // namespace

struct Nvml::Fns {
  nvmlReturn_t (*init)();
  nvmlReturn_t (*count)(unsigned int*);
  nvmlReturn_t (*handle)(unsigned int, nvmlDevice_t*);
  nvmlReturn_t (*util)(nvmlDevice_t, nvmlUtilization_t*);
  nvmlReturn_t (*mem)(nvmlDevice_t, nvmlMemory_t*);
  nvmlReturn_t (*power)(nvmlDevice_t, unsigned int*);
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned int);
  nvmlReturn_t (*uuid)(nvmlDevice_t, char*, unsigned int);
  nvmlReturn_t (*energy)(nvmlDevice_t, unsigned long long*);
  // Compute processes: one of these, newest first; `procs_v1` tells which struct it fills.
  nvmlReturn_t (*procs)(nvmlDevice_t, unsigned int*, void*);
  bool procs_v1 = false;
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
  fns_->name = reinterpret_cast<decltype(fns_->name)>(sym("nvmlDeviceGetName"));
  fns_->uuid = reinterpret_cast<decltype(fns_->uuid)>(sym("nvmlDeviceGetUUID"));
  fns_->energy = reinterpret_cast<decltype(fns_->energy)>(sym("nvmlDeviceGetTotalEnergyConsumption"));
  for (const char* n : {"nvmlDeviceGetComputeRunningProcesses_v3",
                        "nvmlDeviceGetComputeRunningProcesses_v2",
                        "nvmlDeviceGetComputeRunningProcesses"}) {
    if (void* f = sym(n)) {
      fns_->procs = reinterpret_cast<decltype(fns_->procs)>(f);
      fns_->procs_v1 = std::string(n) == "nvmlDeviceGetComputeRunningProcesses";
      break;
    }
  }
  if (!fns_->power) missing_.push_back("nvmlDeviceGetPowerUsage");
  if (!fns_->name) missing_.push_back("nvmlDeviceGetName");
  if (!fns_->uuid) missing_.push_back("nvmlDeviceGetUUID");
  if (!fns_->energy) missing_.push_back("nvmlDeviceGetTotalEnergyConsumption");
  if (!fns_->procs) missing_.push_back("nvmlDeviceGetComputeRunningProcesses(_v2, _v3)");
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

void* Nvml::handle(int index) const {
  if (!ok_ || index < 0 || index >= count_) return nullptr;
  nvmlDevice_t dev = nullptr;
  if (fns_->handle(unsigned(index), &dev) != kNvmlSuccess) return nullptr;
  return dev;
}

bool Nvml::read(int index, Reading* out) const {
  nvmlDevice_t dev = handle(index);
  if (!dev) return false;
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

std::string Nvml::name(int index) const {
  nvmlDevice_t dev = handle(index);
  char buf[kNvmlNameBuffer] = {};
  if (!dev || !fns_->name || fns_->name(dev, buf, sizeof buf) != kNvmlSuccess) return "";
  return std::string(buf, strnlen(buf, sizeof buf));
}

std::string Nvml::uuid(int index) const {
  nvmlDevice_t dev = handle(index);
  char buf[kNvmlUuidBuffer] = {};
  if (!dev || !fns_->uuid || fns_->uuid(dev, buf, sizeof buf) != kNvmlSuccess) return "";
  return std::string(buf, strnlen(buf, sizeof buf));
}

bool Nvml::energy_mj(int index, uint64_t* out) const {
  nvmlDevice_t dev = handle(index);
  unsigned long long mj = 0;
  if (!dev || !fns_->energy || fns_->energy(dev, &mj) != kNvmlSuccess) return false;
  *out = uint64_t(mj);
  return true;
}

std::optional<std::vector<Nvml::Process>> Nvml::processes(int index) const {
  nvmlDevice_t dev = handle(index);
  if (!dev || !fns_->procs) return std::nullopt;
  // Ask with room for 64; when more run, NVML says how many (room is added for ones starting).
  unsigned capacity = 64;
  for (int attempt = 0; attempt < 4; ++attempt) {
    unsigned n = capacity;
    std::vector<Process> out;
    nvmlReturn_t rc;
    auto keep = [&](unsigned pid, unsigned long long mem) {
      out.push_back({int(pid), mem == kNvmlValueNotAvailable ? -1.0 : double(mem)});
    };
    if (fns_->procs_v1) {
      std::vector<nvmlProcessInfo_v1_t> infos(capacity);
      rc = fns_->procs(dev, &n, infos.data());
      for (unsigned i = 0; rc == kNvmlSuccess && i < n && i < capacity; ++i)
        keep(infos[i].pid, infos[i].usedGpuMemory);
    } else {
      std::vector<nvmlProcessInfo_v2_t> infos(capacity);
      rc = fns_->procs(dev, &n, infos.data());
      for (unsigned i = 0; rc == kNvmlSuccess && i < n && i < capacity; ++i)
        keep(infos[i].pid, infos[i].usedGpuMemory);
    }
    if (rc == kNvmlSuccess) return out;
    if (rc != kNvmlInsufficientSize) return std::nullopt;
    capacity = std::max(capacity * 2, n + 16);
  }
  return std::nullopt;
}

// ---- Energy source ----------------------------------------------------------------------
StageEnergy choose_stage_energy(std::optional<uint64_t> c0, std::optional<uint64_t> c1,
                                bool power_sampled, double integrated_j) {
  StageEnergy e;
  if (c0 && c1 && *c1 >= *c0) {
    e.joules = double(*c1 - *c0) / 1000.0;
    e.source = kEnergyCounter;
    return e;
  }
  if (c0 && c1)
    e.note = "the energy counter went backwards (" + std::to_string(*c0) + " -> " +
             std::to_string(*c1) + " mJ: driver reloaded or counter wrapped), not used";
  else if (c0 || c1)
    e.note = std::string("the energy counter was read only at the ") + (c0 ? "start" : "end");
  else
    e.note = "the device has no energy counter (nvmlDeviceGetTotalEnergyConsumption)";
  if (power_sampled) {
    e.joules = integrated_j;
    e.source = kEnergyIntegrated;
  } else {
    e.source = kEnergyNotMetered;
    e.note += "; no power sample (nvmlDeviceGetPowerUsage) was read";
  }
  return e;
}

std::string weakest_energy_source(const std::vector<std::string>& per_gpu) {
  if (per_gpu.empty()) return kEnergyNotMetered;
  auto rank = [](const std::string& s) {
    return s == kEnergyCounter ? 2 : s == kEnergyIntegrated ? 1 : 0;
  };
  std::string weakest = per_gpu.front();
  for (const auto& s : per_gpu)
    if (rank(s) < rank(weakest)) weakest = s;
  return rank(weakest) == 0 ? kEnergyNotMetered : weakest;
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
  power_seen_gpu_.assign(opt_.gpus.size(), 0);
  counter0_.assign(opt_.gpus.size(), std::nullopt);
  const Nvml& nvml = Nvml::instance();
  for (size_t i = 0; i < opt_.gpus.size(); ++i) {
    gpu_name_.push_back(nvml.name(opt_.gpus[i]));
    gpu_uuid_.push_back(nvml.uuid(opt_.gpus[i]));
    uint64_t mj = 0;
    if (nvml.energy_mj(opt_.gpus[i], &mj)) counter0_[i] = mj;
  }
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
      power_seen_gpu_[i] = 1;
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
  sample_gpu_pids();
}

std::set<int> StageMeter::stage_pids() const {
  if (opt_.pid_filter) return opt_.pid_filter();
  return {int(getpid())};
}

void StageMeter::sample_gpu_pids() {
  const Nvml& nvml = Nvml::instance();
  if (opt_.gpus.empty() || !nvml.available()) return;
  std::set<int> mine;
  try {
    mine = stage_pids();
  } catch (...) {
    return;  // a filter that fails (the tree is gone) leaves this sample out
  }
  for (int gpu : opt_.gpus) {
    auto procs = nvml.processes(gpu);
    std::lock_guard<std::mutex> lock(gpu_mu_);
    if (!procs) {
      process_list_failed_.insert(gpu);
      continue;
    }
    for (const auto& p : *procs) {
      if (!mine.count(p.pid)) continue;
      auto [it, fresh] = gpu_pid_mem_[gpu].emplace(p.pid, p.used_mem_bytes);
      if (!fresh) it->second = std::max(it->second, p.used_mem_bytes);
    }
  }
}

std::map<int, std::set<int>> StageMeter::gpu_pids() const {
  std::lock_guard<std::mutex> lock(gpu_mu_);
  std::map<int, std::set<int>> out;
  for (const auto& [gpu, pids] : gpu_pid_mem_)
    for (const auto& [pid, mem] : pids) out[gpu].insert(pid);
  return out;
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
  const Nvml& nvml = Nvml::instance();
  std::vector<std::string> sources;
  nlohmann::json gpus = nlohmann::json::array();
  for (size_t i = 0; i < opt_.gpus.size(); ++i) {
    s.gpu_busy_s += busy_s_[i];
    s.gpu_peak_mem_bytes = std::max(s.gpu_peak_mem_bytes, peak_mem_[i]);
    std::optional<uint64_t> c1;
    uint64_t mj = 0;
    if (nvml.energy_mj(opt_.gpus[i], &mj)) c1 = mj;
    const StageEnergy e = choose_stage_energy(counter0_[i], c1, power_seen_gpu_[i], energy_j_[i]);
    s.energy_j += e.joules;
    power_seen_ = power_seen_ || e.source != kEnergyNotMetered;
    sources.push_back(e.source);
    nlohmann::json g = {{"gpu", opt_.gpus[i]},
                        {"name", gpu_name_[i]},
                        {"uuid", gpu_uuid_[i]},
                        {"energy_source", e.source},
                        {"energy_j", e.joules},
                        {"integrated_power_j", power_seen_gpu_[i] ? nlohmann::json(energy_j_[i])
                                                                  : nlohmann::json(nullptr)},
                        {"counter_start_mj", counter0_[i] ? nlohmann::json(*counter0_[i])
                                                          : nlohmann::json(nullptr)},
                        {"counter_end_mj", c1 ? nlohmann::json(*c1) : nlohmann::json(nullptr)},
                        {"busy_s", busy_s_[i]},
                        {"peak_mem_bytes", peak_mem_[i]}};
    if (!e.note.empty()) g["note"] = e.note;
    nlohmann::json procs = nlohmann::json::array();
    {
      std::lock_guard<std::mutex> lock(gpu_mu_);
      auto it = gpu_pid_mem_.find(opt_.gpus[i]);
      if (it != gpu_pid_mem_.end())
        for (const auto& [pid, mem] : it->second)
          procs.push_back({{"pid", pid}, {"max_used_mem_bytes", mem < 0 ? nlohmann::json(nullptr)
                                                                        : nlohmann::json(mem)}});
      g["processes"] = procs;
      if (process_list_failed_.count(opt_.gpus[i]))
        g["processes_note"] = "NVML could not list the compute processes at some samples";
    }
    gpus.push_back(std::move(g));
  }
  energy_source_ = weakest_energy_source(sources);
  s.power_metered = power_seen_;
  s.status = status;
  if (!opt_.gpus.empty()) {
    // What the stage_stop row cannot say: where each GPU's energy came from, which device it
    // was, and which of the stage's processes used it.
    nlohmann::json v = {{"energy_source", energy_source_}, {"gpus", gpus},
                        {"nvml", nvml.available() ? "available" : nvml.why_absent()}};
    if (nvml.available() && !nvml.unsupported().empty()) v["nvml_unsupported"] = nvml.unsupported();
    if (!nvml.available()) v["why_not_metered"] = nvml.why_absent();
    ledger_.append_event(run_id_, stage_id_, keys::kPoint, keys::kGpuMetering, v, "ledger/meter/meter.cpp");
  }
  ledger_.end_stage(s);
  return s;
}

}  // namespace audit::ledger
