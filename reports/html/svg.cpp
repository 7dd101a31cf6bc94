// The SVG chart writer (see svg.h): scales, ticks, axes, legends and the four chart kinds.
#include "reports/html/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace audit::reports::svg {
namespace {

constexpr const char* kFont =
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";
constexpr const char* kGrid = "#e3e6ea";
constexpr const char* kAxis = "#6b7280";
constexpr const char* kInk = "#1f2933";
constexpr const char* kMuted = "#52606d";

// Pixel coordinates: one decimal, trailing ".0" dropped.
std::string px(double v) {
  if (!std::isfinite(v)) v = 0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  std::string s = buf;
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  if (s == "-0") s = "0";
  return s;
}

double approx_text_width(const std::string& s, double size) {
  // Average glyph advance of a UI sans-serif is close to 0.56 em; count UTF-8 lead bytes only.
  double n = 0;
  for (unsigned char ch : s)
    if ((ch & 0xC0) != 0x80) n += 1;
  return n * size * 0.56;
}

struct Plot {
  double x0, x1, y0, y1;  // x0 left, x1 right, y0 top, y1 bottom (pixels)
};
Plot plot_of(const Frame& f) { return {f.left, f.width - f.right, f.top, f.height - f.bottom}; }

std::vector<std::string> wrap2(const std::string& s, size_t max_chars) {
  if (s.size() <= max_chars) return {s};
  // Break at the space closest to the middle.
  size_t best = std::string::npos;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == ' ' &&
        (best == std::string::npos ||
         std::llabs(long(i) - long(s.size() / 2)) < std::llabs(long(best) - long(s.size() / 2))))
      best = i;
  if (best == std::string::npos) return {s};
  return {s.substr(0, best), s.substr(best + 1)};
}

}  // namespace

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  for (char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {0, 1};
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) {
    double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  target = std::max(2, target);
  double raw = (hi - lo) / target;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double f = raw / mag;
  double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  double start = std::floor(lo / step + 1e-9) * step;
  double end = std::ceil(hi / step - 1e-9) * step;
  std::vector<double> ticks;
  for (int k = 0; k < 1000; ++k) {
    double t = start + k * step;
    if (t > end + step * 1e-6) break;
    t = std::round(t / step) * step;
    if (std::fabs(t) < step * 1e-9) t = 0;
    ticks.push_back(t);
  }
  return ticks;
}

std::vector<double> log_ticks(double lo, double hi) {
  if (!(lo > 0) || !std::isfinite(lo)) lo = 1e-3;
  if (!(hi > lo) || !std::isfinite(hi)) hi = lo * 10;
  int e0 = int(std::floor(std::log10(lo) + 1e-9));
  int e1 = int(std::ceil(std::log10(hi) - 1e-9));
  if (e1 <= e0) e1 = e0 + 1;
  std::vector<double> ticks;
  if (e1 - e0 <= 2) {
    for (int e = e0; e < e1; ++e)
      for (double m : {1.0, 2.0, 5.0}) ticks.push_back(m * std::pow(10.0, e));
    ticks.push_back(std::pow(10.0, e1));
    return ticks;
  }
  int stride = std::max(1, (e1 - e0 + 7) / 8);
  e0 = e0 - ((e0 % stride) + stride) % stride;  // align so labels land on multiples of stride
  for (int e = e0; e < e1; e += stride) ticks.push_back(std::pow(10.0, e));
  ticks.push_back(std::pow(10.0, e0 + ((e1 - e0 + stride - 1) / stride) * stride));
  return ticks;
}

int tick_decimals(double step) {
  step = std::fabs(step);
  if (!(step > 0) || step >= 1) return 0;
  return std::min(12, int(std::ceil(-std::log10(step) - 1e-9)));
}

double Scale::operator()(double v) const {
  double a = d0, b = d1, x = v;
  if (log) {
    auto lg = [](double t) { return std::log10(t > 0 ? t : 1e-300); };
    a = lg(d0);
    b = lg(d1);
    x = lg(v > 0 ? v : d0);
  }
  if (b == a) return (p0 + p1) / 2;
  return p0 + (x - a) / (b - a) * (p1 - p0);
}

// ---- Canvas ----

Canvas::Canvas(int width, int height, std::string title)
    : width_(width), height_(height), title_(std::move(title)) {}

