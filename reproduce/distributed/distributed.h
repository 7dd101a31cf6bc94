// Several processes training one model: a group of ranks on torch.distributed's c10d (the engine
// inside the torch package): a TCPStore that rank 0 serves, and a process group over it, Gloo on
// the CPU and NCCL on CUDA. World wraps the few collectives the trainer needs (all-reduce,
// all-gather, reduce-scatter, broadcast, barrier), each timed and counted into a CommLog: calls,
// bytes and seconds per collective kind, which the ledger stores per step and the replay's
// communication model is checked against (docs/distributed.md).
//
// A rank learns its place from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; spec_from_env) or from `audit run --nproc N`, which
// starts the ranks with that same environment. Every call below is collective unless it says
// otherwise: each rank must make the same calls in the same order.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <c10/util/intrusive_ptr.h>
#include <torch/csrc/distributed/c10d/Work.hpp>  // what a Work holds (no gloo or NCCL header)

namespace c10d {
class Backend;
class Store;
}  // namespace c10d

namespace audit::dist {

// Where this process stands in its group.
struct WorldSpec {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        // index among the ranks of this machine (its GPU on CUDA)
  int local_world_size = 1;  // ranks on this machine
  std::string master_addr = "127.0.0.1";  // where rank 0 serves the store
  int master_port = 29500;
  std::string backend;       // "gloo" | "nccl"; "" = nccl on a CUDA device, else gloo
  double timeout_s = 300;    // a collective or store wait longer than this fails the rank
  std::string from;          // "torchrun environment" | "--nproc" | "single process"
};

// torchrun's variables: RANK, WORLD_SIZE, LOCAL_RANK (default RANK), LOCAL_WORLD_SIZE (default
// WORLD_SIZE), MASTER_ADDR (default 127.0.0.1), MASTER_PORT (default 29500), and AUDIT_DIST_TIMEOUT
// (seconds). nullopt when WORLD_SIZE is not set. A value that is not a number, a rank outside
// [0, WORLD_SIZE) or a port outside 1..65535 throws audit::InputError naming the variable.
// `env` replaces the process environment (tests).
std::optional<WorldSpec> spec_from_env(const std::map<std::string, std::string>* env = nullptr);

// The variables a rank started by `audit run --nproc` gets (spec_from_env reads them back).
std::map<std::string, std::string> env_for(const WorldSpec& s);

// Whether a TCP listener could bind addr:port right now (not collective).
bool port_free(const std::string& addr, int port);
// A port the kernel chose that was free a moment ago (not collective).
int pick_free_port();

// One collective kind's totals on this rank: calls, bytes of the data it moved in (all-reduce:
// the tensor; all-gather: the full output; reduce-scatter: the full input; broadcast: the
// tensor), and seconds from issuing each call to its completion: on Gloo the moment its future
// completed (a call waited for later, after overlapping computation, books its own time); on
// NCCL the moment wait() returned, after synchronizing the device (its future completes with the
// CUDA stream, not the host).
struct CollectiveStats {
  int64_t calls = 0;
  double bytes = 0;
  double seconds = 0;
};
// By kind: "all_reduce", "all_gather", "reduce_scatter", "broadcast", "barrier".
using CommLog = std::map<std::string, CollectiveStats>;
CommLog operator-(const CommLog& later, const CommLog& earlier);  // per kind, later - earlier
CommLog& operator+=(CommLog& total, const CommLog& more);          // per kind, summed
// {kind: {calls, bytes, seconds}}: how the ledger, the probe and `audit bench comm` store it.
nlohmann::json to_json(const CommLog& log);

// One collective as this rank saw it, when World::set_trace is on: its kind and bytes, and when
// this rank issued it and when it completed, in seconds of steady_clock (CLOCK_MONOTONIC, which
// the processes of one machine share, so ranks' records can be compared: a collective cannot
// complete before its last rank issued it, and the time before that is waiting for a peer).
struct CallRecord {
  std::string kind;
  double bytes = 0;
  double issued_s = 0;
  double done_s = 0;
};

class World;

// A collective in flight. wait() blocks until it is done and books its time; a Work that is
// destroyed unwaited is waited then.
class Work {
 public:
  Work() = default;
  Work(Work&&) noexcept;
  Work& operator=(Work&&) noexcept;
  ~Work();
  void wait();
  bool pending() const { return static_cast<bool>(work_); }

