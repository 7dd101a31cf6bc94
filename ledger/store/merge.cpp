// Several nodes: resolve_node_rank (what `audit run --node-rank` records) and merge_ledgers
// (`audit ledger merge`). The rules are in merge.h; docs/launch.md, "Several nodes" shows the use.
#include "ledger/store/merge.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include <unistd.h>

#include "common/errors.h"
#include "ledger/store/event_keys.h"
#include "ledger/store/ledger_internal.h"

namespace audit::ledger {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// The node rank of a run

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

namespace {

int whole_number(const std::string& text, const std::string& where) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || v < -1000000 || v > 1000000)
    throw InputError(where, 0, 0, where, "'" + text + "' is not a whole number");
  return static_cast<int>(v);
}

}  // namespace

NodeRank resolve_node_rank(std::optional<int> flag_rank, std::optional<int> flag_nnodes,
                           const EnvLookup& env) {
  NodeRank n;
  std::string rank_key, count_key;
  if (flag_rank) {
    n.rank = *flag_rank;
    rank_key = "--node-rank";
    n.from = "--node-rank " + std::to_string(n.rank);
  } else {
    static const std::pair<const char*, const char*> kVars[] = {
        {"GROUP_RANK", "GROUP_WORLD_SIZE"}, {"NODE_RANK", nullptr},
        {"SLURM_NODEID", "SLURM_NNODES"}};
    for (const auto& [rank_var, count_var] : kVars) {
      auto v = env(rank_var);
      if (!v) continue;
      rank_key = rank_var;
      n.rank = whole_number(*v, rank_var);
      n.from = std::string(rank_var) + "=" + *v;
      n.nnodes = 0;
      if (count_var && !flag_nnodes) {
        if (auto c = env(count_var)) {
          count_key = count_var;
          n.nnodes = whole_number(*c, count_var);
          n.from += std::string(" ") + count_var + "=" + *c;
        }
      }
      break;
    }
  }
  if (flag_nnodes) {
    if (rank_key.empty())
      throw InputError("--nnodes", 0, 0, "--nnodes",
                       "--nnodes needs a node rank: pass --node-rank K (or set NODE_RANK, "
                       "GROUP_RANK or SLURM_NODEID)");
    count_key = "--nnodes";
    n.nnodes = *flag_nnodes;
    n.from += " --nnodes " + std::to_string(n.nnodes);
  } else if (!rank_key.empty() && count_key.empty()) {
    n.nnodes = 0;  // a rank without a count
  }
  if (rank_key.empty()) return NodeRank{};
  if (n.rank < 0)
    throw InputError(rank_key, 0, 0, rank_key,
                     "node rank " + std::to_string(n.rank) + " is negative (ranks count from 0)");
  if (!count_key.empty() && n.nnodes < 1)
    throw InputError(count_key, 0, 0, count_key,
                     "node count " + std::to_string(n.nnodes) + " must be at least 1");
  if (n.nnodes > 0 && n.rank >= n.nnodes)
    throw InputError(rank_key, 0, 0, rank_key,
                     "node rank " + std::to_string(n.rank) + " is not below the node count " +
                         std::to_string(n.nnodes) + " (" + count_key + "; ranks are 0.." +
                         std::to_string(n.nnodes - 1) + ")");
  return n;
}

// ---------------------------------------------------------------------------------------------
// The merge

