// Ledger::verify(): walks the events' hash chain, then the invariants binding every structured
// row to the event written with it, and the consistency of runs and stages. Read-only; written
// apart from the writer (ledger.cpp) so that it checks the data, not the code that made it.
#include <map>
#include <set>
#include <unordered_map>

#include "ledger/store/event_keys.h"
#include "ledger/store/ledger.h"
#include "ledger/store/ledger_internal.h"

namespace audit::ledger {
namespace {

std::string row(const char* table, int64_t id) {
  return std::string(table) + " row " + std::to_string(id);
}

struct Checker {
  sqlite3* db;
  const std::string& path;
  VerifyReport rep;

  bool failed() const { return !rep.ok; }
  void fail(int64_t event_id, const std::string& msg) {
    if (!rep.ok) return;  // keep the first
    rep.ok = false;
    rep.first_bad_event = event_id;
    rep.message = msg;
  }

  // ---- the chain ------------------------------------------------------------------------------
  void chain() {
    std::unordered_map<std::string, int64_t> by_hash;
    {
      Stmt q(db, path, "SELECT id, hash FROM events ORDER BY id");
      while (q.step()) by_hash.emplace(q.text(1), q.i64(0));
    }
    Stmt q(db, path,
           "SELECT id, coalesce(run_id,0), coalesce(stage_id,0), t_us, type, key, value, "
           "source, prev_hash, hash FROM events ORDER BY id");
    int64_t prev_id = 0;
    std::string prev_hash = kGenesisHash;
    while (q.step()) {
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
      ++rep.events_checked;
      if (!failed()) {
        if (e.prev_hash != prev_hash) fail(e.id, link_message(e, prev_id, by_hash));
        else if (sha256_hex(canonical_event(e)) != e.hash)
          fail(e.id, row("events", e.id) + ": hash mismatch (row was edited)");
        else if (!nlohmann::json::accept(e.value))
          fail(e.id, row("events", e.id) + ": value is not JSON text");
      }
      prev_id = e.id;
      prev_hash = e.hash;
    }
  }

  // Explains a broken link: where the row's prev_hash points, if anywhere.
  static std::string link_message(const Event& e, int64_t prev_id,
                                  const std::unordered_map<std::string, int64_t>& by_hash) {
    std::string head = row("events", e.id) + ": ";
    if (prev_id == 0) {
      head += "prev_hash is not the genesis hash of the first row";
      auto it = by_hash.find(e.prev_hash);
      if (it != by_hash.end() && it->second > e.id)
        return head + " but points to row " + std::to_string(it->second) +
               ", which comes after it (rows were reordered)";
      return head + (e.id > 1 ? " (rows 1.." + std::to_string(e.id - 1) + " were deleted)"
                              : " (the first row was deleted or replaced)");
    }
    head += "prev_hash does not match row " + std::to_string(prev_id) +
            " (a row was deleted, inserted or reordered)";
    auto it = by_hash.find(e.prev_hash);
    if (it == by_hash.end()) {
      if (e.id > prev_id + 1)
        return head + "; ids jump from " + std::to_string(prev_id) + " to " +
               std::to_string(e.id) + ": " +
               (e.id == prev_id + 2 ? "row " + std::to_string(prev_id + 1) + " was"
                                    : "rows " + std::to_string(prev_id + 1) + ".." +
                                          std::to_string(e.id - 1) + " were") +
               " deleted";
      return head + "; the row it chains to is not in the ledger (row " +
             std::to_string(prev_id) + " was replaced or edited and rehashed, or a row was "
             "deleted and the ids shifted)";
    }
    int64_t k = it->second;
    if (k > e.id)
      return head + "; it points to row " + std::to_string(k) +
             ", which comes after it (rows were reordered)";
    if (k < prev_id)
      return head + "; it points to row " + std::to_string(k) + ", so " +
             (prev_id == k + 1 ? "row " + std::to_string(prev_id) + " was"
                               : "rows " + std::to_string(k + 1) + ".." +
                                     std::to_string(prev_id) + " were") +
             " inserted after it (or rows were reordered)";
    return head;
  }

  // ---- structured rows ------------------------------------------------------------------------
  struct Ev {
    int64_t run_id = 0, stage_id = 0;
    std::string key;
    nlohmann::json value;
  };
  std::optional<Ev> event(int64_t id) {
    Stmt q(db, path,
           "SELECT coalesce(run_id,0), coalesce(stage_id,0), key, value FROM events WHERE id=?");
    q.bind(1, id);
    if (!q.step()) return std::nullopt;
    Ev e;
    e.run_id = q.i64(0);
    e.stage_id = q.i64(1);
    e.key = q.text(2);
    e.value = nlohmann::json::parse(q.text(3), nullptr, false);
    return e;
  }

