// Tests of reports/: the SVG chart writer, the cost and eval roll-ups, the verdicts (rules,
// idempotent storage), the report's model (every figure of the page, read from the ledger rows),
// the HTML report (the figures in their sections, escaping of hostile recipe and data text, no
// script or network, byte-identical regeneration from the ledger alone), and the `audit report`
// (read-only: the ledger's bytes do not change) and `audit verdicts` verbs.
//
// The ledger is populated through the Ledger API with a tiny synthetic run (test input,
// tests/support/synthetic_run.h): its figures are chosen so that the expected totals and
// intervals can be computed by hand below.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>

#include "ledger/store/ledger.h"
#include "reports/html/html_report.h"
#include "reports/html/sections.h"  // print_script, print_script_hash
#include "reports/html/svg.h"
#include "reproduce/verdicts/verdicts.h"
#include "tests/support/support.h"
#include "tests/support/synthetic_run.h"  // add_synthetic_run: the run the figures below come from

namespace fs = std::filesystem;
using audit::ledger::CostItem;
using audit::ledger::EvalResult;
using audit::ledger::Ledger;
using audit::ledger::Provenance;

namespace {

using namespace audit::reports;

// tests/support's TempDir, with its path as the fs::path these tests join onto.
struct TempDir {
  audit::testing::TempDir dir;
  fs::path path;
  explicit TempDir(const std::string& tag) : dir("audit_report_" + tag), path(dir.path()) {}
};

// A run with no rows but its start and end, and a recipe text that does not parse.
int64_t add_bare_run(Ledger& l) {
  audit::ledger::RunInfo ri;
  ri.name = "bare";
  ri.recipe_text = "this is [not toml";
  ri.recipe_sha256 = audit::ledger::sha256_hex(ri.recipe_text);
  const int64_t run = l.begin_run(ri);
  l.end_run(run, audit::ledger::RunStatus::aborted);
  return run;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t i = s.find(needle); i != std::string::npos; i = s.find(needle, i + 1)) ++n;
  return n;
}

