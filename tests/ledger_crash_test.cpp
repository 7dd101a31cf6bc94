// Crash safety of the ledger: a child process (fork, no exec) writes a run, a stage, meter
// samples and events in a loop and is killed with SIGKILL after the 1st, 2nd, 5th, 20th...
// commit and at random microsecond delays. The ledger must then pass PRAGMA integrity_check and
// verify(), and the next open must mark the run aborted while keeping its metered seconds.
// Also: two processes appending to one ledger at once keep one intact chain.
#include <sqlite3.h>

#include <csignal>
#include <filesystem>
#include <random>
#include <string>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ledger/store/event_keys.h"
#include "ledger/store/ledger.h"
#include "tests/support/support.h"

namespace fs = std::filesystem;
using namespace audit::ledger;
using ::testing::HasSubstr;

namespace {

// The child's work: one byte on `fd` after every commit. Never returns.
[[noreturn]] void child_writer(const std::string& path, int fd) {
  auto tick = [fd] {
    char c = 'c';
    if (write(fd, &c, 1) != 1) _exit(3);
  };
  try {
    Ledger l(path);
    tick();
    RunInfo r;
    r.name = "crash";
    r.recipe_text = "[claim]\nname = \"crash\"\n";
    int64_t run = l.begin_run(r);
    tick();
    int64_t stage = l.begin_stage(run, "sft");
    tick();
    for (int i = 1; i < 1000000; ++i) {
      MeterSample m;
      m.run_id = run;
      m.stage_id = stage;
      m.t = now_s();
      m.device = "cpu";
      m.wall_s = 0.5 * i;
      m.cpu_s = 0.25 * i;
      m.mem_bytes = 1e6;
      l.add_meter_samples({m});
      tick();
      l.append_event(run, stage, keys::kPoint, keys::kTrainLoss,
                     {{"step", i}, {"loss", 1.0 / i}}, "ledger_crash_test.cpp:" +
                     std::to_string(__LINE__));
      tick();
    }
  } catch (...) {
    _exit(4);
  }
  _exit(0);
}

std::string integrity(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  std::string out = "no answer";
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

class LedgerCrash : public ::testing::Test {
 protected:
  // Starts the writer, waits for `commits` commits and then `delay_us`, SIGKILLs it, reaps it.
  // Returns the number of commits the parent saw.
  int kill_writer(const std::string& path, int commits, long delay_us) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    EXPECT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      child_writer(path, fds[1]);
    }
    close(fds[1]);
    int seen = 0;
    if (commits > 0) {
      char buf[1];
      while (seen < commits) {
        pollfd p{fds[0], POLLIN, 0};
        if (poll(&p, 1, 20000) <= 0) break;  // the child stalled: fail below
        if (read(fds[0], buf, 1) != 1) break;
        ++seen;
      }
      EXPECT_EQ(seen, commits) << "the writer stopped before commit " << commits;
    }
    if (delay_us > 0) usleep(static_cast<useconds_t>(delay_us));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(fds[0]);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the writer ended on its own (status " << status << ")";
    return seen;
  }

  // What must hold after any kill. `must_have_run`: the run was begun before the kill.
  void check_after_kill(const std::string& path, bool must_have_run, const std::string& what) {
    SCOPED_TRACE(what);
    if (!fs::exists(path)) {
      EXPECT_FALSE(must_have_run);
      return;
    }
    EXPECT_EQ(integrity(path), "ok");  // before anyone recovers anything
    Ledger l(path);                    // recovery happens here
    EXPECT_EQ(integrity(path), "ok");
    auto rep = l.verify();
    EXPECT_TRUE(rep.ok) << rep.message;
    auto runs = l.runs();
    if (must_have_run) ASSERT_EQ(runs.size(), 1u);
    for (const auto& r : runs) {
      EXPECT_EQ(r.status, RunStatus::aborted);
      EXPECT_GE(r.ended_at, r.started_at);
      auto ev = l.events(r.id);
      ASSERT_FALSE(ev.empty());
      EXPECT_EQ(ev.back().key, keys::kRunAborted);
      EXPECT_THAT(ev.back().value, HasSubstr("is gone"));
      for (const auto& s : l.stages(r.id)) {
        EXPECT_EQ(s.status, "aborted");
        auto ms = l.meter_samples(r.id, s.id);
        if (!ms.empty()) {
          // The metered seconds survive the crash: they come from the last sample.
          EXPECT_DOUBLE_EQ(s.wall_s, ms.back().wall_s);
          EXPECT_DOUBLE_EQ(s.cpu_s, ms.back().cpu_s);
          EXPECT_GT(s.wall_s, 0);
        }
        EXPECT_GE(s.ended_at, s.started_at);
      }
    }
    // A second open finds nothing more to recover and the chain still holds.
    Ledger again(path);
    EXPECT_TRUE(again.recover_aborted(120.0).empty());
    EXPECT_TRUE(again.verify().ok);
  }

  audit::testing::TempDir tmp{"ledger_crash"};
  std::string dir = tmp.path();
};

TEST_F(LedgerCrash, KilledAfterNCommits) {
  for (int n : {1, 2, 3, 4, 5, 8, 20, 50}) {
    std::string path = dir + "/after" + std::to_string(n) + ".db";
    int seen = kill_writer(path, n, 0);
    check_after_kill(path, seen >= 2, "killed after commit " + std::to_string(n));
  }
}

TEST_F(LedgerCrash, KilledAtRandomMoments) {
  // From the very start (anywhere in opening and migrating), and at random microseconds after
  // a random commit (anywhere inside a later transaction).
  std::mt19937 rng(20250601);
  std::uniform_int_distribution<long> early(0, 20000), late(0, 3000);
  std::uniform_int_distribution<int> commits(1, 40);
  for (int i = 0; i < 16; ++i) {
    int n = i < 4 ? 0 : commits(rng);
    long delay = i < 4 ? early(rng) : late(rng);
    std::string path = dir + "/random" + std::to_string(i) + ".db";
    int seen = kill_writer(path, n, delay);
    check_after_kill(path, seen >= 2,
                     "killed " + std::to_string(delay) + " us after commit " + std::to_string(n));
  }
}

TEST_F(LedgerCrash, TwoProcessesShareOneLedger) {
  std::string path = dir + "/shared.db";
  int64_t run;
  {
    Ledger l(path);
    RunInfo r;
    r.name = "shared";
    run = l.begin_run(r);
  }
  const int per_child = 150;
  pid_t kids[2];
  for (int k = 0; k < 2; ++k) {
    kids[k] = fork();
    ASSERT_GE(kids[k], 0);
    if (kids[k] == 0) {
      try {
        Ledger l(path);
        for (int i = 0; i < per_child; ++i)
          l.append_event(run, 0, keys::kPoint, keys::kTrainLoss, {{"writer", k}, {"i", i}});
      } catch (...) {
        _exit(1);
      }
      _exit(0);
    }
  }
  for (pid_t p : kids) {
    int status = 0;
    waitpid(p, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a writer failed (busy?)";
  }
  Ledger l(path);
  EXPECT_EQ(l.events(run).size(), 1u + 2 * per_child);
  auto rep = l.verify();
  EXPECT_TRUE(rep.ok) << rep.message;
  EXPECT_EQ(integrity(path), "ok");
}

}  // namespace