  // Checks that row `what` (table row id) has an event `ev_id` of key `key` for run `run_id`
  // whose value equals `expect`. Returns false (and records the failure) when it does not.
  bool matches(const std::string& what, int64_t ev_id, bool ev_null, const char* key,
               int64_t run_id, const nlohmann::json& expect, const char* field = "event_id") {
    if (ev_null) {
      fail(0, what + ": " + field + " is empty (the row has no chained event)");
      return false;
    }
    auto e = event(ev_id);
    if (!e) {
      fail(ev_id, what + ": its event " + std::to_string(ev_id) + " is missing");
      return false;
    }
    if (e->key != key) {
      fail(ev_id, what + ": its event " + std::to_string(ev_id) + " is a '" + e->key +
                      "' event, not '" + key + "' (event_id was changed)");
      return false;
    }
    if (e->run_id != run_id) {
      fail(ev_id, what + ": run_id " + std::to_string(run_id) + " differs from its event " +
                      std::to_string(ev_id) + "'s run " + std::to_string(e->run_id) +
                      " (row was edited without its event)");
      return false;
    }
    if (e->value != expect) {
      fail(ev_id, what + ": does not equal its event " + std::to_string(ev_id) +
                      " (row was edited without its event)");
      return false;
    }
    return true;
  }

  // event ids referenced by structured rows, per key
  std::map<std::string, std::set<int64_t>> referenced;

  void runs() {
    Stmt q(db, path,
           "SELECT id, name, recipe_path, recipe_text, recipe_sha256, host, git_commit, device, "
           "started_at, ended_at, heartbeat_at, pid, status, start_event_id, stop_event_id, "
           "start_event_id IS NULL, stop_event_id IS NULL, node_rank, nnodes, node_from "
           "FROM runs ORDER BY id");
    while (q.step() && !failed()) {
      ++rep.rows_checked;
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
      r.node_rank = static_cast<int>(q.i64(17));
      r.nnodes = static_cast<int>(q.i64(18));
      r.node_from = q.text(19);
      std::string status = q.text(12);
      int64_t start_ev = q.i64(13), stop_ev = q.i64(14);
      bool start_null = q.i64(15) != 0, stop_null = q.i64(16) != 0;
      std::string what = row("runs", r.id);
      if (!matches(what, start_ev, start_null, keys::kRunStart, r.id, run_start_json(r),
                   "start_event_id"))
        return;
      referenced[keys::kRunStart].insert(start_ev);
      if (sha256_hex(r.recipe_text) != r.recipe_sha256)
        return fail(start_ev, what + ": recipe_sha256 does not match recipe_text (the recipe "
                                     "text was edited)");
      if (status == "running") {
        if (!stop_null || r.ended_at != 0)
          return fail(0, what + ": status is running but the run has an end");
        continue;
      }
      if (stop_null) return fail(0, what + ": status is " + status + " but it has no end event");
      auto e = event(stop_ev);
      if (!e) return fail(stop_ev, what + ": its end event " + std::to_string(stop_ev) +
                                       " is missing");
      if ((e->key != keys::kRunStop && e->key != keys::kRunAborted) || e->run_id != r.id)
        return fail(stop_ev, what + ": stop_event_id " + std::to_string(stop_ev) +
                                 " is not this run's end event");
      if (!e->value.is_object() || e->value.value("status", "") != status ||
          e->value.value("ended_at", -1.0) != r.ended_at)
        return fail(stop_ev, what + ": status/ended_at differ from its end event " +
                                 std::to_string(stop_ev) + " (row was edited without its event)");
      referenced[e->key].insert(stop_ev);
      if (r.ended_at < r.started_at)
        return fail(stop_ev, what + ": ended_at is before started_at");
    }
  }