void Canvas::line(double x1, double y1, double x2, double y2, const std::string& stroke,
                  double width, const std::string& dash) {
  body_ += "<line x1=\"" + px(x1) + "\" y1=\"" + px(y1) + "\" x2=\"" + px(x2) + "\" y2=\"" +
           px(y2) + "\" stroke=\"" + escape(stroke) + "\" stroke-width=\"" + px(width) + "\"";
  if (!dash.empty()) body_ += " stroke-dasharray=\"" + escape(dash) + "\"";
  body_ += "/>\n";
}

void Canvas::rect(double x, double y, double w, double h, const std::string& fill,
                  const std::string& stroke, double opacity) {
  if (h < 0) {
    y += h;
    h = -h;
  }
  body_ += "<rect x=\"" + px(x) + "\" y=\"" + px(y) + "\" width=\"" + px(w) + "\" height=\"" +
           px(h) + "\" fill=\"" + escape(fill) + "\"";
  if (stroke != "none") body_ += " stroke=\"" + escape(stroke) + "\"";
  if (opacity < 1) body_ += " fill-opacity=\"" + num(opacity, 2) + "\"";
  body_ += "/>\n";
}

void Canvas::text(double x, double y, const std::string& s, const std::string& anchor, double size,
                  const std::string& fill, bool bold, double rotate) {
  body_ += "<text x=\"" + px(x) + "\" y=\"" + px(y) + "\"";
  if (anchor != "start") body_ += " text-anchor=\"" + escape(anchor) + "\"";
  body_ += " font-size=\"" + px(size) + "\" fill=\"" + escape(fill) + "\"";
  if (bold) body_ += " font-weight=\"600\"";
  if (rotate != 0) body_ += " transform=\"rotate(" + px(rotate) + " " + px(x) + " " + px(y) + ")\"";
  body_ += ">" + escape(s) + "</text>\n";
}

void Canvas::circle(double cx, double cy, double r, const std::string& fill,
                    const std::string& stroke, double stroke_width) {
  body_ += "<circle cx=\"" + px(cx) + "\" cy=\"" + px(cy) + "\" r=\"" + px(r) + "\" fill=\"" +
           escape(fill) + "\"";
  if (stroke != "none")
    body_ += " stroke=\"" + escape(stroke) + "\" stroke-width=\"" + px(stroke_width) + "\"";
  body_ += "/>\n";
}

void Canvas::polyline(const std::vector<std::pair<double, double>>& pts, const std::string& stroke,
                      double width, const std::string& dash) {
  if (pts.empty()) return;
  body_ += "<polyline fill=\"none\" stroke=\"" + escape(stroke) + "\" stroke-width=\"" + px(width) +
           "\" stroke-linejoin=\"round\" stroke-linecap=\"round\"";
  if (!dash.empty()) body_ += " stroke-dasharray=\"" + escape(dash) + "\"";
  body_ += " points=\"";
  for (size_t i = 0; i < pts.size(); ++i) {
    if (i) body_ += ' ';
    body_ += px(pts[i].first) + "," + px(pts[i].second);
  }
  body_ += "\"/>\n";
}

void Canvas::whisker(double x, double y_lo, double y_hi, const std::string& stroke, double half_cap,
                     double width) {
  line(x, y_lo, x, y_hi, stroke, width);
  line(x - half_cap, y_lo, x + half_cap, y_lo, stroke, width);
  line(x - half_cap, y_hi, x + half_cap, y_hi, stroke, width);
}

void Canvas::raw(const std::string& element) { body_ += element; }

std::string Canvas::str() const {
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " +
                  std::to_string(width_) + " " + std::to_string(height_) + "\" width=\"" +
                  std::to_string(width_) + "\" height=\"" + std::to_string(height_) +
                  "\" role=\"img\" font-family=\"" + escape(kFont) + "\">\n";
  s += "<title>" + escape(title_) + "</title>\n";
  s += body_;
  s += "</svg>\n";
  return s;
}

// ---- Axes and legends ----

void legend(Canvas& c, double x_left, double y, const std::vector<LegendEntry>& entries) {
  const double size = 11.5, swatch = 18, gap = 6, between = 18;
  double x = x_left;
  for (const auto& e : entries) {
    if (e.marker) {
      c.circle(x + swatch / 2, y - 4, 4.5, e.color);
    } else {
      c.line(x, y - 4, x + swatch, y - 4, e.color, 3, e.dash);
    }
    c.text(x + swatch + gap, y, e.label, "start", size, kMuted);
    x += swatch + gap + approx_text_width(e.label, size) + between;
  }
}

