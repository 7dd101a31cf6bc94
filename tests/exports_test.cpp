// Tests of the exports to other tools' files and of the lm-eval reader (suites/lm_eval,
// reproduce/exports, `audit ledger export --format ...`): each export is read back by the tool's
// own reader where the venv has it (MLflow's MlflowClient from mlflow-skinny 3.17.2;
// mlperf-logging 4.1.68's parser and compliance checker; Python's csv module for CodeCarbon's
// header) and checked against the ledger's rows. The lm-eval files are written here in lm-eval
// 0.4.x's layout (EleutherAI/lm-evaluation-harness at 4e7e0d47f33b, 0.4.13.dev0:
// lm_eval/loggers/evaluation_tracker.py save_results_aggregated writes
// <output_path>/<model_name_sanitized>/results_<datetime.now().isoformat() with ':' -> '-'>.json;
// lm_eval/result_schema.py gives the keys).
#include <cmath>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "ledger/store/ledger.h"
#include "reproduce/exports/exports.h"
#include "reproduce/recipe/recipe.h"
#include "suites/lm_eval/lm_eval.h"
#include "suites/stats/wilson.h"
#include "tests/support/support.h"
#include "tests/support/synthetic_run.h"

namespace fs = std::filesystem;
using audit::InputError;
using audit::testing::python;
using audit::testing::read_file;
using audit::testing::run_audit;
using audit::testing::run_command;
using audit::testing::TempDir;
using audit::testing::write_file;
using nlohmann::json;
namespace lm = audit::lm_eval;

namespace {

// An lm-eval 0.4.x results file as simple_evaluate + EvaluationTracker write it (trimmed of
// pretty_env_info and the task configs' bodies): two tasks, one with two filters, "N/A" for a
// stderr lm-eval could not compute, n-samples per task.
nlohmann::ordered_json lm_eval_file(double gsm_strict, double arc_acc) {
  return nlohmann::ordered_json::parse(R"({
  "results": {
    "gsm8k": {"alias": "gsm8k", "exact_match,strict-match": )" + std::to_string(gsm_strict) + R"(,
              "exact_match_stderr,strict-match": 0.0136,
              "exact_match,flexible-extract": 0.37, "exact_match_stderr,flexible-extract": "N/A"},
    "arc_easy": {"alias": "arc_easy", "acc,none": )" + std::to_string(arc_acc) + R"(,
                 "acc_stderr,none": 0.0102, "acc_norm,none": 0.55, "acc_norm_stderr,none": 0.0102}
  },
  "group_subtasks": {"gsm8k": [], "arc_easy": []},
  "configs": {"gsm8k": {"task": "gsm8k", "metadata": {"version": 3.0}},
              "arc_easy": {"task": "arc_easy", "metadata": {"version": 1.0}}},
  "versions": {"gsm8k": 3.0, "arc_easy": 1.0},
  "n-shot": {"gsm8k": 5, "arc_easy": 0},
  "higher_is_better": {"gsm8k": {"exact_match": true}, "arc_easy": {"acc": true, "acc_norm": true}},
  "n-samples": {"gsm8k": {"original": 1319, "effective": 1319},
                "arc_easy": {"original": 2376, "effective": 2376}},
  "config": {"model": "hf", "model_args": "pretrained=EleutherAI/pythia-14m,dtype=float32",
             "model_num_parameters": 14067712, "model_dtype": "torch.float32",
             "batch_size": "8", "batch_sizes": [], "device": "cuda:0", "use_cache": null,
             "limit": null, "bootstrap_iters": 100000, "gen_kwargs": null, "random_seed": 0,
             "numpy_seed": 1234, "torch_seed": 1234, "fewshot_seed": 1234},
  "git_hash": "4e7e0d4",
  "date": 1767322800.5,
  "transformers_version": "5.24.0",
  "lm_eval_version": "0.4.9",
  "upper_git_hash": null,
  "model_source": "hf",
  "model_name": "EleutherAI/pythia-14m",
  "model_name_sanitized": "EleutherAI__pythia-14m",
  "task_hashes": {},
  "total_evaluation_time_seconds": "61.5"
})");
}

