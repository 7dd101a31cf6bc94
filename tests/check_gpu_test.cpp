// `make check-gpu` (ci/check-gpu.sh) without a GPU: its options, its refusal to build on a
// machine with no GPU, and its summary writer (ci/check_gpu_summary.py) fed made-up step outputs.
// A stub nvidia-smi first on PATH decides whether the script sees a GPU, whatever the machine.
// The suite is not named *Gpu: these tests need no GPU and run in `make test`.
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <sqlite3.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/support.h"

namespace {
namespace fs = std::filesystem;
using audit::testing::run_command;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

const std::vector<std::string> kSteps = {"ctest-gpu",       "moe-gating-bench", "replay-self-check",
                                         "bench-comm-nccl", "bench-train",      "replay-s1-8k",
                                         "replay-deepseek-v3", "run-s1-mini"};

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

void write_file(const fs::path& p, const std::string& text, bool executable = false) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
  if (executable) fs::permissions(p, fs::perms::owner_all, fs::perm_options::add);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class CheckGpuScript : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "audit_check_gpu_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    script_ = fs::path(audit::testing::source_dir()) / "ci" / "check-gpu.sh";
    summary_ = fs::path(audit::testing::source_dir()) / "ci" / "check_gpu_summary.py";
    ASSERT_TRUE(fs::exists(script_)) << script_;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A folder holding an nvidia-smi stub with this body, to put first on PATH, and a cmake stub
  // that notes it was called (so that no test can start a real build).
  std::string stub_path(const std::string& name, const std::string& body) {
    const fs::path bin = dir_ / name;
    write_file(bin / "nvidia-smi", "#!/bin/sh\n" + body, true);
    write_file(bin / "cmake", "#!/bin/sh\necho \"$@\" >> " + quote((dir_ / "cmake-called").string()) +
                                  "\nexit 1\n",
               true);
    return bin.string();
  }
  // The stub of a machine with one GPU.
  std::string gpu_stub() {
    return stub_path("gpu", R"sh(case "$*" in
  -L) echo "GPU 0: NVIDIA Fake H200 (UUID: GPU-12345678)" ;;
  *query-gpu=name*) echo "NVIDIA Fake H200" ;;
  *query-gpu=driver_version*) echo "999.01" ;;
  *query-gpu=compute_cap*) echo "9.0" ;;
  *) echo "| NVIDIA-SMI 999.01    Driver Version: 999.01    CUDA Version: 13.0 |" ;;
esac
)sh");
  }
  audit::testing::CommandResult script(const std::string& args, const std::string& path_first = "",
                                       const std::string& extra_env = "") {
    std::string env = path_first.empty() ? "" : "PATH=" + quote(path_first) + ":\"$PATH\" ";
    env += extra_env.empty() ? "" : extra_env + " ";
    return run_command("cd " + quote(dir_.string()) + " && " + env + "bash " + quote(script_.string()) +
                       " " + args);
  }
  audit::testing::CommandResult summarize(const fs::path& steps, const fs::path& out) {
    const char* py = std::getenv("AUDIT_PYTHON");
    const std::string python = py != nullptr && *py != '\0' ? py : "python3";
    return run_command(quote(python) + " " + quote(summary_.string()) + " --steps-dir " +
                       quote(steps.string()) + " --out " + quote(out.string()));
  }
  // One step folder as ci/check-gpu.sh leaves it.
  void step(const fs::path& steps, const std::string& name, const std::string& command, int exit_code,
            double seconds, int limit, const std::string& output) {
    const fs::path d = steps / name;
    write_file(d / "command", command + "\n");
    write_file(d / "exit_code", std::to_string(exit_code) + "\n");
    write_file(d / "seconds", std::to_string(seconds) + "\n");
    write_file(d / "limit_s", std::to_string(limit) + "\n");
    write_file(d / "output.log", output);
  }

  fs::path dir_, script_, summary_;
};