  void stages() {
    Stmt q(db, path,
           "SELECT s.id, s.run_id, s.name, s.started_at, s.ended_at, s.wall_s, s.cpu_s, "
           "s.gpu_count, s.gpu_s, s.gpu_busy_s, s.gpu_peak_mem_bytes, s.energy_j, "
           "s.power_metered, s.status, s.node, s.start_event_id, s.stop_event_id, "
           "s.start_event_id IS NULL, s.stop_event_id IS NULL, r.id IS NULL "
           "FROM stages s LEFT JOIN runs r ON r.id = s.run_id ORDER BY s.id");
    while (q.step() && !failed()) {
      ++rep.rows_checked;
      StageInfo s = read_stage(q);
      int64_t start_ev = q.i64(15), stop_ev = q.i64(16);
      bool start_null = q.i64(17) != 0, stop_null = q.i64(18) != 0;
      std::string what = row("stages", s.id);
      if (q.i64(19) != 0)
        return fail(0, what + ": its run " + std::to_string(s.run_id) + " does not exist");
      if (!matches(what, start_ev, start_null, keys::kStageStart, s.run_id,
                   stage_start_json(s), "start_event_id"))
        return;
      referenced[keys::kStageStart].insert(start_ev);
      if (s.status == "running") {
        if (!stop_null) return fail(0, what + ": status is running but it has an end event");
        continue;
      }
      if (!matches(what, stop_ev, stop_null, keys::kStageStop, s.run_id, to_json(s),
                   "stop_event_id"))
        return;
      referenced[keys::kStageStop].insert(stop_ev);
      if (s.ended_at < s.started_at)
        return fail(stop_ev, what + ": ended_at is before started_at");
      if (s.wall_s < 0 || s.cpu_s < 0 || s.gpu_s < 0)
        return fail(stop_ev, what + ": negative metered seconds");
    }
  }

  void samples() {
    Stmt q(db, path,
           "SELECT id, run_id, coalesce(stage_id,0), t, device, wall_s, cpu_s, busy_s, "
           "mem_bytes, power_w, event_id FROM meter_samples ORDER BY event_id, id");
    int64_t cur_ev = -1, first_row = 0, cur_run = 0;
    nlohmann::json batch = nlohmann::json::array();
    auto flush = [&] {
      if (cur_ev < 0 || failed()) return;
      matches(row("meter_samples", first_row) + " (batch of event " + std::to_string(cur_ev) +
                  ")",
              cur_ev, false, keys::kMeterSamples, cur_run, batch);
      referenced[keys::kMeterSamples].insert(cur_ev);
    };
    while (q.step() && !failed()) {
      ++rep.rows_checked;
      MeterSample m;
      int64_t id = q.i64(0);
      m.run_id = q.i64(1);
      m.stage_id = q.i64(2);
      m.t = q.f64(3);
      m.device = q.text(4);
      m.wall_s = q.f64(5);
      m.cpu_s = q.f64(6);
      m.busy_s = q.f64(7);
      m.mem_bytes = q.f64(8);
      m.power_w = q.f64(9);
      int64_t ev = q.i64(10);
      if (ev != cur_ev) {
        flush();
        cur_ev = ev;
        first_row = id;
        cur_run = m.run_id;
        batch = nlohmann::json::array();
      }
      batch.push_back(to_json(m));
    }
    flush();
  }

  void costs() {
    Stmt q(db, path,
           "SELECT id, run_id, category, description, quantity, unit, price_low, price_mid, "
           "price_high, provenance, formula, inputs, source, event_id, event_id IS NULL "
           "FROM cost_items ORDER BY id");
    while (q.step() && !failed()) {
      ++rep.rows_checked;
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
      std::string what = row("cost_items", c.id);
      try {
        c.provenance = parse_provenance(q.text(9));
      } catch (const LedgerError& e) {
        return fail(q.i64(13), what + ": " + e.what());
      }
      c.formula = q.text(10);
      c.inputs = nlohmann::json::parse(q.text(11), nullptr, false);
      if (c.inputs.is_discarded()) return fail(q.i64(13), what + ": inputs is not JSON");
      c.source = q.text(12);
      if (matches(what, q.i64(13), q.i64(14) != 0, keys::kCostItem, c.run_id, to_json(c)))
        referenced[keys::kCostItem].insert(q.i64(13));
    }
  }

  void evals() {
    Stmt q(db, path,
           "SELECT id, run_id, model, suite, split, ood, seed, budget, n, correct, score, "
           "ci_low, ci_high, event_id, event_id IS NULL FROM evals ORDER BY id");
    while (q.step() && !failed()) {
      ++rep.rows_checked;
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
      if (matches(row("evals", e.id), q.i64(13), q.i64(14) != 0, keys::kEvalResult, e.run_id,
                  to_json(e)))
        referenced[keys::kEvalResult].insert(q.i64(13));
    }
  }

