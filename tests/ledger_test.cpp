// Tests of the SQLite ledger: schema and refusal of foreign files, round trips of every row
// kind, the hash chain, tamper detection (edit, delete, insert, reorder, structured rows edited
// without their event), recovery of dead runs, the three export formats, and the CLI verb.
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ledger/store/event_keys.h"
#include "ledger/store/ledger.h"
#include "common/errors.h"
#include "tests/support/support.h"

namespace fs = std::filesystem;
using namespace audit::ledger;
using ::testing::HasSubstr;

namespace {

// A raw connection as an attacker with the sqlite3 shell would have it: foreign keys off, the
// append-only triggers dropped.
void tamper(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  std::string all = "DROP TRIGGER IF EXISTS events_no_update; DROP TRIGGER IF EXISTS "
                    "events_no_delete; " + sql;
  int rc = sqlite3_exec(db, all.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << msg << "\n" << sql;
}

std::string query1(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

class LedgerTest : public ::testing::Test {
 protected:
  struct Ids {
    int64_t run = 0, stage = 0, cost = 0, eval = 0, verdict = 0;
    std::vector<int64_t> free_events;  // events not tied to a structured row
  };

  // A finished run with a bit of everything.
  Ids populate(Ledger& l, const std::string& name = "s1-mini") {
    Ids ids;
    RunInfo r;
    r.name = name;
    r.recipe_path = "recipes/s1-mini.toml";
    r.recipe_text = "[claim]\nname = \"s1-mini\"\n";
    r.git_commit = "abc123";
    r.device = "cpu";
    ids.run = l.begin_run(r);
    ids.stage = l.begin_stage(ids.run, "sft");
    for (int i = 0; i < 4; ++i)
      ids.free_events.push_back(l.append_event(ids.run, ids.stage, keys::kPoint, keys::kTrainLoss,
                                               {{"step", i}, {"loss", 2.5 - 0.1 * i}},
                                               "trainer.cpp:" + std::to_string(40 + i)));
    std::vector<MeterSample> ms;
    for (int i = 1; i <= 3; ++i) {
      MeterSample m;
      m.run_id = ids.run;
      m.stage_id = ids.stage;
      m.t = now_s();
      m.device = "cpu";
      m.wall_s = i * 1.5;
      m.cpu_s = i * 1.25;
      m.mem_bytes = 1e8 + i;
      ms.push_back(m);
    }
    l.add_meter_samples(ms);
    ids.free_events.push_back(
        l.append_event(ids.run, ids.stage, keys::kPoint, keys::kEvalLoss, {{"loss", 1.75}}));
    StageInfo s;
    s.id = ids.stage;
    s.wall_s = 4.5;
    s.cpu_s = 3.75;
    s.gpu_count = 2;
    s.status = "succeeded";
    l.end_stage(s);
    CostItem c;
    c.run_id = ids.run;
    c.category = "final_run";
    c.description = "SFT, \"measured\", here\non this CPU";
    c.quantity = 0.00125;
    c.unit = "CPU-hour";
    c.price_low = 0.02;
    c.price_mid = 0.04;
    c.price_high = 0.08;
    c.provenance = Provenance::measured;
    c.formula = "wall_s / 3600";
    c.inputs = {{"wall_s", 4.5}};
    c.source = "prices.toml 2025-06";
    ids.cost = l.add_cost_item(c);
    EvalResult e;
    e.run_id = ids.run;
    e.model = "tuned";
    e.suite = "arith";
    e.split = "ood_long";
    e.ood = true;
    e.seed = 7;
    e.n = 30;
    e.correct = 17;
    e.score = 17.0 / 30;
    e.ci_low = 0.39;
    e.ci_high = 0.73;
    ids.eval = l.add_eval(e);
    Verdict v;
    v.run_id = ids.run;
    v.claim = "cost: under $50";
    v.kind = "cost";
    v.claimed = "$50";
    v.measured = "$0.0001";
    v.verdict = "supported";
    v.reason = "final run only";
    ids.verdict = l.add_verdict(v);
    l.put_artifact(ids.run, ids.stage, "loss_curve", {{"steps", {1, 2, 3}}});
    ids.free_events.push_back(l.append_event(ids.run, 0, keys::kPoint, keys::kWarning,
                                             {{"message", "tiny run"}}, "run.cpp:9"));
    l.end_run(ids.run, RunStatus::succeeded);
    return ids;
  }

  VerifyReport verify_fresh() {
    Ledger l(path);
    return l.verify();
  }

  audit::testing::TempDir tmp{"ledger_test"};
  std::string dir = tmp.path(), path = tmp.file("audit.db");
};

// ---- opening, schema, refusal -----------------------------------------------------------------

TEST_F(LedgerTest, CreatesSchemaInWalWithForeignKeys) {
  Ledger l(path);
  EXPECT_EQ(l.schema_version(), kSchemaVersion);
  EXPECT_EQ(query1(path, "PRAGMA journal_mode"), "wal");
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(l.handle(), "PRAGMA foreign_keys", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 1);
  sqlite3_finalize(st);
  for (const char* t : {"runs", "stages", "events", "meter_samples", "cost_items", "evals",
                        "verdicts", "artifacts", "schema_version"})
    EXPECT_EQ(query1(path, std::string("SELECT count(*) FROM sqlite_master WHERE name='") + t +
                               "'"),
              "1")
        << t;
  // Opening again migrates nothing twice: one schema_version row per migration.
  Ledger again(path);
  EXPECT_EQ(query1(path, "SELECT count(*) FROM schema_version"), std::to_string(kSchemaVersion));
  EXPECT_EQ(again.latest_run(), 0);
}

TEST_F(LedgerTest, RefusesAFileThatIsNotSqlite) {
  audit::testing::write_file(
      path, "name,value\nnot,a database at all, just some text that is long enough "
            "to fill a header of one hundred bytes.................................\n");
  try {
    Ledger l(path);
    FAIL() << "opened a text file as a ledger";
  } catch (const LedgerError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("not a SQLite database"));
  }
}

TEST_F(LedgerTest, RefusesASqliteDatabaseThatIsNotOurs) {
  tamper(path, "CREATE TABLE photos(id INTEGER PRIMARY KEY, blob BLOB);");
  try {
    Ledger l(path);
    FAIL() << "opened a foreign database as a ledger";
  } catch (const LedgerError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("not an audit ledger"));
  }
}

TEST_F(LedgerTest, RefusesANewerSchema) {
  { Ledger l(path); }
  tamper(path, "INSERT INTO schema_version(version, applied_at, description) VALUES (99, 0, "
               "'from the future');");
  try {
    Ledger l(path);
    FAIL() << "opened a ledger with a newer schema";
  } catch (const LedgerError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("schema version 99 is newer"));
  }
}

