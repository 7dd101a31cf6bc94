// `audit run` with [launch], end to end: the claimant's command is the venv's
// `torchrun --nproc_per_node 2` on tests/golden/launch_train.py (the real Hugging Face Trainer,
// Gloo, CPU), fine-tuning a tiny Qwen2 checkpoint made at test time. audit meters its whole
// process tree, parses the Trainer's log lines into the loss curve, evaluates the checkpoint the
// command wrote on a benchmark file and writes the report. Then the failure paths through
// `audit run` itself: a command that exits 1 (the run is failed, its seconds billed as a failed
// run by the next run of the claim), the budget guard stopping a command that ignores SIGTERM,
// an external evaluator's lm-eval results read into the evals, and bad [launch] input refused
// with exit 2 before a run is opened.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "ledger/store/ledger.h"
#include "tests/support/support.h"
#include "tests/support/venv_tools.h"

namespace {
using audit::testing::run_audit;

std::string checkpoint() {
  const std::string src = audit::testing::source_dir();
  const std::string tmpl = src + "/tests/fixtures/chat_templates/qwen2.5_instruct.jinja";
  const std::string script = src + "/tests/golden/make_run_checkpoint.py";
  return audit::testing::python_fixture(
      "run_checkpoint_qwen2",
      "'" + audit::testing::python() + "' '" + script + "' {OUT} --arch qwen2 --template '" +
          tmpl + "'",
      {script, src + "/tests/golden/make_tokenizers.py", tmpl});
}

// A TOML string literal (basic string, escaped).
std::string q(const std::string& s) { return nlohmann::json(s).dump(); }

// A recipe for a launch: the claim, [launch] with `launch_body`, and one math suite.
std::string write_recipe(const audit::testing::TempDir& dir, const std::string& launch_body,
                         const std::string& extra = "", bool suites = true) {
  audit::testing::run_command("mkdir -p '" + dir.file("evals") + "'");
  audit::testing::write_file(dir.file("evals/count.jsonl"),
                             R"({"problem": "What is 2 + 3?", "answer": "5"})" "\n"
                             R"({"problem": "What is 7 + 1?", "answer": "8"})" "\n"
                             R"({"problem": "What is 4 + 4?", "answer": "8"})" "\n");
  const std::string path = dir.file("launch.toml");
  audit::testing::write_file(
      path,
      "[claim]\n"
      "name = \"launch-fixture\"\n"
      "title = \"A claimant's torchrun script, re-executed under audit\"\n"
      "headline = \"trained in seconds for under a cent\"\n"
      "claimed_cost_usd = 0.01\n"
      "stage = \"sft\"\n\n"
      "[base]\n"
      "name = \"tiny-qwen2\"\n"
      "train_here = false\n\n"
      "[eval]\n"
      "seeds = 1\n"
      "max_new_tokens = 8\n"
      "suites_dir = \"evals\"\n"
      "think_budgets = []\n"
      "wait_extensions = 0\n" +
          std::string(suites ? "[[eval.suites]]\n"
                               "name = \"count\"\n"
                               "path = \"count.jsonl\"\n"
                               "kind = \"math\"\n\n"
                             : "\n") +
          "[launch]\n" +
          launch_body + "\n" + extra);
  return path;
}

audit::testing::CommandResult audit_run(const std::string& recipe, const std::string& db,
                                        const std::string& more = "") {
  return run_audit("run " + recipe + " --meter-interval 0.2 --ledger " + db + more);
}
}  // namespace

