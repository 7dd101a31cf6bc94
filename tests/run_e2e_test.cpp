// End to end through the real binary: `audit run` on a shrunken s1-mini (a few steps, tiny
// splits, one seed) writes every stage's metering, the selection counts, the decontamination
// report, ID/OOD evals of base and tuned models, cost items with provenance and verdicts; the
// ledger verifies and the report is written from it. Bad recipes exit 2 before any run row.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include "ledger/store/ledger.h"
#include "tests/support/support.h"

namespace fs = std::filesystem;

namespace {
using audit::testing::run_audit;
std::string tiny_sets() {
  return " --set base.pretrain_steps=4 --set base.pretrain_examples=300 --set data.pool_size=120"
         " --set data.select_n=40 --set eval.seeds=2 --set eval.n_id=12 --set eval.n_ood=8"
         " --set eval.max_new_tokens=48 --set eval.think_budgets=[8] --set train.epochs=1"
         " --set base.hidden=32 --set base.layers=1 --set base.head_dim=8 --set base.ffn=64";
}
}  // namespace

TEST(RunEndToEnd, TinyS1MiniWritesEveryStage) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const audit::testing::TempDir dir("audit_e2e");
  std::string db = dir.file("audit.db");
  std::string recipe = std::string(audit::testing::source_dir()) + "/recipes/s1-mini.toml";
  const auto ran =
      run_audit("run " + recipe + " --quiet --meter-interval 0.2 --ledger " + db + tiny_sets());
  ASSERT_EQ(ran.exit_code, 0) << ran.output;

  audit::ledger::Ledger l(db);
  int64_t run = l.latest_run();
  ASSERT_GT(run, 0);
  auto info = l.run(run);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->status, audit::ledger::RunStatus::succeeded);

  std::set<std::string> stages;
  for (const auto& s : l.stages(run)) {
    stages.insert(s.name);
    EXPECT_EQ(s.status, "succeeded") << s.name;
    EXPECT_GT(s.wall_s, 0.0) << s.name;
    EXPECT_GE(s.cpu_s, 0.0) << s.name;
  }
  for (const char* want : {"pretrain", "distill", "select", "sft-seed1", "repeat-sft-seed2", "eval"})
    EXPECT_TRUE(stages.count(want)) << "missing stage " << want;
  EXPECT_FALSE(l.meter_samples(run).empty());

  auto counts = l.artifact(run, "selection_counts");
  ASSERT_TRUE(counts.has_value());
  EXPECT_EQ((*counts)["pool"].get<int>(), 120);
  EXPECT_LE((*counts)["selected"].get<int>(), 40);
  ASSERT_TRUE(l.artifact(run, "decontamination").has_value());
  ASSERT_TRUE(l.artifact(run, "loss_curve/sft-seed1").has_value());

  std::set<std::string> base_splits, tuned_splits;
  for (const auto& e : l.evals(run)) {
    EXPECT_GE(e.ci_high, e.score);
    EXPECT_LE(e.ci_low, e.score);
    if (e.budget < 0 && e.suite == "arith") (e.model == "base" ? base_splits : tuned_splits).insert(e.split);
  }
  for (const auto* s : {&base_splits, &tuned_splits}) {
    EXPECT_TRUE(s->count("id"));
    EXPECT_GE(s->size(), 4u) << "ID and three OOD splits";
  }

  auto items = l.cost_items(run);
  ASSERT_FALSE(items.empty());
  std::set<std::string> categories;
  for (const auto& c : items) categories.insert(c.category);
  EXPECT_TRUE(categories.count("final_run"));
  EXPECT_TRUE(categories.count("base_model"));
  // The final run is seed 1 only; the second seed's SFT is priced as evaluation (its spread).
  for (const auto& c : items) {
    if (c.description.find("sft-seed1") != std::string::npos) EXPECT_EQ(c.category, "final_run");
    if (c.description.find("repeat-sft-seed2") != std::string::npos)
      EXPECT_EQ(c.category, "evaluation") << c.description;
  }
  std::set<int64_t> tuned_seeds;
  for (const auto& e : l.evals(run))
    if (e.model == "tuned") tuned_seeds.insert(e.seed);
  EXPECT_EQ(tuned_seeds.size(), 2u);

  // Where the tuned traces first go wrong: one kind per completion, so each (seed, split)
  // sums to its eval's n, and a right trace with a right answer is a correct answer.
  auto te = l.artifact(run, "trace_errors");
  ASSERT_TRUE(te.has_value());
  int checked = 0;
  for (const auto& e : l.evals(run)) {
    if (e.model != "tuned" || e.suite != "arith" || e.budget >= 0) continue;
    const auto& counts = (*te)["tuned"][std::to_string(e.seed)][e.split];
    ASSERT_TRUE(counts.is_object()) << e.seed << " " << e.split;
    int64_t sum = 0;
    for (const auto& [kind, n] : counts.items()) sum += n.get<int64_t>();
    EXPECT_EQ(sum, e.n) << e.seed << " " << e.split;
    EXPECT_LE(counts["none"].get<int64_t>(), e.correct) << e.seed << " " << e.split;
    ++checked;
  }
  EXPECT_EQ(checked, 8);  // 2 seeds x (ID + 3 OOD)
  // Every completion of the first tuned seed, with its question and verdict.
  int completion_events = 0;
  for (const auto& ev : l.events(run)) {
    if (ev.key != "eval_completions") continue;
    auto v = nlohmann::json::parse(ev.value);
    ++completion_events;
    EXPECT_EQ(v["seed"].get<int64_t>(), 42);
    EXPECT_EQ(v["items"].size(), v["split"] == "id_test" ? 12u : 8u) << v["split"];  // n_id, n_ood
    EXPECT_EQ(v["items"][0].size(), 3u);
  }
  EXPECT_EQ(completion_events, 4);
  EXPECT_FALSE(l.verdicts(run).empty());
  EXPECT_TRUE(l.verify().ok) << l.verify().message;

  const auto verified = run_audit("ledger verify --ledger " + db);
  EXPECT_EQ(verified.exit_code, 0) << verified.output;
  std::string html = dir.file("report.html");
  const auto reported = run_audit("report --ledger " + db + " --out " + html);
  EXPECT_EQ(reported.exit_code, 0) << reported.output;
  EXPECT_GT(fs::file_size(html), 2000u);
}

TEST(RunEndToEnd, BadOverrideExitsTwoWithoutARun) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const audit::testing::TempDir dir("audit_e2e_bad");
  std::string db = dir.file("audit.db");
  std::string recipe = std::string(audit::testing::source_dir()) + "/recipes/s1-mini.toml";
  const auto r = run_audit("run " + recipe + " --quiet --ledger " + db + " --set train.epochs=-1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_FALSE(fs::exists(db)) << "bad input must not leave a run in the ledger";
}
