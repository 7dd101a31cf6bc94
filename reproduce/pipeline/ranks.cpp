// Several processes under one `audit run` (see ranks.h): rank 0's group of workers (spawned,
// watched, metered through the store, ended) and a worker's life (join, poll for jobs, train).
#include "reproduce/pipeline/ranks.h"

#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <torch/torch.h>

#include "ledger/meter/meter.h"
#include "ledger/store/ledger.h"  // this_host
#include "reproduce/model/model.h"

extern char** environ;

namespace audit::pipeline::ranks {

using nlohmann::json;

namespace {

double rusage_cpu(const struct rusage& ru) {
  auto sec = [](const timeval& tv) { return double(tv.tv_sec) + double(tv.tv_usec) * 1e-6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

void sleep_s(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

template <class S>
json settings_json(const S& s) {
  json j = json::object();
  S::for_each_field([&](const char* name, auto field) { j[name] = s.*field; });
  return j;
}

template <class S>
void settings_from(const json& j, S* s) {
  S::for_each_field([&](const char* name, auto field) {
    using T = std::decay_t<decltype(s->*field)>;
    s->*field = j.at(name).template get<T>();
  });
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  return "stopped (status " + std::to_string(status) + ")";
}

}  // namespace

std::string rank_device(const std::string& device, int local_rank) {
  if (device.rfind("cuda", 0) == 0) return "cuda:" + std::to_string(local_rank);
  return device;
}

// ---- the job --------------------------------------------------------------------------------

std::string encode_job(const Job& job) {
  const auto& c = job.cfg;
  json h = {{"label", job.label},
            {"model", settings_json(job.model)},
            {"train", settings_json(static_cast<const settings::TrainSettings&>(c))},
            {"max_steps", c.max_steps},
            {"warmup_steps", c.warmup_steps},
            {"shuffle", c.shuffle},
            {"parallelism", c.parallelism},
            {"ddp_bucket_bytes", c.ddp_bucket_bytes},
            {"checkpoint_path", c.checkpoint_path},
            {"checkpoint_meta", c.checkpoint_meta},
            {"resume", job.resume},
            {"save_path", job.save_path},
            {"position_ids", job.data.position_ids.defined()}};
  c10::List<at::Tensor> list;
  list.push_back(job.data.tokens.cpu().contiguous());
  list.push_back(job.data.loss_mask.cpu().contiguous());
  if (job.data.position_ids.defined()) list.push_back(job.data.position_ids.cpu().contiguous());
  const std::vector<char> pickled = torch::pickle_save(c10::IValue(list));
  const std::string head = h.dump();
  std::string out = std::to_string(head.size()) + "\n" + head;
  out.append(pickled.data(), pickled.size());
  return out;
}

Job decode_job(const std::string& bytes) {
  const size_t nl = bytes.find('\n');
  if (nl == std::string::npos) throw std::runtime_error("job: no header length");
  const size_t n = std::stoul(bytes.substr(0, nl));
  const json h = json::parse(bytes.substr(nl + 1, n));
  Job job;
  job.label = h.at("label").get<std::string>();
  settings_from(h.at("model"), &job.model);
  settings::TrainSettings ts;
  settings_from(h.at("train"), &ts);
  job.cfg = train::TrainConfig(ts);
  job.cfg.max_steps = h.at("max_steps").get<int64_t>();
  job.cfg.warmup_steps = h.at("warmup_steps").get<int64_t>();
  job.cfg.shuffle = h.at("shuffle").get<bool>();
  job.cfg.parallelism = h.at("parallelism").get<std::string>();
  job.cfg.ddp_bucket_bytes = h.at("ddp_bucket_bytes").get<int64_t>();
  job.cfg.checkpoint_path = h.at("checkpoint_path").get<std::string>();
  job.cfg.checkpoint_meta = h.at("checkpoint_meta").get<std::map<std::string, std::string>>();
  job.resume = h.at("resume").get<bool>();
  job.save_path = h.at("save_path").get<std::string>();
  const std::vector<char> pickled(bytes.begin() + long(nl + 1 + n), bytes.end());
  auto list = torch::pickle_load(pickled).toTensorList();
  job.data.tokens = list.get(0);
  job.data.loss_mask = list.get(1);
  if (h.at("position_ids").get<bool>()) job.data.position_ids = list.get(2);
  return job;
}

// ---- readings -------------------------------------------------------------------------------

json RankReading::to_json() const {
  return {{"rank", rank}, {"job", job}, {"host", host}, {"device", device}, {"pid", pid},
          {"cpu0", cpu0}, {"cpu_s", cpu_s}, {"rss", rss}, {"peak_rss", peak_rss},
          {"gpu_busy_s", gpu_busy_s}, {"gpu_energy_j", gpu_energy_j},
          {"gpu_peak_mem", gpu_peak_mem}, {"gpu_source", gpu_source}, {"final", final}};
}

RankReading RankReading::from_json(const json& j) {
  RankReading r;
  r.rank = j.at("rank").get<int>();
  r.job = j.at("job").get<int64_t>();
  r.host = j.at("host").get<std::string>();
  r.device = j.at("device").get<std::string>();
  r.pid = j.at("pid").get<int>();
  r.cpu0 = j.at("cpu0").get<double>();
  r.cpu_s = j.at("cpu_s").get<double>();
  r.rss = j.at("rss").get<double>();
  r.peak_rss = j.at("peak_rss").get<double>();
  r.gpu_busy_s = j.at("gpu_busy_s").get<double>();
  r.gpu_energy_j = j.at("gpu_energy_j").get<double>();
  r.gpu_peak_mem = j.at("gpu_peak_mem").get<double>();
  r.gpu_source = j.at("gpu_source").get<std::string>();
  r.final = j.at("final").get<bool>();
  return r;
}

// ---- rank 0 ---------------------------------------------------------------------------------

Group::Group(const dist::WorldSpec& spec, const std::string& device, bool spawn,
             const std::vector<std::string>& worker_args)
    : spec_(spec) {
  if (spawn) {
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) throw std::runtime_error("--nproc: cannot read /proc/self/exe");
    exe[n] = 0;
    for (int r = 1; r < spec_.world_size; ++r) {
      dist::WorldSpec s = spec_;
      s.rank = r;
      s.local_rank = r;
      std::map<std::string, std::string> env;
      for (char** e = environ; *e; ++e) {
        const std::string kv = *e;
        const size_t eq = kv.find('=');
        if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      for (const auto& [k, v] : dist::env_for(s)) env[k] = v;
      env[kParentPidEnv] = std::to_string(::getpid());
      // Everything the child needs is built before posix_spawn: nothing but exec runs in it.
      std::vector<std::string> args = {exe, "run"};
      args.insert(args.end(), worker_args.begin(), worker_args.end());
      std::vector<std::string> envs;
      for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
      std::vector<char*> argv, envp;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      for (auto& e : envs) envp.push_back(e.data());
      envp.push_back(nullptr);
      pid_t pid = 0;
      const int rc = ::posix_spawn(&pid, exe, nullptr, nullptr, argv.data(), envp.data());
      if (rc != 0) {
        kill_workers();
        throw std::runtime_error("--nproc: cannot start rank " + std::to_string(r) + " (" + exe +
                                 "): " + std::strerror(rc));
      }
      Child c;
      c.rank = r;
      c.pid = pid;
      std::lock_guard<std::mutex> lk(mu_);
      children_.push_back(c);
    }
    watcher_ = std::thread([this] { watch(); });
  }
  try {
    world_ = std::make_unique<dist::World>(spec_, device);
  } catch (...) {
    kill_workers();
    stop_ = true;
    if (watcher_.joinable()) watcher_.join();
    throw;
  }
  joined_ = true;
}

void Group::watch() {
  while (!stop_) {
    bool kill_rest = false;
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (auto& c : children_) {
        if (c.exited) continue;
        int status = 0;
        struct rusage ru {};
        const pid_t r = ::wait4(c.pid, &status, WNOHANG, &ru);
        if (r != c.pid) continue;
        c.exited = true;
        c.status = status;
        c.ru = ru;
        const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if ((!clean || !closing_) && !dead_) {
          dead_ = "rank " + std::to_string(c.rank) + " (pid " + std::to_string(c.pid) + ") " +
                  describe_status(status);
          kill_rest = true;
        }
      }
    }
    if (kill_rest) {
      // One rank is gone: the others stop now (their sockets close, so rank 0's collective
      // fails at once instead of at the timeout).
      std::lock_guard<std::mutex> lk(mu_);
      for (auto& c : children_)
        if (!c.exited) ::kill(c.pid, SIGKILL);
      if (!joined_) {
        // Rank 0 is still waiting for the group to form, which it would do until the timeout.
        std::fprintf(stderr, "audit run: %s before the ranks joined; stopping\n", dead_->c_str());
        for (auto& c : children_)
          if (!c.exited) ::waitpid(c.pid, nullptr, 0);
        std::_Exit(3);
      }
    }
    sleep_s(0.02);
  }
}

std::optional<std::string> Group::dead(double wait_s) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s);
  for (;;) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (dead_ || children_.empty()) return dead_;
    }
    if (std::chrono::steady_clock::now() >= until) return std::nullopt;
    sleep_s(0.02);
  }
}