// A single-metric file (one accuracy per task), for claim.results_from.
nlohmann::ordered_json single_metric_file() {
  auto j = lm_eval_file(0.25, 0.5);
  j["results"]["gsm8k"].erase("exact_match,flexible-extract");
  j["results"]["gsm8k"].erase("exact_match_stderr,flexible-extract");
  j["results"]["arc_easy"].erase("acc_norm,none");
  j["results"]["arc_easy"].erase("acc_norm_stderr,none");
  return j;
}

template <class F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an audit::InputError, none was thrown";
  return "";
}

const lm::LmEvalResult* find(const std::vector<lm::LmEvalResult>& rows, const std::string& task,
                             const std::string& metric) {
  for (const auto& r : rows)
    if (r.task == task && r.metric == metric) return &r;
  return nullptr;
}

// The last JSON object line a Python script printed; fails the test on a non-zero exit.
json python_json(const std::string& script_path, const std::string& args) {
  auto r = run_command("MLFLOW_ALLOW_FILE_STORE=true '" + python() + "' '" + script_path + "' " +
                       args + " 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto pos = r.output.rfind("\n{");
  const std::string line = pos == std::string::npos ? r.output : r.output.substr(pos + 1);
  auto j = json::parse(line, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.output;
  return j;
}

// A finished run with two metered GPU stages and one without NVML, for the CodeCarbon export.
int64_t add_metered_run(audit::ledger::Ledger& l) {
  audit::ledger::RunInfo ri;
  ri.name = "metered";
  ri.recipe_text = "[claim]\nname = \"metered\"\n";
  ri.recipe_sha256 = audit::sha256_hex(ri.recipe_text);
  ri.host = "gpuhost";
  ri.device = "cuda";
  ri.started_at = 1767225600;  // 2026-01-01 00:00:00 UTC
  const int64_t run = l.begin_run(ri);
  struct St {
    const char* name;
    double wall, energy_j, busy;
    int gpus;
    bool metered;
  };
  const St stages[] = {{"sft", 1800, 2.7e6, 3000, 2, true},
                       {"eval", 600, 3.6e5, 500, 1, true},
                       {"select", 120, 0, 0, 0, false}};
  double t = ri.started_at;
  for (const auto& s : stages) {
    audit::ledger::StageInfo si;
    si.id = l.begin_stage(run, s.name);
    si.run_id = run;
    si.name = s.name;
    si.started_at = t;
    si.ended_at = t + s.wall;
    si.wall_s = s.wall;
    si.cpu_s = s.wall / 2;
    si.gpu_count = s.gpus;
    si.gpu_s = s.gpus * s.wall;
    si.gpu_busy_s = s.busy;
    si.energy_j = s.energy_j;
    si.power_metered = s.metered;
    si.status = "succeeded";
    l.end_stage(si);
    t += s.wall;
  }
  l.end_run(run, audit::ledger::RunStatus::succeeded);
  return run;
}

}  // namespace

// ---- lm-eval: read ----------------------------------------------------------------------------

TEST(LmEvalRead, ReadsTasksMetricsStderrSamplesModelAndVersion) {
  TempDir tmp("lmeval");
  write_file(tmp.file("results.json"), lm_eval_file(0.3412, 0.5934).dump(2));
  const auto rows = lm::read_lm_eval_results(tmp.file("results.json"));
  ASSERT_EQ(rows.size(), 4u);  // two gsm8k filters, acc and acc_norm; stderr rows folded in
  EXPECT_EQ(rows[0].task, "gsm8k");  // the file's task order, not by name
  EXPECT_EQ(rows[0].metric, "exact_match,strict-match");
  EXPECT_EQ(rows[3].metric, "acc_norm,none");
  const auto* g = find(rows, "gsm8k", "exact_match,strict-match");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->metric_name, "exact_match");
  EXPECT_EQ(g->filter, "strict-match");
  EXPECT_DOUBLE_EQ(g->value, 0.3412);
  EXPECT_TRUE(g->has_stderr);
  EXPECT_DOUBLE_EQ(g->stderr_, 0.0136);
  EXPECT_EQ(g->n, 1319);
  EXPECT_EQ(g->n_original, 1319);
  EXPECT_EQ(g->model, "hf");
  EXPECT_EQ(g->model_args, "pretrained=EleutherAI/pythia-14m,dtype=float32");
  EXPECT_EQ(g->model_name, "EleutherAI/pythia-14m");
  EXPECT_EQ(g->lm_eval_version, "0.4.9");
  EXPECT_EQ(g->file, tmp.file("results.json"));
  const auto* flex = find(rows, "gsm8k", "exact_match,flexible-extract");
  ASSERT_NE(flex, nullptr);
  EXPECT_FALSE(flex->has_stderr);  // "N/A"
  const auto* a = find(rows, "arc_easy", "acc,none");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->n, 2376);
  EXPECT_DOUBLE_EQ(a->value, 0.5934);
}