const json* find_step(const json& summary, const std::string& name) {
  for (const auto& s : summary.at("steps"))
    if (s.at("name") == name) return &s;
  return nullptr;
}

TEST_F(CheckGpuScript, HelpExitsZeroAndListsTheOptionsAndSteps) {
  const auto r = script("--help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const char* opt : {"--help", "--out PATH", "--build-dir DIR", "--only STEP[,STEP]", "--skip-build"})
    EXPECT_THAT(r.output, HasSubstr(opt));
  for (const auto& s : kSteps) EXPECT_THAT(r.output, HasSubstr("\n  " + s + " ")) << s;
}

TEST_F(CheckGpuScript, AnUnknownOptionOrStepExitsTwoWithUsage) {
  auto r = script("--frobnicate", gpu_stub());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("unknown option '--frobnicate'"));
  EXPECT_THAT(r.output, HasSubstr("usage: ci/check-gpu.sh"));
  r = script("--skip-build --only ctest-gpu,no-such-step", gpu_stub());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("no step named 'no-such-step'"));
  r = script("--out", gpu_stub());
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

TEST_F(CheckGpuScript, WithoutAGpuItSaysSoAndExitsTwoBeforeBuilding) {
  const fs::path build = dir_ / "build-gpu";
  // nvidia-smi that fails (no driver), and one that succeeds but lists nothing.
  for (const auto& stub : {stub_path("failing", "exit 9\n"),
                           stub_path("empty", "echo 'No devices were found'\nexit 0\n")}) {
    const auto r = script("--build-dir " + quote(build.string()), stub);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr("no CUDA GPU on this machine"));
    EXPECT_THAT(r.output, HasSubstr("nothing was built or run"));
    EXPECT_FALSE(fs::exists(build)) << "the build folder was created without a GPU";
    EXPECT_FALSE(fs::exists(dir_ / "cmake-called")) << read_file(dir_ / "cmake-called");
    EXPECT_THAT(r.output, Not(HasSubstr("cmake")));
  }
}

TEST_F(CheckGpuScript, WithAGpuTheArgumentsGetPastTheCheckAndAFailingStepExitsOne) {
  const fs::path build = dir_ / "empty-build";  // no binaries: the selected step fails at once
  const fs::path out = dir_ / "out" / "summary.json";
  const auto r = script("--build-dir " + quote(build.string()) + " --skip-build --only moe-gating-bench --out " +
                            quote(out.string()),
                        gpu_stub());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, Not(HasSubstr("no CUDA GPU")));
  EXPECT_THAT(r.output, HasSubstr("NVIDIA Fake H200"));
  ASSERT_TRUE(fs::exists(out)) << r.output;
  const json s = json::parse(read_file(out));
  EXPECT_EQ(s.at("gpu_name"), "NVIDIA Fake H200");
  EXPECT_EQ(s.at("driver_version"), "999.01");
  EXPECT_EQ(s.at("cuda_version"), "13.0");
  EXPECT_EQ(s.at("compute_capability"), "9.0");
  EXPECT_EQ(s.at("gpu_count"), 1);
  EXPECT_EQ(s.at("git_commit").get<std::string>().size(), 40u) << s.at("git_commit");
  EXPECT_FALSE(s.at("ok").get<bool>());
  ASSERT_EQ(s.at("steps").size(), kSteps.size() + 1) << s.dump(2);
  EXPECT_EQ(s.at("steps")[0].at("name"), "build");
  EXPECT_EQ(s.at("steps")[0].at("status"), "skipped");
  const json* bench = find_step(s, "moe-gating-bench");
  ASSERT_NE(bench, nullptr);
  EXPECT_EQ(bench->at("status"), "failed");
  EXPECT_EQ(bench->at("exit_code"), 127);
  EXPECT_THAT(bench->at("command").get<std::string>(), HasSubstr("--benchmark_filter='^BM_MoeGatingCuda'"));
  EXPECT_EQ(bench->at("limit_s"), 60);
  for (const auto& name : kSteps) {
    if (name == "moe-gating-bench") continue;
    const json* other = find_step(s, name);
    ASSERT_NE(other, nullptr) << name;
    EXPECT_EQ(other->at("status"), "skipped") << name;
    EXPECT_THAT(other->at("reason").get<std::string>(), HasSubstr("not selected"));
  }
}

