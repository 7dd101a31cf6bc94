// Tests of the read-only ledger (ledger::OpenMode::read_only), what `audit report` opens: it
// reads every row, refuses every write, migrates nothing, marks no dead run aborted, creates no
// ledger, and leaves the .db file's bytes and the -wal file's content as they were, also when
// the WAL holds rows no checkpoint has copied into the .db file yet.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "ledger/store/ledger.h"

namespace {
namespace fs = std::filesystem;
using audit::ledger::Ledger;
using audit::ledger::LedgerError;
using audit::ledger::OpenMode;

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("audit_ro_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string bytes_of(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

audit::ledger::RunInfo a_run(const std::string& name) {
  audit::ledger::RunInfo ri;
  ri.name = name;
  ri.recipe_text = "[claim]\nname = \"" + name + "\"\n";
  ri.recipe_sha256 = audit::ledger::sha256_hex(ri.recipe_text);
  ri.host = audit::ledger::this_host();
  ri.pid = ::getpid();
  return ri;
}

TEST(LedgerReadOnly, ReadsEveryRowAndRefusesEveryWrite) {
  TempDir d("rw");
  const fs::path db = d.path / "a.db";
  int64_t run = 0;
  {
    Ledger l(db.string());
    run = l.begin_run(a_run("one"));
    l.put_artifact(run, 0, "note", {{"k", 1}});
    l.end_run(run, audit::ledger::RunStatus::succeeded);
  }
  const std::string before = bytes_of(db);
  {
    Ledger r(db.string(), OpenMode::read_only);
    EXPECT_TRUE(r.read_only());
    EXPECT_EQ(r.latest_run(), run);
    ASSERT_TRUE(r.run(run));
    EXPECT_EQ(r.run(run)->name, "one");
    EXPECT_EQ((*r.artifact(run, "note"))["k"], 1);
    EXPECT_TRUE(r.verify().ok) << r.verify().message;
    EXPECT_THROW(r.begin_run(a_run("two")), LedgerError);
    EXPECT_THROW(r.put_artifact(run, 0, "x", {}), LedgerError);
    EXPECT_THROW(r.end_run(run, audit::ledger::RunStatus::failed), LedgerError);
    EXPECT_THROW(r.transaction([] {}), LedgerError);
    // Not even SQL behind the API's back writes.
    EXPECT_NE(sqlite3_exec(r.handle(), "DELETE FROM artifacts", nullptr, nullptr, nullptr),
              SQLITE_OK);
  }
  EXPECT_EQ(bytes_of(db), before);
  Ledger l(db.string());
  EXPECT_EQ(l.runs().size(), 1u);
}

TEST(LedgerReadOnly, CreatesNoLedgerAndRefusesWhatIsNotOne) {
  TempDir d("missing");
  const fs::path db = d.path / "missing.db";
  EXPECT_THROW(Ledger(db.string(), OpenMode::read_only), LedgerError);
  EXPECT_FALSE(fs::exists(db));
  std::ofstream(d.path / "empty.db").close();
  try {
    Ledger((d.path / "empty.db").string(), OpenMode::read_only);
    ADD_FAILURE() << "an empty file opened as a ledger";
  } catch (const LedgerError& e) {
    EXPECT_NE(std::string(e.what()).find("empty.db"), std::string::npos) << e.what();
  }
  std::ofstream(d.path / "text.db") << "not a database, just text that is long enough to be read";
  EXPECT_THROW(Ledger((d.path / "text.db").string(), OpenMode::read_only), LedgerError);
}

TEST(LedgerReadOnly, DoesNotMarkDeadRunsAborted) {
  TempDir d("dead");
  const fs::path db = d.path / "a.db";
  int64_t run = 0;
  {
    Ledger l(db.string());
    auto ri = a_run("dead");
    ri.pid = 999999999;  // no such process on this host
    run = l.begin_run(ri);
  }
  {
    Ledger r(db.string(), OpenMode::read_only);
    EXPECT_EQ(r.run(run)->status, audit::ledger::RunStatus::running);
  }
  Ledger l(db.string());  // a writer marks it
  EXPECT_EQ(l.run(run)->status, audit::ledger::RunStatus::aborted);
}

TEST(LedgerReadOnly, LeavesAWalWithUncheckpointedRowsAsItWas) {
  TempDir d("wal");
  const fs::path db = d.path / "a.db";
  const fs::path wal = d.path / "a.db-wal";
  int64_t run = 0;
  {
    Ledger l(db.string());
    l.begin_run(a_run("checkpointed"));
  }
  {
    // A writer that ends without a checkpoint (as a killed process would): its rows are in the
    // WAL only.
    Ledger l(db.string());
    sqlite3_db_config(l.handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    run = l.begin_run(a_run("in the wal"));
  }
  ASSERT_TRUE(fs::exists(wal));
  ASSERT_GT(fs::file_size(wal), 0u);
  const std::string db_before = bytes_of(db), wal_before = bytes_of(wal);
  {
    Ledger r(db.string(), OpenMode::read_only);
    ASSERT_TRUE(r.run(run));
    EXPECT_EQ(r.run(run)->name, "in the wal");
    EXPECT_EQ(r.runs().size(), 2u);
  }
  EXPECT_EQ(bytes_of(db), db_before) << "the read-only open changed the .db file";
  EXPECT_EQ(bytes_of(wal), wal_before) << "the read-only open changed the -wal file";
}

}  // namespace