TEST_F(LedgerTest, RefusesAMissingFolderNamingTheFile) {
  std::string bad = dir + "/no/such/folder/audit.db";
  try {
    Ledger l(bad);
    FAIL();
  } catch (const LedgerError& e) {
    EXPECT_THAT(e.what(), HasSubstr(bad));
  }
}

TEST_F(LedgerTest, EventsAreAppendOnlyThroughSql) {
  Ledger l(path);
  Ids ids = populate(l);
  char* err = nullptr;
  int rc = sqlite3_exec(l.handle(), "UPDATE events SET value='{}' WHERE id=1", nullptr, nullptr,
                        &err);
  EXPECT_NE(rc, SQLITE_OK);
  EXPECT_THAT(err ? err : "", HasSubstr("append-only"));
  sqlite3_free(err);
  (void)ids;
}

// ---- round trips ------------------------------------------------------------------------------

TEST_F(LedgerTest, RowsRoundTrip) {
  Ledger l(path);
  Ids ids = populate(l);
  auto r = l.run(ids.run);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->name, "s1-mini");
  EXPECT_EQ(r->status, RunStatus::succeeded);
  EXPECT_EQ(r->recipe_sha256, sha256_hex(r->recipe_text));
  EXPECT_EQ(r->host, this_host());
  EXPECT_EQ(r->pid, static_cast<int64_t>(getpid()));
  EXPECT_GE(r->ended_at, r->started_at);
  EXPECT_EQ(l.latest_run(), ids.run);
  EXPECT_EQ(l.runs().size(), 1u);

  auto st = l.stages(ids.run);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].name, "sft");
  EXPECT_EQ(st[0].status, "succeeded");
  EXPECT_DOUBLE_EQ(st[0].wall_s, 4.5);
  EXPECT_DOUBLE_EQ(st[0].gpu_s, 9.0);  // 2 devices x 4.5 s: what a cloud bills
  EXPECT_GE(st[0].ended_at, st[0].started_at);

  auto ms = l.meter_samples(ids.run, ids.stage);
  ASSERT_EQ(ms.size(), 3u);
  EXPECT_DOUBLE_EQ(ms[2].wall_s, 4.5);
  EXPECT_DOUBLE_EQ(ms[2].cpu_s, 3.75);
  EXPECT_EQ(ms[0].device, "cpu");

  auto cs = l.cost_items(ids.run);
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].id, ids.cost);
  EXPECT_EQ(cs[0].description, "SFT, \"measured\", here\non this CPU");
  EXPECT_EQ(cs[0].provenance, Provenance::measured);
  EXPECT_EQ(cs[0].inputs["wall_s"], 4.5);
  EXPECT_DOUBLE_EQ(cs[0].price_high, 0.08);

  auto ev = l.evals(ids.run);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_TRUE(ev[0].ood);
  EXPECT_EQ(ev[0].correct, 17);
  EXPECT_EQ(ev[0].budget, -1);

  auto vs = l.verdicts(ids.run);
  ASSERT_EQ(vs.size(), 1u);
  EXPECT_EQ(vs[0].verdict, "supported");

  auto a = l.artifact(ids.run, "loss_curve");
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)["steps"][2], 3);
  EXPECT_FALSE(l.artifact(ids.run, "nope"));
  EXPECT_EQ(l.artifact_names(ids.run), std::vector<std::string>{"loss_curve"});
}

