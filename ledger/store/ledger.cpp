// The SQLite ledger: opening and migrating the file, runs, stages, the hash-chained events,
// the structured rows written together with their events, and recovery of dead runs.
// verify() lives in ledger/store/verify.cpp; exports in ledger/store/export.cpp; the CLI in cmd_ledger.cpp.
#include "ledger/store/ledger.h"

#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <sys/types.h>
#include <unistd.h>

#include "ledger/store/event_keys.h"
#include "ledger/store/ledger_internal.h"
#include "common/errors.h"

namespace audit::ledger {

// ---------------------------------------------------------------------------------------------
// Small helpers

const char* to_string(RunStatus s) {
  switch (s) {
    case RunStatus::running: return "running";
    case RunStatus::succeeded: return "succeeded";
    case RunStatus::failed: return "failed";
    case RunStatus::aborted: return "aborted";
  }
  return "unknown";
}

RunStatus parse_run_status(const std::string& s) {
  if (s == "running") return RunStatus::running;
  if (s == "succeeded") return RunStatus::succeeded;
  if (s == "failed") return RunStatus::failed;
  if (s == "aborted") return RunStatus::aborted;
  throw LedgerError("unknown run status '" + s + "' (running|succeeded|failed|aborted)");
}

const char* to_string(Provenance p) {
  switch (p) {
    case Provenance::measured: return "measured";
    case Provenance::declared: return "declared";
    case Provenance::estimated: return "estimated";
  }
  return "unknown";
}

Provenance parse_provenance(const std::string& s) {
  if (s == "measured") return Provenance::measured;
  if (s == "declared") return Provenance::declared;
  if (s == "estimated") return Provenance::estimated;
  throw LedgerError("unknown provenance '" + s + "' (measured|declared|estimated)");
}

std::string this_host() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

bool pid_alive(int64_t pid) {
  if (pid <= 0) return false;
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
  // A zombie still answers kill(0); it is dead for our purposes.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (stat && std::getline(stat, line)) {
    auto close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size()) {
      char state = line[close + 2];
      if (state == 'Z' || state == 'X') return false;
    }
  }
  return true;
}

double now_s() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count() / 1e6;
}

static int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}


// Length-prefixed fields, one per line, so no two different events share an encoding.
std::string canonical_event(const Event& e) {
  auto field = [](std::string& out, const char* name, const std::string& v) {
    out += name;
    out += ':';
    out += std::to_string(v.size());
    out += ':';
    out += v;
    out += '\n';
  };
  std::string out = "audit-event/1\n";
  out += "id:" + std::to_string(e.id) + "\n";
  out += "run_id:" + std::to_string(e.run_id) + "\n";
  out += "stage_id:" + std::to_string(e.stage_id) + "\n";
  out += "t_us:" + std::to_string(e.t_us) + "\n";
  field(out, "type", e.type);
  field(out, "key", e.key);
  field(out, "value", e.value);
  field(out, "source", e.source);
  field(out, "prev_hash", e.prev_hash);
  return out;
}

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

static std::string dump(const nlohmann::json& j) { return dump_json(j); }

static void require_finite(double v, const char* what) {
  if (!std::isfinite(v)) throw LedgerError(std::string(what) + " is not a finite number");
}

// ---------------------------------------------------------------------------------------------
// Canonical JSON of each row kind

// The node fields of a run, added to its JSON only when set (so pre-schema-2 rows verify).
static void add_node_fields(nlohmann::json& j, const RunInfo& r) {
  if (!r.multi_node()) return;
  j["node_rank"] = r.node_rank;
  j["nnodes"] = r.nnodes;
  j["node_from"] = r.node_from;
}

nlohmann::json to_json(const RunInfo& r) {
  nlohmann::json j = {{"id", r.id},
          {"name", r.name},
          {"recipe_path", r.recipe_path},
          {"recipe_sha256", r.recipe_sha256},
          {"host", r.host},
          {"git_commit", r.git_commit},
          {"device", r.device},
          {"started_at", r.started_at},
          {"ended_at", r.ended_at},
          {"heartbeat_at", r.heartbeat_at},
          {"pid", r.pid},
          {"status", to_string(r.status)}};
  add_node_fields(j, r);
  return j;
}

nlohmann::json run_start_json(const RunInfo& r) {
  nlohmann::json j = {{"name", r.name},         {"recipe_path", r.recipe_path},
                      {"recipe_sha256", r.recipe_sha256}, {"host", r.host},
                      {"git_commit", r.git_commit}, {"device", r.device},
                      {"started_at", r.started_at}, {"pid", r.pid}};
  add_node_fields(j, r);
  return j;
}

nlohmann::json to_json(const StageInfo& s) {
  nlohmann::json j = {{"run_id", s.run_id},
          {"name", s.name},
          {"started_at", s.started_at},
          {"ended_at", s.ended_at},
          {"wall_s", s.wall_s},
          {"cpu_s", s.cpu_s},
          {"gpu_count", s.gpu_count},
          {"gpu_s", s.gpu_s},
          {"gpu_busy_s", s.gpu_busy_s},
          {"gpu_peak_mem_bytes", s.gpu_peak_mem_bytes},
          {"energy_j", s.energy_j},
          {"power_metered", s.power_metered},
          {"status", s.status}};
  if (s.node >= 0) j["node"] = s.node;
  return j;
}

nlohmann::json stage_start_json(const StageInfo& s) {
  nlohmann::json j = {{"run_id", s.run_id}, {"name", s.name}, {"started_at", s.started_at}};
  if (s.node >= 0) j["node"] = s.node;
  return j;
}

nlohmann::json to_json(const MeterSample& m) {
  return {{"run_id", m.run_id}, {"stage_id", m.stage_id}, {"t", m.t},
          {"device", m.device}, {"wall_s", m.wall_s},     {"cpu_s", m.cpu_s},
          {"busy_s", m.busy_s}, {"mem_bytes", m.mem_bytes}, {"power_w", m.power_w}};
}

