// `audit bench comm`: the replay's communication model (reproduce/replay/replay.h,
// collective_bytes_per_step) checked against collectives measured on this machine, and the
// scaling of training from one process to several.
//
// The verb starts --nproc ranks of itself (posix_spawn of /proc/self/exe with torchrun's
// variables, dist::env_for; a hidden --rank-dir tells a rank where to write what it measured),
// Gloo on the CPU, NCCL with --device cuda. Every rank:
//   1. times each collective kind (all_reduce, all_gather, reduce_scatter, broadcast) at a few
//      sizes (median of --repeats after one untimed call, the ranks lined up by a barrier first;
//      5 untimed small all-reduces before all of it);
//   2. trains a bench model (train::bench_model_config) on random tokens with train::Trainer on
//      the dist::World, once per --parallelism, and keeps each step's seconds, local tokens and
//      collectives (StepInfo::comm).
// The parent then calibrates the link from the all-reduce medians (replay::calibrate_link: the
// large buffer gives the bytes per second crossing each rank's link, the small one the latency of
// a call), predicts each parallelism's communication per step (replay::predict_step_comm) and
// compares it with the measured one (replay::relative_error). With --scaling (CPU) it also trains
// the same model in one process with nproc x threads threads and the same global batch, and
// reports tokens per second per process of both. docs/replay.md and docs/benchmarks.md.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <stdlib.h>  // mkdtemp

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/errors.h"  // InputError
#include "reproduce/cli/cli.h"
#include "reproduce/distributed/distributed.h"  // World, spec_from_env, env_for
#include "reproduce/replay/replay.h"            // calibrate_link, predict_step_comm
#include "reproduce/trainer/trainer.h"          // Trainer, bench_model_config

extern char** environ;

namespace audit::cli {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct BenchCommOptions {
  int nproc = 2;
  int threads = 1;  // intra-op threads per rank
  std::string model = "small";
  std::string parallelisms = "ddp,fsdp_full_shard";
  int64_t batch = 8;  // global batch: sequences per optimizer step over all ranks
  int64_t seq = 128;
  int warmup = 1;
  int steps = 5;
  int repeats = 5;                                  // timed calls of each collective and size
  std::string sizes = "4KiB,64KiB,1MiB,16MiB,64MiB";  // collective sizes (the first and last
                                                      // all-reduce calibrate the link)
  bool scaling = true;
  int timeout = 300;  // seconds a rank may wait on a peer
  std::string json_out;
  bool json = false;
  std::string device;    // cpu | cuda (the global --device)
  std::string rank_dir;  // hidden: set on the ranks the verb starts
};

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// "4KiB", "64 KiB", "1MiB", "4096": bytes. Throws InputError naming --sizes.
int64_t parse_size(const std::string& text) {
  std::string t;
  for (char c : text)
    if (c != ' ') t.push_back(c);
  size_t i = 0;
  while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) ++i;
  const std::string num = t.substr(0, i), unit = t.substr(i);
  int64_t mult = 0;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "KiB" || unit == "K") mult = 1 << 10;
  else if (unit == "MiB" || unit == "M") mult = 1 << 20;
  else if (unit == "GiB" || unit == "G") mult = 1 << 30;
  if (num.empty() || mult == 0 || num.size() > 9)
    throw InputError("--sizes", 0, 0, "sizes",
                     "'" + text + "' is not a size (e.g. 4096, 4KiB, 64MiB)");
  const int64_t v = std::stoll(num) * mult;
  if (v < 16 || v > (int64_t{1} << 30))
    throw InputError("--sizes", 0, 0, "sizes", "'" + text + "' is outside 16 B .. 1 GiB");
  return v;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<int64_t> parse_sizes(const std::string& s) {
  std::vector<int64_t> v;
  for (const auto& item : split_list(s)) v.push_back(parse_size(item));
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  if (v.size() < 2)
    throw InputError("--sizes", 0, 0, "sizes",
                     "needs at least two sizes: the smallest and the largest all-reduce "
                     "calibrate the link's latency and bandwidth");
  return v;
}

std::vector<std::string> parse_parallelisms(const std::string& s) {
  auto v = split_list(s);
  if (v.empty()) throw InputError("--parallelism", 0, 0, "parallelism", "names no parallelism");
  for (const auto& p : v)
    if (p != "ddp" && p != "fsdp_full_shard")
      throw InputError("--parallelism", 0, 0, "parallelism",
                       "'" + p + "' is not one the trainer runs (ddp, fsdp_full_shard)");
  return v;
}

