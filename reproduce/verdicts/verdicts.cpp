// Claim verdicts and the cost/eval roll-ups behind them (see verdicts.h for the rules).
#include "reproduce/verdicts/verdicts.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>


namespace audit::reports {
namespace {

std::string budget_text(int64_t b) {
  return b < 0 ? std::string("unlimited") : std::to_string(b) + " thinking tokens";
}

std::string cell_text(const EvalCell& c) {
  return percent(c.mean) + " [" + percent(c.ci.low) + "–" + percent(c.ci.high) + "]";
}

int model_rank(const std::string& m) { return m == "base" ? 0 : m == "tuned" ? 1 : 2; }

int split_rank(const std::string& s) {
  for (size_t i = 0; i < recipe::kSplitNames.size(); ++i)
    if (recipe::kSplitNames[i] == s) return int(i);
  return int(recipe::kSplitNames.size());
}

ledger::Verdict make(int64_t run_id, const std::string& kind, const std::string& claim) {
  ledger::Verdict v;
  v.run_id = run_id;
  v.kind = kind;
  v.claim = claim;
  return v;
}

std::string provenance_words(const std::vector<ledger::CostItem>& items, const std::string& cat) {
  std::set<std::string> p;
  for (const auto& c : items)
    if (c.category == cat) p.insert(ledger::to_string(c.provenance));
  if (p.empty()) return "none";
  if (p.size() == 1) return *p.begin();
  std::string s;
  for (const auto& x : p) s += (s.empty() ? "" : " + ") + x;
  return s;
}

}  // namespace

// ---- Formatting ----

std::string money_band(const Band& b) {
  double scale = std::max({std::fabs(b.low), std::fabs(b.high), 1e-300});
  if (std::fabs(b.high - b.low) <= 1e-9 * scale) return money(b.mid);
  return money(b.low) + "–" + money(b.high) + " (mid " + money(b.mid) + ")";
}

// ---- Costs ----

Bucket bucket_of(const ledger::CostItem& c) {
  const std::string& k = c.category;
  if (k == "claimed") return Bucket::claimed;
  if (!ledger::in_full_total(c)) return Bucket::not_in_total;
  if (k == "final_run") return Bucket::final_run;
  if (k == "data_generation" || k == "filtering" || k == "curation" || k == "data" ||
      k == "judging" || k == "distill")
    return Bucket::data;
  if (k == "failed_runs" || k == "search" || k == "aborted_runs" || k == "ablation")
    return Bucket::failed_and_search;
  if (k == "base_model") return Bucket::base_model;
  return Bucket::evaluation_and_other;
}

const char* bucket_label(Bucket b) {
  switch (b) {
    case Bucket::claimed:
      return "claimed";
    case Bucket::final_run:
      return "final run";
    case Bucket::data:
      return "data";
    case Bucket::failed_and_search:
      return "failed runs and search";
    case Bucket::evaluation_and_other:
      return "evaluation and other";
    case Bucket::base_model:
      return "base model";
    case Bucket::not_in_total:
      return "not in the total";
  }
  return "?";
}

CostRollup roll_up_costs(const std::vector<ledger::CostItem>& items, const recipe::Recipe* r) {
  CostRollup out;
  for (const auto& c : items) {
    ++out.lines;
    Band b = ledger::item_cost(c);
    switch (bucket_of(c)) {
      case Bucket::claimed:
        break;
      case Bucket::final_run:
        out.final_run = out.final_run + b;
        out.has_final_run = true;
        break;
      case Bucket::data:
        out.data = out.data + b;
        break;
      case Bucket::failed_and_search:
        out.failed_and_search = out.failed_and_search + b;
        break;
      case Bucket::evaluation_and_other:
        out.evaluation_and_other = out.evaluation_and_other + b;
        break;
      case Bucket::base_model:
        out.base_model = out.base_model + b;
        break;
      case Bucket::not_in_total:
        out.not_in_total = out.not_in_total + b;
        break;
    }
  }
  ledger::CostTotals t = ledger::cost_totals(items);
  out.full = t.full;
  if (t.claimed_known) {
    out.has_claim = true;
    out.claimed = t.claimed;
    out.claimed_from = t.claimed_basis;
  } else if (r && r->claim.claimed_cost_usd > 0) {
    out.has_claim = true;
    out.claimed = Band::point(r->claim.claimed_cost_usd);
    out.claimed_from = "the recipe's claim.claimed_cost_usd";
  }
  return out;
}

// ---- Evaluations ----


std::vector<EvalCell> aggregate_evals(const std::vector<ledger::EvalResult>& rows) {
  using Key = std::tuple<int, std::string, std::string, int, std::string, int64_t>;
  auto budget_key = [](int64_t b) { return b < 0 ? INT64_MAX : b; };
  std::map<Key, std::vector<const ledger::EvalResult*>> groups;
  for (const auto& r : rows)
    groups[Key{model_rank(r.model), r.model, r.suite, split_rank(r.split), r.split,
               budget_key(r.budget)}]
        .push_back(&r);
  std::vector<EvalCell> out;
  for (auto& [k, g] : groups) {
    std::stable_sort(g.begin(), g.end(), [](auto* a, auto* b) { return a->seed < b->seed; });
    EvalCell c;
    c.model = g.front()->model;
    c.suite = g.front()->suite;
    c.split = g.front()->split;
    c.budget = g.front()->budget;
    double sum = 0;
    c.min = 1e300;
    c.max = -1e300;
    for (const auto* r : g) {
      c.ood = c.ood || r->ood;
      c.n += r->n;
      c.correct += r->correct;
      c.per_seed.push_back(r->score);
      sum += r->score;
      c.min = std::min(c.min, r->score);
      c.max = std::max(c.max, r->score);
    }
    c.seeds = int(g.size());
    c.mean = sum / double(g.size());
    c.ci = wilson(c.correct, c.n);
    out.push_back(std::move(c));
  }
  return out;
}

const EvalCell* headline_cell(const std::vector<EvalCell>& cells, const std::string& model,
                              const std::string& split) {
  const EvalCell* best = nullptr;
  for (const auto& c : cells) {
    if (c.model != model || c.split != split) continue;
    // The budget sweep and the "Wait" extension are their own suites, not the headline.
    if (c.suite == "budget_forcing" || c.suite.rfind("wait_x", 0) == 0) continue;
    if (c.budget < 0) {
      if (!best || best->budget >= 0) best = &c;
    } else if (!best || (best->budget >= 0 && c.budget > best->budget)) {
      best = &c;
    }
  }
  return best;
}

std::vector<std::pair<std::string, bool>> splits_of(const std::vector<EvalCell>& cells) {
  std::vector<std::tuple<int, std::string, bool>> s;
  for (const auto& c : cells) {
    bool seen = false;
    for (auto& [rank, name, ood] : s)
      if (name == c.split) {
        seen = true;
        ood = ood || c.ood;
      }
    if (!seen) s.emplace_back(split_rank(c.split), c.split, c.ood);
  }
  std::stable_sort(s.begin(), s.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
  });
  std::vector<std::pair<std::string, bool>> out;
  // The miniature's splits other than "id" are out of distribution by construction; a benchmark
  // suite is what its [[eval.suites]] entry says (stored with each row).
  for (const auto& [rank, name, ood] : s)
    out.emplace_back(name, ood || (rank < int(recipe::kSplitNames.size()) && name != recipe::kSplitId));
  return out;
}

