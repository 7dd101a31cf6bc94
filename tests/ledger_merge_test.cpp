// Several nodes: the node rank a run records (resolve_node_rank, schema 2 and its migration) and
// `audit ledger merge` (ledger/store/merge.cpp): two node ledgers of the synthetic run
// (tests/support/synthetic_run.h) joined into one run that verifies, with each stage's node,
// the measured cost lines summed and the declared ones counted once, the evals of one node,
// recomputed verdicts; and every refusal with exit 2 naming the file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "common/errors.h"
#include "ledger/costs/cost_model.h"
#include "ledger/store/event_keys.h"
#include "ledger/store/ledger.h"
#include "ledger/store/merge.h"
#include "reproduce/verdicts/verdicts.h"
#include "tests/support/support.h"
#include "tests/support/synthetic_run.h"

using namespace audit::ledger;
using ::testing::HasSubstr;

namespace {

// SQL through a raw connection, as someone with the sqlite3 shell would (triggers dropped).
void raw_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  const std::string all = "DROP TRIGGER IF EXISTS events_no_update; DROP TRIGGER IF EXISTS "
                          "events_no_delete; " + sql;
  int rc = sqlite3_exec(db, all.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << msg;
}

// The measured part (lines a node metered) and the rest of a run's full total, mid USD.
struct Split {
  double measured = 0, shared = 0, final_run = 0;
};
Split split_costs(const std::vector<CostItem>& items) {
  Split s;
  for (const auto& c : items) {
    if (!in_full_total(c)) continue;
    const double mid = item_cost(c).mid;
    (c.provenance == Provenance::measured ? s.measured : s.shared) += mid;
    if (c.category == "final_run") s.final_run += mid;
  }
  return s;
}

class LedgerMergeTest : public ::testing::Test {
 protected:
  // A node ledger holding the synthetic run of node `rank` of `nnodes`, with its verdicts.
  std::string node_ledger(const std::string& name, int rank, int nnodes = 2,
                          double claimed_usd = 0.05) {
    const std::string path = tmp.file(name);
    Ledger l(path);
    const int64_t run = audit::testing::add_synthetic_run(l, false, claimed_usd, rank, nnodes);
    audit::reports::store_verdicts(l, run);
    return path;
  }
  MergeOptions options(const std::vector<std::string>& paths, const std::string& out) {
    MergeOptions o;
    for (const auto& p : paths) o.inputs.push_back({p, "latest"});
    o.out = out;
    o.before_close = [](Ledger& l, int64_t run) { audit::reports::store_verdicts(l, run); };
    return o;
  }
  // Runs `audit ledger merge ARGS`; expects exit 2 with `file` and `what` in the message.
  void expect_refused(const std::string& args, const std::string& file, const std::string& what) {
    auto r = audit::testing::run_audit("ledger merge " + args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr(file));
    EXPECT_THAT(r.output, HasSubstr(what));
  }