void y_axis(Canvas& c, const Frame& f, const Scale& y, const std::vector<double>& ticks,
            const Formatter& fmt) {
  Plot p = plot_of(f);
  for (double t : ticks) {
    double yy = y(t);
    c.line(p.x0, yy, p.x1, yy, kGrid, 1);
    c.text(p.x0 - 8, yy + 4, fmt ? fmt(t) : num(t), "end", 11, kMuted);
  }
  c.line(p.x0, p.y1, p.x1, p.y1, kAxis, 1);
}

void x_axis_values(Canvas& c, const Frame& f, const Scale& x, const std::vector<double>& ticks,
                   const Formatter& fmt) {
  Plot p = plot_of(f);
  for (double t : ticks) {
    double xx = x(t);
    if (xx < p.x0 - 0.5 || xx > p.x1 + 0.5) continue;
    c.line(xx, p.y1, xx, p.y1 + 5, kAxis, 1);
    c.text(xx, p.y1 + 18, fmt ? fmt(t) : num(t), "middle", 11, kMuted);
  }
}

void x_axis_categories(Canvas& c, const Frame& f, const std::vector<double>& centers,
                       const std::vector<std::string>& labels) {
  Plot p = plot_of(f);
  double band = centers.size() > 1 ? centers[1] - centers[0] : (p.x1 - p.x0);
  size_t max_chars = size_t(std::max(6.0, band / 6.6));
  for (size_t i = 0; i < centers.size() && i < labels.size(); ++i) {
    auto lines = wrap2(labels[i], max_chars);
    for (size_t k = 0; k < lines.size(); ++k)
      c.text(centers[i], p.y1 + 18 + 14 * double(k), lines[k], "middle", 11.5, kInk);
  }
}

void frame_labels(Canvas& c, const Frame& f) {
  Plot p = plot_of(f);
  if (!f.title.empty()) c.text(p.x0, 22, f.title, "start", 14, kInk, true);
  if (!f.x_label.empty()) c.text((p.x0 + p.x1) / 2, f.height - 10, f.x_label, "middle", 12, kMuted);
  if (!f.y_label.empty())
    c.text(16, (p.y0 + p.y1) / 2, f.y_label, "middle", 12, kMuted, false, -90);
}

// ---- Charts ----

std::string waterfall(const Frame& f, const std::vector<WaterfallStep>& steps, bool log_scale,
                      const Formatter& fmt_value) {
  Canvas c(f.width, f.height, f.title.empty() ? "waterfall" : f.title);
  Plot p = plot_of(f);
  // Bar extents.
  struct Bar {
    double base, top, lo, hi;
  };
  std::vector<Bar> bars;
  double running = 0;
  double vmax = 0, vmin_pos = std::numeric_limits<double>::infinity();
  for (const auto& s : steps) {
    Bar b{};
    if (s.total) {
      b = {0, s.mid, s.low, s.high};
      running = s.mid;
    } else {
      b = {running, running + s.mid, running + s.low, running + s.high};
      running += s.mid;
    }
    bars.push_back(b);
    vmax = std::max({vmax, b.top, b.hi});
    for (double v : {b.base, b.top, b.lo})
      if (v > 0) vmin_pos = std::min(vmin_pos, v);
  }
  if (!(vmax > 0)) vmax = 1;
  Scale y;
  std::vector<double> ticks;
  if (log_scale) {
    if (!std::isfinite(vmin_pos)) vmin_pos = vmax / 10;
    ticks = log_ticks(vmin_pos / 2, vmax * 1.05);
    y = {ticks.front(), ticks.back(), p.y1, p.y0, true};
  } else {
    ticks = nice_ticks(0, vmax * 1.08, 5);
    y = {ticks.front(), ticks.back(), p.y1, p.y0, false};
  }
  frame_labels(c, f);
  y_axis(c, f, y, ticks, fmt_value);
  size_t n = steps.size();
  double band = n ? (p.x1 - p.x0) / double(n) : 1;
  double bw = std::min(band * 0.58, 96.0);
  std::vector<double> centers;
  for (size_t i = 0; i < n; ++i) {
    const auto& s = steps[i];
    const auto& b = bars[i];
    double cx = p.x0 + band * (double(i) + 0.5);
    centers.push_back(cx);
    double yb = log_scale && b.base <= 0 ? p.y1 : y(b.base);
    double yt = y(b.top);
    std::string color = s.color.empty() ? "#3b6ea8" : s.color;
    if (s.mid > 0) {
      c.rect(cx - bw / 2, yt, bw, yb - yt, color);
    } else {
      c.line(cx - bw / 2, yb, cx + bw / 2, yb, color, 2);
    }
    bool has_band = s.high > s.low && (s.high - s.low) > 1e-12 * std::max(1.0, s.high);
    double label_y = yt;
    if (has_band) {
      double ylo = y(std::max(b.lo, log_scale ? y.d0 : 0.0));
      double yhi = y(b.hi);
      c.whisker(cx, ylo, yhi, "#1f2933", 6, 1.4);
      label_y = std::min(label_y, yhi);
    }
    std::string label = (s.total ? "" : "+") + (fmt_value ? fmt_value(s.mid) : num(s.mid));
    c.text(cx, label_y - 7, label, "middle", 12, kInk, true);
    // Connector to the next bar's base.
    if (i + 1 < n && !steps[i + 1].total) {
      double cx2 = p.x0 + band * (double(i) + 1.5);
      c.line(cx + bw / 2, yt, cx2 - bw / 2, yt, "#9aa5b1", 1, "3 3");
    }
  }
  std::vector<std::string> labels;
  for (const auto& s : steps) labels.push_back(s.label);
  x_axis_categories(c, f, centers, labels);
  return c.str();
}

