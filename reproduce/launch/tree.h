// The process tree of a launched command as the supervisor sees it: /proc scans of descendants
// (by parent links, zombies and other sessions included) and a cgroup v2 subtree (cpu.stat,
// memory.peak, cgroup.procs, cgroup.kill) where the machine allows one. Internal to
// reproduce/launch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace audit::launch::tree {

struct Proc {
  int64_t pid = 0, ppid = 0, pgid = 0;
  char state = '?';
  double cpu_s = 0;      // utime + stime + cutime + cstime (its reaped children included)
  double rss_bytes = 0;
};

// /proc/PID/stat of one process; false when it is gone or unreadable.
bool read_proc(int64_t pid, Proc* out);

// Every process whose chain of parents reaches root (root itself excluded), plus `extra` pids
// (the cgroup's) and their descendants, zombies included: walked from the root through
// /proc/PID/task/TID/children where the kernel has them, else one scan of every /proc/PID/stat.
std::vector<Proc> descendants(int64_t root, const std::vector<int64_t>& extra = {});

// A cgroup v2 folder of its own for the command, under this process's cgroup.
class Cgroup {
 public:
  // Makes `<mount><own cgroup>/<name>`; on failure ok() is false and note() says why.
  explicit Cgroup(const std::string& name);
  ~Cgroup();
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  bool ok() const { return !dir_.empty(); }
  const std::string& dir() const { return dir_; }
  const std::string& note() const { return note_; }
  // cpu.stat usage_usec in seconds; false when unreadable.
  bool cpu_seconds(double* out) const;
  // memory.peak (bytes, kernel 5.19+, needs the memory controller); false when absent.
  bool memory_peak(double* out) const;
  std::vector<int64_t> procs() const;  // cgroup.procs
  bool kill() const;                   // writes 1 to cgroup.kill (kernel 5.14+)
  // rmdir, retried while the killed processes leave; true when gone.
  bool remove();

 private:
  std::string dir_, note_;
};

// Where a cgroup v2 hierarchy is mounted ("" when none) and this process's path in it.
std::string cgroup2_mount();
std::string own_cgroup2_path();

}  // namespace audit::launch::tree
