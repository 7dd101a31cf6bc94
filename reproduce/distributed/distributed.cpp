// The group of ranks (see distributed.h): c10d's TCPStore and process groups, timed collectives,
// and the counting CPU allocator.
#include "reproduce/distributed/distributed.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>
#ifdef AUDIT_HAVE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "common/errors.h"

namespace audit::dist {

namespace {

using Clock = std::chrono::steady_clock;


double nbytes(const at::Tensor& t) { return static_cast<double>(t.numel() * t.element_size()); }

std::optional<std::string> lookup(const std::map<std::string, std::string>* env,
                                  const std::string& name) {
  if (env != nullptr) {
    auto it = env->find(name);
    if (it == env->end()) return std::nullopt;
    return it->second;
  }
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

long parse_int(const std::string& name, const std::string& value) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || end == nullptr || *end != '\0' || errno != 0)
    throw InputError("environment", 0, 0, name, "'" + value + "' is not an integer");
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The environment

std::optional<WorldSpec> spec_from_env(const std::map<std::string, std::string>* env) {
  auto world = lookup(env, "WORLD_SIZE");
  if (!world) return std::nullopt;
  WorldSpec s;
  s.from = "torchrun environment";
  s.world_size = static_cast<int>(parse_int("WORLD_SIZE", *world));
  if (s.world_size < 1)
    throw InputError("environment", 0, 0, "WORLD_SIZE", "must be at least 1, not " + *world);
  auto rank = lookup(env, "RANK");
  if (!rank)
    throw InputError("environment", 0, 0, "RANK",
                     "WORLD_SIZE is set but RANK is not (torchrun sets both)");
  s.rank = static_cast<int>(parse_int("RANK", *rank));
  if (s.rank < 0 || s.rank >= s.world_size)
    throw InputError("environment", 0, 0, "RANK",
                     *rank + " is outside [0, WORLD_SIZE = " + *world + ")");
  s.local_rank = s.rank;
  if (auto v = lookup(env, "LOCAL_RANK")) s.local_rank = static_cast<int>(parse_int("LOCAL_RANK", *v));
  s.local_world_size = s.world_size;
  if (auto v = lookup(env, "LOCAL_WORLD_SIZE"))
    s.local_world_size = static_cast<int>(parse_int("LOCAL_WORLD_SIZE", *v));
  if (s.local_rank < 0 || s.local_rank >= s.local_world_size)
    throw InputError("environment", 0, 0, "LOCAL_RANK",
                     std::to_string(s.local_rank) + " is outside [0, LOCAL_WORLD_SIZE = " +
                         std::to_string(s.local_world_size) + ")");
  if (auto v = lookup(env, "MASTER_ADDR")) s.master_addr = *v;
  if (auto v = lookup(env, "MASTER_PORT")) {
    const long p = parse_int("MASTER_PORT", *v);
    if (p < 1 || p > 65535)
      throw InputError("environment", 0, 0, "MASTER_PORT", *v + " is not a TCP port (1..65535)");
    s.master_port = static_cast<int>(p);
  }
  if (auto v = lookup(env, "AUDIT_DIST_TIMEOUT")) {
    const long t = parse_int("AUDIT_DIST_TIMEOUT", *v);
    if (t < 1) throw InputError("environment", 0, 0, "AUDIT_DIST_TIMEOUT", "must be at least 1 s");
    s.timeout_s = static_cast<double>(t);
  }
  if (auto v = lookup(env, "AUDIT_DIST_BACKEND")) s.backend = *v;
  return s;
}

std::map<std::string, std::string> env_for(const WorldSpec& s) {
  std::map<std::string, std::string> e{{"RANK", std::to_string(s.rank)},
                                       {"WORLD_SIZE", std::to_string(s.world_size)},
                                       {"LOCAL_RANK", std::to_string(s.local_rank)},
                                       {"LOCAL_WORLD_SIZE", std::to_string(s.local_world_size)},
                                       {"MASTER_ADDR", s.master_addr},
                                       {"MASTER_PORT", std::to_string(s.master_port)},
                                       {"AUDIT_DIST_TIMEOUT",
                                        std::to_string(static_cast<long>(s.timeout_s))}};
  if (!s.backend.empty()) e["AUDIT_DIST_BACKEND"] = s.backend;
  return e;
}

bool port_free(const std::string& addr, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, addr == "localhost" ? "127.0.0.1" : addr.c_str(), &a.sin_addr) != 1)
    a.sin_addr.s_addr = htonl(INADDR_ANY);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

int pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("cannot find a free port: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

CommLog operator-(const CommLog& later, const CommLog& earlier) {
  CommLog d;
  for (const auto& [k, v] : later) {
    CollectiveStats s = v;
    auto it = earlier.find(k);
    if (it != earlier.end()) {
      s.calls -= it->second.calls;
      s.bytes -= it->second.bytes;
      s.seconds -= it->second.seconds;
    }
    if (s.calls != 0) d[k] = s;
  }
  return d;
}

CommLog& operator+=(CommLog& total, const CommLog& more) {
  for (const auto& [k, v] : more) {
    auto& t = total[k];
    t.calls += v.calls;
    t.bytes += v.bytes;
    t.seconds += v.seconds;
  }
  return total;
}

nlohmann::json to_json(const CommLog& log) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : log)
    j[k] = {{"calls", v.calls}, {"bytes", v.bytes}, {"seconds", v.seconds}};
  return j;
}

