// The launch of a claimant's command (reproduce/launch): CPU of a whole process tree against the
// rusage its processes report themselves, the budget guard against a command that ignores
// SIGTERM, timeout, Ctrl-C forwarding, a failed command's seconds, output capture, env and
// workdir, and the process running audit's side SIGKILLed mid-stage (no process of the tree
// survives; the next open marks the run aborted with its seconds).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/errors.h"
#include "ledger/store/event_keys.h"
#include "reproduce/launch/launch.h"
#include "tests/support/support.h"

namespace audit::launch {
namespace {

using audit::testing::TempDir;

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

bool alive(int64_t pid) {
  if (::kill(pid_t(pid), 0) != 0) return false;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  std::getline(f, s);
  const auto close = s.rfind(')');
  return close != std::string::npos && s.size() > close + 2 && s[close + 2] != 'Z';
}

std::vector<int64_t> read_pids(const std::string& path) {
  std::vector<int64_t> out;
  std::ifstream f(path);
  int64_t p;
  while (f >> p) out.push_back(p);
  return out;
}

Limits fast_limits() {
  Limits lim;
  lim.supervisor = audit::testing::audit_binary();
  lim.interval_s = 0.2;
  lim.grace_s = 1.0;
  return lim;
}

// A Python script that burns `seconds` of CPU, optionally in a new session, and writes its own
// getrusage (user + system, interpreter start included) to a file when it ends.
std::string write_burner(const TempDir& dir) {
  const std::string path = dir.file("burn.py");
  audit::testing::write_file(path,
                             "import os, resource, sys, time\n"
                             "secs, out, mode = float(sys.argv[1]), sys.argv[2], sys.argv[3]\n"
                             "if mode == 'setsid': os.setsid()\n"
                             "open(out + '.pid', 'w').write(str(os.getpid()))\n"
                             "t0 = time.process_time()\n"
                             "x = 0\n"
                             "while time.process_time() - t0 < secs: x += 1\n"
                             "ru = resource.getrusage(resource.RUSAGE_SELF)\n"
                             "open(out, 'w').write(repr(ru.ru_utime + ru.ru_stime))\n");
  return path;
}

// sh starts three grandchildren: one plain, one in a session of its own, one orphaned by a
// parent that exits at once; the main shell waits for all three.
Command three_grandchildren(const TempDir& dir, double secs) {
  const std::string py = audit::testing::python(), burn = write_burner(dir), d = dir.path();
  const std::string s = std::to_string(secs);
  const std::string script =
      "'" + py + "' -S '" + burn + "' " + s + " '" + d + "/a' plain &\n"
      "'" + py + "' -S '" + burn + "' " + s + " '" + d + "/b' setsid &\n"
      "sh -c \"'" + py + "' -S '" + burn + "' " + s + " '" + d + "/c' plain & exit 0\"\n"
      "wait\n"
      "while [ ! -s '" + d + "/c' ]; do sleep 0.1; done\n";
  return Command{{"sh", "-c", script}, "", {}};
}

double reported(const TempDir& dir) {
  double sum = 0;
  for (const char* n : {"a", "b", "c"}) sum += std::stod(audit::testing::read_file(dir.file(n)));
  return sum;
}

void expect_within_5_percent(bool use_cgroup) {
  TempDir dir("launch_cpu");
  Limits lim = fast_limits();
  lim.use_cgroup = use_cgroup;
  const Outcome o = run(three_grandchildren(dir, 0.8), lim, {});
  ASSERT_EQ(o.status, "succeeded") << o.stop_reason << "\n" << o.stderr_kept;
  const double sum = reported(dir);
  std::printf("[launch] cgroup=%d metered %.3f CPU-s (%s), the three grandchildren report %.3f "
              "(difference %+.2f%%); rusage of reaped descendants %.3f; wall %.2f s\n",
              int(o.cgroup), o.cpu_s, o.cpu_source.c_str(), sum, 100 * (o.cpu_s - sum) / sum,
              o.rusage_cpu_s, o.wall_s);
  EXPECT_GT(sum, 2.3);
  EXPECT_NEAR(o.cpu_s, sum, 0.05 * sum) << o.cpu_source;
  EXPECT_EQ(o.cgroup, use_cgroup);
}

TEST(Launch, CpuOfThreeGrandchildrenWithinFivePercentProcFallback) {
  expect_within_5_percent(false);
}

TEST(Launch, CpuOfThreeGrandchildrenWithinFivePercentCgroupV2) {
  const std::string why = cgroup_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "no cgroup v2 subtree here: " << why;
  expect_within_5_percent(true);
}

TEST(Launch, SamplesSeeTheTreeWhileItRuns) {
  TempDir dir("launch_samples");
  Limits lim = fast_limits();
  int max_procs = 0;
  double last_cpu = 0;
  bool monotone = true;
  Callbacks cb;
  cb.check = [&](const TreeSample& s) {
    max_procs = std::max(max_procs, s.procs);
    monotone = monotone && s.cpu_s >= last_cpu;
    last_cpu = s.cpu_s;
    EXPECT_EQ(int(s.pids.size()), s.procs);
    return std::string();
  };
  const Outcome o = run(three_grandchildren(dir, 0.6), lim, cb);
  ASSERT_EQ(o.status, "succeeded");
  EXPECT_GE(max_procs, 4);  // the shell and three Pythons at least
  EXPECT_TRUE(monotone);
  EXPECT_GT(o.samples, 3);
  EXPECT_GT(o.peak_rss_bytes, 3 * 1e6);
}

TEST(Launch, BudgetGuardStopsACommandThatIgnoresSigterm) {
  const std::string py = audit::testing::python();
  Command c{{py, "-S", "-c",
             "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "print('ready', flush=True)\ntime.sleep(60)\n"},
            "", {}};
  Limits lim = fast_limits();
  Callbacks cb;
  cb.check = [](const TreeSample& s) {
    return s.wall_s >= 1.0 ? std::string("budget: 1 s of wall time reached") : std::string();
  };
  const double t0 = now_s();
  const Outcome o = run(c, lim, cb);
  const double took = now_s() - t0;
  EXPECT_EQ(o.status, "stopped");
  EXPECT_EQ(o.stop_reason, "budget: 1 s of wall time reached");
  EXPECT_EQ(o.term_signal, SIGKILL);  // SIGTERM was ignored: the grace ran out
  EXPECT_GT(took, 1.9);               // 1 s to the guard, 1 s of grace
  EXPECT_LT(took, 5.0);
  EXPECT_FALSE(alive(o.pid));
  EXPECT_NE(o.stdout_kept.find("ready"), std::string::npos);
}

TEST(Launch, BudgetReasonPricesGpuHoursAndCost) {
  Budget b;
  b.gpu_count = 8;
  b.max_gpu_hours = 2;
  b.usd_per_gpu_hour = 2.5;
  b.usd_per_cpu_hour = 0.05;
  TreeSample s;
  s.wall_s = 899;  // 8 x 899 s = 1.998 GPU-hours
  s.cpu_s = 3600;
  EXPECT_EQ(budget_reason(b, s), "");
  s.wall_s = 901;
  EXPECT_EQ(budget_reason(b, s),
            "budget: 2.002 GPU-hours metered (8 GPUs x 901 s) passed max_gpu_hours = 2");
  b.max_gpu_hours = 0;
  b.max_usd = 5;  // 2.002 x 2.5 + 1 x 0.05 = 5.055
  EXPECT_EQ(budget_reason(b, s),
            "budget: $5.06 metered (2.002 GPU-hours x $2.5 + 1.000 CPU-hours x $0.05) passed "
            "max_usd = 5");
  b.max_usd = 6;
  EXPECT_EQ(budget_reason(b, s), "");
  EXPECT_EQ(budget_reason(Budget{}, s), "");  // no caps
}

TEST(Launch, TimeoutStopsTheCommand) {
  Command c{{"sleep", "30"}, "", {}};
  Limits lim = fast_limits();
  lim.timeout_s = 1.0;
  const double t0 = now_s();
  const Outcome o = run(c, lim, {});
  EXPECT_EQ(o.status, "stopped");
  EXPECT_EQ(o.stop_reason, "timeout after 1 s");
  EXPECT_EQ(o.term_signal, SIGTERM);
  EXPECT_LT(now_s() - t0, 4.0);
}

TEST(Launch, FailedCommandKeepsItsSecondsInTheLedger) {
  TempDir dir("launch_fail");
  ledger::Ledger l(dir.file("ledger.db"));
  ledger::RunInfo r;
  r.name = "fail";
  r.recipe_text = "[claim]\nname = \"fail\"\n";
  const int64_t run_id = l.begin_run(r);
  const std::string py = audit::testing::python();
  Command c{{py, "-S", "-c",
             "import sys, time\nt = time.process_time()\n"
             "while time.process_time() - t < 0.5: pass\nprint('bad', file=sys.stderr)\n"
             "sys.exit(1)\n"},
            "", {}};
  const Outcome o = run_stage(l, run_id, "launch", c, fast_limits(), {});
  EXPECT_EQ(o.status, "failed");
  EXPECT_EQ(o.exit_code, 1);
  const auto stages = l.stages(run_id);
  ASSERT_EQ(stages.size(), 1u);
  EXPECT_EQ(stages[0].status, "failed");
  EXPECT_GT(stages[0].wall_s, 0.4);
  EXPECT_NEAR(stages[0].cpu_s, o.cpu_s, 1e-9);
  EXPECT_GT(stages[0].cpu_s, 0.45);
  // The meter's cpu samples are the tree's, not this process's.
  const auto samples = l.meter_samples(run_id, stages[0].id);
  ASSERT_FALSE(samples.empty());
  EXPECT_NEAR(samples.back().cpu_s, o.cpu_s, 1e-9);
  bool start = false, stop = false;
  for (const auto& e : l.events(run_id)) {
    if (e.key == ledger::keys::kLaunchStart) start = true;
    if (e.key == ledger::keys::kLaunchStop) {
      stop = true;
      const auto v = nlohmann::json::parse(e.value);
      EXPECT_EQ(v["exit_code"], 1);
      EXPECT_EQ(v["status"], "failed");
    }
  }
  EXPECT_TRUE(start);
  EXPECT_TRUE(stop);
  const auto err = l.artifact(run_id, "launch.stderr");
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ((*err)["encoding"], "zlib+base64");
  EXPECT_EQ(decompress_base64((*err)["data"].get<std::string>()), "bad\n");
  EXPECT_TRUE(l.verify().ok) << l.verify().message;
}

TEST(Launch, CommandNotFoundIsAFailedStage) {
  const Outcome o = run(Command{{"audit-no-such-program-xyz"}, "", {}}, fast_limits(), {});
  EXPECT_EQ(o.status, "failed");
  EXPECT_EQ(o.exit_code, 127);
  EXPECT_NE(o.stop_reason.find("cannot run audit-no-such-program-xyz"), std::string::npos)
      << o.stop_reason;
}

TEST(Launch, OutputIsShownLiveAndKeptHeadAndTail) {
  const std::string py = audit::testing::python();
  Command c{{py, "-S", "-c",
             "import sys\nfor i in range(5000): print('line %05d' % i)\n"
             "sys.stderr.write('err-a\\nerr-b')\n"},
            "", {}};
  Limits lim = fast_limits();
  lim.keep_bytes = 1000;
  std::vector<std::string> out, err;
  Callbacks cb;
  cb.on_line = [&](std::string_view line, bool is_stderr) {
    (is_stderr ? err : out).emplace_back(line);
  };
  const Outcome o = run(c, lim, cb);
  ASSERT_EQ(o.status, "succeeded");
  ASSERT_EQ(out.size(), 5000u);
  EXPECT_EQ(out.front(), "line 00000");
  EXPECT_EQ(out.back(), "line 04999");
  EXPECT_EQ(err, (std::vector<std::string>{"err-a", "err-b"}));
  EXPECT_EQ(o.stdout_bytes, 5000 * 11);
  EXPECT_EQ(o.stdout_kept.rfind("line 00000\n", 0), 0u);
  EXPECT_NE(o.stdout_kept.find("bytes cut here; 55000 bytes in all"), std::string::npos);
  EXPECT_EQ(o.stdout_kept.substr(o.stdout_kept.size() - 11), "line 04999\n");
  EXPECT_LT(o.stdout_kept.size(), 2100u);
  EXPECT_EQ(o.stderr_kept, "err-a\nerr-b");
}

TEST(Launch, EnvAndWorkdirAreHonoured) {
  TempDir dir("launch_env");
  char real[PATH_MAX];
  ASSERT_NE(::realpath(dir.path().c_str(), real), nullptr);
  Command c{{"sh", "-c", "pwd -P; echo \"$AUDIT_LAUNCH_TEST_VAR\"; echo \"$HOME\""},
            dir.path(),
            {{"AUDIT_LAUNCH_TEST_VAR", "a value with spaces"}}};
  const Outcome o = run(c, fast_limits(), {});
  ASSERT_EQ(o.status, "succeeded");
  const char* home = std::getenv("HOME");
  EXPECT_EQ(o.stdout_kept,
            std::string(real) + "\na value with spaces\n" + (home ? home : "") + "\n");
}

TEST(Launch, MissingWorkdirIsBadInput) {
  EXPECT_THROW(run(Command{{"true"}, "/no/such/folder/xyz", {}}, fast_limits(), {}), audit::InputError);
  EXPECT_THROW(run(Command{{}, "", {}}, fast_limits(), {}), audit::InputError);
}

TEST(Launch, CompressedArtifactRoundTrips) {
  std::string text;
  for (int i = 0; i < 3000; ++i) text += "step " + std::to_string(i) + " loss 1.25\n";
  text += std::string("\0\xff binary", 9);
  const std::string b64 = compress_base64(text);
  EXPECT_LT(b64.size(), text.size() / 3);
  EXPECT_EQ(decompress_base64(b64), text);
  EXPECT_EQ(decompress_base64(compress_base64("")), "");
}

// ---- The process running audit's side, killed or interrupted.

struct Probe {
  pid_t pid = 0;
  std::string out_path;
};

Probe start_probe(const TempDir& dir, const std::string& ledger, double grace,
                  const std::vector<std::string>& cmd) {
  Probe p;
  p.out_path = dir.file("probe.out");
  std::vector<std::string> args = {audit::testing::build_dir() + "/tests/launch_probe", ledger,
                                   audit::testing::audit_binary(), std::to_string(grace), "--"};
  args.insert(args.end(), cmd.begin(), cmd.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, p.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  EXPECT_EQ(posix_spawn(&p.pid, argv[0], &fa, nullptr, argv.data(), environ), 0) << argv[0];
  posix_spawn_file_actions_destroy(&fa);
  return p;
}

// Waits for `n` pids in the file (each process of the tree writes its own), up to 20 s.
std::vector<int64_t> wait_for_pids(const std::string& path, size_t n) {
  for (int i = 0; i < 400; ++i) {
    auto pids = read_pids(path);
    if (pids.size() >= n) return pids;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return read_pids(path);
}

// A tree of four processes that run until killed, two of them in sessions of their own, one
// orphaned; each writes its pid to `pids`.
std::vector<std::string> endless_tree(const TempDir& dir, const std::string& pids) {
  const std::string script = dir.file("tree.sh");
  audit::testing::write_file(
      script,
      "echo $$ >> '" + pids + "'\n"
      "setsid sh -c 'echo $$ >> \"" + pids + "\"; while :; do :; done' &\n"
      "sh -c \"setsid sh -c 'echo \\$\\$ >> \\\"" + pids + "\\\"; while :; do :; done' & exit 0\"\n"
      "sh -c 'echo $$ >> \"" + pids + "\"; while :; do :; done' &\n"
      "wait\n");
  return {"sh", script};
}

TEST(LaunchKill, AuditKilledMidStageLeavesNoProcessAndAnAbortedRunWithItsSeconds) {
  TempDir dir("launch_kill");
  const std::string db = dir.file("ledger.db"), pids_path = dir.file("pids");
  Probe p = start_probe(dir, db, 1.0, endless_tree(dir, pids_path));
  const auto pids = wait_for_pids(pids_path, 4);
  ASSERT_EQ(pids.size(), 4u) << audit::testing::read_file(p.out_path);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // samples with CPU in them
  ASSERT_EQ(::kill(p.pid, SIGKILL), 0);
  int st = 0;
  ::waitpid(p.pid, &st, 0);
  const double t0 = now_s();
  bool any = true;
  while (any && now_s() - t0 < 5.0) {
    any = false;
    for (int64_t pid : pids) any = any || alive(pid);
    if (any) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (int64_t pid : pids) EXPECT_FALSE(alive(pid)) << "pid " << pid << " survived";
  std::printf("[launch] the tree of %zu processes was gone %.2f s after the SIGKILL\n",
              pids.size(), now_s() - t0);
  ledger::Ledger l(db);
  const auto runs = l.runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, ledger::RunStatus::aborted);
  const auto stages = l.stages(runs[0].id);
  ASSERT_EQ(stages.size(), 1u);
  EXPECT_EQ(stages[0].status, "aborted");
  EXPECT_GT(stages[0].wall_s, 1.0);
  // Four busy loops for 1.5 s on a shared machine: the tree's CPU (the probe's own is a few
  // hundredths of a second), kept from the last sample.
  EXPECT_GT(stages[0].cpu_s, 0.3);
  EXPECT_TRUE(l.verify().ok) << l.verify().message;
}

TEST(LaunchKill, CtrlCIsForwardedToTheWholeTree) {
  TempDir dir("launch_int");
  const std::string db = dir.file("ledger.db"), pids_path = dir.file("pids");
  const std::string py = audit::testing::python();
  // The main process reports SIGINT and exits 3; the detached busy loop dies of it.
  std::vector<std::string> cmd = {
      "sh", "-c",
      "echo $$ >> '" + pids_path + "'\n"
      "trap 'echo got-sigint; exit 3' INT\n"
      "setsid sh -c \"echo \\$\\$ >> '" + pids_path + "'; while :; do :; done\" &\n"
      "while :; do sleep 0.05; done\n"};
  Probe p = start_probe(dir, db, 2.0, cmd);
  const auto pids = wait_for_pids(pids_path, 2);
  ASSERT_EQ(pids.size(), 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(::kill(p.pid, SIGINT), 0);
  int st = 0;
  ASSERT_EQ(::waitpid(p.pid, &st, 0), p.pid);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << audit::testing::read_file(p.out_path);
  const std::string out = audit::testing::read_file(p.out_path);
  const auto json = nlohmann::json::parse(out.substr(out.find('{')));
  EXPECT_EQ(json["status"], "interrupted");
  EXPECT_EQ(json["stop_reason"], "interrupted by SIGINT");
  EXPECT_EQ(json["exit_code"], 3);
  EXPECT_NE(json["stdout"].get<std::string>().find("got-sigint"), std::string::npos);
  for (int64_t pid : pids) EXPECT_FALSE(alive(pid)) << "pid " << pid << " survived";
  ledger::Ledger l(db);
  const auto stages = l.stages(l.latest_run());
  ASSERT_EQ(stages.size(), 1u);
  EXPECT_EQ(stages[0].status, "aborted");
}

}  // namespace
}  // namespace audit::launch