void Group::kill_workers() {
  std::vector<pid_t> live;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& c : children_)
      if (!c.exited) {
        ::kill(c.pid, SIGKILL);
        live.push_back(c.pid);
      }
  }
  // The watcher reaps them (keeping wait4's rusage); without a watcher, reap here.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    bool all = true;
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (auto& c : children_) {
        if (c.exited) continue;
        if (!watcher_.joinable()) {
          int status = 0;
          struct rusage ru {};
          if (::wait4(c.pid, &status, 0, &ru) == c.pid) {
            c.exited = true;
            c.status = status;
            c.ru = ru;
            continue;
          }
        }
        all = false;
      }
    }
    if (all || std::chrono::steady_clock::now() >= until) return;
    sleep_s(0.02);
  }
}

Group::~Group() {
  closing_ = true;
  try {
    if (world_ && !dead()) {
      world_->store_set("job/" + std::to_string(job_.load() + 1), "done");
      // The workers leave (a child exits; a torchrun rank says goodbye in the store).
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      for (;;) {
        bool all = true;
        if (!children_.empty()) {
          std::lock_guard<std::mutex> lk(mu_);
          for (auto& c : children_) all = all && c.exited;
        } else {
          for (int r = 1; r < spec_.world_size; ++r)
            all = all && world_->store_has("bye/" + std::to_string(r));
        }
        if (all || std::chrono::steady_clock::now() >= until) break;
        sleep_s(0.02);
      }
    }
  } catch (...) {
  }
  kill_workers();
  stop_ = true;
  if (watcher_.joinable()) watcher_.join();
  world_.reset();
}