// The build step: CUDA on, the GPU's architecture (9.0 -> 90), its own folder; when it fails the
// GPU steps are not run on whatever binaries are there. cmake and nvcc are stubs here.
TEST_F(CheckGpuScript, TheBuildIsConfiguredForTheGpuAndItsFailureSkipsTheSteps) {
  const std::string bin = gpu_stub();
  write_file(fs::path(bin) / "nvcc", "#!/bin/sh\necho 'Cuda compilation tools, release 13.0, V13.0.48'\n", true);
  const fs::path build = dir_ / "build-gpu";
  const fs::path out = dir_ / "s.json";
  const auto r = script("--build-dir " + quote(build.string()) + " --out " + quote(out.string()), bin,
                        "CUDACXX=" + quote(bin + "/nvcc"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const std::string build_log = read_file(build / "check-gpu" / "build" / "output.log");
  if (build_log.find("cannot import torch") != std::string::npos)
    GTEST_SKIP() << "the Python of this build has no torch (make deps): " << build_log;
  const std::string cmake = read_file(dir_ / "cmake-called");
  EXPECT_THAT(cmake, HasSubstr("-B " + build.string()));
  EXPECT_THAT(cmake, HasSubstr("-G Ninja"));
  EXPECT_THAT(cmake, HasSubstr("-DAUDIT_CUDA=ON"));
  EXPECT_THAT(cmake, HasSubstr("-DCMAKE_CUDA_ARCHITECTURES=90"));
  EXPECT_THAT(cmake, HasSubstr("-DCMAKE_CUDA_COMPILER=" + bin + "/nvcc"));
  EXPECT_THAT(cmake, HasSubstr("-DCMAKE_PREFIX_PATH="));
  const json s = json::parse(read_file(out));
  EXPECT_EQ(s.at("nvcc_version"), "13.0");
  const json* b = find_step(s, "build");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->at("status"), "failed");
  EXPECT_EQ(b->at("limit_s"), 300);
  EXPECT_EQ(b->at("figures").at("cuda_architectures"), "90");
  for (const auto& name : kSteps) {
    const json* st = find_step(s, name);
    ASSERT_NE(st, nullptr) << name;
    EXPECT_EQ(st->at("status"), "skipped") << name;
    EXPECT_THAT(st->at("reason").get<std::string>(), HasSubstr("the build failed"));
  }
}

TEST_F(CheckGpuScript, StepsThatCannotStartWithinTheBudgetAreTimedOut) {
  const fs::path out = dir_ / "s.json";
  const auto r = script("--build-dir " + quote((dir_ / "b").string()) + " --skip-build --budget 0 --out " +
                            quote(out.string()),
                        gpu_stub());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const json s = json::parse(read_file(out));
  for (const auto& name : kSteps) {
    const json* st = find_step(s, name);
    ASSERT_NE(st, nullptr) << name;
    // The stub has one GPU: the 2-rank NCCL step is skipped for that, whatever the budget.
    EXPECT_EQ(st->at("status"), name == "bench-comm-nccl" ? "skipped" : "timed out") << name;
    EXPECT_TRUE(st->at("exit_code").is_null());
  }
  EXPECT_EQ(s.at("counts").at("timed out"), static_cast<int>(kSteps.size()) - 1);
}

// Every step passed: the figures parsed from each kind of output, and the table.
TEST_F(CheckGpuScript, TheSummaryParsesEveryStepsFiguresAndPrintsOneRowPerStep) {
  const fs::path steps = dir_ / "steps";
  write_file(steps / "environment",
             "gpu_name=NVIDIA H200\ndriver_version=580.65\ncuda_version=13.0\nnvcc_version=13.0\n"
             "torch_cuda_version=13.0\ncompute_capability=9.0\ngpu_count=1\n"
             "git_commit=0123456789abcdef0123456789abcdef01234567\ngit_dirty=false\n"
             "build_dir=/x/build-gpu\nbudget_s=480\n");
  step(steps, "build", "cmake -S . -B build-gpu -DAUDIT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build-gpu",
       0, 101.5, 300, "[105/105] Linking CXX executable audit-torch\n");
  step(steps, "ctest-gpu", "ctest --test-dir build-gpu -L gpu", 0, 12.25, 120,
       "    Start 1: MoeGatingGpu.MatchesReferenceOverShapes\n"
       "1/4 Test #1: MoeGatingGpu.MatchesReferenceOverShapes ...   Passed    1.20 sec\n"
       "2/4 Test #2: MoeGatingGpu.DeepSeekV3RouterAtFullWidth ...   Passed    0.30 sec\n"
       "3/4 Test #3: MoeGatingGpu.NoTokensAndSmallWorkspace ...   Passed    0.10 sec\n"
       "4/4 Test #4: ReplayTorchGpu.DeepSeekLayerOnCuda ...   Passed    9.00 sec\n\n"
       "100% tests passed, 0 tests failed out of 4\n\nLabel Time Summary:\ngpu    =  10.60 sec*proc (4 tests)\n");
  step(steps, "moe-gating-bench", "build-gpu/bench/audit_bench --benchmark_filter='^BM_MoeGatingCuda'", 0, 8.5, 60,
       "BM_MoeGatingCuda/T:4096/router:0/manual_time ...\n");
  write_file(steps / "moe-gating-bench" / "bench.json", R"({
  "context": {"num_cpus": 16},
  "benchmarks": [
    {"name": "BM_MoeGatingCuda/T:4096/router:0/manual_time", "run_type": "iteration",
     "real_time": 20.5, "time_unit": "us", "label": "deepseek_v3 on NVIDIA H200",
     "achieved_GBps": 250.0, "peak_GBps": 4800.0, "pct_of_peak": 5.2083},
    {"name": "BM_MoeGatingCuda/T:65536/router:1/manual_time", "run_type": "iteration",
     "real_time": 60.0, "time_unit": "us", "label": "deepseek_v3 bf16 on NVIDIA H200",
     "achieved_GBps": 2400.0, "peak_GBps": 4800.0, "pct_of_peak": 50.0}
  ]})");
  step(steps, "replay-self-check", "build-gpu/audit replay --self-check --device cuda", 0, 30, 90,
       "audit replay --self-check on cuda: self-check\n"
       "  replay of 1 of 4 layers predicts 1.200 s for 8 steps x 8 x 256 tokens\n"
       "  the real Trainer took              1.250 s\n"
       "  prediction error                   -4.0% (goal: within 15%): supported\n");
  write_file(steps / "replay-self-check" / "replay.json",
             R"({"predicted_s": 1.2, "measured_s": 1.25, "error": -0.04, "goal": 0.15, "steps": 8})");
  step(steps, "bench-comm-nccl", "build-gpu/audit bench comm --nproc 2 --device cuda", 0, 45, 120,
       "Link calibration ...\n");
  write_file(steps / "bench-comm-nccl" / "comm.json", R"({"nproc": 2, "backend": "nccl",
    "calibration": {"bytes_s": 1.5e11, "latency_s": 2.5e-5},
    "parallelisms": [{"parallelism": "ddp", "error": 0.12},
                     {"parallelism": "fsdp_full_shard", "error": -0.2}]})");
  step(steps, "bench-train", "build-gpu/audit bench train --device cuda", 0, 40, 120, "small ...\n");
  write_file(steps / "bench-train" / "bench.json", R"([
    {"model": "small", "device": "cuda", "params": 830000, "ratio": 1.3,
     "cpp_tokens_per_s": [130000, 120000, 140000], "python_tokens_per_s": [100000, 90000, 110000]},
    {"model": "large", "device": "cuda", "params": 9520000, "ratio": 1.1,
     "cpp_tokens_per_s": [110000], "python_tokens_per_s": [100000]}])");
  step(steps, "replay-s1-8k", "build-gpu/audit replay recipes/s1.toml --device cuda --compare-eager", 0, 60, 120,
       "  one layer vs PyTorch eager (L=8192, same device): ours 0.5 s, eager 0.55 s, ratio 0.909\n");
  write_file(steps / "replay-s1-8k" / "replay.json", R"({
    "device_name": "NVIDIA H200", "reduced_shapes": false, "timed_arch": "qwen2 64L",
    "timing": {"measurements": [
      {"part": "dense_layer", "timed_seq_len": 8192, "claimed_seq_len": 8192, "batch": 1, "seconds": 0.5},
      {"part": "embed_head", "timed_seq_len": 8192, "claimed_seq_len": 8192, "batch": 1, "seconds": 0.1}]},
    "prediction": {"gpu_hours": [5.0, 6.0, 7.5], "mfu": [0.3, 0.4, 0.5], "verdict": "supported"},
    "eager": {"layer_s": 0.55, "ours_layer_s": 0.5, "ratio_ours_over_eager": 0.909}})");
  // exit 1 with the claim's verdict "not supported": the path ran, the claim failed.
  step(steps, "replay-deepseek-v3", "build-gpu/audit replay recipes/deepseek-v3.toml --device cuda", 1, 70, 150,
       "  verdict: not supported: ...\n");
  write_file(steps / "replay-deepseek-v3" / "replay.json", R"({
    "device_name": "NVIDIA H200", "reduced_shapes": false,
    "timing": {"measurements": [
      {"part": "moe_layer", "timed_seq_len": 4096, "claimed_seq_len": 4096, "batch": 1, "seconds": 0.25}]},
    "prediction": {"gpu_hours": [3.0e6, 3.5e6, 4.0e6], "verdict": "not supported"}})");
  step(steps, "run-s1-mini", "build-gpu/audit run recipes/s1-mini.toml --device cuda", 0, 150, 180,
       "[pretrain] 700/1500 loss 0.9000 lr 1.00e-03 40.0k tok/s elapsed 0:10 ETA 0:10\n"
       "[pretrain] 1500/1500 loss 0.4123 lr 0.00e+00 45.6k tok/s elapsed 0:20 ETA 0:00\n"
       "[sft-seed0] 315/315 loss 0.2000 lr 0.00e+00 1.2M tok/s elapsed 0:05 ETA 0:00\n"
       "run 1 succeeded; ledger /x/audit.db\n");

  const fs::path out = dir_ / "summary.json";
  const auto r = summarize(steps, out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(fs::exists(out)) << r.output;
  const json s = json::parse(read_file(out));
  EXPECT_EQ(s.at("gpu_name"), "NVIDIA H200");
  EXPECT_EQ(s.at("driver_version"), "580.65");
  EXPECT_EQ(s.at("cuda_version"), "13.0");
  EXPECT_EQ(s.at("git_commit"), "0123456789abcdef0123456789abcdef01234567");
  EXPECT_EQ(s.at("git_dirty"), false);
  EXPECT_TRUE(s.at("ok").get<bool>());
  EXPECT_EQ(s.at("counts").at("passed"), 9);

  ASSERT_EQ(s.at("steps").size(), 9u);
  const std::vector<std::string> order = {"build",           "ctest-gpu",   "moe-gating-bench",
                                          "replay-self-check", "bench-comm-nccl", "bench-train",
                                          "replay-s1-8k",    "replay-deepseek-v3", "run-s1-mini"};
  for (size_t i = 0; i < order.size(); ++i) {
    const json& st = s.at("steps")[i];
    EXPECT_EQ(st.at("name"), order[i]);
    EXPECT_EQ(st.at("status"), "passed") << st.dump(2);
    for (const char* key : {"command", "exit_code", "seconds", "limit_s", "figures"})
      EXPECT_TRUE(st.contains(key)) << order[i] << " lacks " << key;
  }
  const json& build = s.at("steps")[0];
  EXPECT_EQ(build.at("figures").at("cuda_architectures"), "90");
  EXPECT_DOUBLE_EQ(build.at("seconds").get<double>(), 101.5);
  EXPECT_EQ(build.at("limit_s"), 300);

  const json& ctest = find_step(s, "ctest-gpu")->at("figures");
  EXPECT_EQ(ctest.at("tests_total"), 4);
  EXPECT_EQ(ctest.at("tests_passed"), 4);
  EXPECT_EQ(ctest.at("tests_failed"), 0);
  EXPECT_EQ(ctest.at("tests_skipped"), 0);

  const json& moe = find_step(s, "moe-gating-bench")->at("figures");
  EXPECT_EQ(moe.at("cases").size(), 2u);
  EXPECT_DOUBLE_EQ(moe.at("best_achieved_GBps").get<double>(), 2400.0);
  EXPECT_DOUBLE_EQ(moe.at("best_fraction_of_peak").get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(moe.at("peak_GBps").get<double>(), 4800.0);
  EXPECT_EQ(moe.at("cases")[1].at("tokens"), 65536);

  const json& sc = find_step(s, "replay-self-check")->at("figures");
  EXPECT_DOUBLE_EQ(sc.at("predicted_s").get<double>(), 1.2);
  EXPECT_DOUBLE_EQ(sc.at("measured_s").get<double>(), 1.25);
  EXPECT_DOUBLE_EQ(sc.at("error").get<double>(), -0.04);
  EXPECT_EQ(sc.at("verdict"), "supported");

  const json& comm = find_step(s, "bench-comm-nccl")->at("figures");
  EXPECT_EQ(comm.at("backend"), "nccl");
  EXPECT_DOUBLE_EQ(comm.at("link_bytes_s").get<double>(), 1.5e11);
  EXPECT_DOUBLE_EQ(comm.at("errors").at("fsdp_full_shard").get<double>(), -0.2);

  const json& bt = find_step(s, "bench-train")->at("figures").at("models");
  ASSERT_EQ(bt.size(), 2u);
  EXPECT_EQ(bt[0].at("model"), "small");
  EXPECT_DOUBLE_EQ(bt[0].at("ratio_vs_eager").get<double>(), 1.3);
  EXPECT_DOUBLE_EQ(bt[0].at("cpp_tokens_per_s").get<double>(), 130000.0);  // median of 3
  EXPECT_DOUBLE_EQ(bt[0].at("eager_tokens_per_s").get<double>(), 100000.0);

  const json& s1 = find_step(s, "replay-s1-8k")->at("figures");
  EXPECT_DOUBLE_EQ(s1.at("ratio_ours_over_eager_layer_s").get<double>(), 0.909);
  EXPECT_EQ(s1.at("layers")[0].at("seq_len"), 8192);
  EXPECT_DOUBLE_EQ(s1.at("layers")[0].at("tokens_per_s").get<double>(), 16384.0);
  EXPECT_DOUBLE_EQ(s1.at("predicted_gpu_hours").get<double>(), 6.0);

  const json* v3 = find_step(s, "replay-deepseek-v3");
  EXPECT_EQ(v3->at("exit_code"), 1);
  EXPECT_THAT(v3->at("reason").get<std::string>(), HasSubstr("the claim's verdict"));
  EXPECT_DOUBLE_EQ(v3->at("figures").at("layers")[0].at("tokens_per_s").get<double>(), 16384.0);

  const json& run = find_step(s, "run-s1-mini")->at("figures");
  EXPECT_DOUBLE_EQ(run.at("tokens_per_s").at("pretrain").get<double>(), 45600.0);  // the last line
  EXPECT_DOUBLE_EQ(run.at("tokens_per_s").at("sft-seed0").get<double>(), 1.2e6);
  EXPECT_EQ(run.at("run_id"), 1);

  // The table: a header, then exactly one row per step, in order.
  std::istringstream lines(r.output);
  std::vector<std::string> rows;
  bool in_table = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("step ", 0) == 0) {
      in_table = true;
      continue;
    }
    if (in_table && !line.empty() && std::isdigit(static_cast<unsigned char>(line[0])) &&
        line.find(" passed, ") != std::string::npos)
      break;  // the footer: "9 passed, 0 failed, ..."
    if (in_table) rows.push_back(line);
  }
  ASSERT_EQ(rows.size(), order.size()) << r.output;
  for (size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(rows[i].rfind(order[i] + " ", 0), 0u) << rows[i];
    EXPECT_THAT(rows[i], HasSubstr("passed"));
  }
  EXPECT_THAT(r.output, HasSubstr("2400 GB/s = 50.0% of peak"));
  EXPECT_THAT(r.output, HasSubstr("predicted 1.200 s vs measured 1.250 s"));
  EXPECT_THAT(r.output, HasSubstr("link 150 GB/s, latency 25 us; error ddp +12.0%, fsdp_full_shard -20.0%"));
  EXPECT_THAT(r.output, HasSubstr("NVIDIA H200"));
}