  void verdicts() {
    Stmt q(db, path,
           "SELECT id, run_id, claim, kind, claimed, measured, verdict, reason, event_id, "
           "event_id IS NULL FROM verdicts ORDER BY id");
    while (q.step() && !failed()) {
      ++rep.rows_checked;
      Verdict v;
      v.id = q.i64(0);
      v.run_id = q.i64(1);
      v.claim = q.text(2);
      v.kind = q.text(3);
      v.claimed = q.text(4);
      v.measured = q.text(5);
      v.verdict = q.text(6);
      v.reason = q.text(7);
      if (matches(row("verdicts", v.id), q.i64(8), q.i64(9) != 0, keys::kVerdict, v.run_id,
                  to_json(v)))
        referenced[keys::kVerdict].insert(q.i64(8));
    }
  }

  void artifacts() {
    Stmt q(db, path,
           "SELECT id, run_id, coalesce(stage_id,0), name, content, event_id, event_id IS NULL "
           "FROM artifacts ORDER BY id");
    while (q.step() && !failed()) {
      ++rep.rows_checked;
      int64_t id = q.i64(0), run_id = q.i64(1);
      if (matches(row("artifacts", id), q.i64(5), q.i64(6) != 0, keys::kArtifact, run_id,
                  artifact_event_json(run_id, q.i64(2), q.text(3), q.text(4))))
        referenced[keys::kArtifact].insert(q.i64(5));
    }
  }

  // Every event that announces a structured row must still have that row.
  void orphans() {
    static const std::map<std::string, const char*> table = {
        {keys::kRunStart, "runs"},          {keys::kRunStop, "runs"},
        {keys::kRunAborted, "runs"},        {keys::kStageStart, "stages"},
        {keys::kStageStop, "stages"},       {keys::kMeterSamples, "meter_samples"},
        {keys::kCostItem, "cost_items"},    {keys::kEvalResult, "evals"},
        {keys::kVerdict, "verdicts"},       {keys::kArtifact, "artifacts"}};
    Stmt q(db, path,
           "SELECT id, key FROM events WHERE key IN ('run_start','run_stop','run_aborted',"
           "'stage_start','stage_stop','meter_samples','cost_item','eval_result','verdict',"
           "'artifact') ORDER BY id");
    while (q.step() && !failed()) {
      int64_t id = q.i64(0);
      std::string key = q.text(1);
      if (!referenced[key].count(id))
        fail(id, row("events", id) + " (" + key + "): no " + table.at(key) +
                     " row refers to it (the row was deleted or its event_id changed)");
    }
  }

  // Events whose stage belongs to another run; foreign keys that point nowhere.
  void references() {
    {
      Stmt q(db, path,
             "SELECT e.id, e.stage_id, s.run_id, e.run_id FROM events e JOIN stages s "
             "ON s.id = e.stage_id WHERE s.run_id IS NOT e.run_id ORDER BY e.id LIMIT 1");
      if (q.step())
        return fail(q.i64(0), row("events", q.i64(0)) + ": its stage " +
                                  std::to_string(q.i64(1)) + " belongs to run " +
                                  std::to_string(q.i64(2)) + ", not run " +
                                  std::to_string(q.i64(3)));
    }
    Stmt fk(db, path, "PRAGMA foreign_key_check");
    if (fk.step())
      fail(0, row(fk.text(0).c_str(), fk.i64(1)) + ": refers to a missing " + fk.text(2) +
                  " row (foreign key)");
  }
};

}  // namespace

VerifyReport Ledger::verify() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  // One read transaction, so a concurrent writer cannot show us half a commit.
  const bool own_tx = tx_depth_ == 0;
  if (own_tx) exec(db_, path_, "BEGIN");
  Checker c{db_, path_, {}, {}};
  try {
    {
      Stmt q(db_, path_, "PRAGMA quick_check");
      std::string first = q.step() ? q.text(0) : "no answer";
      if (first != "ok") c.fail(0, "database structure is damaged (PRAGMA quick_check): " + first);
    }
    if (!c.failed()) c.chain();
    if (!c.failed()) c.runs();
    if (!c.failed()) c.stages();
    if (!c.failed()) c.samples();
    if (!c.failed()) c.costs();
    if (!c.failed()) c.evals();
    if (!c.failed()) c.verdicts();
    if (!c.failed()) c.artifacts();
    if (!c.failed()) c.orphans();
    if (!c.failed()) c.references();
  } catch (...) {
    if (own_tx) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  if (own_tx) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  if (c.rep.ok)
    c.rep.message = "ledger OK: " + std::to_string(c.rep.events_checked) + " events, " +
                    std::to_string(c.rep.rows_checked) + " rows checked";
  return c.rep;
}

}  // namespace audit::ledger
