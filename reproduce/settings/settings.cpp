// Model and training settings (see settings.h): comparison and text, both walking the structs'
// one field list (for_each_field).
#include "reproduce/settings/settings.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace audit::settings {
namespace {

template <class S>
bool all_equal(const S& a, const S& b) {
  bool eq = true;
  S::for_each_field([&](const char*, auto field) { eq = eq && a.*field == b.*field; });
  return eq;
}

std::string text(const std::string& v) { return v; }
std::string text(bool v) { return v ? "true" : "false"; }
std::string text(int64_t v) { return std::to_string(v); }
std::string text(double v) {  // the shortest text that reads back as v; 10000 rather than 1e+04
  char buf[40];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  if (std::strchr(buf, 'e') && v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

template <class S>
std::string fields_text(const S& s) {
  std::string out;
  S::for_each_field([&](const char* name, auto field) {
    out += (out.empty() ? "" : " ") + std::string(name) + "=" + text(s.*field);
  });
  return out;
}

}  // namespace

bool ModelSettings::operator==(const ModelSettings& o) const { return all_equal(*this, o); }
bool TrainSettings::operator==(const TrainSettings& o) const { return all_equal(*this, o); }

std::string to_string(const ModelSettings& m) { return fields_text(m); }
std::string to_string(const TrainSettings& t) { return fields_text(t); }

}  // namespace audit::settings