TEST_F(LedgerTest, ResolveRunAcceptsLatestAndRefusesUnknown) {
  Ledger l(path);
  EXPECT_THROW(resolve_run(l, "latest"), audit::InputError);
  Ids a = populate(l, "first");
  Ids b = populate(l, "second");
  EXPECT_EQ(resolve_run(l, "latest"), b.run);
  EXPECT_EQ(resolve_run(l, std::to_string(a.run)), a.run);
  EXPECT_THROW(resolve_run(l, "42"), audit::InputError);
  EXPECT_THROW(resolve_run(l, "3x"), audit::InputError);
  EXPECT_EQ(l.runs().front().id, b.run);  // newest first
}

TEST_F(LedgerTest, EndingTwiceIsRefused) {
  Ledger l(path);
  Ids ids = populate(l);
  EXPECT_THROW(l.end_run(ids.run, RunStatus::failed), LedgerError);
  StageInfo s;
  s.id = ids.stage;
  s.status = "failed";
  EXPECT_THROW(l.end_stage(s), LedgerError);
  s.status = "running";
  EXPECT_THROW(l.end_stage(s), LedgerError);
}

TEST_F(LedgerTest, TransactionRollsBackEverythingOnError) {
  Ledger l(path);
  Ids ids = populate(l);
  size_t before = l.events(0).size();
  EXPECT_THROW(l.transaction([&] {
    l.append_event(ids.run, 0, keys::kPoint, keys::kWarning, {{"message", "one"}});
    l.append_event(ids.run, 0, keys::kPoint, keys::kWarning, {{"message", "two"}});
    throw std::runtime_error("stage failed half way");
  }),
               std::runtime_error);
  EXPECT_EQ(l.events(0).size(), before);
  EXPECT_TRUE(l.verify().ok);
}

// ---- the chain --------------------------------------------------------------------------------