// What the replay's call model needs of the bench model as the trainer lays it out
// (reproduce/trainer: AdamW groups "decay" (matrices) and "no_decay" (the rest), each its own
// flat buffer; FSDP units: the decoder layers, and the root holding everything else).
struct ModelLayout {
  double params = 0;
  double root_params = 0;                  // outside model.layers.*: embeddings, final norm, head
  std::vector<double> group_params{0, 0};  // decay, no_decay
};

ModelLayout model_layout(model::CausalLM& m) {
  ModelLayout l;
  for (const auto& p : m->named_parameters()) {
    const double n = static_cast<double>(p.value().numel());
    l.params += n;
    if (p.key().rfind("model.layers.", 0) != 0) l.root_params += n;
    l.group_params[p.value().dim() >= 2 ? 0 : 1] += n;
  }
  return l;
}

// ---------------------------------------------------------------------------------------------
// The rank side

const char* const kKinds[] = {"all_reduce", "all_gather", "reduce_scatter", "broadcast"};

// One collective of `kind` over `bytes` of fp32 data (all-gather: the full output;
// reduce-scatter: the full input), timed as the World books it.
double time_collective(dist::World& w, const std::string& kind, int64_t bytes,
                       const torch::TensorOptions& opts) {
  const int64_t G = w.size();
  const int64_t n = std::max<int64_t>(G, bytes / 4 / G * G);  // a multiple of G values
  static std::map<std::pair<std::string, int64_t>, std::vector<torch::Tensor>> buffers;
  auto& b = buffers[{kind, n}];
  if (b.empty()) {
    if (kind == "all_reduce" || kind == "broadcast") {
      b = {torch::ones({n}, opts)};
    } else if (kind == "all_gather") {
      b = {torch::empty({n}, opts), torch::ones({n / G}, opts)};
    } else {
      b = {torch::ones({n}, opts), torch::empty({n / G}, opts)};
    }
  }
  w.barrier();
  const auto before = w.log();
  if (kind == "all_reduce") w.all_reduce(b[0]);
  else if (kind == "broadcast") w.broadcast(b[0]);
  else if (kind == "all_gather") w.all_gather(b[0], b[1]);
  else w.reduce_scatter(b[1], b[0]);
  const auto d = w.log() - before;
  return d.at(kind).seconds;
}

json rank_collectives(dist::World& w, const BenchCommOptions& o, const std::vector<int64_t>& sizes,
                      const torch::TensorOptions& opts) {
  json out = json::array();
  // The group's first calls set up Gloo's pairs and buffers: untimed, so that the small
  // all-reduce that calibrates the latency is not the first one.
  for (int i = 0; i < 5; ++i) time_collective(w, "all_reduce", sizes.front(), opts);
  for (const char* kind : kKinds) {
    for (int64_t bytes : sizes) {
      time_collective(w, kind, bytes, opts);  // untimed: connections, buffers
      std::vector<double> s;
      for (int r = 0; r < o.repeats; ++r) s.push_back(time_collective(w, kind, bytes, opts));
      const int64_t n = std::max<int64_t>(w.size(), bytes / 4 / w.size() * w.size());
      out.push_back({{"kind", kind}, {"bytes", n * 4}, {"samples_s", s}, {"median_s", median(s)}});
    }
  }
  return out;
}

// Trains the bench model on random tokens for warmup + steps optimizer steps; every step's
// figures. With world == nullptr: one process.
json train_steps(const BenchCommOptions& o, const std::string& parallelism, dist::World* world,
                 const std::string& device) {
  const auto mc = train::bench_model_config(o.model);
  model::CausalLM m(mc);
  model::init_weights(m, 0);
  const int64_t total = o.warmup + o.steps;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  train::TrainData data;
  data.tokens = torch::randint(0, mc.vocab, {o.batch * total, o.seq}, gen, torch::kLong);
  data.loss_mask = torch::ones({o.batch * total, o.seq}, torch::kLong);
  train::TrainConfig cfg;
  cfg.global_batch = o.batch;
  cfg.micro_batch = 0;
  cfg.max_steps = total;
  cfg.warmup_steps = 0;
  cfg.lr = 1e-3;
  cfg.shuffle = false;
  cfg.device = device;
  cfg.parallelism = world != nullptr ? parallelism : "none";
  const auto layout = model_layout(m);
  train::Trainer t(m, cfg, data, world);
  json steps = json::array();
  if (world != nullptr) world->set_trace(true);
  for (int64_t i = 0; i < total; ++i) {
    if (world != nullptr) world->clear_trace();
    const auto s = t.step();
    double comm_s = 0;
    for (const auto& [k, v] : s.comm) comm_s += v.seconds;
    // Every collective of the step with its issue and completion times (CLOCK_MONOTONIC, shared by
    // the ranks of this machine), for the parent to take out the time spent waiting for a peer.
    json calls = json::array();
    if (world != nullptr)
      for (const auto& c : world->trace()) calls.push_back({c.kind, c.issued_s, c.done_s});
    steps.push_back({{"step", s.step},
                     {"calls", calls},
                     {"timed", i >= o.warmup},
                     {"seconds", s.seconds},
                     {"loss", s.loss},
                     {"tokens", s.tokens},
                     {"local_tokens", world != nullptr ? s.local_tokens : s.tokens},
                     {"comm_s", comm_s},
                     {"comm", dist::to_json(s.comm)}});
  }
  if (world != nullptr) world->set_trace(false);
  return {{"parallelism", cfg.parallelism},
          {"params", layout.params},
          {"root_params", layout.root_params},
          {"group_params", layout.group_params},
          {"layers", mc.layers},
          {"bucket_bytes", cfg.ddp_bucket_bytes},
          {"steps", steps}};
}

