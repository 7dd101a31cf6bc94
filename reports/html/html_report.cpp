// The executive HTML report (see html_report.h): reads one run's rows, builds the charts with
// reports/svg and the verdicts with reports/verdicts, and writes one self-contained page.
#include "reports/html/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>

#include "ledger/costs/cost_model.h"  // item_cost, quantity_band, in_full_total, stage_category
#include "ledger/store/event_keys.h"  // keys::kTrainLoss (loss curves from events when no artifact)
#include "reports/html/svg.h"        // charts and escaping
#include "reproduce/verdicts/verdicts.h"   // verdicts, roll-ups, money/percent formatting

namespace audit::reports {
namespace {

using nlohmann::json;
std::string h(const std::string& s) { return svg::escape(s); }

std::string budget_label(int64_t b) { return b < 0 ? "unlimited" : std::to_string(b); }

std::string badge(const std::string& word) {
  std::string cls = word;
  for (auto& ch : cls)
    if (ch == ' ') ch = '-';
  return "<span class=\"badge b-" + h(cls) + "\">" + h(word) + "</span>";
}

// Renders any JSON value as escaped HTML: objects as key/value tables, arrays of objects as
// tables, arrays of scalars inline.
std::string json_html(const json& j, int depth = 0) {
  if (depth > 6) return "<code>" + h(j.dump()) + "</code>";
  if (j.is_null()) return "<span class=\"muted\">null</span>";
  if (j.is_boolean()) return j.get<bool>() ? "true" : "false";
  if (j.is_number_integer() || j.is_number_unsigned()) return h(j.dump());
  if (j.is_number_float()) return h(svg::num(j.get<double>(), 6));
  if (j.is_string()) return h(j.get<std::string>());
  if (j.is_array()) {
    if (j.empty()) return "<span class=\"muted\">[]</span>";
    bool scalars = std::all_of(j.begin(), j.end(), [](const json& x) { return x.is_primitive(); });
    if (scalars) {
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
    bool objects = std::all_of(j.begin(), j.end(), [](const json& x) { return x.is_object(); });
    if (objects) {
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
    std::string s = "<ol>";
    for (const auto& x : j) s += "<li>" + json_html(x, depth + 1) + "</li>";
    return s + "</ol>";
  }
  std::string s = "<table class=\"kv\"><tbody>";
  for (const auto& [k, v] : j.items())
    s += "<tr><th>" + h(k) + "</th><td>" + json_html(v, depth + 1) + "</td></tr>";
  return s + "</tbody></table>";
}

// A numeric view of a selection-counts artifact for the bar chart: an object of numbers, or an
// array of objects with a name-like and a count-like field. Empty when it has neither shape.
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

struct LossCurve {
  std::string stage;
  std::vector<double> step, loss;
};

std::vector<LossCurve> loss_curves(const ledger::Ledger& l, int64_t run_id,
                                   const std::vector<ledger::StageInfo>& stages,
                                   const std::vector<std::string>& names) {
  std::vector<LossCurve> out;
  const std::string prefix = "loss_curve/";
  for (const auto& n : names) {
    if (n.rfind(prefix, 0) != 0) continue;
    auto a = l.artifact(run_id, n);
    if (!a || !a->is_object() || !a->contains("step") || !a->contains("loss")) continue;
    LossCurve c;
    c.stage = n.substr(prefix.size());
    const auto& st = (*a)["step"];
    const auto& lo = (*a)["loss"];
    if (!st.is_array() || !lo.is_array()) continue;
    for (size_t i = 0; i < st.size() && i < lo.size(); ++i)
      if (st[i].is_number() && lo[i].is_number()) {
        c.step.push_back(st[i].get<double>());
        c.loss.push_back(lo[i].get<double>());
      }
    if (!c.step.empty()) out.push_back(std::move(c));
  }
  if (!out.empty()) return out;
  // No artifacts: the train_loss events, grouped by stage.
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

const char* split_color(const std::string& split, size_t index) {
  if (split == "id") return "#1f4e79";
  if (split == "ood_long") return "#b83227";
  if (split == "ood_heldout") return "#c27c0e";
  if (split == "ood_format") return "#6b3fa0";
  const char* more[] = {"#2f7d4f", "#8a5a44", "#0f7c8c", "#9b2c6f"};
  return more[index % 4];
}

constexpr const char* kBaseColor = "#9aa5b1";
constexpr const char* kTunedColor = "#1f4e79";

const char* kCss = R"CSS(
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

struct Page {
  std::string html;
  void operator+=(const std::string& s) { html += s; }
};

std::string stage_sub(const std::vector<ledger::StageInfo>& stages, const std::string& category) {
  double wall = 0, cpu = 0, gpu = 0;
  std::vector<std::string> names;
  for (const auto& s : stages)
    if (ledger::stage_category(s.name) == category) {
      wall += s.wall_s;
      cpu += s.cpu_s;
      gpu += s.gpu_s;
      names.push_back(s.name);
    }
  if (names.empty()) return "";
  std::string n;
  for (const auto& x : names) n += (n.empty() ? "" : ", ") + x;
  std::string s = n + ": " + text::duration(wall) + " wall, " + svg::num(cpu, 4) + " CPU-s";
  if (gpu > 0) s += ", " + svg::num(gpu, 4) + " GPU-s";
  return s;
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

// ---- Replay (audit replay) ------------------------------------------------------------------
// Renders the "replay" artifact (reproduce/cli_torch/cmd_replay.cpp: timed parts, the claimed run
// and cluster, the low/mid/high prediction) and the "replay_self_check" artifact (predicted vs
// measured training time). Missing fields render as "—"; the raw JSON stays one click away.
std::string replay_num(const json& j, const char* key, int digits = 4) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_number()) return "—";
  return svg::num(j.at(key).get<double>(), digits);
}

std::string replay_band(const json& j, const char* key, const std::function<std::string(double)>& f) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_array() || j.at(key).size() != 3)
    return "—";
  const auto& b = j.at(key);
  return f(b[1].get<double>()) + " (band " + f(b[0].get<double>()) + " – " + f(b[2].get<double>()) + ")";
}

std::string replay_str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j.at(key).is_string() ? j.at(key).get<std::string>() : "—";
}

std::string replay_section(const json* rep, const json* chk) {
  std::string p = "<section id=\"replay\"><h2>Replay: the claimed shapes timed here, extrapolated</h2>\n";
  if (rep) {
    const json& a = *rep;
    const json pred = a.value("prediction", json::object());
    const json timing = a.value("timing", json::object());
    const bool reduced = a.value("reduced_shapes", false);
    p += "<p class=\"lede\">Real forward + backward + AdamW steps of " +
         h(std::to_string(timing.value("layers_timed", 0))) + " layer(s) on " +
         h(replay_str(a, "device_name")) + " (" + h(replay_str(timing, "dtype")) +
         "), extrapolated to full depth, every sequence of the claimed run and the claimed "
         "cluster through a roofline split and a communication model (docs/replay.md).";
    if (reduced)
      p += " <b>Timed at reduced shapes</b> (width / " + h(replay_num(a, "shrink_width")) +
           ", lengths / " + h(replay_num(a, "shrink_seq")) +
           "): the band shows the method, it does not decide the claim.";
    p += "</p>\n<table class=\"kv\"><tbody>\n";
    auto row = [&](const std::string& k, const std::string& v) {
      p += "<tr><th>" + h(k) + "</th><td>" + h(v) + "</td></tr>\n";
    };
    row("claimed shapes", replay_str(a, "claimed_arch"));
    row("timed shapes", replay_str(a, "timed_arch"));
    row("predicted wall time (hours)", replay_band(pred, "wall_hours", [](double x) { return svg::num(x, 4); }));
    row("claimed wall time (hours)", replay_num(pred, "claimed_wall_hours"));
    row("predicted GPU-hours", replay_band(pred, "gpu_hours", [](double x) { return svg::num(x, 4); }));
    row("claimed GPU-hours", replay_num(pred, "claimed_gpu_hours") + " (" + replay_str(pred, "claimed_basis") + ")");
    row("predicted cost", replay_band(pred, "cost_usd", [](double x) { return money(x); }));
    row("implied MFU of the prediction", replay_band(pred, "mfu", [](double x) { return percent(x); }));
    row("throughput, tokens/s per GPU", replay_band(pred, "tokens_per_gpu_s", [](double x) { return svg::num(x, 4); }));
    if (a.contains("eager") && a.at("eager").is_object())
      row("one layer: ours / PyTorch eager", replay_num(a.at("eager"), "ours_layer_s") + " s / " +
                                                 replay_num(a.at("eager"), "layer_s") + " s (ratio " +
                                                 replay_num(a.at("eager"), "ratio_ours_over_eager", 3) + ")");
    p += "</tbody></table>\n";
    p += "<p>" + badge(replay_str(pred, "verdict")) + " <span class=\"small\">" +
         h(replay_str(pred, "reason")) + "</span></p>\n";
    if (timing.contains("measurements") && timing.at("measurements").is_array()) {
      p += "<table><thead><tr><th>Part</th><th>Timed length</th><th>Claimed length</th>"
           "<th>Batch</th><th>Seconds per unit (median)</th></tr></thead><tbody>\n";
      for (const auto& m : timing.at("measurements"))
        p += "<tr><td>" + h(replay_str(m, "part")) + "</td><td>" + h(replay_num(m, "timed_seq_len", 6)) +
             "</td><td>" + h(replay_num(m, "claimed_seq_len", 6)) + "</td><td>" + h(replay_num(m, "batch")) +
             "</td><td>" + h(replay_num(m, "seconds")) + "</td></tr>\n";
      p += "</tbody></table>\n";
    }
    if (pred.contains("scenarios") && pred.at("scenarios").is_array()) {
      p += "<table><thead><tr><th>Case</th><th>Mean length</th><th>Overlap</th><th>Compute s</th>"
           "<th>Communication s</th><th>Wall</th><th>MFU</th></tr></thead><tbody>\n";
      for (const auto& sc : pred.at("scenarios"))
        p += "<tr><td>" + h(replay_str(sc, "name")) + "</td><td>" + h(replay_num(sc, "mean_len", 6)) +
             "</td><td>" + h(sc.contains("overlap") ? percent(sc.at("overlap").get<double>(), 0) : "—") +
             "</td><td>" + h(replay_num(sc, "compute_s")) + "</td><td>" + h(replay_num(sc, "comm_s")) +
             "</td><td>" + h(sc.contains("wall_s") ? text::duration(sc.at("wall_s").get<double>()) : "—") +
             "</td><td>" + h(sc.contains("mfu") ? percent(sc.at("mfu").get<double>()) : "—") + "</td></tr>\n";
      p += "</tbody></table>\n";
    }
    p += "<details><summary>every measured and derived figure (artifact \"replay\")</summary>" +
         json_html(a) + "</details>\n";
  }
  if (chk) {
    const json& c = *chk;
    p += "<h3>Self-check of the method</h3>\n<p class=\"lede\">A small model replayed from " +
         h(replay_num(c, "replay_layers")) + " of its layers, then really trained in full: predicted " +
         h(replay_num(c, "predicted_s")) + " s, measured " + h(replay_num(c, "measured_s")) +
         " s, error <b>" + h(c.contains("error") ? percent(c.at("error").get<double>()) : "—") +
         "</b> (goal: within 15%).</p>\n<details><summary>artifact \"replay_self_check\"</summary>" +
         json_html(c) + "</details>\n";
  }
  p += "</section>\n";
  return p;
}

}  // namespace