// The `audit` binary with args: its exit code; and with what it printed.
int run_cli(const std::string& args) {
  std::string cmd = std::string(audit::testing::audit_binary()) + " " + args + " >/dev/null 2>&1";
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

audit::testing::CommandResult cli(const std::string& args) {
  return audit::testing::run_command(std::string(audit::testing::audit_binary()) + " " + args +
                                     " 2>&1");
}

const audit::ledger::Verdict* find_claim(const std::vector<audit::ledger::Verdict>& v,
                                         const std::string& prefix) {
  for (const auto& x : v)
    if (x.claim.rfind(prefix, 0) == 0) return &x;
  return nullptr;
}

// ---- svg ----

TEST(Svg, EscapesEveryHtmlMetacharacter) {
  EXPECT_EQ(svg::escape(R"(<a href="x">&'</a>)"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
}

TEST(Svg, NumbersAreCompactAndDeterministic) {
  EXPECT_EQ(svg::num(0.25), "0.25");
  EXPECT_EQ(svg::num(1200), "1200");
  EXPECT_EQ(svg::num(3.5e24), "3.5e+24");
  EXPECT_EQ(svg::num(0.000123456, 3), "0.000123");
  EXPECT_EQ(svg::num(-0.0), "0");
  EXPECT_EQ(svg::num(std::nan("")), "n/a");
}

TEST(Svg, NiceTicksCoverTheRangeWithRoundSteps) {
  auto t = svg::nice_ticks(0, 0.93, 5);
  ASSERT_GE(t.size(), 3u);
  EXPECT_DOUBLE_EQ(t.front(), 0);
  EXPECT_GE(t.back(), 0.93);
  double step = t[1] - t[0];
  EXPECT_NEAR(step, 0.2, 1e-12);
  for (size_t i = 1; i < t.size(); ++i) EXPECT_NEAR(t[i] - t[i - 1], step, 1e-12);
  auto u = svg::nice_ticks(-3, 17, 4);
  EXPECT_LE(u.front(), -3);
  EXPECT_GE(u.back(), 17);
  EXPECT_EQ(svg::tick_decimals(0.05), 2);
  EXPECT_EQ(svg::tick_decimals(5), 0);
}

TEST(Svg, LogTicksArePowersOfTen) {
  auto t = svg::log_ticks(0.003, 1.4e6);
  ASSERT_GE(t.size(), 4u);
  EXPECT_LE(t.front(), 0.003);
  EXPECT_GE(t.back(), 1.4e6);
  for (double v : t) {
    double e = std::log10(v);
    EXPECT_NEAR(e, std::round(e), 1e-9) << v;
  }
}

TEST(Svg, ScaleMapsLinearAndLog) {
  svg::Scale lin{0, 10, 100, 200, false};
  EXPECT_DOUBLE_EQ(lin(5), 150);
  svg::Scale lg{1, 1000, 0, 300, true};
  EXPECT_NEAR(lg(10), 100, 1e-9);
  EXPECT_NEAR(lg(100), 200, 1e-9);
}

TEST(Svg, WaterfallHasBarsWhiskersAxesAndLabels) {
  svg::Frame f;
  f.title = "Costs";
  f.y_label = "USD";
  std::vector<svg::WaterfallStep> steps = {{"Claimed", 50, 50, 50, true, "#c9861a"},
                                           {"Final run", 40, 60, 90, true, "#2b6cb0"},
                                           {"+ data", 100, 150, 300, false, "#c0553f"},
                                           {"Full", 140, 210, 390, true, "#243b53"}};
  std::string s = svg::waterfall(f, steps, false, [](double v) { return "$" + svg::num(v); });
  EXPECT_EQ(s.rfind("<svg", 0), 0u);
  EXPECT_EQ(count(s, "<rect"), 4u);
  EXPECT_NE(s.find(">Costs</text>"), std::string::npos);
  EXPECT_NE(s.find(">USD</text>"), std::string::npos);
  EXPECT_NE(s.find(">+$150</text>"), std::string::npos);
  EXPECT_NE(s.find(">$210</text>"), std::string::npos);
  EXPECT_NE(s.find(">+ data</text>"), std::string::npos);
  // Three bars have a band: each whisker is three lines.
  EXPECT_GE(count(s, "<line"), 9u);
  // Same input, same bytes.
  EXPECT_EQ(s, svg::waterfall(f, steps, false, [](double v) { return "$" + svg::num(v); }));
}

TEST(Svg, IntervalChartDrawsAPointPerGroupAndALegend) {
  svg::Frame f;
  std::vector<svg::IntervalPoint> pts = {{"id", "base", 0.3, 0.26, 0.34, {0.28, 0.3, 0.32}},
                                         {"id", "tuned", 0.9, 0.87, 0.92, {0.89, 0.9, 0.91}},
                                         {"ood", "tuned", 0.2, 0.17, 0.23, {}}};
  std::string s = svg::interval_chart(f, {"id", "ood"}, {{"base", "#999"}, {"tuned", "#123"}}, pts,
                                      0, 1, [](double v) { return svg::num(v * 100) + "%"; });
  EXPECT_EQ(count(s, "r=\"5.5\""), 3u);  // one dot per point
  EXPECT_EQ(count(s, "r=\"3.2\""), 6u);  // one ring per seed
  EXPECT_NE(s.find(">base</text>"), std::string::npos);
  EXPECT_NE(s.find(">tuned</text>"), std::string::npos);
  EXPECT_NE(s.find(">90%</text>"), std::string::npos);
}

TEST(Svg, LineChartWithCategoriesAndHostileNamesEscapes) {
  svg::Frame f;
  f.title = "<script>x</script>";
  svg::Series s{"a<b", "#123", "", {0, 1, 2}, {0.1, 0.5, 0.7}, {}, {}, true};
  svg::LineOptions o;
  o.x_labels = {"32", "64", "unlimited"};
  std::string out = svg::line_chart(f, {s}, o);
  EXPECT_EQ(out.find("<script"), std::string::npos);
  EXPECT_NE(out.find("&lt;script&gt;"), std::string::npos);
  EXPECT_NE(out.find(">a&lt;b</text>"), std::string::npos);
  EXPECT_NE(out.find(">unlimited</text>"), std::string::npos);
  EXPECT_EQ(count(out, "<polyline"), 1u);
}

// ---- formatting, costs, evals ----

TEST(Verdicts, MoneyFormatting) {
  EXPECT_EQ(money(50), "$50");
  EXPECT_EQ(money(1.402), "$1.40");
  EXPECT_EQ(money(0.901), "$0.90");
  EXPECT_EQ(money(0.0042), "$0.0042");
  EXPECT_EQ(money(12345.6), "$12,346");
  EXPECT_EQ(money(5.576e6), "$5.58M");
  EXPECT_EQ(money(3.2e9), "$3.2B");
  EXPECT_EQ(money_band({0.01, 0.02, 0.04}), "$0.01–$0.04 (mid $0.02)");
  EXPECT_EQ(money_band(Band::point(50)), "$50");
  EXPECT_EQ(percent(0.9), "90.0%");
  EXPECT_EQ(points(-0.123), "-12.3 pts");
  EXPECT_EQ(share(0.0356633), "3.6%");
}

// Money is never printed in exponent notation (axes, labels, cards): tiny, huge and zero values.
TEST(Verdicts, MoneyNeverUsesExponents) {
  EXPECT_EQ(money(0), "$0");
  EXPECT_EQ(money(1e-5), "$0.00001");
  EXPECT_EQ(money(1.23e-5), "$0.000012");
  EXPECT_EQ(money(2e-7), "$0.0000002");
  EXPECT_EQ(money(-3e-6), "-$0.000003");
  EXPECT_EQ(money(1e-18), "<$0.000000000000001");
  EXPECT_EQ(money(4.5e12), "$4.5T");
  EXPECT_EQ(money(1.2345e18), "$1,234,500T");
  EXPECT_EQ(share(1.4e-9), "0.00000014%");
  EXPECT_EQ(audit::text::decimal(0.000012345, 3), "0.0000123");
  EXPECT_EQ(audit::text::decimal(1234.6, 2), "1235");
  for (double v = 1e-14; v < 1e20; v *= 3.7) {
    for (const std::string& s : {money(v), money(-v), share(v)}) {
      EXPECT_EQ(s.find("e-"), std::string::npos) << v << " -> " << s;
      EXPECT_EQ(s.find("e+"), std::string::npos) << v << " -> " << s;
    }
  }
}

TEST(Verdicts, WilsonIntervalMatchesTheFormula) {
  auto w = wilson(17, 30);  // s1's AIME24: 17 of 30
  EXPECT_NEAR(w.low, 0.39197307, 1e-7);
  EXPECT_NEAR(w.high, 0.72622514, 1e-7);
  auto z = wilson(0, 10);
  EXPECT_DOUBLE_EQ(z.low, 0);
  EXPECT_NEAR(z.high, 0.27753280, 1e-7);
  auto all = wilson(10, 10);
  EXPECT_NEAR(all.low, 0.72246720, 1e-7);
  EXPECT_LE(all.high, 1.0);
  auto none = wilson(0, 0);
  EXPECT_EQ(none.low, 0);
  EXPECT_EQ(none.high, 1);
}

TEST(Verdicts, RollupOfTheSyntheticRun) {
  TempDir d("rollup");
  Ledger l((d.path / "a.db").string());
  int64_t run = audit::testing::add_synthetic_run(l, false, 0.05);
  auto items = l.cost_items(run);
  CostRollup cr = roll_up_costs(items, nullptr);
  EXPECT_TRUE(cr.has_claim);
  EXPECT_DOUBLE_EQ(cr.claimed.mid, 0.05);
  EXPECT_NEAR(cr.final_run.low, 0.01, 1e-12);
  EXPECT_NEAR(cr.final_run.mid, 0.02, 1e-12);
  EXPECT_NEAR(cr.final_run.high, 0.04, 1e-12);
  EXPECT_NEAR(cr.data.mid, 1.2 + 0.01, 1e-12);  // teacher tokens + filtering
  EXPECT_NEAR(cr.failed_and_search.mid, 0.008 + 0.12, 1e-12);
  EXPECT_NEAR(cr.base_model.mid, 0.04, 1e-12);
  EXPECT_NEAR(cr.evaluation_and_other.mid, 0.004, 1e-12);
  // Claimed and energy lines are not in the full cost.
  EXPECT_NEAR(cr.full.low, 0.901, 1e-12);
  EXPECT_NEAR(cr.full.mid, 1.402, 1e-12);
  EXPECT_NEAR(cr.full.high, 2.404, 1e-12);
  EXPECT_EQ(cr.lines, 9);
}

TEST(Verdicts, EvalCellsPoolSeeds) {
  TempDir d("cells");
  Ledger l((d.path / "a.db").string());
  int64_t run = audit::testing::add_synthetic_run(l, false, 0.05);
  auto cells = aggregate_evals(l.evals(run));
  const EvalCell* t = headline_cell(cells, "tuned", "id");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->budget, -1);  // unlimited preferred over 32 and 64
  EXPECT_EQ(t->seeds, 3);
  EXPECT_EQ(t->n, 600);
  EXPECT_EQ(t->correct, 540);
  EXPECT_NEAR(t->mean, 0.9, 1e-12);
  EXPECT_NEAR(t->min, 0.89, 1e-12);
  EXPECT_NEAR(t->max, 0.91, 1e-12);
  EXPECT_NEAR(t->ci.low, 0.87339231, 1e-7);
  EXPECT_NEAR(t->ci.high, 0.92151833, 1e-7);
  auto splits = splits_of(cells);
  ASSERT_EQ(splits.size(), 4u);
  EXPECT_EQ(splits[0].first, "id");
  EXPECT_FALSE(splits[0].second);
  EXPECT_TRUE(splits[1].second);
  // base before tuned; within a model id first; budgets ascending with unlimited last.
  EXPECT_EQ(cells.front().model, "base");
  EXPECT_EQ(cells.front().split, "id");
  EXPECT_EQ(cells.front().budget, 32);
}

// ---- verdicts ----

TEST(Verdicts, RulesOnTheSyntheticRun) {
  TempDir d("rules");
  Ledger l((d.path / "a.db").string());
  int64_t run = audit::testing::add_synthetic_run(l, false, 0.05);
  auto v = compute_verdicts(l, run);
  ASSERT_EQ(v.size(), 6u);  // cost, 3 results, ID vs OOD, tuned vs base

  const auto* cost = find_claim(v, "cost: under 5 cents");
  ASSERT_NE(cost, nullptr);
  EXPECT_EQ(cost->verdict, kSupported);
  EXPECT_EQ(cost->claimed, "$0.05 (8 H100-SXM GPU-hours)");
  EXPECT_NE(cost->measured.find("final run $0.01–$0.04 (mid $0.02) (measured)"), std::string::npos);
  EXPECT_NE(cost->measured.find("full cost $0.90–$2.40 (mid $1.40)"), std::string::npos);
  EXPECT_NE(cost->measured.find("headline covers 3.6% of full cost"), std::string::npos);

  const auto* id = find_claim(v, "result: ARITH-ID");
  ASSERT_NE(id, nullptr);
  EXPECT_EQ(id->verdict, kSupported);
  EXPECT_NE(id->measured.find("90.0% [87.3%–92.2%]"), std::string::npos);
  EXPECT_NE(id->reason.find("inside our 95% interval"), std::string::npos);

  const auto* lng = find_claim(v, "result: ARITH-OOD_LONG");
  ASSERT_NE(lng, nullptr);
  EXPECT_EQ(lng->verdict, kNotSupported);
  EXPECT_NE(lng->reason.find("above our 95% interval"), std::string::npos);
  EXPECT_NE(lng->reason.find("30 questions only"), std::string::npos);

  const auto* aime = find_claim(v, "result: AIME24");
  ASSERT_NE(aime, nullptr);
  EXPECT_EQ(aime->verdict, kNotReproducible);
  EXPECT_NE(aime->reason.find("is not evaluated by this recipe"), std::string::npos);
  EXPECT_NE(aime->claimed.find("17 of 30"), std::string::npos);

  const auto* gen = find_claim(v, "generalization: ID vs OOD");
  ASSERT_NE(gen, nullptr);
  EXPECT_EQ(gen->verdict, kNotSupported);
  EXPECT_NE(gen->reason.find("3 of 3 OOD splits fall below"), std::string::npos);
  EXPECT_NE(gen->measured.find("ood_long 20.0%"), std::string::npos);
  EXPECT_NE(gen->measured.find("(gap +70.0 pts)"), std::string::npos);

  const auto* tvb = find_claim(v, "generalization: tuned vs base");
  ASSERT_NE(tvb, nullptr);
  EXPECT_EQ(tvb->verdict, kSupported);
  EXPECT_NE(tvb->measured.find("id: base 30.0% → tuned 90.0% (+60.0 pts)"), std::string::npos);
}

// A run with one tuned eval row per named split or suite (n questions, k correct), and a
// recipe whose claim results are `results` (TOML inline tables) with these [[eval.suites]].
int64_t add_result_run(Ledger& l, const std::string& results, const std::string& base_extra,
                       const std::vector<std::tuple<std::string, bool, int64_t, int64_t>>& rows) {
  audit::ledger::RunInfo ri;
  ri.name = "results";
  ri.recipe_text = "[claim]\nname = \"results\"\nresults = [\n" + results + "]\n[base]\n" +
                   base_extra +
                   "[eval]\nsuites = [\n"
                   "  { name = \"MATH500\", path = \"m.jsonl\", kind = \"math\" },\n"
                   "  { name = \"GPQA-Diamond\", path = \"g.jsonl\", kind = \"choice\", ood = true },\n"
                   "]\n";
  ri.recipe_sha256 = audit::ledger::sha256_hex(ri.recipe_text);
  const int64_t run = l.begin_run(ri);
  for (const auto& [split, ood, n, k] : rows) {
    audit::ledger::EvalResult e;
    e.run_id = run;
    e.model = "tuned";
    e.suite = split;
    e.split = split;
    e.ood = ood;
    e.n = n;
    e.correct = k;
    e.score = double(k) / double(n);
    l.add_eval(e);
  }
  l.end_run(run, audit::ledger::RunStatus::succeeded);
  return run;
}

TEST(Verdicts, AStandInSplitNeverConfirmsOrRefutesABenchmark) {
  TempDir d("standin");
  Ledger l((d.path / "a.db").string());
  const int64_t run = add_result_run(
      l,
      "  { benchmark = \"MATH500\", score = 93.0, n = 500, split = \"id\" },\n"
      "  { benchmark = \"arith-id\", score = 93.0, n = 200, split = \"id\" },\n",
      "", {{"id", false, 200, 20}});
  auto v = compute_verdicts(l, run);
  const auto* math = find_claim(v, "result: MATH500 93%");
  ASSERT_NE(math, nullptr);
  EXPECT_EQ(math->verdict, kNotReproducible) << "10% on a stand-in must not refute MATH500 93%";
  EXPECT_NE(math->reason.find("stand-in cannot confirm or refute"), std::string::npos) << math->reason;
  EXPECT_NE(math->measured.find("10.0%"), std::string::npos) << "the stand-in's figure is shown";
  // The miniature's own claim on its own split is judged.
  const auto* own = find_claim(v, "result: arith-id 93%");
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(own->verdict, kNotSupported);
}

TEST(Verdicts, ASuiteJudgesOnlyTheBenchmarkOfItsNameAndSize) {
  TempDir d("suites");
  Ledger l((d.path / "a.db").string());
  const std::vector<std::tuple<std::string, bool, int64_t, int64_t>> rows = {
      {"MATH500", false, 500, 470}, {"GPQA-Diamond", true, 40, 10}};
  const int64_t run = add_result_run(
      l,
      "  { benchmark = \"MATH500\", score = 93.0, n = 500, suite = \"MATH500\" },\n"
      "  { benchmark = \"GPQA-Diamond\", score = 59.6, n = 198, suite = \"GPQA-Diamond\" },\n"
      "  { benchmark = \"AIME24\", score = 56.7, n = 30, suite = \"MATH500\" },\n",
      "", rows);
  auto v = compute_verdicts(l, run);
  const auto* math = find_claim(v, "result: MATH500 93%");
  ASSERT_NE(math, nullptr);
  EXPECT_EQ(math->verdict, kSupported) << math->reason;  // 93% inside [91.5%, 95.6%]
  const auto* gpqa = find_claim(v, "result: GPQA-Diamond 59.6%");
  ASSERT_NE(gpqa, nullptr);
  EXPECT_EQ(gpqa->verdict, kNotReproducible) << "40 of 198 questions: a subset cannot judge";
  EXPECT_NE(gpqa->reason.find("has 40 questions and GPQA-Diamond has 198"), std::string::npos)
      << gpqa->reason;
  const auto* aime = find_claim(v, "result: AIME24 56.7%");
  ASSERT_NE(aime, nullptr);
  EXPECT_EQ(aime->verdict, kNotReproducible);
  EXPECT_NE(aime->reason.find("suite 'MATH500' is not AIME24"), std::string::npos) << aime->reason;
  // ID vs OOD reads the suites: MATH500 is the ID one.
  const auto* gen = find_claim(v, "generalization: ID vs OOD");
  ASSERT_NE(gen, nullptr);
  EXPECT_NE(gen->measured.find("ID 94.0%"), std::string::npos) << gen->measured;
  EXPECT_NE(gen->measured.find("GPQA-Diamond 25.0%"), std::string::npos) << gen->measured;

  // The same rows from a run whose model is not the claim's: nothing is judged.
  const int64_t other = add_result_run(
      l, "  { benchmark = \"MATH500\", score = 93.0, n = 500, suite = \"MATH500\" },\n",
      "claimed_model = \"Qwen2.5-32B-Instruct (this run uses tiny/config.json: hidden 5120 -> 32)\"\n",
      rows);
  const auto v2 = compute_verdicts(l, other);
  const auto* m2 = find_claim(v2, "result: MATH500 93%");
  ASSERT_NE(m2, nullptr);
  EXPECT_EQ(m2->verdict, kNotReproducible);
  EXPECT_NE(m2->reason.find("another model than the claim's"), std::string::npos) << m2->reason;
}

TEST(Verdicts, CostClaimBelowTheMeasuredFinalRunIsNotSupported) {
  TempDir d("cheap");
  Ledger l((d.path / "a.db").string());
  int64_t run = audit::testing::add_synthetic_run(l, false, 0.005);
  auto v = compute_verdicts(l, run);
  const auto* cost = find_claim(v, "cost:");
  ASSERT_NE(cost, nullptr);
  EXPECT_EQ(cost->verdict, kNotSupported);
  EXPECT_NE(cost->reason.find("costs more than the claimed figure"), std::string::npos);
}

TEST(Verdicts, IdVsOodIsNotJudgedWhenTheTunedModelScoresNearZeroInDistribution) {
  TempDir d("floor");
  Ledger l((d.path / "a.db").string());
  audit::ledger::RunInfo ri;
  ri.name = "floor";
  ri.recipe_text = audit::testing::synthetic_recipe(false, 0.05);
  ri.recipe_sha256 = audit::ledger::sha256_hex(ri.recipe_text);
  int64_t run = l.begin_run(ri);
  auto judged = [&](std::initializer_list<int64_t> id_correct) {
    audit::testing::add_seed_evals(l, run, "tuned", "id", -1, id_correct, "arith");
    audit::testing::add_seed_evals(l, run, "tuned", "ood_long", -1, {0, 1, 0}, "arith");
    auto v = compute_verdicts(l, run);
    return *find_claim(v, "generalization: ID vs OOD");
  };
  // 2 of 600 in distribution: Wilson interval 0.1%-1.2%, not above the 10% floor.
  auto low = judged({1, 0, 1});
  EXPECT_EQ(low.verdict, kNotReproducible);
  EXPECT_NE(low.reason.find("not established above 10.0% even in distribution"), std::string::npos)
      << low.reason;
  l.end_run(run, audit::ledger::RunStatus::succeeded);

  // 0 of 6 (a tiny eval): the interval reaches 39%, but nothing shows an accuracy to hold.
  Ledger l0((d.path / "c.db").string());
  int64_t run0 = l0.begin_run(ri);
  audit::testing::add_seed_evals(l0, run0, "tuned", "id", -1, {0}, "arith", 6);
  audit::testing::add_seed_evals(l0, run0, "tuned", "ood_long", -1, {0}, "arith", 6);
  EXPECT_EQ(find_claim(compute_verdicts(l0, run0), "generalization: ID vs OOD")->verdict,
            kNotReproducible);

  // Above the floor the usual rule applies (here: OOD falls below ID).
  Ledger l2((d.path / "b.db").string());
  int64_t run2 = l2.begin_run(ri);
  audit::testing::add_seed_evals(l2, run2, "tuned", "id", -1, {40, 44, 42}, "arith");
  audit::testing::add_seed_evals(l2, run2, "tuned", "ood_long", -1, {0, 1, 0}, "arith");
  auto v2 = compute_verdicts(l2, run2);
  EXPECT_EQ(find_claim(v2, "generalization: ID vs OOD")->verdict, kNotSupported);
}

TEST(Verdicts, MissingRowsAreNotReproducibleWithAReason) {
  TempDir d("empty");
  Ledger l((d.path / "a.db").string());
  audit::ledger::RunInfo ri;
  ri.name = "bare";
  ri.recipe_text = audit::testing::synthetic_recipe(false, 0.05);
  ri.recipe_sha256 = audit::ledger::sha256_hex(ri.recipe_text);
  int64_t run = l.begin_run(ri);
  l.end_run(run, audit::ledger::RunStatus::failed);
  auto v = compute_verdicts(l, run);
  for (const auto& x : v) {
    EXPECT_EQ(x.verdict, kNotReproducible) << x.claim;
    EXPECT_FALSE(x.reason.empty()) << x.claim;
  }
  EXPECT_NE(find_claim(v, "cost:")->reason.find("no final_run cost line"), std::string::npos);
}

TEST(Verdicts, StoringIsIdempotent) {
  TempDir d("idem");
  Ledger l((d.path / "a.db").string());
  int64_t run = audit::testing::add_synthetic_run(l, false, 0.05);
  EXPECT_EQ(store_verdicts(l, run), 6);
  EXPECT_EQ(l.verdicts(run).size(), 6u);
  EXPECT_EQ(store_verdicts(l, run), 0);
  EXPECT_EQ(store_verdicts(l, run), 0);
  EXPECT_EQ(l.verdicts(run).size(), 6u);
  // New rows change a verdict: a new version is appended, and the latest one is read.
  audit::testing::add_synthetic_run(l, false, 0.05);  // another run: must not affect this one
  EXPECT_EQ(store_verdicts(l, run), 0);
  auto cur = current_verdicts(l, run);
  EXPECT_EQ(cur.size(), 6u);
  EXPECT_TRUE(any_not_supported(cur));
  EXPECT_TRUE(l.verify().ok) << l.verify().message;
}

TEST(Verdicts, CurrentVerdictsTakeTheLatestVersionPerClaim) {
  TempDir d("latest");
  Ledger l((d.path / "a.db").string());
  int64_t run = audit::testing::add_synthetic_run(l, false, 0.05);
  audit::ledger::Verdict old;
  old.run_id = run;
  old.kind = "cost";
  old.claim = "cost: under 5 cents";
  old.claimed = "$0.05";
  old.measured = "stale";
  old.verdict = kNotSupported;
  old.reason = "an older rule";
  l.add_verdict(old);
  EXPECT_EQ(store_verdicts(l, run), 6);  // the cost verdict differs from the stored one
  auto cur = current_verdicts(l, run);
  ASSERT_EQ(cur.size(), 6u);
  EXPECT_EQ(cur[0].claim, "cost: under 5 cents");
  EXPECT_EQ(cur[0].verdict, kSupported);
  EXPECT_EQ(l.verdicts(run).size(), 7u);
}

// ---- verdicts stored where a run ends ----

// A run that fails after it began still ends with its verdicts stored (the report only reads
// them). `audit run` refuses base.train_here = false inside the run, after its row is written.
TEST(RunEndVerdicts, AFailedRunEndsWithItsVerdictsStored) {
  AUDIT_SKIP_WITHOUT_TORCH();
  TempDir d("failed_run");
  const std::string db = (d.path / "audit.db").string();
  const std::string recipe = audit::testing::source_dir() + "/recipes/s1-mini.toml";
  // The work folder cannot be made (a file is in the way): the run fails after it was opened.
  const std::string blocked = (d.path / "blocked").string();
  audit::testing::write_file(blocked, "a file, not a folder");
  auto r = cli("run " + recipe + " --quiet --ledger " + db + " --work-dir " + blocked + "/work");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  Ledger l(db, audit::ledger::OpenMode::read_only);
  const int64_t run = l.latest_run();
  ASSERT_GT(run, 0) << r.output;
  EXPECT_EQ(l.run(run)->status, audit::ledger::RunStatus::failed);
  const auto stored = current_verdicts(l, run);
  EXPECT_EQ(stored.size(), compute_verdicts(l, run).size());
  EXPECT_EQ(stored.front().verdict, kNotReproducible);
  EXPECT_EQ(read_report_model(l, run).verdicts_not_stored, 0u);
}

// ---- the report's model ----

TEST(ReportModel, FiguresOfTheSyntheticRun) {
  TempDir d("model");
  Ledger l((d.path / "a.db").string());
  int64_t run = audit::testing::add_synthetic_run(l, false, 0.05);
  store_verdicts(l, run);  // as `audit run` does when a run ends
  const ReportModel m = read_report_model(l, run);

  // The claim and the three totals.
  EXPECT_EQ(m.claim.title, "Mini claim: arithmetic reasoning in miniature");
  EXPECT_EQ(m.claim.headline, "under 5 cents");
  EXPECT_DOUBLE_EQ(m.claim.claimed_gpu_hours, 8);
  EXPECT_EQ(m.claim.gpu_type, "H100-SXM");
  EXPECT_TRUE(m.claim.parse_error.empty());
  EXPECT_TRUE(m.costs.has_claim);
  EXPECT_DOUBLE_EQ(m.costs.claimed.mid, 0.05);
  EXPECT_NEAR(m.costs.final_run.low, 0.01, 1e-12);
  EXPECT_NEAR(m.costs.final_run.mid, 0.02, 1e-12);
  EXPECT_NEAR(m.costs.final_run.high, 0.04, 1e-12);
  EXPECT_NEAR(m.costs.full.low, 0.901, 1e-12);
  EXPECT_NEAR(m.costs.full.mid, 1.402, 1e-12);
  EXPECT_NEAR(m.costs.full.high, 2.404, 1e-12);
  EXPECT_EQ(share(m.costs.claimed.mid / m.costs.full.mid), "3.6%");  // the headline's coverage
  EXPECT_EQ(m.final_run_provenance, "measured");
  ASSERT_EQ(m.final_run_metering.stages, std::vector<std::string>{"sft"});
  EXPECT_DOUBLE_EQ(m.final_run_metering.wall_s, 1800);
  EXPECT_DOUBLE_EQ(m.final_run_metering.cpu_s, 3500);

  // The waterfall: claimed, final run, three parts added (evaluation is non-zero), the marginal
  // cost, the base model (all of it: no share declared), full cost; the mids span more than
  // 200x, so a log view is drawn beside the linear one.
  ASSERT_EQ(m.waterfall.size(), 8u);
  EXPECT_EQ(m.waterfall[0].kind, StepKind::claimed);
  EXPECT_EQ(m.waterfall[1].label, "Final run (measured)");
  EXPECT_EQ(m.waterfall[3].label, "+ failed runs and search");
  EXPECT_NEAR(m.waterfall[3].cost.mid, 0.128, 1e-12);
  EXPECT_EQ(m.waterfall[4].label, "+ evaluation and other");
  EXPECT_EQ(m.waterfall[5].kind, StepKind::marginal);
  EXPECT_NEAR(m.waterfall[5].cost.mid, 1.362, 1e-12);
  EXPECT_EQ(m.waterfall[6].label, "+ base model (all)");
  EXPECT_NEAR(m.waterfall[6].cost.mid, 0.04, 1e-12);
  EXPECT_EQ(m.waterfall[7].kind, StepKind::full);
  EXPECT_NEAR(m.waterfall[7].cost.mid, 1.402, 1e-12);
  EXPECT_TRUE(m.waterfall_log_scale);
  // The marginal cost: every line in the full total but the base model's pretraining (1 CPU-hour
  // at $0.02/0.04/0.08), and the rows behind each figure.
  EXPECT_NEAR(m.marginal.marginal.low, 0.881, 1e-12);
  EXPECT_NEAR(m.marginal.marginal.mid, 1.362, 1e-12);
  EXPECT_NEAR(m.marginal.marginal.high, 2.324, 1e-12);
  EXPECT_NEAR(m.marginal.base_all.mid, 0.04, 1e-12);
  EXPECT_DOUBLE_EQ(m.marginal.share, 1.0);
  EXPECT_FALSE(m.marginal.declared);
  EXPECT_NEAR(m.marginal.full_with_share.mid, m.costs.full.mid, 1e-12);
  EXPECT_EQ(m.marginal.base_rows.size(), 1u);
  EXPECT_EQ(m.marginal.marginal_rows.size(), 6u);

  // Every cost line with provenance, formula, inputs, source; the claim's line first.
  ASSERT_EQ(m.cost_lines.size(), 9u);
  EXPECT_EQ(m.cost_lines.front().bucket, Bucket::claimed);
  EXPECT_FALSE(m.cost_lines.front().in_total);
  int measured = 0, estimated = 0, declared = 0;
  const CostLine* sweep = nullptr;
  for (const auto& c : m.cost_lines) {
    measured += c.item.provenance == Provenance::measured;
    estimated += c.item.provenance == Provenance::estimated;
    declared += c.item.provenance == Provenance::declared;
    if (c.item.description == "learning-rate sweep, 6 runs") sweep = &c;
    EXPECT_EQ(c.item.source, "test price band (2025-01)");
  }
  EXPECT_EQ(measured, 5);
  EXPECT_EQ(estimated, 2);
  EXPECT_EQ(declared, 2);
  ASSERT_NE(sweep, nullptr);
  EXPECT_EQ(sweep->item.formula, "6 x final run CPU-hours");
  EXPECT_EQ(sweep->item.inputs.dump(), "{\"runs\":6}");
  EXPECT_NEAR(sweep->cost.mid, 0.12, 1e-12);

  // ID vs OOD: the splits in order with each model's headline cell, deltas and gaps.
  ASSERT_EQ(m.splits.size(), 4u);
  EXPECT_EQ(m.splits[0].split, "id");
  EXPECT_FALSE(m.splits[0].ood);
  ASSERT_TRUE(m.splits[0].tuned && m.splits[0].base);
  EXPECT_EQ(m.splits[0].tuned->correct, 540);
  EXPECT_EQ(m.splits[0].tuned->n, 600);
  EXPECT_EQ(m.splits[0].tuned->budget, -1);
  EXPECT_EQ(percent(m.splits[0].tuned->ci.low), "87.3%");
  EXPECT_EQ(percent(m.splits[0].tuned->ci.high), "92.2%");
  EXPECT_NEAR(*m.splits[0].tuned_minus_base, 0.6, 1e-12);
  EXPECT_FALSE(m.splits[0].tuned_gap_to_id);
  EXPECT_EQ(m.splits[1].split, "ood_long");
  EXPECT_TRUE(m.splits[1].ood);
  EXPECT_NEAR(*m.splits[1].tuned_gap_to_id, -0.7, 1e-12);
  EXPECT_FALSE(m.any_budget_in_headline);
  EXPECT_EQ(m.eval_rows, 36u);
  EXPECT_EQ(m.cells.size(), 12u);

  // The thinking-budget sweep: budgets ascending, unlimited last; only the ID split has two or
  // more budgets, tuned line first.
  EXPECT_EQ(m.budgets, (std::vector<int64_t>{32, 64, -1}));
  ASSERT_EQ(m.budget_lines.size(), 2u);
  EXPECT_EQ(m.budget_lines[0].model, "tuned");
  EXPECT_EQ(m.budget_lines[0].split, "id");
  EXPECT_EQ(m.budget_lines[0].budget_index, (std::vector<size_t>{0, 1, 2}));
  EXPECT_NEAR(m.budget_lines[0].mean[0], 0.5, 1e-12);
  EXPECT_EQ(m.budget_lines[1].model, "base");

  // Loss curves from the artifacts, in stored order.
  ASSERT_EQ(m.loss_curves.size(), 2u);
  EXPECT_EQ(m.loss_curves[0].stage, "pretrain");
  EXPECT_EQ(m.loss_curves[0].step.size(), 120u);
  EXPECT_DOUBLE_EQ(m.loss_curves[0].step.back(), 1200);
  EXPECT_EQ(m.loss_curves[1].stage, "sft");

  // Verdicts, all stored; the one-line verdict's numbers.
  EXPECT_EQ(m.verdicts.size(), 6u);
  EXPECT_EQ(m.verdicts_not_stored, 0u);
  EXPECT_EQ(m.summary.tone, Tone::bad);
  EXPECT_EQ(m.summary.results_supported, 1);
  EXPECT_EQ(m.summary.results_not_supported, 1);
  EXPECT_EQ(m.summary.results_not_reproducible, 1);
  EXPECT_TRUE(m.summary.has_id_and_ood);
  EXPECT_NEAR(m.summary.tuned_id, 0.9, 1e-12);
  EXPECT_NEAR(m.summary.tuned_ood, (0.2 + 0.3 + 0.75) / 3, 1e-12);
  EXPECT_EQ(m.summary.ood_splits, 3);

  // Metering per stage.
  ASSERT_EQ(m.stages.size(), 5u);
  EXPECT_EQ(m.stages[3].stage.name, "sft");
  EXPECT_EQ(m.stages[3].category, "final_run");
  EXPECT_EQ(m.stages[3].meter_samples, 3u);
  EXPECT_DOUBLE_EQ(m.stage_totals.wall_s, 3600 + 60 + 900 + 1800 + 360);
  EXPECT_DOUBLE_EQ(m.stage_totals.cpu_s, 7000 + 50 + 1700 + 3500 + 700);
  EXPECT_EQ(m.stage_totals.meter_samples, 15u);
  EXPECT_FALSE(m.stage_totals.any_gpu);

  // Trace errors pooled over the two seeds; a kind that never occurs gets no column.
  ASSERT_TRUE(m.trace_errors);
  EXPECT_EQ(m.trace_errors->kinds,
            (std::vector<std::string>{"restatement", "fact", "none", "answer"}));
  EXPECT_EQ(m.trace_errors->splits, std::vector<std::string>{"id"});
  EXPECT_EQ(m.trace_errors->counts, (std::vector<std::vector<int64_t>>{{4, 12, 182, 2}}));

  // Selection counts largest first; decontamination; nothing left over.
  ASSERT_TRUE(m.selection);
  ASSERT_EQ(m.selection_bars.size(), 4u);
  EXPECT_EQ(m.selection_bars[0], (std::pair<std::string, double>{"pool", 4000}));
  EXPECT_EQ(m.selection_bars[2], (std::pair<std::string, double>{"after_difficulty", 2107}));
  ASSERT_TRUE(m.decontamination);
  EXPECT_EQ((*m.decontamination)["splits"]["id"]["overlapping"], 0);
  EXPECT_FALSE(m.replay);
  EXPECT_FALSE(m.replay_self_check);
  EXPECT_TRUE(m.other_artifacts.empty());

  // The recipe and its hash, verification, host, commit, device, status, times.
  EXPECT_TRUE(m.recipe.hash_matches);
  EXPECT_EQ(m.recipe.sha256_stored, l.run(run)->recipe_sha256);
  EXPECT_NE(m.recipe.text.find("claimed_cost_usd = 0.05"), std::string::npos);
  EXPECT_TRUE(m.verify.ok) << m.verify.message;
  EXPECT_EQ(m.run.host, "testhost");
  EXPECT_EQ(m.run.git_commit, "0123456789ab");
  EXPECT_EQ(audit::text::utc(m.run.started_at), "2025-01-01 00:00:00 UTC");
  EXPECT_EQ(m.run.status, audit::ledger::RunStatus::succeeded);
}

TEST(ReportModel, VerdictsNotStoredAreComputedForThePageOnly) {
  TempDir d("unstored");
  const fs::path db = d.path / "a.db";
  int64_t run = 0;
  {
    Ledger l(db.string());
    run = audit::testing::add_synthetic_run(l, false, 0.05);
  }
  Ledger l(db.string(), audit::ledger::OpenMode::read_only);
  const ReportModel m = read_report_model(l, run);
  EXPECT_EQ(m.verdicts.size(), 6u);
  EXPECT_EQ(m.verdicts_not_stored, 6u);
  for (const auto& v : m.verdicts) EXPECT_EQ(v.id, 0) << v.claim;
  EXPECT_EQ(l.verdicts(run).size(), 0u);
  EXPECT_EQ(m.verdicts[0].claim, compute_verdicts(l, run)[0].claim);
}

TEST(ReportModel, ARunWithoutRowsHasEmptyParts) {
  TempDir d("bare_model");
  Ledger l((d.path / "a.db").string());
  const int64_t run = add_bare_run(l);
  const ReportModel m = read_report_model(l, run);
  EXPECT_TRUE(m.cells.empty());
  EXPECT_TRUE(m.splits.empty());
  EXPECT_TRUE(m.loss_curves.empty());
  EXPECT_FALSE(m.trace_errors);
  EXPECT_FALSE(m.selection);
  EXPECT_TRUE(m.cost_lines.empty());
  EXPECT_FALSE(m.costs.has_final_run);
  EXPECT_FALSE(m.claim.parse_error.empty());
  EXPECT_EQ(m.claim.title, "bare");
  EXPECT_EQ(m.run.status, audit::ledger::RunStatus::aborted);
  EXPECT_EQ(m.summary.tone, Tone::warn);
  for (const auto& v : m.verdicts) EXPECT_EQ(v.verdict, kNotReproducible) << v.claim;
  EXPECT_THROW(read_report_model(l, run + 100), audit::ledger::LedgerError);
}

// The replay artifacts: every figure read, a missing one left empty (and "—" on the page).
TEST(ReportModel, ReplayArtifactsAreRead) {
  TempDir d("replay");
  Ledger l((d.path / "a.db").string());
  audit::ledger::RunInfo ri;
  ri.name = "replay";
  ri.recipe_text = audit::testing::synthetic_recipe(false, 0.05);
  ri.recipe_sha256 = audit::ledger::sha256_hex(ri.recipe_text);
  int64_t run = l.begin_run(ri);
  nlohmann::json timing = {{"layers_timed", 2}, {"dtype", "bf16"},
                           {"measurements", {{{"part", "layer"}, {"timed_seq_len", 128},
                                              {"claimed_seq_len", 32768}, {"seconds", 0.0123}}}}};
  nlohmann::json pred = {{"wall_hours", {0.3, 0.45, 0.7}},
                         {"claimed_gpu_hours", 6.9},
                         {"claimed_basis", "16 x 26 min"},
                         {"cost_usd", {10, 20, 40}},
                         {"verdict", "supported"},
                         {"reason", "inside the band"},
                         {"scenarios", {{{"name", "a"}, {"overlap", 0.5}, {"wall_s", 1500}},
                                        {{"name", "b"}}}}};
  l.put_artifact(run, 0, "replay",
                 {{"device_name", "cpu"}, {"timing", timing}, {"prediction", pred},
                  {"eager", {{"ours_layer_s", 0.01}, {"layer_s", 0.012},
                             {"ratio_ours_over_eager", 0.83}}}});
  l.put_artifact(run, 0, "replay_self_check",
                 {{"replay_layers", 2}, {"predicted_s", 10}, {"measured_s", 11}, {"error", 0.09}});
  l.put_artifact(run, 0, "something_else", {{"a", 1}});
  l.end_run(run, audit::ledger::RunStatus::succeeded);

  const ReportModel m = read_report_model(l, run);
  ASSERT_TRUE(m.replay);
  const Replay& r = *m.replay;
  EXPECT_EQ(r.layers_timed, 2);
  EXPECT_EQ(r.dtype, "bf16");
  ASSERT_TRUE(r.wall_hours);
  EXPECT_DOUBLE_EQ(r.wall_hours->mid, 0.45);
  EXPECT_FALSE(r.gpu_hours);
  EXPECT_DOUBLE_EQ(*r.claimed_gpu_hours, 6.9);
  EXPECT_FALSE(r.claimed_wall_hours);
  EXPECT_DOUBLE_EQ(r.cost_usd->high, 40);
  EXPECT_TRUE(r.has_eager);
  EXPECT_DOUBLE_EQ(*r.eager_ratio, 0.83);
  ASSERT_EQ(r.measurements.size(), 1u);
  EXPECT_FALSE(r.measurements[0].batch);
  EXPECT_DOUBLE_EQ(*r.measurements[0].claimed_seq_len, 32768);
  ASSERT_EQ(r.scenarios.size(), 2u);
  EXPECT_DOUBLE_EQ(*r.scenarios[0].overlap, 0.5);
  EXPECT_FALSE(r.scenarios[1].wall_s);
  ASSERT_TRUE(m.replay_self_check);
  EXPECT_DOUBLE_EQ(*m.replay_self_check->error, 0.09);
  ASSERT_EQ(m.other_artifacts.size(), 1u);
  EXPECT_EQ(m.other_artifacts[0].first, "something_else");

  const std::string html = render_report(m);
  const auto sec = html.substr(html.find("<section id=\"replay\">"));
  EXPECT_NE(sec.find("<tr><th>predicted wall time (hours)</th><td>0.45 (band 0.3 – 0.7)</td></tr>"),
            std::string::npos);
  EXPECT_NE(sec.find("<tr><th>predicted GPU-hours</th><td>—</td></tr>"), std::string::npos);
  EXPECT_NE(sec.find("<tr><th>claimed GPU-hours</th><td>6.9 (16 x 26 min)</td></tr>"),
            std::string::npos);
  EXPECT_NE(sec.find("<tr><td>b</td><td>—</td><td>—</td>"), std::string::npos);
  EXPECT_NE(sec.find("error <b>9.0%</b>"), std::string::npos);
  EXPECT_NE(html.find("<details><summary>something_else</summary>"), std::string::npos);
}

// ---- the HTML report ----

TEST(HtmlReport, ShowsTheLedgerFigures) {
  TempDir d("figures");
  Ledger l((d.path / "a.db").string());
  int64_t run = audit::testing::add_synthetic_run(l, false, 0.05);
  store_verdicts(l, run);  // as `audit run` does when a run ends
  auto model = write_report(l, run, (d.path / "r.html").string());
  EXPECT_EQ(model.verdicts.size(), 6u);
  std::string html = slurp(d.path / "r.html");
  ASSERT_FALSE(html.empty());
  EXPECT_EQ(html, render_report(model));
  // The three big numbers: claimed, final run (mid, band), full cost (mid, band).
  EXPECT_NE(html.find("<div class=\"value\">$0.05</div>"), std::string::npos);
  EXPECT_NE(html.find("<div class=\"value\">$0.02</div><div class=\"band\">band $0.01 – $0.04"),
            std::string::npos);
  EXPECT_NE(html.find("<div class=\"value\">$1.40</div><div class=\"band\">band $0.90 – $2.40"),
            std::string::npos);
  EXPECT_NE(html.find("The headline covers 3.6% of it."), std::string::npos);
  EXPECT_NE(html.find("Stored in the ledger."), std::string::npos);
  EXPECT_EQ(html.find("not stored"), std::string::npos);
  // One-line verdict first.
  EXPECT_LT(html.find("class=\"verdict tone-bad\""), html.find("class=\"kpis\""));
  // Charts: waterfall, ID vs OOD, budget, two loss curves, selection bars.
  EXPECT_GE(count(html, "<svg "), 6u);
  EXPECT_NE(html.find(">+ failed runs</text>"), std::string::npos);  // wrapped label
  EXPECT_NE(html.find(">ood_long (OOD)</text>"), std::string::npos);
  EXPECT_NE(html.find(">unlimited</text>"), std::string::npos);
  EXPECT_NE(html.find("sft: last loss"), std::string::npos);
  EXPECT_NE(html.find("pretrain: last loss"), std::string::npos);
  // Evidence: every cost line with provenance, formula, inputs, source.
  EXPECT_NE(html.find("learning-rate sweep, 6 runs"), std::string::npos);
  EXPECT_NE(html.find("6 x final run CPU-hours"), std::string::npos);
  EXPECT_NE(html.find("{&quot;runs&quot;:6}"), std::string::npos);
  EXPECT_EQ(count(html, "<span class=\"badge b-measured\">measured</span>"), 1u + 5u);
  EXPECT_EQ(count(html, "<span class=\"badge b-estimated\">estimated</span>"), 1u + 2u);
  EXPECT_NE(html.find("test price band (2025-01)"), std::string::npos);
  EXPECT_NE(html.find("540 / 600"), std::string::npos);
  EXPECT_NE(html.find("87.3%–92.2%"), std::string::npos);
  EXPECT_NE(html.find("after_difficulty"), std::string::npos);
  EXPECT_NE(html.find(">2107</td>"), std::string::npos);
  EXPECT_NE(html.find("overlapping"), std::string::npos);
  // Trace errors pooled over the two seeds; a kind that never occurs gets no column.
  const auto te = html.substr(html.find("<section id=\"trace-errors\">"));
  EXPECT_NE(te.find("<th class=\"num\">restatement</th><th class=\"num\">fact</th><th "
                    "class=\"num\">none</th><th class=\"num\">answer</th></tr>"),
            std::string::npos);
  EXPECT_NE(te.find("<tr><td>id</td><td class=\"num\">4</td><td class=\"num\">12</td><td "
                    "class=\"num\">182</td><td class=\"num\">2</td></tr>"),
            std::string::npos);
  EXPECT_EQ(te.find(">operands</th>"), std::string::npos);
  // Recipe and its hash, verification, host, commit, device, status, times.
  auto info = l.run(run);
  EXPECT_NE(html.find(info->recipe_sha256), std::string::npos);
  EXPECT_NE(html.find("<span class=\"badge b-ok\">matches</span>"), std::string::npos);
  EXPECT_NE(html.find("<span class=\"badge b-ok\">verified</span>"), std::string::npos);
  EXPECT_NE(html.find("testhost"), std::string::npos);
  EXPECT_NE(html.find("0123456789ab"), std::string::npos);
  EXPECT_NE(html.find("2025-01-01 00:00:00 UTC"), std::string::npos);
  EXPECT_NE(html.find("<td>succeeded</td>"), std::string::npos);
  EXPECT_NE(html.find("claimed_cost_usd = 0.05"), std::string::npos);
}

TEST(HtmlReport, SelfContainedNoScriptNoNetwork) {
  TempDir d("selfcontained");
  Ledger l((d.path / "a.db").string());
  int64_t run = audit::testing::add_synthetic_run(l, false, 0.05);
  std::string html = render_report(l, run);  // reads only: nothing stored
  EXPECT_EQ(l.verdicts(run).size(), 0u);
  EXPECT_NE(html.find("6 of 6 computed now and not stored in the ledger yet: <code>audit "
                      "verdicts " + std::to_string(run) + " --ledger FILE</code> stores them."),
            std::string::npos);
  EXPECT_EQ(count(html, "<span class=\"muted small\">not stored</span>"), 6u);
  std::string lo = lower(html);
  // One script, the print helper, allowed by its hash and nothing else.
  EXPECT_EQ(count(lo, "<script"), 1u);
  EXPECT_NE(html.find("<script>" + sections::print_script() + "</script>"), std::string::npos);
  EXPECT_NE(html.find("script-src '" + sections::print_script_hash() + "'"), std::string::npos);
  EXPECT_EQ(lo.find("unsafe-eval"), std::string::npos);
  EXPECT_EQ(lo.find("<link"), std::string::npos);
  EXPECT_EQ(lo.find("<img"), std::string::npos);
  EXPECT_EQ(lo.find("<iframe"), std::string::npos);
  EXPECT_EQ(lo.find("@import"), std::string::npos);
  EXPECT_EQ(lo.find("url("), std::string::npos);
  EXPECT_EQ(lo.find(" src="), std::string::npos);
  EXPECT_EQ(lo.find("href=\"http"), std::string::npos);
  // The only URL is the SVG namespace.
  std::regex url(R"(https?://[^"\s<]+)");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), url); it != std::sregex_iterator();
       ++it)
    EXPECT_EQ(it->str(), "http://www.w3.org/2000/svg");
  EXPECT_NE(html.find("Content-Security-Policy"), std::string::npos);
  EXPECT_NE(html.find("@media print"), std::string::npos);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
}