TEST_F(LedgerTest, Sha256MatchesTheStandardVector) {
  EXPECT_EQ(sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(LedgerTest, CanonicalEncodingSeparatesFields) {
  Event a, b;
  a.key = "ab";
  a.value = "c";
  b.key = "a";
  b.value = "bc";
  a.prev_hash = b.prev_hash = kGenesisHash;
  EXPECT_NE(canonical_event(a), canonical_event(b));
  Event c = a;
  c.source = "x";
  EXPECT_NE(canonical_event(a), canonical_event(c));
  c = a;
  c.id = 1;
  EXPECT_NE(canonical_event(a), canonical_event(c));
}

TEST_F(LedgerTest, EventsAreChained) {
  Ledger l(path);
  populate(l);
  populate(l, "again");  // the chain runs across runs
  auto ev = l.events(0);
  ASSERT_GT(ev.size(), 20u);
  EXPECT_EQ(ev[0].prev_hash, kGenesisHash);
  for (size_t i = 0; i < ev.size(); ++i) {
    EXPECT_EQ(ev[i].id, static_cast<int64_t>(i + 1));
    EXPECT_EQ(ev[i].hash, sha256_hex(canonical_event(ev[i])));
    if (i > 0) EXPECT_EQ(ev[i].prev_hash, ev[i - 1].hash);
  }
  auto rep = l.verify();
  EXPECT_TRUE(rep.ok) << rep.message;
  EXPECT_EQ(rep.events_checked, static_cast<int64_t>(ev.size()));
  EXPECT_EQ(rep.message, "ledger OK: " + std::to_string(ev.size()) + " events, " +
                             std::to_string(rep.rows_checked) + " rows checked");
  // 2 runs + 2 stages + 6 samples + 2 costs + 2 evals + 2 verdicts + 2 artifacts
  EXPECT_EQ(rep.rows_checked, 18);
}

// ---- tampering: each of the four, and structured rows -----------------------------------------

TEST_F(LedgerTest, DetectsAnEditedEvent) {
  int64_t k;
  {
    Ledger l(path);
    k = populate(l).free_events[1];
  }
  tamper(path, "UPDATE events SET value='{\"loss\":0.01,\"step\":1}' WHERE id=" +
                   std::to_string(k));
  auto rep = verify_fresh();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_event, k);
  EXPECT_THAT(rep.message,
              HasSubstr("events row " + std::to_string(k) + ": hash mismatch (row was edited)"));
}

TEST_F(LedgerTest, DetectsAnEditedAndRehashedEvent) {
  int64_t k;
  {
    Ledger l(path);
    k = populate(l).free_events[1];
    // A forger who recomputes the edited row's own hash still breaks the next link.
    auto ev = l.events(0);
    Event e = ev[k - 1];
    e.value = "{\"loss\":0.01,\"step\":1}";
    e.hash = sha256_hex(canonical_event(e));
    tamper(path, "UPDATE events SET value='" + e.value + "', hash='" + e.hash +
                     "' WHERE id=" + std::to_string(k));
  }
  auto rep = verify_fresh();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_event, k + 1);
  EXPECT_THAT(rep.message, HasSubstr("events row " + std::to_string(k + 1) +
                                     ": prev_hash does not match row " + std::to_string(k)));
}

TEST_F(LedgerTest, DetectsADeletedEvent) {
  int64_t k;
  {
    Ledger l(path);
    k = populate(l).free_events[1];
  }
  tamper(path, "DELETE FROM events WHERE id=" + std::to_string(k));
  auto rep = verify_fresh();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_event, k + 1);
  EXPECT_THAT(rep.message, HasSubstr("events row " + std::to_string(k + 1) +
                                     ": prev_hash does not match row " + std::to_string(k - 1) +
                                     " (a row was deleted, inserted or reordered)"));
  EXPECT_THAT(rep.message, HasSubstr("row " + std::to_string(k) + " was deleted"));
}

TEST_F(LedgerTest, DetectsAnInsertedEvent) {
  int64_t k;
  {
    Ledger l(path);
    k = populate(l).free_events[1];
    // The forger shifts the later ids up by one and inserts a row whose own hash and link to
    // row k are both correct.
    auto ev = l.events(0);
    Event f = ev[k - 1];
    f.id = k + 1;
    f.value = "{\"loss\":0.0001,\"step\":99}";
    f.prev_hash = ev[k - 1].hash;
    f.hash = sha256_hex(canonical_event(f));
    std::string K = std::to_string(k);
    tamper(path, "UPDATE events SET id = id + 1000000 WHERE id > " + K +
                     "; UPDATE events SET id = id - 999999 WHERE id > 1000000; "
                     "INSERT INTO events(id, run_id, stage_id, t_us, type, key, value, source, "
                     "prev_hash, hash) VALUES (" +
                     std::to_string(f.id) + ", " + std::to_string(f.run_id) + ", " +
                     std::to_string(f.stage_id) + ", " + std::to_string(f.t_us) + ", '" +
                     f.type + "', '" + f.key + "', '" + f.value + "', '" + f.source + "', '" +
                     f.prev_hash + "', '" + f.hash + "');");
  }
  auto rep = verify_fresh();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_event, k + 2);
  EXPECT_THAT(rep.message, HasSubstr("events row " + std::to_string(k + 2) +
                                     ": prev_hash does not match row " + std::to_string(k + 1)));
  EXPECT_THAT(rep.message, HasSubstr("row " + std::to_string(k + 1) + " was inserted"));
}

