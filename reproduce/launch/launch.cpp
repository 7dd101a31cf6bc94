// audit's side of a launch: spawns the supervisor (posix_spawn, safe in a multithreaded process),
// reads its reports and the command's output, runs the timeout and the budget guard, forwards
// SIGINT/SIGTERM, and writes the launch stage into the ledger (see launch.h).
#include "reproduce/launch/launch.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "common/errors.h"              // InputError: a command that cannot be started
#include "common/resources.h"           // executable_dir: the `audit` binary beside this one
#include "ledger/store/event_keys.h"    // the event types
#include "reproduce/launch/tree.h"       // Cgroup: the probe of cgroup_unavailable_reason

extern char** environ;

namespace audit::launch {
namespace {

double mono_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// ---- SIGINT/SIGTERM of audit while a command runs: written to a pipe the loop polls.
std::atomic<int> g_sig_fd{-1};
std::mutex g_sig_mu;  // one launch at a time owns the handlers

void on_signal(int sig) {
  const int saved = errno;
  const int fd = g_sig_fd.load();
  if (fd >= 0) {
    const char c = static_cast<char>(sig);
    [[maybe_unused]] ssize_t n = ::write(fd, &c, 1);
  }
  errno = saved;
}

class SignalForwarding {
 public:
  SignalForwarding() : lock_(g_sig_mu) {
    if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe2 failed");
    g_sig_fd = fds_[1];
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalForwarding() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    g_sig_fd = -1;
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  int fd() const { return fds_[0]; }

 private:
  std::lock_guard<std::mutex> lock_;
  int fds_[2] = {-1, -1};
  struct sigaction old_int_{}, old_term_{};
};

// ---- One output stream: lines to the callback, head + tail kept, bytes counted.
class Stream {
 public:
  Stream(int64_t cap, bool is_stderr, const Callbacks& cb) : cap_(size_t(std::max<int64_t>(cap, 0))), err_(is_stderr), cb_(cb) {}

  void add(const char* p, size_t n) {
    total_ += int64_t(n);
    const size_t take = std::min(n, cap_ - head_.size());
    head_.append(p, take);
    if (n > take) {
      tail_.append(p + take, n - take);
      if (tail_.size() > 2 * cap_ + 4096) tail_.erase(0, tail_.size() - cap_);
    }
    if (!cb_.on_line) return;
    line_.append(p, n);
    size_t start = 0, nl;
    while ((nl = line_.find('\n', start)) != std::string::npos) {
      emit(std::string_view(line_).substr(start, nl - start));
      start = nl + 1;
    }
    line_.erase(0, start);
    if (line_.size() > (64u << 10)) {  // a very long line without a newline: shown in pieces
      emit(line_);
      line_.clear();
    }
  }
  void close() {
    if (cb_.on_line && !line_.empty()) emit(line_);
    line_.clear();
  }
  int64_t total() const { return total_; }
  std::string kept() {
    if (tail_.size() > cap_) tail_.erase(0, tail_.size() - cap_);
    const int64_t cut = total_ - int64_t(head_.size() + tail_.size());
    if (cut <= 0) return head_ + tail_;
    return head_ + "\n[audit: " + std::to_string(cut) + " bytes cut here; " +
           std::to_string(total_) + " bytes in all]\n" + tail_;
  }

