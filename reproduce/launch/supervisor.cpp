// The supervisor: `audit __launch-supervisor`, a single-threaded process between audit and the
// claimant's command (see launch.h). It is a child subreaper, so every orphaned descendant of the
// command becomes its child and is reaped here: getrusage(RUSAGE_CHILDREN) then covers every
// process of the tree that has exited. It samples the tree, reports over a pipe, forwards stops,
// and kills the whole tree when audit goes away.
//
// File descriptors on entry: 3 control (read; lines from audit), 4 reports (write), 5 and 6 the
// command's stdout and stderr (write ends; the supervisor itself never writes to them).
// Arguments: --parent PID --interval S --grace S --cgroup 0|1 --cwd DIR -- ARGV...
// Control lines: "STOP <signal> <grace_s>" (signal the whole tree, SIGKILL after grace_s),
// "KILL". Report lines: "C <0|1> <note>" (cgroup), "P <pid>" (started), "X <errno> <text>" (exec
// failed), "T <wall> <cpu> <rss> <procs> <pid,pid,...>" (a sample), and at the end
// "E <exit> <signal> <wall> <cpu> <peak_rss> <rusage_cpu> <leftovers> <own_cpu>\t<cpu source>\t
// <mem source>".
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "reproduce/launch/launch.h"
#include "reproduce/launch/tree.h"

namespace audit::launch {
namespace {

constexpr int kCtlFd = 3, kReportFd = 4, kOutFd = 5, kErrFd = 6;

int g_sig_pipe[2] = {-1, -1};

void on_signal(int sig) {
  const int saved = errno;
  const char c = static_cast<char>(sig);
  [[maybe_unused]] ssize_t n = ::write(g_sig_pipe[1], &c, 1);
  errno = saved;
}

double mono_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

double tv_s(const timeval& tv) { return double(tv.tv_sec) + double(tv.tv_usec) * 1e-6; }

class Supervisor {
 public:
  Supervisor(double interval, double grace, bool use_cgroup, std::string cwd,
             std::vector<std::string> argv)
      : interval_(interval), grace_(grace), cwd_(std::move(cwd)), argv_(std::move(argv)) {
    if (use_cgroup) cg_ = std::make_unique<tree::Cgroup>("audit-launch-" + std::to_string(getpid()));
  }

  int main() {
    if (cg_ && cg_->ok()) report("C 1 " + cg_->dir());
    else report(std::string("C 0 ") + (cg_ ? cg_->note() : "cgroup not asked for (use_cgroup = false)"));
    if (!start()) {
      finish_report();
      return 0;
    }
    loop();
    finish_report();
    return 0;
  }

 private:
  // Forks and execs the command: new process group, the cgroup, workdir, stdio on the pipes.
  bool start() {
    int go[2], err[2];
    if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      report("X " + std::to_string(errno) + " pipe: " + std::strerror(errno));
      return false;
    }
    std::vector<char*> args;
    for (auto& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);
    const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    t0_ = mono_s();
    const pid_t pid = ::fork();
    if (pid < 0) {
      report("X " + std::to_string(errno) + " fork: " + std::strerror(errno));
      return false;
    }
    if (pid == 0) child(go[0], err[1], devnull, args.data());
    ::close(go[0]);
    ::close(err[1]);
    ::setpgid(pid, pid);  // both sides, so neither races the other
    main_pid_ = pid;
    if (cg_ && cg_->ok() &&
        !write_text(cg_->dir() + "/cgroup.procs", std::to_string(pid))) {
      report("C 0 cannot move the command into " + cg_->dir() + ": " + std::strerror(errno));
      cg_.reset();
    }
    const char c = 'g';
    [[maybe_unused]] ssize_t w = ::write(go[1], &c, 1);
    ::close(go[1]);
    int child_errno = 0;
    ssize_t n;
    do n = ::read(err[0], &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    ::close(err[0]);
    if (devnull >= 0) ::close(devnull);
    ::close(kOutFd);
    ::close(kErrFd);
    if (n == sizeof child_errno) {
      report("X " + std::to_string(child_errno) + " cannot run " + argv_[0] +
             (cwd_.empty() ? "" : " in " + cwd_) + ": " + std::strerror(child_errno));
      reap_all_blocking();
      exec_failed_ = true;
      return false;
    }
    report("P " + std::to_string(pid));
    return true;
  }