nlohmann::json to_json(const CostItem& c) {
  return {{"run_id", c.run_id},         {"category", c.category},
          {"description", c.description}, {"quantity", c.quantity},
          {"unit", c.unit},             {"price_low", c.price_low},
          {"price_mid", c.price_mid},   {"price_high", c.price_high},
          {"provenance", to_string(c.provenance)}, {"formula", c.formula},
          {"inputs", c.inputs},         {"source", c.source}};
}

nlohmann::json to_json(const EvalResult& e) {
  return {{"run_id", e.run_id}, {"model", e.model}, {"suite", e.suite},   {"split", e.split},
          {"ood", e.ood},       {"seed", e.seed},   {"budget", e.budget}, {"n", e.n},
          {"correct", e.correct}, {"score", e.score}, {"ci_low", e.ci_low},
          {"ci_high", e.ci_high}};
}

nlohmann::json to_json(const Verdict& v) {
  return {{"run_id", v.run_id},     {"claim", v.claim},       {"kind", v.kind},
          {"claimed", v.claimed},   {"measured", v.measured}, {"verdict", v.verdict},
          {"reason", v.reason}};
}

// ---------------------------------------------------------------------------------------------
// Schema and migrations. Each migration runs in its own IMMEDIATE transaction and stamps
// schema_version; a file stamped newer than kSchemaVersion is refused.

inline constexpr int kApplicationId = 0x41554454;  // "AUDT" in the SQLite header

struct Migration {
  int version;
  const char* description;
  const char* sql;
};

static const Migration kMigrations[] = {
    {1, "initial schema: runs, stages, events, meter_samples, cost_items, evals, verdicts, "
        "artifacts",
     R"SQL(
CREATE TABLE IF NOT EXISTS schema_version(
  version INTEGER PRIMARY KEY,
  applied_at REAL NOT NULL,
  description TEXT NOT NULL DEFAULT '');
CREATE TABLE runs(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  recipe_path TEXT NOT NULL DEFAULT '',
  recipe_text TEXT NOT NULL DEFAULT '',
  recipe_sha256 TEXT NOT NULL DEFAULT '',
  host TEXT NOT NULL DEFAULT '',
  git_commit TEXT NOT NULL DEFAULT '',
  device TEXT NOT NULL DEFAULT '',
  started_at REAL NOT NULL,
  ended_at REAL NOT NULL DEFAULT 0,
  heartbeat_at REAL NOT NULL,
  pid INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL CHECK (status IN ('running','succeeded','failed','aborted')),
  start_event_id INTEGER REFERENCES events(id),
  stop_event_id INTEGER REFERENCES events(id));
CREATE TABLE stages(
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  name TEXT NOT NULL,
  started_at REAL NOT NULL,
  ended_at REAL NOT NULL DEFAULT 0,
  wall_s REAL NOT NULL DEFAULT 0,
  cpu_s REAL NOT NULL DEFAULT 0,
  gpu_count INTEGER NOT NULL DEFAULT 0,
  gpu_s REAL NOT NULL DEFAULT 0,
  gpu_busy_s REAL NOT NULL DEFAULT 0,
  gpu_peak_mem_bytes REAL NOT NULL DEFAULT 0,
  energy_j REAL NOT NULL DEFAULT 0,
  power_metered INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL CHECK (status IN ('running','succeeded','failed','aborted')),
  start_event_id INTEGER REFERENCES events(id),
  stop_event_id INTEGER REFERENCES events(id));
CREATE INDEX stages_run ON stages(run_id);
CREATE TABLE events(
  id INTEGER PRIMARY KEY,
  run_id INTEGER REFERENCES runs(id),
  stage_id INTEGER REFERENCES stages(id),
  t_us INTEGER NOT NULL,
  type TEXT NOT NULL CHECK (type IN ('START','END','POINT')),
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  source TEXT NOT NULL DEFAULT '',
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL);
CREATE INDEX events_run ON events(run_id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
  BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
  BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END;
CREATE TABLE meter_samples(
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  stage_id INTEGER REFERENCES stages(id),
  t REAL NOT NULL,
  device TEXT NOT NULL,
  wall_s REAL NOT NULL DEFAULT 0,
  cpu_s REAL NOT NULL DEFAULT 0,
  busy_s REAL NOT NULL DEFAULT 0,
  mem_bytes REAL NOT NULL DEFAULT 0,
  power_w REAL NOT NULL DEFAULT -1,
  event_id INTEGER NOT NULL REFERENCES events(id));
CREATE INDEX meter_samples_stage ON meter_samples(run_id, stage_id);
CREATE INDEX meter_samples_event ON meter_samples(event_id);
CREATE TABLE cost_items(
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  category TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  quantity REAL NOT NULL,
  unit TEXT NOT NULL,
  price_low REAL NOT NULL,
  price_mid REAL NOT NULL,
  price_high REAL NOT NULL,
  provenance TEXT NOT NULL CHECK (provenance IN ('measured','declared','estimated')),
  formula TEXT NOT NULL DEFAULT '',
  inputs TEXT NOT NULL DEFAULT '{}',
  source TEXT NOT NULL DEFAULT '',
  event_id INTEGER NOT NULL UNIQUE REFERENCES events(id));
CREATE INDEX cost_items_run ON cost_items(run_id);
CREATE TABLE evals(
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  model TEXT NOT NULL,
  suite TEXT NOT NULL,
  split TEXT NOT NULL,
  ood INTEGER NOT NULL,
  seed INTEGER NOT NULL,
  budget INTEGER NOT NULL,
  n INTEGER NOT NULL,
  correct INTEGER NOT NULL,
  score REAL NOT NULL,
  ci_low REAL NOT NULL,
  ci_high REAL NOT NULL,
  event_id INTEGER NOT NULL UNIQUE REFERENCES events(id));
CREATE INDEX evals_run ON evals(run_id);
CREATE TABLE verdicts(
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  claim TEXT NOT NULL,
  kind TEXT NOT NULL,
  claimed TEXT NOT NULL,
  measured TEXT NOT NULL,
  verdict TEXT NOT NULL,
  reason TEXT NOT NULL,
  event_id INTEGER NOT NULL UNIQUE REFERENCES events(id));
CREATE INDEX verdicts_run ON verdicts(run_id);
CREATE TABLE artifacts(
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  stage_id INTEGER REFERENCES stages(id),
  name TEXT NOT NULL,
  content TEXT NOT NULL,
  event_id INTEGER NOT NULL UNIQUE REFERENCES events(id));
CREATE INDEX artifacts_run ON artifacts(run_id, name);
)SQL"},
    {2, "several nodes: runs.node_rank, runs.nnodes, runs.node_from, stages.node",
     R"SQL(
ALTER TABLE runs ADD COLUMN node_rank INTEGER NOT NULL DEFAULT -1;
ALTER TABLE runs ADD COLUMN nnodes INTEGER NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN node_from TEXT NOT NULL DEFAULT '';
ALTER TABLE stages ADD COLUMN node INTEGER NOT NULL DEFAULT -1;
)SQL"},
};

int Ledger::schema_version() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Stmt q(db_, path_,
         "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_version'");
  q.step();
  if (q.i64(0) == 0) return 0;
  Stmt v(db_, path_, "SELECT coalesce(max(version), 0) FROM schema_version");
  v.step();
  return static_cast<int>(v.i64(0));
}