// One GPU: the 2-rank NCCL step is skipped with the reason, and the check says so.
TEST_F(CheckGpuScript, WithOneGpuTheTwoRankNcclCaseSaysSoAndIsSkipped) {
  const fs::path out = dir_ / "one-gpu.json";
  const auto r = script("--build-dir " + quote((dir_ / "b").string()) +
                            " --skip-build --only bench-comm-nccl --out " + quote(out.string()),
                        gpu_stub());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("this machine has 1 GPU, the 2-rank NCCL case needs two"));
  const json s = json::parse(read_file(out));
  const json* comm = find_step(s, "bench-comm-nccl");
  ASSERT_NE(comm, nullptr);
  EXPECT_EQ(comm->at("status"), "skipped");
  EXPECT_THAT(comm->at("reason").get<std::string>(), HasSubstr("this machine has 1 GPU"));
}

// What fails a step although it exited 0, and a step killed at its limit.
TEST_F(CheckGpuScript, SkippedGpuTestsErroredBenchCasesAndTimeoutsFailTheCheck) {
  const fs::path steps = dir_ / "steps";
  write_file(steps / "environment", "gpu_name=NVIDIA H200\n");
  step(steps, "ctest-gpu", "ctest -L gpu", 0, 1, 120,
       "1/2 Test #1: MoeGatingGpu.MatchesReferenceOverShapes ...***Skipped   0.01 sec\n"
       "2/2 Test #2: ReplayTorchGpu.DeepSeekLayerOnCuda ...   Passed    9.00 sec\n\n"
       "100% tests passed, 0 tests failed out of 2\n");
  step(steps, "moe-gating-bench", "audit_bench", 0, 1, 60, "");
  write_file(steps / "moe-gating-bench" / "bench.json", R"({"benchmarks": [
    {"name": "BM_MoeGatingCuda/T:128/router:0/manual_time", "run_type": "iteration",
     "error_occurred": true, "error_message": "skipped: no CUDA device: no driver"}]})");
  step(steps, "replay-s1-8k", "audit replay", 0, 5, 120, "");
  write_file(steps / "replay-s1-8k" / "replay.json", R"({"reduced_shapes": false,
    "timing": {"measurements": [{"part": "dense_layer", "timed_seq_len": 4096, "batch": 1, "seconds": 0.2}]},
    "prediction": {"verdict": "supported"}})");
  step(steps, "run-s1-mini", "audit run", 124, 180.2, 180,
       "[pretrain] 1500/1500 loss 0.4 lr 0.00e+00 950 tok/s elapsed 0:20 ETA 0:00\n");

  const fs::path out = dir_ / "summary.json";
  const auto r = summarize(steps, out);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const json s = json::parse(read_file(out));
  EXPECT_FALSE(s.at("ok").get<bool>());

  const json* ctest = find_step(s, "ctest-gpu");
  EXPECT_EQ(ctest->at("status"), "failed");
  EXPECT_EQ(ctest->at("figures").at("tests_skipped"), 1);
  EXPECT_EQ(ctest->at("figures").at("tests_passed"), 1);
  EXPECT_THAT(ctest->at("reason").get<std::string>(), HasSubstr("skipped on a machine with a GPU"));

  const json* moe = find_step(s, "moe-gating-bench");
  EXPECT_EQ(moe->at("status"), "failed");
  EXPECT_THAT(moe->at("reason").get<std::string>(), HasSubstr("no CUDA device"));

  const json* s1 = find_step(s, "replay-s1-8k");
  EXPECT_EQ(s1->at("status"), "failed");
  EXPECT_THAT(s1->at("reason").get<std::string>(), HasSubstr("no layer timed at 8192 tokens"));
  EXPECT_THAT(s1->at("reason").get<std::string>(), HasSubstr("no PyTorch eager comparison"));

  const json* run = find_step(s, "run-s1-mini");
  EXPECT_EQ(run->at("status"), "timed out");
  EXPECT_DOUBLE_EQ(run->at("figures").at("tokens_per_s").at("pretrain").get<double>(), 950.0);
  EXPECT_EQ(s.at("counts").at("failed"), 3);
  EXPECT_EQ(s.at("counts").at("timed out"), 1);
}

