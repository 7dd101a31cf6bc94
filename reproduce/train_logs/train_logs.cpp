// Training-log parsing: a small reader of the Python dict literals the Hugging Face Trainer
// prints, PCRE2 for recipe-given patterns, and the loss-curve artifact. See train_logs.h.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "reproduce/train_logs/train_logs.h"

#include <pcre2.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace audit::train_logs {
namespace {

using json = nlohmann::json;

// ---- Python dict literals ----------------------------------------------------------------
// Reads the repr() of a dict of str keys to str, int, float, bool, None, numpy scalar
// (np.float64(1.5)), tensor (tensor(1.5, ...)) or nested dict/list values. Not a Python parser:
// enough for what the Trainer's callbacks print, and it refuses anything else (then the text is
// not a log dict).
class PyDict {
 public:
  explicit PyDict(std::string_view s, size_t pos) : s_(s), i_(pos) {}
  size_t end() const { return i_; }

  std::optional<json> dict() {
    if (!eat('{')) return std::nullopt;
    json out = json::object();
    ws();
    if (eat('}')) return out;
    while (true) {
      ws();
      auto key = str();
      if (!key) return std::nullopt;
      ws();
      if (!eat(':')) return std::nullopt;
      ws();
      auto v = value();
      if (!v) return std::nullopt;
      out[*key] = std::move(*v);
      ws();
      if (eat('}')) return out;
      if (!eat(',')) return std::nullopt;
    }
  }

 private:
  bool at_end() const { return i_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[i_]; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  void ws() {
    while (!at_end() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }

  std::optional<std::string> str() {
    const char q = peek();
    if (q != '\'' && q != '"') return std::nullopt;
    ++i_;
    std::string out;
    while (!at_end() && s_[i_] != q) {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      out += s_[i_++];
    }
    if (!eat(q)) return std::nullopt;
    return out;
  }

  // A number token (digits, sign, point, exponent; nan, inf) read with strtod.
  std::optional<double> number() {
    const size_t b = i_;
    while (!at_end() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' ||
                         s_[i_] == '-' || s_[i_] == '+'))
      ++i_;
    std::string tok(s_.substr(b, i_ - b));
    if (tok.empty()) return std::nullopt;
    char* e = nullptr;
    double v = std::strtod(tok.c_str(), &e);
    if (e != tok.c_str() + tok.size()) {
      i_ = b;
      return std::nullopt;
    }
    return v;
  }

  // Skips a balanced (...) / [...] group (strings inside respected); returns its text.
  std::optional<std::string> balanced(char open, char close) {
    const size_t b = i_;
    int depth = 0;
    while (!at_end()) {
      const char c = s_[i_];
      if (c == '\'' || c == '"') {
        if (!str()) return std::nullopt;
        continue;
      }
      ++i_;
      if (c == open) ++depth;
      if (c == close && --depth == 0) return std::string(s_.substr(b, i_ - b));
    }
    return std::nullopt;
  }

  std::optional<json> value() {
    const char c = peek();
    if (c == '\'' || c == '"') {
      auto s = str();
      if (!s) return std::nullopt;
      return json(*s);
    }
    if (c == '{') return dict();
    if (c == '[' || c == '(') {
      auto t = balanced(c, c == '[' ? ']' : ')');
      if (!t) return std::nullopt;
      return json(*t);
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.') {
      auto v = number();
      if (!v) return std::nullopt;
      return json(*v);
    }
    // An identifier: True, False, None, nan, inf, or a call like np.float64(1.5) / tensor(1.5).
    const size_t b = i_;
    while (!at_end() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_' ||
                         s_[i_] == '.'))
      ++i_;
    const std::string id(s_.substr(b, i_ - b));
    if (id.empty()) return std::nullopt;
    if (peek() == '(') {
      const size_t open = i_ + 1;
      auto t = balanced('(', ')');
      if (!t) return std::nullopt;
      // The call's first argument, when it is a number, is its value.
      PyDict inner(s_, open);
      inner.ws();
      if (auto v = inner.number()) return json(*v);
      return json(id + *t);
    }
    // JSON's spellings too, so that a JSON line (whose inner dicts are no log dicts) is read
    // whole rather than searched for dicts inside it.
    if (id == "True" || id == "true") return json(true);
    if (id == "False" || id == "false") return json(false);
    if (id == "None" || id == "null") return json(nullptr);
    if (id == "nan") return json(NAN);
    if (id == "inf") return json(INFINITY);
    return std::nullopt;
  }

