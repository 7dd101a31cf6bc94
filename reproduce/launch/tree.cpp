// /proc scans and the cgroup v2 subtree of a launched command (see tree.h).
#include "reproduce/launch/tree.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <chrono>
#include <thread>

namespace audit::launch::tree {
namespace {

double tick_s() {
  static const double t = 1.0 / double(sysconf(_SC_CLK_TCK));
  return t;
}
double page_bytes() {
  static const double p = double(sysconf(_SC_PAGESIZE));
  return p;
}

bool read_small(const std::string& path, std::string* out) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return false;
  char buf[4096];
  out->clear();
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  std::fclose(f);
  return true;
}

bool write_small(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "we");
  if (!f) return false;
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = (std::fclose(f) == 0) && ok;
  return ok;
}

}  // namespace

bool read_proc(int64_t pid, Proc* out) {
  std::string s;
  if (!read_small("/proc/" + std::to_string(pid) + "/stat", &s)) return false;
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const size_t close = s.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream in(s.substr(close + 1));
  std::vector<std::string> f;
  std::string tok;
  while (in >> tok && f.size() < 24) f.push_back(tok);
  if (f.size() < 22) return false;
  // f[k] is field k + 3 of proc(5): state 3, ppid 4, pgrp 5, utime 14 .. cstime 17, rss 24.
  out->pid = pid;
  out->state = f[0].empty() ? '?' : f[0][0];
  out->ppid = std::strtoll(f[1].c_str(), nullptr, 10);
  out->pgid = std::strtoll(f[2].c_str(), nullptr, 10);
  double ticks = 0;
  for (int k = 11; k <= 14; ++k) ticks += std::strtod(f[k].c_str(), nullptr);
  out->cpu_s = ticks * tick_s();
  out->rss_bytes = std::strtod(f[21].c_str(), nullptr) * page_bytes();
  return true;
}

namespace {

// Whether /proc/PID/task/TID/children exists here (CONFIG_PROC_CHILDREN): then the tree is walked
// from the root instead of scanning every process of the machine.
bool have_children_files() {
  static const bool have = [] {
    const std::string self = "/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/children";
    return ::access(self.c_str(), R_OK) == 0;
  }();
  return have;
}

// The children of pid, from each of its threads' children file.
void children_of(int64_t pid, std::vector<int64_t>* out) {
  const std::string base = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(base.c_str());
  if (!d) return;  // gone
  std::string text;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if (!read_small(base + "/" + e->d_name + "/children", &text)) continue;
    const char* p = text.c_str();
    char* end = nullptr;
    for (long long v = std::strtoll(p, &end, 10); end != p; v = std::strtoll(p, &end, 10)) {
      out->push_back(v);
      p = end;
    }
  }
  closedir(d);
}

// One scan of every /proc/PID/stat: pid -> its record.
std::map<int64_t, Proc> scan_all() {
  std::map<int64_t, Proc> all;
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      Proc p;
      if (read_proc(std::strtoll(e->d_name, nullptr, 10), &p)) all[p.pid] = p;
    }
    closedir(d);
  }
  return all;
}

}  // namespace

std::vector<Proc> descendants(int64_t root, const std::vector<int64_t>& extra) {
  std::set<int64_t> seen;
  std::vector<int64_t> todo = {root};
  for (int64_t x : extra)
    if (x != root && seen.insert(x).second) todo.push_back(x);
  std::vector<Proc> out;
  if (have_children_files()) {
    std::vector<int64_t> kids;
    while (!todo.empty()) {
      const int64_t pid = todo.back();
      todo.pop_back();
      kids.clear();
      children_of(pid, &kids);
      for (int64_t k : kids)
        if (k != root && seen.insert(k).second) todo.push_back(k);
    }
    for (int64_t pid : seen) {
      Proc p;
      if (read_proc(pid, &p)) out.push_back(p);
    }
    return out;
  }
  const std::map<int64_t, Proc> all = scan_all();
  std::multimap<int64_t, int64_t> children;
  for (const auto& [pid, p] : all) children.emplace(p.ppid, pid);
  while (!todo.empty()) {
    const int64_t pid = todo.back();
    todo.pop_back();
    auto range = children.equal_range(pid);
    for (auto it = range.first; it != range.second; ++it)
      if (it->second != root && seen.insert(it->second).second) todo.push_back(it->second);
  }
  for (int64_t pid : seen) {
    auto it = all.find(pid);
    if (it != all.end()) out.push_back(it->second);
  }
  return out;
}

std::string cgroup2_mount() {
  std::ifstream f("/proc/self/mountinfo");
  std::string line;
  while (std::getline(f, line)) {
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string fstype;
    tail >> fstype;
    if (fstype != "cgroup2") continue;
    std::istringstream head(line.substr(0, dash));
    std::string id, parent, devno, root, mount;
    head >> id >> parent >> devno >> root >> mount;
    return mount;
  }
  return "";
}

std::string own_cgroup2_path() {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return "";
}

Cgroup::Cgroup(const std::string& name) {
  const std::string mount = cgroup2_mount();
  if (mount.empty()) {
    note_ = "cgroup v2 is not mounted here (cgroup v1 only)";
    return;
  }
  std::string own = own_cgroup2_path();
  if (own.empty()) {
    note_ = "this process has no cgroup v2 path in /proc/self/cgroup";
    return;
  }
  if (own == "/") own.clear();
  const std::string dir = mount + own + "/" + name;
  if (::mkdir(dir.c_str(), 0755) != 0) {
    note_ = "cannot create cgroup " + dir + ": " + std::strerror(errno) +
            " (cgroup v2 is not delegated to this user here)";
    return;
  }
  std::string probe;
  if (!read_small(dir + "/cpu.stat", &probe) || probe.find("usage_usec") == std::string::npos) {
    ::rmdir(dir.c_str());
    note_ = "cgroup " + dir + " has no cpu.stat usage_usec";
    return;
  }
  dir_ = dir;
}

Cgroup::~Cgroup() { remove(); }

bool Cgroup::cpu_seconds(double* out) const {
  std::string s;
  if (!ok() || !read_small(dir_ + "/cpu.stat", &s)) return false;
  const size_t at = s.find("usage_usec ");
  if (at == std::string::npos) return false;
  *out = std::strtod(s.c_str() + at + 11, nullptr) * 1e-6;
  return true;
}

bool Cgroup::memory_peak(double* out) const {
  std::string s;
  if (!ok() || !read_small(dir_ + "/memory.peak", &s) || s.empty()) return false;
  *out = std::strtod(s.c_str(), nullptr);
  return true;
}

std::vector<int64_t> Cgroup::procs() const {
  std::vector<int64_t> out;
  std::string s;
  if (!ok() || !read_small(dir_ + "/cgroup.procs", &s)) return out;
  std::istringstream in(s);
  int64_t pid;
  while (in >> pid) out.push_back(pid);
  return out;
}

bool Cgroup::kill() const { return ok() && write_small(dir_ + "/cgroup.kill", "1"); }

bool Cgroup::remove() {
  if (!ok()) return true;
  for (int i = 0; i < 200; ++i) {  // up to 2 s for the killed processes to leave
    if (::rmdir(dir_.c_str()) == 0 || errno == ENOENT) {
      dir_.clear();
      return true;
    }
    if (errno != EBUSY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace audit::launch::tree