  audit::testing::TempDir tmp{"ledger_merge_test"};
};

TEST_F(LedgerMergeTest, JoinsTwoNodesIntoOneRunThatVerifies) {
  const std::string a = node_ledger("node0.db", 0), b = node_ledger("node1.db", 1);
  const std::string out = tmp.file("all.db");
  // Inputs in any order: the merged run orders nodes by rank.
  const MergeResult res = merge_ledgers(options({b, a}, out));
  ASSERT_EQ(res.nodes.size(), 2u);
  EXPECT_EQ(res.nodes[0].rank, 0);
  EXPECT_EQ(res.nodes[0].path, a);
  EXPECT_TRUE(res.warnings.empty()) << res.warnings.front();

  Ledger na(a, OpenMode::read_only), nb(b, OpenMode::read_only), m(out, OpenMode::read_only);
  const auto ra = *na.run(na.latest_run()), rb = *nb.run(nb.latest_run());
  VerifyReport v = m.verify();
  EXPECT_TRUE(v.ok) << v.message;
  ASSERT_EQ(m.runs().size(), 1u);
  const RunInfo r = *m.run(res.run_id);
  EXPECT_EQ(r.status, RunStatus::succeeded);
  EXPECT_EQ(r.recipe_sha256, ra.recipe_sha256);
  EXPECT_EQ(r.node_rank, -1);
  EXPECT_EQ(r.nnodes, 2);
  EXPECT_EQ(r.node_from, "merge");
  EXPECT_DOUBLE_EQ(r.started_at, std::min(ra.started_at, rb.started_at));
  EXPECT_DOUBLE_EQ(r.ended_at, std::max(ra.ended_at, rb.ended_at));

  // Every stage of both nodes, each with its node and its metering.
  const auto sa = na.stages(ra.id), sb = nb.stages(rb.id), sm = m.stages(r.id);
  ASSERT_EQ(sm.size(), sa.size() + sb.size());
  std::map<int, std::vector<StageInfo>> by_node;
  for (const auto& s : sm) by_node[s.node].push_back(s);
  ASSERT_EQ(by_node.size(), 2u);
  ASSERT_EQ(by_node[0].size(), sa.size());
  ASSERT_EQ(by_node[1].size(), sb.size());
  for (size_t i = 0; i < sb.size(); ++i) {
    EXPECT_EQ(by_node[1][i].name, sb[i].name);
    EXPECT_EQ(by_node[1][i].cpu_s, sb[i].cpu_s);
    EXPECT_EQ(by_node[1][i].wall_s, sb[i].wall_s);
    EXPECT_EQ(by_node[1][i].status, "succeeded");
    EXPECT_EQ(sb[i].node, 1);  // the node's own stages carry it too
  }
  // Meter samples follow their stages.
  EXPECT_EQ(m.meter_samples(r.id).size(),
            na.meter_samples(ra.id).size() + nb.meter_samples(rb.id).size());
  for (const auto& s : by_node[1]) EXPECT_EQ(m.meter_samples(r.id, s.id).size(), 3u);

  // Costs: the nodes' measured lines summed, the declared/estimated ones once.
  const Split ca = split_costs(na.cost_items(ra.id)), cb = split_costs(nb.cost_items(rb.id));
  const auto items = m.cost_items(r.id);
  const Split cm = split_costs(items);
  EXPECT_NEAR(cm.measured, ca.measured + cb.measured, 1e-12);
  EXPECT_NEAR(cm.shared, ca.shared, 1e-12);
  EXPECT_NEAR(cm.final_run, ca.final_run + cb.final_run, 1e-12);
  // By hand (tests/support/synthetic_run.cpp): measured 0.082 per node, shared 1.32 (teacher
  // tokens 2 x $0.60, sweep 3 x $0.04).
  EXPECT_NEAR(ca.measured, 0.082, 1e-12);
  EXPECT_NEAR(cm.measured + cm.shared, 2 * 0.082 + 1.32, 1e-12);
  // What the report and the verdicts read: the final run and the full total.
  const auto rollup = audit::reports::roll_up_costs(items, nullptr);
  EXPECT_NEAR(rollup.final_run.mid, 2 * 0.02, 1e-12);
  EXPECT_NEAR(rollup.full.mid, 1.484, 1e-12);
  size_t claimed = 0;
  for (const auto& c : items) {
    claimed += c.category == "claimed";
    if (c.provenance == Provenance::measured) {
      ASSERT_TRUE(c.inputs.contains("node")) << c.description;
      EXPECT_THAT(c.description, HasSubstr("node " + std::to_string(c.inputs["node"].get<int>())));
    }
  }
  EXPECT_EQ(claimed, 1u);

  // Evals of one node, not pooled twice; identical artifacts stored once.
  EXPECT_EQ(m.evals(r.id).size(), na.evals(ra.id).size());
  EXPECT_EQ(res.evals_from, 0);
  EXPECT_EQ(m.artifact_names(r.id), na.artifact_names(ra.id));
  EXPECT_EQ(res.artifacts_deduplicated, int64_t(nb.artifact_names(rb.id).size()));

  // Verdicts recomputed on the merged run (the cost verdict sees the summed final run).
  const auto stored = audit::reports::current_verdicts(m, r.id);
  const auto computed = audit::reports::compute_verdicts(m, r.id);
  ASSERT_EQ(stored.size(), computed.size());
  ASSERT_FALSE(stored.empty());
  for (size_t i = 0; i < stored.size(); ++i) {
    EXPECT_EQ(stored[i].verdict, computed[i].verdict) << stored[i].claim;
    EXPECT_EQ(stored[i].measured, computed[i].measured) << stored[i].claim;
  }
  EXPECT_EQ(res.verdicts_dropped, int64_t(na.verdicts(ra.id).size() + nb.verdicts(rb.id).size()));

  // Events: re-chained, each noting its node; the merge event names the inputs.
  const auto ev = m.events(r.id);
  int from0 = 0, from1 = 0, merges = 0;
  for (const auto& e : ev) {
    from0 += e.source.rfind("node0/", 0) == 0;
    from1 += e.source.rfind("node1/", 0) == 0;
    if (e.key == keys::kMerge) {
      ++merges;
      auto j = nlohmann::json::parse(e.value);
      ASSERT_EQ(j["inputs"].size(), 2u);
      EXPECT_EQ(j["inputs"][1]["ledger"], b);
      EXPECT_EQ(j["inputs"][1]["ledger_head_hash"], nb.events(0).back().hash);
    }
  }
  EXPECT_EQ(merges, 1);
  // Every event of node 0's run but its start, stop and verdicts; node 1's also without the
  // shared cost lines, eval rows and identical artifacts node 0 holds.
  const auto count = [](const Ledger& l, int64_t run) { return int(l.events(run).size()); };
  EXPECT_EQ(from0, count(na, ra.id) - 2 - int(na.verdicts(ra.id).size()));
  EXPECT_EQ(from1, count(nb, rb.id) - 2 - int(nb.verdicts(rb.id).size()) -
                       int(res.shared_costs_dropped + res.evals_dropped +
                           res.artifacts_deduplicated));
  EXPECT_EQ(res.evals_dropped, int64_t(nb.evals(rb.id).size()));

  // The CLI's verify agrees.
  auto cli = audit::testing::run_audit("ledger verify --ledger '" + out + "'");
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_THAT(cli.output, HasSubstr("ledger OK"));
}

TEST_F(LedgerMergeTest, StatusIsTheWorstOfTheNodesAndDifferingEvalsAreKeptAside) {
  const std::string a = node_ledger("node0.db", 0);
  // Node 1: its own run of the same recipe, with one eval row of its own, which failed.
  const std::string b = tmp.file("node1.db");
  {
    Ledger l(b);
    Ledger src(a, OpenMode::read_only);
    RunInfo ri = *src.run(src.latest_run());
    ri.node_rank = 1;
    ri.nnodes = 2;
    ri.node_from = "test";
    const int64_t run = l.begin_run(ri);
    const int64_t sid = l.begin_stage(run, "sft");
    StageInfo s;
    s.id = sid;
    s.wall_s = 10;
    s.cpu_s = 36;
    s.status = "failed";
    l.end_stage(s);
    EvalResult e;
    e.run_id = run;
    e.model = "tuned";
    e.suite = "arith";
    e.split = "id";
    e.n = 10;
    e.correct = 3;
    e.score = 0.3;
    l.add_eval(e);
    l.end_run(run, RunStatus::failed);
  }
  const std::string out = tmp.file("all.db");
  const MergeResult res = merge_ledgers(options({a, b}, out));
  Ledger m(out, OpenMode::read_only);
  EXPECT_TRUE(m.verify().ok) << m.verify().message;
  EXPECT_EQ(m.run(res.run_id)->status, RunStatus::failed);
  EXPECT_EQ(res.evals_from, 0);
  EXPECT_EQ(res.evals_dropped, 1);
  auto kept = m.artifact(res.run_id, "evals@node1");
  ASSERT_TRUE(kept);
  ASSERT_EQ(kept->size(), 1u);
  EXPECT_EQ((*kept)[0]["correct"], 3);
  // Node 1 metered a stage but priced nothing: said, not hidden.
  ASSERT_EQ(res.warnings.size(), 2u);
  EXPECT_THAT(res.warnings[1], HasSubstr("no measured cost lines"));
  int warnings = 0;
  for (const auto& e : m.events(res.run_id)) warnings += e.key == keys::kWarning;
  EXPECT_EQ(warnings, 2);
  const auto stages = m.stages(res.run_id);
  EXPECT_EQ(stages.back().node, 1);
  EXPECT_EQ(stages.back().status, "failed");
}

TEST_F(LedgerMergeTest, TheCliMergesAndRefusesWithExit2NamingTheFile) {
  const std::string a = node_ledger("node0.db", 0), b = node_ledger("node1.db", 1);
  const std::string out = tmp.file("all.db");
  auto ok = audit::testing::run_audit("ledger merge '" + a + "' '" + b + "' --out '" + out + "'");
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("merged into"));
  EXPECT_THAT(ok.output, HasSubstr("10 stages"));
  auto show = audit::testing::run_audit("ledger show latest --ledger '" + out + "'");
  EXPECT_EQ(show.exit_code, 0) << show.output;
  EXPECT_THAT(show.output, HasSubstr("node     all of 2  (merge)"));