std::string render_report(const ledger::Ledger& l, int64_t run_id) {
  auto run_opt = l.run(run_id);
  if (!run_opt)
    throw ledger::LedgerError(l.path() + ": no run " + std::to_string(run_id) + " in the ledger");
  const ledger::RunInfo& run = *run_opt;
  StoredClaim sc = read_claim(l, run_id);
  const recipe::Recipe* r = sc.recipe ? &*sc.recipe : nullptr;
  const auto stages = l.stages(run_id);
  const auto costs = l.cost_items(run_id);
  const auto cells = aggregate_evals(l.evals(run_id));
  const CostRollup cr = roll_up_costs(costs, r);
  const std::string final_how = final_run_provenance(costs);
  auto verdicts = current_verdicts(l, run_id);
  // Stored verdicts first; any computed claim not stored yet is shown too, and said so.
  size_t not_stored = 0;
  for (auto& v : compute_verdicts(l, run_id)) {
    bool stored = std::any_of(verdicts.begin(), verdicts.end(), [&](const ledger::Verdict& o) {
      return o.kind == v.kind && o.claim == v.claim;
    });
    if (!stored) {
      verdicts.push_back(std::move(v));
      ++not_stored;
    }
  }
  const ledger::VerifyReport vr = l.verify();
  const auto names = l.artifact_names(run_id);
  const auto samples = l.meter_samples(run_id);
  std::map<int64_t, size_t> samples_per_stage;
  for (const auto& s : samples) ++samples_per_stage[s.stage_id];

  const std::string title =
      r && !r->claim.title.empty() ? r->claim.title : (run.name.empty() ? "run" : run.name);
  const std::string headline = r ? r->claim.headline : "";

  Page p;
  p += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
       "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
       "style-src 'unsafe-inline'; img-src data:\">\n";
  p += "<title>Audit: " + h(title) + " (run " + std::to_string(run.id) + ")</title>\n";
  p += std::string("<style>") + kCss + "</style>\n</head>\n<body>\n<main>\n";

  // ---- Header ----
  p += "<header>\n<div class=\"eyebrow\">Audit report · run #" + std::to_string(run.id) + " · " +
       h(ledger::to_string(run.status)) + " · " + h(run.device.empty() ? "?" : run.device) + " · " +
       h(text::utc(run.started_at)) + "</div>\n";
  p += "<h1>" + h(title) + "</h1>\n";
  p += "<p class=\"claim\">";
  if (!headline.empty()) p += "Claim: “" + h(headline) + "”. ";
  p += "Recipe <code>" + h(run.recipe_sha256.substr(0, 12)) + "</code>";
  if (!run.name.empty()) p += " (" + h(run.name) + ")";
  p += ". Every figure below is read from the ledger.</p>\n</header>\n";

  if (!vr.ok)
    p += "<div class=\"alarm\">Ledger verification FAILED: " + h(vr.message) +
         ". The rows below may have been altered.</div>\n";

  // ---- One-line verdict ----
  {
    std::string tone = "tone-good";
    for (const auto& v : verdicts) {
      if (v.verdict == kNotSupported)
        tone = "tone-bad";
      else if (v.verdict != kSupported && tone != "tone-bad")
        tone = "tone-warn";
    }
    std::string cost;
    if (cr.has_claim && cr.has_final_run && cr.full.mid > 0) {
      const std::string claimed = money_band(cr.claimed);
      if (cr.claimed.high >= cr.final_run.low)
        cost = "The claimed " + claimed + " covers the final run (" + money(cr.final_run.mid) +
               " as " + final_how + ") but only " + share(cr.claimed.mid / cr.full.mid) +
               " of the full cost (" + money(cr.full.low) + "–" + money(cr.full.high) + ").";
      else
        cost = "The final run alone (" + money(cr.final_run.mid) + " as " + final_how +
               ") exceeds the "
               "claimed " +
               claimed + "; the full cost is " + money(cr.full.low) + "–" + money(cr.full.high) +
               ".";
    } else if (cr.has_final_run) {
      cost = "The final run cost " + money(cr.final_run.mid) + " as " + final_how +
             "; the full cost is " + money(cr.full.low) + "–" + money(cr.full.high) + ".";
    } else {
      cost = "No final-run cost is recorded for this run.";
    }
    int sup = 0, nsup = 0, nr = 0;
    for (const auto& v : verdicts)
      if (v.kind == "result") {
        if (v.verdict == kSupported)
          ++sup;
        else if (v.verdict == kNotSupported)
          ++nsup;
        else
          ++nr;
      }
    std::string rest;
    if (sup + nsup + nr > 0) {
      rest += " Claimed results: " + std::to_string(sup) + " supported, " + std::to_string(nsup) +
              " not supported, " + std::to_string(nr) + " not reproducible here.";
    }
    const EvalCell* tid = headline_cell(cells, "tuned", "id");
    double ood_sum = 0;
    int ood_n = 0;
    for (const auto& [name, ood] : splits_of(cells))
      if (ood)
        if (const EvalCell* c = headline_cell(cells, "tuned", name)) {
          ood_sum += c->mean;
          ++ood_n;
        }
    if (tid && ood_n > 0)
      rest += " The tuned model scores " + percent(tid->mean) + " in distribution and " +
              percent(ood_sum / ood_n) + " out of distribution (mean of " + std::to_string(ood_n) +
              " OOD split" + (ood_n == 1 ? "" : "s") + ").";
    p += "<p class=\"verdict " + tone + "\"><strong>" + h(cost) + "</strong>" + h(rest) + "</p>\n";
  }

  // ---- Three big numbers ----
  {
    p += "<div class=\"kpis\">\n";
    p += "<div class=\"kpi claimed\"><div class=\"label\">Claimed</div><div class=\"value\">" +
         (cr.has_claim ? h(money(cr.claimed.mid)) : std::string("—")) + "</div>";
    if (cr.has_claim && cr.claimed.high > cr.claimed.low)
      p += "<div class=\"band\">" + h(money(cr.claimed.low)) + " – " + h(money(cr.claimed.high)) +
           "</div>";
    p += "<div class=\"sub\">";
    if (!headline.empty()) p += "“" + h(headline) + "”. ";
    p += cr.has_claim ? "Basis: " + h(cr.claimed_from) + "." : std::string("No cost stated.");
    if (r && recipe::claimed_gpu_hours(r->claim) > 0)
      p += " " + h(svg::num(recipe::claimed_gpu_hours(r->claim), 3)) + " " +
           h(r->claim.gpu_type.empty() ? std::string("GPU") : r->claim.gpu_type) +
           " GPU-hours as stated.";
    p += "</div></div>\n";

    p += "<div class=\"kpi final\"><div class=\"label\">Final run, as " + h(final_how) +
         "</div><div class=\"value\">" +
         (cr.has_final_run ? h(money(cr.final_run.mid)) : std::string("—")) + "</div>";
    if (cr.has_final_run)
      p += "<div class=\"band\">band " + h(money(cr.final_run.low)) + " – " +
           h(money(cr.final_run.high)) + "</div>";
    p += "<div class=\"sub\">" + h(stage_sub(stages, "final_run")) +
         " <a href=\"#cost-lines\">Evidence →</a></div></div>\n";

    p += "<div class=\"kpi full\"><div class=\"label\">Full cost</div><div class=\"value\">" +
         h(money(cr.full.mid)) + "</div><div class=\"band\">band " + h(money(cr.full.low)) + " – " +
         h(money(cr.full.high)) + "</div><div class=\"sub\">";
    if (cr.has_claim && cr.full.mid > 0)
      p += "The headline covers " + h(share(cr.claimed.mid / cr.full.mid)) + " of it. ";
    p += "Data, failed runs, search, evaluation and the base model included. "
         "<a href=\"#cost-lines\">Evidence →</a></div></div>\n</div>\n";
  }

  p += "<nav><a href=\"#costs\">Cost waterfall</a>"
       "<a href=\"#generalization\">ID vs OOD</a><a href=\"#budget\">Thinking budget</a>"
       "<a href=\"#loss\">Loss curves</a><a href=\"#verdicts\">Verdicts</a>"
       "<a href=\"#cost-lines\">Cost lines</a>"
       "<a href=\"#stages\">Metering</a><a href=\"#evals\">Eval cells</a>"
       "<a href=\"#trace-errors\">Trace errors</a><a href=\"#selection\">Selection</a><a href=\"#decontamination\">Decontamination</a>"
       "<a href=\"#recipe\">Recipe</a><a href=\"#ledger\">Ledger</a></nav>\n";

  // ---- Cost waterfall ----
  {
    std::vector<svg::WaterfallStep> steps;
    auto step = [](const std::string& label, const Band& b, bool total, const char* color) {
      svg::WaterfallStep s;
      s.label = label;
      s.low = b.low;
      s.mid = b.mid;
      s.high = b.high;
      s.total = total;
      s.color = color;
      return s;
    };
    steps.push_back(step(cr.has_claim ? "Claimed" : "Claimed (none)", cr.claimed, true, "#c9861a"));
    steps.push_back(step("Final run (" + final_how + ")", cr.final_run, true, "#2b6cb0"));
    steps.push_back(step("+ data", cr.data, false, "#c0553f"));
    steps.push_back(step("+ failed runs and search", cr.failed_and_search, false, "#c0553f"));
    if (cr.evaluation_and_other.high > 0)
      steps.push_back(step("+ evaluation and other", cr.evaluation_and_other, false, "#c0553f"));
    steps.push_back(step("+ base model", cr.base_model, false, "#c0553f"));
    steps.push_back(step("Full cost", cr.full, true, "#243b53"));
    double vmax = 0, vmin = 1e300;
    for (const auto& s : steps) {
      vmax = std::max(vmax, s.mid);
      if (s.mid > 0) vmin = std::min(vmin, s.mid);
    }
    bool log_scale = vmax > 0 && vmin < 1e300 && vmax / vmin > 200;
    svg::Frame f;
    f.width = 1000;
    f.height = 380;
    f.left = 84;
    f.title = std::string("From the claim to the full cost, USD") +
              (log_scale ? " (log scale: the parts differ by orders of magnitude)" : "");
    f.y_label = "USD";
    p += "<section id=\"costs\" class=\"chart\"><h2>Where the money went</h2>\n<p class=\"lede\">"
         "Bars are mid prices; whiskers span the low–high price band. Each “+” bar adds a cost "
         "the headline left out.</p>\n<figure>" +
         svg::waterfall(f, steps, log_scale, [](double v) { return money(v); }) +
         "<figcaption>Data = trace generation, filtering, judging and curation. Failed runs "
         "and search = aborted or failed runs of this recipe and hyperparameter sweeps. Energy "
         "and CO2 lines are shown in the evidence but not added: rental prices already include "
         "power.</figcaption></figure></section>\n";
  }

  // ---- ID vs OOD ----
  const auto splits = splits_of(cells);
  {
    p += "<section id=\"generalization\" class=\"chart\"><h2>Does it hold up outside its "
         "training distribution?</h2>\n";
    if (cells.empty()) {
      p += "<p class=\"lede\">No evaluation rows are recorded for this run.</p>";
    } else {
      std::vector<std::string> cats;
      std::vector<svg::IntervalPoint> pts;
      bool any_budget = false;
      for (const auto& [name, ood] : splits) {
        cats.push_back(name + (ood ? " (OOD)" : " (ID)"));
        for (const char* model : {"base", "tuned"})
          if (const EvalCell* c = headline_cell(cells, model, name)) {
            pts.push_back({cats.back(), model, c->mean, c->ci.low, c->ci.high, c->per_seed});
            any_budget = any_budget || c->budget >= 0;
          }
      }
      svg::Frame f;
      f.width = 1000;
      f.height = 360;
      f.title = "Accuracy by split: dot = mean over seeds, whisker = Wilson 95%, rings = seeds";
      f.y_label = "accuracy";
      p += "<p class=\"lede\">Base and tuned models on the in-distribution (ID) split and every "
           "out-of-distribution (OOD) split";
      p += any_budget ? ", at the largest thinking budget evaluated."
                      : ", unlimited thinking budget.";
      p += "</p>\n<figure>" +
           svg::interval_chart(f, cats, {{"base", kBaseColor}, {"tuned", kTunedColor}}, pts, 0, 1,
                               [](double v) { return percent(v, 0); }) +
           "</figure>\n";
      const EvalCell* tid = headline_cell(cells, "tuned", "id");
      p += "<table><thead><tr><th>Split</th><th class=\"num\">Base</th><th class=\"num\">Tuned"
           "</th><th class=\"num\">Tuned − base</th><th class=\"num\">Tuned gap to ID</th>"
           "<th class=\"num\">n per model</th><th class=\"num\">Seeds</th></tr></thead><tbody>\n";
      for (const auto& [name, ood] : splits) {
        const EvalCell* b = headline_cell(cells, "base", name);
        const EvalCell* t = headline_cell(cells, "tuned", name);
        auto cell = [](const EvalCell* c) {
          return c ? percent(c->mean) + " [" + percent(c->ci.low) + "–" + percent(c->ci.high) + "]"
                   : std::string("—");
        };
        p += "<tr><td>" + h(name) + (ood ? " <span class=\"muted\">OOD</span>" : "") +
             "</td><td class=\"num\">" + h(cell(b)) + "</td><td class=\"num\">" + h(cell(t)) +
             "</td><td class=\"num\">" + (b && t ? h(points(t->mean - b->mean)) : "—") +
             "</td><td class=\"num\">" + (t && tid && ood ? h(points(t->mean - tid->mean)) : "—") +
             "</td><td class=\"num\">" +
             (t   ? std::to_string(t->n)
              : b ? std::to_string(b->n)
                  : "—") +
             "</td><td class=\"num\">" +
             (t   ? std::to_string(t->seeds)
              : b ? std::to_string(b->seeds)
                  : "—") +
             "</td></tr>\n";
      }
      p += "</tbody></table>\n";
    }
    p += "</section>\n";
  }

  // ---- Accuracy vs thinking budget ----
  {
    p += "<section id=\"budget\" class=\"chart\"><h2>Accuracy vs thinking budget</h2>\n";
    std::vector<int64_t> budgets;
    for (const auto& c : cells)
      if (std::find(budgets.begin(), budgets.end(), c.budget) == budgets.end())
        budgets.push_back(c.budget);
    std::sort(budgets.begin(), budgets.end(), [](int64_t a, int64_t b) {
      return (a < 0 ? INT64_MAX : a) < (b < 0 ? INT64_MAX : b);
    });
    if (budgets.size() < 2) {
      p += "<p class=\"lede\">No thinking-budget sweep is recorded for this run (one budget "
           "only).</p>";
    } else {
      std::vector<std::string> labels;
      for (auto b : budgets) labels.push_back(budget_label(b));
      std::vector<svg::Series> series;
      size_t si = 0;
      for (const auto& [name, ood] : splits) {
        const char* color = split_color(name, si++);
        for (const char* model : {"tuned", "base"}) {
          svg::Series s;
          s.name = std::string(model) == "tuned" ? name : "";
          s.color = color;
          s.dash = std::string(model) == "base" ? "5 4" : "";
          for (size_t i = 0; i < budgets.size(); ++i)
            for (const auto& c : cells)
              if (c.model == model && c.split == name && c.budget == budgets[i]) {
                s.x.push_back(double(i));
                s.y.push_back(c.mean);
                if (std::string(model) == "tuned") {
                  s.low.push_back(c.ci.low);
                  s.high.push_back(c.ci.high);
                }
                break;
              }
          if (s.x.size() >= 2) series.push_back(std::move(s));  // single points: see ID vs OOD
        }
      }
      svg::Frame f;
      f.width = 1000;
      f.height = 360;
      f.title = "Accuracy by thinking-token budget (budget forcing)";
      f.x_label = "thinking budget (tokens)";
      f.y_label = "accuracy";
      svg::LineOptions o;
      o.x_labels = labels;
      o.y_min = 0;
      o.y_max = 1;
      o.fmt_y = [](double v) { return percent(v, 0); };
      o.extra_legend = {{"tuned (solid)", "#52606d", "", false},
                        {"base (dashed)", "#52606d", "5 4", false}};
      p += "<p class=\"lede\">Each split's accuracy as the thinking budget grows; whiskers are "
           "Wilson 95% intervals of the tuned model.</p>\n<figure>" +
           svg::line_chart(f, series, o) + "</figure>\n";
    }
    p += "</section>\n";
  }

  // ---- Loss curves ----
  {
    auto curves = loss_curves(l, run_id, stages, names);
    p += "<section id=\"loss\" class=\"chart\"><h2>Training loss per stage</h2>\n";
    if (curves.empty()) {
      p += "<p class=\"lede\">No loss curve is recorded for this run.</p>";
    } else {
      p += "<p class=\"lede\">Training loss against optimizer step, as logged by each stage."
           "</p>\n<div class=\"grid2\">\n";
      size_t ci = 0;
      for (const auto& c : curves) {
        // At most ~400 points per chart: every k-th point, always the last one.
        size_t stride = std::max<size_t>(1, (c.step.size() + 399) / 400);
        svg::Series s;
        const char* stage_colors[] = {"#1f4e79", "#2f7d4f", "#6b3fa0", "#b83227", "#c27c0e"};
        s.color = stage_colors[ci % 5];
        s.markers = false;
        for (size_t i = 0; i < c.step.size(); ++i)
          if (i % stride == 0 || i + 1 == c.step.size()) {
            s.x.push_back(c.step[i]);
            s.y.push_back(c.loss[i]);
          }
        ++ci;
        svg::Frame f;
        f.width = 500;
        f.height = 260;
        f.left = 56;
        f.right = 16;
        f.title = c.stage + ": last loss " + svg::num(c.loss.back(), 4) + " at step " +
                  svg::num(c.step.back(), 6);
        f.x_label = "step";
        f.y_label = "loss";
        svg::LineOptions o;
        p += "<figure>" + svg::line_chart(f, {s}, o) + "</figure>\n";
      }
      p += "</div>\n";
    }
    p += "</section>\n";
  }

  // ---- Verdicts ----
  p += "<section id=\"verdicts\"><h2>Verdict by claim</h2>\n<p class=\"lede\">One line per claim: "
       "claimed against measured, with intervals. ";
  p += not_stored == 0 ? std::string("Stored in the ledger.")
                       : std::to_string(not_stored) + " of " + std::to_string(verdicts.size()) +
                             " computed now and not stored in the ledger yet.";
  p += "</p>\n<table class=\"verdicts\"><thead><tr><th>Claim</th><th>Verdict</th><th>Claimed"
       "</th><th>Measured</th><th>Why</th></tr></thead><tbody>\n";
  for (const auto& v : verdicts)
    p += "<tr><td><b>" + h(v.claim) + "</b></td><td>" + badge(v.verdict) + "</td><td>" +
         h(v.claimed) + "</td><td>" + h(v.measured) + "</td><td class=\"small\">" + h(v.reason) +
         "</td></tr>\n";
  p += "</tbody></table></section>\n";

  p += "<h2 class=\"part\">Evidence</h2>\n";

  // ---- Cost lines ----
  {
    p += "<section id=\"cost-lines\"><h2>Every cost line</h2>\n<p class=\"lede\">Quantity × "
         "price band = cost band. Provenance: <span class=\"badge b-measured\">measured</span> "
         "here, <span class=\"badge b-declared\">declared</span> by the claim, or <span "
         "class=\"badge b-estimated\">estimated</span> with the formula and its inputs. Greyed "
         "lines are not added to the full cost.</p>\n";
    std::vector<const ledger::CostItem*> sorted;
    for (const auto& c : costs) sorted.push_back(&c);
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](auto* a, auto* b) { return int(bucket_of(*a)) < int(bucket_of(*b)); });
    p += "<table class=\"costs\"><thead><tr><th>Category</th><th>Line and source</th>"
         "<th class=\"num\">Quantity</th><th class=\"num\">Price per unit<br>low · mid · high"
         "</th><th class=\"num\">Cost<br>low · mid · high</th><th>Provenance</th>"
         "<th>Formula and inputs</th></tr></thead><tbody>\n";
    for (const auto* c : sorted) {
      const Band q = ledger::quantity_band(*c);
      const Band cost = ledger::item_cost(*c);
      const bool in_total = ledger::in_full_total(*c);
      std::string qty = svg::num(c->quantity, 4) + " " + c->unit;
      if (q.low != q.high) qty += " (" + svg::num(q.low, 3) + "–" + svg::num(q.high, 3) + ")";
      std::string cat_words = c->category;
      std::replace(cat_words.begin(), cat_words.end(), '_', ' ');
      const std::string bucket = bucket_label(bucket_of(*c));
      p += std::string("<tr") + (in_total ? "" : " class=\"out\"") + "><td>" + h(c->category) +
           (bucket != cat_words ? "<div class=\"muted small\">" + h(bucket) + "</div>" : "") +
           "</td><td>" + h(c->description) +
           (in_total ? "" : " <span class=\"muted\">(not in total)</span>") +
           "<div class=\"muted small\">" + h(c->source) + "</div></td><td class=\"num\">" + h(qty) +
           "</td><td class=\"num\">" + h(money(c->price_low)) + " · " + h(money(c->price_mid)) +
           " · " + h(money(c->price_high)) + "</td><td class=\"num\">" + h(money(cost.low)) +
           " · <b>" + h(money(cost.mid)) + "</b> · " + h(money(cost.high)) + "</td><td>" +
           badge(ledger::to_string(c->provenance)) + "</td><td class=\"small\">" + h(c->formula) +
           "<br><code>" + h(c->inputs.dump()) + "</code></td></tr>\n";
    }
    p += "<tr class=\"total\"><td colspan=\"4\">Final run, as " + h(final_how) +
         "</td><td class=\"num\">" + h(money(cr.final_run.low)) + " · <b>" +
         h(money(cr.final_run.mid)) + "</b> · " + h(money(cr.final_run.high)) +
         "</td><td colspan=\"2\"></td></tr>\n";
    p += "<tr class=\"total\"><td colspan=\"4\">Full cost</td><td class=\"num\">" +
         h(money(cr.full.low)) + " · <b>" + h(money(cr.full.mid)) + "</b> · " +
         h(money(cr.full.high)) + "</td><td colspan=\"2\"></td></tr>\n";
    p += "</tbody></table>\n";
    if (costs.empty()) p += "<p class=\"lede\">No cost lines are recorded for this run.</p>\n";
    p += "</section>\n";
  }

  // ---- Stage metering ----
  {
    p += "<section id=\"stages\"><h2>Metering per stage</h2>\n<p class=\"lede\">GPU-seconds "
         "are what a cloud bills (devices × wall time); busy seconds are shown beside them, "
         "never instead. Power is recorded only where NVML was present.</p>\n";
    bool gpus = false;
    for (const auto& s : stages) gpus = gpus || s.gpu_count > 0 || s.gpu_s > 0;
    p += "<table><thead><tr><th>Stage</th><th>Cost category</th><th>Status</th>"
         "<th class=\"num\">Wall</th><th class=\"num\">CPU-s</th>";
    if (gpus)
      p += "<th class=\"num\">GPUs</th><th class=\"num\">GPU-s</th><th class=\"num\">GPU "
           "busy-s</th><th class=\"num\">Peak GPU memory</th>";
    p += "<th class=\"num\">Energy</th><th class=\"num\">Meter samples</th></tr></thead>"
         "<tbody>\n";
    double wall = 0, cpu = 0, gpu = 0, busy = 0;
    for (const auto& s : stages) {
      wall += s.wall_s, cpu += s.cpu_s, gpu += s.gpu_s, busy += s.gpu_busy_s;
      p += "<tr><td>" + h(s.name) + "</td><td>" + h(ledger::stage_category(s.name)) + "</td><td>" +
           h(s.status) + "</td><td class=\"num\">" + h(text::duration(s.wall_s)) +
           "</td><td class=\"num\">" + h(svg::num(s.cpu_s, 4)) + "</td>";
      if (gpus)
        p += "<td class=\"num\">" + std::to_string(s.gpu_count) + "</td><td class=\"num\">" +
             h(svg::num(s.gpu_s, 4)) + "</td><td class=\"num\">" + h(svg::num(s.gpu_busy_s, 4)) +
             "</td><td class=\"num\">" + h(text::bytes(s.gpu_peak_mem_bytes)) + "</td>";
      p += "<td class=\"num\">" +
           (s.power_metered ? h(svg::num(s.energy_j / 3.6e6, 3) + " kWh")
                            : std::string("not metered")) +
           "</td><td class=\"num\">" + std::to_string(samples_per_stage[s.id]) + "</td></tr>\n";
    }
    p += "<tr class=\"total\"><td colspan=\"3\">All stages</td><td class=\"num\">" +
         h(text::duration(wall)) + "</td><td class=\"num\">" + h(svg::num(cpu, 4)) + "</td>";
    if (gpus)
      p += "<td></td><td class=\"num\">" + h(svg::num(gpu, 4)) + "</td><td class=\"num\">" +
           h(svg::num(busy, 4)) + "</td><td></td>";
    p += "<td></td><td class=\"num\">" + std::to_string(samples.size()) +
         "</td></tr>\n</tbody></table>\n";
    if (!gpus) p += "<p class=\"lede small\">No GPU was allocated to any stage of this run.</p>\n";
    if (stages.empty()) p += "<p class=\"lede\">No stages are recorded for this run.</p>\n";
    p += "</section>\n";
  }

  // ---- Eval cells ----
  {
    p += "<section id=\"evals\"><h2>Evaluation cells</h2>\n<p class=\"lede\">Each row pools "
         "the seeds of one model, split and thinking budget: mean of the per-seed accuracies, "
         "their spread, and the Wilson 95% interval of the pooled counts.</p>\n";
    p += "<table><thead><tr><th>Model</th><th>Suite</th><th>Split</th><th class=\"num\">Budget"
         "</th><th class=\"num\">Seeds</th><th class=\"num\">Correct / n</th><th class=\"num\">"
         "Mean</th><th class=\"num\">Wilson 95%</th><th>Per seed</th></tr></thead><tbody>\n";
    for (const auto& c : cells) {
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
    if (cells.empty()) p += "<p class=\"lede\">No evaluation rows are recorded.</p>\n";
    p += "</section>\n";
  }

  // ---- Where the tuned traces first go wrong ----
  std::set<std::string> shown;
  auto te = l.artifact(run_id, "trace_errors");
  if (!te || !te->is_object() || !te->contains("tuned") || !te->contains("kinds")) {
    p += "<section id=\"trace-errors\"><h2>Where the tuned traces first go wrong</h2>\n"
         "<p class=\"lede\">No trace-error counts are recorded for this run.</p></section>\n";
  } else {
    shown.insert("trace_errors");
    // Counts pooled over seeds, per split; only the kinds that occur (and "none") get a column.
    std::vector<std::string> kinds, splits;
    std::map<std::string, std::map<std::string, int64_t>> pooled;
    for (const auto& [seed, by_split] : (*te)["tuned"].items())
      for (const auto& [split, counts] : by_split.items()) {
        if (std::find(splits.begin(), splits.end(), split) == splits.end()) splits.push_back(split);
        for (const auto& [kind, n] : counts.items())
          if (n.is_number_integer()) pooled[split][kind] += n.get<int64_t>();
      }
    for (const auto& k : (*te)["kinds"]) {
      const std::string kind = k.is_string() ? k.get<std::string>() : "";
      bool any = kind == "none";
      for (const auto& sp : splits) any = any || pooled[sp][kind] > 0;
      if (any) kinds.push_back(kind);
    }
    p += "<section id=\"trace-errors\"><h2>Where the tuned traces first go wrong</h2>\n"
         "<p class=\"lede\">Each completion of every tuned seed, compared line by line with the "
         "teacher's trace and counted once, at the first line that differs, by what that line "
         "does (\"none\": trace and answer right; \"answer\": trace right, answer wrong).</p>\n"
         "<table><thead><tr><th>Split</th>";
    for (const auto& k : kinds) p += "<th class=\"num\">" + h(k) + "</th>";
    p += "</tr></thead><tbody>\n";
    for (const auto& sp : splits) {
      p += "<tr><td>" + h(sp) + "</td>";
      for (const auto& k : kinds) p += "<td class=\"num\">" + std::to_string(pooled[sp][k]) + "</td>";
      p += "</tr>\n";
    }
    p += "</tbody></table>\n</section>\n";
  }

  // ---- Selection counts and decontamination ----
  {
    p += "<section id=\"selection\"><h2>Selection counts</h2>\n";
    auto a = l.artifact(run_id, "selection_counts");
    if (!a) {
      p += "<p class=\"lede\">No selection counts are recorded for this run.</p>";
    } else {
      shown.insert("selection_counts");
      auto pairs = numeric_pairs(*a);
      // Largest first: a filter funnel reads top-down (ties keep the stored order).
      std::stable_sort(pairs.begin(), pairs.end(),
                       [](const auto& x, const auto& y) { return x.second > y.second; });
      if (!pairs.empty()) {
        std::vector<std::string> labels;
        std::vector<double> values;
        for (const auto& [k, v] : pairs) labels.push_back(k), values.push_back(v);
        svg::Frame f;
        f.width = 1000;
        f.height = int(60 + 34 * pairs.size());
        f.left = 220;
        f.top = 16;
        f.bottom = 30;
        p +=
            "<figure>" +
            svg::hbar_chart(f, labels, values, "#2b6cb0", [](double v) { return svg::num(v, 6); }) +
            "</figure>\n";
      }
      p += json_html(*a);
    }
    p += "</section>\n";
  }
  {
    p += "<section id=\"decontamination\"><h2>Decontamination</h2>\n";
    auto a = l.artifact(run_id, "decontamination");
    if (!a) {
      p += "<p class=\"lede\">No decontamination report is recorded for this run.</p>";
    } else {
      shown.insert("decontamination");
      p += "<p class=\"lede\">N-gram overlap between the training data and each test split, "
           "as stored with the run.</p>\n" +
           json_html(*a);
    }
    p += "</section>\n";
  }

  // ---- Recipe ----
  {
    const std::string actual = ledger::sha256_hex(run.recipe_text);
    const bool match = actual == run.recipe_sha256;
    p += "<section id=\"recipe\"><h2>The recipe</h2>\n<table class=\"kv\"><tbody>";
    p += "<tr><th>SHA-256 stored</th><td><code>" + h(run.recipe_sha256) + "</code></td></tr>";
    p += "<tr><th>SHA-256 of the text below</th><td><code>" + h(actual) + "</code> " +
         (match ? "<span class=\"badge b-ok\">matches</span>"
                : "<span class=\"badge b-failed\">does not match</span>") +
         "</td></tr>";
    p += "<tr><th>Path given</th><td>" + h(run.recipe_path) + "</td></tr>";
    if (r && !r->claim.sources.empty()) {
      p += "<tr><th>Sources of the claim</th><td><ul>";
      for (const auto& s : r->claim.sources) p += "<li>" + h(s) + "</li>";
      p += "</ul></td></tr>";
    }
    if (!sc.error.empty())
      p += "<tr><th>Parse</th><td><span class=\"badge b-failed\">unreadable</span> " + h(sc.error) +
           "</td></tr>";
    p += "</tbody></table>\n<pre>" + h(run.recipe_text) + "</pre>\n</section>\n";
  }

  // ---- Ledger and run ----
  {
    p += "<section id=\"ledger\"><h2>Ledger and run</h2>\n<table class=\"kv\"><tbody>";
    p += "<tr><th>Hash chain and invariants</th><td>" +
         std::string(vr.ok ? "<span class=\"badge b-ok\">verified</span>"
                           : "<span class=\"badge b-failed\">FAILED</span>") +
         " " + std::to_string(vr.events_checked) + " events and " +
         std::to_string(vr.rows_checked) + " rows checked" +
         (vr.ok ? std::string() : "; first bad event " + std::to_string(vr.first_bad_event)) +
         (vr.message.empty() ? std::string() : ". " + h(vr.message)) + "</td></tr>";
    auto row = [&](const std::string& k, const std::string& v) {
      p += "<tr><th>" + h(k) + "</th><td>" + h(v) + "</td></tr>";
    };
    row("Run", "#" + std::to_string(run.id) + " " + run.name);
    row("Status", ledger::to_string(run.status));
    row("Host", run.host);
    row("Git commit", run.git_commit);
    row("Device", run.device);
    row("Process id", std::to_string(run.pid));
    row("Started", text::utc(run.started_at));
    row("Ended", text::utc(run.ended_at));
    if (run.ended_at > 0 && run.started_at > 0)
      row("Duration", text::duration(run.ended_at - run.started_at));
    row("Cost lines / eval rows / stages", std::to_string(costs.size()) + " / " +
                                               std::to_string(l.evals(run_id).size()) + " / " +
                                               std::to_string(stages.size()));
    p += "</tbody></table>\n</section>\n";
  }

  // ---- Replay (audit replay) ----
  {
    auto rep = l.artifact(run_id, "replay");
    auto chk = l.artifact(run_id, "replay_self_check");
    if (rep || chk) {
      p += replay_section(rep ? &*rep : nullptr, chk ? &*chk : nullptr);
      if (rep) shown.insert("replay");
      if (chk) shown.insert("replay_self_check");
    }
  }

  // ---- Other artifacts ----
  {
    std::vector<std::string> rest;
    for (const auto& n : names)
      if (!shown.count(n) && n.rfind("loss_curve/", 0) != 0) rest.push_back(n);
    if (!rest.empty()) {
      p += "<section id=\"artifacts\"><h2>Other artifacts stored with the run</h2>\n";
      for (const auto& n : rest) {
        auto a = l.artifact(run_id, n);
        p += "<details><summary>" + h(n) + "</summary>" +
             (a ? json_html(*a) : std::string("<span class=\"muted\">empty</span>")) +
             "</details>\n";
      }
      p += "</section>\n";
    }
  }

  p += "<footer>Every figure on this page is read from the ledger rows of run #" +
       std::to_string(run.id) + " (recipe " + h(run.recipe_sha256.substr(0, 12)) +
       "); the page is regenerated from the ledger alone with <code>audit report " +
       std::to_string(run.id) +
       " --ledger FILE --out FILE.html</code>. No script, no network."
       "</footer>\n</main>\n</body>\n</html>\n";
  return p.html;
}

std::vector<ledger::Verdict> write_report(ledger::Ledger& l, int64_t run_id,
                                          const std::string& out_path) {
  store_verdicts(l, run_id);
  std::string html = render_report(l, run_id);
  std::ofstream f(out_path, std::ios::binary | std::ios::trunc);
  if (!f)
    throw std::runtime_error(out_path + ": cannot open for writing (check the folder exists)");
  f << html;
  f.close();
  if (!f) throw std::runtime_error(out_path + ": write failed (disk full?)");
  return current_verdicts(l, run_id);
}

}  // namespace audit::reports
