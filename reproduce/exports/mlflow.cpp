// The MLflow export: one ledger run written as one run of MLflow's file store (the layout
// mlflow/store/tracking/file_store.py reads; checked with mlflow-skinny 3.17.2's MlflowClient).
// meta.yaml files are written as MLflow 3.17 writes them, with every string double-quoted in
// ASCII JSON escapes (valid YAML); metric files hold "timestamp_ms value step" lines.
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <sys/stat.h>

#include <ftw.h>

#include <toml++/toml.h>

#include "common/errors.h"
#include "common/version.h"
#include "ledger/costs/cost_model.h"
#include "reproduce/exports/exports.h"

namespace audit::exports {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr size_t kMaxParamValue = 6000;  // mlflow/utils/validation.py MAX_PARAM_VAL_LENGTH
constexpr size_t kMaxTagValue = 8000;    // MAX_TAG_VAL_LENGTH
constexpr size_t kMaxKey = 250;          // MAX_ENTITY_KEY_LENGTH

// MLflow's run statuses as stored in meta.yaml (mlflow/entities/run_status.py).
int mlflow_status(ledger::RunStatus s) {
  switch (s) {
    case ledger::RunStatus::running: return 1;    // RUNNING
    case ledger::RunStatus::succeeded: return 3;  // FINISHED
    case ledger::RunStatus::failed: return 4;     // FAILED
    case ledger::RunStatus::aborted: return 5;    // KILLED
  }
  return 1;
}

// A YAML scalar: a double-quoted string with JSON escapes, ASCII only.
std::string yq(const std::string& s) {
  return json(s).dump(-1, ' ', true, json::error_handler_t::replace);
}

// Names MLflow accepts for params, metrics and tags: [/\w.\- :], no path tricks.
std::string safe_key(std::string k) {
  for (char& c : k) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-' || c == ' ' || c == ':' || c == '/';
    if (!ok) c = '_';
  }
  // Slashes make sub-folders in the file store; keep them from forming "." / ".." / "" parts.
  std::string out;
  std::stringstream ss(k);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty() || part == "." || part == "..") part = "_" + part + "_";
    out += (out.empty() ? "" : "/") + part;
  }
  if (out.size() > kMaxKey) out.resize(kMaxKey);
  return out.empty() ? "_" : out;
}

// Cuts a UTF-8 string to at most n bytes without splitting a character.
std::string cut_utf8(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  size_t end = n;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

json toml_to_json(const toml::node& n) {
  if (auto t = n.as_table()) {
    json o = json::object();
    for (const auto& [k, v] : *t) o[std::string(k.str())] = toml_to_json(v);
    return o;
  }
  if (auto a = n.as_array()) {
    json arr = json::array();
    for (const auto& v : *a) arr.push_back(toml_to_json(v));
    return arr;
  }
  if (auto s = n.as_string()) return s->get();
  if (auto i = n.as_integer()) return i->get();
  if (auto f = n.as_floating_point()) return f->get();
  if (auto b = n.as_boolean()) return b->get();
  std::ostringstream os;  // dates and times: their TOML text
  n.visit([&](const auto& v) { os << v; });
  return os.str();
}

void flatten(const toml::node& n, const std::string& prefix, FlatParams& out) {
  if (auto t = n.as_table()) {
    for (const auto& [k, v] : *t)
      flatten(v, prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str()), out);
    return;
  }
  if (auto a = n.as_array()) {
    if (!a->empty() && a->is_array_of_tables()) {
      for (size_t i = 0; i < a->size(); ++i) flatten(*a->get(i), prefix + "." + std::to_string(i), out);
      return;
    }
  }
  const json j = toml_to_json(n);
  std::string v = j.is_string() ? j.get<std::string>() : j.dump();
  const std::string key = safe_key(prefix);
  if (v.size() > kMaxParamValue) {
    v = cut_utf8(v, kMaxParamValue);
    out.truncated.push_back(key);
  }
  out.params.emplace_back(key, v);
}