// The run's tokens/s come from its throwaway ledger's train_summary events when there is one
// (the whole stage's tokens over its seconds), not from the last progress line.
TEST_F(CheckGpuScript, RunThroughputComesFromTheLedgersTrainSummaryEvents) {
  const fs::path steps = dir_ / "steps";
  step(steps, "run-s1-mini", "audit run", 0, 100, 180,
       "[pretrain] 1500/1500 loss 0.4 lr 0.00e+00 950 tok/s elapsed 0:20 ETA 0:00\n"
       "run 7 succeeded; ledger x.db\n");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((steps / "run-s1-mini" / "audit.db").string().c_str(), &db), SQLITE_OK);
  const char* sql =
      "CREATE TABLE events(id INTEGER PRIMARY KEY, key TEXT NOT NULL, value TEXT NOT NULL);"
      "INSERT INTO events(key, value) VALUES ('train_summary', '{\"label\": \"pretrain\", \"tokens_per_s\": 52000.5}');"
      "INSERT INTO events(key, value) VALUES ('pretrain_data', '{\"examples\": 3}');"
      "INSERT INTO events(key, value) VALUES ('train_summary', '{\"label\": \"sft-seed0\", \"tokens_per_s\": 81000}');";
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_close(db);

  const fs::path out = dir_ / "summary.json";
  const auto r = summarize(steps, out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const json s = json::parse(read_file(out));
  const json& f = find_step(s, "run-s1-mini")->at("figures");
  EXPECT_EQ(f.at("tokens_per_s_source"), "ledger train_summary");
  ASSERT_EQ(f.at("tokens_per_s").size(), 2u) << f.dump();
  EXPECT_DOUBLE_EQ(f.at("tokens_per_s").at("pretrain").get<double>(), 52000.5);
  EXPECT_DOUBLE_EQ(f.at("tokens_per_s").at("sft-seed0").get<double>(), 81000.0);
  EXPECT_EQ(f.at("run_id"), 7);
}

}  // namespace
