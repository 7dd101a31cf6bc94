// Several processes under one `audit run` (docs/distributed.md): rank 0 drives the pipeline and
// is the only process that opens the ledger; every other rank is a worker that trains with it.
// `audit run RECIPE --nproc N` makes this process rank 0 and starts N-1 copies of its own binary
// as `run RECIPE --distributed` (posix_spawn, torchrun's variables from dist::env_for);
// `audit run RECIPE --distributed` reads torchrun's environment, so torchrun can start the ranks
// on several nodes.
//
// The job protocol, over the group's store and process group: for its n-th training stage rank 0
// sets the store key "job/<n>" to "train" and broadcasts the job (model settings, the trainer's
// configuration, the training tensors; encode_job); each worker polls the store for that key
// with short sleeps (a long evaluation on rank 0 never hits the collective timeout), receives
// the job, builds its trainer from the same model config, configuration and data with the World,
// and trains. "job/<n>" = "done" ends the workers. Each worker puts a meter reading into the
// store every --meter-interval ("meter/<rank>": CPU seconds since the job began from getrusage,
// RSS, and on CUDA its own GPU through NVML) and, at the job's end, its collective totals
// ("comm/<n>/<rank>"). Rank 0's StageMeter adds the workers' CPU to its own (workers_probe), so
// a training stage's cpu_s and samples are the whole group's.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "reproduce/distributed/distributed.h"
#include "reproduce/pipeline/pipeline.h"
#include "reproduce/trainer/trainer.h"

namespace audit::pipeline::ranks {

// The environment variable that tells a worker started by `--nproc` its parent's pid: it dies
// with it (PR_SET_PDEATHSIG) and checks it is still its parent.
inline constexpr const char* kParentPidEnv = "AUDIT_RANK_PARENT_PID";

// One training stage's work, as every rank builds its trainer from it.
struct Job {
  std::string label;                // "pretrain", "sft-seed1", ...
  settings::ModelSettings model;
  train::TrainConfig cfg;           // device is each rank's own (set by the worker)
  train::TrainData data;
  bool resume = false;              // call resume_if_present() (collective) before training
  std::string save_path;            // save_checkpoint(save_path) after training; "" = none
};
// The job as bytes (a JSON header, then the tensors as one torch pickle) and back.
std::string encode_job(const Job& job);
Job decode_job(const std::string& bytes);


// One rank's figures for a stage (the rank_meters event).
struct RankReading {
  int rank = 0;
  int64_t job = -1;          // which job the reading belongs to
  std::string host, device;
  int pid = 0;
  double cpu0 = 0;           // the process's CPU seconds when the job began
  double cpu_s = 0;          // CPU seconds since the job began
  double rss = 0, peak_rss = 0;
  double gpu_busy_s = 0, gpu_energy_j = 0, gpu_peak_mem = 0;
  std::string gpu_source;    // "" = no GPU; else how the GPU figures were metered
  bool final = false;        // written after the job's last collective
  nlohmann::json to_json() const;
  static RankReading from_json(const nlohmann::json& j);
};

// Rank 0's side: the World and, under --nproc, the worker processes it started.
class Group {
 public:
  // Under --nproc (`spawn`), starts ranks 1..N-1 of `spec` as `exe run <worker_args>` with
  // env_for(their spec) and kParentPidEnv, watches them from a thread, then joins the World.
  // Under torchrun (`spawn` false) only joins it. `device` is rank 0's ("cpu", "cuda:0").
  Group(const dist::WorldSpec& spec, const std::string& device, bool spawn,
        const std::vector<std::string>& worker_args);
  // Ends the workers: "done" to every one, a few seconds to leave, SIGKILL to what is left.
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  dist::World& world() { return *world_; }
  int size() const { return spec_.world_size; }
  const dist::WorldSpec& spec() const { return spec_; }

  // Sends the next job to every worker (store key, then broadcast). Throws std::runtime_error
  // when a worker is already known to have died.
  void send_job(const Job& job);
  int64_t job_index() const { return job_; }  // the job being trained (-1 before the first)
  // Marks the start of a training stage: rank 0's CPU is counted from here, the workers' from
  // the stage's job (the next one sent).
  void begin_stage();
  // MeterOptions::tree_probe of a training stage: rank 0's CPU since begin_stage() plus every
  // worker's since the job began (a worker that exited: wait4's exact figure), and the ranks'
  // resident bytes together. Safe from the sampler thread.
  bool probe(double* cpu_s, double* rss_bytes);
  // Every rank's figures now (rank 0 measured here; the workers' last readings).
  std::vector<RankReading> readings();
  // How each worker's CPU figure in readings() was obtained.
  std::string cpu_source(int rank);
  // The workers' collective totals of the current job (waits for them, up to timeout_s; throws
  // when a worker dies first).
  std::vector<nlohmann::json> worker_comm(double timeout_s);

  // A worker that died (under --nproc; exited non-zero or by a signal): "rank 1 (pid 123) was
  // killed by signal 9"; nullopt while all live. wait_s > 0 waits up to that long for one.
  std::optional<std::string> dead(double wait_s = 0);
  // SIGKILLs every worker still running and reaps it (under --nproc).
  void kill_workers();

 private:
  struct Child {
    int rank = 0;
    pid_t pid = 0;
    bool exited = false;
    int status = 0;
    struct rusage ru {};
  };
  void watch();
  std::optional<RankReading> stored_reading(int rank);

  dist::WorldSpec spec_;
  std::unique_ptr<dist::World> world_;
  std::mutex mu_;
  std::vector<Child> children_;
  std::optional<std::string> dead_;
  std::atomic<bool> stop_{false}, closing_{false}, joined_{false};
  std::thread watcher_;
  std::atomic<int64_t> job_{-1}, stage_job_{0};
  std::atomic<double> stage_cpu0_{0};
  std::map<int, RankReading> last_;  // per worker, the last reading read from the store
};

// A worker rank's whole life: dies with a --nproc parent, joins the World, and trains every job
// rank 0 sends until "done". Returns the exit code (0 after "done"); prints its errors.
int worker_main(const RunOptions& o, const dist::WorldSpec& spec);

// The ranks' device: "cpu", or "cuda:<local_rank>".
std::string rank_device(const std::string& device, int local_rank);

}  // namespace audit::pipeline::ranks