TEST_F(LedgerTest, DetectsReorderedEvents) {
  int64_t a;
  {
    Ledger l(path);
    a = populate(l).free_events[1];
  }
  std::string A = std::to_string(a), B = std::to_string(a + 1);
  tamper(path,
         "CREATE TEMP TABLE t AS SELECT * FROM events WHERE id IN (" + A + "," + B + ");"
         "UPDATE events SET (run_id, stage_id, t_us, type, key, value, source, prev_hash, hash) "
         "= (SELECT run_id, stage_id, t_us, type, key, value, source, prev_hash, hash FROM t "
         "WHERE t.id = CASE events.id WHEN " + A + " THEN " + B + " ELSE " + A + " END) "
         "WHERE id IN (" + A + "," + B + ");");
  auto rep = verify_fresh();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_event, a);
  EXPECT_THAT(rep.message, HasSubstr("events row " + A + ": prev_hash does not match row " +
                                     std::to_string(a - 1)));
  EXPECT_THAT(rep.message, HasSubstr("points to row " + B + ", which comes after it (rows were "
                                     "reordered)"));
}

TEST_F(LedgerTest, DetectsACostItemEditedWithoutItsEvent) {
  Ids ids;
  {
    Ledger l(path);
    ids = populate(l);
  }
  tamper(path, "UPDATE cost_items SET price_mid = 0.0001 WHERE id=" + std::to_string(ids.cost));
  Ledger l(path);
  auto rep = l.verify();
  EXPECT_FALSE(rep.ok);
  std::string ev = query1(path, "SELECT event_id FROM cost_items WHERE id=" +
                                    std::to_string(ids.cost));
  EXPECT_EQ(std::to_string(rep.first_bad_event), ev);
  EXPECT_THAT(rep.message, HasSubstr("cost_items row " + std::to_string(ids.cost) +
                                     ": does not equal its event " + ev +
                                     " (row was edited without its event)"));
}

TEST_F(LedgerTest, DetectsADeletedCostItemRow) {
  Ids ids;
  {
    Ledger l(path);
    ids = populate(l);
  }
  std::string ev = query1(path, "SELECT event_id FROM cost_items WHERE id=" +
                                    std::to_string(ids.cost));
  tamper(path, "DELETE FROM cost_items WHERE id=" + std::to_string(ids.cost));
  auto rep = verify_fresh();
  EXPECT_FALSE(rep.ok);
  EXPECT_THAT(rep.message, HasSubstr("events row " + ev + " (cost_item): no cost_items row "
                                                          "refers to it"));
}

TEST_F(LedgerTest, DetectsEditsOfOtherStructuredRows) {
  struct Case {
    std::string sql, expect;
  };
  std::vector<Case> cases = {
      {"UPDATE stages SET wall_s = 0.5 WHERE id=1", "stages row 1: does not equal its event"},
      {"UPDATE stages SET ended_at = started_at - 10 WHERE id=1", "stages row 1: does not equal"},
      {"UPDATE stages SET run_id = 99 WHERE id=1", "stages row 1: its run 99 does not exist"},
      {"UPDATE meter_samples SET cpu_s = 0 WHERE id=2", "meter_samples row 1 (batch of event"},
      {"UPDATE evals SET correct = 29 WHERE id=1", "evals row 1: does not equal its event"},
      {"UPDATE verdicts SET verdict = 'not supported' WHERE id=1",
       "verdicts row 1: does not equal its event"},
      {"UPDATE artifacts SET content = '{}' WHERE id=1", "artifacts row 1: does not equal"},
      {"UPDATE runs SET recipe_text = 'lr = 1' WHERE id=1",
       "runs row 1: recipe_sha256 does not match recipe_text"},
      {"UPDATE runs SET status = 'failed' WHERE id=1", "runs row 1: status/ended_at differ"},
      {"UPDATE runs SET name = 'other' WHERE id=1", "runs row 1: does not equal its event"},
      {"UPDATE cost_items SET event_id = (SELECT event_id FROM evals WHERE id=1) WHERE id=1; "
       "UPDATE evals SET event_id = 999 WHERE id=1",
       "cost_items row 1: its event"},
  };
  for (const auto& c : cases) {
    fs::remove(path);
    fs::remove(path + "-wal");
    fs::remove(path + "-shm");
    {
      Ledger l(path);
      populate(l);
    }
    tamper(path, c.sql);
    auto rep = verify_fresh();
    EXPECT_FALSE(rep.ok) << c.sql;
    EXPECT_THAT(rep.message, HasSubstr(c.expect)) << c.sql;
  }
}