TEST(LmEvalRead, OutputPathFolderPicksTheNewestResultsFile) {
  TempDir tmp("lmeval");
  // lm-eval: <output_path>/<sanitize_model_name(model_name)>/results_<date>.json
  const std::string model_dir = tmp.file(lm::sanitize_model_name("EleutherAI/pythia-14m"));
  EXPECT_EQ(fs::path(model_dir).filename(), "EleutherAI__pythia-14m");
  fs::create_directories(model_dir);
  write_file(model_dir + "/results_2026-01-02T03-04-05.123456.json", lm_eval_file(0.1, 0.2).dump());
  write_file(model_dir + "/results_2026-03-01T00-00-00.000001.json", lm_eval_file(0.4, 0.6).dump());
  write_file(model_dir + "/samples_gsm8k_2026-03-01T00-00-00.000001.jsonl", "{}\n");
  EXPECT_EQ(lm::find_lm_eval_results_file(tmp.path()),
            model_dir + "/results_2026-03-01T00-00-00.000001.json");
  const auto rows = lm::read_lm_eval_results(tmp.path());
  const auto* g = find(rows, "gsm8k", "exact_match,strict-match");
  ASSERT_NE(g, nullptr);
  EXPECT_DOUBLE_EQ(g->value, 0.4);
  // model_args given as an object (lm-eval accepts a dict) is kept as JSON text.
  auto j = lm_eval_file(0.1, 0.2);
  j["config"]["model_args"] = {{"pretrained", "x"}};
  EXPECT_EQ(lm::parse_lm_eval_results(j, "f.json")[0].model_args, R"({"pretrained":"x"})");
}

TEST(LmEvalRead, BadFilesNameTheFileAndTheKey) {
  TempDir tmp("lmeval");
  EXPECT_NE(error_of([&] { lm::read_lm_eval_results(tmp.file("none.json")); })
                .find(tmp.file("none.json")),
            std::string::npos);
  EXPECT_NE(error_of([&] { lm::read_lm_eval_results(tmp.path()); }).find("no results_*.json"),
            std::string::npos);
  write_file(tmp.file("bad.json"), "{\"results\": ");
  std::string m = error_of([&] { lm::read_lm_eval_results(tmp.file("bad.json")); });
  EXPECT_NE(m.find(tmp.file("bad.json")), std::string::npos) << m;
  EXPECT_NE(m.find("not JSON"), std::string::npos) << m;
  write_file(tmp.file("nores.json"), R"({"config": {}})");
  m = error_of([&] { lm::read_lm_eval_results(tmp.file("nores.json")); });
  EXPECT_NE(m.find("'results'"), std::string::npos) << m;
  auto j = lm_eval_file(0.1, 0.2);
  j["results"]["arc_easy"]["acc,none"] = "high";
  m = error_of([&] { lm::parse_lm_eval_results(j, "x.json"); });
  EXPECT_NE(m.find("x.json"), std::string::npos) << m;
  EXPECT_NE(m.find("'results.arc_easy.acc,none'"), std::string::npos) << m;
  j = lm_eval_file(0.1, 0.2);
  j["n-samples"]["gsm8k"]["effective"] = -3;
  m = error_of([&] { lm::parse_lm_eval_results(j, "x.json"); });
  EXPECT_NE(m.find("'n-samples.gsm8k.effective'"), std::string::npos) << m;
}

