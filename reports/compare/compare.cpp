// Two runs side by side (see compare.h): snapshots read through the report's model, paired line by
// line, cell by cell and verdict by verdict.
#include "reports/compare/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "common/errors.h"            // InputError (exit 2)
#include "common/format.h"            // money, percent, points, duration, rate
#include "ledger/costs/cost_model.h"  // item_cost

namespace audit::reports::compare {
namespace {

using nlohmann::json;

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// tokens/s of each training stage from its "train_summary" event (pipeline.cpp writes one per
// trained model: {label, tokens, tokens_per_s, ...}).
std::map<int64_t, std::pair<double, double>> train_summaries(const ledger::Ledger& l,
                                                             int64_t run_id) {
  std::map<int64_t, std::pair<double, double>> out;  // stage id -> {tokens, tokens_per_s}
  for (const auto& e : l.events(run_id)) {
    if (e.key != "train_summary") continue;
    json v = json::parse(e.value, nullptr, false);
    if (!v.is_object() || !v.contains("tokens_per_s") || !v["tokens_per_s"].is_number()) continue;
    const double tps = v["tokens_per_s"].get<double>();
    const double tokens = v.contains("tokens") && v["tokens"].is_number() ? v["tokens"].get<double>()
                                                                          : 0.0;
    if (tps > 0) out[e.stage_id] = {tokens, tps};
  }
  return out;
}

std::string opt_text(const std::optional<double>& v, std::string (*f)(double)) {
  return v ? f(*v) : "—";
}

std::string signed_money(double v) { return (v < 0 ? "-" : "+") + text::money(std::fabs(v)); }
std::string signed_pct(double v) { return (v < 0 ? "" : "+") + text::fmt("%.1f%%", v); }

std::string change_text(const Change& c, std::string (*delta)(double)) {
  auto d = c.delta();
  if (!d) return "—";
  std::string s = delta(*d);
  if (auto p = c.pct()) s += " (" + signed_pct(*p) + ")";
  return s;
}

json opt_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json change_json(const Change& c) {
  return {{"a", opt_json(c.a)}, {"b", opt_json(c.b)}, {"delta", opt_json(c.delta())},
          {"pct", opt_json(c.pct())}};
}

json band_json(const std::optional<ledger::Band>& b) {
  if (!b) return nullptr;
  return {{"low", b->low}, {"mid", b->mid}, {"high", b->high}};
}

json run_json(const RunSnapshot& s) {
  const auto& r = s.model.run;
  json j = {{"ref", s.ref.label()},         {"ledger", s.ref.ledger},
            {"id", s.ref.id},               {"name", r.name},
            {"started_at", r.started_at},   {"status", ledger::to_string(r.status)},
            {"git_commit", r.git_commit},   {"recipe_sha256", r.recipe_sha256},
            {"device", r.device},           {"host", r.host},
            {"branch", s.branch ? json(s.branch->branch) : json(nullptr)}};
  return j;
}

json cell_json(const std::optional<EvalCell>& c) {
  if (!c) return nullptr;
  return {{"seeds", c->seeds},     {"n", c->n},           {"correct", c->correct},
          {"mean", c->mean},       {"per_seed", c->per_seed},
          {"ci_low", c->ci.low},   {"ci_high", c->ci.high}};
}

std::string cell_text(const std::optional<EvalCell>& c) {
  if (!c) return "—";
  return text::percent(c->mean) + " [" + text::percent(c->ci.low) + "–" +
         text::percent(c->ci.high) + "]";
}

// A table printed with columns padded to their widest cell (UTF-8 dashes count as one).
class Table {
 public:
  explicit Table(std::vector<std::string> head) { rows_.push_back(std::move(head)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string str(const std::vector<bool>& right = {}) const {
    std::vector<size_t> w;
    for (const auto& r : rows_)
      for (size_t i = 0; i < r.size(); ++i) {
        if (w.size() <= i) w.push_back(0);
        w[i] = std::max(w[i], width(r[i]));
      }
    std::string out;
    for (const auto& r : rows_) {
      std::string line = " ";
      for (size_t i = 0; i < r.size(); ++i) {
        const std::string pad(w[i] - width(r[i]), ' ');
        const bool rt = i < right.size() && right[i];
        line += " " + (rt ? pad + r[i] : r[i] + pad);
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
    }
    return out;
  }

 private:
  static size_t width(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // count code points
    return n;
  }
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace

std::string RunRef::label() const { return ledger + ":" + std::to_string(id); }

std::pair<std::string, std::string> split_run_spec(const std::string& spec,
                                                   const std::string& default_ledger) {
  const auto colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0) return {default_ledger, spec};
  return {spec.substr(0, colon), spec.substr(colon + 1)};
}

RunRef resolve_run_ref(const std::string& spec, const std::string& default_ledger) {
  auto [path, run] = split_run_spec(spec, default_ledger);
  if (run != "latest" && !all_digits(run))
    throw InputError(spec, 0, 0, "RUN",
                     "expected 'latest', a run id, or LEDGER:ID (e.g. ci/main.db:12), got '" + spec +
                         "'");
  if (!std::filesystem::exists(path))
    throw InputError(path, 0, 0, "--ledger", "no such ledger file (in run '" + spec + "')");
  const ledger::Ledger l(path, ledger::OpenMode::read_only);
  return {path, ledger::resolve_run(l, run)};
}

double RunSnapshot::gpu_hours() const {
  double h = 0;
  for (const auto& s : stages) h += s.gpu_hours;
  return h;
}

double RunSnapshot::cpu_hours() const {
  double h = 0;
  for (const auto& s : stages) h += s.cpu_s / 3600.0;
  return h;
}

RunSnapshot read_snapshot(const ledger::Ledger& l, const std::string& ledger_path, int64_t run_id) {
  RunSnapshot s;
  s.ref = {ledger_path, run_id};
  s.model = read_report_model(l, run_id);
  s.branch = ledger::run_branch(l, run_id);
  const auto summaries = train_summaries(l, run_id);
  double tokens = 0, seconds = 0, final_tokens = 0, final_seconds = 0;
  for (const auto& row : s.model.stages) {
    const auto& st = row.stage;
    StageMeters m;
    m.name = st.name;
    m.wall_s = st.wall_s;
    m.cpu_s = st.cpu_s;
    m.gpu_hours = st.gpu_s / 3600.0;
    m.power_metered = st.power_metered;
    m.energy_kwh = st.energy_j / 3.6e6;
    if (auto it = summaries.find(st.id); it != summaries.end()) {
      m.tokens = it->second.first;
      m.tokens_per_s = it->second.second;
      tokens += m.tokens;
      seconds += m.tokens / *m.tokens_per_s;
      if (row.category == "final_run") {  // "sft", "sft-seed1": the claimed run's training
        final_tokens += m.tokens;
        final_seconds += m.tokens / *m.tokens_per_s;
      }
    }
    s.stages.push_back(m);
  }
  if (final_tokens > 0 && final_seconds > 0) {
    s.train_tokens_per_s = final_tokens / final_seconds;
    s.train_tokens_per_s_from = "final-run training stages";
  } else if (tokens > 0 && seconds > 0) {
    s.train_tokens_per_s = tokens / seconds;
    s.train_tokens_per_s_from = "all training stages";
  }
  for (const auto& n : l.artifact_names(run_id))
    if (n == "replay" || n == "replay_self_check") s.replay = true;
  return s;
}

std::optional<double> Change::delta() const {
  if (!a || !b) return std::nullopt;
  return *b - *a;
}

std::optional<double> Change::pct() const {
  if (!a || !b || *a == 0) return std::nullopt;
  return (*b - *a) / std::fabs(*a) * 100.0;
}

Change CostLineDiff::mid() const {
  Change c;
  if (a) c.a = a->mid;
  if (b) c.b = b->mid;
  return c;
}

bool VerdictDiff::changed() const {
  return !a || !b || a->verdict != b->verdict;
}

RunDiff diff_runs(RunSnapshot a, RunSnapshot b) {
  RunDiff d;
  d.same_recipe = a.model.run.recipe_sha256 == b.model.run.recipe_sha256;

  // Cost lines by (category, description, unit), a's order then b's new ones.
  auto key = [](const ledger::CostItem& c) { return c.category + "\x1f" + c.description + "\x1f" + c.unit; };
  std::map<std::string, size_t> at;
  for (const auto& l : a.model.cost_lines) {
    at[key(l.item)] = d.cost_lines.size();
    d.cost_lines.push_back({l.item.category, l.item.description, l.item.unit, l.cost, std::nullopt,
                            ledger::to_string(l.item.provenance), "", l.item.formula, "",
                            l.in_total});
  }
  for (const auto& l : b.model.cost_lines) {
    auto it = at.find(key(l.item));
    if (it == at.end() || d.cost_lines[it->second].b) {  // new (or a repeated description)
      d.cost_lines.push_back({l.item.category, l.item.description, l.item.unit, std::nullopt,
                              l.cost, "", ledger::to_string(l.item.provenance), "",
                              l.item.formula, l.in_total});
      continue;
    }
    auto& row = d.cost_lines[it->second];
    row.b = l.cost;
    row.provenance_b = ledger::to_string(l.item.provenance);
    row.formula_b = l.item.formula;
  }

  const auto& ca = a.model.costs;
  const auto& cb = b.model.costs;
  d.totals = {{"Claimed", ca.claimed, cb.claimed},
              {"Final run", ca.final_run, cb.final_run},
              {"+ data", ca.data, cb.data},
              {"+ failed runs and search", ca.failed_and_search, cb.failed_and_search},
              {"+ evaluation and other", ca.evaluation_and_other, cb.evaluation_and_other},
              {"+ base model", ca.base_model, cb.base_model},
              {"Full cost", ca.full, cb.full}};

  // Stages by name, a's order then b's new ones.
  for (const auto& s : a.stages) d.stages.push_back({s.name, s, std::nullopt});
  for (const auto& s : b.stages) {
    auto it = std::find_if(d.stages.begin(), d.stages.end(),
                           [&](const StageDiff& x) { return x.name == s.name && !x.b; });
    if (it != d.stages.end()) it->b = s;
    else d.stages.push_back({s.name, std::nullopt, s});
  }
  d.tokens_per_s = {a.train_tokens_per_s, b.train_tokens_per_s};

  // Eval cells by (model, suite, split, budget).
  auto same = [](const EvalCell& x, const EvalCell& y) {
    return x.model == y.model && x.suite == y.suite && x.split == y.split && x.budget == y.budget;
  };
  for (const auto& c : a.model.cells) d.evals.push_back({c.model, c.suite, c.split, c.ood, c.budget, c, std::nullopt, std::nullopt, false});
  for (const auto& c : b.model.cells) {
    auto it = std::find_if(d.evals.begin(), d.evals.end(),
                           [&](const EvalDiff& e) { return e.a && same(*e.a, c); });
    if (it != d.evals.end()) it->b = c;
    else d.evals.push_back({c.model, c.suite, c.split, c.ood, c.budget, std::nullopt, c, std::nullopt, false});
  }
  for (auto& e : d.evals) {
    if (!e.a || !e.b) continue;
    e.test = stats::two_proportion_test(e.a->correct, e.a->n, e.b->correct, e.b->n);
    e.intervals_apart = e.a->ci.high < e.b->ci.low || e.b->ci.high < e.a->ci.low;
  }

  // Verdicts by (kind, claim).
  for (const auto& v : a.model.verdicts) d.verdicts.push_back({v.kind, v.claim, v, std::nullopt});
  for (const auto& v : b.model.verdicts) {
    auto it = std::find_if(d.verdicts.begin(), d.verdicts.end(), [&](const VerdictDiff& x) {
      return x.kind == v.kind && x.claim == v.claim && !x.b;
    });
    if (it != d.verdicts.end()) it->b = v;
    else d.verdicts.push_back({v.kind, v.claim, std::nullopt, v});
  }
  d.a = std::move(a);
  d.b = std::move(b);
  return d;
}

std::string diff_text(const RunDiff& d) {
  std::ostringstream o;
  auto run_line = [&](const char* tag, const RunSnapshot& s) {
    const auto& r = s.model.run;
    o << tag << "  " << s.ref.label() << "  " << r.name << "  " << text::utc(r.started_at)
      << "  commit " << (r.git_commit.empty() ? "—" : r.git_commit) << "  branch "
      << (s.branch ? s.branch->branch : "—") << "  " << ledger::to_string(r.status) << "\n";
  };
  run_line("A", d.a);
  run_line("B", d.b);
  o << "recipe: " << (d.same_recipe ? "same resolved recipe (SHA-256 " : "different recipes (A ")
    << d.a.model.run.recipe_sha256.substr(0, 12)
    << (d.same_recipe ? ")" : ", B " + d.b.model.run.recipe_sha256.substr(0, 12) + ")") << "\n";

  o << "\nTotals (USD, mid of the price band; change B - A)\n";
  Table t({"", "A", "B", "change"});
  for (const auto& x : d.totals)
    t.add({x.label, text::money(x.a.mid), text::money(x.b.mid), change_text(x.mid(), signed_money)});
  o << t.str({false, true, true, true});

  o << "\nCost lines (category / description: cost with provenance)\n";
  Table c({"category", "description", "A", "B", "change"});
  for (const auto& x : d.cost_lines) {
    auto side = [](const std::optional<ledger::Band>& b, const std::string& p) {
      return b ? text::money(b->mid) + " " + p : std::string("—");
    };
    c.add({x.category + (x.in_total ? "" : " (not in total)"), x.description,
           side(x.a, x.provenance_a), side(x.b, x.provenance_b),
           change_text(x.mid(), signed_money)});
  }
  o << c.str({false, false, true, true, true});

  o << "\nStage meters (A → B)\n";
  Table s({"stage", "wall", "CPU", "GPU-hours", "energy kWh", "tokens/s"});
  auto pair = [](const std::optional<double>& a, const std::optional<double>& b,
                 std::string (*f)(double)) { return opt_text(a, f) + " → " + opt_text(b, f); };
  std::string (*hours)(double) = [](double v) { return text::num(v, 3); };
  using Field = std::optional<double> (*)(const StageMeters&);
  auto col = [&](const StageDiff& x, Field f, std::string (*fmt)(double)) {
    return pair(x.a ? f(*x.a) : std::nullopt, x.b ? f(*x.b) : std::nullopt, fmt);
  };
  for (const auto& x : d.stages)
    s.add({x.name, col(x, [](const StageMeters& m) -> std::optional<double> { return m.wall_s; }, text::duration),
           col(x, [](const StageMeters& m) -> std::optional<double> { return m.cpu_s; }, text::duration),
           col(x, [](const StageMeters& m) -> std::optional<double> { return m.gpu_hours; }, hours),
           col(x, [](const StageMeters& m) -> std::optional<double> {
             return m.power_metered ? std::optional<double>(m.energy_kwh) : std::nullopt;
           }, hours),
           col(x, [](const StageMeters& m) { return m.tokens_per_s; }, text::rate)});
  o << s.str();
  o << "training tokens/s: " << pair(d.tokens_per_s.a, d.tokens_per_s.b, text::rate);
  if (auto p = d.tokens_per_s.pct()) o << " (" << signed_pct(*p) << ")";
  o << "\n";

  o << "\nEvaluations (mean over seeds [Wilson 95%]; significant: " << kSignificanceRule << ")\n";
  Table e({"model", "suite", "split", "budget", "A", "B", "change", "z", "significant",
           "intervals"});
  for (const auto& x : d.evals) {
    std::string chg = "—", z = "—", sig = "—", iv = "—";
    if (x.a && x.b) {
      chg = text::points(x.b->mean - x.a->mean);
      z = text::fmt("%.2f", x.test->z);
      sig = x.test->significant ? "yes" : "no";
      iv = x.intervals_apart ? "apart" : "overlap";
    }
    e.add({x.model, x.suite, x.split, x.budget < 0 ? "unlimited" : std::to_string(x.budget),
           cell_text(x.a), cell_text(x.b), chg, z, sig, iv});
  }
  o << e.str({false, false, false, true, true, true, true, true, false, false});

  o << "\nVerdicts\n";
  Table v({"kind", "claim", "A", "B", ""});
  for (const auto& x : d.verdicts)
    v.add({x.kind, x.claim, x.a ? x.a->verdict : "—", x.b ? x.b->verdict : "—",
           x.changed() ? "changed" : ""});
  o << v.str();
  return o.str();
}

json diff_json(const RunDiff& d) {
  json j;
  j["a"] = run_json(d.a);
  j["b"] = run_json(d.b);
  j["same_recipe"] = d.same_recipe;
  j["significance_rule"] = kSignificanceRule;
  j["totals"] = json::array();
  for (const auto& x : d.totals)
    j["totals"].push_back({{"label", x.label},
                           {"a", band_json(x.a)},
                           {"b", band_json(x.b)},
                           {"mid", change_json(x.mid())}});
  j["cost_lines"] = json::array();
  for (const auto& x : d.cost_lines)
    j["cost_lines"].push_back({{"category", x.category},
                               {"description", x.description},
                               {"unit", x.unit},
                               {"in_total", x.in_total},
                               {"a", band_json(x.a)},
                               {"b", band_json(x.b)},
                               {"provenance_a", x.provenance_a},
                               {"provenance_b", x.provenance_b},
                               {"formula_a", x.formula_a},
                               {"formula_b", x.formula_b},
                               {"mid", change_json(x.mid())}});
  j["stages"] = json::array();
  for (const auto& x : d.stages) {
    auto side = [](const std::optional<StageMeters>& m) -> json {
      if (!m) return nullptr;
      return {{"wall_s", m->wall_s},
              {"cpu_s", m->cpu_s},
              {"gpu_hours", m->gpu_hours},
              {"energy_kwh", m->power_metered ? json(m->energy_kwh) : json(nullptr)},
              {"tokens_per_s", opt_json(m->tokens_per_s)}};
    };
    j["stages"].push_back({{"name", x.name}, {"a", side(x.a)}, {"b", side(x.b)}});
  }
  j["tokens_per_s"] = change_json(d.tokens_per_s);
  j["evals"] = json::array();
  for (const auto& x : d.evals) {
    json e = {{"model", x.model}, {"suite", x.suite},       {"split", x.split},
              {"ood", x.ood},     {"budget", x.budget},     {"a", cell_json(x.a)},
              {"b", cell_json(x.b)}};
    if (x.test) {
      e["change_points"] = (x.b->mean - x.a->mean) * 100.0;
      e["z"] = x.test->z;
      e["p_value"] = x.test->p_value;
      e["significant"] = x.test->significant;
      e["intervals_apart"] = x.intervals_apart;
    }
    j["evals"].push_back(e);
  }
  j["verdicts"] = json::array();
  for (const auto& x : d.verdicts)
    j["verdicts"].push_back({{"kind", x.kind},
                             {"claim", x.claim},
                             {"a", x.a ? json(x.a->verdict) : json(nullptr)},
                             {"b", x.b ? json(x.b->verdict) : json(nullptr)},
                             {"measured_a", x.a ? json(x.a->measured) : json(nullptr)},
                             {"measured_b", x.b ? json(x.b->measured) : json(nullptr)},
                             {"changed", x.changed()}});
  return j;
}

}  // namespace audit::reports::compare
