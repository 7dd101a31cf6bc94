// The executive HTML report (see html_report.h): the page of a ReportModel, its sections in
// order, and the parts at the top of it (header, one-line verdict, the three totals, the verdict
// table, footer). The charts, the evidence and the replay have files of their own (sections.h).
#include "reports/html/html_report.h"

#include <cstdint>
#include <fstream>
#include <stdexcept>

#include "reports/html/sections.h"  // one renderer per section
#include "reports/html/svg.h"       // escape, num

namespace audit::reports {
namespace sections {
namespace {

constexpr const char* kCss = R"CSS(
:root{color-scheme:light dark;--ink:#1f2933;--muted:#52606d;--faint:#5f6b7a;--line:#e4e7eb;
--bg:#f3f5f8;--card:#ffffff;--pre:#f8f9fb;--blue:#1f4e79;--red:#b83227;--amber:#8a5a00;
--green:#2f7d4f;--claimed:#c9861a;--final:#2b6cb0;--marginal:#4a6d8c;--full:#243b53;
--chart:#ffffff}
@media (prefers-color-scheme:dark){:root{--ink:#e6eaef;--muted:#b8c2cc;--faint:#9eaab6;
--line:#2e3a46;--bg:#0f1720;--card:#18212b;--pre:#111a23;--blue:#8cb8e8;--red:#f07c70;
--amber:#e0a840;--green:#5fbf85;--claimed:#e4a04a;--final:#6ea8e0;--marginal:#8fa3b8;
--full:#b8c2cc;--chart:#ffffff}}
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
a{color:var(--blue)}
a.term{color:inherit;text-decoration:underline dotted;text-underline-offset:2px}
.claim{color:var(--muted);margin:0 0 18px}
.lede{color:var(--muted);margin:0 0 14px;font-size:14px}
.verdict{background:var(--card);color:var(--ink);border:1px solid var(--line);
border-left:8px solid var(--faint);border-radius:6px;padding:14px 20px;font-size:17px;
margin:0 0 18px}
.verdict strong{font-size:19px}
.verdict .word{display:block;font-size:22px;font-weight:800;letter-spacing:.04em;margin:0 0 4px}
.tone-bad{border-left-color:var(--red)}.tone-warn{border-left-color:var(--amber)}
.tone-good{border-left-color:var(--green)}
.tone-bad .word{color:var(--red)}.tone-warn .word{color:var(--amber)}
.tone-good .word{color:var(--green)}
.alarm{background:#fdecea;border:1px solid #f5c2bd;color:#8a1c12;border-radius:6px;
padding:10px 16px;margin:0 0 16px;font-weight:600}
.kpis{display:grid;grid-template-columns:repeat(4,1fr);gap:14px;margin:0 0 18px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 18px;
border-top:4px solid var(--faint)}
.kpi.claimed{border-top-color:var(--claimed)}.kpi.final{border-top-color:var(--final)}
.kpi.marginal{border-top-color:var(--marginal)}.kpi.full{border-top-color:var(--full)}
.kpi .label{font-size:12px;text-transform:uppercase;letter-spacing:.07em;color:var(--muted);
font-weight:600}
.kpi .value{font-size:34px;font-weight:700;line-height:1.15;margin:6px 0 2px;
font-variant-numeric:tabular-nums;letter-spacing:-.02em}
.kpi .band{font-size:14px;color:var(--ink);font-variant-numeric:tabular-nums}
.kpi .sub{font-size:12.5px;color:var(--muted);margin-top:6px}
.kpi .also{font-size:13px;color:var(--ink);margin-top:6px;font-variant-numeric:tabular-nums}
nav{font-size:13px;margin:0 0 8px;color:var(--muted)}
.kpi a{color:var(--blue);text-decoration:none;font-weight:600}
nav a{color:var(--blue);text-decoration:none;margin-right:14px;white-space:nowrap}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:20px 24px;margin:16px 0}
figure{margin:8px 0 0}
figcaption{font-size:12.5px;color:var(--muted);margin-top:6px}
svg{max-width:100%;height:auto;display:block;background:var(--chart);border-radius:6px}
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
pre{white-space:pre-wrap;word-break:break-word;background:var(--pre);color:var(--ink);
border:1px solid var(--line);border-radius:6px;padding:12px 14px;font-size:12px;line-height:1.45}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;font-weight:600;
white-space:nowrap}
.b-measured{background:#e3f2e8;color:#1f6b3d}.b-declared{background:#fdf1dc;color:#7a4d00}
.b-estimated{background:#e6edf7;color:#1f4e79}
.b-supported{background:#e3f2e8;color:#1f6b3d}.b-not-supported{background:#fdecea;color:#8a1c12}
.b-not-reproducible-here{background:#eef0f3;color:#3e4c59}
.b-ok{background:#e3f2e8;color:#1f6b3d}.b-failed{background:#fdecea;color:#8a1c12}
.muted{color:var(--faint)}
.small{font-size:12.5px}
dl.glossary{display:grid;grid-template-columns:minmax(150px,22%) 1fr;gap:6px 18px;margin:8px 0;
font-size:14px}
dl.glossary div.term{display:contents}
dl.glossary dt{font-weight:700;color:var(--ink)}
dl.glossary dd{margin:0;color:var(--muted)}
details summary{cursor:pointer;font-weight:600;margin:6px 0}
footer{font-size:12px;color:var(--faint);margin-top:28px}
@media (max-width:980px){.kpis{grid-template-columns:1fr 1fr}}
@media (max-width:820px){.kpis,.grid2,dl.glossary{grid-template-columns:1fr}main{padding:20px}}
@media print{
:root{color-scheme:light;--ink:#1f2933;--muted:#52606d;--faint:#5f6b7a;--line:#d9dde3;
--bg:#ffffff;--card:#ffffff;--pre:#f8f9fb;--blue:#1f4e79;--red:#b83227;--amber:#8a5a00;
--green:#2f7d4f;--claimed:#c9861a;--final:#2b6cb0;--marginal:#4a6d8c;--full:#243b53;
--chart:#ffffff}
@page{size:A4;margin:14mm}
body{background:#fff;color:#1f2933;font-size:10.5pt;-webkit-print-color-adjust:exact;
print-color-adjust:exact}
main{max-width:none;padding:0}
nav{display:none}
section{border:none;padding:0;margin:14px 0}
section.chart,figure,.kpis,.verdict,tr,dl.glossary dd{break-inside:avoid}
h2{break-after:avoid}
a{color:inherit;text-decoration:none}
.kpis{grid-template-columns:repeat(4,1fr);gap:8px}
.kpi .value{font-size:20pt}
svg{width:100%;max-width:100%}
details>summary{list-style:none}
details::details-content{content-visibility:visible;display:contents}
}
)CSS";

// Opens every closed <details> before printing and closes them again after (CSS alone cannot
// open them). The page's only script; the Content-Security-Policy allows it by its SHA-256.
constexpr const char* kPrintScript =
    "addEventListener('beforeprint',function(){document.querySelectorAll('details:not([open])')"
    ".forEach(function(d){d.setAttribute('data-print-opened','');d.open=true;});});"
    "addEventListener('afterprint',function(){document.querySelectorAll("
    "'details[data-print-opened]').forEach(function(d){d.removeAttribute('data-print-opened');"
    "d.open=false;});});";

// Standard base64 of the bytes a hex string spells (for the CSP's 'sha256-...' source).
std::string base64_of_hex(const std::string& hex) {
  static const char* kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(char(std::stoi(hex.substr(i, 2), nullptr, 16)));
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 2]));
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back(i + 2 < bytes.size() ? kAlphabet[v & 63] : '=');
  }
  return out;
}

const char* tone_class(Tone t) {
  return t == Tone::bad ? "tone-bad" : t == Tone::warn ? "tone-warn" : "tone-good";
}

// The verdict as a word (the colour of the box is a second signal, never the only one).
std::string verdict_word(const ReportModel& m) {
  if (m.verdicts.empty()) return "NO VERDICT";
  switch (m.summary.tone) {
    case Tone::bad:
      return "NOT SUPPORTED";
    case Tone::warn:
      return "PARTLY CHECKED";
    case Tone::good:
      break;
  }
  return "SUPPORTED";
}

// "2 of 5 claims not supported, 1 not reproducible here."
std::string verdict_counts(const std::vector<ledger::Verdict>& v) {
  int bad = 0, unknown = 0;
  for (const auto& x : v) {
    if (x.verdict == kNotSupported)
      ++bad;
    else if (x.verdict != kSupported)
      ++unknown;
  }
  const std::string n = std::to_string(v.size());
  if (v.empty()) return "No verdict is stored or computable for this run.";
  if (bad == 0 && unknown == 0) return "All " + n + " claims supported.";
  std::string s;
  if (bad > 0) s = std::to_string(bad) + " of " + n + " claims not supported";
  if (unknown > 0)
    s += (s.empty() ? std::to_string(unknown) + " of " + n + " claims" : ", " + std::to_string(unknown)) +
         " not reproducible here";
  return s + ".";
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
         " <a class=\"term\" href=\"#g-gpu-hour\">GPU-hours</a> as stated.";
  return p + "</div></div>\n";
}

std::string final_run_card(const ReportModel& m) {
  const CostRollup& cr = m.costs;
  std::string p = "<div class=\"kpi final\"><div class=\"label\">Final run, as <a "
                  "class=\"term\" href=\"#g-provenance\">" + h(m.final_run_provenance) +
                  "</a></div><div class=\"value\">" +
                  (cr.has_final_run ? h(money(cr.final_run.mid)) : std::string("—")) + "</div>";
  if (cr.has_final_run)
    p += "<div class=\"band\">band " + h(money(cr.final_run.low)) + " – " +
         h(money(cr.final_run.high)) + "</div>";
  return p + "<div class=\"sub\">" + h(metering_text(m.final_run_metering)) +
         " <a href=\"#cost-lines\">Evidence →</a></div></div>\n";
}

// "cost lines #3, #4 and #9" (the ledger rows a figure sums).
std::string rows_text(const std::vector<int64_t>& ids) {
  if (ids.empty()) return "no cost line";
  std::string s = ids.size() == 1 ? "cost line " : "cost lines ";
  for (size_t i = 0; i < ids.size(); ++i)
    s += (i == 0 ? "" : i + 1 == ids.size() ? " and " : ", ") + ("#" + std::to_string(ids[i]));
  return s;
}

std::string marginal_card(const ReportModel& m) {
  const MarginalCost& mc = m.marginal;
  return "<div class=\"kpi marginal\"><div class=\"label\"><a class=\"term\" "
         "href=\"#g-marginal\">Marginal cost</a></div><div class=\"value\">" +
         h(money(mc.marginal.mid)) + "</div><div class=\"band\">band " +
         h(money(mc.marginal.low)) + " – " + h(money(mc.marginal.high)) +
         "</div><div class=\"sub\">Everything in the full cost except the base model's "
         "pretraining: the final run, data, failed runs, search and evaluation (" +
         h(rows_text(mc.marginal_rows)) + "). <a href=\"#cost-lines\">Evidence →</a></div></div>\n";
}

std::string full_cost_card(const ReportModel& m) {
  const CostRollup& cr = m.costs;
  const MarginalCost& mc = m.marginal;
  const Band& full = mc.full_with_share;
  const std::string which = mc.declared ? share(mc.share) + " of the base's pretraining (declared)"
                                        : "all of the base's pretraining";
  std::string p = "<div class=\"kpi full\"><div class=\"label\"><a class=\"term\" "
                  "href=\"#g-full\">Full cost</a>, with " + h(which) +
                  "</div><div class=\"value\">" + h(money(full.mid)) +
                  "</div><div class=\"band\">band " + h(money(full.low)) + " – " +
                  h(money(full.high)) + "</div>";
  if (mc.declared && mc.share != 1.0)
    p += "<div class=\"also\">" +
         h("With all of the base's pretraining: " + money(mc.marginal.mid + mc.base_all.mid)) +
         "</div>";
  p += "<div class=\"sub\">Marginal cost + " + h(money(mc.base_all.mid * mc.share)) +
       " for the base model (" + h(share(mc.share)) + " of " + h(money(mc.base_all.mid)) + ", " +
       h(rows_text(mc.base_rows)) + "). Share: " + h(mc.source) + ". ";
  if (cr.has_claim && full.mid > 0)
    p += "The headline covers " + h(share(cr.claimed.mid / full.mid)) + " of it. ";
  return p + "<a href=\"#cost-lines\">Evidence →</a></div></div>\n";
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
         "style-src 'unsafe-inline'; img-src data:; script-src '" + print_script_hash() + "'\">\n"
         "<meta name=\"color-scheme\" content=\"light dark\">\n"
         "<title>Audit: " + h(m.claim.title) + " (run " + std::to_string(m.run.id) + ")</title>\n" +
         "<style>" + kCss + "</style>\n<script>" + kPrintScript + "</script>\n</head>\n";
}

std::string print_script() { return kPrintScript; }

std::string print_script_hash() {
  return "sha256-" + base64_of_hex(ledger::sha256_hex(kPrintScript));
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
  return std::string("<p class=\"verdict ") + tone_class(m.summary.tone) +
         "\" role=\"status\"><span class=\"word\">Verdict: " + h(verdict_word(m)) +
         "</span><span class=\"small\">" + h(verdict_counts(m.verdicts)) +
         " <a href=\"#verdicts\">Each claim →</a></span><br><strong>" + h(cost_sentence(m)) +
         "</strong>" + h(results_sentence(m.summary)) + "</p>\n";
}

std::string totals(const ReportModel& m) {
  return "<div class=\"kpis\">\n" + claimed_card(m) + final_run_card(m) + marginal_card(m) +
         full_cost_card(m) + "</div>\n";
}

std::string glossary() {
  struct Term {
    const char* id;
    const char* term;
    const char* text;
  };
  static const Term kTerms[] = {
      {"g-verdict", "Verdict",
       "Each claim is judged from the ledger rows alone: supported (the measured figure agrees "
       "with the claim within its interval), not supported (it does not), or not reproducible "
       "here (the rows needed are missing, or the run used a stand-in). The headline word is "
       "NOT SUPPORTED when any claim is, PARTLY CHECKED when some could not be judged, "
       "SUPPORTED when all are."},
      {"g-id", "ID (in distribution)",
       "Questions drawn like the training data: the same operations, lengths and format."},
      {"g-ood", "OOD (out of distribution)",
       "Questions the training data did not look like: longer numbers, a held-out operation or "
       "another format. A model that only memorised its training set scores well on ID and "
       "poorly on OOD."},
      {"g-wilson", "Wilson 95% interval",
       "The range in which the true accuracy lies with 95% confidence, given n questions and c "
       "correct (Wilson's score interval, which stays inside 0–100% for small n). Two results "
       "whose intervals do not overlap differ beyond chance."},
      {"g-pass1", "pass@1",
       "The share of questions answered correctly by one sampled answer each (averaged over "
       "samples when several are drawn per question)."},
      {"g-budget", "Thinking budget, budget forcing",
       "A cap on the tokens a model may think before it must answer (s1's budget forcing: the "
       "thinking is cut at the cap, or extended with “Wait” when it stops early). Accuracy "
       "against the budget shows what extra thinking buys."},
      {"g-gpu-hour", "GPU-hour",
       "One GPU busy for one hour; rental prices are quoted per GPU-hour. 8 GPUs for 2 hours "
       "are 16 GPU-hours."},
      {"g-mfu", "MFU (model FLOPs utilization)",
       "The share of a GPU's peak arithmetic a training run actually uses. Compute estimates "
       "divide the FLOPs a model needs (6 × parameters × tokens) by peak × MFU; real runs reach "
       "roughly 30–50%."},
      {"g-provenance", "Measured, declared, estimated",
       "Where each cost line comes from. Measured: metered here by audit (wall, CPU and GPU "
       "seconds). Declared: stated by the claim's authors or the recipe, with its source. "
       "Estimated: computed by audit from a formula and inputs shown beside it."},
      {"g-band", "Price band (low–mid–high)",
       "Each price is a range of market rates with its source; bars show the mid price and "
       "whiskers the low–high band."},
      {"g-marginal", "Marginal cost",
       "What the claim cost on top of a base model that already existed: the final run, data, "
       "failed runs, search and evaluation, without the base model's pretraining."},
      {"g-full", "Full cost",
       "The marginal cost plus the base model's pretraining at the share the recipe declares "
       "(base.amortize_share), or all of it when no share is declared."},
      {"g-decontam", "Decontamination",
       "Removing training examples that overlap the test questions (by shared n-grams), so the "
       "scores measure generalisation rather than recall."},
      {"g-ledger", "Ledger, hash chain",
       "The SQLite file every figure is read from. Each event carries the hash of the one "
       "before it, so an edited, deleted or reordered row is detected by verification."},
  };
  std::string p =
      "<section id=\"glossary\"><h2>Glossary</h2>\n<p class=\"lede\">The terms this page uses."
      "</p>\n<dl class=\"glossary\">\n";
  for (const auto& t : kTerms)
    p += std::string("<div class=\"term\"><dt id=\"") + t.id + "\">" + h(t.term) +
         "</dt><dd>" + h(t.text) + "</dd></div>\n";
  return p + "</dl></section>\n";
}

std::string nav() {
  return "<nav><a href=\"#costs\">Cost waterfall</a>"
         "<a href=\"#generalization\">ID vs OOD</a><a href=\"#budget\">Thinking budget</a>"
         "<a href=\"#loss\">Loss curves</a><a href=\"#verdicts\">Verdicts</a>"
         "<a href=\"#cost-lines\">Cost lines</a>"
         "<a href=\"#stages\">Metering</a><a href=\"#evals\">Eval cells</a>"
         "<a href=\"#trace-errors\">Trace errors</a><a href=\"#selection\">Selection</a>"
         "<a href=\"#decontamination\">Decontamination</a>"
         "<a href=\"#recipe\">Recipe</a><a href=\"#ledger\">Ledger</a>"
         "<a href=\"#glossary\">Glossary</a></nav>\n";
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
         " --ledger FILE --out FILE.html</code>. No network; one script, which opens the closed "
         "sections for printing.</footer>\n";
}

}  // namespace sections

std::string render_report(const ReportModel& m) {
  using namespace sections;
  return head(m) + "<body>\n<main>\n" + header(m) + verification_alarm(m) + summary_line(m) +
         totals(m) + nav() + cost_waterfall(m) + generalization(m) + thinking_budget(m) +
         loss_curves(m) + verdicts(m) + "<h2 class=\"part\">Evidence</h2>\n" + cost_lines(m) +
         stage_metering(m) + eval_cells(m) + trace_errors(m) + selection(m) + decontamination(m) + launched_command(m) +
         recipe(m) + ledger_and_run(m) + replay(m) + other_artifacts(m) + glossary() + footer(m) +
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