int run_rank(const BenchCommOptions& o) {
  const auto spec = dist::spec_from_env();
  if (!spec)
    throw InputError("environment", 0, 0, "WORLD_SIZE",
                     "--rank-dir is the rank side of `audit bench comm`, which sets WORLD_SIZE");
  // A rank ends with the verb that started it.
  if (const char* ppid = std::getenv("AUDIT_BENCH_COMM_PARENT")) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (std::to_string(::getppid()) != ppid) return 3;
  }
  torch::set_num_threads(o.threads);
  const bool cuda = o.device == "cuda";
  const std::string device = cuda ? "cuda:" + std::to_string(spec->local_rank) : "cpu";
  dist::World w(*spec, device);
  const auto opts = torch::TensorOptions().dtype(torch::kFloat).device(torch::Device(device));
  const auto sizes = parse_sizes(o.sizes);
  json out = {{"rank", w.rank()},       {"world_size", w.size()}, {"backend", w.backend()},
              {"device", w.device()},   {"threads", o.threads}};
  const auto t0 = Clock::now();
  out["collectives"] = rank_collectives(w, o, sizes, opts);
  out["collectives_wall_s"] = since(t0);
  json runs = json::array();
  for (const auto& p : parse_parallelisms(o.parallelisms)) runs.push_back(train_steps(o, p, &w, device));
  out["training"] = runs;
  const std::string path = o.rank_dir + "/rank" + std::to_string(w.rank()) + ".json";
  std::ofstream f(path);
  f << out.dump() << "\n";
  if (!f) throw std::runtime_error("cannot write " + path);
  f.close();
  w.barrier();  // nobody leaves while a peer still needs the store rank 0 serves
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The verb's side

// Removes the ranks' folder however the verb ends (std::filesystem's remove_all crashes in a
// LibTorch-linked binary).
struct RankFolder {
  std::string path;
  RankFolder() {
    std::string buf = "/tmp/audit-bench-comm-XXXXXX";
    if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("cannot create a folder in /tmp");
    path = buf;
  }
  ~RankFolder() { std::system(("rm -rf '" + path + "'").c_str()); }
};

// The ranks' command line: this verb with the same options and --rank-dir.
std::vector<std::string> rank_argv(const BenchCommOptions& o, const std::string& dir) {
  return {"audit-torch",   "bench",        "comm",
          "--nproc",       std::to_string(o.nproc),
          "--threads",     std::to_string(o.threads),
          "--model",       o.model,
          "--parallelism", o.parallelisms,
          "--batch",       std::to_string(o.batch),
          "--seq",         std::to_string(o.seq),
          "--warmup",      std::to_string(o.warmup),
          "--steps",       std::to_string(o.steps),
          "--repeats",     std::to_string(o.repeats),
          "--sizes",       o.sizes,
          "--timeout",     std::to_string(o.timeout),
          "--device",      o.device,
          "--rank-dir",    dir};
}