  std::string_view s_;
  size_t i_;
};

// A dict field as a number: numbers as they are, strings read whole by strtod ("4.864",
// "2e-05", "nan"); NaN when absent or not a number.
double field(const json& d, const char* key) {
  auto it = d.find(key);
  if (it == d.end()) return NAN;
  if (it->is_number()) return it->get<double>();
  if (it->is_string()) {
    const std::string s = it->get<std::string>();
    if (s.empty()) return NAN;
    char* e = nullptr;
    double v = std::strtod(s.c_str(), &e);
    if (e == s.c_str() + s.size()) return v;
  }
  return NAN;
}

// Whether a dict value is a number, or a string strtod reads whole ("nan" included).
bool numeric(const json& v) {
  if (v.is_number()) return true;
  if (!v.is_string() || v.get<std::string>().empty()) return false;
  const std::string s = v.get<std::string>();
  char* e = nullptr;
  std::strtod(s.c_str(), &e);
  return e == s.c_str() + s.size();
}

bool parse_double(std::string_view s, double* out) {
  std::string t(s);
  size_t b = t.find_first_not_of(" \t");
  size_t e = t.find_last_not_of(" \t");
  if (b == std::string::npos) return false;
  t = t.substr(b, e - b + 1);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return false;
  *out = v;
  return true;
}

// The \r-separated segments of a line, trailing '\n' and '\r' dropped.
std::vector<std::string_view> segments(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  std::vector<std::string_view> out;
  size_t b = 0;
  while (true) {
    size_t r = line.find('\r', b);
    std::string_view seg = line.substr(b, r == std::string_view::npos ? std::string_view::npos : r - b);
    if (!seg.empty()) out.push_back(seg);
    if (r == std::string_view::npos) break;
    b = r + 1;
  }
  return out;
}

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

}  // namespace

LogParser LogParser::hf_trainer(int64_t logging_steps) {
  if (logging_steps < 1)
    throw std::invalid_argument("hf-trainer logging_steps must be at least 1, got " +
                                std::to_string(logging_steps));
  LogParser p;
  p.format_ = "hf-trainer";
  p.logging_steps_ = logging_steps;
  return p;
}

LogParser LogParser::regex(const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &err, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw std::invalid_argument("log_regex does not compile: " +
                                std::string(reinterpret_cast<const char*>(msg)) + " at offset " +
                                std::to_string(offset));
  }
  LogParser p;
  p.format_ = "regex";
  p.code_ = std::shared_ptr<void>(code, [](void* c) { pcre2_code_free(static_cast<pcre2_code*>(c)); });
  auto group = [&](const char* name) {
    int n = pcre2_substring_number_from_name(code, reinterpret_cast<PCRE2_SPTR>(name));
    return n > 0 ? n : -1;
  };
  p.group_loss_ = group("loss");
  if (p.group_loss_ < 0)
    throw std::invalid_argument("log_regex has no named group 'loss' (write (?<loss>...))");
  p.group_step_ = group("step");
  p.group_lr_ = group("lr");
  p.group_epoch_ = group("epoch");
  p.group_grad_ = group("grad_norm");
  return p;
}

std::optional<LogPoint> LogParser::feed(std::string_view line) {
  for (std::string_view seg : segments(line)) {
    auto pt = format_ == "regex" ? feed_regex(seg) : feed_hf(seg);
    if (pt) {
      ++points_;
      return pt;
    }
  }
  return std::nullopt;
}

