// Several ranks on Gloo (reproduce/distributed, the trainer's ddp and fsdp_full_shard): 2 and 3
// processes train exactly what one process trains with the same global batch (loss curve and
// final parameters within fp32 summation-order tolerance), full sharding's per-rank memory for
// parameters, gradients and AdamW states is measured at 1/N, a rank killed mid-run stops the
// others, and a sharded checkpoint resumes the same curve. Each rank is a process of
// tests/torch/probe/dist_train_probe.cpp, started with torchrun's variables.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/python_peer.h"  // shell_quote
#include "reproduce/distributed/distributed.h"
#include "reproduce/trainer/trainer.h"  // sharded_checkpoint_path
#include "tests/support/support.h"

namespace {

using audit::testing::TempDir;
using json = nlohmann::json;
namespace dist = audit::dist;

std::string probe() { return audit::testing::build_dir() + "/tests/dist_train_probe"; }

struct Ranks {
  std::vector<int> exit_codes;  // 128 + signal for a rank killed by one
  std::vector<std::string> logs;
  double seconds = 0;
};

// Starts `n` ranks of the probe with `args` (and `extra[r]` for rank r) in the background, waits
// for all, and returns their exit codes. n = 0: one process without the variables.
Ranks run_ranks(const std::string& dir, int n, const std::string& args,
                const std::map<int, std::string>& extra = {}) {
  const int port = dist::pick_free_port();
  std::string sh;
  const int procs = n == 0 ? 1 : n;
  for (int r = 0; r < procs; ++r) {
    std::string env = n == 0 ? std::string()
                             : "RANK=" + std::to_string(r) + " WORLD_SIZE=" + std::to_string(n) +
                                   " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
                                   " AUDIT_DIST_TIMEOUT=20 ";
    auto it = extra.find(r);
    sh += "(" + env + "timeout 120 " + audit::shell_quote(probe()) + " --out " +
          audit::shell_quote(dir) + " " + args + (it == extra.end() ? "" : " " + it->second) +
          " > " + audit::shell_quote(dir + "/log" + std::to_string(r)) + " 2>&1; echo $? > " +
          audit::shell_quote(dir + "/rc" + std::to_string(r)) + ") & ";
  }
  sh += "wait";
  const auto t0 = std::chrono::steady_clock::now();
  audit::testing::run_command(sh);
  Ranks out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int r = 0; r < procs; ++r) {
    out.exit_codes.push_back(std::stoi(audit::testing::read_file(dir + "/rc" + std::to_string(r))));
    out.logs.push_back(audit::testing::read_file(dir + "/log" + std::to_string(r)));
  }
  return out;
}

std::string all_logs(const Ranks& r) {
  std::string s;
  for (size_t i = 0; i < r.logs.size(); ++i) s += "rank " + std::to_string(i) + ": " + r.logs[i];
  return s;
}

json result(const std::string& dir, int rank) {
  return json::parse(audit::testing::read_file(dir + "/rank" + std::to_string(rank) + ".json"));
}

std::vector<float> params(const std::string& dir, int rank) {
  std::ifstream f(dir + "/params-rank" + std::to_string(rank) + ".bin", std::ios::binary);
  std::vector<float> v;
  float x;
  while (f.read(reinterpret_cast<char*>(&x), sizeof x)) v.push_back(x);
  return v;
}

double max_rel(const json& a, const json& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(a[i].get<double>() - b[i].get<double>()) /
                        std::max(1e-12, std::abs(a[i].get<double>())));
  return m;
}