// ---- recovery ---------------------------------------------------------------------------------

TEST_F(LedgerTest, RecoversARunWithAStaleHeartbeatKeepingItsSeconds) {
  int64_t run, stage;
  {
    Ledger l(path);
    RunInfo r;
    r.name = "remote";
    r.host = "some-other-host";
    r.pid = 4242;
    run = l.begin_run(r);
    stage = l.begin_stage(run, "pretrain");
    std::vector<MeterSample> ms;
    const double t0 = now_s();
    for (int i = 1; i <= 4; ++i) {
      for (const char* dev : {"cpu", "cuda:0", "cuda:1"}) {
        MeterSample m;
        m.run_id = run;
        m.stage_id = stage;
        m.t = t0 + i;
        m.device = dev;
        m.wall_s = 10.0 * i;
        m.cpu_s = std::string(dev) == "cpu" ? 7.0 * i : 0;
        m.busy_s = std::string(dev) == "cpu" ? 0 : 5.0 * i;
        m.mem_bytes = 1e9 * i;
        m.power_w = std::string(dev) == "cpu" ? -1 : 300;
        ms.push_back(m);
      }
    }
    l.add_meter_samples(ms);
    // Still fresh: a second opener leaves it alone.
    Ledger other(path, 120.0);
    EXPECT_EQ(other.run(run)->status, RunStatus::running);
  }
  tamper(path, "UPDATE runs SET heartbeat_at = heartbeat_at - 1000 WHERE id=" +
                   std::to_string(run));
  Ledger l(path, 120.0);
  auto r = l.run(run);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, RunStatus::aborted);
  auto st = l.stages(run);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].status, "aborted");
  EXPECT_DOUBLE_EQ(st[0].wall_s, 40.0);       // from the last sample
  EXPECT_DOUBLE_EQ(st[0].cpu_s, 28.0);
  EXPECT_EQ(st[0].gpu_count, 2);
  EXPECT_DOUBLE_EQ(st[0].gpu_s, 80.0);        // 2 GPUs x 40 s
  EXPECT_DOUBLE_EQ(st[0].gpu_busy_s, 40.0);   // 20 + 20
  EXPECT_DOUBLE_EQ(st[0].gpu_peak_mem_bytes, 4e9);
  EXPECT_TRUE(st[0].power_metered);
  EXPECT_NEAR(st[0].energy_j, 2 * 300.0 * 3, 1e-6);  // 300 W over 3 s per GPU
  auto ev = l.events(run);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back().key, keys::kRunAborted);
  EXPECT_THAT(ev.back().value, HasSubstr("heartbeat is"));
  auto rep = l.verify();
  EXPECT_TRUE(rep.ok) << rep.message;
  EXPECT_THROW(l.end_run(run, RunStatus::succeeded), LedgerError);
}

TEST_F(LedgerTest, RecoversARunWhoseProcessIsGoneButKeepsLiveOnes) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_FALSE(pid_alive(child));
  EXPECT_TRUE(pid_alive(getpid()));
  int64_t dead, live;
  {
    Ledger l(path);
    RunInfo r;
    r.name = "dead";
    r.pid = child;
    dead = l.begin_run(r);
    r.name = "live";
    r.pid = 0;  // this process
    live = l.begin_run(r);
  }
  Ledger l(path);
  EXPECT_EQ(l.run(dead)->status, RunStatus::aborted);
  EXPECT_EQ(l.run(live)->status, RunStatus::running);
  EXPECT_THAT(l.events(dead).back().value, HasSubstr("is gone"));
  EXPECT_TRUE(l.verify().ok);
}

