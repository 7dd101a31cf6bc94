// Exports of one run from the ledger: JSON (everything, nested), CSV (one table per section,
// each with a "# section" line and a header line), and mllog lines (":::MLLOG {...}", one per
// event: MLPerf's line syntax with audit's own keys; not an MLPerf submission log, see
// docs/ledger.md for the MLPerf rules it cannot meet). docs/ledger.md describes each format.
#include <cstdio>
#include <sstream>

#include "ledger/store/event_keys.h"
#include "ledger/store/ledger.h"
#include "ledger/store/ledger_internal.h"

namespace audit::ledger {
namespace {

nlohmann::json parse_or_text(const std::string& s) {
  auto j = nlohmann::json::parse(s, nullptr, false);
  return j.is_discarded() ? nlohmann::json(s) : j;
}

std::string dump(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

RunInfo need_run(const Ledger& l, int64_t run_id) {
  auto r = l.run(run_id);
  if (!r) throw LedgerError(l.path() + ": no run " + std::to_string(run_id));
  return *r;
}

nlohmann::json event_json(const Event& e) {
  return {{"id", e.id},         {"run_id", e.run_id},   {"stage_id", e.stage_id},
          {"t_us", e.t_us},     {"type", e.type},       {"key", e.key},
          {"value", parse_or_text(e.value)}, {"source", e.source},
          {"prev_hash", e.prev_hash}, {"hash", e.hash}};
}

// Artifacts with their row id and content, read directly (the Ledger API returns by name).
nlohmann::json artifacts_json(const Ledger& l, int64_t run_id) {
  nlohmann::json out = nlohmann::json::array();
  Stmt q(l.handle(), l.path(),
         "SELECT id, coalesce(stage_id,0), name, content, event_id FROM artifacts "
         "WHERE run_id=? ORDER BY id");
  q.bind(1, run_id);
  while (q.step()) {
    std::string content = q.text(3);
    out.push_back({{"id", q.i64(0)},
                   {"stage_id", q.i64(1)},
                   {"name", q.text(2)},
                   {"content_sha256", sha256_hex(content)},
                   {"content", parse_or_text(content)},
                   {"event_id", q.i64(4)}});
  }
  return out;
}

template <class T>
nlohmann::json rows_with_id(const std::vector<T>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json j = to_json(r);
    j["id"] = r.id;
    out.push_back(std::move(j));
  }
  return out;
}

// ---- CSV --------------------------------------------------------------------------------------

std::string csv_field(const nlohmann::json& v) {
  std::string s;
  if (v.is_string()) s = v.get<std::string>();
  else if (v.is_boolean()) s = v.get<bool>() ? "1" : "0";
  else if (v.is_null()) s = "";
  else s = dump(v);
  bool quote = s.find_first_of(",\"\r\n") != std::string::npos ||
               (!s.empty() && (s.front() == ' ' || s.back() == ' ' || s.front() == '#'));
  if (!quote) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

void csv_section(std::ostringstream& out, const std::string& name,
                 const std::vector<std::string>& columns, const nlohmann::json& rows) {
  out << "# " << name << "\n";
  for (size_t i = 0; i < columns.size(); ++i) out << (i ? "," : "") << columns[i];
  out << "\n";
  for (const auto& r : rows) {
    for (size_t i = 0; i < columns.size(); ++i) {
      const auto it = r.find(columns[i]);
      out << (i ? "," : "") << csv_field(it == r.end() ? nlohmann::json() : *it);
    }
    out << "\n";
  }
  out << "\n";
}

}  // namespace

std::string export_json(const Ledger& l, int64_t run_id) {
  RunInfo r = need_run(l, run_id);
  nlohmann::json run = to_json(r);
  run["recipe_text"] = r.recipe_text;
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& s : l.stages(run_id)) {
    nlohmann::json j = to_json(s);
    j["id"] = s.id;
    stages.push_back(std::move(j));
  }
  nlohmann::json events = nlohmann::json::array();
  for (const auto& e : l.events(run_id)) events.push_back(event_json(e));
  nlohmann::json samples = nlohmann::json::array();
  for (const auto& m : l.meter_samples(run_id)) samples.push_back(to_json(m));
  nlohmann::json out = {{"format", "audit-ledger-export/1"},
                        {"ledger", l.path()},
                        {"schema_version", l.schema_version()},
                        {"run", run},
                        {"stages", stages},
                        {"events", events},
                        {"meter_samples", samples},
                        {"cost_items", rows_with_id(l.cost_items(run_id))},
                        {"evals", rows_with_id(l.evals(run_id))},
                        {"verdicts", rows_with_id(l.verdicts(run_id))},
                        {"artifacts", artifacts_json(l, run_id)}};
  return dump(out, 2) + "\n";
}

std::string export_csv(const Ledger& l, int64_t run_id) {
  RunInfo r = need_run(l, run_id);
  std::ostringstream out;
  nlohmann::json run = to_json(r);
  run["recipe_text"] = r.recipe_text;
  csv_section(out, "run",
              {"id", "name", "status", "started_at", "ended_at", "heartbeat_at", "host", "pid",
               "git_commit", "device", "recipe_path", "recipe_sha256", "recipe_text", "node_rank",
               "nnodes", "node_from"},
              nlohmann::json::array({run}));
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& s : l.stages(run_id)) {
    nlohmann::json j = to_json(s);
    j["id"] = s.id;
    stages.push_back(std::move(j));
  }
  csv_section(out, "stages",
              {"id", "run_id", "name", "status", "started_at", "ended_at", "wall_s", "cpu_s",
               "gpu_count", "gpu_s", "gpu_busy_s", "gpu_peak_mem_bytes", "energy_j",
               "power_metered", "node"},
              stages);
  nlohmann::json events = nlohmann::json::array();
  for (const auto& e : l.events(run_id)) {
    nlohmann::json j = event_json(e);
    j["value"] = e.value;  // the exact JSON text that was hashed
    events.push_back(std::move(j));
  }
  csv_section(out, "events",
              {"id", "run_id", "stage_id", "t_us", "type", "key", "value", "source", "prev_hash",
               "hash"},
              events);
  nlohmann::json samples = nlohmann::json::array();
  for (const auto& m : l.meter_samples(run_id)) samples.push_back(to_json(m));
  csv_section(out, "meter_samples",
              {"run_id", "stage_id", "t", "device", "wall_s", "cpu_s", "busy_s", "mem_bytes",
               "power_w"},
              samples);
  csv_section(out, "cost_items",
              {"id", "run_id", "category", "description", "quantity", "unit", "price_low",
               "price_mid", "price_high", "provenance", "formula", "inputs", "source"},
              rows_with_id(l.cost_items(run_id)));
  csv_section(out, "evals",
              {"id", "run_id", "model", "suite", "split", "ood", "seed", "budget", "n",
               "correct", "score", "ci_low", "ci_high"},
              rows_with_id(l.evals(run_id)));
  csv_section(out, "verdicts",
              {"id", "run_id", "claim", "kind", "claimed", "measured", "verdict", "reason"},
              rows_with_id(l.verdicts(run_id)));
  nlohmann::json arts = artifacts_json(l, run_id);
  for (auto& a : arts) a["content"] = dump(a["content"]);
  csv_section(out, "artifacts", {"id", "stage_id", "name", "content_sha256", "content"}, arts);
  return out.str();
}