TEST(LmEvalRead, ToEvalResultsCountsCorrectAndWilsonInterval) {
  auto j = lm_eval_file(0.3412, 0.5934);
  auto rows = lm::parse_lm_eval_results(j, "f.json");
  std::vector<lm::LmEvalResult> acc = lm::select_metric(rows, "exact_match,strict-match");
  ASSERT_EQ(acc.size(), 1u);
  acc.push_back(lm::select_metric(rows, "acc,none").at(0));
  lm::EvalRowOptions o;
  o.model = "tuned";
  o.split = "id";
  const auto ev = lm::to_eval_results(acc, o);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].suite, "gsm8k");
  EXPECT_EQ(ev[0].model, "tuned");
  EXPECT_EQ(ev[0].split, "id");
  EXPECT_EQ(ev[0].n, 1319);
  EXPECT_EQ(ev[0].correct, std::llround(0.3412 * 1319));  // 450
  EXPECT_EQ(ev[0].correct, 450);
  const auto w = audit::stats::wilson(450, 1319);
  EXPECT_DOUBLE_EQ(ev[0].ci_low, w.low);
  EXPECT_DOUBLE_EQ(ev[0].ci_high, w.high);
  EXPECT_EQ(ev[1].suite, "arc_easy");
  EXPECT_EQ(ev[1].correct, std::llround(0.5934 * 2376));
  // Without options: the model is the file's model_name, the split its filter.
  EXPECT_EQ(lm::to_eval_results({acc[0]})[0].model, "EleutherAI/pythia-14m");
  EXPECT_EQ(lm::to_eval_results({acc[0]})[0].split, "strict-match");
  // No n: refused, naming the key.
  j.erase("n-samples");
  auto no_n = lm::select_metric(lm::parse_lm_eval_results(j, "f.json"), "exact_match,strict-match");
  const std::string m = error_of([&] { lm::to_eval_results(no_n); });
  EXPECT_NE(m.find("'results.gsm8k.exact_match,strict-match'"), std::string::npos) << m;
}

TEST(LmEvalWrite, RoundTripsThroughTheReader) {
  std::vector<audit::ledger::EvalResult> rows(2);
  rows[0].id = 7;
  rows[0].model = "tuned";
  rows[0].suite = "arith";
  rows[0].split = "id";
  rows[0].n = 200;
  rows[0].correct = 180;
  rows[0].score = 0.9;
  rows[1] = rows[0];
  rows[1].id = 8;
  rows[1].split = "ood_long";
  rows[1].correct = 40;
  rows[1].score = 0.2;
  lm::WriteOptions o;
  o.model = "audit:mini/tuned";
  const auto j = lm::write_lm_eval_results(rows, o);
  EXPECT_EQ(j["model_name_sanitized"], "audit__mini__tuned");
  EXPECT_FALSE(j.contains("lm_eval_version"));  // not lm-eval: never claimed
  EXPECT_DOUBLE_EQ(j["results"]["arith_id"]["acc_stderr,none"].get<double>(),
                   std::sqrt(0.9 * 0.1 / 199));
  EXPECT_EQ(j["configs"]["arith_ood_long"]["metadata"]["eval_id"], 8);
  const auto back = lm::parse_lm_eval_results(j, "w.json");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].task, "arith_id");
  EXPECT_EQ(back[0].metric, "acc,none");
  EXPECT_DOUBLE_EQ(back[0].value, 0.9);
  EXPECT_EQ(back[0].n, 200);
  EXPECT_EQ(back[1].task, "arith_ood_long");
  EXPECT_EQ(lm::to_eval_results(back)[1].correct, 40);
}

// ---- claim.results_from -----------------------------------------------------------------------