std::optional<LogPoint> LogParser::feed_hf(std::string_view seg) {
  size_t from = 0;
  while (true) {
    const size_t b = seg.find('{', from);
    if (b == std::string_view::npos) return std::nullopt;
    PyDict reader(seg, b);
    auto d = reader.dict();
    if (!d) {
      from = b + 1;
      continue;
    }
    from = reader.end();
    if (d->contains("loss")) {
      LogPoint p;
      if (!numeric((*d)["loss"])) continue;  // not a training log dict after all
      p.loss = field(*d, "loss");
      p.lr = field(*d, "learning_rate");
      p.epoch = field(*d, "epoch");
      p.grad_norm = field(*d, "grad_norm");
      const double step = field(*d, "step");
      p.step = std::isfinite(step) ? int64_t(std::llround(step)) : (points_ + 1) * logging_steps_;
      return p;
    }
    if (d->contains("train_runtime")) {  // speed_metrics("train", ...): the end of train()
      json s = json::object();
      for (auto& [k, v] : d->items()) {
        const double x = field(*d, k.c_str());
        s[k] = std::isnan(x) ? v : json(x);
      }
      summary_ = std::move(s);
    }
  }
}

std::optional<LogPoint> LogParser::feed_regex(std::string_view seg) {
  auto* code = static_cast<pcre2_code*>(code_.get());
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> md(
      pcre2_match_data_create_from_pattern(code, nullptr), pcre2_match_data_free);
  if (!md) throw std::bad_alloc();
  const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(seg.data()), seg.size(), 0, 0,
                             md.get(), nullptr);
  if (rc < 0) return std::nullopt;  // no match (or a line of invalid UTF-8)
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
  auto group = [&](int n, double* out) {
    if (n < 0 || n >= rc || ov[2 * n] == PCRE2_UNSET) return false;
    return parse_double(seg.substr(ov[2 * n], ov[2 * n + 1] - ov[2 * n]), out);
  };
  LogPoint p;
  if (!group(group_loss_, &p.loss)) return std::nullopt;
  group(group_lr_, &p.lr);
  group(group_epoch_, &p.epoch);
  group(group_grad_, &p.grad_norm);
  double step = NAN;
  p.step = group(group_step_, &step) && std::isfinite(step) ? int64_t(std::llround(step))
                                                            : points_ + 1;
  return p;
}

std::optional<LogParser> parser_for(const std::string& log_format, const std::string& pattern) {
  if (log_format == "none") return std::nullopt;
  if (log_format == "hf-trainer") return LogParser::hf_trainer();
  if (log_format == "regex") return LogParser::regex(pattern);
  throw std::invalid_argument("unknown log_format '" + log_format +
                              "' (expected \"hf-trainer\", \"regex\" or \"none\")");
}

std::vector<LogPoint> parse_text(LogParser& parser, std::string_view text) {
  std::vector<LogPoint> out;
  size_t b = 0;
  while (b < text.size()) {
    size_t e = text.find('\n', b);
    if (e == std::string_view::npos) e = text.size();
    if (auto p = parser.feed(text.substr(b, e - b))) out.push_back(*p);
    b = e + 1;
  }
  return out;
}

json loss_curve_json(const std::vector<LogPoint>& pts, const std::string& source,
                     const json& summary) {
  json c = {{"step", json::array()},  {"loss", json::array()},      {"lr", json::array()},
            {"epoch", json::array()}, {"grad_norm", json::array()}, {"source", source}};
  for (const auto& p : pts) {
    c["step"].push_back(p.step);
    c["loss"].push_back(number_or_null(p.loss));
    c["lr"].push_back(number_or_null(p.lr));
    c["epoch"].push_back(number_or_null(p.epoch));
    c["grad_norm"].push_back(number_or_null(p.grad_norm));
  }
  if (!summary.is_null()) c["summary"] = summary;
  return c;
}

}  // namespace audit::train_logs
