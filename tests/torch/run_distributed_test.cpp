// `audit run --nproc N` end to end through the real binary, Gloo on this CPU: two ranks train
// every training stage of a shrunken s1-mini with ddp and with fsdp_full_shard; the ledger has
// each rank's meters (rank_meters), the collectives per step (comm/<label>), a stage cpu_s that
// covers both ranks, the same loss curve as one process, and verifies. A worker killed mid-run
// fails the run (exit 1) within seconds, keeping its seconds, with no process left. Every
// refusal of several ranks exits 2 naming the flag or key, before a run row exists.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include "ledger/store/ledger.h"
#include "reproduce/model/checkpoint.h"  // load_model: the exported folders
#include "tests/support/support.h"

extern char** environ;

namespace {

using audit::testing::run_audit;
using audit::testing::TempDir;
using nlohmann::json;

std::string recipe() { return audit::testing::source_dir() + "/recipes/s1-mini.toml"; }

// s1-mini shrunk to a few seconds: 4 pretraining steps, 40 selected samples, one SFT epoch of
// 3 steps, one seed, a tiny eval; one torch thread per rank.
std::string tiny(int pretrain_steps = 4) {
  return " --set base.pretrain_steps=" + std::to_string(pretrain_steps) +
         " --set base.pretrain_examples=300 --set data.pool_size=120 --set data.select_n=40"
         " --set eval.seeds=1 --set eval.n_id=12 --set eval.n_ood=8 --set eval.max_new_tokens=48"
         " --set eval.think_budgets=[8] --set eval.wait_extensions=0 --set train.epochs=1"
         " --set base.hidden=32 --set base.layers=1 --set base.head_dim=8 --set base.ffn=64"
         " --set train.threads=1";
}

std::vector<double> losses(const audit::ledger::Ledger& l, int64_t run, const std::string& label) {
  auto a = l.artifact(run, "loss_curve/" + label);
  if (!a) return {};
  return (*a)["loss"].get<std::vector<double>>();
}

const audit::ledger::Event* find_event(const std::vector<audit::ledger::Event>& ev,
                                       int64_t stage, const std::string& key) {
  for (const auto& e : ev)
    if (e.stage_id == stage && e.key == key) return &e;
  return nullptr;
}

// Two ranks with `parallelism`: what the ledger must hold, and the curve against one process.
void two_ranks(const std::string& parallelism, const std::vector<std::string>& kinds) {
  const TempDir dir("audit_dist");
  const std::string db = dir.file("two.db"), one = dir.file("one.db");
  const std::string sets = tiny() + " --set train.parallelism=" + parallelism;
  auto ran = run_audit("run " + recipe() + " --quiet --meter-interval 0.1 --nproc 2 --ledger " +
                       db + sets);
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  auto plain = run_audit("run " + recipe() + " --quiet --ledger " + one + sets);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;

  audit::ledger::Ledger l(db, audit::ledger::OpenMode::read_only);
  const int64_t run = l.latest_run();
  const auto ev = l.events(run);
  int trained = 0;
  for (const auto& st : l.stages(run)) {
    if (st.name != "pretrain" && st.name != "sft-seed1") continue;
    ++trained;
    SCOPED_TRACE(st.name);
    const auto* rm = find_event(ev, st.id, "rank_meters");
    ASSERT_NE(rm, nullptr);
    const json v = json::parse(rm->value);
    EXPECT_EQ(v["world_size"], 2);
    EXPECT_EQ(v["status"], "succeeded");
    ASSERT_EQ(v["ranks"].size(), 2u);
    double sum = 0;
    for (int r = 0; r < 2; ++r) {
      EXPECT_EQ(v["ranks"][r]["rank"], r);
      EXPECT_GT(v["ranks"][r]["cpu_s"].get<double>(), 0.0);
      EXPECT_GT(v["ranks"][r]["pid"].get<int>(), 0);
      EXPECT_FALSE(v["ranks"][r]["cpu_source"].get<std::string>().empty());
      sum += v["ranks"][r]["cpu_s"].get<double>();
    }
    // The stage's cpu_s is the group's: both ranks (rank 0 keeps running a little after the
    // event, so it can only be larger).
    EXPECT_GE(st.cpu_s, 0.99 * sum);
    EXPECT_GT(st.cpu_s, v["ranks"][0]["cpu_s"].get<double>() +
                            0.5 * v["ranks"][1]["cpu_s"].get<double>());
    auto comm = l.artifact(run, "comm/" + st.name);
    ASSERT_TRUE(comm.has_value());
    EXPECT_EQ((*comm)["parallelism"], parallelism);
    EXPECT_EQ((*comm)["backend"], "gloo");
    ASSERT_FALSE((*comm)["rank0_steps"].empty());
    for (const auto& step : (*comm)["rank0_steps"])
      for (const auto& k : kinds) {
        ASSERT_TRUE(step.contains(k)) << k << " in " << step.dump();
        EXPECT_GT(step[k]["bytes"].get<double>(), 0.0) << k;
        EXPECT_GT(step[k]["calls"].get<int64_t>(), 0) << k;
      }
    ASSERT_EQ((*comm)["ranks"].size(), 2u);
    for (const auto& k : kinds)
      EXPECT_GT((*comm)["ranks"][1]["steps_total"][k]["bytes"].get<double>(), 0.0) << k;
    // The curve rank 0 kept equals one process's with the same global batch.
    audit::ledger::Ledger l1(one, audit::ledger::OpenMode::read_only);
    const auto a = losses(l, run, st.name), b = losses(l1, l1.latest_run(), st.name);
    ASSERT_EQ(a.size(), b.size());
    ASSERT_FALSE(a.empty());
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_NEAR(a[i], b[i], 1e-4 * std::abs(b[i])) << "step " << i + 1;
  }
  EXPECT_EQ(trained, 2);
  // The tuned model rank 0 exported as a Hugging Face folder (consolidated from the shards under
  // fsdp_full_shard) holds what one process's export holds.
  {
    audit::ledger::Ledger l1(one, audit::ledger::OpenMode::read_only);
    auto mine = audit::model::load_model(db + ".runs/" + std::to_string(run) + "/sft-seed1-hf");
    auto theirs =
        audit::model::load_model(one + ".runs/" + std::to_string(l1.latest_run()) + "/sft-seed1-hf");
    auto a = audit::model::state(mine), b = audit::model::state(theirs);
    ASSERT_EQ(a.size(), b.size());
    double worst = 0;
    for (const auto& [name, t] : a) worst = std::max(worst, (t - b.at(name)).abs().max().item<double>());
    EXPECT_LE(worst, 1e-4) << "largest parameter difference of the exported models";
  }
  for (const auto& e : ev)
    if (e.key == "sft_config") {
      const json v = json::parse(e.value);
      EXPECT_EQ(v["processes"], 2);
      EXPECT_EQ(v["parallelism"], parallelism);
    }
  auto verify = run_audit("ledger verify --ledger " + db);
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  // The report names the ranks of each training stage, from those rows.
  auto page = run_audit("report --ledger " + db + " --out " + dir.file("r.html"));
  ASSERT_EQ(page.exit_code, 0) << page.output;
  const std::string html = audit::testing::read_file(dir.file("r.html"));
  EXPECT_NE(html.find("2 ranks, " + parallelism + " on gloo: CPU-s"), std::string::npos);
  EXPECT_NE(html.find("rank 0&#39;s collectives"), std::string::npos);
}

// A bad invocation: exit 2, the message names `names`, and no run row (no ledger at all).
void refused(const std::string& args, const std::string& names, const std::string& env = "") {
  const TempDir dir("audit_dist_bad");
  const std::string db = dir.file("bad.db");
  auto r = audit::testing::run_command(env + " '" + audit::testing::audit_binary() + "' run " +
                                       args + " --quiet --ledger " + db);
  EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
  EXPECT_NE(r.output.find(names), std::string::npos) << args << "\n" << r.output;
  if (std::ifstream(db).good()) {
    audit::ledger::Ledger l(db, audit::ledger::OpenMode::read_only);
    EXPECT_TRUE(l.runs().empty()) << args;
  }
}

bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }

}  // namespace