TEST(LmEvalRecipe, ResultsFromFillsClaimResults) {
  TempDir tmp("lmeval");
  fs::create_directories(tmp.file("out/EleutherAI__pythia-14m"));
  write_file(tmp.file("out/EleutherAI__pythia-14m/results_2026-01-02T03-04-05.json"),
             single_metric_file().dump());
  write_file(tmp.file("r.toml"), "[claim]\nname = \"mini\"\nresults_from = \"out\"\n");
  const auto r = audit::recipe::load_recipe(tmp.file("r.toml"));
  ASSERT_EQ(r.claim.results.size(), 2u);
  EXPECT_EQ(r.claim.results[0].benchmark, "gsm8k");
  EXPECT_DOUBLE_EQ(r.claim.results[0].score, 25.0);
  EXPECT_EQ(r.claim.results[0].n, 1319);
  EXPECT_EQ(r.claim.results[1].benchmark, "arc_easy");
  EXPECT_DOUBLE_EQ(r.claim.results[1].score, 50.0);
  EXPECT_EQ(r.claim.results[1].n, 2376);
  EXPECT_NE(r.claim.results_read_from.find("results_2026-01-02T03-04-05.json sha256:"),
            std::string::npos);
  // The resolved recipe stands alone: it reloads without the file, to the same SHA-256.
  fs::remove_all(tmp.file("out"));
  const auto again = audit::recipe::parse_recipe_text(r.resolved_toml, "resolved");
  EXPECT_EQ(again.sha256, r.sha256);
  EXPECT_EQ(again.claim.results.size(), 2u);
}

TEST(LmEvalRecipe, ResultsFromErrorsNameTheRecipeKey) {
  TempDir tmp("lmeval");
  write_file(tmp.file("res.json"), lm_eval_file(0.25, 0.5).dump());
  // Several metrics per task: results_metric chooses.
  write_file(tmp.file("r.toml"), "[claim]\nname = \"mini\"\nresults_from = \"res.json\"\n");
  std::string m = error_of([&] { audit::recipe::load_recipe(tmp.file("r.toml")); });
  EXPECT_NE(m.find(tmp.file("r.toml") + ":3:"), std::string::npos) << m;
  EXPECT_NE(m.find("'claim.results_from'"), std::string::npos) << m;
  EXPECT_NE(m.find("claim.results_metric"), std::string::npos) << m;
  write_file(tmp.file("r2.toml"),
             "[claim]\nname = \"mini\"\nresults_from = \"res.json\"\nresults_metric = \"acc,none\"\n");
  const auto r = audit::recipe::load_recipe(tmp.file("r2.toml"));
  ASSERT_EQ(r.claim.results.size(), 1u);  // gsm8k has no acc,none
  EXPECT_EQ(r.claim.results[0].benchmark, "arc_easy");
  // A listed result that disagrees with the file.
  write_file(tmp.file("r3.toml"),
             "[claim]\nname = \"mini\"\nresults_from = \"res.json\"\nresults_metric = \"acc,none\"\n"
             "[[claim.results]]\nbenchmark = \"arc_easy\"\nscore = 61.0\nn = 2376\n");
  m = error_of([&] { audit::recipe::load_recipe(tmp.file("r3.toml")); });
  EXPECT_NE(m.find("claim.results lists \"arc_easy\""), std::string::npos) << m;
  // A missing file: the recipe's key and the path.
  write_file(tmp.file("r4.toml"), "[claim]\nname = \"mini\"\nresults_from = \"nope/\"\n");
  m = error_of([&] { audit::recipe::load_recipe(tmp.file("r4.toml")); });
  EXPECT_NE(m.find("'claim.results_from'"), std::string::npos) << m;
  EXPECT_NE(m.find("nope"), std::string::npos) << m;
}

// ---- ledger export --format lm-eval ---------------------------------------------------------