  // --out exists; --force replaces it; --out may never be an input.
  expect_refused("'" + a + "' '" + b + "' --out '" + out + "'", out, "--force");
  auto forced = audit::testing::run_audit("ledger merge '" + a + "' '" + b + "' --out '" + out +
                                          "' --force --quiet");
  EXPECT_EQ(forced.exit_code, 0) << forced.output;
  expect_refused("'" + a + "' '" + b + "' --out '" + a + "' --force", a, "one of the ledgers");
  // Fewer than two inputs.
  expect_refused("'" + a + "' --out '" + tmp.file("one.db") + "'", a, "two or more");
  // A missing ledger.
  expect_refused("'" + a + "' '" + tmp.file("nope.db") + "' --out '" + tmp.file("x.db") + "'",
                 tmp.file("nope.db"), "no such ledger");
  // Two ledgers with the same node rank.
  const std::string a2 = node_ledger("node0-again.db", 0);
  expect_refused("'" + a + "' '" + a2 + "' --out '" + tmp.file("x.db") + "'", a2,
                 "the same as run 1 of " + a);
  // A different recipe (another claimed figure: another recipe text and sha256).
  const std::string other = node_ledger("other.db", 1, 2, 0.07);
  expect_refused("'" + a + "' '" + other + "' --out '" + tmp.file("x.db") + "'", other,
                 "recipe sha256");
  // A run declared as one of 3 nodes.
  const std::string three = node_ledger("three.db", 1, 3);
  expect_refused("'" + a + "' '" + three + "' --out '" + tmp.file("x.db") + "'", three,
                 "one of 3 nodes");
  // A run without a node rank.
  const std::string single = tmp.file("single.db");
  {
    Ledger l(single);
    audit::testing::add_synthetic_run(l, false, 0.05);
  }
  expect_refused("'" + a + "' '" + single + "' --out '" + tmp.file("x.db") + "'", single,
                 "no node rank");
  // A tampered node ledger: a cost line edited without its event.
  raw_sql(b, "UPDATE cost_items SET quantity = quantity / 10 WHERE category = 'final_run';");
  expect_refused("'" + a + "' '" + b + "' --out '" + tmp.file("x.db") + "'", b,
                 "fails verification");
  EXPECT_FALSE(std::filesystem::exists(tmp.file("x.db")));
  // --run: one per ledger or one for all.
  expect_refused("'" + a + "' '" + a2 + "' '" + three + "' --run 1 --run 1 --out '" +
                     tmp.file("x.db") + "'",
                 "--run", "one --run for every ledger");
}