 private:
  friend class World;
  World* world_ = nullptr;
  c10::intrusive_ptr<c10d::Work> work_;
  std::string kind_;
  double bytes_ = 0;
  std::chrono::steady_clock::time_point start_;
  // Gloo: when the collective completed (steady_clock ticks; 0 = not yet), set by its future's
  // callback on Gloo's worker thread, so that a Work waited late (DDP's buckets, FSDP's
  // prefetched gathers) books its own time and not the computation that overlapped it.
  std::shared_ptr<std::atomic<int64_t>> done_;
};

class World {
 public:
  // Joins the group: rank 0 serves the store on master_addr:master_port, every rank connects and
  // builds the process group. `device` is this rank's ("cpu", "cuda:N"). A port rank 0 cannot
  // bind, or a peer that does not arrive within timeout_s, throws std::runtime_error saying so.
  World(const WorldSpec& spec, const std::string& device);
  ~World();  // in distributed.cpp, where Store and Backend are complete
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return spec_.rank; }
  int size() const { return spec_.world_size; }
  bool is_root() const { return spec_.rank == 0; }
  const WorldSpec& spec() const { return spec_; }
  const std::string& backend() const { return backend_; }
  const std::string& device() const { return device_; }

  // Sum over the ranks, in place. t contiguous, on this rank's device.
  void all_reduce(at::Tensor& t);
  Work all_reduce_async(at::Tensor& t);
  // full [size() * n] <- every rank's shard [n], in rank order.
  void all_gather(at::Tensor& full, const at::Tensor& shard);
  Work all_gather_async(at::Tensor& full, const at::Tensor& shard);
  // shard [n] <- the sum over ranks of full [size() * n]'s slice [rank * n, (rank + 1) * n).
  void reduce_scatter(at::Tensor& shard, const at::Tensor& full);
  void broadcast(at::Tensor& t, int root = 0);
  // A byte string from root to every rank (its length first, then the bytes).
  void broadcast_bytes(std::string& bytes, int root = 0);
  void barrier();
  // max over ranks of a double / sum over ranks (small control values, such as a step's loss and
  // token count; not booked in log()).
  double max(double v);
  double sum(double v);

  // The store every rank shares (not collective): small keyed values, such as each rank's meter
  // readings, which rank 0 collects. get() waits up to timeout_s for the key.
  void store_set(const std::string& key, const std::string& value);
  std::string store_get(const std::string& key);
  bool store_has(const std::string& key);

  const CommLog& log() const { return log_; }
  // Keep a CallRecord of every collective booked from now on (off by default; `audit bench comm`
  // turns it on to tell a collective's own time from the time a rank waited for its peers).
  void set_trace(bool on) { trace_on_ = on; }
  const std::vector<CallRecord>& trace() const { return trace_; }
  void clear_trace() { trace_.clear(); }

 private:
  friend class Work;
  Work start(std::chrono::steady_clock::time_point issued, c10::intrusive_ptr<c10d::Work> w,
             const std::string& kind, double bytes);
  double reduce_scalar(double v, int op);  // a c10d::ReduceOp::RedOpType
  void book(const std::string& kind, double bytes, std::chrono::steady_clock::time_point issued,
            std::chrono::steady_clock::time_point done);

  WorldSpec spec_;
  std::string device_, backend_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> pg_;
  CommLog log_;
  bool trace_on_ = false;
  std::vector<CallRecord> trace_;
};

// CPU tensor memory of this process as c10's CPU allocator hands it out: bytes live now and the
// most live at once since reset_peak(). install() puts a counting allocator in front of c10's
// (once per process, before the tensors to be counted are made); before that every figure is 0.
// How `audit` measures the memory a rank holds for parameters, gradients and optimizer states
// (FSDP's 1/N) instead of computing it.
struct CpuMemory {
  static void install();
  static bool installed();
  static int64_t live_bytes();
  static int64_t peak_bytes();
  static void reset_peak();
};

}  // namespace audit::dist
