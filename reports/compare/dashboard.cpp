// The dashboard's model (see dashboard.h): the runs of every ledger by claim, a baseline and a
// current run per claim, and the [regression] rules judged between the two.
#include "reports/compare/dashboard.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "common/errors.h"   // InputError
#include "common/format.h"   // money, percent, points, rate

namespace audit::reports::compare {
namespace {

namespace fs = std::filesystem;

std::string canonical(const std::string& p) {
  std::error_code ec;
  auto c = fs::weakly_canonical(p, ec);
  return ec ? p : c.string();
}

bool succeeded(const RunSnapshot& s) { return s.model.run.status == ledger::RunStatus::succeeded; }

// The newest succeeded run of c (runs are oldest first); nullopt when none.
std::optional<size_t> newest_succeeded(const ClaimTrend& c, std::optional<size_t> before = {}) {
  const size_t end = before ? *before : c.runs.size();
  for (size_t i = end; i-- > 0;)
    if (succeeded(c.runs[i])) return i;
  return std::nullopt;
}

std::string pct_text(double v) { return (v < 0 ? "" : "+") + text::fmt("%.1f%%", v); }

// A growth rule: judged when on and the baseline's figure is above zero.
RuleResult growth_rule(const char* rule, const char* what, double threshold, double base,
                       double cur, std::string (*fmt)(double), const char* missing) {
  RuleResult r{rule, what, threshold, false, false, base, cur, ""};
  if (threshold <= 0) {
    r.message = "off (" + std::string(rule) + " = 0)";
    return r;
  }
  if (!(base > 0)) {
    r.message = std::string("not judged: ") + missing;
    return r;
  }
  r.judged = true;
  const double growth = (cur - base) / base * 100.0;
  r.failed = growth > threshold;
  r.message = fmt(base) + " → " + fmt(cur) + " (" + pct_text(growth) + (r.failed ? " > " : " ≤ ") +
              text::fmt("%g", threshold) + "% allowed)";
  return r;
}

RuleResult accuracy_rule(double threshold, const RunSnapshot& base, const RunSnapshot& cur) {
  RuleResult r{"accuracy_drop_points",
               "tuned headline accuracy per split may not drop by more than this many points "
               "when the drop is significant (" + std::string(kSignificanceRule) + ")",
               threshold, false, false, std::nullopt, std::nullopt, ""};
  if (threshold <= 0) {
    r.message = "off (accuracy_drop_points = 0)";
    return r;
  }
  std::vector<std::string> parts, failed;
  for (const auto& row : cur.model.splits) {
    if (!row.tuned) continue;
    auto it = std::find_if(base.model.splits.begin(), base.model.splits.end(),
                           [&](const SplitRow& b) { return b.split == row.split && b.tuned; });
    if (it == base.model.splits.end()) continue;
    const EvalCell& b = *it->tuned;
    const EvalCell& c = *row.tuned;
    const auto t = stats::two_proportion_test(b.correct, b.n, c.correct, c.n);
    const double drop = (b.mean - c.mean) * 100.0;
    const bool bad = drop > threshold && t.significant && t.diff < 0;
    std::string part = row.split + " " + text::percent(b.mean) + " → " + text::percent(c.mean) +
                       " (" + text::points(c.mean - b.mean) + ", z = " + text::fmt("%.2f", t.z) +
                       (t.significant ? ", significant" : ", not significant") + ")";
    parts.push_back(part);
    if (bad) failed.push_back(part);
    if (row.split == id_split(splits_of(cur.model.cells))) {
      r.baseline = b.mean;
      r.current = c.mean;
    }
  }
  if (parts.empty()) {
    r.message = "not judged: no tuned split evaluated in both runs";
    return r;
  }
  r.judged = true;
  r.failed = !failed.empty();
  std::string list;
  for (const auto& p : (r.failed ? failed : parts)) list += (list.empty() ? "" : "; ") + p;
  r.message = (r.failed ? "dropped more than " : "no significant drop over ") +
              text::fmt("%g", threshold) + " pts: " + list;
  return r;
}

RuleResult throughput_rule(double threshold, const RunSnapshot& base, const RunSnapshot& cur) {
  RuleResult r{"throughput_ratio",
               "training tokens/s of the final run (its SFT stages) may not fall below this share of the "
               "baseline's",
               threshold, false, false, base.train_tokens_per_s, cur.train_tokens_per_s, ""};
  if (threshold <= 0) {
    r.message = "off (throughput_ratio = 0)";
    return r;
  }
  if (!base.train_tokens_per_s || !cur.train_tokens_per_s) {
    r.message = "not judged: no training tokens/s recorded in " +
                std::string(!base.train_tokens_per_s ? "the baseline" : "the current run");
    return r;
  }
  r.judged = true;
  const double ratio = *cur.train_tokens_per_s / *base.train_tokens_per_s;
  r.failed = ratio < threshold;
  r.message = text::rate(*base.train_tokens_per_s) + " → " + text::rate(*cur.train_tokens_per_s) +
              " tokens/s (ratio " + text::fmt("%.2f", ratio) + (r.failed ? " < " : " ≥ ") +
              text::fmt("%g", threshold) + ")";
  return r;
}

void judge(ClaimTrend& c) {
  const RunSnapshot& cur = c.runs[*c.current];
  c.rules = recipe::parse_regression_section(cur.model.run.recipe_text,
                                             cur.ref.label() + " (stored recipe)", &c.rules_stated);
  for (const auto& v : cur.model.verdicts) {
    VerdictCase vc{v.kind, v.claim, v.verdict, "", v.measured, false};
    if (c.baseline)
      for (const auto& b : c.runs[*c.baseline].model.verdicts)
        if (b.kind == v.kind && b.claim == v.claim) vc.baseline = b.verdict;
    vc.failed = c.baseline && c.rules.verdict_changes && vc.baseline == kSupported &&
                vc.current != kSupported;
    c.verdicts.push_back(vc);
  }
  if (!c.baseline) return;
  const RunSnapshot& base = c.runs[*c.baseline];
  const auto& k = c.rules;
  c.results.push_back(growth_rule("cost_growth_pct",
                                  "full cost (mid of the band) may not grow by more than this %",
                                  k.cost_growth_pct, base.full_cost_mid(), cur.full_cost_mid(),
                                  text::money, "the baseline's full cost is $0"));
  c.results.push_back(growth_rule(
      "gpu_hours_growth_pct", "GPU-hours (all stages) may not grow by more than this %",
      k.gpu_hours_growth_pct, base.gpu_hours(), cur.gpu_hours(),
      [](double v) { return text::num(v, 3) + " GPU-h"; },
      "the baseline metered no GPU-hours (a CPU run)"));
  c.results.push_back(accuracy_rule(k.accuracy_drop_points, base, cur));
  c.results.push_back(throughput_rule(k.throughput_ratio, base, cur));
}

// Where the dashboard's runs come from: each ledger once, every run read.
void read_ledger(const std::string& path, std::map<std::pair<std::string, bool>, ClaimTrend>& by) {
  if (!fs::exists(path)) throw InputError(path, 0, 0, "--ledger", "no such ledger file");
  const ledger::Ledger l(path, ledger::OpenMode::read_only);
  for (const auto& r : l.runs()) {
    RunSnapshot s = read_snapshot(l, path, r.id);
    auto& c = by[{r.name, s.replay}];
    c.claim = r.name;
    c.replay = s.replay;
    c.runs.push_back(std::move(s));
  }
}

bool same_run(const RunSnapshot& s, const RunRef& ref) {
  return s.ref.id == ref.id && canonical(s.ref.ledger) == canonical(ref.ledger);
}

}  // namespace

bool ClaimTrend::regressed() const {
  return std::any_of(results.begin(), results.end(), [](const RuleResult& r) { return r.failed; }) ||
         std::any_of(verdicts.begin(), verdicts.end(), [](const VerdictCase& v) { return v.failed; });
}

bool Dashboard::regressed() const {
  return std::any_of(claims.begin(), claims.end(), [](const ClaimTrend& c) { return c.regressed(); });
}

std::vector<std::string> Dashboard::regressions() const {
  std::vector<std::string> out;
  for (const auto& c : claims) {
    if (!c.current || !c.baseline) continue;
    const std::string runs = " (baseline " + c.runs[*c.baseline].ref.label() + ", current " +
                             c.runs[*c.current].ref.label() + ")";
    for (const auto& r : c.results)
      if (r.failed) out.push_back(c.claim + ": " + r.rule + ": " + r.message + runs);
    for (const auto& v : c.verdicts)
      if (v.failed)
        out.push_back(c.claim + ": verdict_changes: '" + v.claim + "' was " +
                      v.baseline + ", now " + v.current + runs);
  }
  return out;
}

Dashboard build_dashboard(const DashboardOptions& o) {
  if (o.ledgers.empty()) throw InputError("", 0, 0, "--ledger", "no ledger given");
  if (!o.baseline.empty() && !o.baseline_branch.empty())
    throw InputError("", 0, 0, "--baseline", "give --baseline or --baseline-branch, not both");
  Dashboard d;
  d.ledgers = o.ledgers;
  d.options = o;
  std::map<std::pair<std::string, bool>, ClaimTrend> by;
  for (const auto& p : o.ledgers) read_ledger(p, by);

  std::optional<RunRef> base_ref;
  if (!o.baseline.empty()) {
    base_ref = resolve_run_ref(o.baseline, o.ledgers.front());
    bool found = false;
    for (auto& [key, c] : by)
      found = found || std::any_of(c.runs.begin(), c.runs.end(),
                                   [&](const RunSnapshot& s) { return same_run(s, *base_ref); });
    if (!found) {  // a run of a ledger not given with --ledger: read it too
      const ledger::Ledger l(base_ref->ledger, ledger::OpenMode::read_only);
      RunSnapshot s = read_snapshot(l, base_ref->ledger, base_ref->id);
      auto& c = by[{s.model.run.name, s.replay}];
      c.claim = s.model.run.name;
      c.replay = s.replay;
      c.runs.push_back(std::move(s));
    }
  }
  bool branch_seen = false;
  for (auto& [key, c] : by) {
    std::stable_sort(c.runs.begin(), c.runs.end(), [](const RunSnapshot& a, const RunSnapshot& b) {
      return a.model.run.started_at < b.model.run.started_at;
    });
    for (const auto& s : c.runs)
      branch_seen = branch_seen || (s.branch && s.branch->branch == o.baseline_branch);
  }
  if (!o.baseline_branch.empty() && !branch_seen)
    throw InputError(o.baseline_branch, 0, 0, "--baseline-branch",
                     "no run in the ledgers was recorded on branch '" + o.baseline_branch +
                         "' (runs record AUDIT_BRANCH, GITHUB_HEAD_REF, GITHUB_REF_NAME or "
                         "CI_COMMIT_BRANCH when they start; see docs/dashboard.md)");

  for (auto& [key, c] : by) {
    if (base_ref) {
      auto it = std::find_if(c.runs.begin(), c.runs.end(),
                             [&](const RunSnapshot& s) { return same_run(s, *base_ref); });
      if (it == c.runs.end()) {
        c.current = newest_succeeded(c);
        c.no_baseline = "--baseline " + o.baseline + " is a run of another claim";
      } else {
        c.baseline = size_t(it - c.runs.begin());
        c.baseline_how = "--baseline " + o.baseline;
        c.current = newest_succeeded(c);
        if (c.current && *c.current == *c.baseline) {
          c.no_baseline = "the baseline is the newest succeeded run: nothing newer to judge";
          c.baseline.reset();
        }
      }
    } else {
      c.current = newest_succeeded(c);
      if (c.current) {
        std::optional<size_t> b;
        if (o.baseline_branch.empty()) {
          b = newest_succeeded(c, *c.current);
          c.baseline_how = "the previous succeeded run";
        } else {
          for (size_t i = *c.current; i-- > 0;) {
            const auto& s = c.runs[i];
            if (succeeded(s) && s.branch && s.branch->branch == o.baseline_branch) {
              b = i;
              break;
            }
          }
          c.baseline_how = "the last succeeded run on branch " + o.baseline_branch;
        }
        c.baseline = b;
        if (!b)
          c.no_baseline = o.baseline_branch.empty()
                              ? "one succeeded run only: no earlier run to compare with"
                              : "no succeeded run on branch " + o.baseline_branch +
                                    " before the current one";
      }
    }
    if (!c.current) {
      c.no_baseline = "no succeeded run of this claim";
      c.baseline.reset();
      continue;
    }
    judge(c);
    if (!c.baseline) c.baseline_how.clear();
    d.claims.push_back(std::move(c));
  }
  // Claims with no succeeded run are listed too (their trends), judged nothing.
  for (auto& [key, c] : by)
    if (!c.current && !c.runs.empty()) d.claims.push_back(std::move(c));
  std::stable_sort(d.claims.begin(), d.claims.end(), [](const ClaimTrend& a, const ClaimTrend& b) {
    return std::make_pair(a.claim, a.replay) < std::make_pair(b.claim, b.replay);
  });
  return d;
}

}  // namespace audit::reports::compare