  [[noreturn]] void child(int go_r, int err_w, int devnull, char** args) {
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGQUIT})
      ::signal(s, SIG_DFL);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    char c;
    ssize_t n;
    do n = ::read(go_r, &c, 1);
    while (n < 0 && errno == EINTR);
    int e = 0;
    if (!cwd_.empty() && ::chdir(cwd_.c_str()) != 0) e = errno;
    if (e == 0) {
      if (devnull >= 0) ::dup2(devnull, 0);
      ::dup2(kOutFd, 1);
      ::dup2(kErrFd, 2);
      // Nothing of audit's or the supervisor's leaks into the command (the error pipe closes at exec).
#ifdef SYS_close_range
      if (::syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */) != 0)
#endif
        for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      ::execvp(args[0], args);
      e = errno;
    }
    [[maybe_unused]] ssize_t w = ::write(err_w, &e, sizeof e);
    ::_exit(127);
  }

  void loop() {
    double next_sample = t0_ + interval_;
    while (true) {
      const double now = mono_s();
      double wake = next_sample;
      if (stop_deadline_ > 0) wake = std::min(wake, stop_deadline_);
      if (main_done_) wake = std::min(wake, now + 0.05);
      const int timeout_ms = std::max(0, int(std::ceil((wake - now) * 1000)));
      pollfd fds[2] = {{g_sig_pipe[0], POLLIN, 0}, {ctl_open_ ? kCtlFd : -1, POLLIN, 0}};
      ::poll(fds, 2, timeout_ms);
      if (fds[0].revents & POLLIN) read_signals();
      if (ctl_open_ && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) read_control();
      reap_nohang();
      if (mono_s() >= next_sample) {
        sample_and_report();
        next_sample += interval_ * std::max(1.0, std::floor((mono_s() - next_sample) / interval_) + 1);
      }
      if (stop_deadline_ > 0 && mono_s() >= stop_deadline_) freeze_and_kill();
      if (main_done_ && !leftovers_handled_) {
        leftovers_handled_ = true;
        const auto rest = live();
        leftovers_ = int(rest.size());
        if (!rest.empty() && stop_deadline_ == 0) stop(SIGTERM, grace_);
      }
      if (main_done_ && live().empty()) break;
    }
    reap_all_blocking();
  }

  void read_signals() {
    char buf[64];
    ssize_t n = ::read(g_sig_pipe[0], buf, sizeof buf);
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] == SIGCHLD) continue;  // reaped by the loop
      freeze_and_kill();  // SIGTERM/SIGHUP/SIGINT to the supervisor, or audit died (SIGUSR1)
    }
  }

  void read_control() {
    char buf[512];
    const ssize_t n = ::read(kCtlFd, buf, sizeof buf);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) return;
      ctl_open_ = false;
      audit_gone_ = true;
      freeze_and_kill();  // audit is gone: nothing of the tree outlives it
      return;
    }
    ctl_buf_.append(buf, size_t(n));
    size_t nl;
    while ((nl = ctl_buf_.find('\n')) != std::string::npos) {
      const std::string line = ctl_buf_.substr(0, nl);
      ctl_buf_.erase(0, nl + 1);
      int sig = 0;
      double grace = 0;
      if (std::sscanf(line.c_str(), "STOP %d %lf", &sig, &grace) == 2) stop(sig, grace);
      else if (line == "KILL") freeze_and_kill();
    }
  }

  // Signals every live process of the tree (and the main process group); SIGKILL after grace.
  void stop(int sig, double grace) {
    for (const auto& p : live()) ::kill(pid_t(p.pid), sig);
    if (main_pid_ > 0) ::kill(-pid_t(main_pid_), sig);
    const double deadline = mono_s() + std::max(0.0, grace);
    stop_deadline_ = stop_deadline_ > 0 ? std::min(stop_deadline_, deadline) : deadline;
  }

  // SIGSTOP over repeated scans until no new process appears (a frozen tree cannot fork), then
  // SIGKILL all of them (and the cgroup), and reap.
  void freeze_and_kill() {
    std::set<int64_t> stopped;
    for (int round = 0; round < 100; ++round) {
      bool fresh = false;
      for (const auto& p : live())
        if (stopped.insert(p.pid).second) {
          ::kill(pid_t(p.pid), SIGSTOP);
          fresh = true;
        }
      if (!fresh) break;
    }
    if (cg_) cg_->kill();
    for (int64_t pid : stopped) ::kill(pid_t(pid), SIGKILL);
    killed_ = true;
    stop_deadline_ = 0;
    reap_all_blocking();
  }

  // Reaps until the tree is gone, killing whatever a scan still finds.
  void reap_all_blocking() {
    for (int i = 0; i < 100000; ++i) {
      reap_nohang();
      const auto rest = live();
      if (rest.empty()) {
        int st;
        pid_t p = ::waitpid(-1, &st, WNOHANG);
        if (p > 0) note_exit(p, st);
        if (p < 0 && errno == ECHILD) break;
        if (p == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        continue;
      }
      if (killed_)
        for (const auto& p : rest) ::kill(pid_t(p.pid), SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  void reap_nohang() {
    int st;
    pid_t p;
    while ((p = ::waitpid(-1, &st, WNOHANG)) > 0) note_exit(p, st);
  }

  void note_exit(pid_t p, int st) {
    if (p != main_pid_ || main_done_) return;
    main_done_ = true;
    main_status_ = st;
  }

  std::vector<tree::Proc> live() const {
    return tree::descendants(getpid(), cg_ ? cg_->procs() : std::vector<int64_t>{});
  }

  struct Totals {
    double cpu = 0, rss = 0, rusage_cpu = 0, rusage_maxrss = 0;
    std::vector<tree::Proc> procs;
  };

  // Reaped descendants (rusage) + live ones (/proc), or the cgroup's cpu.stat.
  Totals totals() {
    Totals t;
    rusage ru{};
    ::getrusage(RUSAGE_CHILDREN, &ru);
    t.rusage_cpu = tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
    t.rusage_maxrss = double(ru.ru_maxrss) * 1024.0;
    t.procs = live();
    double live_cpu = 0;
    for (const auto& p : t.procs) {
      live_cpu += p.cpu_s;
      t.rss += p.rss_bytes;
    }
    t.cpu = t.rusage_cpu + live_cpu;
    double cg_cpu = 0;
    if (cg_ && cg_->cpu_seconds(&cg_cpu)) t.cpu = cg_cpu;
    t.cpu = std::max(t.cpu, last_cpu_);  // a process reaped between the two reads is not lost twice
    last_cpu_ = t.cpu;
    peak_rss_ = std::max(peak_rss_, t.rss);
    return t;
  }

  void sample_and_report() {
    if (main_pid_ <= 0) return;
    const Totals t = totals();
    std::string pids;
    for (const auto& p : t.procs) pids += (pids.empty() ? "" : ",") + std::to_string(p.pid);
    char head[160];
    std::snprintf(head, sizeof head, "T %.6f %.6f %.0f %d ", mono_s() - t0_, t.cpu, t.rss,
                  int(t.procs.size()));
    report(head + (pids.empty() ? std::string("-") : pids));
  }

  void finish_report() {
    const Totals t = totals();
    const double wall = main_pid_ > 0 ? mono_s() - t0_ : 0;
    double peak = std::max(peak_rss_, t.rusage_maxrss);
    std::string mem_source = "max over samples of the summed RSS of the live processes (/proc), "
                             "and ru_maxrss of the reaped ones";
    double cg_peak = 0;
    if (cg_ && cg_->memory_peak(&cg_peak)) {
      peak = cg_peak;
      mem_source = "cgroup v2 memory.peak";
    }
    const std::string cpu_source =
        cg_ ? "cgroup v2 cpu.stat usage_usec"
            : "getrusage(RUSAGE_CHILDREN) of the reaped descendants (the supervisor is their "
              "subreaper) + utime+stime+cutime+cstime of the live ones (/proc)";
    int code = -1, sig = 0;
    if (exec_failed_) code = 127;
    else if (WIFEXITED(main_status_)) code = WEXITSTATUS(main_status_);
    else if (WIFSIGNALED(main_status_)) sig = WTERMSIG(main_status_);
    rusage self{};
    ::getrusage(RUSAGE_SELF, &self);
    char line[256];
    std::snprintf(line, sizeof line, "E %d %d %.6f %.6f %.0f %.6f %d %.6f\t", code, sig, wall,
                  t.cpu, peak, t.rusage_cpu, leftovers_,
                  tv_s(self.ru_utime) + tv_s(self.ru_stime));
    report(line + cpu_source + "\t" + mem_source);
    if (cg_) cg_->remove();
  }

  void report(const std::string& line) {
    if (audit_gone_) return;
    const std::string text = line + "\n";
    size_t off = 0;
    while (off < text.size()) {
      const ssize_t n = ::write(kReportFd, text.data() + off, text.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {  // audit is gone (EPIPE)
        audit_gone_ = true;
        if (main_pid_ > 0 && !killed_) freeze_and_kill();
        return;
      }
      off += size_t(n);
    }
  }

  static bool write_text(const std::string& path, const std::string& text) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size());
    ::close(fd);
    return ok;
  }

  double interval_, grace_;
  std::string cwd_;
  std::vector<std::string> argv_;
  std::unique_ptr<tree::Cgroup> cg_;
  double t0_ = 0, stop_deadline_ = 0, last_cpu_ = 0, peak_rss_ = 0;
  int64_t main_pid_ = 0;
  int main_status_ = 0;
  bool main_done_ = false, exec_failed_ = false, killed_ = false, leftovers_handled_ = false;
  bool ctl_open_ = true, audit_gone_ = false;
  int leftovers_ = 0;
  std::string ctl_buf_;
};

}  // namespace

int supervisor_main(int argc, char** argv) {
  int64_t parent = 0;
  double interval = 1.0, grace = 30;
  bool use_cgroup = true;
  std::string cwd;
  std::vector<std::string> cmd;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--parent") parent = std::strtoll(next().c_str(), nullptr, 10);
    else if (a == "--interval") interval = std::strtod(next().c_str(), nullptr);
    else if (a == "--grace") grace = std::strtod(next().c_str(), nullptr);
    else if (a == "--cgroup") use_cgroup = next() == "1";
    else if (a == "--cwd") cwd = next();
    else if (a == "--") {
      for (++i; i < argc; ++i) cmd.emplace_back(argv[i]);
    } else {
      std::fprintf(stderr, "audit %s: unknown argument %s (this verb is audit's own)\n",
                   kSupervisorVerb, a.c_str());
      return 2;
    }
  }
  if (cmd.empty() || !(interval > 0) || ::fcntl(kCtlFd, F_GETFD) < 0 ||
      ::fcntl(kReportFd, F_GETFD) < 0) {
    std::fprintf(stderr, "audit %s: started without a command or its pipes; audit starts this "
                         "verb itself\n", kSupervisorVerb);
    return 2;
  }
  ::fcntl(kCtlFd, F_SETFD, FD_CLOEXEC);
  ::fcntl(kReportFd, F_SETFD, FD_CLOEXEC);
  if (::pipe2(g_sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return 1;
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : {SIGCHLD, SIGTERM, SIGHUP, SIGINT, SIGUSR1, SIGQUIT}) ::sigaction(s, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  ::prctl(PR_SET_PDEATHSIG, SIGUSR1);  // the backup of the control pipe's EOF
  if (parent > 0 && int64_t(::getppid()) != parent) return 0;  // audit died before we began
  Supervisor s(interval, grace, use_cgroup, cwd, cmd);
  return s.main();
}

}  // namespace audit::launch
