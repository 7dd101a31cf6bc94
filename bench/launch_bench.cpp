// Launch metering overhead: the same CPU-bound child (a fixed amount of Python work, about 2 s
// alone) run bare (posix_spawn + waitpid) and under launch::run with 1 s sampling, alternated in
// each iteration so both see the same machine load. Reports the wall times, their difference in
// percent (goal: under 1%), and the CPU the metering itself used (the supervisor's, and audit's
// side: the reading loop in this process) as shares of the wall time, which do not depend on the
// machine's other load as the wall difference does.
// Needs the `audit` binary (the supervisor): $AUDIT_SUPERVISOR, else ../audit beside this one.
#include <benchmark/benchmark.h>

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/python_peer.h"   // default_python: the child's interpreter
#include "common/resources.h"     // executable_dir: where the supervisor binary is
#include "reproduce/launch/launch.h"

extern char** environ;

namespace {

const char* kWork = "x = 0\nfor i in range(15000000): x += i\n";

std::vector<std::string> child_argv() { return {audit::default_python(), "-S", "-c", kWork}; }

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

double own_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         1e-6 * double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

double run_bare() {
  auto args = child_argv();
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const double t0 = now_s();
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int st = 0;
  waitpid(pid, &st, 0);
  return now_s() - t0;
}

}  // namespace

static void BM_LaunchOverhead(benchmark::State& state) {
  audit::launch::Limits lim;
  const char* env = std::getenv("AUDIT_SUPERVISOR");
  lim.supervisor = env ? env : audit::executable_dir() + "/../audit";
  lim.interval_s = 1.0;
  audit::launch::Command c{child_argv(), "", {}};
  double bare = 0, metered = 0, sup_cpu = 0, child_cpu = 0, audit_cpu = 0;
  int n = 0;
  for (auto _ : state) {
    // Alternate the order so neither always runs first.
    double b, m;
    audit::launch::Outcome o;
    auto metered_run = [&] {
      const double t0 = now_s(), c0 = own_cpu_s();
      o = audit::launch::run(c, lim, {});
      audit_cpu += own_cpu_s() - c0;
      return now_s() - t0;
    };
    if (n % 2 == 0) {
      b = run_bare();
      m = metered_run();
    } else {
      m = metered_run();
      b = run_bare();
    }
    if (o.status != "succeeded") state.SkipWithError(("metered run: " + o.stop_reason).c_str());
    bare += b;
    metered += m;
    sup_cpu += o.supervisor_cpu_s;
    child_cpu += o.cpu_s;
    ++n;
  }
  state.counters["bare_s"] = bare / n;
  state.counters["metered_s"] = metered / n;
  state.counters["overhead_pct"] = 100.0 * (metered - bare) / bare;
  state.counters["supervisor_cpu_pct_of_wall"] = 100.0 * sup_cpu / metered;
  state.counters["audit_side_cpu_pct_of_wall"] = 100.0 * audit_cpu / metered;
  state.counters["metered_cpu_s"] = child_cpu / n;
}
BENCHMARK(BM_LaunchOverhead)->Iterations(6)->Unit(benchmark::kSecond)->UseRealTime();