void Ledger::migrate() {
  int current = schema_version();
  if (current > kSchemaVersion)
    throw LedgerError(path_ + ": ledger schema version " + std::to_string(current) +
                      " is newer than this audit binary's " + std::to_string(kSchemaVersion) +
                      "; use a newer audit to read it");
  for (const Migration& m : kMigrations) {
    if (m.version <= current) continue;
    transaction([&] {
      if (schema_version() >= m.version) return;  // another process got there first
      exec(db_, path_, m.sql);
      exec(db_, path_, "PRAGMA application_id = " + std::to_string(kApplicationId));
      Stmt ins(db_, path_,
               "INSERT INTO schema_version(version, applied_at, description) VALUES (?,?,?)");
      ins.bind(1, static_cast<int64_t>(m.version)).bind(2, now_s()).bind(3, m.description);
      ins.run();
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Opening

Ledger::Ledger(const std::string& path, double stale_after_s) : path_(path) {
  open(stale_after_s);
}

Ledger::Ledger(const std::string& path, OpenMode mode)
    : path_(path), read_only_(mode == OpenMode::read_only) {
  open(120.0);
}

void Ledger::open(double stale_after_s) {
  if (read_only_) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path_, ec))
      throw LedgerError(path_ + ": no such ledger file (a read-only open creates none)");
  }
  const int flags =
      read_only_ ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw LedgerError(path_ + ": cannot open ledger: " + msg +
                      (read_only_ ? " (check that the file is readable)"
                                  : " (check that the folder exists and is writable)"));
  }
  try {
    sqlite3_busy_timeout(db_, 10000);
    sqlite3_extended_result_codes(db_, 1);
    if (read_only_) {
      // The last connection to close a WAL database checkpoints it into the .db file. SQLite
      // cannot take the lock for that through a read-only handle anyway; this says it outright.
      sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
      exec(db_, path_, "PRAGMA query_only=ON");
    }
    check_is_ledger();
    if (read_only_) {
      const int v = schema_version();
      if (v > kSchemaVersion)
        throw LedgerError(path_ + ": ledger schema version " + std::to_string(v) +
                          " is newer than this audit binary's " +
                          std::to_string(kSchemaVersion) + "; use a newer audit to read it");
      if (v < kSchemaVersion)
        throw LedgerError(path_ + ": ledger schema version " + std::to_string(v) +
                          " needs a migration to " + std::to_string(kSchemaVersion) +
                          ", which a read-only open does not do; open it once with a verb "
                          "that writes (e.g. `audit verdicts`)");
      return;
    }
    {
      Stmt wal(db_, path_, "PRAGMA journal_mode=WAL");
      wal.step();
      std::string mode = wal.text(0);
      if (mode != "wal")
        throw LedgerError(path_ + ": cannot switch the ledger to WAL mode (got '" + mode + "')");
    }
    exec(db_, path_, "PRAGMA foreign_keys=ON");
    exec(db_, path_, "PRAGMA synchronous=NORMAL");
    migrate();
    recover_aborted(stale_after_s);
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

// Reads the header and the tables: throws LedgerError for a file that is not SQLite, or a
// SQLite database that is not an audit ledger (an empty one is a new ledger when writing).
void Ledger::check_is_ledger() {
  int64_t app_id = 0, tables = 0;
  bool has_version = false;
  // The first read of the header: fails with SQLITE_NOTADB for a file that is not SQLite.
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db_, "PRAGMA application_id", -1, &st, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) app_id = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if ((rc & 0xff) == SQLITE_NOTADB)
    throw LedgerError(path_ + ": not a SQLite database, so not an audit ledger "
                              "(give --ledger a new file name or an existing ledger)");
  if (read_only_ && (rc & 0xff) == SQLITE_CANTOPEN)
    throw LedgerError(path_ + ": cannot read the ledger read-only: " + sqlite3_errmsg(db_) +
                      " (a WAL ledger needs " + path_ + "-shm beside it; SQLite creates it when "
                      "the folder is writable, else copy the ledger to a writable folder)");
  if (rc != SQLITE_ROW)
    throw LedgerError(path_ + ": cannot read ledger: " + sqlite3_errmsg(db_));
  Stmt t(db_, path_, "SELECT count(*), sum(name='schema_version') FROM sqlite_master "
                     "WHERE type='table'");
  t.step();
  tables = t.i64(0);
  has_version = t.i64(1) > 0;
  if (tables > 0 && (app_id != kApplicationId || !has_version))
    throw LedgerError(path_ + ": a SQLite database but not an audit ledger (application_id " +
                      std::to_string(app_id) + ", " + (has_version ? "has" : "no") +
                      " schema_version table)");
  if (read_only_ && tables == 0)
    throw LedgerError(path_ + ": an empty file, not an audit ledger (it holds no tables)");
}

Ledger::~Ledger() {
  if (db_) sqlite3_close_v2(db_);
}

void Ledger::transaction(const std::function<void()>& fn) {
  if (read_only_)
    throw LedgerError(path_ + ": opened read-only; this reader does not write to the ledger");
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (tx_depth_ > 0) {
    ++tx_depth_;
    try {
      fn();
    } catch (...) {
      --tx_depth_;
      throw;
    }
    --tx_depth_;
    return;
  }
  exec(db_, path_, "BEGIN IMMEDIATE");
  tx_depth_ = 1;
  try {
    fn();
    exec(db_, path_, "COMMIT");
  } catch (...) {
    tx_depth_ = 0;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  tx_depth_ = 0;
}

// ---------------------------------------------------------------------------------------------
// Events

int64_t append_chained_event(sqlite3* db, const std::string& path, int64_t run_id,
                             int64_t stage_id, int64_t t_us, const std::string& type,
                             const std::string& key, const std::string& value,
                             const std::string& source) {
  if (type != keys::kStart && type != keys::kEnd && type != keys::kPoint)
    throw LedgerError("event type must be START, END or POINT, not '" + type + "'");
  Event e;
  e.prev_hash = kGenesisHash;
  e.id = 1;
  {
    Stmt last(db, path, "SELECT id, hash FROM events ORDER BY id DESC LIMIT 1");
    if (last.step()) {
      e.id = last.i64(0) + 1;
      e.prev_hash = last.text(1);
    }
  }
  e.run_id = run_id;
  e.stage_id = stage_id;
  e.t_us = t_us;
  e.type = type;
  e.key = key;
  e.value = value;
  e.source = source;
  e.hash = sha256_hex(canonical_event(e));
  Stmt ins(db, path,
           "INSERT INTO events(id, run_id, stage_id, t_us, type, key, value, source, prev_hash, "
           "hash) VALUES (?,?,?,?,?,?,?,?,?,?)");
  ins.bind(1, e.id).bind_id(2, run_id).bind_id(3, stage_id).bind(4, e.t_us).bind(5, type);
  ins.bind(6, key).bind(7, value).bind(8, source).bind(9, e.prev_hash).bind(10, e.hash);
  ins.run();
  return e.id;
}

int64_t Ledger::append_event_locked(int64_t run_id, int64_t stage_id, const std::string& type,
                                    const std::string& key, const std::string& value,
                                    const std::string& source) {
  return append_chained_event(db_, path_, run_id, stage_id, now_us(), type, key, value, source);
}

void Ledger::touch_run(int64_t run_id) {
  if (run_id <= 0) return;
  Stmt up(db_, path_, "UPDATE runs SET heartbeat_at=? WHERE id=? AND status='running'");
  up.bind(1, now_s()).bind(2, run_id);
  up.run();
}

int64_t Ledger::append_event(int64_t run_id, int64_t stage_id, const std::string& type,
                             const std::string& key, const nlohmann::json& value,
                             const std::string& source) {
  int64_t id = 0;
  transaction([&] {
    id = append_event_locked(run_id, stage_id, type, key, dump(value), source);
    touch_run(run_id);
  });
  return id;
}

static Event read_event(Stmt& q) {
  Event e;
  e.id = q.i64(0);
  e.run_id = q.i64(1);
  e.stage_id = q.i64(2);
  e.t_us = q.i64(3);
  e.type = q.text(4);
  e.key = q.text(5);
  e.value = q.text(6);
  e.source = q.text(7);
  e.prev_hash = q.text(8);
  e.hash = q.text(9);
  return e;
}

std::vector<Event> Ledger::events(int64_t run_id) const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const char* cols =
      "SELECT id, coalesce(run_id,0), coalesce(stage_id,0), t_us, type, key, value, source, "
      "prev_hash, hash FROM events ";
  Stmt q(db_, path_,
         std::string(cols) + (run_id > 0 ? "WHERE run_id=? ORDER BY id" : "ORDER BY id"));
  if (run_id > 0) q.bind(1, run_id);
  std::vector<Event> out;
  while (q.step()) out.push_back(read_event(q));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Runs

static const std::string kRunCols = std::string("SELECT ") + kRunColumns + " FROM runs ";

RunInfo read_run(Stmt& q) {
  RunInfo r;
  r.id = q.i64(0);
  r.name = q.text(1);
  r.recipe_path = q.text(2);
  r.recipe_text = q.text(3);
  r.recipe_sha256 = q.text(4);
  r.host = q.text(5);
  r.git_commit = q.text(6);
  r.device = q.text(7);
  r.started_at = q.f64(8);
  r.ended_at = q.f64(9);
  r.heartbeat_at = q.f64(10);
  r.pid = q.i64(11);
  r.status = parse_run_status(q.text(12));
  r.node_rank = static_cast<int>(q.i64(13));
  r.nnodes = static_cast<int>(q.i64(14));
  r.node_from = q.text(15);
  return r;
}

int64_t Ledger::begin_run(const RunInfo& info) {
  RunInfo r = info;
  r.status = RunStatus::running;
  if (r.started_at <= 0) r.started_at = now_s();
  r.heartbeat_at = r.started_at;
  r.ended_at = 0;
  if (r.host.empty()) r.host = this_host();
  if (r.pid == 0) r.pid = static_cast<int64_t>(getpid());
  if (r.recipe_sha256.empty()) r.recipe_sha256 = sha256_hex(r.recipe_text);
  require_finite(r.started_at, "run started_at");
  if (r.node_rank < -1 || r.nnodes < 0 || (r.nnodes > 0 && r.node_rank >= r.nnodes))
    throw LedgerError("begin_run: node rank " + std::to_string(r.node_rank) + " of " +
                      std::to_string(r.nnodes) + " nodes is out of range");
  transaction([&] {
    Stmt ins(db_, path_,
             "INSERT INTO runs(name, recipe_path, recipe_text, recipe_sha256, host, git_commit, "
             "device, started_at, ended_at, heartbeat_at, pid, status, node_rank, nnodes, "
             "node_from) VALUES (?,?,?,?,?,?,?,?,0,?,?,'running',?,?,?)");
    ins.bind(1, r.name).bind(2, r.recipe_path).bind(3, r.recipe_text).bind(4, r.recipe_sha256);
    ins.bind(5, r.host).bind(6, r.git_commit).bind(7, r.device).bind(8, r.started_at);
    ins.bind(9, r.heartbeat_at).bind(10, r.pid).bind(11, r.node_rank).bind(12, r.nnodes);
    ins.bind(13, r.node_from);
    ins.run();
    r.id = sqlite3_last_insert_rowid(db_);
    int64_t ev = append_event_locked(r.id, 0, keys::kStart, keys::kRunStart,
                                     dump(run_start_json(r)), "ledger");
    Stmt up(db_, path_, "UPDATE runs SET start_event_id=? WHERE id=?");
    up.bind(1, ev).bind(2, r.id);
    up.run();
  });
  return r.id;
}

void Ledger::heartbeat(int64_t run_id) {
  transaction([&] { touch_run(run_id); });
}

void Ledger::end_run(int64_t run_id, RunStatus status) {
  if (status == RunStatus::running)
    throw LedgerError("end_run: the final status cannot be 'running'");
  transaction([&] {
    auto r = run(run_id);
    if (!r) throw LedgerError(path_ + ": end_run: no run " + std::to_string(run_id));
    if (r->status != RunStatus::running)
      throw LedgerError(path_ + ": run " + std::to_string(run_id) + " already ended as " +
                        to_string(r->status) +
                        (r->status == RunStatus::aborted
                             ? " (its heartbeat went stale and it was recovered as aborted)"
                             : ""));
    double ended = std::max(now_s(), r->started_at);
    nlohmann::json v = {{"status", to_string(status)}, {"ended_at", ended}};
    int64_t ev = append_event_locked(run_id, 0, keys::kEnd, keys::kRunStop, dump(v), "ledger");
    Stmt up(db_, path_,
            "UPDATE runs SET status=?, ended_at=?, heartbeat_at=?, stop_event_id=? WHERE id=?");
    up.bind(1, to_string(status)).bind(2, ended).bind(3, ended).bind(4, ev).bind(5, run_id);
    up.run();
  });
}

std::optional<RunInfo> Ledger::run(int64_t run_id) const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Stmt q(db_, path_, std::string(kRunCols) + "WHERE id=?");
  q.bind(1, run_id);
  if (!q.step()) return std::nullopt;
  return read_run(q);
}

std::vector<RunInfo> Ledger::runs() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Stmt q(db_, path_, std::string(kRunCols) + "ORDER BY id DESC");
  std::vector<RunInfo> out;
  while (q.step()) out.push_back(read_run(q));
  return out;
}

