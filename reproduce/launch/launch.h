// Running the claimant's own command (torchrun, accelerate, a shell script) under full metering.
//
// The command does not run as a child of this process: audit (audit-torch is multithreaded, so
// nothing but exec may follow a fork) spawns a supervisor, the torch-free `audit` binary with the
// hidden verb `__launch-supervisor` (supervisor.cpp). The supervisor is a child subreaper: it
// forks and execs the command in a new process group (and a cgroup v2 subtree where the machine
// allows one), reaps every descendant that is orphaned, samples the whole tree (CPU seconds of
// the live processes from /proc plus getrusage(RUSAGE_CHILDREN) of the reaped ones, or the
// cgroup's cpu.stat) and reports to audit over a pipe. When audit dies (its control pipe reaches
// EOF; PR_SET_PDEATHSIG as a backup) the supervisor freezes the whole tree with SIGSTOP, kills
// it, reaps it and exits, so no process of the claimant's survives audit. docs/launch.md has the
// user's view.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/meter/meter.h"   // MeterOptions, StageMeter: the stage's samples and GPU metering
#include "ledger/store/ledger.h"  // Ledger: events and artifacts of the launch stage

namespace audit::launch {

// What to run. argv[0] is looked up in PATH (of the environment below) when it has no '/'.
struct Command {
  std::vector<std::string> argv;
  std::string workdir;                      // "" = this process's working directory
  std::map<std::string, std::string> env;   // set on top of this process's environment
};

// One sample of the process tree, taken by the supervisor every Limits::interval_s.
struct TreeSample {
  double wall_s = 0;       // since the command started
  double cpu_s = 0;        // CPU seconds of the whole tree since it started, exited processes included
  double rss_bytes = 0;    // resident bytes of the live processes of the tree now
  int procs = 0;           // live processes of the tree (zombies included)
  std::vector<int64_t> pids;
};

struct Callbacks {
  // Every line the command writes (without its newline), as it comes; is_stderr for stderr.
  std::function<void(std::string_view line, bool is_stderr)> on_line;
  // Called with each sample; a non-empty return stops the tree (SIGTERM, grace_s, SIGKILL) and
  // becomes Outcome::stop_reason (the budget guard).
  std::function<std::string(const TreeSample&)> check;
};

struct Limits {
  double timeout_s = 0;          // > 0: stop the tree after this many seconds (status "stopped")
  double grace_s = 30;           // seconds between SIGTERM and SIGKILL
  double interval_s = 1.0;       // sampling period of the supervisor
  int64_t keep_bytes = 1 << 20;  // of each of stdout and stderr: this many from the head and as
                                 // many from the tail are kept (a marker where cut)
  bool use_cgroup = true;        // try a cgroup v2 subtree (false: /proc and rusage only)
  std::string supervisor;        // the `audit` binary to run the supervisor with; "" = the one
                                 // beside this executable (see supervisor_binary())
};

struct Outcome {
  int exit_code = -1;        // of the command's main process; -1 when killed by a signal
  int term_signal = 0;       // the signal that ended it, 0 when it exited
  std::string status;        // "succeeded" | "failed" (exit != 0 or killed by a signal) |
                             // "stopped" (budget guard or timeout) | "interrupted" (Ctrl-C)
  std::string stop_reason;   // "" when it ended by itself; the check's reason, "timeout after
                             // 90 s", "interrupted by SIGINT"; the failure to start it
  double wall_s = 0, cpu_s = 0, peak_rss_bytes = 0;
  std::string cpu_source, mem_source;  // where cpu_s and peak_rss_bytes come from
  bool cgroup = false;       // the tree ran in a cgroup v2 subtree of its own
  std::string cgroup_note;   // why not, when cgroup is false
  double rusage_cpu_s = 0;   // rusage of all reaped descendants (the cross-check of a cgroup figure)
  int64_t pid = 0;           // the command's main process
  int leftovers = 0;         // processes still alive when the main one exited (then stopped)
  int64_t samples = 0;       // tree samples received
  double supervisor_cpu_s = 0;  // CPU the supervisor itself used (the metering's own cost)
  int64_t stdout_bytes = 0, stderr_bytes = 0;
  std::string stdout_kept, stderr_kept;  // head + tail, at most 2 * keep_bytes plus a marker
};

// The budget guard's arithmetic, for Callbacks::check: GPU-hours as a cloud bills them
// (gpu_count x wall hours, as the ledger's gpu_s) and USD at the given prices (GPU-hours x
// usd_per_gpu_hour + the tree's CPU-hours x usd_per_cpu_hour). A cap of 0 is no cap.
struct Budget {
  double max_gpu_hours = 0, max_usd = 0;
  int gpu_count = 0;
  double usd_per_gpu_hour = 0, usd_per_cpu_hour = 0;
};
// "" while under both caps; else the reason, e.g. "budget: 2.001 GPU-hours metered passed
// max_gpu_hours = 2".
std::string budget_reason(const Budget& b, const TreeSample& s);

// Runs the command to its end as ledger stage `stage` of run `run_id`. The stage is a
// StageMeter (GPU sampling as `meter.gpus` says) whose "cpu" samples are the tree's (cpu_s and
// RSS of all descendants, exited ones included), flushed every sample so that a run whose audit
// is killed keeps its seconds when the ledger is next opened. Writes a "launch_start" event
// (argv, workdir, the names of the env keys set, the timeout and grace), a "launch_stop" event
// (pid, exit code, signal, status, stop reason, wall, CPU, peak RSS and their sources, the cgroup
// note) and the artifacts "<stage>.stdout" and "<stage>.stderr" (zlib-compressed, base64).
// The stage status is "succeeded", "failed" (failed or stopped) or "aborted" (interrupted).
// Throws audit::InputError when the command cannot be started (no supervisor binary, a workdir
// that is not a folder); a command that exec cannot find is a failed stage (exit code 127).
Outcome run_stage(ledger::Ledger& l, int64_t run_id, const std::string& stage, const Command& c,
                  const Limits& lim, const Callbacks& cb, ledger::MeterOptions meter = {});

// The same without a ledger (tests, benchmarks). While it runs, this process's SIGINT and
// SIGTERM handlers are replaced by the forwarding ones (restored at the end); one launch runs at
// a time per process (a second call waits for the first). Callbacks run on the calling thread.
Outcome run(const Command& c, const Limits& lim, const Callbacks& cb);

// The `audit` binary that runs the supervisor: lim.supervisor, else $AUDIT_SUPERVISOR, else
// `audit` beside this executable.
std::string supervisor_binary(const Limits& lim);

// The supervisor's entry point: `audit __launch-supervisor ...` (reproduce/cli/main.cpp calls
// it before parsing anything). Returns the process's exit code.
inline constexpr const char* kSupervisorVerb = "__launch-supervisor";
int supervisor_main(int argc, char** argv);

// Whether a cgroup v2 subtree can be made here; "" when it can, else why not (for skips and
// messages).
std::string cgroup_unavailable_reason();

// zlib + base64 of text (the stdout/stderr artifacts) and back.
std::string compress_base64(const std::string& text);
std::string decompress_base64(const std::string& b64);

}  // namespace audit::launch