void write_text(const fs::path& p, const std::string& text) {
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error(p.string() + ": cannot open for writing (check the folder)");
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.close();
  if (!f) throw std::runtime_error(p.string() + ": write failed (disk full?)");
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Removes a folder and what is in it (nftw, links removed, not followed). Not
// std::filesystem::remove_all: it crashes in binaries that link LibTorch (audit-torch has this
// verb too). Throws std::runtime_error naming the first entry it cannot remove.
void remove_folder(const fs::path& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return;
  const int rc = ::nftw(
      dir.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p) == 0 ? 0 : -1; },
      16, FTW_DEPTH | FTW_PHYS);
  if (rc != 0) throw std::runtime_error(dir.string() + ": cannot replace the earlier export");
}

int64_t ms(double unix_s) { return static_cast<int64_t>(std::llround(unix_s * 1000.0)); }

std::string file_uri(const fs::path& p) { return "file://" + p.string(); }

std::string experiment_meta(const std::string& id, const std::string& name, const fs::path& dir,
                            int64_t created_ms) {
  std::string y;
  y += "artifact_location: " + yq(file_uri(dir)) + "\n";
  y += "creation_time: " + std::to_string(created_ms) + "\n";
  y += "effective_trace_archival_retention: null\n";
  y += "experiment_id: " + yq(id) + "\n";
  y += "last_update_time: " + std::to_string(created_ms) + "\n";
  y += "lifecycle_stage: active\n";
  y += "name: " + yq(name) + "\n";
  y += "trace_location: null\n";
  y += "workspace: default\n";
  return y;
}

// The claim's experiment: the folder whose tags/audit.claim holds the claim name, else a new id
// from the claim's SHA-256 (a decimal below 2^60, as MLflow's own ids are large integers).
std::string find_or_make_experiment(const fs::path& root, const std::string& claim,
                                    int64_t created_ms) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    if (!e.is_directory(ec)) continue;
    const fs::path tag = e.path() / "tags" / "audit.claim";
    if (fs::exists(tag, ec) && read_text(tag) == claim) return e.path().filename().string();
  }
  uint64_t v = std::stoull(sha256_hex(claim).substr(0, 15), nullptr, 16);
  std::string id;
  for (;; ++v) {
    id = std::to_string(v);
    if (!fs::exists(root / id, ec)) break;
  }
  const fs::path dir = root / id;
  write_text(dir / "meta.yaml", experiment_meta(id, claim, dir, created_ms));
  write_text(dir / "tags" / "audit.claim", claim);
  return id;
}

struct MetricWriter {
  fs::path dir;
  std::map<std::string, std::string> lines;  // key -> "ts value step\n"...
  size_t points = 0;
  void add(const std::string& key, double value, int64_t ts_ms, int64_t step) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%" PRId64 " %.17g %" PRId64 "\n", ts_ms, value, step);
    lines[safe_key(key)] += buf;
    ++points;
  }
  void flush() {
    for (const auto& [k, text] : lines) write_text(dir / k, text);
  }
};

}  // namespace

FlatParams flatten_recipe(const std::string& toml_text) {
  toml::table t;
  try {
    t = toml::parse(toml_text, std::string("recipe_text"));
  } catch (const toml::parse_error& e) {
    throw InputError("recipe_text", long(e.source().begin.line), long(e.source().begin.column), "",
                     std::string("stored recipe is not TOML: ") + std::string(e.description()));
  }
  FlatParams out;
  flatten(t, "", out);
  return out;
}

std::string run_audit_version(const ledger::Ledger& l, int64_t run_id) {
  for (const auto& e : l.events(run_id)) {
    if (e.key != "environment") continue;
    auto j = json::parse(e.value, nullptr, false);
    if (j.is_object() && j.contains("version") && j["version"].is_string())
      return j["version"].get<std::string>();
  }
  return "";
}