void Group::send_job(const Job& job) {
  if (auto d = dead()) throw std::runtime_error(*d + " before " + job.label + " began");
  std::string bytes = encode_job(job);
  ++job_;
  world_->store_set("job/" + std::to_string(job_.load()), "train");
  world_->broadcast_bytes(bytes);
}

void Group::begin_stage() {
  stage_cpu0_ = ledger::process_cpu_seconds();
  stage_job_ = job_ + 1;
}

std::optional<RankReading> Group::stored_reading(int rank) {
  const std::string key = "meter/" + std::to_string(rank);
  try {
    if (!world_->store_has(key)) return std::nullopt;
    auto r = RankReading::from_json(json::parse(world_->store_get(key)));
    if (r.job != stage_job_) return std::nullopt;
    return r;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::vector<RankReading> Group::readings() {
  std::vector<RankReading> out;
  RankReading me;
  me.rank = 0;
  me.job = stage_job_;
  me.host = ledger::this_host();
  me.device = world_->device();
  me.pid = int(::getpid());
  me.cpu0 = stage_cpu0_;
  me.cpu_s = ledger::process_cpu_seconds() - stage_cpu0_;
  me.rss = ledger::process_rss_bytes();
  me.peak_rss = ledger::process_peak_rss_bytes();
  me.final = true;
  out.push_back(me);
  for (int r = 1; r < spec_.world_size; ++r) {
    std::optional<RankReading> rd = stored_reading(r);
    std::lock_guard<std::mutex> lk(mu_);
    if (rd) last_[r] = *rd;
    RankReading x;
    if (auto it = last_.find(r); it != last_.end() && it->second.job == stage_job_) {
      x = it->second;
    } else {
      x.rank = r;
      x.job = stage_job_;
    }
    for (const auto& c : children_)
      if (c.rank == r && c.exited) {
        // The exact figure of a process that ended: wait4's rusage, less its CPU before the job.
        x.pid = int(c.pid);
        x.cpu_s = std::max(0.0, rusage_cpu(c.ru) - x.cpu0);
        x.peak_rss = std::max(x.peak_rss, double(c.ru.ru_maxrss) * 1024.0);
        x.rss = 0;
      }
    out.push_back(x);
  }
  return out;
}

std::string Group::cpu_source(int rank) {
  if (rank == 0) return "getrusage of rank 0 since the stage began";
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& c : children_)
    if (c.rank == rank && c.exited) {
      auto it = last_.find(rank);
      const bool base = it != last_.end() && it->second.job == stage_job_;
      return std::string("wait4 rusage of the ended process") +
             (base ? " less its CPU when the job began (its last store reading)"
                   : " (no reading of this job: its whole life)");
    }
  return "getrusage of rank " + std::to_string(rank) +
         " since the job began, sampled by the rank every --meter-interval into the store";
}

bool Group::probe(double* cpu_s, double* rss_bytes) {
  double cpu = ledger::process_cpu_seconds() - stage_cpu0_;
  double rss = ledger::process_rss_bytes();
  for (int r = 1; r < spec_.world_size; ++r) {
    std::optional<RankReading> rd = stored_reading(r);
    std::lock_guard<std::mutex> lk(mu_);
    if (rd) last_[r] = *rd;
    const RankReading* x = nullptr;
    if (auto it = last_.find(r); it != last_.end() && it->second.job == stage_job_) x = &it->second;
    const Child* ended = nullptr;
    for (const auto& c : children_)
      if (c.rank == r && c.exited) ended = &c;
    if (ended) {
      if (x) cpu += std::max(0.0, rusage_cpu(ended->ru) - x->cpu0);
    } else if (x) {
      cpu += x->cpu_s;
      rss += x->rss;
    }
  }
  *cpu_s = cpu;
  *rss_bytes = rss;
  return true;
}

std::vector<json> Group::worker_comm(double timeout_s) {
  std::vector<json> out;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (int r = 1; r < spec_.world_size; ++r) {
    const std::string key = "comm/" + std::to_string(job_.load()) + "/" + std::to_string(r);
    while (!world_->store_has(key)) {
      if (auto d = dead()) throw std::runtime_error(*d);
      if (std::chrono::steady_clock::now() >= until)
        throw std::runtime_error("rank " + std::to_string(r) + " did not report its collectives "
                                 "within " + std::to_string(int(timeout_s)) + " s");
      sleep_s(0.02);
    }
    out.push_back(json::parse(world_->store_get(key)));
  }
  return out;
}

// ---- a worker -------------------------------------------------------------------------------

namespace {

// Samples this worker every interval into the store while a job runs.
class WorkerMeter {
 public:
  WorkerMeter(dist::World& w, int64_t job, double interval_s) : w_(w), interval_(interval_s) {
    r_.rank = w.rank();
    r_.job = job;
    r_.host = ledger::this_host();
    r_.device = w.device();
    r_.pid = int(::getpid());
    r_.cpu0 = ledger::process_cpu_seconds();
    if (r_.device.rfind("cuda", 0) == 0) {
      // NVML's index of this rank's GPU: its local rank (CUDA's numbering; NVML's matches it
      // unless CUDA_VISIBLE_DEVICES reorders the devices).
      gpu_ = w.spec().local_rank;
      auto& nv = ledger::Nvml::instance();
      if (!nv.available()) {
        r_.gpu_source = "not metered: " + nv.why_absent();
        gpu_ = -1;
      } else {
        uint64_t mj = 0;
        if (nv.energy_mj(gpu_, &mj)) counter0_ = mj;
        r_.gpu_source = std::string("NVML index ") + std::to_string(gpu_) +
                        ": busy seconds from utilization samples; energy from " +
                        (counter0_ ? ledger::kEnergyCounter : ledger::kEnergyIntegrated);
      }
    }
    last_t_ = std::chrono::steady_clock::now();
    put();
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lk(mu_);
      while (!stop_) {
        cv_.wait_for(lk, std::chrono::duration<double>(interval_));
        if (stop_) break;
        lk.unlock();
        put();
        lk.lock();
      }
    });
  }
  ~WorkerMeter() { finish(); }
  // The last reading, marked final.
  void finish() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_) return;
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    r_.final = true;
    put();
  }

 private:
  void put() {
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now - last_t_).count();
    last_t_ = now;
    r_.cpu_s = ledger::process_cpu_seconds() - r_.cpu0;
    r_.rss = ledger::process_rss_bytes();
    r_.peak_rss = ledger::process_peak_rss_bytes();
    if (gpu_ >= 0) {
      auto& nv = ledger::Nvml::instance();
      ledger::Nvml::Reading rd;
      if (nv.read(gpu_, &rd)) {
        r_.gpu_busy_s += rd.util_pct / 100.0 * dt;
        r_.gpu_peak_mem = std::max(r_.gpu_peak_mem, rd.mem_used);
        if (!counter0_ && rd.power_w >= 0) r_.gpu_energy_j += rd.power_w * dt;
      }
      uint64_t mj = 0;
      if (counter0_ && nv.energy_mj(gpu_, &mj) && mj >= *counter0_)
        r_.gpu_energy_j = double(mj - *counter0_) / 1000.0;
    }
    try {
      w_.store_set("meter/" + std::to_string(r_.rank), r_.to_json().dump());
    } catch (...) {
      // rank 0's store is gone: the job's next collective fails and says so
    }
  }

  dist::World& w_;
  double interval_;
  RankReading r_;
  int gpu_ = -1;
  std::optional<uint64_t> counter0_;
  std::chrono::steady_clock::time_point last_t_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