TEST(NodeRank, FromTheFlagOrTheLaunchersEnvironment) {
  std::map<std::string, std::string> env;
  auto lookup = [&env](const std::string& k) -> std::optional<std::string> {
    auto it = env.find(k);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  NodeRank n = resolve_node_rank(std::nullopt, std::nullopt, lookup);
  EXPECT_EQ(n.rank, -1);
  EXPECT_EQ(n.nnodes, 1);
  EXPECT_EQ(n.from, "");

  n = resolve_node_rank(1, 2, lookup);
  EXPECT_EQ(n.rank, 1);
  EXPECT_EQ(n.nnodes, 2);
  EXPECT_EQ(n.from, "--node-rank 1 --nnodes 2");
  n = resolve_node_rank(3, std::nullopt, lookup);
  EXPECT_EQ(n.nnodes, 0);  // the count is not known

  env = {{"SLURM_NODEID", "1"}, {"SLURM_NNODES", "4"}};
  n = resolve_node_rank(std::nullopt, std::nullopt, lookup);
  EXPECT_EQ(n.rank, 1);
  EXPECT_EQ(n.nnodes, 4);
  EXPECT_EQ(n.from, "SLURM_NODEID=1 SLURM_NNODES=4");
  // GROUP_RANK (torchrun's agent) and NODE_RANK come before SLURM_NODEID; the flag before all.
  env["NODE_RANK"] = "2";
  n = resolve_node_rank(std::nullopt, std::nullopt, lookup);
  EXPECT_EQ(n.rank, 2);
  EXPECT_EQ(n.nnodes, 0);
  EXPECT_EQ(n.from, "NODE_RANK=2");
  env["GROUP_RANK"] = "0";
  env["GROUP_WORLD_SIZE"] = "2";
  n = resolve_node_rank(std::nullopt, std::nullopt, lookup);
  EXPECT_EQ(n.rank, 0);
  EXPECT_EQ(n.nnodes, 2);
  EXPECT_EQ(resolve_node_rank(3, 8, lookup).from, "--node-rank 3 --nnodes 8");

  auto refused = [&](std::optional<int> r, std::optional<int> c, const std::string& what) {
    try {
      resolve_node_rank(r, c, lookup);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const audit::InputError& e) {
      EXPECT_THAT(e.what(), HasSubstr(what));
    }
  };
  refused(-2, std::nullopt, "negative");
  refused(2, 2, "not below the node count 2");
  refused(0, 0, "at least 1");
  env = {{"SLURM_NODEID", "x1"}};
  refused(std::nullopt, std::nullopt, "SLURM_NODEID");
  env.clear();
  refused(std::nullopt, 2, "--nnodes needs a node rank");
}

TEST(NodeSchema, ALedgerOfSchema1OpensMigratedAndStillVerifies) {
  audit::testing::TempDir tmp{"node_schema_test"};
  const std::string path = tmp.file("old.db");
  {
    Ledger l(path);
    audit::testing::add_synthetic_run(l, false, 0.05);
  }
  // Back to schema 1: the node columns and their migration gone.
  raw_sql(path,
          "ALTER TABLE runs DROP COLUMN node_rank; ALTER TABLE runs DROP COLUMN nnodes; "
          "ALTER TABLE runs DROP COLUMN node_from; ALTER TABLE stages DROP COLUMN node; "
          "DELETE FROM schema_version WHERE version = 2;");
  EXPECT_THROW({ Ledger ro(path, OpenMode::read_only); }, LedgerError);  // needs the migration
  Ledger l(path);
  EXPECT_EQ(l.schema_version(), 2);
  EXPECT_EQ(kSchemaVersion, 2);
  const auto r = *l.run(l.latest_run());
  EXPECT_EQ(r.node_rank, -1);
  EXPECT_EQ(r.nnodes, 1);
  EXPECT_FALSE(r.multi_node());
  EXPECT_FALSE(to_json(r).contains("node_rank"));
  for (const auto& s : l.stages(r.id)) EXPECT_EQ(s.node, -1);
  VerifyReport v = l.verify();
  EXPECT_TRUE(v.ok) << v.message;
  // A node rank set afterwards without its event is caught.
  raw_sql(path, "UPDATE runs SET node_rank = 0; UPDATE stages SET node = 0;");
  Ledger again(path);
  EXPECT_FALSE(again.verify().ok);
  EXPECT_THAT(again.verify().message, HasSubstr("runs row 1"));
}

TEST(NodeSchema, ANodeRunsStagesCarryItsNodeAndVerifyCoversIt) {
  audit::testing::TempDir tmp{"node_schema_test"};
  const std::string path = tmp.file("node.db");
  {
    Ledger l(path);
    audit::testing::add_synthetic_run(l, false, 0.05, 1, 2);
    const auto r = *l.run(l.latest_run());
    EXPECT_EQ(r.node_rank, 1);
    EXPECT_EQ(r.nnodes, 2);
    EXPECT_EQ(to_json(r)["node_rank"], 1);
    for (const auto& s : l.stages(r.id)) {
      EXPECT_EQ(s.node, 1);
      EXPECT_EQ(to_json(s)["node"], 1);
    }
    EXPECT_TRUE(l.verify().ok) << l.verify().message;
  }
  raw_sql(path, "UPDATE stages SET node = 0 WHERE id = 2;");
  Ledger l(path);
  EXPECT_FALSE(l.verify().ok);
  EXPECT_THAT(l.verify().message, HasSubstr("stages row 2"));
}

}  // namespace