 private:
  void emit(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    cb_.on_line(line, err_);
  }
  size_t cap_;
  bool err_;
  const Callbacks& cb_;
  std::string head_, tail_, line_;
  int64_t total_ = 0;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  return out;
}

bool is_dir(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGKILL: return "SIGKILL";
    case SIGHUP: return "SIGHUP";
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    default: return nullptr;
  }
}

std::string signal_text(int sig) {
  const char* n = signal_name(sig);
  return n ? n : "signal " + std::to_string(sig);
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", s);
  return buf;
}

}  // namespace

std::string budget_reason(const Budget& b, const TreeSample& s) {
  const double gpu_hours = double(b.gpu_count) * s.wall_s / 3600.0;
  const double cpu_hours = s.cpu_s / 3600.0;
  const double usd = gpu_hours * b.usd_per_gpu_hour + cpu_hours * b.usd_per_cpu_hour;
  char buf[256];
  if (b.max_gpu_hours > 0 && gpu_hours >= b.max_gpu_hours) {
    std::snprintf(buf, sizeof buf,
                  "budget: %.3f GPU-hours metered (%d GPUs x %.0f s) passed max_gpu_hours = %g",
                  gpu_hours, b.gpu_count, s.wall_s, b.max_gpu_hours);
    return buf;
  }
  if (b.max_usd > 0 && usd >= b.max_usd) {
    std::snprintf(buf, sizeof buf,
                  "budget: $%.2f metered (%.3f GPU-hours x $%g + %.3f CPU-hours x $%g) passed "
                  "max_usd = %g",
                  usd, gpu_hours, b.usd_per_gpu_hour, cpu_hours, b.usd_per_cpu_hour, b.max_usd);
    return buf;
  }
  return "";
}

std::string supervisor_binary(const Limits& lim) {
  if (!lim.supervisor.empty()) return lim.supervisor;
  if (const char* env = std::getenv("AUDIT_SUPERVISOR"); env && *env) return env;
  return executable_dir() + "/audit";
}

namespace {
// What can be refused before anything runs: returns the supervisor binary.
std::string preflight(const Command& c, const Limits& lim) {
  if (c.argv.empty() || c.argv[0].empty())
    throw InputError("", 0, 0, "launch.command", "the command is empty");
  if (!c.workdir.empty() && !is_dir(c.workdir))
    throw InputError("", 0, 0, "launch.workdir", "workdir " + c.workdir + " is not a folder");
  const std::string sup = supervisor_binary(lim);
  if (::access(sup.c_str(), X_OK) != 0)
    throw InputError("", 0, 0, "",
                     "cannot run the launch supervisor " + sup + ": " + std::strerror(errno) +
                         " (it is the `audit` binary; it must sit beside this one, or give "
                         "$AUDIT_SUPERVISOR)");
  return sup;
}
}  // namespace

Outcome run(const Command& c, const Limits& lim, const Callbacks& cb) {
  const std::string sup = preflight(c, lim);

  SignalForwarding sigs;
  // Channels: control (a socket, so that writing after the supervisor died is EPIPE, not
  // SIGPIPE), reports, stdout, stderr.
  int ctl[2], rep[2], out[2], err[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) != 0 || ::pipe2(rep, O_CLOEXEC) != 0 ||
      ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("launch: cannot make pipes: ") + std::strerror(errno));
  // The supervisor's ends go to its fds 3..6; duplicated high first so no dup2 clobbers another.
  int child_ends[4] = {ctl[1], rep[1], out[1], err[1]};
  int high[4];
  for (int i = 0; i < 4; ++i) high[i] = ::fcntl(child_ends[i], F_DUPFD_CLOEXEC, 64);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  for (int i = 0; i < 4; ++i) posix_spawn_file_actions_adddup2(&fa, high[i], 3 + i);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGQUIT}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);  // out of the terminal's process group: Ctrl-C comes via us
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  char buf[64];
  std::vector<std::string> args = {sup, kSupervisorVerb, "--parent", std::to_string(getpid())};
  std::snprintf(buf, sizeof buf, "%.6f", lim.interval_s > 0 ? lim.interval_s : 1.0);
  args.insert(args.end(), {"--interval", buf});
  std::snprintf(buf, sizeof buf, "%.6f", std::max(0.0, lim.grace_s));
  args.insert(args.end(), {"--grace", buf, "--cgroup", lim.use_cgroup ? "1" : "0"});
  if (!c.workdir.empty()) args.insert(args.end(), {"--cwd", c.workdir});
  args.push_back("--");
  args.insert(args.end(), c.argv.begin(), c.argv.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The environment: this process's, with the command's keys set on top.
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos && c.env.count(kv.substr(0, eq))) continue;
    env.push_back(kv);
  }
  for (const auto& [k, v] : c.env) env.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t sup_pid = 0;
  const int rc = posix_spawn(&sup_pid, sup.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  for (int i = 0; i < 4; ++i) {
    ::close(high[i]);
    ::close(child_ends[i]);
  }
  if (rc != 0) {
    ::close(ctl[0]);
    ::close(rep[0]);
    ::close(out[0]);
    ::close(err[0]);
    throw InputError("", 0, 0, "", "cannot start the launch supervisor " + sup + ": " +
                                       std::strerror(rc));
  }
  const double t0 = mono_s();
  int ctl_fd = ctl[0], rep_fd = rep[0], out_fd = out[0], err_fd = err[0];

  Outcome o;
  Stream so(lim.keep_bytes, false, cb), se(lim.keep_bytes, true, cb);
  std::string rep_buf;
  bool stopping = false, ended = false;
  int signals_seen = 0;
  auto send = [&](const std::string& line) {
    if (ctl_fd < 0) return;
    const std::string text = line + "\n";
    if (::send(ctl_fd, text.data(), text.size(), MSG_NOSIGNAL) < 0 && errno == EPIPE) close_fd(ctl_fd);
  };
  auto stop = [&](const std::string& status, const std::string& reason, int sig) {
    if (stopping) return;
    stopping = true;
    o.status = status;
    o.stop_reason = reason;
    char line[64];
    std::snprintf(line, sizeof line, "STOP %d %.6f", sig, std::max(0.0, lim.grace_s));
    send(line);
  };
  auto on_report = [&](const std::string& line) {
    if (line.size() < 2) return;
    const std::string rest = line.substr(2);
    switch (line[0]) {
      case 'C': {
        o.cgroup = rest.rfind("1 ", 0) == 0;
        if (!o.cgroup) o.cgroup_note = rest.size() > 2 ? rest.substr(2) : rest;
        else o.cgroup_note.clear();
        break;
      }
      case 'P': o.pid = std::strtoll(rest.c_str(), nullptr, 10); break;
      case 'X': {
        const auto sp = rest.find(' ');
        o.stop_reason = sp == std::string::npos ? rest : rest.substr(sp + 1);
        break;
      }
      case 'T': {
        TreeSample s;
        std::istringstream in(rest);
        std::string pids;
        in >> s.wall_s >> s.cpu_s >> s.rss_bytes >> s.procs >> pids;
        if (pids != "-")
          for (const auto& p : split(pids, ',')) s.pids.push_back(std::strtoll(p.c_str(), nullptr, 10));
        ++o.samples;
        o.cpu_s = s.cpu_s;
        o.peak_rss_bytes = std::max(o.peak_rss_bytes, s.rss_bytes);
        if (cb.check) {
          const std::string why = cb.check(s);
          if (!why.empty()) stop("stopped", why, SIGTERM);
        }
        break;
      }
      case 'E': {
        const auto tab = split(line.substr(2), '\t');
        std::istringstream in(tab.empty() ? "" : tab[0]);
        in >> o.exit_code >> o.term_signal >> o.wall_s >> o.cpu_s >> o.peak_rss_bytes >>
            o.rusage_cpu_s >> o.leftovers >> o.supervisor_cpu_s;
        if (tab.size() > 1) o.cpu_source = tab[1];
        if (tab.size() > 2) o.mem_source = tab[2];
        ended = true;
        break;
      }
      default: break;
    }
  };
  auto read_into = [&](int& fd, auto&& sink) {
    char chunk[65536];
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) sink(chunk, size_t(n));
    else if (n == 0 || (errno != EINTR && errno != EAGAIN)) close_fd(fd);
  };

  while (rep_fd >= 0 || out_fd >= 0 || err_fd >= 0) {
    double wait_s = 0.5;
    if (lim.timeout_s > 0 && !stopping) wait_s = std::min(wait_s, t0 + lim.timeout_s - mono_s());
    pollfd fds[4] = {{rep_fd, POLLIN, 0}, {out_fd, POLLIN, 0}, {err_fd, POLLIN, 0},
                     {sigs.fd(), POLLIN, 0}};
    ::poll(fds, 4, std::max(0, int(std::ceil(wait_s * 1000))));
    if (fds[3].revents & POLLIN) {
      char sig_buf[16];
      const ssize_t n = ::read(sigs.fd(), sig_buf, sizeof sig_buf);
      for (ssize_t i = 0; i < n; ++i) {
        const int sig = sig_buf[i];
        if (++signals_seen == 1) {
          if (!stopping) stop("interrupted", "interrupted by " + signal_text(sig), sig);
          else send("STOP " + std::to_string(sig) + " " + std::to_string(lim.grace_s));
          if (o.status != "interrupted") {  // a stop already under way becomes an interruption
            o.status = "interrupted";
            o.stop_reason += "; then interrupted by " + signal_text(sig);
          }
        } else {
          send("KILL");  // a second Ctrl-C: no more grace
        }
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR))
      read_into(out_fd, [&](const char* p, size_t n) { so.add(p, n); });
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR))
      read_into(err_fd, [&](const char* p, size_t n) { se.add(p, n); });
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR))
      read_into(rep_fd, [&](const char* p, size_t n) {
        rep_buf.append(p, n);
        size_t nl;
        while ((nl = rep_buf.find('\n')) != std::string::npos) {
          on_report(rep_buf.substr(0, nl));
          rep_buf.erase(0, nl + 1);
        }
      });
    if (lim.timeout_s > 0 && !stopping && mono_s() - t0 >= lim.timeout_s)
      stop("stopped", "timeout after " + seconds_text(lim.timeout_s) + " s", SIGTERM);
  }
  close_fd(ctl_fd);
  int st = 0;
  while (::waitpid(sup_pid, &st, 0) < 0 && errno == EINTR) {
  }
  so.close();
  se.close();
  o.stdout_bytes = so.total();
  o.stderr_bytes = se.total();
  o.stdout_kept = so.kept();
  o.stderr_kept = se.kept();
  if (!ended) {
    // The supervisor died without its closing report: kill what it may have left behind.
    if (o.pid > 0) ::kill(-pid_t(o.pid), SIGKILL);
    o.wall_s = mono_s() - t0;
    o.status = "failed";
    o.stop_reason = "the launch supervisor ended without its report (" +
                    (WIFSIGNALED(st) ? signal_text(WTERMSIG(st))
                                     : "exit " + std::to_string(WEXITSTATUS(st))) +
                    ")";
    return o;
  }
  if (o.status.empty()) o.status = (o.exit_code == 0 && o.term_signal == 0) ? "succeeded" : "failed";
  if (o.status == "failed" && o.stop_reason.empty() && o.term_signal != 0)
    o.stop_reason = "killed by " + signal_text(o.term_signal);
  return o;
}