TEST(HtmlReport, EscapesHostileRecipeAndDataText) {
  TempDir d("hostile");
  Ledger l((d.path / "a.db").string());
  int64_t run = audit::testing::add_synthetic_run(l, true, 0.05);
  write_report(l, run, (d.path / "r.html").string());
  std::string html = slurp(d.path / "r.html");
  std::string lo = lower(html);
  EXPECT_EQ(count(lo, "<script"), 1u);  // the print helper in <head>, nothing from the data
  EXPECT_LT(lo.find("<script"), lo.find("</head>"));
  EXPECT_EQ(lo.find("<img"), std::string::npos);
  EXPECT_EQ(lo.find("<b>5 cents"), std::string::npos);
  EXPECT_EQ(lo.find("href=\"http://evil"), std::string::npos);
  // The text is there, escaped: title, headline, source, benchmark, cost line, suite, artifact.
  EXPECT_NE(html.find("Mini &lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot; &amp; "
                      "&#39;single&#39;"),
            std::string::npos);
  EXPECT_NE(html.find("under &lt;b&gt;5 cents&lt;/b&gt; &amp; &quot;free&quot;"),
            std::string::npos);
  EXPECT_NE(html.find("&lt;/pre&gt;&lt;script&gt;alert(3)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("&lt;img src=x onerror=alert(4)&gt;"), std::string::npos);
  EXPECT_NE(html.find("teacher &lt;script&gt;alert(2)&lt;/script&gt; tokens"), std::string::npos);
  EXPECT_NE(html.find("arith&lt;script&gt;alert(5)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(6)&lt;/script&gt;"), std::string::npos);
  // The recipe block is escaped too (no raw </pre> closing it early).
  EXPECT_EQ(count(html, "</pre>"), count(html, "<pre>"));
}

TEST(HtmlReport, RegeneratedFromTheLedgerAloneIsByteIdentical) {
  TempDir d("regen");
  const fs::path db = d.path / "audit.db";
  int64_t run = 0;
  {
    Ledger l(db.string());
    run = audit::testing::add_synthetic_run(l, false, 0.05);
    store_verdicts(l, run);  // as `audit run` does when a run ends
    // The run's other files: checkpoints, data, logs.
    std::ofstream(d.path / "checkpoint.bin") << "weights";
    std::ofstream(d.path / "pool.jsonl") << "{}\n";
    fs::create_directories(d.path / "logs");
    std::ofstream(d.path / "logs" / "run.log") << "log";
    write_report(l, run, (d.path / "first.html").string());
  }
  const std::string first = slurp(d.path / "first.html");
  ASSERT_GT(first.size(), 10000u);
  // Delete everything but the ledger (and its WAL/SHM companions, part of the ledger file).
  fs::rename(d.path / "first.html",
             fs::temp_directory_path() / ("audit_report_first_" + std::to_string(::getpid())));
  for (const auto& e : fs::directory_iterator(d.path)) {
    std::string name = e.path().filename().string();
    if (name.rfind("audit.db", 0) != 0) fs::remove_all(e.path());
  }
  const fs::path saved =
      fs::temp_directory_path() / ("audit_report_first_" + std::to_string(::getpid()));
  {
    // A fresh process view of the same file, read-only as `audit report` opens it.
    Ledger l(db.string(), audit::ledger::OpenMode::read_only);
    write_report(l, run, (d.path / "second.html").string());
    EXPECT_EQ(l.verdicts(run).size(), 6u);  // regeneration stored nothing new
  }
  const std::string second = slurp(d.path / "second.html");
  fs::remove(saved);
  EXPECT_EQ(first.size(), second.size());
  EXPECT_TRUE(first == second) << "report bytes differ after regeneration";
}

TEST(HtmlReport, ARunWithoutRowsStillRendersAndSaysWhatIsMissing) {
  TempDir d("bare");
  Ledger l((d.path / "a.db").string());
  const int64_t run = add_bare_run(l);
  auto model = write_report(l, run, (d.path / "r.html").string());
  std::string html = slurp(d.path / "r.html");
  EXPECT_NE(html.find("No evaluation rows are recorded for this run."), std::string::npos);
  EXPECT_NE(html.find("No loss curve is recorded for this run."), std::string::npos);
  EXPECT_NE(html.find("No trace-error counts are recorded for this run."), std::string::npos);
  EXPECT_NE(html.find("No cost lines are recorded for this run."), std::string::npos);
  EXPECT_NE(html.find("No final-run cost is recorded for this run."), std::string::npos);
  EXPECT_NE(html.find("<span class=\"badge b-failed\">unreadable</span>"), std::string::npos);
  EXPECT_NE(html.find("<td>aborted</td>"), std::string::npos);
  for (const auto& v : model.verdicts) EXPECT_EQ(v.verdict, kNotReproducible) << v.claim;
  EXPECT_THROW(render_report(l, run + 100), audit::ledger::LedgerError);
}

TEST(HtmlReport, FailedVerificationIsShownFirst) {
  TempDir d("tamper");
  const fs::path db = d.path / "a.db";
  int64_t run = 0;
  {
    Ledger l(db.string());
    run = audit::testing::add_synthetic_run(l, false, 0.05);
  }
  {
    Ledger l(db.string());
    // Edit one structured row behind the ledger's back.
    ASSERT_EQ(sqlite3_exec(l.handle(),
                           "UPDATE cost_items SET quantity = quantity * 10 WHERE category = "
                           "'search'",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    ASSERT_FALSE(l.verify().ok);
    const ReportModel m = read_report_model(l, run);
    EXPECT_FALSE(m.verify.ok);
    std::string html = render_report(m);
    EXPECT_NE(html.find("<div class=\"alarm\">Ledger verification FAILED"), std::string::npos);
    EXPECT_NE(html.find("<span class=\"badge b-failed\">FAILED</span>"), std::string::npos);
  }
}

// ---- the CLI verbs ----

uintmax_t size_or_zero(const fs::path& p) { return fs::exists(p) ? fs::file_size(p) : 0; }

TEST(ReportCli, ExitCodes) {
  TempDir d("cli");
  const std::string db = (d.path / "audit.db").string();
  int64_t run = 0;
  {
    Ledger l(db);
    run = audit::testing::add_synthetic_run(l, false, 0.05);
  }
  const std::string out = (d.path / "r.html").string();
  EXPECT_EQ(run_cli("report --ledger " + db + " --out " + out), 0);
  EXPECT_TRUE(fs::exists(out));
  EXPECT_EQ(run_cli("report latest --ledger " + db + " --out " + out), 0);
  EXPECT_EQ(run_cli("report " + std::to_string(run) + " --ledger " + db + " --out " + out), 0);
  // A "not supported" verdict (ARITH-OOD_LONG, generalization) fails only when asked.
  EXPECT_EQ(run_cli("report --ledger " + db + " --out " + out + " --fail-on-verdict"), 1);
  EXPECT_EQ(run_cli("report 999 --ledger " + db + " --out " + out), 2);
  EXPECT_EQ(run_cli("report abc --ledger " + db + " --out " + out), 2);
  EXPECT_EQ(run_cli("report --ledger " + (d.path / "missing.db").string() + " --out " + out), 2);
  EXPECT_FALSE(fs::exists(d.path / "missing.db"));
  {
    Ledger l(db, audit::ledger::OpenMode::read_only);
    EXPECT_EQ(l.verdicts(run).size(), 0u);  // five report calls, nothing stored
  }
  // The page says so and names the verb that stores them; after it, one set of verdicts.
  auto r = cli("report --ledger " + db + " --out " + out);
  EXPECT_NE(r.output.find("6 of 6 verdicts computed for the page and not stored; `audit "
                          "verdicts " + std::to_string(run) + " --ledger " + db + "` stores them"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(run_cli("verdicts --ledger " + db), 0);
  EXPECT_EQ(run_cli("report --ledger " + db + " --out " + out), 0);
  EXPECT_NE(slurp(out).find("Stored in the ledger."), std::string::npos);
  Ledger l(db);
  EXPECT_EQ(l.verdicts(run).size(), 6u);
}

// `audit report` only reads: run on a copy of a ledger with a finished run, through the real
// binary, the .db file's bytes are the same after it and the WAL holds no more than before, also
// when the WAL holds rows of a writer that died before a checkpoint.
TEST(ReportCli, LeavesTheLedgerBytesAsTheyWere) {
  TempDir d("bytes");
  const fs::path src = d.path / "src.db";
  int64_t run = 0;
  {
    Ledger l(src.string());
    run = audit::testing::add_synthetic_run(l, false, 0.05);
    store_verdicts(l, run);
  }
  ASSERT_FALSE(fs::exists(src.string() + "-wal"));  // checkpointed and removed on close
  const fs::path db = d.path / "copy.db";
  const fs::path wal = db.string() + "-wal";
  fs::copy_file(src, db);
  const std::string before = slurp(db);
  const std::string out = (d.path / "r.html").string();
  for (int i = 0; i < 2; ++i) {  // the second time with the -shm the first one left
    EXPECT_EQ(run_cli("report " + std::to_string(run) + " --ledger " + db.string() + " --out " +
                      out),
              0);
    EXPECT_TRUE(slurp(db) == before) << "audit report changed the ledger's bytes";
    EXPECT_EQ(size_or_zero(wal), 0u) << "audit report wrote to the WAL";
  }
  EXPECT_NE(slurp(out).find("Stored in the ledger."), std::string::npos);

  // A writer that died before its checkpoint: its run lives in the -wal file only.
  int64_t run2 = 0;
  {
    Ledger l(db.string());
    sqlite3_db_config(l.handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    run2 = audit::testing::add_synthetic_run(l, false, 0.05);
  }
  ASSERT_GT(size_or_zero(wal), 0u);
  const std::string db_before = slurp(db), wal_before = slurp(wal);
  EXPECT_EQ(run_cli("report " + std::to_string(run2) + " --ledger " + db.string() + " --out " +
                    out),
            0);
  EXPECT_TRUE(slurp(db) == db_before) << "audit report changed the ledger's bytes";
  EXPECT_TRUE(slurp(wal) == wal_before) << "audit report changed the WAL";
  EXPECT_NE(slurp(out).find("run #" + std::to_string(run2)), std::string::npos);
}

TEST(VerdictsCli, StoresOnceAndExitsLikeReport) {
  TempDir d("verdicts_cli");
  const std::string db = (d.path / "audit.db").string();
  int64_t run = 0;
  {
    Ledger l(db);
    run = audit::testing::add_synthetic_run(l, false, 0.05);
  }
  auto r = cli("verdicts --ledger " + db);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("not supported          result: ARITH-OOD_LONG 80%"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("supported              cost: under 5 cents"), std::string::npos);
  EXPECT_NE(r.output.find("run " + std::to_string(run) + ": 6 verdicts, 6 stored now in " + db),
            std::string::npos)
      << r.output;
  r = cli("verdicts " + std::to_string(run) + " --ledger " + db);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(": 6 verdicts, 0 stored now"), std::string::npos) << r.output;
  EXPECT_EQ(run_cli("verdicts latest --ledger " + db + " --quiet"), 0);
  EXPECT_EQ(run_cli("verdicts --ledger " + db + " --fail-on-verdict"), 1);
  // Bad input: exit 2 naming the file and the key.
  r = cli("verdicts 999 --ledger " + db);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find(db + ": 'RUN': no run 999"), std::string::npos) << r.output;
  r = cli("verdicts abc --ledger " + db);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find(db + ": 'RUN': 'abc' is not a run id"), std::string::npos) << r.output;
  const std::string missing = (d.path / "missing.db").string();
  r = cli("verdicts --ledger " + missing);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find(missing + ": '--ledger': no such ledger file"), std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(missing));
  Ledger l(db);
  EXPECT_EQ(l.verdicts(run).size(), 6u);  // four calls, one set of verdicts
}

}  // namespace

// ---- the report for the executive: the verdict word, the linear cost view, money text, the
// glossary, the marginal cost, WCAG contrast in light, dark and print ----

namespace {

// The SVG of one <figure id="...">.
std::string figure_of(const std::string& html, const std::string& id) {
  const auto a = html.find("<figure id=\"" + id + "\"");
  if (a == std::string::npos) return "";
  return html.substr(a, html.find("</figure>", a) - a);
}

// Every <rect>'s fill and height, in document order.
std::vector<std::pair<std::string, double>> rects(const std::string& svg) {
  std::vector<std::pair<std::string, double>> out;
  const std::regex re(R"re(<rect [^>]*height="([0-9.]+)" fill="(#[0-9a-fA-F]{6})")re");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator();
       ++it)
    out.emplace_back((*it)[2].str(), std::stod((*it)[1].str()));
  return out;
}

}  // namespace

TEST(ExecutiveReport, VerdictWordGlossaryAndMarginalCost) {
  TempDir d("exec");
  Ledger l((d.path / "a.db").string());
  int64_t run = audit::testing::add_synthetic_run(l, false, 0.05);
  store_verdicts(l, run);
  const ReportModel m = read_report_model(l, run);
  const std::string html = render_report(m);
  // The verdict as a word, inside the box whose colour says the same.
  const auto box = html.find("<p class=\"verdict tone-bad\"");
  ASSERT_NE(box, std::string::npos);
  EXPECT_EQ(html.find("<span class=\"word\">Verdict: NOT SUPPORTED</span>"),
            html.find("<span class=\"word\">", box));
  size_t bad = 0;
  for (const auto& v : m.verdicts) bad += v.verdict == kNotSupported;
  ASSERT_GT(bad, 0u);
  EXPECT_NE(html.find(std::to_string(bad) + " of " + std::to_string(m.verdicts.size()) +
                      " claims not supported"),
            std::string::npos)
      << html.substr(box, 400);
  // The glossary, and terms linked to it where they are first used.
  EXPECT_NE(html.find("<section id=\"glossary\">"), std::string::npos);
  for (const char* id : {"g-id", "g-ood", "g-wilson", "g-gpu-hour", "g-mfu", "g-provenance",
                         "g-budget", "g-pass1", "g-decontam", "g-marginal", "g-full"}) {
    EXPECT_NE(html.find(std::string("<dt id=\"") + id + "\">"), std::string::npos) << id;
    if (std::string(id) != "g-mfu")  // MFU appears in cost formulas, from the data
      EXPECT_LT(html.find(std::string("href=\"#") + id + "\""), html.find("id=\"glossary\""))
          << id << " is never linked";
  }
  EXPECT_NE(html.find("<dt id=\"g-wilson\">Wilson 95% interval</dt>"), std::string::npos);
  // Three figures where the full cost was: the marginal cost, the full cost with the base's
  // share (all of it: none declared), the share's source; each naming its ledger rows.
  EXPECT_NE(html.find(">Marginal cost</a></div><div class=\"value\">$1.36</div><div "
                      "class=\"band\">band $0.88 – $2.32"),
            std::string::npos);
  EXPECT_NE(html.find(">Full cost</a>, with all of the base&#39;s pretraining</div><div "
                      "class=\"value\">$1.40</div>"),
            std::string::npos);
  EXPECT_NE(html.find("no share declared in the recipe (base.amortize_share): all of it"),
            std::string::npos);
  EXPECT_NE(html.find("cost line #" + std::to_string(m.marginal.base_rows.at(0)) + ")"),
            std::string::npos);
  // The evidence table ends with the same totals.
  EXPECT_NE(html.find("Marginal cost (all but the base model&#39;s pretraining)"), std::string::npos);
}

TEST(ExecutiveReport, LinearCostBarsAddUpAndALogViewIsLabelled) {
  TempDir d("linear");
  Ledger l((d.path / "a.db").string());
  int64_t run = audit::testing::add_synthetic_run(l, false, 0.05);
  const ReportModel m = read_report_model(l, run);
  const std::string html = render_report(m);
  const std::string lin = figure_of(html, "costs-linear");
  ASSERT_FALSE(lin.empty());
  EXPECT_NE(lin.find("linear scale: the bars add up"), std::string::npos);
  EXPECT_NE(figure_of(html, "costs-log").find("log scale"), std::string::npos);
  // Bars by colour: final run, the added parts, the marginal total, the base, the full total.
  const auto bars = rects(lin);
  double final_run = -1, marginal = -1, full = -1, added_before = 0, added_after = 0;
  for (const auto& [fill, height] : bars) {
    if (fill == "#2b6cb0") final_run = height;
    else if (fill == "#4a6d8c") marginal = height;
    else if (fill == "#243b53") full = height;
    else if (fill == "#c0553f") (marginal < 0 ? added_before : added_after) += height;
  }
  ASSERT_GT(final_run, 0);
  ASSERT_GT(marginal, 0);
  ASSERT_GT(full, 0);
  // Pixel heights are printed to 0.1 px: the parts add up to the totals within rounding.
  EXPECT_NEAR(final_run + added_before, marginal, 0.35);
  EXPECT_NEAR(marginal + added_after, full, 0.25);
  // And the heights are in proportion to the dollars (linear: full / marginal).
  EXPECT_NEAR(full / marginal, m.marginal.full_with_share.mid / m.marginal.marginal.mid, 0.01);
}

TEST(ExecutiveReport, NoExponentInAnyMoneyText) {
  TempDir d("money");
  Ledger l((d.path / "a.db").string());
  // A run of tiny costs: a claim of $0.00001, a final run of $0.00001, 4 cents of a cent of
  // a micro-dollar of data, a cent of base model; the log axis then reaches $0.000001, which
  // used to print "$1e-06".
  audit::ledger::RunInfo ri;
  ri.name = "tiny";
  ri.recipe_text = audit::testing::synthetic_recipe(false, 0.00001);
  ri.recipe_sha256 = audit::ledger::sha256_hex(ri.recipe_text);
  const int64_t run = l.begin_run(ri);
  auto add = [&](const char* cat, double q, double price) {
    CostItem c;
    c.run_id = run;
    c.category = cat;
    c.description = cat;
    c.quantity = q;
    c.unit = "CPU-hour";
    c.price_low = price / 2, c.price_mid = price, c.price_high = price * 2;
    c.provenance = Provenance::measured;
    l.add_cost_item(c);
  };
  add("final_run", 0.001, 0.01);  // $0.00001
  add("data", 1e-6, 0.04);        // $0.00000004
  add("base_model", 0.5, 0.02);   // $0.01
  l.end_run(run, audit::ledger::RunStatus::succeeded);
  const std::string html = render_report(l, run);
  const std::regex exp_money(R"(\$[0-9][0-9.,]*[eE][-+]?[0-9])");
  EXPECT_FALSE(std::regex_search(html, exp_money));
  for (const char* id : {"costs-linear", "costs-log"}) {
    const std::string svg = figure_of(html, id);
    ASSERT_FALSE(svg.empty()) << id;
    EXPECT_EQ(svg.find("e-0"), std::string::npos) << id;
    EXPECT_EQ(svg.find("e+0"), std::string::npos) << id;
  }
  EXPECT_NE(figure_of(html, "costs-log").find(">$0.000001</text>"), std::string::npos)
      << figure_of(html, "costs-log");
  EXPECT_NE(html.find(">+$0.00000004</text>"), std::string::npos);
  const auto k0 = html.find("<div class=\"kpis\">");
  ASSERT_NE(k0, std::string::npos);
  const std::string kpis = html.substr(k0, html.find("<nav>") - k0);
  EXPECT_EQ(kpis.find("e-0"), std::string::npos) << kpis;
  EXPECT_EQ(kpis.find("e+0"), std::string::npos) << kpis;
  EXPECT_NE(kpis.find("$0.00001"), std::string::npos) << kpis;
}

TEST(ExecutiveReport, ADeclaredBaseShareIsUsedAndNamed) {
  TempDir d("share");
  Ledger l((d.path / "a.db").string());
  audit::ledger::RunInfo ri;
  ri.name = "share";
  ri.recipe_text = audit::testing::synthetic_recipe(false, 0.05) +
                   "[base]\namortize_share = 0.25\n"
                   "amortize_source = \"one of four fine-tunes of this base (test)\"\n";
  ri.recipe_sha256 = audit::ledger::sha256_hex(ri.recipe_text);
  const int64_t run = l.begin_run(ri);
  auto add = [&](const char* cat, double q) {
    CostItem c;
    c.run_id = run;
    c.category = cat;
    c.description = cat;
    c.quantity = q;
    c.unit = "GPU-hour";
    c.price_low = c.price_mid = c.price_high = 2.0;
    c.provenance = Provenance::estimated;
    return l.add_cost_item(c);
  };
  add("final_run", 10);     // $20
  add("base_model", 1000);  // $2,000
  l.end_run(run, audit::ledger::RunStatus::succeeded);
  const ReportModel m = read_report_model(l, run);
  ASSERT_TRUE(m.claim.parse_error.empty()) << m.claim.parse_error;
  EXPECT_TRUE(m.marginal.declared);
  EXPECT_DOUBLE_EQ(m.marginal.share, 0.25);
  EXPECT_NEAR(m.marginal.marginal.mid, 20, 1e-9);
  EXPECT_NEAR(m.marginal.full_with_share.mid, 520, 1e-9);
  EXPECT_NEAR(m.costs.full.mid, 2020, 1e-9);  // all of it, as the ledger's totals have it
  const std::string html = render_report(m);
  EXPECT_NE(html.find("with 25% of the base&#39;s pretraining (declared)</div><div "
                      "class=\"value\">$520</div>"),
            std::string::npos);
  EXPECT_NE(html.find("With all of the base&#39;s pretraining: $2,020"), std::string::npos);
  EXPECT_NE(html.find("base.amortize_share = 0.25 in the recipe: one of four fine-tunes of this "
                      "base (test)"),
            std::string::npos);
  ASSERT_EQ(m.waterfall.size(), 7u);  // no evaluation line: no "+ evaluation and other" step
  EXPECT_EQ(m.waterfall[5].label, "+ base model (25%, declared)");
  EXPECT_NEAR(m.waterfall[5].cost.mid, 500, 1e-9);
}

// ---- WCAG contrast of the page's colour pairs ----

namespace {

struct CssRule {
  std::string prelude, body;
};

// Top-level rules of a stylesheet; an @media rule's body holds its own rules.
std::vector<CssRule> css_rules(const std::string& css) {
  std::vector<CssRule> out;
  size_t i = 0;
  while (i < css.size()) {
    const size_t open = css.find('{', i);
    if (open == std::string::npos) break;
    int depth = 1;
    size_t j = open + 1;
    for (; j < css.size() && depth > 0; ++j) depth += css[j] == '{' ? 1 : css[j] == '}' ? -1 : 0;
    std::string pre = css.substr(i, open - i);
    pre.erase(0, pre.find_first_not_of(" \n\t"));
    out.push_back({pre, css.substr(open + 1, j - open - 2)});
    i = j;
  }
  return out;
}

// name -> value of a rule body's declarations ("color" -> "var(--ink)").
std::map<std::string, std::string> declarations(const std::string& body) {
  std::map<std::string, std::string> d;
  std::stringstream in(body);
  std::string decl;
  while (std::getline(in, decl, ';')) {
    const auto colon = decl.find(':');
    if (colon == std::string::npos) continue;
    auto trim = [](std::string s) {
      s.erase(0, s.find_first_not_of(" \n\t"));
      s.erase(s.find_last_not_of(" \n\t") + 1);
      return s;
    };
    d[trim(decl.substr(0, colon))] = trim(decl.substr(colon + 1));
  }
  return d;
}

double channel(int v) {
  const double c = v / 255.0;
  return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
}
double luminance(const std::string& hex) {
  std::string h = hex.substr(1);
  if (h.size() == 3) h = {h[0], h[0], h[1], h[1], h[2], h[2]};
  const int r = std::stoi(h.substr(0, 2), nullptr, 16), g = std::stoi(h.substr(2, 2), nullptr, 16),
            b = std::stoi(h.substr(4, 2), nullptr, 16);
  return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
}
// WCAG 2.x contrast ratio of two #rgb / #rrggbb colours.
double contrast(const std::string& a, const std::string& b) {
  double la = luminance(a), lb = luminance(b);
  if (la < lb) std::swap(la, lb);
  return (la + 0.05) / (lb + 0.05);
}

// The stylesheet's colours in one mode: the light :root, then the dark or print override.
struct Mode {
  std::string name;
  std::map<std::string, std::string> vars;
  std::string resolve(const std::string& v) const {
    if (v.rfind("var(", 0) == 0) {
      auto it = vars.find(v.substr(4, v.size() - 5));
      return it == vars.end() ? "" : it->second;
    }
    return v;
  }
};

}  // namespace

TEST(ExecutiveReport, EveryColourPairMeetsWcagAaInLightDarkAndPrint) {
  EXPECT_NEAR(contrast("#000000", "#ffffff"), 21.0, 1e-9);  // the formula itself
  EXPECT_NEAR(contrast("#777777", "#ffffff"), 4.48, 0.01);
  TempDir d("contrast");
  Ledger l((d.path / "a.db").string());
  int64_t run = audit::testing::add_synthetic_run(l, false, 0.05);
  store_verdicts(l, run);
  const std::string html = render_report(l, run);
  const auto a = html.find("<style>") + 7;
  const std::string css = html.substr(a, html.find("</style>") - a);
  const auto rules = css_rules(css);

  Mode light{"light", {}}, dark{"dark", {}}, print{"print", {}};
  std::vector<CssRule> top;
  for (const auto& r : rules) {
    if (r.prelude == ":root") light.vars = declarations(r.body);
    if (r.prelude.rfind("@media", 0) != 0) top.push_back(r);
  }
  // Print applies over the dark palette too (a dark-mode reader printing): it must set them all.
  dark.vars = light.vars;
  for (const auto& r : rules) {
    Mode* m = r.prelude.find("prefers-color-scheme:dark") != std::string::npos ? &dark
              : r.prelude == "@media print"                                     ? &print
                                                                                : nullptr;
    if (!m) continue;
    if (m == &print) continue;
    for (const auto& inner : css_rules(r.body))
      if (inner.prelude == ":root")
        for (const auto& [k, v] : declarations(inner.body)) m->vars[k] = v;
  }
  print.vars = dark.vars;
  for (const auto& r : rules)
    if (r.prelude == "@media print")
      for (const auto& inner : css_rules(r.body))
        if (inner.prelude == ":root")
          for (const auto& [k, v] : declarations(inner.body)) print.vars[k] = v;
  ASSERT_GT(light.vars.size(), 10u);
  ASSERT_NE(dark.vars["--bg"], light.vars["--bg"]) << "no dark palette";

  // Text with its own background is checked on it; text without one on every surface text sits
  // on (the page and the cards). Borders that carry meaning (the verdict's tone, the cards) are
  // graphics: 3:1 against the card. Chart text and marks: on the chart's own background.
  int pairs = 0;
  for (const Mode* m : {&light, &dark, &print}) {
    const std::string page = m->resolve("var(--bg)"), card = m->resolve("var(--card)");
    for (const auto& r : top) {
      const auto decl = declarations(r.body);
      auto c = decl.find("color");
      if (c != decl.end() && c->second != "inherit") {
        const std::string fg = m->resolve(c->second);
        ASSERT_EQ(fg.rfind("#", 0), 0u) << r.prelude << " color " << c->second;
        std::vector<std::string> bgs = {page, card};
        auto b = decl.find("background");
        if (b != decl.end()) bgs = {m->resolve(b->second)};
        for (const auto& bg : bgs) {
          const double cr = contrast(fg, bg);
          std::printf("contrast %-5s %-34s %s on %s: %.2f\n", m->name.c_str(),
                      r.prelude.substr(0, 34).c_str(), fg.c_str(), bg.c_str(), cr);
          EXPECT_GE(cr, 4.5) << m->name << " " << r.prelude << ": " << fg << " on " << bg;
          ++pairs;
        }
      }
      for (const char* k : {"border-left-color", "border-top-color"}) {
        auto bc = decl.find(k);
        if (bc == decl.end()) continue;
        const double cr = contrast(m->resolve(bc->second), card);
        std::printf("contrast %-5s %-34s %s on %s: %.2f (graphics)\n", m->name.c_str(),
                    r.prelude.substr(0, 34).c_str(), m->resolve(bc->second).c_str(), card.c_str(),
                    cr);
        EXPECT_GE(cr, 3.0) << m->name << " " << r.prelude << " " << k;
        ++pairs;
      }
    }
    // Chart text (4.5:1) and bars, dots and lines (3:1) on the chart's background.
    const std::string chart = m->resolve("var(--chart)");
    ASSERT_EQ(chart.rfind("#", 0), 0u);
    const std::regex text_fill(R"re(<text [^>]*fill="(#[0-9a-fA-F]{6})")re");
    const std::regex mark_fill(R"re(<(?:rect|circle) [^>]*fill="(#[0-9a-fA-F]{6})")re");
    const std::regex line_stroke(R"re(<polyline [^>]*stroke="(#[0-9a-fA-F]{6})")re");
    std::set<std::string> texts, marks;
    for (auto it = std::sregex_iterator(html.begin(), html.end(), text_fill);
         it != std::sregex_iterator(); ++it)
      texts.insert((*it)[1].str());
    for (const auto* re : {&mark_fill, &line_stroke})
      for (auto it = std::sregex_iterator(html.begin(), html.end(), *re);
           it != std::sregex_iterator(); ++it)
        if (lower((*it)[1].str()) != "#ffffff") marks.insert((*it)[1].str());
    ASSERT_FALSE(texts.empty());
    for (const auto& t : texts) {
      EXPECT_GE(contrast(t, chart), 4.5) << m->name << " chart text " << t;
      ++pairs;
    }
    for (const auto& k : marks) {
      EXPECT_GE(contrast(k, chart), 3.0) << m->name << " chart mark " << k;
      ++pairs;
    }
  }
  EXPECT_GT(pairs, 100);
}
