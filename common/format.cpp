// Formatters (see format.h).
#include "common/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <vector>

namespace audit::text {
namespace {

std::string trim_zeros(std::string s) {
  auto dot = s.find('.');
  if (dot == std::string::npos) return s;
  auto e = s.find_first_of("eE");
  std::string mant = e == std::string::npos ? s : s.substr(0, e);
  std::string exp = e == std::string::npos ? "" : s.substr(e);
  while (!mant.empty() && mant.back() == '0') mant.pop_back();
  if (!mant.empty() && mant.back() == '.') mant.pop_back();
  return mant + exp;
}

}  // namespace

std::string fmt(const char* f, double v) {
  char buf[96];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string num(double v, int sig) {
  if (std::isnan(v)) return "n/a";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return "0";
  if (sig < 1) sig = 1;
  double a = std::fabs(v);
  char buf[64];
  if (a >= 1e-4 && a < 1e9) {
    int mag = int(std::floor(std::log10(a)));
    int dec = std::max(0, sig - 1 - mag);
    std::snprintf(buf, sizeof buf, "%.*f", dec, v);
  } else {
    std::snprintf(buf, sizeof buf, "%.*e", sig - 1, v);
  }
  std::string s = trim_zeros(buf);
  if (s == "-0") s = "0";
  return s;
}

std::string with_commas(double v) {
  std::string s = fmt("%.0f", v), out;
  int n = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (n > 0 && n % 3 == 0 && *it != '-') out.push_back(',');
    out.push_back(*it);
    ++n;
  }
  return std::string(out.rbegin(), out.rend());
}

std::string decimal(double v, int sig) {
  if (!std::isfinite(v)) return "n/a";
  if (v == 0) return "0";
  if (sig < 1) sig = 1;
  const double a = std::fabs(v);
  if (a < 1e-15) return v < 0 ? "-0.000000000000001" : "0.000000000000001";
  if (a >= 1e15) return with_commas(v);
  const int mag = int(std::floor(std::log10(a)));
  const int dec = std::min(15, std::max(0, sig - 1 - mag));
  std::string s = trim_zeros(fmt(("%." + std::to_string(dec) + "f").c_str(), v));
  if (s == "-0") s = "0";
  return s;
}

std::string money(double usd) {
  if (!std::isfinite(usd)) return "n/a";
  if (usd < 0) return "-" + money(-usd);
  if (usd == 0) return "$0";
  if (usd >= 1e15) return "$" + with_commas(usd / 1e12) + "T";
  if (usd >= 1e12) return "$" + num(usd / 1e12, 3) + "T";
  if (usd >= 1e9) return "$" + num(usd / 1e9, 3) + "B";
  if (usd >= 1e6) return "$" + num(usd / 1e6, 3) + "M";
  if (usd >= 1000) return "$" + with_commas(usd);
  if (usd >= 100) return "$" + fmt("%.0f", usd);
  if (usd >= 1) {
    if (std::fabs(usd - std::round(usd)) < 1e-9) return "$" + fmt("%.0f", usd);
    return "$" + fmt("%.2f", usd);
  }
  if (usd >= 0.1) return "$" + fmt("%.2f", usd);
  // Two significant digits in plain decimals, never an exponent: "$0.042", "$0.0013",
  // "$0.000012"; under $1e-15 "<$0.000000000000001".
  if (usd < 1e-15) return "<$0.000000000000001";
  return "$" + decimal(usd, 2);
}

std::string percent(double fraction, int decimals) {
  if (!std::isfinite(fraction)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f%%", decimals, fraction * 100);
  return buf;
}

std::string share(double fraction) {
  double p = fraction * 100;
  if (!std::isfinite(p)) return "n/a";
  if (p >= 10) return fmt("%.0f%%", p);
  if (p >= 1) return fmt("%.1f%%", p);
  return decimal(p, 2) + "%";
}

std::string points(double d) {
  if (!std::isfinite(d)) return "n/a";
  std::string s = fmt("%+.1f pts", d * 100);
  if (s == "-0.0 pts") s = "+0.0 pts";
  return s;
}

std::string utc(double unix_s) {
  if (!(unix_s > 0)) return "—";
  std::time_t t = std::time_t(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string duration(double s) {
  if (!std::isfinite(s) || s < 0) return "—";
  if (s < 120) return num(s, 3) + " s";
  if (s < 7200) return fmt("%.1f min", s / 60);
  return fmt("%.2f h", s / 3600);
}

std::string bytes(double b) {
  if (!(b > 0)) return "—";
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) b /= 1024, ++i;
  return num(b, 3) + " " + u[i];
}

std::string clock(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  long t = long(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

std::string rate(double v) {
  if (v >= 1e6) return fmt("%.1fM", v / 1e6);
  if (v >= 1e4) return fmt("%.1fk", v / 1e3);
  return fmt("%.0f", v);
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace audit::text