// ---------------------------------------------------------------------------------------------
// Work

Work::Work(Work&& o) noexcept
    : world_(o.world_), work_(std::move(o.work_)), kind_(std::move(o.kind_)), bytes_(o.bytes_),
      start_(o.start_), done_(std::move(o.done_)) {
  o.world_ = nullptr;
}

Work& Work::operator=(Work&& o) noexcept {
  if (this != &o) {
    if (work_) {
      try {
        wait();
      } catch (...) {
      }
    }
    world_ = o.world_;
    work_ = std::move(o.work_);
    kind_ = std::move(o.kind_);
    bytes_ = o.bytes_;
    start_ = o.start_;
    done_ = std::move(o.done_);
    o.world_ = nullptr;
  }
  return *this;
}

Work::~Work() {
  if (!work_) return;
  try {
    wait();
  } catch (...) {  // a destructor does not throw; the failure shows at the next collective
  }
}

void Work::wait() {
  if (!work_) return;
  auto w = std::move(work_);
  work_.reset();
  w->wait();
  // NCCL's wait() only orders the current stream after the collective: for its time, wait for
  // the device too (this gives up overlapping the wait itself with later kernels).
  if (world_ != nullptr && world_->backend_ == "nccl") torch::cuda::synchronize();
  auto end = Clock::now();
  if (done_) {
    const int64_t ticks = done_->load();
    if (ticks != 0) end = Clock::time_point(Clock::duration(ticks));
  }
  done_.reset();
  if (world_ != nullptr)
    world_->book(kind_, bytes_, start_, std::max(end, start_));
}

// ---------------------------------------------------------------------------------------------
// World

World::World(const WorldSpec& spec, const std::string& device) : spec_(spec), device_(device) {
  const bool cuda = device_.rfind("cuda", 0) == 0;
  backend_ = spec_.backend.empty() ? (cuda ? "nccl" : "gloo") : spec_.backend;
  if (backend_ != "gloo" && backend_ != "nccl")
    throw InputError("environment", 0, 0, "AUDIT_DIST_BACKEND",
                     "backend must be gloo or nccl, not '" + backend_ + "'");
  if (backend_ == "nccl" && !cuda)
    throw InputError("environment", 0, 0, "AUDIT_DIST_BACKEND",
                     "NCCL runs on CUDA devices; this rank's device is " + device_);
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(spec_.timeout_s * 1000));
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(spec_.master_port);
  so.isServer = spec_.rank == 0;
  so.numWorkers = spec_.world_size;
  so.waitWorkers = true;
  so.timeout = timeout;
  try {
    store_ = c10::make_intrusive<c10d::TCPStore>(spec_.master_addr, so);
  } catch (const std::exception& e) {
    throw std::runtime_error(
        "rank " + std::to_string(spec_.rank) + ": cannot " +
        (so.isServer ? "serve" : "reach") + " the rendezvous store on " + spec_.master_addr + ":" +
        std::to_string(spec_.master_port) + " (" + e.what() + ")");
  }
  if (backend_ == "gloo") {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    // Loopback for one machine; the master's address family reaches other nodes.
    const bool local = spec_.master_addr == "127.0.0.1" || spec_.master_addr == "localhost";
    opts->devices.push_back(local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                  : c10d::ProcessGroupGloo::createDefaultDevice());
    pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, spec_.rank, spec_.world_size, opts);
  } else {
#ifdef AUDIT_HAVE_C10D_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    pg_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, spec_.rank, spec_.world_size, opts);
#else
    throw InputError("environment", 0, 0, "AUDIT_DIST_BACKEND",
                     "this audit was built without the CUDA toolkit, so without NCCL: rebuild "
                     "where nvcc is on PATH, or run the ranks on the CPU with Gloo");
#endif
  }
}

World::~World() = default;

void World::book(const std::string& kind, double bytes, Clock::time_point issued,
                 Clock::time_point done) {
  auto& s = log_[kind];
  ++s.calls;
  s.bytes += bytes;
  s.seconds += std::chrono::duration<double>(done - issued).count();
  if (trace_on_) {
    auto secs = [](Clock::time_point t) {
      return std::chrono::duration<double>(t.time_since_epoch()).count();
    };
    trace_.push_back({kind, bytes, secs(issued), secs(done)});
  }
}

Work World::start(Clock::time_point issued, c10::intrusive_ptr<c10d::Work> w,
                  const std::string& kind, double bytes) {
  Work out;
  out.world_ = this;
  out.work_ = std::move(w);
  out.kind_ = kind;
  out.bytes_ = bytes;
  out.start_ = issued;
  if (backend_ == "gloo") {
    auto done = std::make_shared<std::atomic<int64_t>>(0);
    try {
      out.work_->getFuture()->addCallback([done](c10::ivalue::Future&) {
        done->store(Clock::now().time_since_epoch().count());
      });
      out.done_ = std::move(done);
    } catch (const std::exception&) {  // a Work without a future: booked when waited
    }
  }
  return out;
}

