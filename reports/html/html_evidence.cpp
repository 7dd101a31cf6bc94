// The report's evidence sections (sections.h): every cost line, metering per stage, every eval
// cell, trace errors, selection counts, decontamination, the recipe, the ledger and run, and any
// other artifact; and json_html, which shows a stored JSON artifact as escaped tables.
#include <algorithm>

#include "reports/html/sections.h"
#include "reports/html/svg.h"  // num, hbar_chart

namespace audit::reports::sections {
namespace {

using nlohmann::json;

// An array of scalars, inline (the first 60).
std::string json_scalars(const json& j, int depth) {
  std::string s;
  size_t k = 0;
  for (const auto& x : j) {
    if (k == 60) {
      s += ", … (" + std::to_string(j.size() - 60) + " more)";
      break;
    }
    s += (k++ ? ", " : "") + json_html(x, depth + 1);
  }
  return s;
}

// An array of objects as one table, a column per key (the first 200 rows).
std::string json_object_rows(const json& j, int depth) {
  std::vector<std::string> cols;
  for (const auto& x : j)
    for (const auto& [k, v] : x.items())
      if (std::find(cols.begin(), cols.end(), k) == cols.end()) cols.push_back(k);
  std::string s = "<table class=\"data\"><thead><tr>";
  for (const auto& c : cols) s += "<th>" + h(c) + "</th>";
  s += "</tr></thead><tbody>";
  size_t k = 0;
  for (const auto& x : j) {
    if (k++ == 200) {
      s += "<tr><td colspan=\"" + std::to_string(cols.size()) + "\">… " +
           std::to_string(j.size() - 200) + " more rows</td></tr>";
      break;
    }
    s += "<tr>";
    for (const auto& c : cols)
      s += "<td>" + (x.contains(c) ? json_html(x[c], depth + 1) : std::string()) + "</td>";
    s += "</tr>";
  }
  return s + "</tbody></table>";
}

std::string json_array(const json& j, int depth) {
  if (j.empty()) return "<span class=\"muted\">[]</span>";
  if (std::all_of(j.begin(), j.end(), [](const json& x) { return x.is_primitive(); }))
    return json_scalars(j, depth);
  if (std::all_of(j.begin(), j.end(), [](const json& x) { return x.is_object(); }))
    return json_object_rows(j, depth);
  std::string s = "<ol>";
  for (const auto& x : j) s += "<li>" + json_html(x, depth + 1) + "</li>";
  return s + "</ol>";
}

std::string cost_line_row(const CostLine& l) {
  const ledger::CostItem& c = l.item;
  std::string qty = svg::num(c.quantity, 4) + " " + c.unit;
  if (l.quantity.low != l.quantity.high)
    qty += " (" + svg::num(l.quantity.low, 3) + "–" + svg::num(l.quantity.high, 3) + ")";
  std::string cat_words = c.category;
  std::replace(cat_words.begin(), cat_words.end(), '_', ' ');
  const std::string bucket = bucket_label(l.bucket);
  return std::string("<tr") + (l.in_total ? "" : " class=\"out\"") + "><td>" + h(c.category) +
         (bucket != cat_words ? "<div class=\"muted small\">" + h(bucket) + "</div>" : "") +
         "</td><td>" + h(c.description) +
         (l.in_total ? "" : " <span class=\"muted\">(not in total)</span>") +
         "<div class=\"muted small\">" + h(c.source) + "</div></td><td class=\"num\">" + h(qty) +
         "</td><td class=\"num\">" + h(money(c.price_low)) + " · " + h(money(c.price_mid)) +
         " · " + h(money(c.price_high)) + "</td><td class=\"num\">" + h(money(l.cost.low)) +
         " · <b>" + h(money(l.cost.mid)) + "</b> · " + h(money(l.cost.high)) + "</td><td>" +
         badge(ledger::to_string(c.provenance)) + "</td><td class=\"small\">" + h(c.formula) +
         "<br><code>" + h(c.inputs.dump()) + "</code></td></tr>\n";
}

std::string total_row(const std::string& label, const Band& b) {
  return "<tr class=\"total\"><td colspan=\"4\">" + h(label) + "</td><td class=\"num\">" +
         h(money(b.low)) + " · <b>" + h(money(b.mid)) + "</b> · " + h(money(b.high)) +
         "</td><td colspan=\"2\"></td></tr>\n";
}

std::string stage_row(const StageRow& r, bool gpus) {
  const ledger::StageInfo& s = r.stage;
  std::string p = "<tr><td>" + h(s.name) + "</td><td>" + h(r.category) + "</td><td>" +
                  h(s.status) + "</td><td class=\"num\">" + h(text::duration(s.wall_s)) +
                  "</td><td class=\"num\">" + h(svg::num(s.cpu_s, 4)) + "</td>";
  if (gpus)
    p += "<td class=\"num\">" + std::to_string(s.gpu_count) + "</td><td class=\"num\">" +
         h(svg::num(s.gpu_s, 4)) + "</td><td class=\"num\">" + h(svg::num(s.gpu_busy_s, 4)) +
         "</td><td class=\"num\">" + h(text::bytes(s.gpu_peak_mem_bytes)) + "</td>";
  return p + "<td class=\"num\">" +
         (s.power_metered ? h(svg::num(s.energy_j / 3.6e6, 3) + " kWh")
                          : std::string("not metered")) +
         "</td><td class=\"num\">" + std::to_string(r.meter_samples) + "</td></tr>\n";
}

std::string stage_total_row(const StageTotals& t) {
  std::string p = "<tr class=\"total\"><td colspan=\"3\">All stages</td><td class=\"num\">" +
                  h(text::duration(t.wall_s)) + "</td><td class=\"num\">" +
                  h(svg::num(t.cpu_s, 4)) + "</td>";
  if (t.any_gpu)
    p += "<td></td><td class=\"num\">" + h(svg::num(t.gpu_s, 4)) + "</td><td class=\"num\">" +
         h(svg::num(t.gpu_busy_s, 4)) + "</td><td></td>";
  return p + "<td></td><td class=\"num\">" + std::to_string(t.meter_samples) + "</td></tr>\n";
}

std::string selection_chart(const std::vector<std::pair<std::string, double>>& bars) {
  std::vector<std::string> labels;
  std::vector<double> values;
  for (const auto& [k, v] : bars) labels.push_back(k), values.push_back(v);
  svg::Frame f;
  f.width = 1000;
  f.height = int(60 + 34 * bars.size());
  f.left = 220;
  f.top = 16;
  f.bottom = 30;
  return "<figure>" +
         svg::hbar_chart(f, labels, values, "#2b6cb0", [](double v) { return svg::num(v, 6); }) +
         "</figure>\n";
}

std::string kv_row(const std::string& k, const std::string& v) {
  return "<tr><th>" + h(k) + "</th><td>" + h(v) + "</td></tr>";
}

}  // namespace

// Any JSON value as escaped HTML: objects as key/value tables, arrays of objects as tables,
// arrays of scalars inline.
std::string json_html(const json& j, int depth) {
  if (depth > 6) return "<code>" + h(j.dump()) + "</code>";
  if (j.is_null()) return "<span class=\"muted\">null</span>";
  if (j.is_boolean()) return j.get<bool>() ? "true" : "false";
  if (j.is_number_integer() || j.is_number_unsigned()) return h(j.dump());
  if (j.is_number_float()) return h(svg::num(j.get<double>(), 6));
  if (j.is_string()) return h(j.get<std::string>());
  if (j.is_array()) return json_array(j, depth);
  std::string s = "<table class=\"kv\"><tbody>";
  for (const auto& [k, v] : j.items())
    s += "<tr><th>" + h(k) + "</th><td>" + json_html(v, depth + 1) + "</td></tr>";
  return s + "</tbody></table>";
}

std::string cost_lines(const ReportModel& m) {
  std::string p =
      "<section id=\"cost-lines\"><h2>Every cost line</h2>\n<p class=\"lede\">Quantity × "
      "<a class=\"term\" href=\"#g-band\">price band</a> = cost band. <a class=\"term\" "
      "href=\"#g-provenance\">Provenance</a>: <span class=\"badge b-measured\">measured</span> "
      "here, <span class=\"badge b-declared\">declared</span> by the claim, or <span "
      "class=\"badge b-estimated\">estimated</span> with the formula and its inputs. Greyed "
      "lines are not added to the full cost.</p>\n"
      "<table class=\"costs\"><thead><tr><th>Category</th><th>Line and source</th>"
      "<th class=\"num\">Quantity</th><th class=\"num\">Price per unit<br>low · mid · high"
      "</th><th class=\"num\">Cost<br>low · mid · high</th><th>Provenance</th>"
      "<th>Formula and inputs</th></tr></thead><tbody>\n";
  for (const auto& l : m.cost_lines) p += cost_line_row(l);
  p += total_row("Final run, as " + m.final_run_provenance, m.costs.final_run);
  p += total_row("Marginal cost (all but the base model's pretraining)", m.marginal.marginal);
  p += total_row("Full cost, with " + share(m.marginal.share) + " of the base's pretraining",
                 m.marginal.full_with_share);
  if (m.marginal.share != 1.0)
    p += total_row("Full cost, with all of the base's pretraining", m.costs.full);
  p += "</tbody></table>\n";
  if (m.cost_lines.empty()) p += "<p class=\"lede\">No cost lines are recorded for this run.</p>\n";
  return p + "</section>\n";
}

std::string stage_metering(const ReportModel& m) {
  const bool gpus = m.stage_totals.any_gpu;
  std::string p =
      "<section id=\"stages\"><h2>Metering per stage</h2>\n<p class=\"lede\">GPU-seconds "
      "are what a cloud bills (devices × wall time); busy seconds are shown beside them, "
      "never instead. Power is recorded only where NVML was present.</p>\n"
      "<table><thead><tr><th>Stage</th><th>Cost category</th><th>Status</th>"
      "<th class=\"num\">Wall</th><th class=\"num\">CPU-s</th>";
  if (gpus)
    p += "<th class=\"num\">GPUs</th><th class=\"num\">GPU-s</th><th class=\"num\">GPU "
         "busy-s</th><th class=\"num\">Peak GPU memory</th>";
  p += "<th class=\"num\">Energy</th><th class=\"num\">Meter samples</th></tr></thead>"
       "<tbody>\n";
  for (const auto& r : m.stages) p += stage_row(r, gpus);
  p += stage_total_row(m.stage_totals) + "</tbody></table>\n";
  std::string ranks;
  for (const auto& r : m.stages)
    if (!r.ranks.empty()) ranks += "<li><b>" + h(r.stage.name) + "</b>: " + h(r.ranks) + "</li>\n";
  if (!ranks.empty())
    p += "<p class=\"lede small\">Trained by several processes (each stage's rank_meters event "
         "and comm/&lt;stage&gt; artifact; its CPU-s above are the ranks' sum):</p>\n<ul "
         "class=\"small\">\n" + ranks + "</ul>\n";
  if (!gpus) p += "<p class=\"lede small\">No GPU was allocated to any stage of this run.</p>\n";
  if (m.stages.empty()) p += "<p class=\"lede\">No stages are recorded for this run.</p>\n";
  return p + "</section>\n";
}

std::string eval_cells(const ReportModel& m) {
  std::string p =
      "<section id=\"evals\"><h2>Evaluation cells</h2>\n<p class=\"lede\">Each row pools "
      "the seeds of one model, split and thinking budget: mean of the per-seed accuracies, "
      "their spread, and the <a class=\"term\" href=\"#g-wilson\">Wilson 95% interval</a> of "
      "the pooled counts. Accuracy is <a class=\"term\" href=\"#g-pass1\">pass@1</a>.</p>\n"
      "<table><thead><tr><th>Model</th><th>Suite</th><th>Split</th><th class=\"num\">Budget"
      "</th><th class=\"num\">Seeds</th><th class=\"num\">Correct / n</th><th class=\"num\">"
      "Mean</th><th class=\"num\">Wilson 95%</th><th>Per seed</th></tr></thead><tbody>\n";
  for (const auto& c : m.cells) {
    std::string per;
    for (double v : c.per_seed) per += (per.empty() ? "" : ", ") + percent(v);
    p += "<tr><td>" + h(c.model) + "</td><td>" + h(c.suite) + "</td><td>" + h(c.split) +
         (c.ood ? " <span class=\"muted\">OOD</span>" : "") + "</td><td class=\"num\">" +
         h(budget_label(c.budget)) + "</td><td class=\"num\">" + std::to_string(c.seeds) +
         "</td><td class=\"num\">" + std::to_string(c.correct) + " / " + std::to_string(c.n) +
         "</td><td class=\"num\">" + h(percent(c.mean)) + "</td><td class=\"num\">" +
         h(percent(c.ci.low)) + "–" + h(percent(c.ci.high)) + "</td><td class=\"small\">" +
         h(per) + "</td></tr>\n";
  }
  p += "</tbody></table>\n";
  if (m.cells.empty()) p += "<p class=\"lede\">No evaluation rows are recorded.</p>\n";
  return p + "</section>\n";
}

std::string trace_errors(const ReportModel& m) {
  std::string p = "<section id=\"trace-errors\"><h2>Where the tuned traces first go wrong</h2>\n";
  if (!m.trace_errors)
    return p + "<p class=\"lede\">No trace-error counts are recorded for this run.</p></section>\n";
  const TraceErrors& te = *m.trace_errors;
  p += "<p class=\"lede\">Each completion of every tuned seed, compared line by line with the "
       "teacher's trace and counted once, at the first line that differs, by what that line "
       "does (\"none\": trace and answer right; \"answer\": trace right, answer wrong).</p>\n"
       "<table><thead><tr><th>Split</th>";
  for (const auto& k : te.kinds) p += "<th class=\"num\">" + h(k) + "</th>";
  p += "</tr></thead><tbody>\n";
  for (size_t i = 0; i < te.splits.size(); ++i) {
    p += "<tr><td>" + h(te.splits[i]) + "</td>";
    for (int64_t n : te.counts[i]) p += "<td class=\"num\">" + std::to_string(n) + "</td>";
    p += "</tr>\n";
  }
  return p + "</tbody></table>\n</section>\n";
}

std::string selection(const ReportModel& m) {
  std::string p = "<section id=\"selection\"><h2>Selection counts</h2>\n";
  if (!m.selection)
    return p + "<p class=\"lede\">No selection counts are recorded for this run.</p></section>\n";
  if (!m.selection_bars.empty()) p += selection_chart(m.selection_bars);
  return p + json_html(*m.selection) + "</section>\n";
}

std::string decontamination(const ReportModel& m) {
  std::string p = "<section id=\"decontamination\"><h2><a class=\"term\" "
                  "href=\"#g-decontam\">Decontamination</a></h2>\n";
  if (!m.decontamination)
    return p + "<p class=\"lede\">No decontamination report is recorded for this run.</p>"
               "</section>\n";
  return p + "<p class=\"lede\">N-gram overlap between the training data and each test split, "
             "as stored with the run.</p>\n" +
         json_html(*m.decontamination) + "</section>\n";
}

std::string launched_command(const ReportModel& m) {
  if (!m.launch) return "";
  return "<section id=\"launch\"><h2>The claimant's command</h2>\n<p class=\"lede\">The "
         "recipe's [launch] command ran as the final run, metered as a process tree (CPU-seconds "
         "of every process, exited ones included, and the sources they came from), with the GPUs "
         "NVML showed and the GPU type its time is priced as. As recorded in the ledger's "
         "launch events.</p>\n" +
         json_html(*m.launch) + "</section>\n";
}

std::string recipe(const ReportModel& m) {
  const RecipeInfo& r = m.recipe;
  std::string p = "<section id=\"recipe\"><h2>The recipe</h2>\n<table class=\"kv\"><tbody>";
  p += "<tr><th>SHA-256 stored</th><td><code>" + h(r.sha256_stored) + "</code></td></tr>";
  p += "<tr><th>SHA-256 of the text below</th><td><code>" + h(r.sha256_actual) + "</code> " +
       (r.hash_matches ? "<span class=\"badge b-ok\">matches</span>"
                       : "<span class=\"badge b-failed\">does not match</span>") +
       "</td></tr>";
  p += "<tr><th>Path given</th><td>" + h(r.path) + "</td></tr>";
  if (!m.claim.sources.empty()) {
    p += "<tr><th>Sources of the claim</th><td><ul>";
    for (const auto& s : m.claim.sources) p += "<li>" + h(s) + "</li>";
    p += "</ul></td></tr>";
  }
  if (!m.claim.parse_error.empty())
    p += "<tr><th>Parse</th><td><span class=\"badge b-failed\">unreadable</span> " +
         h(m.claim.parse_error) + "</td></tr>";
  return p + "</tbody></table>\n<pre>" + h(r.text) + "</pre>\n</section>\n";
}

std::string ledger_and_run(const ReportModel& m) {
  const ledger::VerifyReport& vr = m.verify;
  const ledger::RunInfo& run = m.run;
  std::string p = "<section id=\"ledger\"><h2>Ledger and run</h2>\n<table class=\"kv\"><tbody>";
  p += "<tr><th>Hash chain and invariants</th><td>" +
       std::string(vr.ok ? "<span class=\"badge b-ok\">verified</span>"
                         : "<span class=\"badge b-failed\">FAILED</span>") +
       " " + std::to_string(vr.events_checked) + " events and " + std::to_string(vr.rows_checked) +
       " rows checked" +
       (vr.ok ? std::string() : "; first bad event " + std::to_string(vr.first_bad_event)) +
       (vr.message.empty() ? std::string() : ". " + h(vr.message)) + "</td></tr>";
  p += kv_row("Run", "#" + std::to_string(run.id) + " " + run.name);
  p += kv_row("Status", ledger::to_string(run.status));
  p += kv_row("Host", run.host);
  p += kv_row("Git commit", run.git_commit);
  p += kv_row("Device", run.device);
  p += kv_row("Process id", std::to_string(run.pid));
  p += kv_row("Started", text::utc(run.started_at));
  p += kv_row("Ended", text::utc(run.ended_at));
  if (run.ended_at > 0 && run.started_at > 0)
    p += kv_row("Duration", text::duration(run.ended_at - run.started_at));
  p += kv_row("Cost lines / eval rows / stages", std::to_string(m.cost_lines.size()) + " / " +
                                                     std::to_string(m.eval_rows) + " / " +
                                                     std::to_string(m.stages.size()));
  return p + "</tbody></table>\n</section>\n";
}

std::string other_artifacts(const ReportModel& m) {
  if (m.other_artifacts.empty()) return "";
  std::string p = "<section id=\"artifacts\"><h2>Other artifacts stored with the run</h2>\n";
  for (const auto& [name, a] : m.other_artifacts)
    p += "<details><summary>" + h(name) + "</summary>" +
         (a ? json_html(*a) : std::string("<span class=\"muted\">empty</span>")) +
         "</details>\n";
  return p + "</section>\n";
}

}  // namespace audit::reports::sections