std::string interval_chart(const Frame& frame, const std::vector<std::string>& categories,
                           const std::vector<Group>& groups,
                           const std::vector<IntervalPoint>& points, double y_min, double y_max,
                           const Formatter& fmt_y) {
  Frame f = frame;
  if (!groups.empty()) f.top = std::max(f.top, kLegendTop);
  Canvas c(f.width, f.height, f.title.empty() ? "intervals" : f.title);
  Plot p = plot_of(f);
  auto ticks = nice_ticks(y_min, y_max, 5);
  Scale y{ticks.front(), ticks.back(), p.y1, p.y0, false};
  frame_labels(c, f);
  y_axis(c, f, y, ticks, fmt_y);
  std::vector<LegendEntry> le;
  for (const auto& g : groups) le.push_back({g.name, g.color, "", true});
  if (!le.empty()) legend(c, p.x0, 42, le);
  size_t n = categories.size();
  double band = n ? (p.x1 - p.x0) / double(n) : 1;
  double g = double(std::max<size_t>(1, groups.size()));
  double off = std::min(band / (g + 1), 46.0);
  std::vector<double> centers;
  for (size_t i = 0; i < n; ++i) {
    double cx = p.x0 + band * (double(i) + 0.5);
    centers.push_back(cx);
    if (i > 0) c.line(p.x0 + band * double(i), p.y0, p.x0 + band * double(i), p.y1, kGrid, 1);
  }
  for (const auto& pt : points) {
    auto ci = std::find(categories.begin(), categories.end(), pt.category);
    auto gi = std::find_if(groups.begin(), groups.end(),
                           [&](const Group& gg) { return gg.name == pt.group; });
    if (ci == categories.end() || gi == groups.end()) continue;
    double x = centers[size_t(ci - categories.begin())] +
               (double(gi - groups.begin()) - (g - 1) / 2) * off;
    c.whisker(x, y(pt.low), y(pt.high), gi->color, 6, 2);
    for (double s : pt.spread) c.circle(x, y(s), 3.2, "#ffffff", gi->color, 1.3);
    c.circle(x, y(pt.value), 5.5, gi->color, "#ffffff", 1.5);
    c.text(x + 9, y(pt.value) + 4, fmt_y ? fmt_y(pt.value) : num(pt.value), "start", 11, kInk,
           true);
  }
  x_axis_categories(c, f, centers, categories);
  return c.str();
}

