// The report's model (see report_model.h): one run's rows read from the ledger into plain structs,
// one reader per part of the page. Nothing here writes to the ledger or builds markup.
#include "reports/html/report_model.h"

#include <algorithm>
#include <map>
#include <set>

#include "ledger/costs/cost_model.h"  // item_cost, quantity_band, in_full_total, stage_category
#include "ledger/store/event_keys.h"  // keys::kTrainLoss (loss curves from events when no artifact)

namespace audit::reports {
namespace {

using nlohmann::json;

ClaimInfo read_claim_info(const ledger::RunInfo& run, const StoredClaim& sc) {
  ClaimInfo c;
  const recipe::Recipe* r = sc.recipe ? &*sc.recipe : nullptr;
  c.title = r && !r->claim.title.empty() ? r->claim.title : (run.name.empty() ? "run" : run.name);
  if (r) {
    c.headline = r->claim.headline;
    c.sources = r->claim.sources;
    c.claimed_gpu_hours = recipe::claimed_gpu_hours(r->claim);
    c.gpu_type = r->claim.gpu_type;
  }
  if (c.gpu_type.empty()) c.gpu_type = "GPU";
  c.parse_error = sc.error;
  return c;
}

RecipeInfo read_recipe_info(const ledger::RunInfo& run) {
  RecipeInfo r;
  r.text = run.recipe_text;
  r.path = run.recipe_path;
  r.sha256_stored = run.recipe_sha256;
  r.sha256_actual = ledger::sha256_hex(run.recipe_text);
  r.hash_matches = r.sha256_actual == r.sha256_stored;
  return r;
}

// How the final run's cost is known: "measured" when every final_run line was measured here.
std::string final_run_provenance(const std::vector<ledger::CostItem>& costs) {
  std::set<std::string> p;
  for (const auto& c : costs)
    if (bucket_of(c) == Bucket::final_run) p.insert(ledger::to_string(c.provenance));
  if (p.empty() || (p.size() == 1 && *p.begin() == "measured")) return "measured";
  if (p.size() == 1) return *p.begin();
  return "partly measured";
}

CategoryMetering category_metering(const std::vector<ledger::StageInfo>& stages,
                                   const std::string& category) {
  CategoryMetering m;
  for (const auto& s : stages)
    if (ledger::stage_category(s.name) == category) {
      m.wall_s += s.wall_s;
      m.cpu_s += s.cpu_s;
      m.gpu_s += s.gpu_s;
      m.stages.push_back(s.name);
    }
  return m;
}

// The cost lines in bucket order (stable: same bucket, stored order).
std::vector<CostLine> cost_lines(const std::vector<ledger::CostItem>& items) {
  std::vector<CostLine> out;
  for (const auto& c : items)
    out.push_back({c, bucket_of(c), ledger::quantity_band(c), ledger::item_cost(c),
                   ledger::in_full_total(c)});
  std::stable_sort(out.begin(), out.end(), [](const CostLine& a, const CostLine& b) {
    return int(a.bucket) < int(b.bucket);
  });
  return out;
}

// The marginal cost and the base's share: the lines in the full total split into the base
// model's (Bucket::base_model) and the rest, and the share the recipe declares.
MarginalCost marginal_cost(const std::vector<ledger::CostItem>& items, const recipe::Recipe* r) {
  MarginalCost m;
  for (const auto& c : items) {
    const Bucket b = bucket_of(c);
    if (b == Bucket::claimed || b == Bucket::not_in_total) continue;
    const Band cost = ledger::item_cost(c);
    if (b == Bucket::base_model) {
      m.base_all = m.base_all + cost;
      m.base_rows.push_back(c.id);
    } else {
      m.marginal = m.marginal + cost;
      m.marginal_rows.push_back(c.id);
    }
  }
  if (r && (r->base.amortize_share != 1.0 || !r->base.amortize_source.empty())) {
    m.share = r->base.amortize_share;
    m.declared = true;
    m.source = "base.amortize_share = " + text::num(m.share, 4) + " in the recipe" +
               (r->base.amortize_source.empty() ? "" : ": " + r->base.amortize_source);
  } else {
    m.source = "no share declared in the recipe (base.amortize_share): all of it";
  }
  m.full_with_share = m.marginal + m.base_all * m.share;
  return m;
}

// "+ base model (all)", "+ base model (25%, declared)".
std::string base_step_label(const MarginalCost& m) {
  if (!m.declared) return "+ base model (all)";
  return "+ base model (" + share(m.share) + ", declared)";
}

// Claimed → final run → + data → + failed runs and search → (+ evaluation and other, when any)
// → marginal cost → + the base model's share → full cost.
std::vector<CostStep> waterfall_steps(const CostRollup& cr, const MarginalCost& mc,
                                      const std::string& final_how) {
  std::vector<CostStep> s;
  s.push_back({cr.has_claim ? "Claimed" : "Claimed (none)", cr.claimed, StepKind::claimed});
  s.push_back({"Final run (" + final_how + ")", cr.final_run, StepKind::final_run});
  s.push_back({"+ data", cr.data, StepKind::added});
  s.push_back({"+ failed runs and search", cr.failed_and_search, StepKind::added});
  if (cr.evaluation_and_other.high > 0)
    s.push_back({"+ evaluation and other", cr.evaluation_and_other, StepKind::added});
  s.push_back({"Marginal cost", mc.marginal, StepKind::marginal});
  s.push_back({base_step_label(mc), mc.base_all * mc.share, StepKind::added});
  s.push_back({"Full cost", mc.full_with_share, StepKind::full});
  return s;
}

bool mids_span_orders_of_magnitude(const std::vector<CostStep>& steps) {
  double vmax = 0, vmin = 1e300;
  for (const auto& s : steps) {
    vmax = std::max(vmax, s.cost.mid);
    if (s.cost.mid > 0) vmin = std::min(vmin, s.cost.mid);
  }
  return vmax > 0 && vmin < 1e300 && vmax / vmin > 200;
}

std::optional<EvalCell> cell_of(const std::vector<EvalCell>& cells, const std::string& model,
                                const std::string& split) {
  const EvalCell* c = headline_cell(cells, model, split);
  return c ? std::optional<EvalCell>(*c) : std::nullopt;
}

std::vector<SplitRow> split_rows(const std::vector<EvalCell>& cells) {
  const auto splits = splits_of(cells);
  const EvalCell* tid = headline_cell(cells, "tuned", id_split(splits));
  std::vector<SplitRow> out;
  for (const auto& [name, ood] : splits) {
    SplitRow r;
    r.split = name;
    r.ood = ood;
    r.base = cell_of(cells, "base", name);
    r.tuned = cell_of(cells, "tuned", name);
    if (r.base && r.tuned) r.tuned_minus_base = r.tuned->mean - r.base->mean;
    if (r.tuned && tid && ood) r.tuned_gap_to_id = r.tuned->mean - tid->mean;
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<int64_t> budgets_of(const std::vector<EvalCell>& cells) {
  std::vector<int64_t> b;
  for (const auto& c : cells)
    if (std::find(b.begin(), b.end(), c.budget) == b.end()) b.push_back(c.budget);
  std::sort(b.begin(), b.end(), [](int64_t x, int64_t y) {
    return (x < 0 ? INT64_MAX : x) < (y < 0 ? INT64_MAX : y);
  });
  return b;
}

// Per split (in split order) the tuned line then the base line; lines of one point are left to
// the ID vs OOD chart.
std::vector<BudgetLine> budget_lines(const std::vector<EvalCell>& cells,
                                     const std::vector<SplitRow>& splits,
                                     const std::vector<int64_t>& budgets) {
  std::vector<BudgetLine> out;
  for (size_t si = 0; si < splits.size(); ++si)
    for (const char* model : {"tuned", "base"}) {
      BudgetLine line;
      line.split = splits[si].split;
      line.model = model;
      line.split_index = si;
      for (size_t i = 0; i < budgets.size(); ++i)
        for (const auto& c : cells)
          if (c.model == model && c.split == line.split && c.budget == budgets[i]) {
            line.budget_index.push_back(i);
            line.mean.push_back(c.mean);
            line.low.push_back(c.ci.low);
            line.high.push_back(c.ci.high);
            break;
          }
      if (line.mean.size() >= 2) out.push_back(std::move(line));
    }
  return out;
}

Summary summarize(const std::vector<ledger::Verdict>& verdicts,
                  const std::vector<SplitRow>& splits) {
  Summary s;
  for (const auto& v : verdicts) {
    if (v.verdict == kNotSupported)
      s.tone = Tone::bad;
    else if (v.verdict != kSupported && s.tone != Tone::bad)
      s.tone = Tone::warn;
    if (v.kind != "result") continue;
    if (v.verdict == kSupported)
      ++s.results_supported;
    else if (v.verdict == kNotSupported)
      ++s.results_not_supported;
    else
      ++s.results_not_reproducible;
  }
  const SplitRow* id = nullptr;
  double ood_sum = 0;
  std::vector<std::pair<std::string, bool>> names;
  for (const auto& r : splits) names.emplace_back(r.split, r.ood);
  const std::string id_name = id_split(names);
  for (const auto& r : splits) {
    if (r.split == id_name) id = &r;
    if (r.ood && r.tuned) {
      ood_sum += r.tuned->mean;
      ++s.ood_splits;
    }
  }
  if (id && id->tuned && s.ood_splits > 0) {
    s.has_id_and_ood = true;
    s.tuned_id = id->tuned->mean;
    s.tuned_ood = ood_sum / s.ood_splits;
  }
  return s;
}

// Stored verdicts first (the latest per claim); any computed claim not stored yet follows.
std::vector<ledger::Verdict> verdicts_for_page(const ledger::Ledger& l, int64_t run_id,
                                               size_t& not_stored) {
  auto verdicts = current_verdicts(l, run_id);
  not_stored = 0;
  for (auto& v : compute_verdicts(l, run_id)) {
    bool stored = std::any_of(verdicts.begin(), verdicts.end(), [&](const ledger::Verdict& o) {
      return o.kind == v.kind && o.claim == v.claim;
    });
    if (!stored) {
      verdicts.push_back(std::move(v));
      ++not_stored;
    }
  }
  return verdicts;
}

// The ranks line of a stage trained by several processes (StageRow::ranks): the rank_meters
// event's ranks and CPU-seconds, and rank 0's collectives summed over the steps of the
// comm/<stage> artifact.
std::string ranks_line(const json& meters, const std::optional<json>& comm) {
  if (!meters.is_object() || !meters.contains("ranks")) return "";
  std::string s = std::to_string(meters.value("world_size", 0)) + " ranks, " +
                  (comm && comm->contains("parallelism") ? (*comm)["parallelism"].get<std::string>()
                                                         : std::string("?")) +
                  " on " + meters.value("backend", std::string("?"));
  if (meters.value("status", std::string()) == "failed") s += ", failed";
  s += ": CPU-s";
  for (const auto& r : meters["ranks"])
    s += std::string(r.value("rank", 0) == 0 ? " " : " · ") + text::num(r.value("cpu_s", 0.0), 3);
  if (comm && comm->contains("rank0_steps")) {
    std::map<std::string, std::pair<double, double>> kinds;  // calls, bytes
    double secs = 0;
    for (const auto& st : (*comm)["rank0_steps"])
      for (const auto& [k, v] : st.items())
        if (v.is_object() && v.contains("seconds")) {
          secs += v.value("seconds", 0.0);
          kinds[k].first += v.value("calls", 0.0);
          kinds[k].second += v.value("bytes", 0.0);
        }
    if (!kinds.empty()) {
      s += "; rank 0's collectives " + text::duration(secs) + " (";
      bool first = true;
      for (const auto& [k, cb] : kinds) {
        s += (first ? "" : ", ") + k + " " + text::num(cb.first, 4) + " calls, " +
             text::bytes(cb.second);
        first = false;
      }
      s += ")";
    }
  }
  return s;
}

std::vector<StageRow> stage_rows(const ledger::Ledger& l, int64_t run_id,
                                 const std::vector<ledger::StageInfo>& stages, StageTotals& t) {
  std::map<int64_t, json> meters;  // stage id -> its rank_meters event
  for (const auto& e : l.events(run_id))
    if (e.key == "rank_meters") meters[e.stage_id] = json::parse(e.value, nullptr, false);
  std::map<int64_t, size_t> per_stage;
  for (const auto& s : l.meter_samples(run_id)) {
    ++per_stage[s.stage_id];
    ++t.meter_samples;
  }
  std::vector<StageRow> out;
  for (const auto& s : stages) {
    out.push_back({s, ledger::stage_category(s.name), per_stage[s.id], ""});
    if (meters.count(s.id)) out.back().ranks = ranks_line(meters[s.id], l.artifact(run_id, "comm/" + s.name));
    t.wall_s += s.wall_s;
    t.cpu_s += s.cpu_s;
    t.gpu_s += s.gpu_s;
    t.gpu_busy_s += s.gpu_busy_s;
    t.any_gpu = t.any_gpu || s.gpu_count > 0 || s.gpu_s > 0;
  }
  return out;
}

std::optional<LossCurve> curve_of_artifact(const std::string& stage, const json& a) {
  if (!a.is_object() || !a.contains("step") || !a.contains("loss")) return std::nullopt;
  const auto& st = a["step"];
  const auto& lo = a["loss"];
  if (!st.is_array() || !lo.is_array()) return std::nullopt;
  LossCurve c;
  c.stage = stage;
  for (size_t i = 0; i < st.size() && i < lo.size(); ++i)
    if (st[i].is_number() && lo[i].is_number()) {
      c.step.push_back(st[i].get<double>());
      c.loss.push_back(lo[i].get<double>());
    }
  if (c.step.empty()) return std::nullopt;
  return c;
}

// One curve per loss_curve/<stage> artifact; without any, the train_loss events by stage.
std::vector<LossCurve> loss_curves(const ledger::Ledger& l, int64_t run_id,
                                   const std::vector<ledger::StageInfo>& stages,
                                   const std::vector<std::string>& names) {
  std::vector<LossCurve> out;
  const std::string prefix = "loss_curve/";
  for (const auto& n : names) {
    if (n.rfind(prefix, 0) != 0) continue;
    auto a = l.artifact(run_id, n);
    if (!a) continue;
    if (auto c = curve_of_artifact(n.substr(prefix.size()), *a)) out.push_back(std::move(*c));
  }
  if (!out.empty()) return out;
  std::map<int64_t, LossCurve> by_stage;
  for (const auto& e : l.events(run_id)) {
    if (e.key != ledger::keys::kTrainLoss) continue;
    json v = json::parse(e.value, nullptr, false);
    if (!v.is_object() || !v.contains("step") || !v.contains("loss") || !v["step"].is_number() ||
        !v["loss"].is_number())
      continue;
    auto& c = by_stage[e.stage_id];
    c.step.push_back(v["step"].get<double>());
    c.loss.push_back(v["loss"].get<double>());
  }
  for (auto& [sid, c] : by_stage) {
    c.stage = "stage " + std::to_string(sid);
    for (const auto& s : stages)
      if (s.id == sid) c.stage = s.name;
    out.push_back(std::move(c));
  }
  return out;
}

// Counts pooled over seeds, per split; only the kinds that occur (and "none") get a column.
std::optional<TraceErrors> trace_errors(const std::optional<json>& te) {
  if (!te || !te->is_object() || !te->contains("tuned") || !te->contains("kinds"))
    return std::nullopt;
  TraceErrors out;
  std::map<std::string, std::map<std::string, int64_t>> pooled;
  for (const auto& [seed, by_split] : (*te)["tuned"].items())
    for (const auto& [split, counts] : by_split.items()) {
      if (std::find(out.splits.begin(), out.splits.end(), split) == out.splits.end())
        out.splits.push_back(split);
      for (const auto& [kind, n] : counts.items())
        if (n.is_number_integer()) pooled[split][kind] += n.get<int64_t>();
    }
  for (const auto& k : (*te)["kinds"]) {
    const std::string kind = k.is_string() ? k.get<std::string>() : "";
    bool any = kind == "none";
    for (const auto& sp : out.splits) any = any || pooled[sp][kind] > 0;
    if (any) out.kinds.push_back(kind);
  }
  for (const auto& sp : out.splits) {
    out.counts.emplace_back();
    for (const auto& k : out.kinds) out.counts.back().push_back(pooled[sp][k]);
  }
  return out;
}

// ---- Replay artifacts: every figure optional ----

OptNum num_at(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_number()) return std::nullopt;
  return j.at(key).get<double>();
}

// A [low, mid, high] array; a missing or malformed one is empty.
std::optional<Band> band_at(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_array() || j.at(key).size() != 3)
    return std::nullopt;
  const auto& b = j.at(key);
  if (!b[0].is_number() || !b[1].is_number() || !b[2].is_number()) return std::nullopt;
  return Band{b[0].get<double>(), b[1].get<double>(), b[2].get<double>()};
}

std::string str_at(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j.at(key).is_string() ? j.at(key).get<std::string>()
                                                                   : "";
}

std::vector<ReplayMeasurement> replay_measurements(const json& timing) {
  std::vector<ReplayMeasurement> out;
  for (const auto& m : timing.at("measurements"))
    out.push_back({str_at(m, "part"), num_at(m, "timed_seq_len"), num_at(m, "claimed_seq_len"),
                   num_at(m, "batch"), num_at(m, "seconds")});
  return out;
}

std::vector<ReplayScenario> replay_scenarios(const json& pred) {
  std::vector<ReplayScenario> out;
  for (const auto& sc : pred.at("scenarios"))
    out.push_back({str_at(sc, "name"), num_at(sc, "mean_len"), num_at(sc, "overlap"),
                   num_at(sc, "compute_s"), num_at(sc, "comm_s"), num_at(sc, "wall_s"),
                   num_at(sc, "mfu")});
  return out;
}

Replay replay_of(const json& a) {
  Replay r;
  r.raw = a;
  const json pred = a.value("prediction", json::object());
  const json timing = a.value("timing", json::object());
  r.device_name = str_at(a, "device_name");
  r.dtype = str_at(timing, "dtype");
  r.claimed_arch = str_at(a, "claimed_arch");
  r.timed_arch = str_at(a, "timed_arch");
  r.layers_timed = timing.value("layers_timed", int64_t(0));
  r.reduced_shapes = a.value("reduced_shapes", false);
  r.shrink_width = num_at(a, "shrink_width");
  r.shrink_seq = num_at(a, "shrink_seq");
  r.wall_hours = band_at(pred, "wall_hours");
  r.gpu_hours = band_at(pred, "gpu_hours");
  r.cost_usd = band_at(pred, "cost_usd");
  r.mfu = band_at(pred, "mfu");
  r.tokens_per_gpu_s = band_at(pred, "tokens_per_gpu_s");
  r.claimed_wall_hours = num_at(pred, "claimed_wall_hours");
  r.claimed_gpu_hours = num_at(pred, "claimed_gpu_hours");
  r.claimed_basis = str_at(pred, "claimed_basis");
  r.verdict = str_at(pred, "verdict");
  r.reason = str_at(pred, "reason");
  if (a.contains("eager") && a.at("eager").is_object()) {
    const json& e = a.at("eager");
    r.has_eager = true;
    r.eager_ours_layer_s = num_at(e, "ours_layer_s");
    r.eager_layer_s = num_at(e, "layer_s");
    r.eager_ratio = num_at(e, "ratio_ours_over_eager");
  }
  r.has_measurements = timing.contains("measurements") && timing.at("measurements").is_array();
  if (r.has_measurements) r.measurements = replay_measurements(timing);
  r.has_scenarios = pred.contains("scenarios") && pred.at("scenarios").is_array();
  if (r.has_scenarios) r.scenarios = replay_scenarios(pred);
  return r;
}

ReplaySelfCheck self_check_of(const json& c) {
  return {num_at(c, "replay_layers"), num_at(c, "predicted_s"), num_at(c, "measured_s"),
          num_at(c, "error"), c};
}

// ---- The parts of the model, each from its rows ----

void read_costs(ReportModel& m, const ledger::Ledger& l, const recipe::Recipe* r,
                const std::vector<ledger::StageInfo>& stages) {
  const auto items = l.cost_items(m.run.id);
  m.costs = roll_up_costs(items, r);
  m.final_run_provenance = final_run_provenance(items);
  m.final_run_metering = category_metering(stages, "final_run");
  m.cost_lines = cost_lines(items);
  m.marginal = marginal_cost(items, r);
  m.waterfall = waterfall_steps(m.costs, m.marginal, m.final_run_provenance);
  m.waterfall_log_scale = mids_span_orders_of_magnitude(m.waterfall);
}

void read_evals(ReportModel& m, const ledger::Ledger& l) {
  const auto rows = l.evals(m.run.id);
  m.eval_rows = rows.size();
  m.cells = aggregate_evals(rows);
  m.splits = split_rows(m.cells);
  for (const auto& s : m.splits)
    for (const auto* c : {&s.base, &s.tuned})
      if (*c && (*c)->budget >= 0) m.any_budget_in_headline = true;
  m.budgets = budgets_of(m.cells);
  m.budget_lines = budget_lines(m.cells, m.splits, m.budgets);
}

// The artifacts with a section of their own; the rest are listed as other artifacts.
void read_artifacts(ReportModel& m, const ledger::Ledger& l,
                    const std::vector<std::string>& names) {
  const int64_t id = m.run.id;
  std::set<std::string> shown;
  auto take = [&](const char* name) {
    auto a = l.artifact(id, name);
    if (a) shown.insert(name);
    return a;
  };
  m.trace_errors = trace_errors(l.artifact(id, "trace_errors"));
  if (m.trace_errors) shown.insert("trace_errors");
  m.selection = take("selection_counts");
  if (m.selection) {
    m.selection_bars = numeric_pairs(*m.selection);
    // Largest first: a filter funnel reads top-down (ties keep the stored order).
    std::stable_sort(m.selection_bars.begin(), m.selection_bars.end(),
                     [](const auto& x, const auto& y) { return x.second > y.second; });
  }
  m.decontamination = take("decontamination");
  {
    // The claimant's command ([launch]): what ran, how it ended, what was metered and from what.
    json launch = json::object();
    std::map<int64_t, std::string> stage_names;
    for (const auto& s : l.stages(id)) stage_names[s.id] = s.name;
    for (const auto& e : l.events(id)) {
      if (e.key != ledger::keys::kLaunchStart && e.key != ledger::keys::kLaunchStop &&
          e.key != "launch_gpus" && e.key != "launch_log")
        continue;
      json v = json::parse(e.value, nullptr, false);
      if (v.is_discarded()) continue;
      if (e.key == "launch_gpus")
        launch["gpus"] = v;
      else
        launch[stage_names.count(e.stage_id) ? stage_names[e.stage_id] : "run"][e.key] = v;
    }
    if (!launch.empty()) m.launch = launch;
  }
  if (auto rep = take("replay")) m.replay = replay_of(*rep);
  if (auto chk = take("replay_self_check")) m.replay_self_check = self_check_of(*chk);
  for (const auto& n : names)
    if (!shown.count(n) && n.rfind("loss_curve/", 0) != 0 && n.rfind("comm/", 0) != 0)
      m.other_artifacts.emplace_back(n, l.artifact(id, n));
}

}  // namespace

std::vector<std::pair<std::string, double>> numeric_pairs(const json& j) {
  std::vector<std::pair<std::string, double>> out;
  if (j.is_object()) {
    for (const auto& [k, v] : j.items())
      if (v.is_number()) out.emplace_back(k, v.get<double>());
  } else if (j.is_array()) {
    for (const auto& x : j) {
      if (!x.is_object()) return {};
      std::string name;
      for (const char* key : {"name", "filter", "stage", "step"})
        if (x.contains(key) && x[key].is_string()) {
          name = x[key].get<std::string>();
          break;
        }
      const json* count = nullptr;
      for (const char* key : {"kept", "count", "remaining", "n", "after"})
        if (x.contains(key) && x[key].is_number()) {
          count = &x[key];
          break;
        }
      if (name.empty() || !count) return {};
      out.emplace_back(name, count->get<double>());
    }
  }
  return out;
}

nlohmann::json figures_json(const ReportModel& m) {
  auto band = [](const Band& b) { return json{{"low", b.low}, {"mid", b.mid}, {"high", b.high}}; };
  json verdicts = json::array();
  for (const auto& v : m.verdicts)
    verdicts.push_back({{"kind", v.kind},
                        {"claim", v.claim},
                        {"verdict", v.verdict},
                        {"claimed", v.claimed},
                        {"measured", v.measured},
                        {"stored", v.id != 0}});
  json steps = json::array();
  for (const auto& s : m.waterfall) steps.push_back({{"label", s.label}, {"usd", band(s.cost)}});
  const MarginalCost& mc = m.marginal;
  json costs = {
      {"final_run", band(m.costs.final_run)},
      {"final_run_provenance", m.final_run_provenance},
      {"marginal", band(mc.marginal)},
      {"marginal_rows", mc.marginal_rows},
      {"base_model_all", band(mc.base_all)},
      {"base_model_rows", mc.base_rows},
      {"base_share", mc.share},
      {"base_share_declared", mc.declared},
      {"base_share_source", mc.source},
      {"full_with_share", band(mc.full_with_share)},
      {"full_with_all_of_base", band(m.costs.full)},
      {"waterfall", steps}};
  if (m.costs.has_claim) {
    costs["claimed"] = band(m.costs.claimed);
    costs["claimed_from"] = m.costs.claimed_from;
  }
  return {{"run", m.run.id},
          {"title", m.claim.title},
          {"status", ledger::to_string(m.run.status)},
          {"recipe_sha256", m.run.recipe_sha256},
          {"ledger_verified", m.verify.ok},
          {"verdicts", verdicts},
          {"verdicts_not_stored", m.verdicts_not_stored},
          {"costs", costs}};
}

ReportModel read_report_model(const ledger::Ledger& l, int64_t run_id) {
  auto run = l.run(run_id);
  if (!run)
    throw ledger::LedgerError(l.path() + ": no run " + std::to_string(run_id) + " in the ledger");
  ReportModel m;
  m.run = *run;
  const StoredClaim sc = read_claim(l, run_id);
  const recipe::Recipe* r = sc.recipe ? &*sc.recipe : nullptr;
  m.claim = read_claim_info(m.run, sc);
  m.recipe = read_recipe_info(m.run);
  m.verify = l.verify();
  const auto stages = l.stages(run_id);
  read_costs(m, l, r, stages);
  read_evals(m, l);
  m.verdicts = verdicts_for_page(l, run_id, m.verdicts_not_stored);
  m.summary = summarize(m.verdicts, m.splits);
  m.stages = stage_rows(l, run_id, stages, m.stage_totals);
  const auto names = l.artifact_names(run_id);
  m.loss_curves = loss_curves(l, run_id, stages, names);
  read_artifacts(m, l, names);
  return m;
}

}  // namespace audit::reports
