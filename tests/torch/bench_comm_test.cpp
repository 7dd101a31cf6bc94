// `audit bench comm` end to end: two Gloo ranks of the binary time their collectives and train the
// small bench model with ddp and fsdp_full_shard; the JSON has measured seconds, the link
// calibration and a finite error of the replay's communication model; bad input exits 2 before
// any rank starts. BenchCommGpu: the 2-rank NCCL case (label gpu; needs two CUDA GPUs).
#include <cmath>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "tests/support/support.h"

namespace {

using audit::testing::run_audit;
using nlohmann::json;

// A quick run: two sizes, 5 calls each, 1 + 2 steps of a 4 x 32 token batch. 4 MiB: far enough
// from 4 KiB that a loaded machine's noise cannot make the large all-reduce the faster one.
const char* kQuick =
    "bench comm --nproc 2 --threads 1 --model small --sizes 4KiB,4MiB --repeats 5 --warmup 1 "
    "--steps 2 --batch 4 --seq 32 --timeout 60";

void expect_measured(const json& j, int nproc) {
  EXPECT_EQ(j.at("nproc").get<int>(), nproc);
  bool all_reduce = false;
  for (const auto& c : j.at("collectives")) {
    EXPECT_GT(c.at("median_s").get<double>(), 0.0) << c.dump();
    EXPECT_EQ(c.at("rank_median_s").size(), static_cast<size_t>(nproc));
    all_reduce = all_reduce || c.at("kind") == "all_reduce";
  }
  EXPECT_TRUE(all_reduce);
  const auto& cal = j.at("calibration");
  EXPECT_GT(cal.at("bytes_s").get<double>(), 0.0);
  EXPECT_GE(cal.at("latency_s").get<double>(), 0.0);
  EXPECT_EQ(cal.at("large_bytes").get<double>(), 4.0 * 1024.0 * 1024.0);
  ASSERT_EQ(j.at("parallelisms").size(), 2u);
  for (const auto& p : j.at("parallelisms")) {
    SCOPED_TRACE(p.at("parallelism").get<std::string>());
    EXPECT_GT(p.at("measured_comm_s").get<double>(), 0.0);
    EXPECT_GT(p.at("predicted").at("seconds").get<double>(), 0.0);
    EXPECT_TRUE(std::isfinite(p.at("error").get<double>()));
    // The model's calls per step are the calls the trainer made.
    EXPECT_EQ(p.at("predicted").at("calls").get<double>(),
              p.at("measured_calls_per_step").get<double>());
    EXPECT_GT(p.at("tokens_per_s_per_process").get<double>(), 0.0);
    // Without the time a rank waited for its peer: positive, and never more than with it.
    ASSERT_TRUE(p.at("measured_comm_s_without_waiting").is_number()) << p.dump();
    const double no_wait = p.at("measured_comm_s_without_waiting").get<double>();
    EXPECT_GT(no_wait, 0.0);
    EXPECT_LE(no_wait, p.at("measured_comm_s").get<double>() * (1 + 1e-9));
    // The per-kind prediction exists wherever every kind the step used got a line.
    bool lines = true;
    for (const auto& [kind, t] : p.at("traffic_by_kind").items())
      lines = lines && j.at("kind_links").contains(kind);
    if (lines) EXPECT_TRUE(std::isfinite(p.at("error_by_kind").get<double>()));
  }
}

TEST(BenchComm, TwoGlooRanksMeasureAndPredict) {
  AUDIT_SKIP_WITHOUT_TORCH();
  audit::testing::TempDir dir("bench_comm");
  const auto r = run_audit(std::string(kQuick) + " --json-out " + dir.file("comm.json") + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Link calibration"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Scaling on the CPU"), std::string::npos) << r.output;
  const auto j = json::parse(audit::testing::read_file(dir.file("comm.json")));
  expect_measured(j, 2);
  EXPECT_EQ(j.at("backend"), "gloo");
  const auto& s = j.at("scaling");
  EXPECT_EQ(s.at("single_process").at("threads").get<int>(), 2);
  EXPECT_GT(s.at("single_process").at("tokens_per_s").get<double>(), 0.0);
  EXPECT_EQ(s.at("ranks").size(), 2u);
}

TEST(BenchComm, BadInputExitsTwoBeforeAnyRank) {
  AUDIT_SKIP_WITHOUT_TORCH();
  auto r = run_audit("bench comm --nproc 1 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("at least 2 ranks"), std::string::npos) << r.output;
  r = run_audit("bench comm --sizes 4KiB 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("at least two sizes"), std::string::npos) << r.output;
  r = run_audit("bench comm --sizes 4KiB,12parsecs 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_audit("bench comm --parallelism tensor 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("'tensor'"), std::string::npos) << r.output;
  r = run_audit("bench comm --nproc 4 --batch 2 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  // The rank side without the environment the verb gives it.
  r = run_audit("bench comm --rank-dir /tmp 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("WORLD_SIZE"), std::string::npos) << r.output;
}

// make check-gpu runs it (ctest -L gpu): two ranks on NCCL, one GPU each.
TEST(BenchCommGpu, TwoRankNccl) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const auto gpus = torch::cuda::device_count();
  if (gpus < 2)
    GTEST_SKIP() << "this machine has " << gpus
                 << " CUDA GPU(s); the 2-rank NCCL case needs two (one per rank)";
  audit::testing::TempDir dir("bench_comm_gpu");
  const auto r = run_audit(std::string(kQuick) + " --device cuda --json-out " +
                           dir.file("comm.json") + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = json::parse(audit::testing::read_file(dir.file("comm.json")));
  expect_measured(j, 2);
  EXPECT_EQ(j.at("backend"), "nccl");
}

}  // namespace