std::string line_chart(const Frame& frame, const std::vector<Series>& series,
                       const LineOptions& o) {
  std::vector<LegendEntry> le;
  for (const auto& s : series)
    if (!s.name.empty()) le.push_back({s.name, s.color, s.dash, false});
  for (const auto& e : o.extra_legend) le.push_back(e);
  Frame f = frame;
  if (!le.empty()) f.top = std::max(f.top, kLegendTop);
  Canvas c(f.width, f.height, f.title.empty() ? "lines" : f.title);
  Plot p = plot_of(f);
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin;
  double ymin = xmin, ymax = -xmin;
  for (const auto& s : series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      if (o.log_x && !(s.x[i] > 0)) continue;
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]);
      ymax = std::max(ymax, s.y[i]);
      if (i < s.low.size()) ymin = std::min(ymin, s.low[i]);
      if (i < s.high.size()) ymax = std::max(ymax, s.high[i]);
    }
  }
  if (!std::isfinite(xmin)) {
    xmin = 0;
    xmax = 1;
  }
  if (!std::isfinite(ymin)) {
    ymin = 0;
    ymax = 1;
  }
  if (o.y_max > o.y_min) {
    ymin = o.y_min;
    ymax = o.y_max;
  }
  if (o.y_from_zero) ymin = std::min(0.0, ymin);
  auto yt = nice_ticks(ymin, ymax, 5);
  Scale y{yt.front(), yt.back(), p.y1, p.y0, false};
  Scale x;
  std::vector<double> xt;
  if (!o.x_labels.empty()) {
    double k = double(o.x_labels.size());
    double pad = (p.x1 - p.x0) / (2 * k);
    x = {0, k - 1, p.x0 + pad, p.x1 - pad, false};
    if (o.x_labels.size() == 1) x = {-1, 1, p.x0, p.x1, false};
  } else if (o.log_x) {
    xt = log_ticks(xmin, xmax);
    x = {xt.front(), xt.back(), p.x0, p.x1, true};
  } else {
    xt = nice_ticks(xmin, xmax, 6);
    x = {xt.front(), xt.back(), p.x0, p.x1, false};
  }
  frame_labels(c, f);
  y_axis(c, f, y, yt, o.fmt_y);
  if (!o.x_labels.empty()) {
    std::vector<double> centers;
    for (size_t i = 0; i < o.x_labels.size(); ++i) centers.push_back(x(double(i)));
    for (double cx : centers) c.line(cx, p.y1, cx, p.y1 + 5, kAxis, 1);
    x_axis_categories(c, f, centers, o.x_labels);
  } else {
    x_axis_values(c, f, x, xt, o.fmt_x);
  }
  for (const auto& s : series) {
    std::vector<std::pair<double, double>> pts;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      if (o.log_x && o.x_labels.empty() && !(s.x[i] > 0)) continue;
      pts.push_back({x(s.x[i]), y(s.y[i])});
      if (i < s.low.size() && i < s.high.size())
        c.whisker(x(s.x[i]), y(s.low[i]), y(s.high[i]), s.color, 4, 1.2);
    }
    c.polyline(pts, s.color, 2, s.dash);
    if (s.markers)
      for (const auto& pt : pts) c.circle(pt.first, pt.second, 3.2, s.color, "#ffffff", 1);
  }
  if (!le.empty()) legend(c, p.x0, 42, le);
  return c.str();
}

std::string hbar_chart(const Frame& f, const std::vector<std::string>& labels,
                       const std::vector<double>& values, const std::string& color,
                       const Formatter& fmt_value) {
  Canvas c(f.width, f.height, f.title.empty() ? "bars" : f.title);
  Plot p = plot_of(f);
  double vmax = 0;
  for (double v : values) vmax = std::max(vmax, v);
  if (!(vmax > 0)) vmax = 1;
  auto xt = nice_ticks(0, vmax, 5);
  Scale x{0, xt.back(), p.x0, p.x1 - 40, false};
  frame_labels(c, f);
  for (double t : xt) {
    c.line(x(t), p.y0, x(t), p.y1, kGrid, 1);
    c.text(x(t), p.y1 + 16, fmt_value ? fmt_value(t) : num(t), "middle", 11, kMuted);
  }
  size_t n = std::min(labels.size(), values.size());
  double band = n ? (p.y1 - p.y0) / double(n) : 1;
  double bh = std::min(band * 0.62, 26.0);
  for (size_t i = 0; i < n; ++i) {
    double cy = p.y0 + band * (double(i) + 0.5);
    c.text(p.x0 - 8, cy + 4, labels[i], "end", 11.5, kInk);
    double w = x(values[i]) - x(0);
    c.rect(x(0), cy - bh / 2, std::max(w, 1.0), bh, color);
    c.text(x(0) + std::max(w, 1.0) + 6, cy + 4, fmt_value ? fmt_value(values[i]) : num(values[i]),
           "start", 11.5, kInk, true);
  }
  c.line(p.x0, p.y0, p.x0, p.y1, kAxis, 1);
  return c.str();
}

}  // namespace audit::reports::svg
