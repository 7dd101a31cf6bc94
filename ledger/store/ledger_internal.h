// Internals shared by the ledger's own sources (ledger.cpp, verify.cpp, export.cpp): a small
// RAII wrapper over sqlite3 statements whose errors name the ledger file, and the canonical
// JSON of the events that are not a whole row. Not for use outside ledger/.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "ledger/store/ledger.h"

namespace audit::ledger {

// One prepared statement. Every failure throws LedgerError naming the file and the SQL error.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& path, const std::string& sql) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st_, nullptr) != SQLITE_OK)
      fail("prepare");
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v) { return check(sqlite3_bind_int64(st_, i, v)); }
  Stmt& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, double v) { return check(sqlite3_bind_double(st_, i, v)); }
  Stmt& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()),
                                   SQLITE_TRANSIENT));
  }
  Stmt& bind(int i, const char* v) { return bind(i, std::string(v)); }
  // An id where 0 means "none": bound as NULL.
  Stmt& bind_id(int i, int64_t v) {
    return v > 0 ? bind(i, v) : check(sqlite3_bind_null(st_, i));
  }

  // One step: true when a row is ready.
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("step");
    return false;
  }
  void run() {
    while (step()) {
    }
  }
  void reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }

  int64_t i64(int c) const { return sqlite3_column_int64(st_, c); }
  double f64(int c) const { return sqlite3_column_double(st_, c); }
  bool is_null(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
  std::string text(int c) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, c));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, c))) : std::string();
  }
  sqlite3_stmt* get() const { return st_; }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK) fail("bind");
    return *this;
  }
  [[noreturn]] void fail(const char* what) {
    std::string msg = sqlite3_errmsg(db_);
    int code = sqlite3_extended_errcode(db_);
    std::string sql = st_ ? sqlite3_sql(st_) : "";
    if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED)
      throw LedgerError(path_ + ": ledger is busy (another process holds it longer than the "
                                "busy timeout): " + msg);
    if ((code & 0xff) == SQLITE_NOTADB || (code & 0xff) == SQLITE_CORRUPT)
      throw LedgerError(path_ + ": ledger file is damaged or not a database: " + msg);
    throw LedgerError(path_ + ": SQL " + what + " failed: " + msg +
                      (sql.empty() ? "" : " [" + sql.substr(0, 120) + "]"));
  }

  sqlite3* db_;
  std::string path_;
  sqlite3_stmt* st_ = nullptr;
};

// Runs SQL text with no results (may hold several statements).
inline void exec(sqlite3* db, const std::string& path, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    int code = sqlite3_extended_errcode(db) & 0xff;
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
      throw LedgerError(path + ": ledger is busy (another process holds it longer than the "
                               "busy timeout): " + msg);
    throw LedgerError(path + ": " + msg + " [" + sql.substr(0, 80) + "]");
  }
}

// The value of a run_start event: the run's fields that never change after it starts.
nlohmann::json run_start_json(const RunInfo& r);
// The value of a stage_start event.
nlohmann::json stage_start_json(const StageInfo& s);
// The value of an artifact event: names the content by its SHA-256 and size.
nlohmann::json artifact_event_json(int64_t run_id, int64_t stage_id, const std::string& name,
                                   const std::string& content);

// A stages row from columns 0..14 in this order: id, run_id, name, started_at, ended_at,
// wall_s, cpu_s, gpu_count, gpu_s, gpu_busy_s, gpu_peak_mem_bytes, energy_j, power_metered,
// status, node (ledger.cpp's reader; verify.cpp reads its rows with it too).
StageInfo read_stage(Stmt& q);

// The runs columns in the order read_run() reads them (a SELECT's column list, no FROM).
inline constexpr const char* kRunColumns =
    "id, name, recipe_path, recipe_text, recipe_sha256, host, git_commit, device, started_at, "
    "ended_at, heartbeat_at, pid, status, node_rank, nnodes, node_from";
// A runs row from the columns of kRunColumns (0..15).
RunInfo read_run(Stmt& q);
// A meter_samples row from a SELECT of run_id, coalesce(stage_id, 0), t, device, wall_s, cpu_s,
// busy_s, mem_bytes, power_w, in that order.
MeterSample read_sample(Stmt& q);
// The cost_items and evals rows of c and e, chained through event ev (add_cost_item, add_eval and
// the merge of node ledgers write them so).
void insert_cost_item_row(sqlite3* db, const std::string& path, const CostItem& c, int64_t ev);
void insert_eval_row(sqlite3* db, const std::string& path, const EvalResult& e, int64_t ev);

// Appends one event to the chain (after the current last event) at time t_us and returns its
// id; the caller holds the write transaction. Ledger::append_event uses it with the current
// time; `audit ledger merge` (merge.cpp) with each source event's own time.
int64_t append_chained_event(sqlite3* db, const std::string& path, int64_t run_id,
                             int64_t stage_id, int64_t t_us, const std::string& type,
                             const std::string& key, const std::string& value,
                             const std::string& source);

// JSON text as every ledger writer dumps it (keys sorted, invalid UTF-8 replaced).
std::string dump_json(const nlohmann::json& j);

}  // namespace audit::ledger