TEST(RunDistributed, TwoRanksDdp) {
  AUDIT_SKIP_WITHOUT_TORCH();
  two_ranks("ddp", {"all_reduce"});
}

TEST(RunDistributed, TwoRanksFsdpFullShard) {
  AUDIT_SKIP_WITHOUT_TORCH();
  two_ranks("fsdp_full_shard", {"all_gather", "reduce_scatter"});
}

TEST(RunDistributed, KilledWorkerFailsTheRunWithItsSeconds) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const TempDir dir("audit_dist_kill");
  const std::string db = dir.file("kill.db"), err = dir.file("err.txt");
  // Pretraining long enough to be killed in the middle of it.
  const std::string cmd = "exec '" + audit::testing::audit_binary() + "' run " + recipe() +
                          " --meter-interval 0.1 --nproc 2 --ledger " + db + tiny(20000) +
                          " --set train.parallelism=ddp > /dev/null 2> " + err;
  std::vector<std::string> args = {"/bin/sh", "-c", cmd};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv.data(), environ), 0);
  // Training has begun when rank 0 prints its first pretraining progress line.
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  for (;;) {
    std::ifstream f(err);
    std::stringstream ss;
    ss << f.rdbuf();
    if (ss.str().find("[pretrain] ") != std::string::npos) break;
    if (since() > 60) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      FAIL() << "training did not begin within 60 s:\n" << ss.str();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // The worker: rank 0's child (audit execs audit-torch in place, so `pid` is rank 0).
  std::vector<pid_t> children;
  for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream f(t.path() / "children");
    pid_t c = 0;
    while (f >> c) children.push_back(c);
  }
  ASSERT_EQ(children.size(), 1u);
  const pid_t worker = children[0];
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  const auto killed = std::chrono::steady_clock::now();
  int status = 0;
  pid_t got = 0;
  while ((got = ::waitpid(pid, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() - killed < std::chrono::seconds(30))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (got == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    FAIL() << "audit did not exit within 30 s of the worker's death";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1) << audit::testing::read_file(err);
  EXPECT_FALSE(alive(worker));
  EXPECT_NE(audit::testing::read_file(err).find("rank 1"), std::string::npos);

  audit::ledger::Ledger l(db, audit::ledger::OpenMode::read_only);
  const int64_t run = l.latest_run();
  EXPECT_EQ(l.run(run)->status, audit::ledger::RunStatus::failed);
  const auto stages = l.stages(run);
  ASSERT_FALSE(stages.empty());
  const auto& st = stages.back();
  EXPECT_EQ(st.name, "pretrain");
  EXPECT_EQ(st.status, "failed");
  const auto events = l.events(run);
  const auto* rm = find_event(events, st.id, "rank_meters");
  ASSERT_NE(rm, nullptr);
  const json v = json::parse(rm->value);
  EXPECT_EQ(v["status"], "failed");
  ASSERT_EQ(v["ranks"].size(), 2u);
  const double rank1 = v["ranks"][1]["cpu_s"].get<double>();
  EXPECT_GT(rank1, 0.0);
  EXPECT_NE(v["ranks"][1]["cpu_source"].get<std::string>().find("wait4"), std::string::npos);
  EXPECT_GE(st.cpu_s, 0.99 * (rank1 + v["ranks"][0]["cpu_s"].get<double>()));
}

TEST(RunDistributed, RefusalsBeforeAnyRankOrRun) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const std::string r = recipe() + tiny();
  refused(r + " --nproc 0", "--nproc");
  refused(r + " --nproc 2 --distributed", "--nproc");
  refused(r + " --nproc 2 --master-port 70000 --set train.parallelism=ddp", "--master-port");
  refused(r + " --master-port 29999", "--master-port");
  // A port in use.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  refused(r + " --nproc 2 --set train.parallelism=ddp --master-port " +
              std::to_string(ntohs(a.sin_port)),
          "in use");
  ::close(fd);
  // Parallelism several ranks cannot run.
  refused(r + " --nproc 2 --set train.parallelism=none", "train.parallelism");
  for (const char* p : {"fsdp_shard_grad_op", "zero1", "zero3"})
    refused(r + " --nproc 2 --set train.parallelism=" + std::string(p), "not built; use ddp or fsdp_full_shard");
  refused(r + " --nproc 2 --set train.parallelism=ep_pp_dp", "train.parallelism");
  // More ranks than CUDA devices (no CUDA device here: --device itself is refused).
  const int gpus = int(torch::cuda::device_count());
  refused(r + " --set train.parallelism=ddp --device cuda --nproc " + std::to_string(gpus + 1),
          gpus == 0 ? "--device" : "--nproc");
  // A [launch] recipe starts its own ranks.
  refused(audit::testing::source_dir() + "/recipes/s1-launch.toml --nproc 2", "--nproc");
  // torchrun's environment: missing or bad variables are named.
  refused(r + " --distributed", "WORLD_SIZE");
  refused(r + " --distributed", "RANK", "WORLD_SIZE=2");
  refused(r + " --distributed", "MASTER_PORT", "WORLD_SIZE=2 RANK=0 MASTER_PORT=0");

  // A resume checkpoint written by one process is refused for two.
  const TempDir dir("audit_dist_resume");
  const std::string work = dir.file("work");
  auto one = run_audit("run " + r + " --quiet --ledger " + dir.file("one.db") + " --work-dir " +
                       work + " --set train.checkpoint_every=1 --set train.parallelism=ddp");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  ASSERT_TRUE(std::filesystem::exists(work + "/sft-seed1.resume.ckpt"));
  refused(r + " --nproc 2 --work-dir " + work +
              " --set train.checkpoint_every=1 --set train.parallelism=ddp",
          "written by 1 rank(s)");
}
