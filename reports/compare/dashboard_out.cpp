// The dashboard for machines (see dashboard.h): JUnit XML (one test suite per claim, one test case
// per rule and per verdict of the current run; a regression is a <failure>, a rule not judged is
// <skipped>) and JSON.
#include <string>

#include "common/format.h"
#include "reports/compare/dashboard.h"

namespace audit::reports::compare {
namespace {

using nlohmann::json;

// Escapes text for XML attribute values and element content.
std::string x(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default:
        // XML 1.0 forbids most control characters; keep tab, newline, carriage return.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') o += ' ';
        else o += c;
    }
  }
  return o;
}

json opt(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

std::string runs_text(const ClaimTrend& c) {
  std::string s = "current " + c.runs[*c.current].ref.label();
  if (c.baseline) s += ", baseline " + c.runs[*c.baseline].ref.label() + " (" + c.baseline_how + ")";
  return s;
}

}  // namespace

std::string render_junit(const Dashboard& d) {
  std::string body;
  int tests = 0, failures = 0, skipped = 0;
  for (const auto& c : d.claims) {
    const std::string suite = c.claim + (c.replay ? " (replay)" : "");
    std::string cases;
    int t = 0, f = 0, s = 0;
    auto add = [&](const std::string& cls, const std::string& name, const std::string& inner,
                   bool fail, bool skip) {
      ++t;
      f += fail;
      s += skip;
      cases += "    <testcase classname=\"" + x(cls) + "\" name=\"" + x(name) + "\" time=\"0\"";
      cases += inner.empty() ? "/>\n" : ">\n" + inner + "    </testcase>\n";
    };
    if (!c.current) {
      add("audit.regression." + suite, "current run", "      <skipped message=\"" +
          x(c.no_baseline) + "\"/>\n", false, true);
    } else {
      const std::string runs = runs_text(c);
      if (!c.baseline)
        add("audit.regression." + suite, "baseline",
            "      <skipped message=\"" + x(c.no_baseline) + "\"/>\n", false, true);
      for (const auto& r : c.results) {
        std::string inner;
        if (r.failed)
          inner = "      <failure type=\"regression\" message=\"" + x(r.rule + ": " + r.message) +
                  "\">" + x(r.what + "; threshold " + text::fmt("%g", r.threshold) + "; " + runs) +
                  "</failure>\n";
        else if (!r.judged)
          inner = "      <skipped message=\"" + x(r.message) + "\"/>\n";
        else
          inner = "      <system-out>" + x(r.message + "; " + runs) + "</system-out>\n";
        add("audit.regression." + suite, r.rule, inner, r.failed, !r.judged && !r.failed);
      }
      for (const auto& v : c.verdicts) {
        const std::string line = v.claim + ": " + v.current +
                                 (v.baseline.empty() ? "" : " (baseline: " + v.baseline + ")") +
                                 "; measured " + v.measured + "; " + runs;
        std::string inner =
            v.failed ? "      <failure type=\"verdict_changes\" message=\"" +
                           x("was " + v.baseline + ", now " + v.current) + "\">" + x(line) +
                           "</failure>\n"
                     : "      <system-out>" + x(line) + "</system-out>\n";
        add("audit.verdict." + suite, v.claim, inner, v.failed, false);  // "KIND: ..."
      }
    }
    tests += t;
    failures += f;
    skipped += s;
    body += "  <testsuite name=\"" + x(suite) + "\" tests=\"" + std::to_string(t) +
            "\" failures=\"" + std::to_string(f) + "\" errors=\"0\" skipped=\"" +
            std::to_string(s) + "\">\n" + cases + "  </testsuite>\n";
  }
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"audit dashboard\" tests=\"" +
         std::to_string(tests) + "\" failures=\"" + std::to_string(failures) +
         "\" errors=\"0\" skipped=\"" + std::to_string(skipped) + "\">\n" + body +
         "</testsuites>\n";
}

json dashboard_json(const Dashboard& d) {
  json j;
  j["ledgers"] = d.ledgers;
  j["baseline"] = d.options.baseline.empty() ? json(nullptr) : json(d.options.baseline);
  j["baseline_branch"] =
      d.options.baseline_branch.empty() ? json(nullptr) : json(d.options.baseline_branch);
  j["significance_rule"] = kSignificanceRule;
  j["regressed"] = d.regressed();
  j["regressions"] = d.regressions();
  j["claims"] = json::array();
  for (const auto& c : d.claims) {
    json cj = {{"claim", c.claim}, {"replay", c.replay}};
    cj["current"] = c.current ? json(c.runs[*c.current].ref.label()) : json(nullptr);
    cj["baseline"] = c.baseline ? json(c.runs[*c.baseline].ref.label()) : json(nullptr);
    cj["baseline_how"] = c.baseline_how;
    cj["no_baseline"] = c.no_baseline;
    cj["rules_stated"] = c.rules_stated;
    cj["rules"] = {{"cost_growth_pct", c.rules.cost_growth_pct},
                   {"gpu_hours_growth_pct", c.rules.gpu_hours_growth_pct},
                   {"accuracy_drop_points", c.rules.accuracy_drop_points},
                   {"throughput_ratio", c.rules.throughput_ratio},
                   {"verdict_changes", c.rules.verdict_changes}};
    cj["results"] = json::array();
    for (const auto& r : c.results)
      cj["results"].push_back({{"rule", r.rule},
                               {"threshold", r.threshold},
                               {"judged", r.judged},
                               {"failed", r.failed},
                               {"baseline", opt(r.baseline)},
                               {"current", opt(r.current)},
                               {"message", r.message}});
    cj["verdicts"] = json::array();
    for (const auto& v : c.verdicts)
      cj["verdicts"].push_back({{"kind", v.kind},
                                {"claim", v.claim},
                                {"current", v.current},
                                {"baseline", v.baseline.empty() ? json(nullptr) : json(v.baseline)},
                                {"measured", v.measured},
                                {"failed", v.failed}});
    cj["runs"] = json::array();
    for (const auto& s : c.runs) {
      const auto& r = s.model.run;
      const auto& sum = s.model.summary;
      int supported = 0, not_supported = 0, other = 0;
      for (const auto& v : s.model.verdicts)
        (v.verdict == kSupported ? supported : v.verdict == kNotSupported ? not_supported : other)++;
      cj["runs"].push_back(
          {{"ref", s.ref.label()},
           {"started_at", r.started_at},
           {"status", ledger::to_string(r.status)},
           {"git_commit", r.git_commit},
           {"branch", s.branch ? json(s.branch->branch) : json(nullptr)},
           {"full_cost_usd", {s.model.costs.full.low, s.model.costs.full.mid, s.model.costs.full.high}},
           {"gpu_hours", s.gpu_hours()},
           {"cpu_hours", s.cpu_hours()},
           {"tokens_per_s", opt(s.train_tokens_per_s)},
           {"tuned_id", sum.has_id_and_ood ? json(sum.tuned_id) : json(nullptr)},
           {"tuned_ood", sum.has_id_and_ood ? json(sum.tuned_ood) : json(nullptr)},
           {"verdicts", {{"supported", supported}, {"not_supported", not_supported},
                         {"other", other}}}});
    }
    j["claims"].push_back(cj);
  }
  return j;
}

}  // namespace audit::reports::compare