TEST(ExportLmEval, WritesTheTunedRowsReadBackByTheReader) {
  TempDir tmp("export");
  const std::string db = tmp.file("a.db");
  int64_t run = 0;
  std::vector<audit::ledger::EvalResult> tuned;
  {
    audit::ledger::Ledger l(db);
    run = audit::testing::add_synthetic_run(l, false, 50);
    for (const auto& e : l.evals(run))
      if (e.model == "tuned") tuned.push_back(e);
  }
  const std::string out = tmp.file("results.json");
  auto r = run_audit("ledger export " + std::to_string(run) + " --format lm-eval --out " + out +
                     " --ledger " + db);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto rows = lm::read_lm_eval_results(out);
  ASSERT_EQ(rows.size(), tuned.size());
  const json j = json::parse(read_file(out));
  EXPECT_EQ(j["config"]["model"], "audit:mini/tuned");
  for (size_t i = 0; i < tuned.size(); ++i) {  // in the ledger's row order
    const auto& e = tuned[i];
    const auto& meta = j["configs"][rows[i].task]["metadata"];
    EXPECT_EQ(meta["eval_id"], e.id);
    EXPECT_EQ(meta["seed"], e.seed);
    EXPECT_EQ(meta["budget"], e.budget);
    EXPECT_DOUBLE_EQ(rows[i].value, e.score);
    EXPECT_EQ(rows[i].n, e.n);
    EXPECT_EQ(rows[i].metric, "acc,none");
  }
  EXPECT_EQ(rows[0].task, "arith_id_seed1_budgetunlimited");
  r = run_audit("ledger export " + std::to_string(run) + " --format lm-eval --model nobody --ledger " + db);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("it has: tuned, base"), std::string::npos) << r.output;
}

// ---- ledger export --format mlflow ----------------------------------------------------------