int64_t Ledger::latest_run() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Stmt q(db_, path_, "SELECT coalesce(max(id), 0) FROM runs");
  q.step();
  return q.i64(0);
}

int64_t resolve_run(const Ledger& l, const std::string& spec) {
  if (spec.empty() || spec == "latest") {
    int64_t id = l.latest_run();
    if (id == 0) throw InputError(l.path(), 0, 0, "RUN", "the ledger holds no runs yet");
    return id;
  }
  size_t used = 0;
  long long id = 0;
  try {
    id = std::stoll(spec, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != spec.size() || id <= 0)
    throw InputError(l.path(), 0, 0, "RUN",
                     "'" + spec + "' is not a run id (a positive number or 'latest')");
  if (!l.run(id))
    throw InputError(l.path(), 0, 0, "RUN",
                     "no run " + spec + " in this ledger (see `audit ledger list`)");
  return id;
}

// ---------------------------------------------------------------------------------------------
// Stages

static const char* kStageCols =
    "SELECT id, run_id, name, started_at, ended_at, wall_s, cpu_s, gpu_count, gpu_s, gpu_busy_s, "
    "gpu_peak_mem_bytes, energy_j, power_metered, status, node FROM stages ";

StageInfo read_stage(Stmt& q) {
  StageInfo s;
  s.id = q.i64(0);
  s.run_id = q.i64(1);
  s.name = q.text(2);
  s.started_at = q.f64(3);
  s.ended_at = q.f64(4);
  s.wall_s = q.f64(5);
  s.cpu_s = q.f64(6);
  s.gpu_count = static_cast<int>(q.i64(7));
  s.gpu_s = q.f64(8);
  s.gpu_busy_s = q.f64(9);
  s.gpu_peak_mem_bytes = q.f64(10);
  s.energy_j = q.f64(11);
  s.power_metered = q.i64(12) != 0;
  s.status = q.text(13);
  s.node = static_cast<int>(q.i64(14));
  return s;
}

int64_t Ledger::begin_stage(int64_t run_id, const std::string& name) {
  int64_t id = 0;
  transaction([&] {
    auto r = run(run_id);
    if (!r) throw LedgerError(path_ + ": begin_stage: no run " + std::to_string(run_id));
    StageInfo s;
    s.run_id = run_id;
    s.name = name;
    s.started_at = now_s();
    s.node = r->node_rank;
    Stmt ins(db_, path_,
             "INSERT INTO stages(run_id, name, started_at, status, node) "
             "VALUES (?,?,?,'running',?)");
    ins.bind(1, run_id).bind(2, name).bind(3, s.started_at).bind(4, s.node);
    ins.run();
    id = sqlite3_last_insert_rowid(db_);
    int64_t ev = append_event_locked(run_id, id, keys::kStart, keys::kStageStart,
                                     dump(stage_start_json(s)), "ledger");
    Stmt up(db_, path_, "UPDATE stages SET start_event_id=? WHERE id=?");
    up.bind(1, ev).bind(2, id);
    up.run();
    touch_run(run_id);
  });
  return id;
}

// Writes a stage's final row and its stage_stop event (shared by end_stage and recovery).
static void write_stage_end(sqlite3* db, const std::string& path, const StageInfo& s,
                            int64_t event_id) {
  Stmt up(db, path,
          "UPDATE stages SET ended_at=?, wall_s=?, cpu_s=?, gpu_count=?, gpu_s=?, gpu_busy_s=?, "
          "gpu_peak_mem_bytes=?, energy_j=?, power_metered=?, status=?, stop_event_id=? "
          "WHERE id=?");
  up.bind(1, s.ended_at).bind(2, s.wall_s).bind(3, s.cpu_s).bind(4, int64_t(s.gpu_count));
  up.bind(5, s.gpu_s).bind(6, s.gpu_busy_s).bind(7, s.gpu_peak_mem_bytes).bind(8, s.energy_j);
  up.bind(9, int64_t(s.power_metered ? 1 : 0)).bind(10, s.status).bind(11, event_id);
  up.bind(12, s.id);
  up.run();
}

void Ledger::end_stage(const StageInfo& in) {
  if (in.status != "succeeded" && in.status != "failed" && in.status != "aborted")
    throw LedgerError("end_stage: status must be succeeded, failed or aborted, not '" +
                      in.status + "'");
  for (double v : {in.ended_at, in.wall_s, in.cpu_s, in.gpu_s, in.gpu_busy_s,
                   in.gpu_peak_mem_bytes, in.energy_j})
    require_finite(v, "stage metering value");
  transaction([&] {
    Stmt q(db_, path_, std::string(kStageCols) + "WHERE id=?");
    q.bind(1, in.id);
    if (!q.step()) throw LedgerError(path_ + ": end_stage: no stage " + std::to_string(in.id));
    StageInfo cur = read_stage(q);
    if (cur.status != "running")
      throw LedgerError(path_ + ": stage " + std::to_string(in.id) + " (" + cur.name +
                        ") already ended as " + cur.status);
    StageInfo s = in;
    s.run_id = cur.run_id;
    s.name = cur.name;
    s.started_at = cur.started_at;
    s.node = cur.node;
    if (s.ended_at <= 0) s.ended_at = std::max(now_s(), s.started_at);
    if (s.ended_at < s.started_at) s.ended_at = s.started_at;
    if (s.gpu_s == 0 && s.gpu_count > 0) s.gpu_s = s.gpu_count * s.wall_s;
    int64_t ev = append_event_locked(s.run_id, s.id, keys::kEnd, keys::kStageStop,
                                     dump(to_json(s)), "ledger");
    write_stage_end(db_, path_, s, ev);
    touch_run(s.run_id);
  });
}

std::vector<StageInfo> Ledger::stages(int64_t run_id) const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Stmt q(db_, path_, std::string(kStageCols) + "WHERE run_id=? ORDER BY id");
  q.bind(1, run_id);
  std::vector<StageInfo> out;
  while (q.step()) out.push_back(read_stage(q));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Meter samples

void Ledger::add_meter_samples(const std::vector<MeterSample>& samples) {
  if (samples.empty()) return;
  for (const auto& m : samples)
    for (double v : {m.t, m.wall_s, m.cpu_s, m.busy_s, m.mem_bytes, m.power_w})
      require_finite(v, "meter sample value");
  // One event per (run, stage) group, in the order the samples came.
  std::vector<std::pair<std::pair<int64_t, int64_t>, std::vector<const MeterSample*>>> groups;
  for (const auto& m : samples) {
    auto k = std::make_pair(m.run_id, m.stage_id);
    auto it = std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.first == k; });
    if (it == groups.end()) {
      groups.push_back({k, {}});
      it = groups.end() - 1;
    }
    it->second.push_back(&m);
  }
  transaction([&] {
    for (auto& [k, list] : groups) {
      nlohmann::json arr = nlohmann::json::array();
      for (auto* m : list) arr.push_back(to_json(*m));
      int64_t ev = append_event_locked(k.first, k.second, keys::kPoint, keys::kMeterSamples,
                                       dump(arr), "ledger");
      Stmt ins(db_, path_,
               "INSERT INTO meter_samples(run_id, stage_id, t, device, wall_s, cpu_s, busy_s, "
               "mem_bytes, power_w, event_id) VALUES (?,?,?,?,?,?,?,?,?,?)");
      for (auto* m : list) {
        ins.reset();
        ins.bind(1, m->run_id).bind_id(2, m->stage_id).bind(3, m->t).bind(4, m->device);
        ins.bind(5, m->wall_s).bind(6, m->cpu_s).bind(7, m->busy_s).bind(8, m->mem_bytes);
        ins.bind(9, m->power_w).bind(10, ev);
        ins.run();
      }
      touch_run(k.first);
    }
  });
}