namespace {

// 0 succeeded, 1 failed, 2 aborted: the merged run takes the largest.
int severity(RunStatus s) {
  switch (s) {
    case RunStatus::succeeded: return 0;
    case RunStatus::failed: return 1;
    case RunStatus::aborted: return 2;
    case RunStatus::running: return 3;
  }
  return 3;
}

// One input, opened read-only, with its run.
struct Node {
  MergeInput in;
  std::unique_ptr<Ledger> l;
  RunInfo run;
  std::vector<Event> events;
  std::string head_hash;
  std::map<int64_t, CostItem> costs;   // by row id
  std::map<int64_t, EvalResult> evals;
  int rank() const { return run.node_rank; }
};

// A structured row's canonical JSON without its run id: what "the same line on two nodes" means.
nlohmann::json without_run(nlohmann::json j) {
  j.erase("run_id");
  return j;
}

// A line this node metered (or derived from one of its stages): kept per node.
bool per_node_cost(const CostItem& c) {
  return c.provenance == Provenance::measured ||
         (c.inputs.is_object() && c.inputs.contains("stage"));
}

std::string join_distinct(const std::vector<Node>& nodes, std::string RunInfo::*field) {
  std::vector<std::string> seen;
  for (const auto& n : nodes) {
    const std::string& v = n.run.*field;
    if (!v.empty() && std::find(seen.begin(), seen.end(), v) == seen.end()) seen.push_back(v);
  }
  std::string out;
  for (const auto& v : seen) out += (out.empty() ? "" : ",") + v;
  return out;
}

std::string node_name(int rank) { return "node" + std::to_string(rank); }

// Rows of the source ledger, looked up by the event that wrote them.
std::vector<MeterSample> samples_of_event(const Ledger& l, int64_t ev) {
  Stmt q(l.handle(), l.path(),
         "SELECT run_id, coalesce(stage_id,0), t, device, wall_s, cpu_s, busy_s, mem_bytes, "
         "power_w FROM meter_samples WHERE event_id=? ORDER BY id");
  q.bind(1, ev);
  std::vector<MeterSample> out;
  while (q.step()) out.push_back(read_sample(q));
  return out;
}

std::optional<StageInfo> stage_of_event(const Ledger& l, int64_t ev, bool start) {
  Stmt q(l.handle(), l.path(),
         std::string("SELECT id, run_id, name, started_at, ended_at, wall_s, cpu_s, gpu_count, "
                     "gpu_s, gpu_busy_s, gpu_peak_mem_bytes, energy_j, power_metered, status, "
                     "node FROM stages WHERE ") +
             (start ? "start_event_id=?" : "stop_event_id=?"));
  q.bind(1, ev);
  if (!q.step()) return std::nullopt;
  return read_stage(q);
}

// The id of the row of `table` written with event ev (0 when none).
int64_t row_of_event(const Ledger& l, const char* table, int64_t ev) {
  Stmt q(l.handle(), l.path(), std::string("SELECT id FROM ") + table + " WHERE event_id=?");
  q.bind(1, ev);
  return q.step() ? q.i64(0) : 0;
}

struct Artifact {
  int64_t stage_id = 0;
  std::string name, content;
};
std::optional<Artifact> artifact_of_event(const Ledger& l, int64_t ev) {
  Stmt q(l.handle(), l.path(),
         "SELECT coalesce(stage_id,0), name, content FROM artifacts WHERE event_id=?");
  q.bind(1, ev);
  if (!q.step()) return std::nullopt;
  return Artifact{q.i64(0), q.text(1), q.text(2)};
}

void refuse(const std::string& file, const std::string& key, const std::string& msg) {
  throw InputError(file, 0, 0, key, msg);
}

void remove_ledger_files(const std::string& path) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(path + suffix, ec);
}

// The writer of the merged run: raw rows and chained events on the new ledger, inside one
// transaction held by the caller.
struct Writer {
  Ledger& out;
  int64_t run_id = 0;

  sqlite3* db() const { return out.handle(); }
  const std::string& path() const { return out.path(); }

  int64_t event(int64_t stage_id, int64_t t_us, const std::string& type, const std::string& key,
                const std::string& value, const std::string& source) {
    return append_chained_event(db(), path(), run_id, stage_id, t_us, type, key, value, source);
  }

  int64_t cost_item(CostItem c, int64_t t_us, const std::string& source) {
    c.run_id = run_id;
    int64_t ev = event(0, t_us, keys::kPoint, keys::kCostItem, dump_json(to_json(c)), source);
    insert_cost_item_row(db(), path(), c, ev);
    return ev;
  }