// ---- The ledger stage.
Outcome run_stage(ledger::Ledger& l, int64_t run_id, const std::string& stage, const Command& c,
                  const Limits& lim, const Callbacks& cb, ledger::MeterOptions meter) {
  namespace keys = ledger::keys;
  preflight(c, lim);  // bad input is refused before the stage begins
  struct Latest {
    std::mutex mu;
    bool have = false;
    double cpu = 0, rss = 0;
  };
  auto latest = std::make_shared<Latest>();
  meter.flush_every = 1;  // every sample reaches the file: a killed audit keeps the tree's seconds
  meter.interval_s = lim.interval_s > 0 ? lim.interval_s : meter.interval_s;
  meter.tree_probe = [latest](double* cpu, double* rss) {
    std::lock_guard<std::mutex> g(latest->mu);
    *cpu = latest->cpu;
    *rss = latest->rss;
    return latest->have;
  };
  ledger::StageMeter sm(l, run_id, stage, meter);
  std::vector<std::string> env_keys;
  for (const auto& kv : c.env) env_keys.push_back(kv.first);
  l.append_event(run_id, sm.stage_id(), keys::kPoint, keys::kLaunchStart,
                 {{"argv", c.argv}, {"workdir", c.workdir}, {"env_keys", env_keys},
                  {"timeout_s", lim.timeout_s}, {"grace_s", lim.grace_s},
                  {"interval_s", lim.interval_s}},
                 "reproduce/launch");
  Callbacks wrapped = cb;
  wrapped.check = [&cb, latest](const TreeSample& s) -> std::string {
    {
      std::lock_guard<std::mutex> g(latest->mu);
      latest->have = true;
      latest->cpu = s.cpu_s;
      latest->rss = s.rss_bytes;
    }
    return cb.check ? cb.check(s) : std::string();
  };
  Outcome o;
  try {
    o = run(c, lim, wrapped);
  } catch (...) {
    sm.finish("failed");
    throw;
  }
  {
    std::lock_guard<std::mutex> g(latest->mu);
    latest->have = true;
    latest->cpu = o.cpu_s;
  }
  const std::string stage_status = o.status == "succeeded"     ? "succeeded"
                                   : o.status == "interrupted" ? "aborted"
                                                               : "failed";
  sm.finish(stage_status);
  const int64_t sid = sm.stage_id();
  l.append_event(run_id, sid, keys::kPoint, keys::kLaunchStop,
                 {{"pid", o.pid}, {"exit_code", o.exit_code}, {"term_signal", o.term_signal},
                  {"status", o.status}, {"stop_reason", o.stop_reason}, {"wall_s", o.wall_s},
                  {"cpu_s", o.cpu_s}, {"peak_rss_bytes", o.peak_rss_bytes},
                  {"cpu_source", o.cpu_source}, {"mem_source", o.mem_source},
                  {"cgroup", o.cgroup}, {"cgroup_note", o.cgroup_note},
                  {"rusage_cpu_s", o.rusage_cpu_s}, {"leftovers", o.leftovers},
                  {"samples", o.samples}, {"supervisor_cpu_s", o.supervisor_cpu_s},
                  {"stdout_bytes", o.stdout_bytes}, {"stderr_bytes", o.stderr_bytes}},
                 "reproduce/launch");
  auto artifact = [&](const char* which, const std::string& kept, int64_t total) {
    l.put_artifact(run_id, sid, stage + "." + which,
                   {{"encoding", "zlib+base64"}, {"bytes_total", total},
                    {"bytes_kept", int64_t(kept.size())}, {"cut", total > int64_t(kept.size())},
                    {"data", compress_base64(kept)}});
  };
  artifact("stdout", o.stdout_kept, o.stdout_bytes);
  artifact("stderr", o.stderr_kept, o.stderr_bytes);
  return o;
}