void insert_cost_item_row(sqlite3* db, const std::string& path, const CostItem& c, int64_t ev) {
  Stmt ins(db, path,
           "INSERT INTO cost_items(run_id, category, description, quantity, unit, price_low, "
           "price_mid, price_high, provenance, formula, inputs, source, event_id) "
           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
  ins.bind(1, c.run_id).bind(2, c.category).bind(3, c.description).bind(4, c.quantity);
  ins.bind(5, c.unit).bind(6, c.price_low).bind(7, c.price_mid).bind(8, c.price_high);
  ins.bind(9, to_string(c.provenance)).bind(10, c.formula).bind(11, dump(c.inputs));
  ins.bind(12, c.source).bind(13, ev);
  ins.run();
}

void insert_eval_row(sqlite3* db, const std::string& path, const EvalResult& e, int64_t ev) {
  Stmt ins(db, path,
           "INSERT INTO evals(run_id, model, suite, split, ood, seed, budget, n, correct, "
           "score, ci_low, ci_high, event_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
  ins.bind(1, e.run_id).bind(2, e.model).bind(3, e.suite).bind(4, e.split);
  ins.bind(5, int64_t(e.ood ? 1 : 0)).bind(6, e.seed).bind(7, e.budget).bind(8, e.n);
  ins.bind(9, e.correct).bind(10, e.score).bind(11, e.ci_low).bind(12, e.ci_high);
  ins.bind(13, ev);
  ins.run();
}

MeterSample read_sample(Stmt& q) {
  MeterSample m;
  m.run_id = q.i64(0);
  m.stage_id = q.i64(1);
  m.t = q.f64(2);
  m.device = q.text(3);
  m.wall_s = q.f64(4);
  m.cpu_s = q.f64(5);
  m.busy_s = q.f64(6);
  m.mem_bytes = q.f64(7);
  m.power_w = q.f64(8);
  return m;
}

static const char* kSampleCols =
    "SELECT run_id, coalesce(stage_id,0), t, device, wall_s, cpu_s, busy_s, mem_bytes, power_w "
    "FROM meter_samples ";

std::vector<MeterSample> Ledger::meter_samples(int64_t run_id, int64_t stage_id) const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Stmt q(db_, path_,
         std::string(kSampleCols) +
             (stage_id > 0 ? "WHERE run_id=? AND stage_id=? ORDER BY id" : "WHERE run_id=? ORDER BY id"));
  q.bind(1, run_id);
  if (stage_id > 0) q.bind(2, stage_id);
  std::vector<MeterSample> out;
  while (q.step()) out.push_back(read_sample(q));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cost items, evals, verdicts, artifacts

int64_t Ledger::add_cost_item(const CostItem& c) {
  for (double v : {c.quantity, c.price_low, c.price_mid, c.price_high})
    require_finite(v, "cost item value");
  int64_t id = 0;
  transaction([&] {
    int64_t ev = append_event_locked(c.run_id, 0, keys::kPoint, keys::kCostItem,
                                     dump(to_json(c)), "ledger");
    insert_cost_item_row(db_, path_, c, ev);
    id = sqlite3_last_insert_rowid(db_);
    touch_run(c.run_id);
  });
  return id;
}

static const char* kCostCols =
    "SELECT id, run_id, category, description, quantity, unit, price_low, price_mid, "
    "price_high, provenance, formula, inputs, source FROM cost_items ";

static CostItem read_cost(Stmt& q, const std::string& path) {
  CostItem c;
  c.id = q.i64(0);
  c.run_id = q.i64(1);
  c.category = q.text(2);
  c.description = q.text(3);
  c.quantity = q.f64(4);
  c.unit = q.text(5);
  c.price_low = q.f64(6);
  c.price_mid = q.f64(7);
  c.price_high = q.f64(8);
  c.provenance = parse_provenance(q.text(9));
  c.formula = q.text(10);
  try {
    c.inputs = nlohmann::json::parse(q.text(11));
  } catch (const nlohmann::json::exception& e) {
    throw LedgerError(path + ": cost_items row " + std::to_string(c.id) +
                      ": inputs is not JSON: " + e.what());
  }
  c.source = q.text(12);
  return c;
}

std::vector<CostItem> Ledger::cost_items(int64_t run_id) const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Stmt q(db_, path_, std::string(kCostCols) + "WHERE run_id=? ORDER BY id");
  q.bind(1, run_id);
  std::vector<CostItem> out;
  while (q.step()) out.push_back(read_cost(q, path_));
  return out;
}

int64_t Ledger::add_eval(const EvalResult& e) {
  for (double v : {e.score, e.ci_low, e.ci_high}) require_finite(v, "eval score");
  int64_t id = 0;
  transaction([&] {
    int64_t ev = append_event_locked(e.run_id, 0, keys::kPoint, keys::kEvalResult,
                                     dump(to_json(e)), "ledger");
    insert_eval_row(db_, path_, e, ev);
    id = sqlite3_last_insert_rowid(db_);
    touch_run(e.run_id);
  });
  return id;
}

static const char* kEvalCols =
    "SELECT id, run_id, model, suite, split, ood, seed, budget, n, correct, score, ci_low, "
    "ci_high FROM evals ";

static EvalResult read_eval(Stmt& q) {
  EvalResult e;
  e.id = q.i64(0);
  e.run_id = q.i64(1);
  e.model = q.text(2);
  e.suite = q.text(3);
  e.split = q.text(4);
  e.ood = q.i64(5) != 0;
  e.seed = q.i64(6);
  e.budget = q.i64(7);
  e.n = q.i64(8);
  e.correct = q.i64(9);
  e.score = q.f64(10);
  e.ci_low = q.f64(11);
  e.ci_high = q.f64(12);
  return e;
}

std::vector<EvalResult> Ledger::evals(int64_t run_id) const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Stmt q(db_, path_, std::string(kEvalCols) + "WHERE run_id=? ORDER BY id");
  q.bind(1, run_id);
  std::vector<EvalResult> out;
  while (q.step()) out.push_back(read_eval(q));
  return out;
}