std::string id_split(const std::vector<std::pair<std::string, bool>>& splits) {
  for (const auto& [name, ood] : splits)
    if (name == recipe::kSplitId) return name;
  for (const auto& [name, ood] : splits)
    if (!ood) return name;
  return recipe::kSplitId;
}

// ---- The claim ----

StoredClaim read_claim(const ledger::Ledger& l, int64_t run_id) {
  StoredClaim out;
  auto run = l.run(run_id);
  if (!run) {
    out.error = "no run " + std::to_string(run_id) + " in " + l.path();
    return out;
  }
  try {
    out.recipe = recipe::parse_recipe_text(run->recipe_text,
                                           "ledger run " + std::to_string(run_id) + " recipe_text");
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

// ---- Verdicts ----
// One function per kind; each reads only the rows gathered in VerdictRows.
namespace {

struct VerdictRows {
  int64_t run_id = 0;
  StoredClaim claim;
  const recipe::Recipe* recipe = nullptr;  // into claim; null when unparsed
  std::vector<ledger::CostItem> items;
  CostRollup costs;
  std::vector<EvalCell> cells;
  std::vector<std::pair<std::string, bool>> splits;  // splits_of(cells)
};

// "; the headline covers N% of the full cost (mid), which adds data $x, ..."
std::string cost_adds(const CostRollup& cr) {
  std::vector<std::pair<const char*, Band>> adds = {
      {"data", cr.data},
      {"failed runs and search", cr.failed_and_search},
      {"evaluation and other", cr.evaluation_and_other},
      {"the base model", cr.base_model}};
  std::string s;
  for (const auto& [name, b] : adds) {
    if (b.mid <= 0 && b.high <= 0) continue;
    s += std::string(s.empty() ? "" : ",") + " " + name + " " + money(b.mid);
  }
  return s.empty() ? " nothing else recorded" : s;
}

ledger::Verdict cost_verdict(const VerdictRows& in) {
  const recipe::Recipe* r = in.recipe;
  const CostRollup& cr = in.costs;
  std::string headline = r && !r->claim.headline.empty() ? r->claim.headline
                         : cr.has_claim                  ? "claimed " + money_band(cr.claimed)
                                                         : std::string("no cost stated");
  auto v = make(in.run_id, "cost", "cost: " + headline);
  v.claimed = cr.has_claim ? money_band(cr.claimed) : "none stated";
  if (r && recipe::claimed_gpu_hours(r->claim) > 0)
    v.claimed += " (" + text::num(recipe::claimed_gpu_hours(r->claim), 3) + " " +
                 (r->claim.gpu_type.empty() ? std::string("GPU") : r->claim.gpu_type) +
                 " GPU-hours)";
  v.measured = "final run " + money_band(cr.final_run) + " (" +
               provenance_words(in.items, "final_run") + "); full cost " + money_band(cr.full);
  if (!cr.has_final_run) {
    v.verdict = kNotReproducible;
    v.reason =
        "the ledger holds no final_run cost line for this run (the final training "
        "stage did not finish or was not priced)";
    return v;
  }
  if (!cr.has_claim) {
    v.verdict = kNotReproducible;
    v.reason =
        "the claim states no cost (claim.claimed_cost_usd = 0 and no 'claimed' cost "
        "line); the totals are shown without a comparison";
    return v;
  }
  bool ok = cr.claimed.high >= cr.final_run.low;
  v.verdict = ok ? kSupported : kNotSupported;
  std::string cover = cr.full.mid > 0 ? share(cr.claimed.mid / cr.full.mid) : std::string("n/a");
  v.measured += "; headline covers " + cover + " of full cost";
  v.reason = std::string(ok ? "the final run alone fits within the claimed figure"
                            : "the final run alone costs more than the claimed figure") +
             "; the headline covers " + cover + " of the full cost (mid), which adds" +
             cost_adds(cr);
  return v;
}

// Benchmark names compared without case, spaces, '-' or '_' ("GPQA-Diamond" = "gpqa_diamond").
bool same_name(const std::string& a, const std::string& b) {
  auto key = [](const std::string& s) {
    std::string k;
    for (char ch : s)
      if (std::isalnum(static_cast<unsigned char>(ch))) k += char(std::tolower(static_cast<unsigned char>(ch)));
    return k;
  };
  return key(a) == key(b);
}

// The claimed score against the tuned model's cell on the suite that is the benchmark, or on
// the synthetic split the recipe maps it to (a stand-in: shown, never judged).
ledger::Verdict result_verdict(const VerdictRows& in, const recipe::ClaimResult& res) {
  auto v = make(in.run_id, "result",
                "result: " + res.benchmark + " " + text::num(res.score, 3) + "%");
  v.claimed = text::num(res.score, 3) + "% on " + res.benchmark;
  if (res.n > 0) {
    auto k = int64_t(std::llround(res.score / 100.0 * double(res.n)));
    auto w = wilson(k, res.n);
    v.claimed += " (" + std::to_string(k) + " of " + std::to_string(res.n) +
                 "; its own 95% interval " + percent(w.low) + "–" + percent(w.high) + ")";
  }
  // What the claim is judged against: a suite that IS the benchmark, or a synthetic split,
  // which is a stand-in unless the claim names the split itself (s1-mini's own claims).
  const bool by_suite = !res.suite.empty();
  const std::string where = by_suite ? res.suite : res.split;
  if (where.empty()) {
    v.measured = "not run";
    v.verdict = kNotReproducible;
    v.reason = res.benchmark +
               " is not evaluated by this recipe: the claim names no [[eval.suites]] entry "
               "(claim.results suite = \"\") and no stand-in split";
    return v;
  }
  const EvalCell* c = headline_cell(in.cells, "tuned", where);
  if (!c) {
    v.measured = "no eval rows";
    v.verdict = kNotReproducible;
    v.reason = "no eval rows of the tuned model on " + std::string(by_suite ? "suite '" : "split '") +
               where + "' in this run";
    return v;
  }
  const int64_t samples = in.recipe ? std::max<int64_t>(1, in.recipe->eval.samples) : 1;
  const int64_t items = c->seeds > 0 ? c->n / c->seeds / (by_suite ? samples : 1) : c->n;
  v.measured = cell_text(*c) + " tuned model on " + (by_suite ? "suite '" : "split '") + where +
               "' (" + std::to_string(items) + " questions" +
               (by_suite && samples > 1 ? " x " + std::to_string(samples) + " samples" : "") +
               " over " + std::to_string(c->seeds) + " seed" + (c->seeds == 1 ? "" : "s") +
               ", budget " + budget_text(c->budget) + ")";
  // Judged only when what ran is the benchmark itself, at its size.
  std::string why_not;
  if (in.recipe && !in.recipe->base.claimed_model.empty()) {
    why_not = "this run fine-tuned another model than the claim's: " +
              in.recipe->base.claimed_model;
  } else if (by_suite) {
    if (same_name(res.benchmark, res.suite) == false)
      why_not = "suite '" + res.suite + "' is not " + res.benchmark +
                " (a suite judges a claim only when its name is the benchmark's)";
    else if (res.n > 0 && items != res.n)
      why_not = "suite '" + res.suite + "' has " + std::to_string(items) + " questions and " +
                res.benchmark + " has " + std::to_string(res.n) +
                ": a different set cannot confirm or refute the claim";
  } else if (!same_name(res.benchmark, res.split) && !same_name(res.benchmark, "arith-" + res.split)) {
    why_not = "split '" + res.split + "' stands in for " + res.benchmark +
              " in miniature; a stand-in cannot confirm or refute a benchmark claim";
  }
  if (!why_not.empty()) {
    v.verdict = kNotReproducible;
    v.reason = why_not;
    return v;
  }
  double claimed = res.score / 100.0;
  if (claimed > c->ci.high) {
    v.verdict = kNotSupported;
    v.reason = "the claimed " + percent(claimed) + " lies above our 95% interval (upper bound " +
               percent(c->ci.high) + ")";
  } else if (claimed < c->ci.low) {
    v.verdict = kSupported;
    v.reason =
        "we measured more than claimed: " + percent(claimed) + " lies below our 95% interval";
  } else {
    v.verdict = kSupported;
    v.reason = "the claimed " + percent(claimed) + " lies inside our 95% interval";
  }
  if (res.n > 0 && res.n < 100)
    v.reason += "; the claim rests on " + std::to_string(res.n) + " questions only";
  return v;
}

std::vector<ledger::Verdict> result_verdicts(const VerdictRows& in) {
  if (!in.recipe) {
    auto v = make(in.run_id, "result", "result: claimed results");
    v.claimed = "unreadable";
    v.measured = "not compared";
    v.verdict = kNotReproducible;
    v.reason = "the recipe stored with the run could not be parsed: " + in.claim.error;
    return {v};
  }
  std::vector<ledger::Verdict> out;
  for (const auto& res : in.recipe->claim.results) out.push_back(result_verdict(in, res));
  return out;
}

// Generalization: ID vs OOD of the tuned model.
ledger::Verdict id_vs_ood_verdict(const VerdictRows& in) {
  auto v = make(in.run_id, "generalization", "generalization: ID vs OOD (tuned model)");
  v.claimed = "the tuned model's accuracy holds out of distribution";
  const EvalCell* id = headline_cell(in.cells, "tuned", id_split(in.splits));
  std::vector<const EvalCell*> oods;
  for (const auto& [name, ood] : in.splits)
    if (ood)
      if (const EvalCell* c = headline_cell(in.cells, "tuned", name)) oods.push_back(c);
  if (!id || oods.empty()) {
    v.measured = "not measured";
    v.verdict = kNotReproducible;
    v.reason = !id ? "no eval rows of the tuned model on the ID split"
                   : "no eval rows of the tuned model on any OOD split";
    return v;
  }
  v.measured = "ID " + cell_text(*id);
  if (id->ci.low < kMinIdAccuracyForGap) {
    // Near zero in distribution (or too few questions to tell), every OOD interval overlaps the
    // ID one, and "it holds out of distribution" would be true of a model that learned nothing.
    v.verdict = kNotReproducible;
    v.reason = "the tuned model's accuracy is not established above " +
               percent(kMinIdAccuracyForGap) + " even in distribution (95% interval " +
               percent(id->ci.low) + "–" + percent(id->ci.high) +
               "): there is no accuracy to hold or lose out of distribution";
    return v;
  }
  std::vector<std::string> below;
  double gap_sum = 0;
  for (const auto* c : oods) {
    v.measured +=
        "; " + c->split + " " + cell_text(*c) + " (gap " + points(id->mean - c->mean) + ")";
    gap_sum += id->mean - c->mean;
    if (c->ci.high < id->ci.low) below.push_back(c->split);
  }
  double mean_gap = gap_sum / double(oods.size());
  if (below.empty()) {
    v.verdict = kSupported;
    v.reason = "every OOD interval overlaps the ID interval (mean gap " + points(mean_gap) + ")";
    return v;
  }
  v.verdict = kNotSupported;
  std::string names;
  for (const auto& b : below) names += (names.empty() ? "" : ", ") + b;
  v.reason = std::to_string(below.size()) + " of " + std::to_string(oods.size()) +
             " OOD splits fall below the ID interval (" + names + "); mean gap " +
             points(mean_gap);
  return v;
}

// Generalization: tuned vs base, judged in distribution, the delta shown on every split.
ledger::Verdict tuned_vs_base_verdict(const VerdictRows& in) {
  auto v = make(in.run_id, "generalization", "generalization: tuned vs base");
  v.claimed = "fine-tuning improves on the base model";
  const EvalCell* bid = headline_cell(in.cells, "base", id_split(in.splits));
  const EvalCell* tid = headline_cell(in.cells, "tuned", id_split(in.splits));
  if (!bid || !tid) {
    v.measured = "not measured";
    v.verdict = kNotReproducible;
    v.reason = std::string("no eval rows of the ") + (!bid ? "base" : "tuned") +
               " model on the ID split";
    return v;
  }
  for (const auto& [name, ood] : in.splits) {
    const EvalCell* b = headline_cell(in.cells, "base", name);
    const EvalCell* t = headline_cell(in.cells, "tuned", name);
    if (!b || !t) continue;
    v.measured += (v.measured.empty() ? "" : "; ") + name + ": base " + percent(b->mean) +
                  " → tuned " + percent(t->mean) + " (" + points(t->mean - b->mean) + ")";
  }
  if (tid->ci.low > bid->ci.high) {
    v.verdict = kSupported;
    v.reason = "in distribution the tuned model's 95% interval lies above the base model's";
  } else if (tid->ci.high < bid->ci.low) {
    v.verdict = kNotSupported;
    v.reason = "in distribution the tuned model is worse than the base model";
  } else {
    v.verdict = kNotSupported;
    v.reason =
        "in distribution the 95% intervals of base and tuned overlap: no significant "
        "improvement";
  }
  return v;
}

}  // namespace

std::vector<ledger::Verdict> compute_verdicts(const ledger::Ledger& l, int64_t run_id) {
  if (!l.run(run_id))
    throw ledger::LedgerError(l.path() + ": no run " + std::to_string(run_id) + " in the ledger");
  VerdictRows in;
  in.run_id = run_id;
  in.claim = read_claim(l, run_id);
  in.recipe = in.claim.recipe ? &*in.claim.recipe : nullptr;
  in.items = l.cost_items(run_id);
  in.costs = roll_up_costs(in.items, in.recipe);
  in.cells = aggregate_evals(l.evals(run_id));
  in.splits = splits_of(in.cells);
  std::vector<ledger::Verdict> out = {cost_verdict(in)};
  for (auto& v : result_verdicts(in)) out.push_back(std::move(v));
  out.push_back(id_vs_ood_verdict(in));
  out.push_back(tuned_vs_base_verdict(in));
  return out;
}

std::vector<ledger::Verdict> current_verdicts(const ledger::Ledger& l, int64_t run_id) {
  auto all = l.verdicts(run_id);
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.id < b.id; });
  std::vector<ledger::Verdict> out;
  for (const auto& v : all) {
    auto it = std::find_if(out.begin(), out.end(), [&](const ledger::Verdict& o) {
      return o.kind == v.kind && o.claim == v.claim;
    });
    if (it == out.end())
      out.push_back(v);
    else
      *it = v;
  }
  return out;
}

int store_verdicts(ledger::Ledger& l, int64_t run_id) {
  auto computed = compute_verdicts(l, run_id);
  int added = 0;
  l.transaction([&] {
    auto stored = current_verdicts(l, run_id);
    for (const auto& v : computed) {
      auto it = std::find_if(stored.begin(), stored.end(), [&](const ledger::Verdict& o) {
        return o.kind == v.kind && o.claim == v.claim;
      });
      if (it != stored.end() && it->claimed == v.claimed && it->measured == v.measured &&
          it->verdict == v.verdict && it->reason == v.reason)
        continue;
      l.add_verdict(v);
      ++added;
    }
  });
  return added;
}

bool any_not_supported(const std::vector<ledger::Verdict>& v) {
  return std::any_of(v.begin(), v.end(),
                     [](const ledger::Verdict& x) { return x.verdict == kNotSupported; });
}

}  // namespace audit::reports