TEST(RunLaunch, TorchrunFixtureIsMeteredParsedEvaluatedAndReported) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const std::string torchrun = audit::testing::venv_tool("torchrun");
  ASSERT_FALSE(torchrun.empty()) << "no torchrun in the venv (make setup installs torch)";
  const std::string ckpt = checkpoint();
  ASSERT_FALSE(ckpt.empty());
  const audit::testing::TempDir dir("audit_run_launch");
  const std::string script = audit::testing::source_dir() + "/tests/golden/launch_train.py";
  const std::string recipe = write_recipe(
      dir,
      "command = [" + q(torchrun) + ", \"--standalone\", \"--nproc_per_node\", \"2\", " + q(script) +
          ", \"--model\", " + q(ckpt) + ", \"--output_dir\", \"out\", \"--steps\", \"8\", \"--lr\", \"1e-3\"]\n"
          "output_dir = \"out\"\n"
          "log_format = \"hf-trainer\"\n"
          "timeout = \"5m\"\n"
          "max_usd = 5.0\n");
  const std::string db = dir.file("audit.db");
  const auto ran = audit_run(recipe, db);
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_NE(ran.output.find("launch_train: rank 1 of 2"), std::string::npos)
      << "the command's output is shown live\n" << ran.output;

  audit::ledger::Ledger l(db);
  const int64_t run = l.latest_run();
  ASSERT_EQ(l.run(run)->status, audit::ledger::RunStatus::succeeded);
  std::map<std::string, audit::ledger::StageInfo> stages;
  for (const auto& s : l.stages(run)) stages[s.name] = s;
  ASSERT_TRUE(stages.count("launch")) << "stages: " << stages.size();
  ASSERT_TRUE(stages.count("eval-load"));
  ASSERT_TRUE(stages.count("eval"));
  const auto& st = stages["launch"];
  EXPECT_EQ(st.status, "succeeded");
  // Three Python processes importing torch and transformers: seconds of CPU, far more than
  // audit's own process spends waiting on them.
  EXPECT_GT(st.cpu_s, 3.0) << "the tree's CPU (torchrun and both ranks)";
  EXPECT_GT(st.wall_s, 1.0);

  // The Trainer's log dicts as the loss curve (rank 0 logs once per step).
  auto curve = l.artifact(run, "loss_curve/launch");
  ASSERT_TRUE(curve.has_value());
  ASSERT_EQ((*curve)["loss"].size(), 8u) << curve->dump();
  EXPECT_EQ((*curve)["step"][7].get<int64_t>(), 8);
  EXPECT_TRUE((*curve)["summary"].contains("train_runtime"));
  // stdout kept, compressed.
  auto out = l.artifact(run, "launch.stdout");
  ASSERT_TRUE(out.has_value());
  EXPECT_GT((*out)["bytes_total"].get<int64_t>(), 100);

  // The checkpoint the command wrote was evaluated as the tuned model.
  std::set<std::string> models;
  for (const auto& e : l.evals(run)) {
    EXPECT_EQ(e.suite, "count");
    EXPECT_EQ(e.n, 3);
    models.insert(e.model);
  }
  EXPECT_EQ(models, (std::set<std::string>{"tuned"})) << "no base.checkpoint: no base rows";

  // Its time is the final run's cost, measured, on this CPU.
  bool final_cpu = false;
  for (const auto& c : l.cost_items(run))
    if (c.category == "final_run" && c.unit == "CPU-hour" &&
        c.provenance == audit::ledger::Provenance::measured)
      final_cpu = true;
  EXPECT_TRUE(final_cpu);
  EXPECT_EQ(run_audit("ledger verify --ledger " + db).exit_code, 0);

  const std::string html = dir.file("report.html");
  const auto rep = run_audit("report --ledger " + db + " --out " + html);
  ASSERT_EQ(rep.exit_code, 0) << rep.output;
  const std::string page = audit::testing::read_file(html);
  EXPECT_NE(page.find("launch"), std::string::npos);
}

TEST(RunLaunch, FailingCommandIsAFailedRunBilledByTheNext) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const audit::testing::TempDir dir("audit_run_launch_fail");
  // No output_dir and no evaluator: a launch without evaluation needs no [[eval.suites]].
  const std::string recipe = write_recipe(
      dir, "command = \"python3 -c 'import time; time.sleep(0.5)'; exit 1\"\n", "", false);
  const std::string db = dir.file("audit.db");
  auto ran = audit_run(recipe, db);
  ASSERT_EQ(ran.exit_code, 1) << ran.output;
  EXPECT_NE(ran.output.find("exited with code 1"), std::string::npos) << ran.output;
  {
    audit::ledger::Ledger l(db);
    const int64_t run = l.latest_run();
    EXPECT_EQ(l.run(run)->status, audit::ledger::RunStatus::failed);
    const auto st = l.stages(run);
    ASSERT_EQ(st.size(), 1u);
    EXPECT_EQ(st[0].name, "launch");
    EXPECT_EQ(st[0].status, "failed");
    EXPECT_GE(st[0].wall_s, 0.4) << "its seconds are kept";
  }
  // The next run of the claim bills the failed one.
  const std::string ok = write_recipe(dir, "command = [\"true\"]\n", "", false);
  ran = audit_run(ok, db);
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  audit::ledger::Ledger l(db);
  bool billed = false;
  for (const auto& c : l.cost_items(l.latest_run()))
    if (c.category == "failed_runs" && c.description.find("stage launch") != std::string::npos)
      billed = true;
  EXPECT_TRUE(billed);
}

TEST(RunLaunch, BudgetGuardStopsACommandThatIgnoresSigterm) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const audit::testing::TempDir dir("audit_run_launch_budget");
  // A CPU-bound loop that ignores SIGTERM; a cap of a millionth of a dollar of CPU time.
  const std::string recipe = write_recipe(
      dir,
      "command = [\"python3\", \"-c\", \"import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\\nwhile True: pass\"]\n"
      "max_usd = 0.000001\n"
      "grace = 1\n", "", false);
  const std::string db = dir.file("audit.db");
  const auto ran = audit_run(recipe, db);
  ASSERT_EQ(ran.exit_code, 1) << ran.output;
  EXPECT_NE(ran.output.find("budget"), std::string::npos) << ran.output;
  audit::ledger::Ledger l(db);
  const auto st = l.stages(l.latest_run());
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].status, "failed");
  EXPECT_LT(st[0].wall_s, 30.0);
  bool stop_event = false;
  for (const auto& e : l.events(l.latest_run()))
    if (e.key == "launch_stop" && e.value.find("budget") != std::string::npos) stop_event = true;
  EXPECT_TRUE(stop_event) << "the run records why it stopped";
}