int64_t Ledger::add_verdict(const Verdict& v) {
  int64_t id = 0;
  transaction([&] {
    int64_t ev = append_event_locked(v.run_id, 0, keys::kPoint, keys::kVerdict,
                                     dump(to_json(v)), "ledger");
    Stmt ins(db_, path_,
             "INSERT INTO verdicts(run_id, claim, kind, claimed, measured, verdict, reason, "
             "event_id) VALUES (?,?,?,?,?,?,?,?)");
    ins.bind(1, v.run_id).bind(2, v.claim).bind(3, v.kind).bind(4, v.claimed);
    ins.bind(5, v.measured).bind(6, v.verdict).bind(7, v.reason).bind(8, ev);
    ins.run();
    id = sqlite3_last_insert_rowid(db_);
    touch_run(v.run_id);
  });
  return id;
}

static const char* kVerdictCols =
    "SELECT id, run_id, claim, kind, claimed, measured, verdict, reason FROM verdicts ";

static Verdict read_verdict(Stmt& q) {
  Verdict v;
  v.id = q.i64(0);
  v.run_id = q.i64(1);
  v.claim = q.text(2);
  v.kind = q.text(3);
  v.claimed = q.text(4);
  v.measured = q.text(5);
  v.verdict = q.text(6);
  v.reason = q.text(7);
  return v;
}

