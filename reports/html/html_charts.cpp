// The report's chart sections (sections.h): the cost waterfall, ID vs OOD accuracy, accuracy
// against the thinking budget, and the loss curves, drawn with reports/html/svg from the model.
#include <algorithm>

#include "reports/html/sections.h"
#include "reports/html/svg.h"  // the charts

namespace audit::reports::sections {
namespace {

constexpr const char* kBaseColor = "#7d8a99";  // 3.5:1 on the chart's white (graphics: 3:1)
constexpr const char* kTunedColor = "#1f4e79";

const char* split_color(const std::string& split, size_t index) {
  if (split == "id") return "#1f4e79";
  if (split == "ood_long") return "#b83227";
  if (split == "ood_heldout") return "#c27c0e";
  if (split == "ood_format") return "#6b3fa0";
  const char* more[] = {"#2f7d4f", "#8a5a44", "#0f7c8c", "#9b2c6f"};
  return more[index % 4];
}

const char* step_color(StepKind k) {
  switch (k) {
    case StepKind::claimed:
      return "#c9861a";
    case StepKind::final_run:
      return "#2b6cb0";
    case StepKind::marginal:
      return "#4a6d8c";
    case StepKind::full:
      return "#243b53";
    case StepKind::added:
      break;
  }
  return "#c0553f";
}

std::string accuracy_chart(const ReportModel& m) {
  std::vector<std::string> cats;
  std::vector<svg::IntervalPoint> pts;
  for (const auto& s : m.splits) {
    cats.push_back(s.split + (s.ood ? " (OOD)" : " (ID)"));
    for (const auto* c : {&s.base, &s.tuned})
      if (*c)
        pts.push_back({cats.back(), c == &s.base ? "base" : "tuned", (*c)->mean, (*c)->ci.low,
                       (*c)->ci.high, (*c)->per_seed});
  }
  svg::Frame f;
  f.width = 1000;
  f.height = 360;
  f.title = "Accuracy by split: dot = mean over seeds, whisker = Wilson 95%, rings = seeds";
  f.y_label = "accuracy";
  return svg::interval_chart(f, cats, {{"base", kBaseColor}, {"tuned", kTunedColor}}, pts, 0, 1,
                             [](double v) { return percent(v, 0); });
}

std::string split_table(const ReportModel& m) {
  std::string p =
      "<table><thead><tr><th>Split</th><th class=\"num\">Base</th><th class=\"num\">Tuned"
      "</th><th class=\"num\">Tuned − base</th><th class=\"num\">Tuned gap to ID</th>"
      "<th class=\"num\">n per model</th><th class=\"num\">Seeds</th></tr></thead><tbody>\n";
  for (const auto& s : m.splits) {
    const auto& c = s.tuned ? s.tuned : s.base;  // the model whose n and seeds are shown
    p += "<tr><td>" + h(s.split) + (s.ood ? " <span class=\"muted\">OOD</span>" : "") +
         "</td><td class=\"num\">" + h(cell_text(s.base)) + "</td><td class=\"num\">" +
         h(cell_text(s.tuned)) + "</td><td class=\"num\">" +
         (s.tuned_minus_base ? h(points(*s.tuned_minus_base)) : "—") + "</td><td class=\"num\">" +
         (s.tuned_gap_to_id ? h(points(*s.tuned_gap_to_id)) : "—") + "</td><td class=\"num\">" +
         (c ? std::to_string(c->n) : "—") + "</td><td class=\"num\">" +
         (c ? std::to_string(c->seeds) : "—") + "</td></tr>\n";
  }
  return p + "</tbody></table>\n";
}

svg::Series budget_series(const BudgetLine& b) {
  const bool tuned = b.model == "tuned";
  svg::Series s;
  s.name = tuned ? b.split : "";
  s.color = split_color(b.split, b.split_index);
  s.dash = tuned ? "" : "5 4";
  for (size_t i : b.budget_index) s.x.push_back(double(i));
  s.y = b.mean;
  if (tuned) {
    s.low = b.low;
    s.high = b.high;
  }
  return s;
}

std::string loss_chart(const LossCurve& c, size_t index) {
  // At most ~400 points per chart: every k-th point, always the last one.
  size_t stride = std::max<size_t>(1, (c.step.size() + 399) / 400);
  svg::Series s;
  const char* stage_colors[] = {"#1f4e79", "#2f7d4f", "#6b3fa0", "#b83227", "#c27c0e"};
  s.color = stage_colors[index % 5];
  s.markers = false;
  for (size_t i = 0; i < c.step.size(); ++i)
    if (i % stride == 0 || i + 1 == c.step.size()) {
      s.x.push_back(c.step[i]);
      s.y.push_back(c.loss[i]);
    }
  svg::Frame f;
  f.width = 500;
  f.height = 260;
  f.left = 56;
  f.right = 16;
  f.title = c.stage + ": last loss " + svg::num(c.loss.back(), 4) + " at step " +
            svg::num(c.step.back(), 6);
  f.x_label = "step";
  f.y_label = "loss";
  return "<figure>" + svg::line_chart(f, {s}, svg::LineOptions{}) + "</figure>\n";
}

}  // namespace

std::string cost_waterfall(const ReportModel& m) {
  std::vector<svg::WaterfallStep> steps;
  for (const auto& s : m.waterfall)
    steps.push_back({s.label, s.cost.low, s.cost.mid, s.cost.high, s.kind != StepKind::added,
                     step_color(s.kind)});
  const auto money_axis = [](double v) { return money(v); };
  svg::Frame f;
  f.width = 1000;
  f.height = 380;
  f.left = 96;
  f.title = "From the claim to the full cost, USD (linear scale: the bars add up)";
  f.y_label = "USD";
  std::string p =
      "<section id=\"costs\" class=\"chart\"><h2>Where the money went</h2>\n<p class=\"lede\">"
      "Bars are mid prices; whiskers span the low–high <a class=\"term\" href=\"#g-band\">price "
      "band</a>. Each “+” bar adds a cost the headline left out; the <a class=\"term\" "
      "href=\"#g-marginal\">marginal cost</a> is everything but the base model's pretraining, "
      "and the <a class=\"term\" href=\"#g-full\">full cost</a> adds the base's share (" +
      h(m.marginal.source) + ").</p>\n<figure id=\"costs-linear\">" +
      svg::waterfall(f, steps, false, money_axis) +
      "<figcaption><b>Linear scale</b>: each bar's height is its cost, so the “+” bars stacked on "
      "the final run reach the marginal cost, and the base model's share on top of it reaches the "
      "full cost. Data = trace generation, filtering, judging and curation. Failed runs and "
      "search = aborted or failed runs of this recipe and hyperparameter sweeps. Energy and CO2 "
      "lines are shown in the evidence but not added: rental prices already include "
      "power.</figcaption></figure>\n";
  if (m.waterfall_log_scale) {
    svg::Frame g = f;
    g.title = "The same steps on a log scale (heights do not add up; read the labels)";
    p += "<figure id=\"costs-log\">" + svg::waterfall(g, steps, true, money_axis) +
         "<figcaption><b>Log scale</b>, for the small parts the linear chart cannot show: each "
         "gridline is ten times the one below, so bar heights do not add up. The figures on the "
         "bars are the same as above.</figcaption></figure>\n";
  }
  return p + "</section>\n";
}

std::string generalization(const ReportModel& m) {
  std::string p = "<section id=\"generalization\" class=\"chart\"><h2>Does it hold up outside its "
                  "training distribution?</h2>\n";
  if (m.cells.empty())
    return p + "<p class=\"lede\">No evaluation rows are recorded for this run.</p></section>\n";
  p += "<p class=\"lede\">Base and tuned models on the in-distribution (<a class=\"term\" "
       "href=\"#g-id\">ID</a>) split and every out-of-distribution (<a class=\"term\" "
       "href=\"#g-ood\">OOD</a>) split, with <a class=\"term\" href=\"#g-wilson\">Wilson 95% "
       "intervals</a>";
  p += m.any_budget_in_headline ? ", at the largest thinking budget evaluated."
                                : ", unlimited thinking budget.";
  return p + "</p>\n<figure>" + accuracy_chart(m) + "</figure>\n" + split_table(m) +
         "</section>\n";
}

std::string thinking_budget(const ReportModel& m) {
  std::string p = "<section id=\"budget\" class=\"chart\"><h2>Accuracy vs thinking budget</h2>\n";
  if (m.budgets.size() < 2)
    return p + "<p class=\"lede\">No thinking-budget sweep is recorded for this run (one budget "
               "only).</p></section>\n";
  std::vector<svg::Series> series;
  for (const auto& b : m.budget_lines) series.push_back(budget_series(b));
  svg::Frame f;
  f.width = 1000;
  f.height = 360;
  f.title = "Accuracy by thinking-token budget (budget forcing)";
  f.x_label = "thinking budget (tokens)";
  f.y_label = "accuracy";
  svg::LineOptions o;
  for (auto b : m.budgets) o.x_labels.push_back(budget_label(b));
  o.y_min = 0;
  o.y_max = 1;
  o.fmt_y = [](double v) { return percent(v, 0); };
  o.extra_legend = {{"tuned (solid)", "#52606d", "", false},
                    {"base (dashed)", "#52606d", "5 4", false}};
  return p + "<p class=\"lede\">Each split's accuracy as the <a class=\"term\" "
             "href=\"#g-budget\">thinking budget</a> grows (budget forcing); whiskers are "
             "Wilson 95% intervals of the tuned model.</p>\n<figure>" +
         svg::line_chart(f, series, o) + "</figure>\n</section>\n";
}

std::string loss_curves(const ReportModel& m) {
  std::string p = "<section id=\"loss\" class=\"chart\"><h2>Training loss per stage</h2>\n";
  if (m.loss_curves.empty())
    return p + "<p class=\"lede\">No loss curve is recorded for this run.</p></section>\n";
  p += "<p class=\"lede\">Training loss against optimizer step, as logged by each stage."
       "</p>\n<div class=\"grid2\">\n";
  for (size_t i = 0; i < m.loss_curves.size(); ++i) p += loss_chart(m.loss_curves[i], i);
  return p + "</div>\n</section>\n";
}

}  // namespace audit::reports::sections
