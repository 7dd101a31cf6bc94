// The synthetic run of the report tests (see synthetic_run.h), written through the Ledger API.
#include "tests/support/synthetic_run.h"

#include <cmath>
#include <sstream>

#include "ledger/store/branch.h"  // record_branch (the run's CI branch)
#include "suites/stats/wilson.h"  // the per-seed eval rows carry their Wilson interval

namespace audit::testing {

using ledger::CostItem;
using ledger::EvalResult;
using ledger::Ledger;
using ledger::Provenance;

std::string synthetic_recipe(bool hostile, double claimed_usd) {
  std::string title = hostile ? R"(Mini <script>alert(1)</script> \"quoted\" & 'single')"
                              : "Mini claim: arithmetic reasoning in miniature";
  std::string headline = hostile ? R"(under <b>5 cents</b> & \"free\")" : "under 5 cents";
  std::string source = hostile ? R"(</pre><script>alert(3)</script><a href=\"http://evil\">x</a>)"
                               : "synthetic test claim (tests/support/synthetic_run.cpp)";
  std::string bench = hostile ? R"(<img src=x onerror=alert(4)>)" : "ARITH-OOD_LONG";
  std::ostringstream t;
  t << "[claim]\nname = \"mini\"\n"
    << "title = \"" << title << "\"\n"
    << "headline = \"" << headline << "\"\n"
    << "sources = [\"" << source << "\"]\n"
    << "claimed_cost_usd = " << claimed_usd << "\n"
    << "gpu_type = \"H100-SXM\"\ngpu_count = 16\nwall_hours = 0.5\n"
    << "results = [\n"
    << "  { benchmark = \"ARITH-ID\", score = 90.0, n = 500, split = \"id\" },\n"
    << "  { benchmark = \"" << bench << "\", score = 80.0, n = 30, split = \"ood_long\" },\n"
    << "  { benchmark = \"AIME24\", score = 56.7, n = 30, split = \"\" },\n"
    << "]\n";
  return t.str();
}

namespace {

CostItem line(int64_t run, const std::string& cat, const std::string& what, double q,
              const std::string& unit, double lo, double mid, double hi, Provenance p,
              const std::string& formula, nlohmann::json inputs = nlohmann::json::object()) {
  CostItem c;
  c.run_id = run;
  c.category = cat;
  c.description = what;
  c.quantity = q;
  c.unit = unit;
  c.price_low = lo;
  c.price_mid = mid;
  c.price_high = hi;
  c.provenance = p;
  c.formula = formula;
  c.inputs = std::move(inputs);
  c.source = "test price band (2025-01)";
  return c;
}

}  // namespace

void add_seed_evals(Ledger& l, int64_t run, const std::string& model, const std::string& split,
                    int64_t budget, std::initializer_list<int64_t> correct,
                    const std::string& suite, int64_t n) {
  int64_t seed = 1;
  for (int64_t c : correct) {
    EvalResult e;
    e.run_id = run;
    e.model = model;
    e.suite = suite;
    e.split = split;
    e.ood = split != "id";
    e.seed = seed++;
    e.budget = budget;
    e.n = n;
    e.correct = c;
    e.score = double(c) / double(n);
    auto w = stats::wilson(c, n);
    e.ci_low = w.low;
    e.ci_high = w.high;
    l.add_eval(e);
  }
}

int64_t add_synthetic_run(Ledger& l, bool hostile, double claimed_usd, int node_rank,
                          int nnodes) {
  SyntheticRunOptions o;
  o.node_rank = node_rank;
  o.nnodes = nnodes;
  o.hostile = hostile;
  o.claimed_usd = claimed_usd;
  return add_synthetic_run(l, o);
}

int64_t add_synthetic_run(Ledger& l, const SyntheticRunOptions& o) {
  const bool hostile = o.hostile;
  const double claimed_usd = o.claimed_usd;
  ledger::RunInfo ri;
  ri.name = o.name;
  ri.recipe_path = "recipes/mini.toml";
  ri.recipe_text = synthetic_recipe(hostile, claimed_usd);
  if (!o.regression_toml.empty()) ri.recipe_text += "\n" + o.regression_toml;
  ri.recipe_sha256 = ledger::sha256_hex(ri.recipe_text);
  ri.host = "testhost";
  ri.git_commit = o.git_commit;
  ri.device = "cpu";
  ri.started_at = o.started_at;
  if (o.node_rank >= 0) {
    ri.node_rank = o.node_rank;
    ri.nnodes = o.nnodes;
    ri.node_from = "test";
  }
  const int64_t run = l.begin_run(ri);
  if (!o.branch.empty()) ledger::record_branch(l, run, {o.branch, "AUDIT_BRANCH", "", ""});

  struct St {
    const char* name;
    double wall, cpu;
  };
  const St stages[] = {{"pretrain", 3600, 7000},
                       {"distill", 60, 50},
                       {"select", 900, 1700},
                       {"sft", 1800, 3500},
                       {"eval", 360, 700}};
  for (const auto& s : stages) {
    int64_t sid = l.begin_stage(run, s.name);
    std::vector<ledger::MeterSample> ms;
    for (int k = 1; k <= 3; ++k) {
      ledger::MeterSample m;
      m.run_id = run;
      m.stage_id = sid;
      m.t = ri.started_at + k;
      m.device = "cpu";
      m.wall_s = s.wall * k / 3;
      m.cpu_s = s.cpu * k / 3;
      m.mem_bytes = 1e8;
      ms.push_back(m);
    }
    l.add_meter_samples(ms);
    ledger::StageInfo si;
    si.id = sid;
    si.run_id = run;
    si.name = s.name;
    si.started_at = ri.started_at;
    si.ended_at = ri.started_at + s.wall;
    si.wall_s = s.wall;
    si.cpu_s = s.cpu;
    si.gpu_count = o.gpu_count;
    si.gpu_s = o.gpu_count * s.wall;
    si.status = "succeeded";
    l.end_stage(si);
    const std::string name = s.name;
    if (o.tokens_per_s > 0 && (name == "pretrain" || name == "sft")) {
      const double tps = name == "sft" ? o.tokens_per_s : 2 * o.tokens_per_s;
      l.append_event(run, sid, "POINT", "train_summary",
                     {{"label", name}, {"tokens", tps * s.wall}, {"tokens_per_s", tps}},
                     "tests/support/synthetic_run.cpp");
    }
  }

  const std::string cpu_f = "cpu_s / 3600 CPU core-hours";
  auto scaled = [&](CostItem c) {
    if (c.category != "claimed") c.quantity *= o.cost_scale;
    return c;
  };
  l.add_cost_item(scaled(line(run, "claimed", "the claim's headline", claimed_usd, "USD", 1, 1, 1,
                       Provenance::declared, "as stated", {{"in_total", false}})));
  l.add_cost_item(scaled(line(run, "final_run", "sft stage: CPU core-hours", 0.5, "CPU-hour", 0.02, 0.04,
                       0.08, Provenance::measured, cpu_f, {{"cpu_s", 1800}})));
  l.add_cost_item(scaled(line(run, "data_generation",
                       hostile ? "teacher <script>alert(2)</script> tokens" : "teacher tokens", 2.0,
                       "1M tokens", 0.4, 0.6, 1.0, Provenance::declared,
                       "samples x tokens per sample", {{"samples", 4000}, {"tokens", 500}})));
  l.add_cost_item(scaled(line(run, "filtering", "select stage: CPU core-hours", 0.25, "CPU-hour", 0.02,
                       0.04, 0.08, Provenance::measured, cpu_f)));
  l.add_cost_item(scaled(line(run, "failed_runs", "aborted run #0: CPU core-hours", 0.2, "CPU-hour", 0.02,
                       0.04, 0.08, Provenance::measured, cpu_f)));
  l.add_cost_item(scaled(line(run, "search", "learning-rate sweep, 6 runs", 3.0, "CPU-hour", 0.02, 0.04,
                       0.08, Provenance::estimated, "6 x final run CPU-hours", {{"runs", 6}})));
  l.add_cost_item(scaled(line(run, "base_model", "pretrain stage: CPU core-hours", 1.0, "CPU-hour", 0.02,
                       0.04, 0.08, Provenance::measured, cpu_f)));
  l.add_cost_item(scaled(line(run, "evaluation", "eval stage: CPU core-hours", 0.1, "CPU-hour", 0.02, 0.04,
                       0.08, Provenance::measured, cpu_f)));
  l.add_cost_item(scaled(line(run, "energy", "facility energy (inside rental prices)", 0.3, "kWh", 0.1,
                       0.15, 0.3, Provenance::estimated, "TDP x hours x PUE",
                       {{"in_total", false}})));

  const std::string suite = hostile ? "arith<script>alert(5)</script>" : "arith";
  const int64_t di = o.tuned_id_delta, dd = o.tuned_ood_delta;
  add_seed_evals(l, run, "tuned", "id", -1, {180 + di, 182 + di, 178 + di}, suite);
  add_seed_evals(l, run, "tuned", "id", 32, {100, 104, 96}, suite);
  add_seed_evals(l, run, "tuned", "id", 64, {150, 152, 148}, suite);
  add_seed_evals(l, run, "tuned", "ood_long", -1, {40 + dd, 44 + dd, 36 + dd}, suite);
  add_seed_evals(l, run, "tuned", "ood_heldout", -1, {60 + dd, 62 + dd, 58 + dd}, suite);
  add_seed_evals(l, run, "tuned", "ood_format", -1, {150 + dd, 148 + dd, 152 + dd}, suite);
  add_seed_evals(l, run, "base", "id", -1, {60, 64, 56}, suite);
  add_seed_evals(l, run, "base", "id", 32, {40, 42, 38}, suite);
  add_seed_evals(l, run, "base", "id", 64, {56, 58, 54}, suite);
  add_seed_evals(l, run, "base", "ood_long", -1, {10, 12, 8}, suite);
  add_seed_evals(l, run, "base", "ood_heldout", -1, {20, 22, 18}, suite);
  add_seed_evals(l, run, "base", "ood_format", -1, {30, 34, 26}, suite);

  nlohmann::json pre = {{"step", nlohmann::json::array()}, {"loss", nlohmann::json::array()}};
  for (int i = 1; i <= 120; ++i) {
    pre["step"].push_back(i * 10);
    pre["loss"].push_back(2.5 * std::exp(-i / 30.0) + 0.6);
  }
  nlohmann::json sft = {{"step", nlohmann::json::array()}, {"loss", nlohmann::json::array()}};
  for (int i = 1; i <= 60; ++i) {
    sft["step"].push_back(i);
    sft["loss"].push_back(1.1 * std::exp(-i / 15.0) + 0.2);
  }
  l.put_artifact(run, 0, "loss_curve/pretrain", pre);
  l.put_artifact(run, 0, "loss_curve/sft", sft);
  nlohmann::json sel = {{"pool", 4000},
                        {"after_quality", 3912},
                        {"after_difficulty", 2107},
                        {"after_diversity", 1000}};
  if (hostile) sel["<script>alert(6)</script>"] = 1;
  l.put_artifact(run, 0, "selection_counts", sel);
  l.put_artifact(run, 0, "trace_errors",
                 {{"kinds", {"restatement", "operands", "fact", "none", "answer"}},
                  {"tuned",
                   {{"42", {{"id", {{"restatement", 3}, {"operands", 0}, {"fact", 5}, {"none", 90}, {"answer", 2}}}}},
                    {"43", {{"id", {{"restatement", 1}, {"operands", 0}, {"fact", 7}, {"none", 92}, {"answer", 0}}}}}}}});
  l.put_artifact(run, 0, "decontamination",
                 {{"ngram", 8},
                  {"splits",
                   {{"id", {{"overlapping", 0}, {"checked", 600}}},
                    {"ood_long", {{"overlapping", 0}, {"checked", 600}}}}}});
  l.end_run(run, ledger::RunStatus::succeeded);
  return run;
}

}  // namespace audit::testing