// Starts the ranks, waits for them all; when one fails the others are stopped and the failure is
// thrown (which rank, how). `limit_s`: the whole group's time.
void run_ranks(const BenchCommOptions& o, const std::string& dir, double limit_s) {
  dist::WorldSpec spec;
  spec.world_size = o.nproc;
  spec.local_world_size = o.nproc;
  spec.master_addr = "127.0.0.1";
  spec.master_port = dist::pick_free_port();
  spec.timeout_s = o.timeout;
  const auto args = rank_argv(o, dir);
  std::vector<pid_t> pids;
  auto stop_all = [&pids] {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, SIGKILL);
    for (pid_t& p : pids)
      if (p > 0) {
        ::waitpid(p, nullptr, 0);
        p = -1;
      }
  };
  for (int r = 0; r < o.nproc; ++r) {
    spec.rank = spec.local_rank = r;
    auto vars = dist::env_for(spec);
    vars["AUDIT_BENCH_COMM_PARENT"] = std::to_string(::getpid());
    vars["OMP_NUM_THREADS"] = std::to_string(o.threads);
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
      const std::string kv = *e;
      if (vars.count(kv.substr(0, kv.find('='))) == 0) env.push_back(kv);
    }
    for (const auto& [k, v] : vars) env.push_back(k + "=" + v);
    std::vector<char*> argv, envp;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data());
    if (rc != 0) {
      stop_all();
      throw std::runtime_error("cannot start rank " + std::to_string(r) + ": " + std::strerror(rc));
    }
    pids.push_back(pid);
  }
  const auto t0 = Clock::now();
  int left = o.nproc;
  while (left > 0) {
    for (int r = 0; r < o.nproc; ++r) {
      if (pids[r] <= 0) continue;
      int status = 0;
      const pid_t got = ::waitpid(pids[r], &status, WNOHANG);
      if (got == 0) continue;
      pids[r] = -1;
      --left;
      if (got < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        stop_all();
        const std::string how = got < 0 ? "was lost"
                                : WIFSIGNALED(status)
                                    ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                    : "exited with code " + std::to_string(WEXITSTATUS(status));
        throw std::runtime_error("rank " + std::to_string(r) + " " + how +
                                 "; the other ranks were stopped");
      }
    }
    if (left > 0 && since(t0) > limit_s) {
      stop_all();
      throw std::runtime_error("the ranks did not finish within " +
                               std::to_string(static_cast<int>(limit_s)) + " s; stopped");
    }
    if (left > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("a rank wrote no figures to " + path);
  return json::parse(f);
}

int bench_comm(const BenchCommOptions& o, JsonStdout& out) {
  if (o.nproc < 2)
    throw InputError("--nproc", 0, 0, "nproc",
                     "a communication check needs at least 2 ranks, not " + std::to_string(o.nproc));
  parse_sizes(o.sizes);  // bad input: exit 2 before any rank starts
  const auto pars = parse_parallelisms(o.parallelisms);
  const bool cuda = o.device == "cuda";
  if (cuda) {
    const int n = static_cast<int>(torch::cuda::device_count());
    if (n < o.nproc)
      throw InputError("--nproc", 0, 0, "nproc",
                       "--nproc " + std::to_string(o.nproc) + " on CUDA needs one GPU per rank; " +
                           "this machine has " + std::to_string(n));
  }
  if (o.batch < o.nproc)
    throw InputError("--batch", 0, 0, "batch",
                     "the global batch (" + std::to_string(o.batch) +
                         ") must give every rank at least one sequence (--nproc " +
                         std::to_string(o.nproc) + ")");
  const auto mc = train::bench_model_config(o.model);
  const std::string backend = cuda ? "NCCL" : "Gloo";
  std::printf("audit bench comm: %d ranks of this binary (%s on %s, %d thread(s) each), %s model\n"
              "(%.2fM parameters), global batch %lld x seq %lld, %d warmup + %d timed steps per\n"
              "parallelism; each collective: 1 untimed + %d timed calls (median).\n\n",
              o.nproc, backend.c_str(), cuda ? "CUDA" : "the CPU", o.threads, o.model.c_str(),
              mc.parameter_count() / 1e6, static_cast<long long>(o.batch),
              static_cast<long long>(o.seq), o.warmup, o.steps, o.repeats);
  std::fflush(stdout);

  RankFolder dir;
  const auto t0 = Clock::now();
  run_ranks(o, dir.path, o.timeout + 600.0);
  const double ranks_wall = since(t0);
  std::vector<json> ranks;
  for (int r = 0; r < o.nproc; ++r) ranks.push_back(read_json(dir.path + "/rank" + std::to_string(r) + ".json"));
  const double G = o.nproc;

  // 1. Each collective kind and size: the median over the ranks' medians.
  json collectives = json::array();
  std::map<std::pair<std::string, int64_t>, double> med;
  std::printf("Measured %s collectives (fp32; bytes: the tensor, all_gather's output,\n"
              "reduce_scatter's input; link: the bytes that cross each rank's link in a ring /\n"
              "median seconds)\n", backend.c_str());
  std::printf("%-15s %10s %12s %14s %14s\n", "collective", "bytes", "median s", "data GB/s",
              "link GB/s");
  for (size_t i = 0; i < ranks[0]["collectives"].size(); ++i) {
    const auto& c0 = ranks[0]["collectives"][i];
    const std::string kind = c0["kind"];
    const int64_t bytes = c0["bytes"];
    std::vector<double> per_rank;
    for (const auto& r : ranks) per_rank.push_back(r["collectives"][i]["median_s"].get<double>());
    const double s = median(per_rank);
    med[{kind, bytes}] = s;
    const double link = replay::link_bytes_of(kind, static_cast<double>(bytes), G) / s;
    std::printf("%-15s %10s %12.6f %14.3f %14.3f\n", kind.c_str(),
                text::bytes(static_cast<double>(bytes)).c_str(), s, bytes / s / 1e9, link / 1e9);
    collectives.push_back({{"kind", kind},
                           {"bytes", bytes},
                           {"median_s", s},
                           {"rank_median_s", per_rank},
                           {"data_bytes_s", bytes / s},
                           {"link_bytes_s", link}});
  }

  // 2. The link, from the smallest and largest all-reduce.
  int64_t small = 0, large = 0;
  for (const auto& [k, v] : med)
    if (k.first == "all_reduce") {
      if (small == 0 || k.second < small) small = k.second;
      large = std::max(large, k.second);
    }
  const auto link = replay::calibrate_link(G, static_cast<double>(small), med[{"all_reduce", small}],
                                           static_cast<double>(large), med[{"all_reduce", large}]);
  std::printf("\nLink calibration (Hockney: t = latency + link bytes / bandwidth), from the median\n"
              "all_reduce of %s (%.6f s) and of %s (%.6f s) over %d ranks:\n"
              "  bandwidth %.3f GB/s crossing each rank's link, latency %.1f us per call\n"
              "  (no latency term, the large buffer alone: %.3f GB/s)\n",
              text::bytes(static_cast<double>(small)).c_str(), link.small_s,
              text::bytes(static_cast<double>(large)).c_str(), link.large_s, o.nproc,
              link.bytes_s / 1e9, link.latency_s * 1e6, link.plain_bytes_s / 1e9);

  // 2b. A line per collective kind, fitted over every size measured (replay::fit_kind_link).
  std::map<std::string, replay::KindLink> kind_links;
  {
    std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> pts;
    for (const auto& [k, v] : med) {
      pts[k.first].first.push_back(static_cast<double>(k.second));
      pts[k.first].second.push_back(v);
    }
    std::printf("\nA line per collective kind (weighted least squares over the %zu sizes, each "
                "point's\nrelative error alike):\n", pts.begin() == pts.end() ? size_t(0)
                                                                         : pts.begin()->second.first.size());
    for (const auto& [kind, xy] : pts) {
      try {
        kind_links[kind] = replay::fit_kind_link(kind, G, xy.first, xy.second);
        std::printf("  %-15s bandwidth %.3f GB/s, latency %.1f us per call\n", kind.c_str(),
                    kind_links[kind].bytes_s / 1e9, kind_links[kind].latency_s * 1e6);
      } catch (const std::invalid_argument& e) {
        std::printf("  %-15s no line: %s\n", kind.c_str(), e.what());
      }
    }
  }
  json kind_links_json = json::object();
  for (const auto& [k, v] : kind_links) kind_links_json[k] = v.to_json();

  json result = {{"nproc", o.nproc},
                 {"backend", ranks[0]["backend"]},
                 {"device", o.device},
                 {"threads_per_rank", o.threads},
                 {"model", o.model},
                 {"config", mc.to_string()},
                 {"params", mc.parameter_count()},
                 {"global_batch", o.batch},
                 {"seq", o.seq},
                 {"warmup_steps", o.warmup},
                 {"timed_steps", o.steps},
                 {"repeats", o.repeats},
                 {"ranks_wall_s", ranks_wall},
                 {"collectives", collectives},
                 {"calibration", link.to_json()},
                 {"kind_links", kind_links_json},
                 {"calibration_source",
                  "median all_reduce seconds of " + std::to_string(small) + " B and " +
                      std::to_string(large) + " B fp32 buffers over " + std::to_string(o.nproc) +
                      " " + backend + " ranks (median over ranks of each rank's median of " +
                      std::to_string(o.repeats) + " calls)"}};

  // 3. Each parallelism: the model's communication per step against the measured one.
  std::printf("\nCommunication per optimizer step, %s model: the replay's model with the link above\n"
              "(bytes: collective_bytes_per_step, fp32, the FSDP root unit gathered once; calls x\n"
              "latency) against the measured collectives (StepInfo::comm: median over the timed\n"
              "steps of each rank, mean over the ranks)\n",
              o.model.c_str());
  std::printf("%-16s %11s %19s %11s %11s %11s %9s %11s %10s %9s %11s %9s\n", "parallelism",
              "calls p/m", "link MB pred/meas", "predicted s", "measured s", "rank range", "error",
              "no-latency", "per-kind s", "error", "no-wait s", "error");
  json runs = json::array();
  std::vector<double> per_proc_tps;
  for (size_t j = 0; j < pars.size(); ++j) {
    const auto& t0j = ranks[0]["training"][j];
    const std::string par = t0j["parallelism"];
    const double params = t0j["params"].get<double>();
    const double roots = t0j["root_params"].get<double>();
    const double layers = t0j["layers"].get<double>();
    const double bucket = t0j["bucket_bytes"].get<double>();
    std::vector<double> rank_comm, rank_tps, rank_step_s;
    json rank_rows = json::array();
    double meas_calls = 0, meas_link_bytes = 0;
    std::map<std::string, double> kind_s;  // per step, mean over ranks of the medians
    for (size_t r = 0; r < ranks.size(); ++r) {
      std::vector<double> comm, secs, tps;
      std::map<std::string, std::vector<double>> kinds;
      double calls = 0, link_bytes = 0;
      int timed = 0;
      for (const auto& st : ranks[r]["training"][j]["steps"]) {
        if (!st["timed"].get<bool>()) continue;
        ++timed;
        comm.push_back(st["comm_s"].get<double>());
        secs.push_back(st["seconds"].get<double>());
        tps.push_back(st["local_tokens"].get<double>() / st["seconds"].get<double>());
        for (const auto& [k, v] : st["comm"].items()) {
          kinds[k].push_back(v["seconds"].get<double>());
          calls += v["calls"].get<double>();
          if (k != "barrier") link_bytes += replay::link_bytes_of(k, v["bytes"].get<double>(), G);
        }
      }
      rank_comm.push_back(median(comm));
      rank_step_s.push_back(median(secs));
      rank_tps.push_back(median(tps));
      if (r == 0) {
        meas_calls = calls / std::max(1, timed);
        meas_link_bytes = link_bytes / std::max(1, timed);
      }
      for (auto& [k, v] : kinds) kind_s[k] += median(v) / G;
      rank_rows.push_back({{"rank", r},
                           {"comm_s", median(comm)},
                           {"step_s", median(secs)},
                           {"tokens_per_s", median(tps)}});
    }
    double measured = 0;
    for (double v : rank_comm) measured += v / G;
    // The same collectives without the time a rank waited for its peers to reach them: a call
    // cannot start before its last rank issued it, so each call counts from the latest issue
    // over the ranks (the i-th call of a step is the same collective on every rank) to this
    // rank's completion.
    double measured_wire = 0;
    bool wire_ok = true;
    {
      std::vector<double> per_rank(ranks.size(), 0.0);
      for (size_t r = 0; r < ranks.size(); ++r) {
        std::vector<double> per_step;
        const auto& steps_r = ranks[r]["training"][j]["steps"];
        for (size_t k = 0; k < steps_r.size(); ++k) {
          if (!steps_r[k]["timed"].get<bool>()) continue;
          const auto& calls_r = steps_r[k]["calls"];
          double wire = 0;
          for (size_t c = 0; c < calls_r.size(); ++c) {
            double last_issue = calls_r[c][1].get<double>();
            for (const auto& other : ranks) {
              const auto& oc = other["training"][j]["steps"][k]["calls"];
              if (oc.size() != calls_r.size() || oc[c][0] != calls_r[c][0]) {
                wire_ok = false;
                continue;
              }
              last_issue = std::max(last_issue, oc[c][1].get<double>());
            }
            wire += std::max(0.0, calls_r[c][2].get<double>() - last_issue);
          }
          per_step.push_back(wire);
        }
        per_rank[r] = per_step.empty() ? 0.0 : median(per_step);
      }
      for (double v : per_rank) measured_wire += v / G;
    }
    replay::StepCollectives sc;
    std::vector<double> group_bytes;
    for (const auto& n : t0j["group_params"]) group_bytes.push_back(4.0 * n.get<double>());
    sc.ddp_buckets = replay::ddp_bucket_count(group_bytes, bucket);
    sc.layers = layers;
    sc.flats_per_unit = 2;       // the trainer's AdamW groups, one flat each per unit
    sc.norm_all_reduce = true;   // its global-norm clipping over the shards
    const double calls = replay::collective_calls_per_step(par, G, sc);
    const auto pred = replay::predict_step_comm(par, params, roots, G, 4.0, calls, link);
    const double err = replay::relative_error(pred.seconds, measured);
    const double err_plain = replay::relative_error(pred.plain_s, measured);
    const auto traffic = replay::step_traffic_by_kind(par, params, roots, G, 4.0, sc);
    double by_kind_s = -1, err_kind = 0, err_kind_wire = 0;
    try {
      by_kind_s = replay::predict_step_comm_by_kind(traffic, kind_links);
      err_kind = replay::relative_error(by_kind_s, measured);
      if (wire_ok && measured_wire > 0) err_kind_wire = replay::relative_error(by_kind_s, measured_wire);
    } catch (const std::invalid_argument&) {  // a kind without a line: no per-kind figure
    }
    json traffic_json = json::object();
    for (const auto& [k, v] : traffic) traffic_json[k] = {{"calls", v.calls}, {"link_bytes", v.link_bytes}};
    const auto [lo, hi] = std::minmax_element(rank_comm.begin(), rank_comm.end());
    char range[64];
    std::snprintf(range, sizeof range, "%.4f-%.4f", *lo, *hi);
    std::printf("%-16s %5.0f/%-5.0f %9.2f/%-9.2f %11.5f %11.5f %11s %+8.1f%% %+10.1f%%",
                par.c_str(), calls, meas_calls, pred.bytes / 1e6, meas_link_bytes / 1e6,
                pred.seconds, measured, range, err * 100, err_plain * 100);
    if (by_kind_s >= 0)
      std::printf(" %10.5f %+8.1f%%", by_kind_s, err_kind * 100);
    else
      std::printf(" %10s %9s", "-", "-");
    if (wire_ok && by_kind_s >= 0)
      std::printf(" %11.5f %+8.1f%%\n", measured_wire, err_kind_wire * 100);
    else
      std::printf(" %11s %9s\n", "-", "-");
    double tps_proc = 0;
    for (double v : rank_tps) tps_proc += v / G;
    per_proc_tps.push_back(tps_proc);
    json kinds = json::object();
    for (const auto& [k, v] : kind_s) kinds[k] = v;
    runs.push_back({{"parallelism", par},
                    {"params", params},
                    {"root_params", roots},
                    {"layers", layers},
                    {"ddp_bucket_bytes", bucket},
                    {"predicted", pred.to_json()},
                    {"measured_comm_s", measured},
                    {"measured_comm_s_by_kind", kinds},
                    {"measured_calls_per_step", meas_calls},
                    {"measured_link_bytes_per_step", meas_link_bytes},
                    {"error", err},
                    {"error_without_latency", err_plain},
                    {"traffic_by_kind", traffic_json},
                    {"predicted_by_kind_s", by_kind_s >= 0 ? json(by_kind_s) : json(nullptr)},
                    {"error_by_kind", by_kind_s >= 0 ? json(err_kind) : json(nullptr)},
                    {"measured_comm_s_without_waiting", wire_ok ? json(measured_wire) : json(nullptr)},
                    {"error_by_kind_without_waiting",
                     wire_ok && by_kind_s >= 0 ? json(err_kind_wire) : json(nullptr)},
                    {"tokens_per_s_per_process", tps_proc},
                    {"ranks", rank_rows}});
  }
  std::printf("error: (predicted - measured) / measured; no-latency: the replay's claimed-cluster\n"
              "formula alone (every parameter 3x or 2x over the large-buffer bandwidth); per-kind:\n"
              "the same traffic split by collective kind, each kind over its own fitted line; no-wait:\n"
              "the measured collectives counted from their last rank's issue (time a rank waited\n"
              "for its peers taken out), and the per-kind prediction's error against that.\n");
  result["parallelisms"] = runs;

  // 4. Scaling: one process with every thread against the ranks, same global batch; and one
  // process with one rank's threads (the same work per thread count as a rank, for reference).
  if (o.scaling && !cuda) {
    const double tokens = static_cast<double>(o.batch * o.seq);
    auto single_run = [&](int threads) {
      torch::set_num_threads(threads);
      const auto single = train_steps(o, "none", nullptr, "cpu");
      std::vector<double> secs;
      for (const auto& st : single["steps"])
        if (st["timed"].get<bool>()) secs.push_back(st["seconds"].get<double>());
      return json{{"threads", threads},
                  {"tokens_per_step", tokens},
                  {"step_s", median(secs)},
                  {"tokens_per_s", tokens / median(secs)}};
    };
    const int threads = o.nproc * o.threads;
    const json single = single_run(threads);
    const json single_rank = single_run(o.threads);
    const double single_tps = single["tokens_per_s"].get<double>();
    std::printf("\nScaling on the CPU, %s model, global batch %lld x seq %lld (%g tokens per step),\n"
                "same total threads: 1 process x %d threads against %d processes x %d thread(s);\n"
                "tokens/s per process = that process's tokens / its median step seconds.\n",
                o.model.c_str(), static_cast<long long>(o.batch), static_cast<long long>(o.seq),
                tokens, threads, o.nproc, o.threads);
    std::printf("%-24s %16s %14s %10s\n", "run", "tok/s per proc", "tok/s total", "vs 1 proc");
    std::printf("%-24s %16.0f %14.0f %9.2fx\n", ("1 x " + std::to_string(threads) + " threads").c_str(),
                single_tps, single_tps, 1.0);
    json rows = json::array();
    for (size_t j = 0; j < pars.size(); ++j) {
      const double total = per_proc_tps[j] * G;
      const std::string name = std::to_string(o.nproc) + " x " + std::to_string(o.threads) + " " +
                               runs[j]["parallelism"].get<std::string>();
      std::printf("%-24s %16.0f %14.0f %9.2fx\n", name.c_str(), per_proc_tps[j], total,
                  total / single_tps);
      rows.push_back({{"parallelism", runs[j]["parallelism"]},
                      {"processes", o.nproc},
                      {"threads_per_process", o.threads},
                      {"tokens_per_s_per_process", per_proc_tps[j]},
                      {"tokens_per_s_total", total},
                      {"speedup_vs_one_process", total / single_tps}});
    }
    const double rank_tps = single_rank["tokens_per_s"].get<double>();
    std::printf("%-24s %16.0f %14.0f %9.2fx  (reference: one rank's threads)\n",
                ("1 x " + std::to_string(o.threads) + " thread(s)").c_str(), rank_tps, rank_tps,
                rank_tps / single_tps);
    result["scaling"] = {{"single_process", single},
                         {"single_process_rank_threads", single_rank},
                         {"ranks", rows}};
  }
  std::fflush(stdout);
  if (!o.json_out.empty()) {
    std::ofstream f(o.json_out);
    f << result.dump(2) << "\n";
    if (!f) throw std::runtime_error("cannot write " + o.json_out);
  }
  if (out.active()) out.print(result);
  return 0;
}

}  // namespace