TEST_F(LedgerTest, OneLedgerObjectIsSafeAcrossThreads) {
  Ledger l(path);
  RunInfo r;
  r.name = "threads";
  int64_t run = l.begin_run(r);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i)
        l.append_event(run, 0, keys::kPoint, keys::kTrainLoss, {{"t", t}, {"i", i}});
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(l.events(run).size(), 101u);
  EXPECT_TRUE(l.verify().ok);
}

// ---- exports ----------------------------------------------------------------------------------

// RFC 4180 reader for the CSV export: returns rows of fields.
std::vector<std::vector<std::string>> parse_csv(const std::string& s) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quoted) {
      if (c == '"' && i + 1 < s.size() && s[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == ',') {
      row.push_back(field);
      field.clear();
      any = true;
    } else if (c == '\n') {
      if (any || !field.empty()) row.push_back(field);
      rows.push_back(row);
      row.clear();
      field.clear();
      any = false;
    } else {
      field += c;
    }
  }
  EXPECT_FALSE(quoted) << "unterminated quote";
  return rows;
}

TEST_F(LedgerTest, ExportJsonParsesBack) {
  Ledger l(path);
  Ids ids = populate(l);
  auto j = nlohmann::json::parse(export_json(l, ids.run));
  EXPECT_EQ(j["format"], "audit-ledger-export/1");
  EXPECT_EQ(j["run"]["id"], ids.run);
  EXPECT_EQ(j["run"]["status"], "succeeded");
  EXPECT_EQ(j["run"]["recipe_text"], "[claim]\nname = \"s1-mini\"\n");
  EXPECT_EQ(j["stages"].size(), 1u);
  EXPECT_EQ(j["stages"][0]["gpu_s"], 9.0);
  EXPECT_EQ(j["events"].size(), l.events(ids.run).size());
  EXPECT_EQ(j["events"][0]["key"], keys::kRunStart);
  EXPECT_EQ(j["meter_samples"].size(), 3u);
  EXPECT_EQ(j["cost_items"][0]["description"], "SFT, \"measured\", here\non this CPU");
  EXPECT_EQ(j["cost_items"][0]["inputs"]["wall_s"], 4.5);
  EXPECT_EQ(j["evals"][0]["correct"], 17);
  EXPECT_EQ(j["verdicts"][0]["claim"], "cost: under $50");
  EXPECT_EQ(j["artifacts"][0]["content"]["steps"].size(), 3u);
  // The events in the export still verify: recompute each hash from the exported fields.
  for (const auto& e : j["events"]) {
    Event ev;
    ev.id = e["id"];
    ev.run_id = e["run_id"];
    ev.stage_id = e["stage_id"];
    ev.t_us = e["t_us"];
    ev.type = e["type"];
    ev.key = e["key"];
    ev.value = e["value"].dump();
    ev.source = e["source"];
    ev.prev_hash = e["prev_hash"];
    EXPECT_EQ(sha256_hex(canonical_event(ev)), e["hash"]) << "event " << ev.id;
  }
  EXPECT_THROW(export_json(l, 999), LedgerError);
}

TEST_F(LedgerTest, ExportCsvParsesBack) {
  Ledger l(path);
  Ids ids = populate(l);
  auto rows = parse_csv(export_csv(l, ids.run));
  std::vector<std::string> sections;
  std::vector<std::string> header;
  std::string section;
  size_t cost_rows = 0, event_rows = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (r.empty()) {
      header.clear();
      continue;
    }
    if (r.size() == 1 && r[0].rfind("# ", 0) == 0) {
      section = r[0].substr(2);
      sections.push_back(section);
      ASSERT_LT(i + 1, rows.size());
      header = rows[++i];
      continue;
    }
    ASSERT_FALSE(header.empty()) << "row outside a section at line " << i;
    ASSERT_EQ(r.size(), header.size()) << section << " row " << i;
    if (section == "cost_items") {
      ++cost_rows;
      EXPECT_EQ(r[3], "SFT, \"measured\", here\non this CPU");
      EXPECT_EQ(nlohmann::json::parse(r[11])["wall_s"], 4.5);
    }
    if (section == "events") {
      ++event_rows;
      EXPECT_TRUE(nlohmann::json::accept(r[6])) << r[6];
    }
  }
  EXPECT_EQ(sections, (std::vector<std::string>{"run", "stages", "events", "meter_samples",
                                                "cost_items", "evals", "verdicts",
                                                "artifacts"}));
  EXPECT_EQ(cost_rows, 1u);
  EXPECT_EQ(event_rows, l.events(ids.run).size());
}