TEST(RunLaunch, ExternalEvaluatorResultsAreReadIntoTheEvals) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const audit::testing::TempDir dir("audit_run_launch_lmeval");
  // The evaluator writes a results file in lm-eval 0.4's layout under its --output_path folder.
  const nlohmann::json results = {
      {"results", {{"gsm8k", {{"alias", "gsm8k"}, {"exact_match,strict-match", 0.25},
                              {"exact_match_stderr,strict-match", 0.1},
                              {"exact_match,flexible-extract", 0.3}}}}},
      {"n-samples", {{"gsm8k", {{"original", 1319}, {"effective", 20}}}}},
      {"config", {{"model", "hf"}, {"model_args", "pretrained=out"}}},
      {"lm_eval_version", "0.4.9"}};
  audit::testing::write_file(dir.file("results.json"), results.dump());
  const std::string recipe = write_recipe(
      dir, "command = [\"true\"]\n",
      "[launch.eval]\n"
      "command = \"mkdir -p lm/out__model && cp results.json lm/out__model/results_2026-11-30T06-00-00.json\"\n"
      "results = \"lm\"\n", false);
  const std::string db = dir.file("audit.db");
  const auto ran = audit_run(recipe, db);
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  audit::ledger::Ledger l(db);
  const int64_t run = l.latest_run();
  const auto evals = l.evals(run);
  ASSERT_EQ(evals.size(), 1u);
  EXPECT_EQ(evals[0].suite, "gsm8k");
  EXPECT_EQ(evals[0].model, "tuned");
  EXPECT_EQ(evals[0].n, 20);
  EXPECT_EQ(evals[0].correct, 5);
  EXPECT_DOUBLE_EQ(evals[0].score, 0.25) << "strict-match first";
  std::set<std::string> stages;
  for (const auto& s : l.stages(run)) stages.insert(s.name);
  EXPECT_EQ(stages, (std::set<std::string>{"launch", "eval-launch"}));
  EXPECT_TRUE(l.artifact(run, "lm_eval_results").has_value());
}

TEST(RunLaunch, BadLaunchInputExitsTwoBeforeARunIsOpened) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const audit::testing::TempDir dir("audit_run_launch_bad");
  const std::string db = dir.file("audit.db");
  struct Case {
    std::string body, key;
  };
  const std::vector<Case> cases = {
      {"command = []\n", "launch.command"},
      {"command = [\"true\"]\nworkdir = \"no/such/folder\"\n", "launch.workdir"},
      {"command = [\"true\"]\nlog_format = \"regex\"\nlog_regex = \"step (?<step>\\\\d+\"\n", "launch.log_regex"},
      {"command = [\"true\"]\nlog_format = \"regex\"\nlog_regex = \"step (?<step>\\\\d+)\"\n", "launch.log_regex"},
      {"command = [\"true\"]\nmax_usd = -1\n", "launch.max_usd"},
      {"command = [\"true\"]\nmax_gpu_hours = 0\n", "launch.max_gpu_hours"},
      // Suites evaluate what the command writes: without output_dir there is nothing to load.
      {"command = [\"true\"]\n", "launch.output_dir"},
  };
  for (const auto& c : cases) {
    const std::string recipe = write_recipe(dir, c.body);
    const auto ran = audit_run(recipe, db);
    EXPECT_EQ(ran.exit_code, 2) << c.body << "\n" << ran.output;
    EXPECT_NE(ran.output.find(c.key), std::string::npos) << c.body << "\n" << ran.output;
    EXPECT_NE(ran.output.find("launch.toml"), std::string::npos) << "names the file\n" << ran.output;
  }
  // A command that writes no checkpoint into output_dir: known only after it ran, so the run is
  // failed (exit 1) naming launch.output_dir, with the launch's seconds kept.
  const std::string recipe = write_recipe(dir, "command = [\"true\"]\noutput_dir = \"out\"\n");
  const auto ran = audit_run(recipe, db);
  EXPECT_EQ(ran.exit_code, 1) << ran.output;
  EXPECT_NE(ran.output.find("launch.output_dir"), std::string::npos) << ran.output;
  audit::ledger::Ledger l(db);
  EXPECT_EQ(l.runs().size(), 1u) << "only the run whose command ran was opened";
}