MlflowWritten write_mlflow(const ledger::Ledger& l, int64_t run_id, const std::string& root_arg,
                           const MlflowOptions& opt) {
  auto r = l.run(run_id);
  if (!r) throw ledger::LedgerError(l.path() + ": no run " + std::to_string(run_id));
  std::error_code ec;
  fs::create_directories(root_arg, ec);
  if (!fs::is_directory(root_arg, ec))
    throw std::runtime_error(root_arg + ": cannot create the MLflow tracking folder");
  const fs::path root = fs::absolute(root_arg).lexically_normal();
  const double end_s = r->ended_at > 0 ? r->ended_at : r->heartbeat_at;

  // The Default experiment and the trash folder, as FileStore creates them for a new root.
  if (!fs::exists(root / "0" / "meta.yaml", ec))
    write_text(root / "0" / "meta.yaml", experiment_meta("0", "Default", root / "0", ms(r->started_at)));
  fs::create_directories(root / ".trash", ec);

  MlflowWritten w;
  w.experiment_id = find_or_make_experiment(root, r->name, ms(r->started_at));
  w.run_id = sha256_hex(fs::absolute(l.path()).lexically_normal().string() + "\n" +
                        std::to_string(run_id) + "\n" + std::to_string(ms(r->started_at)))
                 .substr(0, 32);
  const fs::path run_dir = root / w.experiment_id / w.run_id;
  w.run_dir = run_dir.string();
  remove_folder(run_dir);  // an earlier export of the same run is replaced
  const std::string run_name = r->name + " run " + std::to_string(run_id);

  // meta.yaml, as FileStore.create_run + set_terminated write it.
  std::string meta;
  meta += "artifact_uri: " + yq(file_uri(run_dir / "artifacts")) + "\n";
  meta += "end_time: " +
          (r->status == ledger::RunStatus::running ? std::string("null")
                                                   : std::to_string(ms(r->ended_at))) + "\n";
  meta += "entry_point_name: ''\n";
  meta += "experiment_id: " + yq(w.experiment_id) + "\n";
  meta += "lifecycle_stage: active\n";
  meta += "run_id: " + yq(w.run_id) + "\n";
  meta += "run_name: " + yq(run_name) + "\n";
  meta += "source_name: ''\n";
  meta += "source_type: 4\n";  // SourceType.LOCAL
  meta += "source_version: ''\n";
  meta += "start_time: " + std::to_string(ms(r->started_at)) + "\n";
  meta += "status: " + std::to_string(mlflow_status(r->status)) + "\n";
  meta += "tags: []\n";
  meta += "user_id: " + yq("audit") + "\n";
  write_text(run_dir / "meta.yaml", meta);
  fs::create_directories(run_dir / "metrics", ec);
  fs::create_directories(run_dir / "params", ec);
  fs::create_directories(run_dir / "artifacts", ec);

  // Params: the resolved recipe.
  const FlatParams fp = flatten_recipe(r->recipe_text);
  for (const auto& [k, v] : fp.params) write_text(run_dir / "params" / k, v);
  w.params = fp.params.size();

  // Tags.
  std::vector<std::pair<std::string, std::string>> tags = {
      {"mlflow.runName", run_name},
      {"mlflow.source.name", r->recipe_path},
      {"mlflow.source.type", "LOCAL"},
      {"mlflow.user", "audit"},
      {"audit.claim", r->name},
      {"audit.ledger", fs::absolute(l.path()).lexically_normal().string()},
      {"audit.ledger_run_id", std::to_string(run_id)},
      {"audit.recipe_sha256", r->recipe_sha256},
      {"audit.git_commit", r->git_commit},
      {"audit.host", r->host},
      {"audit.device", r->device},
      {"audit.status", ledger::to_string(r->status)},
      {"audit.exported_by", std::string(version()) + " (" + git_commit() + ")"}};
  if (!r->git_commit.empty()) tags.push_back({"mlflow.source.git.commit", r->git_commit});
  const std::string made_with = run_audit_version(l, run_id);
  tags.push_back({"audit.version", made_with.empty() ? "not recorded by the run" : made_with});
  if (!fp.truncated.empty()) {
    std::string t;
    for (const auto& k : fp.truncated) t += (t.empty() ? "" : ",") + k;
    tags.push_back({"audit.params_truncated",
                    t + " (cut at MLflow's 6000-character limit; artifact recipe.toml is whole)"});
  }
  const auto verdicts = l.verdicts(run_id);
  for (size_t i = 0; i < verdicts.size(); ++i) {
    const auto& v = verdicts[i];
    tags.push_back({"audit.verdict." + std::to_string(i + 1),
                    v.verdict + " [" + v.kind + "] " + v.claim + " (claimed " + v.claimed +
                        ", measured " + v.measured + ")"});
  }
  for (const auto& [k, v] : tags) write_text(run_dir / "tags" / safe_key(k), cut_utf8(v, kMaxTagValue));
  w.tags = tags.size();

  // Metrics.
  MetricWriter m;
  m.dir = run_dir / "metrics";
  // Loss curves: per step, timestamped when the curve was stored (its artifact event).
  std::map<std::string, int64_t> artifact_ms;
  for (const auto& e : l.events(run_id)) {
    if (e.key != "artifact") continue;
    auto j = json::parse(e.value, nullptr, false);
    if (j.is_object() && j.contains("name") && j["name"].is_string())
      artifact_ms[j["name"].get<std::string>()] = e.t_us / 1000;
  }
  for (const auto& name : l.artifact_names(run_id)) {
    if (name.rfind("loss_curve/", 0) != 0) continue;
    auto c = l.artifact(run_id, name);
    if (!c || !c->is_object() || !c->contains("step") || !(*c)["step"].is_array()) continue;
    const std::string label = name.substr(11);
    const auto& steps = (*c)["step"];
    const int64_t ts = artifact_ms.count(name) ? artifact_ms[name] : ms(end_s);
    for (const char* series : {"loss", "lr", "tokens_per_s"}) {
      if (!c->contains(series) || !(*c)[series].is_array()) continue;
      const auto& vals = (*c)[series];
      for (size_t i = 0; i < vals.size() && i < steps.size(); ++i)
        if (vals[i].is_number() && steps[i].is_number_integer())
          m.add(std::string(series) + "." + label, vals[i].get<double>(), ts,
                steps[i].get<int64_t>());
    }
  }
  // Stage meters, at the stage's end.
  for (const auto& s : l.stages(run_id)) {
    const int64_t ts = ms(s.ended_at > 0 ? s.ended_at : end_s);
    const std::string p = "stage." + s.name + ".";
    m.add(p + "wall_s", s.wall_s, ts, 0);
    m.add(p + "cpu_s", s.cpu_s, ts, 0);
    m.add(p + "gpu_count", s.gpu_count, ts, 0);
    m.add(p + "gpu_s", s.gpu_s, ts, 0);
    m.add(p + "gpu_busy_s", s.gpu_busy_s, ts, 0);
    m.add(p + "gpu_peak_mem_bytes", s.gpu_peak_mem_bytes, ts, 0);
    if (s.power_metered) {  // energy only where NVML metered it; absent otherwise, never 0
      m.add(p + "energy_j", s.energy_j, ts, 0);
      m.add(p + "energy_kwh", s.energy_j / 3.6e6, ts, 0);
    }
  }
  // Evals: accuracy with its Wilson interval; step = seed.
  for (const auto& e : l.evals(run_id)) {
    std::string p = "eval." + e.model + "." + e.suite + "." + e.split;
    if (e.budget >= 0) p += ".budget" + std::to_string(e.budget);
    const int64_t ts = ms(end_s);
    m.add(p + ".accuracy", e.score, ts, e.seed);
    m.add(p + ".ci_low", e.ci_low, ts, e.seed);
    m.add(p + ".ci_high", e.ci_high, ts, e.seed);
    m.add(p + ".n", double(e.n), ts, e.seed);
    m.add(p + ".correct", double(e.correct), ts, e.seed);
  }
  // Cost totals (ledger/costs cost_totals: the report's totals), USD.
  const auto items = l.cost_items(run_id);
  if (!items.empty()) {
    const auto t = ledger::cost_totals(items);
    const int64_t ts = ms(end_s);
    auto band = [&](const std::string& p, const ledger::Band& b) {
      m.add(p + ".usd_low", b.low, ts, 0);
      m.add(p + ".usd_mid", b.mid, ts, 0);
      m.add(p + ".usd_high", b.high, ts, 0);
    };
    band("cost.full", t.full);
    band("cost.final_run", t.final_run);
    if (t.claimed_known) band("cost.claimed", t.claimed);
    for (const auto& [cat, b] : t.by_category.items())
      if (b.is_array() && b.size() == 3)
        band("cost.category." + cat, {b[0].get<double>(), b[1].get<double>(), b[2].get<double>()});
  }
  m.flush();
  w.metrics = m.lines.size();
  w.metric_points = m.points;

  // Artifacts.
  auto art = [&](const std::string& name, const std::string& bytes) {
    write_text(run_dir / "artifacts" / name, bytes);
    w.artifacts.push_back(name);
  };
  art("recipe.toml", r->recipe_text);
  art("audit_run.json", ledger::export_json(l, run_id));
  if (!opt.report_html.empty()) art(opt.report_name, opt.report_html);
  return w;
}

}  // namespace audit::exports