std::string cgroup_unavailable_reason() {
  // Made and removed at once: the same steps the supervisor takes.
  tree::Cgroup probe("audit-launch-probe-" + std::to_string(getpid()));
  return probe.ok() ? "" : probe.note();
}

// ---- zlib + base64.
namespace {
const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string compress_base64(const std::string& text) {
  uLongf n = compressBound(uLong(text.size()));
  std::string z(n, '\0');
  if (compress2(reinterpret_cast<Bytef*>(z.data()), &n,
                reinterpret_cast<const Bytef*>(text.data()), uLong(text.size()), 6) != Z_OK)
    throw std::runtime_error("zlib compress2 failed");
  z.resize(n);
  std::string out;
  out.reserve((z.size() + 2) / 3 * 4 + 12);
  // The uncompressed size first (decimal, then ':'), so the reader can size its buffer.
  out += std::to_string(text.size()) + ":";
  for (size_t i = 0; i < z.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(z[i])) << 16;
    if (i + 1 < z.size()) v |= uint32_t(uint8_t(z[i + 1])) << 8;
    if (i + 2 < z.size()) v |= uint32_t(uint8_t(z[i + 2]));
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < z.size() ? kB64[(v >> 6) & 63] : '=';
    out += i + 2 < z.size() ? kB64[v & 63] : '=';
  }
  return out;
}

std::string decompress_base64(const std::string& b64) {
  const auto colon = b64.find(':');
  if (colon == std::string::npos) throw std::runtime_error("not a launch artifact (no size)");
  const size_t size = std::strtoull(b64.substr(0, colon).c_str(), nullptr, 10);
  std::string z;
  uint32_t v = 0;
  int bits = 0;
  for (size_t i = colon + 1; i < b64.size(); ++i) {
    const char* p = std::strchr(kB64, b64[i]);
    if (b64[i] == '=' || !p || !*p) continue;
    v = (v << 6) | uint32_t(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      z += char((v >> bits) & 0xff);
    }
  }
  std::string out(size, '\0');
  uLongf n = uLongf(size);
  if (uncompress(reinterpret_cast<Bytef*>(out.data()), &n,
                 reinterpret_cast<const Bytef*>(z.data()), uLong(z.size())) != Z_OK || n != size)
    throw std::runtime_error("launch artifact: zlib data is damaged");
  return out;
}

}  // namespace audit::launch