double max_abs(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

// One parallelism at world sizes 2 and 3 against one process, on every rank.
void expect_equal_to_one_process(const std::string& parallelism, const std::string& args) {
  const TempDir one("dist_one");
  auto r1 = run_ranks(one.path(), 0, args);
  ASSERT_EQ(r1.exit_codes[0], 0) << all_logs(r1);
  const json ref = result(one.path(), 0);
  const auto ref_params = params(one.path(), 0);
  ASSERT_EQ(ref["loss"].size(), 6u);
  for (int n : {2, 3}) {
    const TempDir dir("dist_" + parallelism);
    auto r = run_ranks(dir.path(), n, "--parallelism " + parallelism + " " + args);
    for (int k = 0; k < n; ++k) ASSERT_EQ(r.exit_codes[k], 0) << all_logs(r);
    // A step's tokens are the group's: the positions every rank ran (each trims its own
    // micro-batches after their last target, so they need not be one process's count).
    for (size_t step = 0; step < ref["loss"].size(); ++step) {
      int64_t sum = 0;
      for (int k = 0; k < n; ++k) sum += result(dir.path(), k)["local_tokens"][step].get<int64_t>();
      EXPECT_EQ(sum, result(dir.path(), 0)["tokens"][step].get<int64_t>()) << "step " << step + 1;
    }
    for (int k = 0; k < n; ++k) {
      const json j = result(dir.path(), k);
      const auto p = params(dir.path(), k);
      ASSERT_EQ(p.size(), ref_params.size());
      const double dl = max_rel(ref["loss"], j["loss"]), dp = max_abs(ref_params, p);
      std::fprintf(stderr, "%s, %d ranks, rank %d: loss within %.2e relative, parameters within "
                   "%.2e absolute of one process\n", parallelism.c_str(), n, k, dl, dp);
      EXPECT_LE(dl, 1e-5) << "rank " << k << " of " << n;
      EXPECT_LE(dp, 1e-5) << "rank " << k << " of " << n;
      // Every step moved its collectives, booked with bytes and time.
      for (const auto& c : j["comm"]) {
        ASSERT_FALSE(c.empty());
        for (const auto& [kind, st] : c.items()) {
          EXPECT_GT(st["calls"].get<int>(), 0) << kind;
          EXPECT_GT(st["seconds"].get<double>(), 0) << kind;
        }
      }
    }
  }
}

TEST(Distributed, DdpOnTwoAndThreeRanksTrainsWhatOneProcessTrains) {
  // 20 kB buckets: several per group, started from the hooks while backward runs.
  expect_equal_to_one_process("ddp", "--bucket-bytes 20000");
}

TEST(Distributed, FsdpOnTwoAndThreeRanksTrainsWhatOneProcessTrains) {
  expect_equal_to_one_process("fsdp_full_shard", "");
}

TEST(Distributed, FsdpComposesWithRecomputeAndUnevenSlices) {
  // Global batch 7 on 3 ranks: slices of 3, 2 and 2, one micro-batch each, so two ranks run a
  // padding micro-batch to keep the per-layer collectives in step.
  expect_equal_to_one_process("fsdp_full_shard", "--recompute --batch 7 --micro 1");
}

TEST(Distributed, DdpAllReducesEveryGradientOncePerStep) {
  const TempDir dir("dist_ddp_bytes");
  auto r = run_ranks(dir.path(), 2, "--parallelism ddp --bucket-bytes 20000");
  ASSERT_EQ(r.exit_codes[0], 0) << all_logs(r);
  const json j = result(dir.path(), 0);
  const double grad_bytes = 4.0 * j["parameters"].get<double>();
  for (size_t step = 0; step < j["comm"].size(); ++step) {
    const auto& c = j["comm"][step];
    EXPECT_DOUBLE_EQ(c["all_reduce"]["bytes"].get<double>(), grad_bytes);
    const int buckets = j["buckets"][step].get<int>();
    EXPECT_GT(buckets, 2) << "more than one bucket per group";
    // Every bucket started from the hooks while backward ran (each parameter has a gradient),
    // and the step's booked all-reduces are the buckets' (World::sum of the loss and token
    // counts is a control value, not booked).
    EXPECT_EQ(j["buckets_in_backward"][step].get<int>(), buckets);
    EXPECT_EQ(c["all_reduce"]["calls"].get<int>(), buckets);
  }
}

TEST(Distributed, FsdpHoldsOneNthOfTheStatePerRank) {
  // Measured: CPU tensor bytes live between steps (dist::CpuMemory), beyond the data.
  const TempDir one("dist_mem_one");
  auto r1 = run_ranks(one.path(), 0, "--steps 2");
  ASSERT_EQ(r1.exit_codes[0], 0) << all_logs(r1);
  const double single = result(one.path(), 0)["state_bytes"].get<double>();
  const double params = result(one.path(), 0)["parameters"].get<double>();
  // Parameters, gradients and two AdamW moments in fp32, and nothing else of size.
  EXPECT_NEAR(single, 16 * params, 0.02 * 16 * params);
  for (int n : {2, 3}) {
    const TempDir dir("dist_mem");
    auto r = run_ranks(dir.path(), n, "--parallelism fsdp_full_shard --steps 2");
    for (int k = 0; k < n; ++k) ASSERT_EQ(r.exit_codes[k], 0) << all_logs(r);
    for (int k = 0; k < n; ++k) {
      const json j = result(dir.path(), k);
      const double ratio = j["state_bytes"].get<double>() / single;
      std::fprintf(stderr, "fsdp_full_shard %d ranks, rank %d: %.0f bytes between steps = %.4f of "
                   "one process's %.0f; peak in a step %.0f (one process %.0f)\n", n, k,
                   j["state_bytes"].get<double>(), ratio, single, j["peak_bytes"].get<double>(),
                   result(one.path(), 0)["peak_bytes"].get<double>());
      EXPECT_GE(ratio, 1.0 / n - 1e-3);
      EXPECT_LE(ratio, 1.0 / n + 0.02);
    }
  }
}

TEST(Distributed, ARankKilledMidRunStopsTheOthers) {
  const TempDir dir("dist_kill");
  auto r = run_ranks(dir.path(), 3, "--parallelism fsdp_full_shard --steps 6",
                     {{1, "--die-at-step 3"}});
  EXPECT_EQ(r.exit_codes[1], 128 + 9) << all_logs(r);  // SIGKILL
  EXPECT_NE(r.exit_codes[0], 0) << all_logs(r);
  EXPECT_NE(r.exit_codes[0], 124) << "rank 0 ran into `timeout`, not into its own error";
  EXPECT_NE(r.exit_codes[2], 0) << all_logs(r);
  EXPECT_NE(r.exit_codes[2], 124) << all_logs(r);
  EXPECT_LT(r.seconds, 40) << "the survivors stop within the collective timeout (20 s)";
  std::fprintf(stderr, "rank 1 killed at step 3: the other ranks exited %d and %d after %.1f s\n",
               r.exit_codes[0], r.exit_codes[2], r.seconds);
}

TEST(Distributed, ShardedCheckpointResumesTheSameCurve) {
  const TempDir whole("dist_resume_whole");
  auto r = run_ranks(whole.path(), 2, "--parallelism fsdp_full_shard --steps 6");
  ASSERT_EQ(r.exit_codes[0], 0) << all_logs(r);
  const json ref = result(whole.path(), 0);

  const TempDir dir("dist_resume");
  const std::string ckpt = dir.file("train.ckpt");
  const std::string common = "--parallelism fsdp_full_shard --steps 6 --checkpoint " +
                             audit::shell_quote(ckpt) + " --checkpoint-every 3";
  auto first = run_ranks(dir.path(), 2, common + " --stop-after 3");
  ASSERT_EQ(first.exit_codes[0], 0) << all_logs(first);
  ASSERT_EQ(first.exit_codes[1], 0) << all_logs(first);
  for (int k : {0, 1})
    EXPECT_EQ(audit::testing::read_file(audit::train::sharded_checkpoint_path(ckpt, k, 2)).empty(), false);
  auto second = run_ranks(dir.path(), 2, common);
  ASSERT_EQ(second.exit_codes[0], 0) << all_logs(second);
  const json j = result(dir.path(), 0);
  EXPECT_TRUE(j["resumed"].get<bool>());
  EXPECT_EQ(j["start_step"].get<int>(), 3);
  ASSERT_EQ(j["loss"].size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    EXPECT_NEAR(j["loss"][i].get<double>(), ref["loss"][i + 3].get<double>(),
                1e-6 * std::abs(ref["loss"][i + 3].get<double>()))
        << "step " << i + 4;

  // Three ranks cannot take two ranks' shards: exit 2 naming the world size, before training.
  auto wrong = run_ranks(dir.path(), 3, common);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(wrong.exit_codes[k], 2) << all_logs(wrong);
    EXPECT_NE(wrong.logs[k].find("written by 2 rank(s)"), std::string::npos) << wrong.logs[k];
  }
}

TEST(Distributed, ADdpCheckpointResumesOnlyAtItsWorldSize) {
  const TempDir dir("dist_resume_ddp");
  const std::string common = "--steps 6 --checkpoint " + audit::shell_quote(dir.file("t.ckpt")) +
                             " --checkpoint-every 3";
  auto first = run_ranks(dir.path(), 2, "--parallelism ddp --stop-after 3 " + common);
  ASSERT_EQ(first.exit_codes[0], 0) << all_logs(first);
  auto alone = run_ranks(dir.path(), 0, common);  // one process, no variables
  EXPECT_EQ(alone.exit_codes[0], 2) << all_logs(alone);
  EXPECT_NE(alone.logs[0].find("written by 2 rank(s) with parallelism ddp"), std::string::npos)
      << alone.logs[0];
  auto again = run_ranks(dir.path(), 2, "--parallelism ddp " + common);
  ASSERT_EQ(again.exit_codes[0], 0) << all_logs(again);
  EXPECT_EQ(result(dir.path(), 0)["start_step"].get<int>(), 3);
}

TEST(Distributed, SeveralRanksNeedDdpOrFsdp) {
  const TempDir dir("dist_none");
  auto r = run_ranks(dir.path(), 2, "--parallelism none");
  for (int k = 0; k < 2; ++k) {
    EXPECT_NE(r.exit_codes[k], 0);
    EXPECT_NE(r.logs[k].find("\"ddp\" or \"fsdp_full_shard\""), std::string::npos) << r.logs[k];
  }
}

TEST(Distributed, TorchrunVariablesAreReadAndBadOnesNamed) {
  using Env = std::map<std::string, std::string>;
  Env none;
  EXPECT_FALSE(dist::spec_from_env(&none).has_value());
  Env ok{{"RANK", "2"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"}, {"LOCAL_WORLD_SIZE", "2"},
         {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29511"}};
  auto s = dist::spec_from_env(&ok);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->rank, 2);
  EXPECT_EQ(s->world_size, 4);
  EXPECT_EQ(s->local_rank, 0);
  EXPECT_EQ(s->master_addr, "10.0.0.1");
  EXPECT_EQ(s->master_port, 29511);
  EXPECT_EQ(dist::spec_from_env(&ok)->from, "torchrun environment");
  // env_for() writes what spec_from_env() reads.
  auto back = dist::env_for(*s);
  EXPECT_EQ(dist::spec_from_env(&back)->master_port, 29511);
  auto refused = [](Env e, const std::string& key) {
    try {
      dist::spec_from_env(&e);
      ADD_FAILURE() << "accepted, expected a refusal naming " << key;
    } catch (const audit::InputError& err) {
      EXPECT_EQ(err.key, key) << err.what();
    }
  };
  refused({{"WORLD_SIZE", "2"}}, "RANK");
  refused({{"WORLD_SIZE", "2"}, {"RANK", "2"}}, "RANK");
  refused({{"WORLD_SIZE", "two"}, {"RANK", "0"}}, "WORLD_SIZE");
  refused({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", "70000"}}, "MASTER_PORT");
  refused({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"LOCAL_RANK", "3"}}, "LOCAL_RANK");
}

TEST(Distributed, APortInUseIsNamed) {
  const int port = dist::pick_free_port();
  EXPECT_TRUE(dist::port_free("127.0.0.1", port));
  dist::WorldSpec s;
  s.master_port = port;
  s.timeout_s = 5;
  {
    dist::World holder(s, "cpu");  // serves the store on the port
    EXPECT_FALSE(dist::port_free("127.0.0.1", port));
    try {
      dist::World second(s, "cpu");
      ADD_FAILURE() << "a second store on the same port was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(port)), std::string::npos) << e.what();
    }
    // One rank's collectives are booked with their bytes, and traced when asked.
    auto t = torch::ones({4});
    holder.set_trace(true);
    holder.all_reduce(t);
    ASSERT_EQ(holder.trace().size(), 1u);
    EXPECT_EQ(holder.trace()[0].kind, "all_reduce");
    EXPECT_GE(holder.trace()[0].done_s, holder.trace()[0].issued_s);
    EXPECT_EQ(holder.log().at("all_reduce").calls, 1);
    EXPECT_DOUBLE_EQ(holder.log().at("all_reduce").bytes, 16.0);
    EXPECT_FLOAT_EQ(t[0].item<float>(), 1.0f);
  }
}

}  // namespace