TEST(ExportMlflow, ReadBackByMlflowsOwnClient) {
  TempDir tmp("export");
  const std::string db = tmp.file("a.db");
  int64_t run = 0;
  audit::exports::FlatParams expected_params;
  std::string sha;
  json loss_sft;
  std::vector<audit::ledger::EvalResult> acc;  // tuned, arith, id, unlimited budget
  {
    audit::ledger::Ledger l(db);
    run = audit::testing::add_synthetic_run(l, false, 50);
    auto info = *l.run(run);
    expected_params = audit::exports::flatten_recipe(info.recipe_text);
    sha = info.recipe_sha256;
    loss_sft = *l.artifact(run, "loss_curve/sft");
    for (const auto& e : l.evals(run))
      if (e.model == "tuned" && e.split == "id" && e.budget == -1) acc.push_back(e);
  }
  const std::string root = tmp.file("mlruns");
  // Twice: the second export replaces the first (one run, not two).
  for (int i = 0; i < 2; ++i) {
    auto r = run_audit("ledger export " + std::to_string(run) + " --format mlflow --out " + root +
                       " --ledger " + db);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const std::string script = tmp.file("read_mlflow.py");
  write_file(script, R"PY(
import json, sys
from mlflow.tracking import MlflowClient
root, claim = sys.argv[1], sys.argv[2]
c = MlflowClient(tracking_uri="file://" + root)
exp = c.get_experiment_by_name(claim)
runs = c.search_runs([exp.experiment_id])
r = runs[0]
rid = r.info.run_id
def hist(k):
    return [[m.step, m.value] for m in c.get_metric_history(rid, k)]
report = c.download_artifacts(rid, "report.html")
print(json.dumps({
    "n_runs": len(runs), "status": r.info.status, "run_name": r.info.run_name,
    "start_time": r.info.start_time, "params": r.data.params, "tags": r.data.tags,
    "metrics": r.data.metrics, "loss_sft": hist("loss.sft"),
    "acc": hist("eval.tuned.arith.id.accuracy"), "ci_low": hist("eval.tuned.arith.id.ci_low"),
    "artifacts": sorted(a.path for a in c.list_artifacts(rid)),
    "report_head": open(report, encoding="utf-8").read(15)}))
)PY");
  const json got = python_json(script, "'" + root + "' mini");
  ASSERT_TRUE(got.is_object());
  EXPECT_EQ(got["n_runs"], 1);
  EXPECT_EQ(got["status"], "FINISHED");
  EXPECT_EQ(got["run_name"], "mini run " + std::to_string(run));
  EXPECT_EQ(got["start_time"], int64_t(1735689600) * 1000);
  // Params: the whole flattened recipe, value for value.
  ASSERT_EQ(got["params"].size(), expected_params.params.size());
  for (const auto& [k, v] : expected_params.params) EXPECT_EQ(got["params"][k], v) << k;
  EXPECT_EQ(got["params"]["claim.name"], "mini");
  // Tags.
  EXPECT_EQ(got["tags"]["audit.recipe_sha256"], sha);
  EXPECT_EQ(got["tags"]["audit.git_commit"], "0123456789ab");
  EXPECT_EQ(got["tags"]["audit.host"], "testhost");
  EXPECT_EQ(got["tags"]["audit.status"], "succeeded");
  EXPECT_TRUE(got["tags"].contains("audit.version"));
  // A loss curve, step for step.
  ASSERT_EQ(got["loss_sft"].size(), loss_sft["step"].size());
  for (size_t i = 0; i < loss_sft["step"].size(); ++i) {
    EXPECT_EQ(got["loss_sft"][i][0], loss_sft["step"][i]);
    EXPECT_DOUBLE_EQ(got["loss_sft"][i][1].get<double>(), loss_sft["loss"][i].get<double>());
  }
  // Eval accuracies: one point per seed (step), with the Wilson low bound beside it.
  ASSERT_EQ(got["acc"].size(), acc.size());
  for (size_t i = 0; i < acc.size(); ++i) {
    EXPECT_EQ(got["acc"][i][0], acc[i].seed);
    EXPECT_DOUBLE_EQ(got["acc"][i][1].get<double>(), acc[i].score);
    EXPECT_DOUBLE_EQ(got["ci_low"][i][1].get<double>(), acc[i].ci_low);
  }
  // Stage meters and cost totals are metrics too.
  EXPECT_DOUBLE_EQ(got["metrics"]["stage.sft.wall_s"].get<double>(), 1800);
  EXPECT_DOUBLE_EQ(got["metrics"]["stage.pretrain.cpu_s"].get<double>(), 7000);
  EXPECT_FALSE(got["metrics"].contains("stage.sft.energy_j"));  // not metered: absent, not 0
  EXPECT_TRUE(got["metrics"].contains("cost.full.usd_mid"));
  EXPECT_EQ(got["artifacts"], json::array({"audit_run.json", "recipe.toml", "report.html"}));
  EXPECT_EQ(got["report_head"], "<!DOCTYPE html>");
}

// ---- ledger export --format codecarbon ------------------------------------------------------

TEST(ExportCodecarbon, HeaderIsCodecarbonsAndValuesAreTheLedgers) {
  TempDir tmp("export");
  const std::string db = tmp.file("a.db");
  int64_t run = 0;
  std::string sft_end;  // the ledger's stage end, as CodeCarbon writes its timestamp (UTC here)
  {
    audit::ledger::Ledger l(db);
    run = add_metered_run(l);
    const std::time_t t = static_cast<std::time_t>(l.stages(run).at(0).ended_at);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    sft_end = buf;
  }
  const std::string out = tmp.file("emissions.csv");
  auto r = run_audit("ledger export " + std::to_string(run) +
                     " --format codecarbon --carbon-intensity 400 --out " + out + " --ledger " + db);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string script = tmp.file("read_csv.py");
  write_file(script, R"PY(
import csv, json, sys
with open(sys.argv[1], newline="") as f:
    rd = csv.reader(f)
    header = next(rd)
    rows = [dict(zip(header, row)) for row in rd]
print(json.dumps({"header": header, "rows": rows}))
)PY");
  const json got = python_json(script, "'" + out + "'");
  // codecarbon 3.3.0 (tag 3.3.0, commit 4dde6e30f061), codecarbon/output_methods/
  // emissions_data.py: EmissionsData's fields in order, copied by hand.
  const std::vector<std::string> codecarbon_3_3_0 = {
      "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions",
      "emissions_rate", "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy",
      "ram_energy", "energy_consumed", "water_consumed", "country_name", "country_iso_code",
      "region", "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version",
      "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
      "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
      "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue"};
  EXPECT_EQ(got["header"].get<std::vector<std::string>>(), codecarbon_3_3_0);
  ASSERT_EQ(got["rows"].size(), 3u);
  auto d = [](const json& v) { return std::stod(v.get<std::string>()); };
  const json& sft = got["rows"][0];
  EXPECT_EQ(sft["project_name"], "metered");
  EXPECT_EQ(sft["run_id"], "run" + std::to_string(run) + "-sft");
  EXPECT_EQ(sft["timestamp"], sft_end);
  EXPECT_DOUBLE_EQ(d(sft["duration"]), 1800);
  EXPECT_DOUBLE_EQ(d(sft["gpu_energy"]), 0.75);  // 2.7e6 J / 3.6e6
  EXPECT_DOUBLE_EQ(d(sft["energy_consumed"]), 0.75);
  EXPECT_DOUBLE_EQ(d(sft["gpu_power"]), 1500);  // 2.7e6 J / 1800 s
  EXPECT_DOUBLE_EQ(d(sft["emissions"]), 0.3);   // 0.75 kWh x 400 g/kWh = 300 g
  EXPECT_DOUBLE_EQ(d(sft["emissions_rate"]), 0.3 / 1800);
  EXPECT_DOUBLE_EQ(d(sft["gpu_count"]), 2);
  EXPECT_NEAR(d(sft["gpu_utilization_percent"]), 100.0 * 3000 / 3600, 1e-9);
  for (const char* k : {"cpu_energy", "ram_energy", "cpu_power", "ram_power", "water_consumed",
                        "country_name", "cpu_model", "gpu_model"})
    EXPECT_EQ(sft[k], "") << k << ": not metered, left empty";
  EXPECT_DOUBLE_EQ(d(got["rows"][1]["gpu_energy"]), 0.1);
  const json& sel = got["rows"][2];  // no NVML: no energy, no emissions
  EXPECT_EQ(sel["gpu_energy"], "");
  EXPECT_EQ(sel["energy_consumed"], "");
  EXPECT_EQ(sel["emissions"], "");
  // Without an intensity, the emissions columns are empty.
  r = run_audit("ledger export " + std::to_string(run) + " --format codecarbon --ledger " + db);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(",1800.0,,,,1500.0,"), std::string::npos) << r.output;
}

