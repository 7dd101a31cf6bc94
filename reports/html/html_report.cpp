// The executive HTML report (see html_report.h): the page of a ReportModel, its sections in
// order, and the parts at the top of it (header, one-line verdict, the three totals, the verdict
// table, footer). The charts, the evidence and the replay have files of their own (sections.h).
#include "reports/html/html_report.h"

#include <fstream>
#include <stdexcept>

#include "reports/html/sections.h"  // one renderer per section
#include "reports/html/svg.h"       // escape, num

namespace audit::reports {
namespace sections {
namespace {

constexpr const char* kCss = R"CSS(
:root{--ink:#1f2933;--muted:#52606d;--faint:#7b8794;--line:#e4e7eb;--bg:#f3f5f8;--card:#fff;
--blue:#1f4e79;--red:#b83227;--amber:#a86b00;--green:#2f7d4f}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:36px 40px 56px}
header .eyebrow{font-size:12px;letter-spacing:.08em;text-transform:uppercase;color:var(--faint)}
h1{font-size:30px;line-height:1.2;margin:6px 0 4px;letter-spacing:-.01em}
h2{font-size:19px;margin:0 0 4px}
h2.part{font-size:13px;letter-spacing:.1em;text-transform:uppercase;color:var(--faint);
margin:40px 0 8px;border-bottom:1px solid var(--line);padding-bottom:6px}
h3{font-size:15px;margin:18px 0 6px}
.claim{color:var(--muted);margin:0 0 18px}
.lede{color:var(--muted);margin:0 0 14px;font-size:14px}
.verdict{background:var(--card);border:1px solid var(--line);border-left:6px solid var(--faint);
border-radius:6px;padding:14px 20px;font-size:17px;margin:0 0 18px}
.verdict strong{font-size:19px}
.tone-bad{border-left-color:var(--red)}.tone-warn{border-left-color:var(--amber)}
.tone-good{border-left-color:var(--green)}
.alarm{background:#fdecea;border:1px solid #f5c2bd;color:#8a1c12;border-radius:6px;
padding:10px 16px;margin:0 0 16px;font-weight:600}
.kpis{display:grid;grid-template-columns:repeat(3,1fr);gap:16px;margin:0 0 18px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 20px;
border-top:4px solid var(--faint)}
.kpi.claimed{border-top-color:#c9861a}.kpi.final{border-top-color:#2b6cb0}
.kpi.full{border-top-color:#243b53}
.kpi .label{font-size:12px;text-transform:uppercase;letter-spacing:.07em;color:var(--muted);
font-weight:600}
.kpi .value{font-size:40px;font-weight:700;line-height:1.15;margin:6px 0 2px;
font-variant-numeric:tabular-nums;letter-spacing:-.02em}
.kpi .band{font-size:14px;color:var(--ink);font-variant-numeric:tabular-nums}
.kpi .sub{font-size:12.5px;color:var(--muted);margin-top:6px}
nav{font-size:13px;margin:0 0 8px;color:var(--muted)}
.kpi a{color:var(--blue);text-decoration:none;font-weight:600}
nav a{color:var(--blue);text-decoration:none;margin-right:14px;white-space:nowrap}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:20px 24px;margin:16px 0}
figure{margin:8px 0 0}
figcaption{font-size:12.5px;color:var(--muted);margin-top:6px}
svg{max-width:100%;height:auto;display:block}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:8px 20px}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{font-size:11.5px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);
border-bottom:2px solid var(--line);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.total td{font-weight:700;border-top:2px solid var(--ink)}
tr.out td{color:var(--faint)}
table.costs td:nth-child(2){width:22%}table.costs td:nth-child(7){width:24%}
table.verdicts td:nth-child(1){width:17%}table.verdicts td:nth-child(2){width:11%}
table.verdicts td:nth-child(3){width:18%}table.verdicts td:nth-child(4){width:27%}
table.kv th{width:30%;font-weight:600;color:var(--muted);text-transform:none;font-size:13px}
table.kv table.kv th{width:auto}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
code{font-size:12px;word-break:break-word}
pre{white-space:pre-wrap;word-break:break-word;background:#f8f9fb;border:1px solid var(--line);
border-radius:6px;padding:12px 14px;font-size:12px;line-height:1.45}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;font-weight:600;
white-space:nowrap}
.b-measured{background:#e3f2e8;color:#1f6b3d}.b-declared{background:#fdf1dc;color:#7a4d00}
.b-estimated{background:#e6edf7;color:#1f4e79}
.b-supported{background:#e3f2e8;color:#1f6b3d}.b-not-supported{background:#fdecea;color:#8a1c12}
.b-not-reproducible-here{background:#eef0f3;color:#3e4c59}
.b-ok{background:#e3f2e8;color:#1f6b3d}.b-failed{background:#fdecea;color:#8a1c12}
.muted{color:var(--faint)}
.small{font-size:12.5px}
details summary{cursor:pointer;font-weight:600;margin:6px 0}
footer{font-size:12px;color:var(--faint);margin-top:28px}
@media (max-width:820px){.kpis,.grid2{grid-template-columns:1fr}main{padding:20px}}
@media print{
@page{size:A4;margin:14mm}
body{background:#fff;font-size:10.5pt;-webkit-print-color-adjust:exact;print-color-adjust:exact}
main{max-width:none;padding:0}
nav{display:none}
section{border:none;padding:0;margin:14px 0}
section.chart,figure,.kpis,.verdict,tr{break-inside:avoid}
h2{break-after:avoid}
a{color:inherit;text-decoration:none}
.kpi .value{font-size:28pt}
details>*{display:block}
}
)CSS";

const char* tone_class(Tone t) {
  return t == Tone::bad ? "tone-bad" : t == Tone::warn ? "tone-warn" : "tone-good";
}

// The stages of the final run with their metering: "sft: 30.0 min wall, 3500 CPU-s".
std::string metering_text(const CategoryMetering& m) {
  if (m.stages.empty()) return "";
  std::string n;
  for (const auto& x : m.stages) n += (n.empty() ? "" : ", ") + x;
  std::string s = n + ": " + text::duration(m.wall_s) + " wall, " + svg::num(m.cpu_s, 4) + " CPU-s";
  if (m.gpu_s > 0) s += ", " + svg::num(m.gpu_s, 4) + " GPU-s";
  return s;
}

// The first sentence of the one-line verdict: what the claimed figure covers.
std::string cost_sentence(const ReportModel& m) {
  const CostRollup& cr = m.costs;
  const std::string& how = m.final_run_provenance;
  const std::string full = money(cr.full.low) + "–" + money(cr.full.high);
  if (cr.has_claim && cr.has_final_run && cr.full.mid > 0) {
    const std::string claimed = money_band(cr.claimed);
    if (cr.claimed.high >= cr.final_run.low)
      return "The claimed " + claimed + " covers the final run (" + money(cr.final_run.mid) +
             " as " + how + ") but only " + share(cr.claimed.mid / cr.full.mid) +
             " of the full cost (" + full + ").";
    return "The final run alone (" + money(cr.final_run.mid) + " as " + how +
           ") exceeds the claimed " + claimed + "; the full cost is " + full + ".";
  }
  if (cr.has_final_run)
    return "The final run cost " + money(cr.final_run.mid) + " as " + how +
           "; the full cost is " + full + ".";
  return "No final-run cost is recorded for this run.";
}

// The rest of the one-line verdict: the claimed results, then ID against OOD.
std::string results_sentence(const Summary& s) {
  std::string rest;
  if (s.results_supported + s.results_not_supported + s.results_not_reproducible > 0)
    rest += " Claimed results: " + std::to_string(s.results_supported) + " supported, " +
            std::to_string(s.results_not_supported) + " not supported, " +
            std::to_string(s.results_not_reproducible) + " not reproducible here.";
  if (s.has_id_and_ood)
    rest += " The tuned model scores " + percent(s.tuned_id) + " in distribution and " +
            percent(s.tuned_ood) + " out of distribution (mean of " +
            std::to_string(s.ood_splits) + " OOD split" + (s.ood_splits == 1 ? "" : "s") + ").";
  return rest;
}

std::string claimed_card(const ReportModel& m) {
  const CostRollup& cr = m.costs;
  std::string p =
      "<div class=\"kpi claimed\"><div class=\"label\">Claimed</div><div class=\"value\">" +
      (cr.has_claim ? h(money(cr.claimed.mid)) : std::string("—")) + "</div>";
  if (cr.has_claim && cr.claimed.high > cr.claimed.low)
    p += "<div class=\"band\">" + h(money(cr.claimed.low)) + " – " + h(money(cr.claimed.high)) +
         "</div>";
  p += "<div class=\"sub\">";
  if (!m.claim.headline.empty()) p += "“" + h(m.claim.headline) + "”. ";
  p += cr.has_claim ? "Basis: " + h(cr.claimed_from) + "." : std::string("No cost stated.");
  if (m.claim.claimed_gpu_hours > 0)
    p += " " + h(svg::num(m.claim.claimed_gpu_hours, 3)) + " " + h(m.claim.gpu_type) +
         " GPU-hours as stated.";
  return p + "</div></div>\n";
}

std::string final_run_card(const ReportModel& m) {
  const CostRollup& cr = m.costs;
  std::string p = "<div class=\"kpi final\"><div class=\"label\">Final run, as " +
                  h(m.final_run_provenance) + "</div><div class=\"value\">" +
                  (cr.has_final_run ? h(money(cr.final_run.mid)) : std::string("—")) + "</div>";
  if (cr.has_final_run)
    p += "<div class=\"band\">band " + h(money(cr.final_run.low)) + " – " +
         h(money(cr.final_run.high)) + "</div>";
  return p + "<div class=\"sub\">" + h(metering_text(m.final_run_metering)) +
         " <a href=\"#cost-lines\">Evidence →</a></div></div>\n";
}

std::string full_cost_card(const ReportModel& m) {
  const CostRollup& cr = m.costs;
  std::string p =
      "<div class=\"kpi full\"><div class=\"label\">Full cost</div><div class=\"value\">" +
      h(money(cr.full.mid)) + "</div><div class=\"band\">band " + h(money(cr.full.low)) + " – " +
      h(money(cr.full.high)) + "</div><div class=\"sub\">";
  if (cr.has_claim && cr.full.mid > 0)
    p += "The headline covers " + h(share(cr.claimed.mid / cr.full.mid)) + " of it. ";
  return p + "Data, failed runs, search, evaluation and the base model included. "
             "<a href=\"#cost-lines\">Evidence →</a></div></div>\n";
}

}  // namespace

std::string h(const std::string& s) { return svg::escape(s); }

std::string badge(const std::string& word) {
  std::string cls = word;
  for (auto& ch : cls)
    if (ch == ' ') ch = '-';
  return "<span class=\"badge b-" + h(cls) + "\">" + h(word) + "</span>";
}

std::string budget_label(int64_t b) { return b < 0 ? "unlimited" : std::to_string(b); }

std::string cell_text(const std::optional<EvalCell>& c) {
  return c ? percent(c->mean) + " [" + percent(c->ci.low) + "–" + percent(c->ci.high) + "]"
           : std::string("—");
}

std::string head(const ReportModel& m) {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
         "style-src 'unsafe-inline'; img-src data:\">\n"
         "<title>Audit: " + h(m.claim.title) + " (run " + std::to_string(m.run.id) + ")</title>\n" +
         "<style>" + kCss + "</style>\n</head>\n";
}

std::string header(const ReportModel& m) {
  const ledger::RunInfo& run = m.run;
  std::string p = "<header>\n<div class=\"eyebrow\">Audit report · run #" +
                  std::to_string(run.id) + " · " + h(ledger::to_string(run.status)) + " · " +
                  h(run.device.empty() ? "?" : run.device) + " · " + h(text::utc(run.started_at)) +
                  "</div>\n";
  p += "<h1>" + h(m.claim.title) + "</h1>\n<p class=\"claim\">";
  if (!m.claim.headline.empty()) p += "Claim: “" + h(m.claim.headline) + "”. ";
  p += "Recipe <code>" + h(run.recipe_sha256.substr(0, 12)) + "</code>";
  if (!run.name.empty()) p += " (" + h(run.name) + ")";
  return p + ". Every figure below is read from the ledger.</p>\n</header>\n";
}

std::string verification_alarm(const ReportModel& m) {
  if (m.verify.ok) return "";
  return "<div class=\"alarm\">Ledger verification FAILED: " + h(m.verify.message) +
         ". The rows below may have been altered.</div>\n";
}

std::string summary_line(const ReportModel& m) {
  return std::string("<p class=\"verdict ") + tone_class(m.summary.tone) + "\"><strong>" +
         h(cost_sentence(m)) + "</strong>" + h(results_sentence(m.summary)) + "</p>\n";
}

std::string totals(const ReportModel& m) {
  return "<div class=\"kpis\">\n" + claimed_card(m) + final_run_card(m) + full_cost_card(m) +
         "</div>\n";
}

std::string nav() {
  return "<nav><a href=\"#costs\">Cost waterfall</a>"
         "<a href=\"#generalization\">ID vs OOD</a><a href=\"#budget\">Thinking budget</a>"
         "<a href=\"#loss\">Loss curves</a><a href=\"#verdicts\">Verdicts</a>"
         "<a href=\"#cost-lines\">Cost lines</a>"
         "<a href=\"#stages\">Metering</a><a href=\"#evals\">Eval cells</a>"
         "<a href=\"#trace-errors\">Trace errors</a><a href=\"#selection\">Selection</a>"
         "<a href=\"#decontamination\">Decontamination</a>"
         "<a href=\"#recipe\">Recipe</a><a href=\"#ledger\">Ledger</a></nav>\n";
}

// Verdicts computed for this page and not stored are marked, with the command that stores them.
std::string verdicts(const ReportModel& m) {
  std::string p =
      "<section id=\"verdicts\"><h2>Verdict by claim</h2>\n<p class=\"lede\">One line per claim: "
      "claimed against measured, with intervals. ";
  if (m.verdicts_not_stored == 0)
    p += "Stored in the ledger.";
  else
    p += std::to_string(m.verdicts_not_stored) + " of " + std::to_string(m.verdicts.size()) +
         " computed now and not stored in the ledger yet: <code>audit verdicts " +
         std::to_string(m.run.id) + " --ledger FILE</code> stores them.";
  p += "</p>\n<table class=\"verdicts\"><thead><tr><th>Claim</th><th>Verdict</th><th>Claimed"
       "</th><th>Measured</th><th>Why</th></tr></thead><tbody>\n";
  for (const auto& v : m.verdicts)
    p += "<tr><td><b>" + h(v.claim) + "</b></td><td>" + badge(v.verdict) +
         (v.id == 0 ? " <span class=\"muted small\">not stored</span>" : "") + "</td><td>" +
         h(v.claimed) + "</td><td>" + h(v.measured) + "</td><td class=\"small\">" + h(v.reason) +
         "</td></tr>\n";
  return p + "</tbody></table></section>\n";
}

std::string footer(const ReportModel& m) {
  const std::string id = std::to_string(m.run.id);
  return "<footer>Every figure on this page is read from the ledger rows of run #" + id +
         " (recipe " + h(m.run.recipe_sha256.substr(0, 12)) +
         "); the page is regenerated from the ledger alone with <code>audit report " + id +
         " --ledger FILE --out FILE.html</code>. No script, no network.</footer>\n";
}

}  // namespace sections

std::string render_report(const ReportModel& m) {
  using namespace sections;
  return head(m) + "<body>\n<main>\n" + header(m) + verification_alarm(m) + summary_line(m) +
         totals(m) + nav() + cost_waterfall(m) + generalization(m) + thinking_budget(m) +
         loss_curves(m) + verdicts(m) + "<h2 class=\"part\">Evidence</h2>\n" + cost_lines(m) +
         stage_metering(m) + eval_cells(m) + trace_errors(m) + selection(m) + decontamination(m) +
         recipe(m) + ledger_and_run(m) + replay(m) + other_artifacts(m) + footer(m) +
         "</main>\n</body>\n</html>\n";
}

std::string render_report(const ledger::Ledger& l, int64_t run_id) {
  return render_report(read_report_model(l, run_id));
}

ReportModel write_report(const ledger::Ledger& l, int64_t run_id, const std::string& out_path) {
  ReportModel m = read_report_model(l, run_id);
  const std::string html = render_report(m);
  std::ofstream f(out_path, std::ios::binary | std::ios::trunc);
  if (!f)
    throw std::runtime_error(out_path + ": cannot open for writing (check the folder exists)");
  f << html;
  f.close();
  if (!f) throw std::runtime_error(out_path + ": write failed (disk full?)");
  return m;
}

}  // namespace audit::reports