  void eval(EvalResult e, int64_t t_us, const std::string& source) {
    e.run_id = run_id;
    int64_t ev = event(0, t_us, keys::kPoint, keys::kEvalResult, dump_json(to_json(e)), source);
    insert_eval_row(db(), path(), e, ev);
  }

  void artifact(int64_t stage_id, const std::string& name, const std::string& content,
                int64_t t_us, const std::string& source) {
    int64_t ev = event(stage_id, t_us, keys::kPoint, keys::kArtifact,
                       dump_json(artifact_event_json(run_id, stage_id, name, content)), source);
    Stmt ins(db(), path(),
             "INSERT INTO artifacts(run_id, stage_id, name, content, event_id) "
             "VALUES (?,?,?,?,?)");
    ins.bind(1, run_id).bind_id(2, stage_id).bind(3, name).bind(4, content).bind(5, ev);
    ins.run();
  }
};

int64_t now_us() { return static_cast<int64_t>(now_s() * 1e6); }

}  // namespace

MergeResult merge_ledgers(const MergeOptions& o) {
  // ---- the inputs and the refusals ----
  if (o.inputs.size() < 2)
    refuse(o.inputs.empty() ? "ledger merge" : o.inputs[0].path, "LEDGER",
           "ledger merge joins two or more node ledgers (got " +
               std::to_string(o.inputs.size()) + ")");
  if (o.out.empty()) refuse("--out", "--out", "give the merged ledger's path with --out");
  std::error_code ec;
  for (const auto& in : o.inputs) {
    if (!fs::is_regular_file(in.path, ec))
      refuse(in.path, "LEDGER", "no such ledger file");
    if (fs::exists(o.out, ec) && fs::equivalent(in.path, o.out, ec))
      refuse(o.out, "--out", "--out is one of the ledgers being merged; give a new file");
  }
  if (fs::exists(o.out, ec) && !o.force)
    refuse(o.out, "--out", "exists; pass --force to replace it, or give a new file");

  std::vector<Node> nodes;
  for (const auto& in : o.inputs) {
    Node n;
    n.in = in;
    n.l = std::make_unique<Ledger>(in.path, OpenMode::read_only);
    VerifyReport rep = n.l->verify();
    if (!rep.ok)
      refuse(in.path, "LEDGER",
             "fails verification (" + rep.message + "); a node ledger that does not verify is "
             "not merged (audit ledger verify --ledger " + in.path + ")");
    n.run = *n.l->run(resolve_run(*n.l, in.run));
    const std::string which = "run " + std::to_string(n.run.id);
    if (n.run.status == RunStatus::running)
      refuse(in.path, "RUN",
             which + " is still running (or died and no writer has marked it aborted yet: "
                     "`audit ledger list --ledger " + in.path + "` on its host marks it); "
                     "merge finished runs");
    if (n.run.node_rank < 0)
      refuse(in.path, "RUN",
             which + " has no node rank: each node's run needs `audit run --node-rank K` (or "
                     "NODE_RANK, GROUP_RANK or SLURM_NODEID set)");
    n.events = n.l->events(n.run.id);
    for (auto& c : n.l->cost_items(n.run.id)) n.costs.emplace(c.id, c);
    for (auto& e : n.l->evals(n.run.id)) n.evals.emplace(e.id, e);
    {
      Stmt q(n.l->handle(), in.path, "SELECT hash FROM events ORDER BY id DESC LIMIT 1");
      if (q.step()) n.head_hash = q.text(0);
    }
    nodes.push_back(std::move(n));
  }
  for (size_t i = 1; i < nodes.size(); ++i) {
    const Node& a = nodes[0];
    const Node& b = nodes[i];
    if (b.run.recipe_sha256 != a.run.recipe_sha256)
      refuse(b.in.path, "recipe_sha256",
             "run " + std::to_string(b.run.id) + " ran recipe sha256 " +
                 b.run.recipe_sha256.substr(0, 12) + ", but run " + std::to_string(a.run.id) +
                 " of " + a.in.path + " ran " + a.run.recipe_sha256.substr(0, 12) +
                 ": the nodes of one run run the same recipe");
  }
  for (size_t i = 0; i < nodes.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (nodes[i].rank() == nodes[j].rank())
        refuse(nodes[i].in.path, "node_rank",
               "run " + std::to_string(nodes[i].run.id) + " has node rank " +
                   std::to_string(nodes[i].rank()) + ", the same as run " +
                   std::to_string(nodes[j].run.id) + " of " + nodes[j].in.path +
                   " (each node runs with its own --node-rank)");
  for (const auto& n : nodes)
    if (n.run.nnodes > 0 && size_t(n.run.nnodes) != nodes.size())
      refuse(n.in.path, "nnodes",
             "run " + std::to_string(n.run.id) + " was one of " + std::to_string(n.run.nnodes) +
                 " nodes, but " + std::to_string(nodes.size()) +
                 " ledgers were given: merge every node's ledger");
  std::sort(nodes.begin(), nodes.end(),
            [](const Node& a, const Node& b) { return a.rank() < b.rank(); });

  MergeResult res;
  // ---- what is kept: shared cost lines and evals from one rank each ----
  int shared_costs_from = -1;
  std::vector<nlohmann::json> shared_lines;  // canonical JSON without run_id, of that rank
  for (const auto& n : nodes) {
    for (const auto& c : n.l->cost_items(n.run.id))
      if (!per_node_cost(c)) {
        if (shared_costs_from < 0) shared_costs_from = n.rank();
        if (shared_costs_from == n.rank()) shared_lines.push_back(without_run(to_json(c)));
      }
    if (res.evals_from < 0 && !n.l->evals(n.run.id).empty()) res.evals_from = n.rank();
  }
  std::vector<nlohmann::json> eval_rows;  // of evals_from, without run_id
  for (const auto& n : nodes)
    if (n.rank() == res.evals_from)
      for (const auto& e : n.l->evals(n.run.id)) eval_rows.push_back(without_run(to_json(e)));
  // Artifacts of the lowest rank, by name -> content hashes.
  std::map<std::string, std::set<std::string>> primary_artifacts;
  {
    Stmt q(nodes[0].l->handle(), nodes[0].in.path,
           "SELECT name, content FROM artifacts WHERE run_id=?");
    q.bind(1, nodes[0].run.id);
    while (q.step()) primary_artifacts[q.text(0)].insert(sha256_hex(q.text(1)));
  }

  // ---- the new ledger, written beside --out and moved into place when complete ----
  const std::string tmp = o.out + ".merging-" + std::to_string(::getpid());
  remove_ledger_files(tmp);
  try {
    {
      Ledger out(tmp);
      Writer w{out, 0};
      out.transaction([&] {
        RunInfo r;
        r.name = nodes[0].run.name;
        r.recipe_path = nodes[0].run.recipe_path;
        r.recipe_text = nodes[0].run.recipe_text;
        r.recipe_sha256 = nodes[0].run.recipe_sha256;
        r.host = join_distinct(nodes, &RunInfo::host);
        r.git_commit = join_distinct(nodes, &RunInfo::git_commit);
        r.device = join_distinct(nodes, &RunInfo::device);
        r.started_at = nodes[0].run.started_at;
        r.ended_at = nodes[0].run.ended_at;
        r.status = RunStatus::succeeded;
        int64_t start_us = INT64_MAX, stop_us = 0;
        for (const auto& n : nodes) {
          r.started_at = std::min(r.started_at, n.run.started_at);
          r.ended_at = std::max(r.ended_at, n.run.ended_at);
          if (severity(n.run.status) > severity(r.status)) r.status = n.run.status;
          for (const auto& e : n.events) {
            if (e.key == keys::kRunStart) start_us = std::min(start_us, e.t_us);
            if (e.key == keys::kRunStop || e.key == keys::kRunAborted)
              stop_us = std::max(stop_us, e.t_us);
          }
        }
        if (start_us == INT64_MAX) start_us = static_cast<int64_t>(r.started_at * 1e6);
        if (stop_us < start_us) stop_us = static_cast<int64_t>(r.ended_at * 1e6);
        r.heartbeat_at = r.ended_at;
        r.pid = 0;
        r.node_rank = -1;
        r.nnodes = static_cast<int>(nodes.size());
        r.node_from = "merge";
        {
          Stmt ins(out.handle(), tmp,
                   "INSERT INTO runs(name, recipe_path, recipe_text, recipe_sha256, host, "
                   "git_commit, device, started_at, ended_at, heartbeat_at, pid, status, "
                   "node_rank, nnodes, node_from) VALUES (?,?,?,?,?,?,?,?,0,?,?,'running',?,?,?)");
          ins.bind(1, r.name).bind(2, r.recipe_path).bind(3, r.recipe_text);
          ins.bind(4, r.recipe_sha256).bind(5, r.host).bind(6, r.git_commit).bind(7, r.device);
          ins.bind(8, r.started_at).bind(9, r.started_at).bind(10, r.pid);
          ins.bind(11, r.node_rank).bind(12, r.nnodes).bind(13, r.node_from);
          ins.run();
        }
        r.id = sqlite3_last_insert_rowid(out.handle());
        w.run_id = r.id;
        res.run_id = r.id;
        res.status = r.status;
        const int64_t start_ev = w.event(0, start_us, keys::kStart, keys::kRunStart,
                                         dump_json(run_start_json(r)), "ledger merge");
        {
          Stmt up(out.handle(), tmp, "UPDATE runs SET start_event_id=? WHERE id=?");
          up.bind(1, start_ev).bind(2, r.id);
          up.run();
        }

        // ---- the events of every node, merged by time (each node's own order kept) ----
        std::vector<size_t> next(nodes.size(), 0);
        std::vector<std::map<int64_t, int64_t>> stage_map(nodes.size());  // src -> new
        std::vector<std::vector<nlohmann::json>> dropped_evals(nodes.size()),
            dropped_costs(nodes.size());
        std::vector<int64_t> per_node_costs(nodes.size(), 0);
        std::vector<int64_t> last_us(nodes.size(), 0);
        for (;;) {
          size_t k = nodes.size();
          for (size_t i = 0; i < nodes.size(); ++i)
            if (next[i] < nodes[i].events.size() &&
                (k == nodes.size() ||
                 nodes[i].events[next[i]].t_us < nodes[k].events[next[k]].t_us))
              k = i;
          if (k == nodes.size()) break;
          Node& n = nodes[k];
          const Event& e = n.events[next[k]++];
          ++res.events_in;
          last_us[k] = e.t_us;
          const int rank = n.rank();
          const std::string src = node_name(rank) + "/" + e.source;
          auto stage = [&](int64_t sid) -> int64_t {
            if (sid <= 0) return 0;
            auto it = stage_map[k].find(sid);
            if (it == stage_map[k].end())
              throw LedgerError(n.in.path + ": event " + std::to_string(e.id) +
                                " names stage " + std::to_string(sid) +
                                " before its stage_start");
            return it->second;
          };
          if (e.key == keys::kRunStart || e.key == keys::kRunStop || e.key == keys::kRunAborted)
            continue;  // the merged run has its own
          if (e.key == keys::kVerdict) {
            ++res.verdicts_dropped;
            continue;
          }
          if (e.key == keys::kStageStart) {
            auto s = stage_of_event(*n.l, e.id, true);
            if (!s) throw LedgerError(n.in.path + ": stage_start event " + std::to_string(e.id) +
                                      " has no stage row");
            StageInfo ns;
            ns.run_id = r.id;
            ns.name = s->name;
            ns.started_at = s->started_at;
            ns.node = rank;
            Stmt ins(out.handle(), tmp,
                     "INSERT INTO stages(run_id, name, started_at, status, node) "
                     "VALUES (?,?,?,'running',?)");
            ins.bind(1, r.id).bind(2, ns.name).bind(3, ns.started_at).bind(4, rank);
            ins.run();
            ns.id = sqlite3_last_insert_rowid(out.handle());
            stage_map[k][s->id] = ns.id;
            int64_t ev = w.event(ns.id, e.t_us, e.type, e.key, dump_json(stage_start_json(ns)),
                                 src);
            Stmt up(out.handle(), tmp, "UPDATE stages SET start_event_id=? WHERE id=?");
            up.bind(1, ev).bind(2, ns.id);
            up.run();
            ++res.stages;
            continue;
          }
          if (e.key == keys::kStageStop) {
            auto s = stage_of_event(*n.l, e.id, false);
            if (!s) {
              // A stage_stop whose stage row points at a later stop (cannot happen in a
              // verified ledger, where every stage_stop is referenced): keep it as a free event.
              w.event(stage(e.stage_id), e.t_us, e.type, "stage_stop_unreferenced", e.value, src);
              continue;
            }
            StageInfo ns = *s;
            ns.id = stage(s->id);
            ns.run_id = r.id;
            ns.node = rank;
            int64_t ev = w.event(ns.id, e.t_us, e.type, e.key, dump_json(to_json(ns)), src);
            Stmt up(out.handle(), tmp,
                    "UPDATE stages SET ended_at=?, wall_s=?, cpu_s=?, gpu_count=?, gpu_s=?, "
                    "gpu_busy_s=?, gpu_peak_mem_bytes=?, energy_j=?, power_metered=?, status=?, "
                    "stop_event_id=? WHERE id=?");
            up.bind(1, ns.ended_at).bind(2, ns.wall_s).bind(3, ns.cpu_s);
            up.bind(4, int64_t(ns.gpu_count)).bind(5, ns.gpu_s).bind(6, ns.gpu_busy_s);
            up.bind(7, ns.gpu_peak_mem_bytes).bind(8, ns.energy_j);
            up.bind(9, int64_t(ns.power_metered ? 1 : 0)).bind(10, ns.status).bind(11, ev);
            up.bind(12, ns.id);
            up.run();
            continue;
          }
          if (e.key == keys::kMeterSamples) {
            auto rows = samples_of_event(*n.l, e.id);
            const int64_t sid = stage(e.stage_id);
            nlohmann::json arr = nlohmann::json::array();
            for (auto& m : rows) {
              m.run_id = r.id;
              m.stage_id = stage(m.stage_id);
              arr.push_back(to_json(m));
            }
            int64_t ev = w.event(sid, e.t_us, e.type, e.key, dump_json(arr), src);
            Stmt ins(out.handle(), tmp,
                     "INSERT INTO meter_samples(run_id, stage_id, t, device, wall_s, cpu_s, "
                     "busy_s, mem_bytes, power_w, event_id) VALUES (?,?,?,?,?,?,?,?,?,?)");
            for (const auto& m : rows) {
              ins.reset();
              ins.bind(1, m.run_id).bind_id(2, m.stage_id).bind(3, m.t).bind(4, m.device);
              ins.bind(5, m.wall_s).bind(6, m.cpu_s).bind(7, m.busy_s).bind(8, m.mem_bytes);
              ins.bind(9, m.power_w).bind(10, ev);
              ins.run();
            }
            continue;
          }
          if (e.key == keys::kCostItem) {
            auto found = n.costs.find(row_of_event(*n.l, "cost_items", e.id));
            std::optional<CostItem> c;
            if (found != n.costs.end()) c = found->second;
            if (!c) throw LedgerError(n.in.path + ": cost_item event " + std::to_string(e.id) +
                                      " has no row");
            if (per_node_cost(*c)) {
              c->inputs["node"] = rank;
              c->inputs["node_ledger"] = n.in.path;
              c->description = "node " + std::to_string(rank) + ": " + c->description;
              w.cost_item(*c, e.t_us, src);
              ++res.cost_items;
              ++per_node_costs[k];
            } else if (rank == shared_costs_from) {
              w.cost_item(*c, e.t_us, src);
              ++res.cost_items;
            } else {
              ++res.shared_costs_dropped;
              const auto j = without_run(to_json(*c));
              if (std::find(shared_lines.begin(), shared_lines.end(), j) == shared_lines.end())
                dropped_costs[k].push_back(j);
            }
            continue;
          }
          if (e.key == keys::kEvalResult) {
            auto found = n.evals.find(row_of_event(*n.l, "evals", e.id));
            std::optional<EvalResult> ev;
            if (found != n.evals.end()) ev = found->second;
            if (!ev) throw LedgerError(n.in.path + ": eval_result event " +
                                       std::to_string(e.id) + " has no row");
            if (rank == res.evals_from) {
              w.eval(*ev, e.t_us, src);
              ++res.evals;
            } else {
              ++res.evals_dropped;
              const auto j = without_run(to_json(*ev));
              if (std::find(eval_rows.begin(), eval_rows.end(), j) == eval_rows.end())
                dropped_evals[k].push_back(j);
            }
            continue;
          }
          if (e.key == keys::kArtifact) {
            auto a = artifact_of_event(*n.l, e.id);
            if (!a) throw LedgerError(n.in.path + ": artifact event " + std::to_string(e.id) +
                                      " has no row");
            std::string name = a->name;
            if (rank != nodes[0].rank()) {
              auto it = primary_artifacts.find(a->name);
              if (it != primary_artifacts.end() && it->second.count(sha256_hex(a->content))) {
                ++res.artifacts_deduplicated;
                continue;
              }
              name += "@" + node_name(rank);
            }
            w.artifact(stage(a->stage_id), name, a->content, e.t_us, src);
            ++res.artifacts;
            continue;
          }
          // A free event: its value as it was, in the merged run and stage.
          w.event(stage(e.stage_id), e.t_us, e.type, e.key, e.value, src);
        }

        // ---- what was left out, kept where it differs, and the warnings ----
        for (size_t k = 0; k < nodes.size(); ++k) {
          const Node& n = nodes[k];
          const int rank = n.rank();
          const std::string src = "ledger merge";
          if (!dropped_costs[k].empty()) {
            res.warnings.push_back(
                node_name(rank) + " (" + n.in.path + "): " +
                std::to_string(dropped_costs[k].size()) +
                " declared/estimated cost line(s) differ from node " +
                std::to_string(shared_costs_from) +
                "'s, which the merged run counts once; they are kept as artifact cost_items@" +
                node_name(rank) + ", outside the totals");
            w.artifact(0, "cost_items@" + node_name(rank), dump_json(dropped_costs[k]),
                       last_us[k], src);
            ++res.artifacts;
          }
          if (!dropped_evals[k].empty()) {
            res.warnings.push_back(
                node_name(rank) + " (" + n.in.path + "): " +
                std::to_string(dropped_evals[k].size()) + " eval row(s) differ from node " +
                std::to_string(res.evals_from) +
                "'s, which the merged run holds; they are kept as artifact evals@" +
                node_name(rank));
            w.artifact(0, "evals@" + node_name(rank), dump_json(dropped_evals[k]), last_us[k],
                       src);
            ++res.artifacts;
          }
          int64_t ended = 0;
          for (const auto& s : n.l->stages(n.run.id)) ended += s.status != "running";
          if (ended > 0 && per_node_costs[k] == 0)
            res.warnings.push_back(
                node_name(rank) + " (" + n.in.path + "): run " + std::to_string(n.run.id) +
                " (" + to_string(n.run.status) + ") metered " + std::to_string(ended) +
                " stage(s) but holds no measured cost lines (its run ended before pricing): "
                "its seconds are in the merged stages, not in the cost totals");
        }
        for (const auto& msg : res.warnings)
          w.event(0, now_us(), keys::kPoint, keys::kWarning,
                  dump_json({{"message", msg}}), "ledger merge");

        // ---- the end of the merged run, and the merge record ----
        nlohmann::json per_node = nlohmann::json::array();
        nlohmann::json inputs = nlohmann::json::array();
        for (const auto& n : nodes) {
          MergedNode m;
          m.rank = n.rank();
          m.path = n.in.path;
          m.run_id = n.run.id;
          m.status = n.run.status;
          m.events = static_cast<int64_t>(n.events.size());
          m.stages = static_cast<int64_t>(n.l->stages(n.run.id).size());
          m.head_hash = n.head_hash;
          res.nodes.push_back(m);
          per_node.push_back({{"node", m.rank}, {"status", to_string(m.status)}});
          inputs.push_back({{"node", m.rank},
                            {"ledger", m.path},
                            {"run_id", m.run_id},
                            {"status", to_string(m.status)},
                            {"host", n.run.host},
                            {"node_from", n.run.node_from},
                            {"started_at", n.run.started_at},
                            {"ended_at", n.run.ended_at},
                            {"events", m.events},
                            {"stages", m.stages},
                            {"ledger_head_hash", m.head_hash}});
        }
        nlohmann::json stop = {{"status", to_string(r.status)},
                               {"ended_at", r.ended_at},
                               {"nodes", per_node}};
        const bool aborted = r.status == RunStatus::aborted;
        if (aborted) stop["reason"] = "a node's run was aborted";
        const int64_t stop_ev =
            w.event(0, std::max(stop_us, start_us), keys::kEnd,
                    aborted ? keys::kRunAborted : keys::kRunStop, dump_json(stop), "ledger merge");
        {
          Stmt up(out.handle(), tmp,
                  "UPDATE runs SET status=?, ended_at=?, heartbeat_at=?, stop_event_id=? "
                  "WHERE id=?");
          up.bind(1, to_string(r.status)).bind(2, r.ended_at).bind(3, r.ended_at);
          up.bind(4, stop_ev).bind(5, r.id);
          up.run();
        }
        nlohmann::json rec = {
            {"inputs", inputs},
            {"shared_cost_lines_from_node", shared_costs_from},
            {"evals_from_node", res.evals_from},
            {"cost_items", res.cost_items},
            {"shared_cost_lines_dropped", res.shared_costs_dropped},
            {"evals_dropped", res.evals_dropped},
            {"artifacts_deduplicated", res.artifacts_deduplicated},
            {"verdicts_dropped", res.verdicts_dropped},
            {"rules",
             "events in time order with source node<K>/...; stages keep their node; measured "
             "(and stage-derived) cost lines per node, declared/estimated lines once; evals of "
             "one node; the lowest rank's artifacts keep their names, others' as NAME@node<K> "
             "unless identical; verdicts recomputed on the merged run"}};
        w.event(0, now_us(), keys::kPoint, keys::kMerge, dump_json(rec), "ledger merge");
      });
      if (o.before_close) o.before_close(out, res.run_id);
      {
        Stmt q(out.handle(), tmp, "SELECT count(*) FROM events");
        q.step();
        res.events_out = q.i64(0);
      }
      // One self-contained file to move into place (the next writer switches it back to WAL).
      exec(out.handle(), tmp, "PRAGMA journal_mode=DELETE");
    }
    if (o.force) remove_ledger_files(o.out);
    fs::rename(tmp, o.out);
    remove_ledger_files(tmp);  // an empty -shm or -wal left beside it
  } catch (...) {
    remove_ledger_files(tmp);
    throw;
  }
  return res;
}

}  // namespace audit::ledger