// ---- ledger export --format mllog -----------------------------------------------------------

TEST(ExportMllog, MlperfLoggingParsesEveryLineAndItsCheckerFailsOnlyOnSubmissionRules) {
  TempDir tmp("export");
  const std::string db = tmp.file("a.db");
  int64_t run = 0;
  size_t events = 0;
  {
    audit::ledger::Ledger l(db);
    run = audit::testing::add_synthetic_run(l, false, 50);
    events = l.events(run).size();
  }
  const std::string out = tmp.file("run.mllog");
  auto r = run_audit("ledger export " + std::to_string(run) + " --format mllog --out " + out +
                     " --ledger " + db);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string script = tmp.file("check.py");
  write_file(script, R"PY(
import json, subprocess, sys
from mlperf_logging.compliance_checker import mlp_parser
lines, errors = mlp_parser.parse_file(sys.argv[1], ruleset="4.1.0")
p = subprocess.run([sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage",
                    "training", "--ruleset", "4.1.0", "--log_output", sys.argv[2], sys.argv[1]],
                   capture_output=True, text=True)
print(json.dumps({"lines": len(lines), "errors": len(errors), "rc": p.returncode,
                  "out": p.stdout + p.stderr}))
)PY");
  const json got = python_json(script, "'" + out + "' '" + tmp.file("checker.log") + "'");
  EXPECT_EQ(got["errors"], 0);
  EXPECT_EQ(got["lines"], events);
  const std::string log = got["out"];
  EXPECT_NE(got["rc"], 0) << "not an MLPerf submission log: the checker must fail";
  // What docs/ledger.md says a claim audit cannot meet.
  for (const char* k : {"'submission_org'", "'submission_platform'", "'submission_division'",
                        "'cache_clear'", "'init_start'", "'init_stop'", "'train_samples'",
                        "'eval_samples'", "'eval_accuracy'"})
    EXPECT_NE(log.find(std::string("occurrence of ") + k), std::string::npos) << k << "\n" << log;
  // run_stop, the one MLPerf key the export writes with MLPerf's meaning, passes its check.
  EXPECT_EQ(log.find("CHECK for 'run_stop' failed"), std::string::npos) << log;
}
