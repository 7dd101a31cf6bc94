// The report's replay section (sections.h): the "replay" artifact (reproduce/cli_torch/
// cmd_replay.cpp: timed parts, the claimed run and cluster, the low/mid/high prediction) and the
// "replay_self_check" artifact (predicted vs measured training time). A figure missing from the
// artifact reads "—"; the raw JSON stays one click away.
#include <functional>

#include "reports/html/sections.h"
#include "reports/html/svg.h"  // num

namespace audit::reports::sections {
namespace {

std::string or_dash(const std::string& s) { return s.empty() ? "—" : s; }

std::string num_or_dash(const OptNum& v, int digits = 4) {
  return v ? svg::num(*v, digits) : "—";
}

std::string band_text(const std::optional<Band>& b, const std::function<std::string(double)>& f) {
  if (!b) return "—";
  return f(b->mid) + " (band " + f(b->low) + " – " + f(b->high) + ")";
}

std::string lede(const Replay& r) {
  std::string p = "<p class=\"lede\">Real forward + backward + AdamW steps of " +
                  h(std::to_string(r.layers_timed)) + " layer(s) on " + h(or_dash(r.device_name)) +
                  " (" + h(or_dash(r.dtype)) +
                  "), extrapolated to full depth, every sequence of the claimed run and the "
                  "claimed cluster through a roofline split and a communication model "
                  "(docs/replay.md).";
  if (r.reduced_shapes)
    p += " <b>Timed at reduced shapes</b> (width / " + h(num_or_dash(r.shrink_width)) +
         ", lengths / " + h(num_or_dash(r.shrink_seq)) +
         "): the band shows the method, it does not decide the claim.";
  return p + "</p>\n";
}

std::string prediction_table(const Replay& r) {
  auto n4 = [](double x) { return svg::num(x, 4); };
  std::string p = "<table class=\"kv\"><tbody>\n";
  auto row = [&](const std::string& k, const std::string& v) {
    p += "<tr><th>" + h(k) + "</th><td>" + h(v) + "</td></tr>\n";
  };
  row("claimed shapes", or_dash(r.claimed_arch));
  row("timed shapes", or_dash(r.timed_arch));
  row("predicted wall time (hours)", band_text(r.wall_hours, n4));
  row("claimed wall time (hours)", num_or_dash(r.claimed_wall_hours));
  row("predicted GPU-hours", band_text(r.gpu_hours, n4));
  row("claimed GPU-hours",
      num_or_dash(r.claimed_gpu_hours) + " (" + or_dash(r.claimed_basis) + ")");
  row("predicted cost", band_text(r.cost_usd, [](double x) { return money(x); }));
  row("implied MFU of the prediction", band_text(r.mfu, [](double x) { return percent(x); }));
  row("throughput, tokens/s per GPU", band_text(r.tokens_per_gpu_s, n4));
  if (r.has_eager)
    row("one layer: ours / PyTorch eager", num_or_dash(r.eager_ours_layer_s) + " s / " +
                                               num_or_dash(r.eager_layer_s) + " s (ratio " +
                                               num_or_dash(r.eager_ratio, 3) + ")");
  return p + "</tbody></table>\n";
}

std::string measurements_table(const Replay& r) {
  std::string p =
      "<table><thead><tr><th>Part</th><th>Timed length</th><th>Claimed length</th>"
      "<th>Batch</th><th>Seconds per unit (median)</th></tr></thead><tbody>\n";
  for (const auto& m : r.measurements)
    p += "<tr><td>" + h(or_dash(m.part)) + "</td><td>" + h(num_or_dash(m.timed_seq_len, 6)) +
         "</td><td>" + h(num_or_dash(m.claimed_seq_len, 6)) + "</td><td>" +
         h(num_or_dash(m.batch)) + "</td><td>" + h(num_or_dash(m.seconds)) + "</td></tr>\n";
  return p + "</tbody></table>\n";
}

std::string scenarios_table(const Replay& r) {
  std::string p =
      "<table><thead><tr><th>Case</th><th>Mean length</th><th>Overlap</th><th>Compute s</th>"
      "<th>Communication s</th><th>Wall</th><th>MFU</th></tr></thead><tbody>\n";
  for (const auto& sc : r.scenarios)
    p += "<tr><td>" + h(or_dash(sc.name)) + "</td><td>" + h(num_or_dash(sc.mean_len, 6)) +
         "</td><td>" + h(sc.overlap ? percent(*sc.overlap, 0) : "—") + "</td><td>" +
         h(num_or_dash(sc.compute_s)) + "</td><td>" + h(num_or_dash(sc.comm_s)) + "</td><td>" +
         h(sc.wall_s ? text::duration(*sc.wall_s) : "—") + "</td><td>" +
         h(sc.mfu ? percent(*sc.mfu) : "—") + "</td></tr>\n";
  return p + "</tbody></table>\n";
}

std::string replay_body(const Replay& r) {
  std::string p = lede(r) + prediction_table(r);
  p += "<p>" + badge(or_dash(r.verdict)) + " <span class=\"small\">" + h(or_dash(r.reason)) +
       "</span></p>\n";
  if (r.has_measurements) p += measurements_table(r);
  if (r.has_scenarios) p += scenarios_table(r);
  return p + "<details><summary>every measured and derived figure (artifact \"replay\")</summary>" +
         json_html(r.raw) + "</details>\n";
}

std::string self_check(const ReplaySelfCheck& c) {
  return "<h3>Self-check of the method</h3>\n<p class=\"lede\">A small model replayed from " +
         h(num_or_dash(c.replay_layers)) + " of its layers, then really trained in full: " +
         "predicted " + h(num_or_dash(c.predicted_s)) + " s, measured " +
         h(num_or_dash(c.measured_s)) + " s, error <b>" +
         h(c.error ? percent(*c.error) : "—") +
         "</b> (goal: within 15%).</p>\n"
         "<details><summary>artifact \"replay_self_check\"</summary>" +
         json_html(c.raw) + "</details>\n";
}

}  // namespace

std::string replay(const ReportModel& m) {
  if (!m.replay && !m.replay_self_check) return "";
  std::string p =
      "<section id=\"replay\"><h2>Replay: the claimed shapes timed here, extrapolated</h2>\n";
  if (m.replay) p += replay_body(*m.replay);
  if (m.replay_self_check) p += self_check(*m.replay_self_check);
  return p + "</section>\n";
}

}  // namespace audit::reports::sections