std::string export_mllog(const Ledger& l, int64_t run_id) {
  need_run(l, run_id);
  std::string out;
  for (const auto& e : l.events(run_id)) {
    const char* type = e.type == keys::kStart ? "INTERVAL_START"
                       : e.type == keys::kEnd ? "INTERVAL_END"
                                              : "POINT_IN_TIME";
    // source is "file:line" when the writer gave one.
    std::string file = e.source;
    int64_t lineno = 0;
    auto colon = e.source.rfind(':');
    if (colon != std::string::npos && colon + 1 < e.source.size() &&
        e.source.size() - colon <= 10 &&
        e.source.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
      file = e.source.substr(0, colon);
      lineno = std::stoll(e.source.substr(colon + 1));
    }
    nlohmann::json value = parse_or_text(e.value);
    nlohmann::json meta = {{"file", file},
                           {"lineno", lineno},
                           {"run_id", e.run_id},
                           {"stage_id", e.stage_id},
                           {"event_id", e.id},
                           {"hash", e.hash}};
    // run_stop is also an MLPerf key, whose rule wants metadata.status ("success" or
    // "aborted"); the ledger's own status stays in the value.
    if (e.key == keys::kRunStop || e.key == keys::kRunAborted) {
      const bool ok = value.is_object() && value.value("status", "") == "succeeded";
      meta["status"] = ok ? "success" : "aborted";
    }
    nlohmann::json line = {{"namespace", ""},
                           {"time_ms", e.t_us / 1000},
                           {"event_type", type},
                           {"key", e.key},
                           {"value", value},
                           {"metadata", meta}};
    out += ":::MLLOG " + dump(line) + "\n";
  }
  return out;
}

}  // namespace audit::ledger
