// A small SVG chart writer for the reports: scales, "nice" ticks, axes with labels, legends, and
// four chart kinds (waterfall with whiskers, dot-and-whisker intervals, lines with optional
// whiskers, horizontal bars). Output is plain inline SVG text, deterministic byte for byte (no
// clocks, no random ids, fixed number formatting), and needs no script or font to render.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/format.h"

namespace audit::reports::svg {

// Escapes & < > " ' for HTML and SVG text and attribute values.
std::string escape(std::string_view s);

using text::num;  // common/format.h

// Linear ticks with a step of 1, 2 or 5 x 10^k covering [lo, hi]; about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);
// Powers of ten covering [lo, hi] (lo > 0); with 2 and 5 multiples when the span is short.
std::vector<double> log_ticks(double lo, double hi);
// The decimals needed to print ticks `step` apart without two looking the same.
int tick_decimals(double step);

// Maps a data interval onto a pixel interval, linear or log10.
struct Scale {
  double d0 = 0, d1 = 1;  // data
  double p0 = 0, p1 = 1;  // pixels
  bool log = false;
  double operator()(double v) const;
};

using Formatter = std::function<std::string(double)>;

// Collects SVG elements; str() wraps them in one <svg> with a title for screen readers.
class Canvas {
 public:
  Canvas(int width, int height, std::string title);
  void line(double x1, double y1, double x2, double y2, const std::string& stroke, double width = 1,
            const std::string& dash = "");
  void rect(double x, double y, double w, double h, const std::string& fill,
            const std::string& stroke = "none", double opacity = 1);
  // anchor: start | middle | end. rotate: degrees around (x, y).
  void text(double x, double y, const std::string& s, const std::string& anchor = "start",
            double size = 12, const std::string& fill = "#333", bool bold = false,
            double rotate = 0);
  void circle(double cx, double cy, double r, const std::string& fill,
              const std::string& stroke = "none", double stroke_width = 1);
  void polyline(const std::vector<std::pair<double, double>>& pts, const std::string& stroke,
                double width = 2, const std::string& dash = "");
  // A vertical whisker from y_lo to y_hi at x, with caps half_cap wide.
  void whisker(double x, double y_lo, double y_hi, const std::string& stroke, double half_cap = 5,
               double width = 1.5);
  void raw(const std::string& element);
  std::string str() const;
  int width() const { return width_; }
  int height() const { return height_; }

 private:
  int width_, height_;
  std::string title_;
  std::string body_;
};

// Chart frame: size, margins, title and axis labels.
struct Frame {
  int width = 640, height = 320;
  double left = 70, right = 20, top = 40, bottom = 56;
  std::string title;
  std::string x_label, y_label;
};

struct LegendEntry {
  std::string label;
  std::string color;
  std::string dash;     // "" solid
  bool marker = false;  // a dot instead of a line swatch
};
// Draws a one-row legend starting at x_left, text baseline at y. Charts with a legend put it on
// its own row under the title (their plot starts at least kLegendTop pixels down).
void legend(Canvas& c, double x_left, double y, const std::vector<LegendEntry>& entries);
inline constexpr double kLegendTop = 60;

// Axes: the y axis with gridlines over the plot area, and optionally category or value ticks on x.
void y_axis(Canvas& c, const Frame& f, const Scale& y, const std::vector<double>& ticks,
            const Formatter& fmt);
void x_axis_values(Canvas& c, const Frame& f, const Scale& x, const std::vector<double>& ticks,
                   const Formatter& fmt);
void x_axis_categories(Canvas& c, const Frame& f, const std::vector<double>& centers,
                       const std::vector<std::string>& labels);
void frame_labels(Canvas& c, const Frame& f);

// ---- Charts ----

// A cost waterfall. A `total` step is a bar from 0 to mid; any other step floats from the running
// total to the running total plus its mid. low/high draw a whisker on the bar's top (the price
// band). log_scale: a log10 y axis (for heads of very different sizes; say so in the title).
struct WaterfallStep {
  std::string label;
  double low = 0, mid = 0, high = 0;
  bool total = false;
  std::string color;
};
std::string waterfall(const Frame& f, const std::vector<WaterfallStep>& steps, bool log_scale,
                      const Formatter& fmt_value);

// Dot-and-whisker chart: categories along x, groups side by side within each category. Each
// point has a value (dot), an interval (whisker), and optional individual values (small rings,
// e.g. one per seed).
struct IntervalPoint {
  std::string category, group;
  double value = 0, low = 0, high = 0;
  std::vector<double> spread;
};
struct Group {
  std::string name, color;
};
std::string interval_chart(const Frame& f, const std::vector<std::string>& categories,
                           const std::vector<Group>& groups,
                           const std::vector<IntervalPoint>& points, double y_min, double y_max,
                           const Formatter& fmt_y);

// Lines. x_labels non-empty: x values are category indices 0..k-1 labelled by x_labels.
// low/high (same size as y, or empty) draw whiskers at each point.
struct Series {
  std::string name, color, dash;
  std::vector<double> x, y, low, high;
  bool markers = true;
};
struct LineOptions {
  bool log_x = false;
  std::vector<std::string> x_labels;
  bool y_from_zero = false;
  double y_min = 0, y_max = 0;            // used when y_max > y_min; otherwise from the data
  Formatter fmt_x, fmt_y;                 // default: num()
  std::vector<LegendEntry> extra_legend;  // appended to the series legend
};
std::string line_chart(const Frame& f, const std::vector<Series>& series, const LineOptions& o);

// Horizontal bars, one per label, the value printed at the bar's end.
std::string hbar_chart(const Frame& f, const std::vector<std::string>& labels,
                       const std::vector<double>& values, const std::string& color,
                       const Formatter& fmt_value);

}  // namespace audit::reports::svg