pid_t g_parent = 0;

// Under --nproc: false once the parent that started this rank is gone.
bool parent_alive() { return g_parent == 0 || ::getppid() == g_parent; }

}  // namespace

int worker_main(const RunOptions& o, const dist::WorldSpec& spec) {
  // A worker never outlives whoever started it: SIGKILL when the parent goes, and, under
  // --nproc, a check that the parent is still the one that spawned it (it may have died before
  // prctl).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (const char* p = std::getenv(kParentPidEnv)) {
    g_parent = pid_t(std::atoll(p));
    if (!parent_alive()) return 1;
  }
  const std::string device = rank_device(o.device, spec.local_rank);
  const std::string who = "audit run: rank " + std::to_string(spec.rank);
  try {
    dist::World world(spec, device);
    for (int64_t n = 0;; ++n) {
      const std::string key = "job/" + std::to_string(n);
      // Rank 0 may evaluate for a long time between jobs: poll the store, not a collective.
      while (!world.store_has(key)) {
        if (!parent_alive()) return 1;
        sleep_s(0.05);
      }
      if (world.store_get(key) == "done") {
        world.store_set("bye/" + std::to_string(spec.rank), "1");
        return 0;
      }
      std::string bytes;
      const dist::CommLog before = world.log();
      world.broadcast_bytes(bytes);
      Job job = decode_job(bytes);
      WorkerMeter meter(world, n, o.meter_interval_s);
      job.cfg.device = device;
      if (job.cfg.threads > 0) torch::set_num_threads(int(job.cfg.threads));
      if (!job.cfg.checkpoint_path.empty())
        std::filesystem::create_directories(
            std::filesystem::path(job.cfg.checkpoint_path).parent_path());
      if (!job.save_path.empty())
        std::filesystem::create_directories(std::filesystem::path(job.save_path).parent_path());
      model::CausalLM m(model::ModelConfig(job.model));  // rank 0's parameters replace these
      train::Trainer t(m, job.cfg, job.data, &world);
      if (job.resume) t.resume_if_present();
      dist::CommLog steps;
      int64_t nsteps = 0;
      t.train([&](const train::StepInfo& s) {
        steps += s.comm;
        ++nsteps;
      });
      if (!job.save_path.empty()) t.save_checkpoint(job.save_path);
      meter.finish();
      world.store_set("comm/" + std::to_string(n) + "/" + std::to_string(spec.rank),
                      json{{"rank", spec.rank}, {"steps", nsteps},
                           {"steps_total", dist::to_json(steps)},
                           {"job_total", dist::to_json(world.log() - before)}}
                          .dump());
    }
  } catch (const std::exception& e) {
    if (!parent_alive()) return 1;
    std::fprintf(stderr, "%s: %s\n", who.c_str(), e.what());
    return 3;
  }
}

}  // namespace audit::pipeline::ranks