std::vector<Verdict> Ledger::verdicts(int64_t run_id) const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Stmt q(db_, path_, std::string(kVerdictCols) + "WHERE run_id=? ORDER BY id");
  q.bind(1, run_id);
  std::vector<Verdict> out;
  while (q.step()) out.push_back(read_verdict(q));
  return out;
}

nlohmann::json artifact_event_json(int64_t run_id, int64_t stage_id, const std::string& name,
                                   const std::string& content) {
  return {{"run_id", run_id},
          {"stage_id", stage_id},
          {"name", name},
          {"content_sha256", sha256_hex(content)},
          {"content_bytes", static_cast<int64_t>(content.size())}};
}

int64_t Ledger::put_artifact(int64_t run_id, int64_t stage_id, const std::string& name,
                             const nlohmann::json& content) {
  std::string text = dump(content);
  int64_t id = 0;
  transaction([&] {
    int64_t ev = append_event_locked(run_id, stage_id, keys::kPoint, keys::kArtifact,
                                     dump(artifact_event_json(run_id, stage_id, name, text)),
                                     "ledger");
    Stmt ins(db_, path_,
             "INSERT INTO artifacts(run_id, stage_id, name, content, event_id) VALUES (?,?,?,?,?)");
    ins.bind(1, run_id).bind_id(2, stage_id).bind(3, name).bind(4, text).bind(5, ev);
    ins.run();
    id = sqlite3_last_insert_rowid(db_);
    touch_run(run_id);
  });
  return id;
}