TEST_F(LedgerTest, ExportMllogParsesBack) {
  Ledger l(path);
  Ids ids = populate(l);
  std::istringstream in(export_mllog(l, ids.run));
  std::string line;
  size_t n = 0;
  int64_t last_ms = 0;
  std::set<std::string> types;
  bool saw_source = false;
  while (std::getline(in, line)) {
    ASSERT_EQ(line.rfind(":::MLLOG ", 0), 0u) << line;
    auto j = nlohmann::json::parse(line.substr(9));
    EXPECT_EQ(j["namespace"], "");
    EXPECT_GE(j["time_ms"].get<int64_t>(), last_ms);
    last_ms = j["time_ms"];
    types.insert(j["event_type"].get<std::string>());
    EXPECT_TRUE(j["key"].is_string());
    EXPECT_TRUE(j.contains("value"));
    EXPECT_TRUE(j["metadata"]["file"].is_string());
    EXPECT_TRUE(j["metadata"]["lineno"].is_number_integer());
    if (j["key"] == keys::kTrainLoss && j["value"]["step"] == 2) {
      EXPECT_EQ(j["metadata"]["file"], "trainer.cpp");
      EXPECT_EQ(j["metadata"]["lineno"], 42);
      EXPECT_EQ(j["event_type"], "POINT_IN_TIME");
      saw_source = true;
    }
    if (j["key"] == keys::kRunStart) EXPECT_EQ(j["event_type"], "INTERVAL_START");
    if (j["key"] == keys::kRunStop) EXPECT_EQ(j["event_type"], "INTERVAL_END");
    ++n;
  }
  EXPECT_TRUE(saw_source);
  EXPECT_EQ(n, l.events(ids.run).size());
  EXPECT_EQ(types, (std::set<std::string>{"INTERVAL_START", "INTERVAL_END", "POINT_IN_TIME"}));
}

// ---- the CLI verb -----------------------------------------------------------------------------

TEST_F(LedgerTest, CliListShowVerifyExport) {
  Ids ids;
  {
    Ledger l(path);
    ids = populate(l);
  }
  auto r = audit::testing::run_audit("ledger verify --ledger " + path);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("ledger OK: "));

  r = audit::testing::run_audit("ledger list --ledger " + path);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("s1-mini"));
  EXPECT_THAT(r.output, HasSubstr("succeeded"));

  r = audit::testing::run_audit("ledger show latest --ledger " + path);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("sft"));
  EXPECT_THAT(r.output, HasSubstr("final_run"));

  r = audit::testing::run_audit("ledger show 77 --ledger " + path);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("no run 77"));

  std::string out = dir + "/run.mllog";
  r = audit::testing::run_audit("ledger export " + std::to_string(ids.run) +
                                " --format mllog --out " + out + " --ledger " + path);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::ifstream f(out);
  std::string first;
  std::getline(f, first);
  EXPECT_EQ(first.rfind(":::MLLOG {", 0), 0u) << first;

  r = audit::testing::run_audit("ledger export latest --format json --ledger " + path);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(nlohmann::json::accept(r.output));

  r = audit::testing::run_audit("ledger export latest --format xml --ledger " + path);
  EXPECT_NE(r.exit_code, 0);

  r = audit::testing::run_audit("ledger verify --ledger " + dir + "/missing.db");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("missing.db"));
  EXPECT_FALSE(fs::exists(dir + "/missing.db"));

  tamper(path, "UPDATE events SET value='{}' WHERE id=" + std::to_string(ids.free_events[0]));
  r = audit::testing::run_audit("ledger verify --ledger " + path);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("events row " + std::to_string(ids.free_events[0]) +
                                  ": hash mismatch"));

  audit::testing::write_file(dir + "/notes.txt", std::string(200, 'x'));
  r = audit::testing::run_audit("ledger list --ledger " + dir + "/notes.txt");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("not a SQLite database"));
}

}  // namespace