void add_bench_comm_command(CLI::App& bench, GlobalOptions& g) {
  auto o = std::make_shared<BenchCommOptions>();
  auto* cmd = bench.add_subcommand(
      "comm", "Collectives measured over N ranks against the replay's communication model");
  cmd->description(
      "Starts --nproc ranks of this binary on this machine (Gloo on the CPU; NCCL with --device\n"
      "cuda, one GPU per rank), times every collective kind at --sizes, calibrates the link from\n"
      "the smallest and largest all-reduce (bandwidth and per-call latency), trains the bench\n"
      "model with each --parallelism and compares the communication the replay's model predicts\n"
      "per step with the collectives' measured seconds (relative error). With --scaling (CPU)\n"
      "also trains one process with nproc x threads threads on the same global batch and\n"
      "reports tokens/s per process. docs/replay.md, docs/benchmarks.md.");
  cmd->footer(
      "Examples:\n"
      "  audit bench comm                                   # 2 ranks, small model, Gloo\n"
      "  audit bench comm --nproc 2 --model large --steps 8 --json-out comm.json\n"
      "  audit bench comm --nproc 2 --device cuda           # NCCL, needs two GPUs\n\n" +
      std::string(kExitCodesHelp));
  cmd->add_option("--nproc", o->nproc, "Ranks to start on this machine (at least 2)")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Intra-op threads per rank")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--model", o->model, "Bench model: mini, small, large or 50m")
      ->check(CLI::IsMember({"mini", "small", "large", "50m"}))
      ->capture_default_str();
  cmd->add_option("--parallelism", o->parallelisms,
                  "Comma-separated: ddp, fsdp_full_shard")
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Global batch: sequences per step over all ranks")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--seq", o->seq, "Tokens per sequence")->check(CLI::Range(2, 1 << 16))->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Untimed steps first")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--steps", o->steps, "Timed steps (median)")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--repeats", o->repeats, "Timed calls of each collective and size (median)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--sizes", o->sizes,
                  "Collective sizes (bytes, KiB, MiB); the smallest and largest all-reduce "
                  "calibrate the link")
      ->capture_default_str();
  cmd->add_flag("--scaling,!--no-scaling", o->scaling,
                "Also train one process with nproc x threads threads (CPU) for tokens/s per process")
      ->capture_default_str();
  cmd->add_option("--timeout", o->timeout, "Seconds a rank waits for a peer before it fails")
      ->check(CLI::Range(5, 86400))
      ->capture_default_str();
  cmd->add_option("--json-out", o->json_out, "Also write the figures as JSON to this file");
  cmd->add_flag("--json", o->json, "Print the figures as JSON to stdout (the tables go to stderr)");
  cmd->add_option("--rank-dir", o->rank_dir, "The rank side (set by the verb itself)")->group("");
  add_device_option(*cmd, g);
  cmd->callback([o, &g] {
    o->device = g.device;
    if (!o->rank_dir.empty()) run_and_exit("bench comm", [&] { return run_rank(*o); });
    run_and_exit("bench comm", [&] {
      JsonStdout out(o->json);
      return bench_comm(*o, out);
    });
  });
}

}  // namespace audit::cli