std::optional<nlohmann::json> Ledger::artifact(int64_t run_id, const std::string& name) const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Stmt q(db_, path_,
         "SELECT content FROM artifacts WHERE run_id=? AND name=? ORDER BY id DESC LIMIT 1");
  q.bind(1, run_id).bind(2, name);
  if (!q.step()) return std::nullopt;
  try {
    return nlohmann::json::parse(q.text(0));
  } catch (const nlohmann::json::exception& e) {
    throw LedgerError(path_ + ": artifact '" + name + "' of run " + std::to_string(run_id) +
                      " is not JSON: " + e.what());
  }
}

std::vector<std::string> Ledger::artifact_names(int64_t run_id) const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Stmt q(db_, path_,
         "SELECT name FROM artifacts WHERE run_id=? GROUP BY name ORDER BY min(id)");
  q.bind(1, run_id);
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.text(0));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Recovery of runs whose process died: mark them aborted, close their open stages with the
// seconds their meter samples (or heartbeat) prove, so those seconds count in the total cost.

void Ledger::abort_run_locked(const RunInfo& r, const std::string& reason) {
  double run_end = std::max(r.heartbeat_at, r.started_at);
  for (StageInfo s : stages(r.id)) {
    if (s.status != "running") continue;
    // The last sample of each device.
    Stmt last(db_, path_,
              std::string(kSampleCols) +
                  "WHERE id IN (SELECT max(id) FROM meter_samples WHERE stage_id=? "
                  "GROUP BY device)");
    last.bind(1, s.id);
    double wall = -1, last_t = 0;
    std::set<std::string> gpus;
    while (last.step()) {
      MeterSample m = read_sample(last);
      wall = std::max(wall, m.wall_s);
      last_t = std::max(last_t, m.t);
      if (m.device == "cpu") {
        s.cpu_s = m.cpu_s;
      } else {
        gpus.insert(m.device);
        s.gpu_busy_s += m.busy_s;
      }
    }
    if (wall < 0) wall = std::max(0.0, r.heartbeat_at - s.started_at);  // no samples
    s.wall_s = wall;
    s.ended_at = s.started_at + wall;
    s.gpu_count = static_cast<int>(gpus.size());
    s.gpu_s = s.gpu_count * s.wall_s;
    // Peak GPU memory and energy (trapezoid over power samples) from all samples.
    Stmt all(db_, path_,
             std::string(kSampleCols) + "WHERE stage_id=? AND device<>'cpu' ORDER BY device, t");
    all.bind(1, s.id);
    std::string prev_dev;
    double prev_t = 0, prev_p = -1;
    while (all.step()) {
      MeterSample m = read_sample(all);
      s.gpu_peak_mem_bytes = std::max(s.gpu_peak_mem_bytes, m.mem_bytes);
      if (m.power_w >= 0) {
        s.power_metered = true;
        if (m.device == prev_dev && prev_p >= 0) s.energy_j += 0.5 * (m.power_w + prev_p) * (m.t - prev_t);
      }
      prev_dev = m.device;
      prev_t = m.t;
      prev_p = m.power_w;
    }
    s.status = "aborted";
    int64_t ev = append_event_locked(r.id, s.id, keys::kEnd, keys::kStageStop,
                                     dump(to_json(s)), "ledger:recovery");
    write_stage_end(db_, path_, s, ev);
    run_end = std::max({run_end, s.ended_at, last_t});
  }
  nlohmann::json v = {{"status", "aborted"}, {"ended_at", run_end}, {"reason", reason}};
  int64_t ev = append_event_locked(r.id, 0, keys::kEnd, keys::kRunAborted, dump(v),
                                   "ledger:recovery");
  Stmt up(db_, path_, "UPDATE runs SET status='aborted', ended_at=?, stop_event_id=? WHERE id=?");
  up.bind(1, run_end).bind(2, ev).bind(3, r.id);
  up.run();
}

std::vector<int64_t> Ledger::recover_aborted(double stale_after_s) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const std::string host = this_host();
  auto dead_reason = [&](const RunInfo& r) -> std::string {
    if (r.host == host && !pid_alive(r.pid))
      return "process " + std::to_string(r.pid) + " on " + host + " is gone";
    double age = now_s() - r.heartbeat_at;
    if (age > stale_after_s) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "heartbeat is %.0f s old (limit %.0f s)", age,
                    stale_after_s);
      return buf;
    }
    return "";
  };
  auto running = [&] {
    std::vector<RunInfo> out;
    Stmt q(db_, path_, std::string(kRunCols) + "WHERE status='running' ORDER BY id");
    while (q.step()) out.push_back(read_run(q));
    return out;
  };
  bool any = false;
  for (const auto& r : running()) any = any || !dead_reason(r).empty();
  std::vector<int64_t> ids;
  if (!any) return ids;
  transaction([&] {
    for (const auto& r : running()) {  // re-read under the write lock
      std::string why = dead_reason(r);
      if (why.empty()) continue;
      abort_run_locked(r, why);
      ids.push_back(r.id);
    }
  });
  return ids;
}

}  // namespace audit::ledger