Work World::all_reduce_async(at::Tensor& t) {
  const auto t0 = Clock::now();
  std::vector<at::Tensor> v{t};
  return start(t0, pg_->allreduce(v), "all_reduce", nbytes(t));
}

void World::all_reduce(at::Tensor& t) { all_reduce_async(t).wait(); }

Work World::all_gather_async(at::Tensor& full, const at::Tensor& shard) {
  TORCH_CHECK(full.numel() == shard.numel() * size(), "all_gather: output has ", full.numel(),
              " elements, expected ", shard.numel() * size());
  const auto t0 = Clock::now();
  at::Tensor in = shard;
  return start(t0, pg_->_allgather_base(full, in), "all_gather", nbytes(full));
}

void World::all_gather(at::Tensor& full, const at::Tensor& shard) {
  all_gather_async(full, shard).wait();
}

void World::reduce_scatter(at::Tensor& shard, const at::Tensor& full) {
  TORCH_CHECK(full.numel() == shard.numel() * size(), "reduce_scatter: input has ", full.numel(),
              " elements, expected ", shard.numel() * size());
  const auto t0 = Clock::now();
  at::Tensor in = full;
  start(t0, pg_->_reduce_scatter_base(shard, in), "reduce_scatter", nbytes(full)).wait();
}

void World::broadcast(at::Tensor& t, int root) {
  const auto t0 = Clock::now();
  std::vector<at::Tensor> v{t};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  start(t0, pg_->broadcast(v, o), "broadcast", nbytes(t)).wait();
}

void World::broadcast_bytes(std::string& bytes, int root) {
  auto opts = torch::TensorOptions().device(device_);
  auto len = torch::tensor({static_cast<int64_t>(bytes.size())}, torch::kLong).to(opts.device());
  broadcast(len, root);
  const int64_t n = len.cpu().item<int64_t>();
  auto buf = torch::empty({std::max<int64_t>(n, 1)}, torch::TensorOptions().dtype(torch::kUInt8));
  if (rank() == root && n > 0) std::memcpy(buf.data_ptr(), bytes.data(), static_cast<size_t>(n));
  auto dev = buf.to(opts.device());
  broadcast(dev, root);
  auto host = dev.cpu().contiguous();
  bytes.assign(static_cast<const char*>(host.data_ptr()), static_cast<size_t>(n));
}

void World::barrier() {
  const auto t0 = Clock::now();
  auto w = pg_->barrier();
  w->wait();
  book("barrier", 0, t0, Clock::now());
}

double World::reduce_scalar(double v, int op) {
  auto t = torch::tensor({v}, torch::kDouble).to(torch::Device(device_));  // NCCL has float64
  std::vector<at::Tensor> vec{t};
  c10d::AllreduceOptions o;
  o.reduceOp = static_cast<c10d::ReduceOp::RedOpType>(op);
  pg_->allreduce(vec, o)->wait();
  return t.cpu().item<double>();
}

double World::max(double v) { return reduce_scalar(v, c10d::ReduceOp::MAX); }
double World::sum(double v) { return reduce_scalar(v, c10d::ReduceOp::SUM); }

void World::store_set(const std::string& key, const std::string& value) {
  store_->set(key, std::vector<uint8_t>(value.begin(), value.end()));
}

std::string World::store_get(const std::string& key) {
  auto v = store_->get(key);
  return std::string(v.begin(), v.end());
}

bool World::store_has(const std::string& key) { return store_->check({key}); }

// ---------------------------------------------------------------------------------------------
// The counting CPU allocator

namespace {

std::atomic<int64_t> g_live{0}, g_peak{0};
std::atomic<bool> g_installed{false};

struct Counted {
  c10::DataPtr inner;
  size_t bytes;
};

void release_counted(void* ctx) {
  auto* c = static_cast<Counted*>(ctx);
  g_live.fetch_sub(static_cast<int64_t>(c->bytes));
  delete c;  // frees through the wrapped allocator's own deleter
}

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}
  c10::DataPtr allocate(size_t n) override {
    c10::DataPtr d = inner_->allocate(n);
    void* p = d.get();
    auto device = d.device();
    auto* ctx = new Counted{std::move(d), n};
    const int64_t live = g_live.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t peak = g_peak.load();
    while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {
    }
    return {p, ctx, &release_counted, device};
  }
  void copy_data(void* dest, const void* src, size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  c10::Allocator* inner_;
};

}  // namespace

void CpuMemory::install() {
  bool expected = false;
  if (!g_installed.compare_exchange_strong(expected, true)) return;
  static CountingAllocator counting(c10::GetCPUAllocator());
  c10::SetCPUAllocator(&counting, /*priority=*/100);
}
bool CpuMemory::installed() { return g_installed.load(); }
int64_t CpuMemory::live_bytes() { return g_live.load(); }
int64_t CpuMemory::peak_bytes() { return g_peak.load(); }
void CpuMemory::reset_peak() { g_peak.store(g_live.load()); }

}  // namespace audit::dist
