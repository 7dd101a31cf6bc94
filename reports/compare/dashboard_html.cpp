// The dashboard page (see dashboard.h): one self-contained HTML file (inline CSS and SVG charts
// from reports/html/svg.h, no script, a Content-Security-Policy that loads nothing). Per claim:
// the rules judged (the outcome as a word, not colour alone), four trend charts over the runs
// (full cost, GPU- or CPU-hours, training tokens/s, tuned ID and OOD accuracy), and the table of
// runs with the baseline and the current run marked. Deterministic: no clock is read.
#include <string>

#include "common/format.h"
#include "reports/compare/dashboard.h"
#include "reports/html/svg.h"  // line_chart, escape

namespace audit::reports::compare {
namespace {

using svg::escape;

constexpr const char* kCss = R"CSS(
:root{--ink:#1f2933;--muted:#4a5763;--line:#d9dee4;--bg:#f3f5f8;--card:#fff;
--red:#a52a1f;--green:#1f6b3d;--amber:#7a4d00}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1160px;margin:0 auto;padding:28px 36px 48px}
h1{font-size:26px;margin:4px 0}
h2{font-size:19px;margin:0 0 6px}
.eyebrow{font-size:12px;letter-spacing:.08em;text-transform:uppercase;color:var(--muted)}
.lede{color:var(--muted);margin:0 0 12px}
.status{border:1px solid var(--line);border-left:6px solid var(--green);background:var(--card);
border-radius:6px;padding:12px 18px;font-size:16px;margin:12px 0 18px}
.status.fail{border-left-color:var(--red)}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:18px 22px;
margin:16px 0}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:6px 18px}
figure{margin:6px 0 0}
svg{max-width:100%;height:auto;display:block}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin:8px 0}
th,td{padding:5px 7px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);
border-bottom:2px solid var(--line)}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.mark td{background:#f6f8fb;font-weight:600}
.word{display:inline-block;padding:0 8px;border-radius:9px;font-weight:700;font-size:11.5px}
.w-pass{background:#e3f2e8;color:var(--green)}.w-fail{background:#fdecea;color:var(--red)}
.w-skip{background:#eef0f3;color:#3e4c59}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
@media print{body{background:#fff}section{break-inside:avoid}}
)CSS";

std::string word(const std::string& w) {
  const char* cls = w == "FAIL" ? "w-fail" : w == "PASS" ? "w-pass" : "w-skip";
  return "<span class=\"word " + std::string(cls) + "\">" + w + "</span>";
}

// The x-axis label of a run: "#ID commit" (the commit shortened to 7).
std::string run_label(const RunSnapshot& s) {
  std::string c = s.model.run.git_commit.substr(0, 7);
  return "#" + std::to_string(s.ref.id) + (c.empty() ? "" : " " + c);
}

std::string chart(const ClaimTrend& c, const std::string& title, const std::string& y_label,
                  std::vector<svg::Series> series, svg::Formatter fmt, bool unit_range) {
  svg::Frame f;
  f.width = 540;
  f.height = 260;
  f.left = 64;
  f.right = 16;
  f.top = series.size() > 1 ? svg::kLegendTop : 40;
  f.title = title;
  f.y_label = y_label;
  svg::LineOptions o;
  for (const auto& s : c.runs) o.x_labels.push_back(run_label(s));
  o.fmt_y = std::move(fmt);
  o.y_from_zero = true;
  if (unit_range) {
    o.y_min = 0;
    o.y_max = 1;
  }
  bool any = false;
  for (const auto& s : series) any = any || !s.y.empty();
  if (!any) return "<figure><p class=\"lede\">" + escape(title) + ": no run has it.</p></figure>\n";
  return "<figure>" + svg::line_chart(f, series, o) + "</figure>\n";
}

std::string charts(const ClaimTrend& c) {
  svg::Series cost{"full cost (mid)", "#1f4e79", "", {}, {}, {}, {}, true};
  svg::Series hours{"", "#7a4d00", "", {}, {}, {}, {}, true};
  svg::Series tps{"tokens/s", "#2f7d4f", "", {}, {}, {}, {}, true};
  svg::Series id{"ID", "#1f4e79", "", {}, {}, {}, {}, true};
  svg::Series ood{"OOD (mean of splits)", "#a52a1f", "5 4", {}, {}, {}, {}, true};
  bool any_gpu = false;
  for (const auto& s : c.runs) any_gpu = any_gpu || s.gpu_hours() > 0;
  hours.name = any_gpu ? "GPU-hours" : "CPU-hours";
  for (size_t i = 0; i < c.runs.size(); ++i) {
    const auto& s = c.runs[i];
    const double x = double(i);
    cost.x.push_back(x);
    cost.y.push_back(s.full_cost_mid());
    cost.low.push_back(s.model.costs.full.low);
    cost.high.push_back(s.model.costs.full.high);
    hours.x.push_back(x);
    hours.y.push_back(any_gpu ? s.gpu_hours() : s.cpu_hours());
    if (s.train_tokens_per_s) {
      tps.x.push_back(x);
      tps.y.push_back(*s.train_tokens_per_s);
    }
    const auto& sum = s.model.summary;
    if (sum.has_id_and_ood) {
      id.x.push_back(x);
      id.y.push_back(sum.tuned_id);
      ood.x.push_back(x);
      ood.y.push_back(sum.tuned_ood);
    }
  }
  std::string p = "<div class=\"grid2\">\n";
  p += chart(c, "Full cost per run (whiskers: price band)", "USD", {cost},
             [](double v) { return text::money(v); }, false);
  p += chart(c, hours.name + " per run (all stages)", hours.name, {hours},
             [](double v) { return text::num(v, 3); }, false);
  p += chart(c, "Training tokens/s (final-run SFT)", "tokens/s", {tps},
             [](double v) { return text::rate(v); }, false);
  p += chart(c, "Tuned accuracy: ID and OOD", "accuracy", {id, ood},
             [](double v) { return text::percent(v, 0); }, true);
  return p + "</div>\n";
}

std::string rules_table(const ClaimTrend& c) {
  std::string p;
  if (!c.current) return "<p class=\"lede\">" + escape(c.no_baseline) + ".</p>\n";
  const auto& cur = c.runs[*c.current];
  p += "<p class=\"lede\">Current run <code>" + escape(cur.ref.label()) + "</code>";
  if (c.baseline)
    p += " against baseline <code>" + escape(c.runs[*c.baseline].ref.label()) + "</code> (" +
         escape(c.baseline_how) + ")";
  else
    p += "; no baseline: " + escape(c.no_baseline);
  p += ". Rules from the current run's stored recipe" +
       std::string(c.rules_stated ? " ([regression] section)" : " (no [regression] section: the defaults)") +
       ".</p>\n";
  if (c.baseline) {
    p += "<table><thead><tr><th>rule</th><th>threshold</th><th>outcome</th><th>figures</th>"
         "</tr></thead><tbody>\n";
    for (const auto& r : c.results)
      p += "<tr><td><code>" + escape(r.rule) + "</code><br>" + escape(r.what) +
           "</td><td class=\"num\">" + escape(text::fmt("%g", r.threshold)) + "</td><td>" +
           word(r.failed ? "FAIL" : r.judged ? "PASS" : "SKIPPED") + "</td><td>" +
           escape(r.message) + "</td></tr>\n";
    p += "</tbody></table>\n";
  }
  if (!c.verdicts.empty()) {
    p += "<table><thead><tr><th>verdict</th><th>current</th><th>baseline</th><th>outcome</th>"
         "</tr></thead><tbody>\n";
    for (const auto& v : c.verdicts)
      p += "<tr><td>" + escape(v.claim) + "</td><td>" + escape(v.current) +
           "</td><td>" + escape(v.baseline.empty() ? "—" : v.baseline) + "</td><td>" +
           word(v.failed ? "FAIL" : "PASS") + "</td></tr>\n";
    p += "</tbody></table>\n";
  }
  return p;
}

std::string runs_table(const ClaimTrend& c) {
  std::string p =
      "<table><thead><tr><th>run</th><th>started</th><th>commit</th><th>branch</th>"
      "<th>status</th><th class=\"num\">full cost</th><th class=\"num\">GPU-h</th>"
      "<th class=\"num\">CPU-h</th><th class=\"num\">tokens/s</th><th class=\"num\">ID</th>"
      "<th class=\"num\">OOD</th><th>verdicts</th></tr></thead><tbody>\n";
  for (size_t i = c.runs.size(); i-- > 0;) {  // newest first
    const auto& s = c.runs[i];
    const auto& r = s.model.run;
    const auto& sum = s.model.summary;
    std::string role = c.current && *c.current == i   ? " (current)"
                       : c.baseline && *c.baseline == i ? " (baseline)"
                                                         : "";
    int sup = 0, not_sup = 0, other = 0;
    for (const auto& v : s.model.verdicts)
      (v.verdict == kSupported ? sup : v.verdict == kNotSupported ? not_sup : other)++;
    p += std::string("<tr") + (role.empty() ? "" : " class=\"mark\"") + "><td><code>" +
         escape(s.ref.label()) + "</code>" + escape(role) + "</td><td>" +
         escape(text::utc(r.started_at)) + "</td><td><code>" +
         escape(r.git_commit.empty() ? "—" : r.git_commit) + "</code></td><td>" +
         escape(s.branch ? s.branch->branch : "—") + "</td><td>" +
         escape(ledger::to_string(r.status)) + "</td><td class=\"num\">" +
         escape(text::money(s.full_cost_mid())) + "</td><td class=\"num\">" +
         escape(text::num(s.gpu_hours(), 3)) + "</td><td class=\"num\">" +
         escape(text::num(s.cpu_hours(), 3)) + "</td><td class=\"num\">" +
         escape(s.train_tokens_per_s ? text::rate(*s.train_tokens_per_s) : "—") +
         "</td><td class=\"num\">" + escape(sum.has_id_and_ood ? text::percent(sum.tuned_id) : "—") +
         "</td><td class=\"num\">" +
         escape(sum.has_id_and_ood ? text::percent(sum.tuned_ood) : "—") + "</td><td>" +
         std::to_string(sup) + " supported, " + std::to_string(not_sup) + " not supported, " +
         std::to_string(other) + " other</td></tr>\n";
  }
  return p + "</tbody></table>\n";
}

}  // namespace

std::string render_dashboard_html(const Dashboard& d) {
  const auto regs = d.regressions();
  std::string ledgers;
  for (const auto& l : d.ledgers) ledgers += (ledgers.empty() ? "" : ", ") + l;
  std::string p =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "style-src 'unsafe-inline'; img-src data:\">\n<title>Audit dashboard</title>\n<style>" +
      std::string(kCss) + "</style>\n</head>\n<body>\n<main>\n";
  p += "<div class=\"eyebrow\">Audit dashboard · " + std::to_string(d.claims.size()) +
       " claim(s) · ledgers: " + escape(ledgers) + "</div>\n<h1>Cost and accuracy across runs</h1>\n";
  p += std::string("<div class=\"status") + (regs.empty() ? "" : " fail") + "\">" +
       word(regs.empty() ? "PASS" : "FAIL") + " " +
       (regs.empty() ? "No regression against the baselines."
                     : std::to_string(regs.size()) + " regression(s):") +
       "</div>\n";
  if (!regs.empty()) {
    p += "<ul>\n";
    for (const auto& r : regs) p += "<li>" + escape(r) + "</li>\n";
    p += "</ul>\n";
  }
  p += "<p class=\"lede\">Accuracy drops count only when significant: " +
       std::string(kSignificanceRule) +
       ". ID: the tuned model on the in-distribution split; OOD: its mean over the "
       "out-of-distribution splits. Costs are the report's full cost (mid of the price band).</p>\n";
  for (const auto& c : d.claims) {
    p += "<section id=\"claim-" + escape(c.claim) + (c.replay ? "-replay" : "") + "\">\n<h2>" +
         escape(c.claim) + (c.replay ? " (replay runs)" : "") + " " +
         word(!c.current || !c.baseline ? "NO BASELINE" : c.regressed() ? "FAIL" : "PASS") +
         "</h2>\n";
    p += rules_table(c);
    p += charts(c);
    p += runs_table(c);
    p += "</section>\n";
  }
  return p + "</main>\n</body>\n</html>\n";
}

}  // namespace audit::reports::compare
