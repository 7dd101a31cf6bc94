// The arithmetic task family: question templates, the exact solver that writes traces, the
// independent trace checker and exact answer checking (see tasks.h).
#include "datasets/tasks/tasks.h"

#include <algorithm>
#include <stdexcept>

namespace audit::datasets {

// ---------------------------------------------------------------------------------------------
// Example <-> JSON
void to_json(nlohmann::json& j, const Example& e) {
  j = nlohmann::json{{"op", e.op},         {"digits", e.digits}, {"question", e.question},
                     {"trace", e.trace},   {"answer", e.answer}, {"format", e.format}};
}

void from_json(const nlohmann::json& j, Example& e) {
  e.op = j.at("op").get<std::string>();
  e.digits = j.at("digits").get<int>();
  e.question = j.at("question").get<std::string>();
  e.trace = j.value("trace", std::string());
  e.answer = j.at("answer").get<std::string>();
  e.format = j.value("format", std::string("standard"));
}

// ---------------------------------------------------------------------------------------------
// Names
const std::vector<std::string>& all_ops() {
  static const std::vector<std::string> ops = {"add", "sub", "mul1", "mul2", "addsub"};
  return ops;
}
const std::vector<std::string>& all_formats() {
  static const std::vector<std::string> formats = {"standard", "words", "equation"};
  return formats;
}
bool is_task_op(std::string_view op) {
  const auto& ops = all_ops();
  return std::find(ops.begin(), ops.end(), op) != ops.end();
}
bool is_task_format(std::string_view format) {
  const auto& f = all_formats();
  return std::find(f.begin(), f.end(), format) != f.end();
}
bool op_supports_digits(std::string_view op, int digits) {
  if (!is_task_op(op) || digits < 1) return false;
  return op != "mul2" || digits >= 2;
}

// ---------------------------------------------------------------------------------------------
// Decimal strings
bool is_canonical_number(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return s.size() == 1 || s[0] != '0';
}

namespace {
int digit_at(std::string_view x, std::size_t i) {  // i-th digit from the right, 0 beyond
  return i < x.size() ? x[x.size() - 1 - i] - '0' : 0;
}
std::string strip_zeros(std::string s) {
  std::size_t k = s.find_first_not_of('0');
  return k == std::string::npos ? std::string("0") : s.substr(k);
}
// Digits written least-significant first -> canonical number.
std::string from_written(const std::string& written_lsb_first) {
  return strip_zeros(std::string(written_lsb_first.rbegin(), written_lsb_first.rend()));
}
}  // namespace

int compare_decimal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

std::string add_decimal(std::string_view a, std::string_view b) {
  std::string w;
  int carry = 0;
  for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    int s = digit_at(a, i) + digit_at(b, i) + carry;
    w.push_back(static_cast<char>('0' + s % 10));
    carry = s / 10;
  }
  if (carry) w.push_back(static_cast<char>('0' + carry));
  return from_written(w);
}

std::string sub_decimal(std::string_view a, std::string_view b) {
  if (compare_decimal(a, b) < 0) throw std::invalid_argument("sub_decimal: a < b");
  std::string w;
  int borrow = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    int v = digit_at(a, i) - digit_at(b, i) - borrow;
    borrow = v < 0 ? 1 : 0;
    w.push_back(static_cast<char>('0' + v + 10 * borrow));
  }
  return from_written(w);
}

std::string mul_decimal(std::string_view a, std::string_view b) {
  std::vector<int> acc(a.size() + b.size() + 1, 0);
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = 0; j < b.size(); ++j) acc[i + j] += digit_at(a, i) * digit_at(b, j);
  std::string w;
  int carry = 0;
  for (int v : acc) {
    v += carry;
    w.push_back(static_cast<char>('0' + v % 10));
    carry = v / 10;
  }
  while (carry) {
    w.push_back(static_cast<char>('0' + carry % 10));
    carry /= 10;
  }
  return from_written(w);
}

// ---------------------------------------------------------------------------------------------
// Pattern matching: "{n}" = a canonical number (maximal run of digits), "{d}" = one digit,
// everything else literal. Used for question templates and trace lines alike.
namespace {
std::optional<std::vector<std::string>> match_pattern(std::string_view pattern,
                                                      std::string_view text) {
  std::vector<std::string> caps;
  std::size_t i = 0, j = 0;
  while (i < pattern.size()) {
    if (pattern.compare(i, 3, "{n}") == 0) {
      std::size_t k = j;
      while (k < text.size() && text[k] >= '0' && text[k] <= '9') ++k;
      std::string_view num = text.substr(j, k - j);
      if (!is_canonical_number(num)) return std::nullopt;
      caps.emplace_back(num);
      i += 3;
      j = k;
    } else if (pattern.compare(i, 3, "{d}") == 0) {
      if (j >= text.size() || text[j] < '0' || text[j] > '9') return std::nullopt;
      caps.emplace_back(1, text[j]);
      i += 3;
      ++j;
    } else {
      if (j >= text.size() || text[j] != pattern[i]) return std::nullopt;
      ++i;
      ++j;
    }
  }
  if (j != text.size()) return std::nullopt;
  return caps;
}

std::string fill_pattern(std::string_view pattern, const std::vector<std::string>& args) {
  std::string out;
  std::size_t a = 0;
  for (std::size_t i = 0; i < pattern.size();) {
    if (pattern.compare(i, 3, "{n}") == 0 || pattern.compare(i, 3, "{d}") == 0) {
      out += args.at(a++);
      i += 3;
    } else {
      out.push_back(pattern[i++]);
    }
  }
  return out;
}

// Question templates. "mul" serves mul1 and mul2 (told apart by the multiplier's length).
// order[k] = which operand fills placeholder k.
struct QuestionTemplate {
  const char* op;
  const char* format;
  const char* pattern;
  std::vector<int> order;
};
const std::vector<QuestionTemplate>& question_templates() {
  static const std::vector<QuestionTemplate> t = {
      {"add", "standard", "What is {n} + {n}?", {0, 1}},
      {"sub", "standard", "What is {n} - {n}?", {0, 1}},
      {"mul", "standard", "What is {n} * {n}?", {0, 1}},
      {"addsub", "standard", "What is {n} + {n} - {n}?", {0, 1, 2}},
      {"add", "words", "Compute the sum of {n} and {n}.", {0, 1}},
      {"sub", "words", "Subtract {n} from {n}.", {1, 0}},
      {"mul", "words", "Compute the product of {n} and {n}.", {0, 1}},
      {"addsub", "words", "Add {n} and {n}, then subtract {n}.", {0, 1, 2}},
      {"add", "equation", "{n} + {n} = ?", {0, 1}},
      {"sub", "equation", "{n} - {n} = ?", {0, 1}},
      {"mul", "equation", "{n} * {n} = ?", {0, 1}},
      {"addsub", "equation", "{n} + {n} - {n} = ?", {0, 1, 2}},
  };
  return t;
}
std::string template_op(const std::string& op) { return op == "mul1" || op == "mul2" ? "mul" : op; }

std::string random_number(int len, Rng& rng) {
  if (len == 1) return std::string(1, static_cast<char>('0' + rng.below(10)));
  std::string s(1, static_cast<char>('1' + rng.below(9)));
  for (int i = 1; i < len; ++i) s.push_back(static_cast<char>('0' + rng.below(10)));
  return s;
}

void check_problem(const Problem& p) {
  if (!is_task_op(p.op)) throw std::invalid_argument("unknown task op '" + p.op + "'");
  std::size_t want = p.op == "addsub" ? 3 : 2;
  if (p.operands.size() != want)
    throw std::invalid_argument("op '" + p.op + "' takes " + std::to_string(want) + " operands");
  for (const auto& o : p.operands)
    if (!is_canonical_number(o))
      throw std::invalid_argument("operand '" + o + "' is not a canonical decimal number");
  const auto& x = p.operands;
  if (p.op == "sub" && compare_decimal(x[0], x[1]) < 0)
    throw std::invalid_argument("sub with a negative result: " + x[0] + " - " + x[1]);
  if (p.op == "addsub" && compare_decimal(add_decimal(x[0], x[1]), x[2]) < 0)
    throw std::invalid_argument("addsub with a negative result");
  if (p.op == "mul1" && x[1].size() != 1)
    throw std::invalid_argument("mul1 needs a one-digit multiplier, got " + x[1]);
  if (p.op == "mul2" && x[1].size() != 2)
    throw std::invalid_argument("mul2 needs a two-digit multiplier, got " + x[1]);
}
}  // namespace

int Problem::digits() const {
  std::size_t d = 0;
  for (const auto& o : operands) d = std::max(d, o.size());
  return static_cast<int>(d);
}

std::string Problem::key() const {
  std::string k = op + ":";
  for (std::size_t i = 0; i < operands.size(); ++i) k += (i ? "," : "") + operands[i];
  return k;
}

std::string render_question(const Problem& p) {
  check_problem(p);
  if (!is_task_format(p.format)) throw std::invalid_argument("unknown format '" + p.format + "'");
  const std::string top = template_op(p.op);
  for (const auto& t : question_templates()) {
    if (top != t.op || p.format != t.format) continue;
    std::vector<std::string> args;
    for (int k : t.order) args.push_back(p.operands.at(static_cast<std::size_t>(k)));
    return fill_pattern(t.pattern, args);
  }
  throw std::logic_error("no question template for " + p.op + "/" + p.format);
}

std::optional<Problem> parse_question(std::string_view question) {
  for (const auto& t : question_templates()) {
    auto caps = match_pattern(t.pattern, question);
    if (!caps) continue;
    Problem p;
    p.format = t.format;
    p.operands.resize(caps->size());
    for (std::size_t k = 0; k < caps->size(); ++k)
      p.operands[static_cast<std::size_t>(t.order[k])] = (*caps)[k];
    p.op = t.op;
    if (p.op == "mul") {
      if (p.operands[1].size() == 1)
        p.op = "mul1";
      else if (p.operands[1].size() == 2)
        p.op = "mul2";
      else
        return std::nullopt;
    }
    try {
      check_problem(p);
    } catch (const std::invalid_argument&) {
      return std::nullopt;
    }
    return p;
  }
  return std::nullopt;
}

Problem random_problem(const std::string& op, int digits, const std::string& format, Rng& rng) {
  if (!is_task_op(op)) throw std::invalid_argument("unknown task op '" + op + "'");
  if (!is_task_format(format)) throw std::invalid_argument("unknown format '" + format + "'");
  if (!op_supports_digits(op, digits))
    throw std::invalid_argument("op '" + op + "' cannot have " + std::to_string(digits) +
                                " digits");
  Problem p;
  p.op = op;
  p.format = format;
  auto other_len = [&] { return static_cast<int>(rng.between(1, digits)); };
  if (op == "add" || op == "addsub") {
    std::string a = random_number(digits, rng), b = random_number(other_len(), rng);
    if (rng.below(2)) std::swap(a, b);
    p.operands = {a, b};
    if (op == "addsub") {
      const std::string s = add_decimal(a, b);
      std::string c;
      do {
        c = random_number(other_len(), rng);
      } while (compare_decimal(c, s) > 0);
      p.operands.push_back(c);
    }
  } else if (op == "sub") {
    std::string a = random_number(digits, rng), b = random_number(other_len(), rng);
    if (compare_decimal(a, b) < 0) std::swap(a, b);
    p.operands = {a, b};
  } else if (op == "mul1") {
    p.operands = {random_number(digits, rng), std::to_string(rng.between(2, 9))};
  } else {  // mul2
    p.operands = {random_number(digits, rng), std::to_string(rng.between(10, 99))};
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// The solver: one block per elementary operation, each ending with "result N".
namespace {
struct TraceWriter {
  std::string out;
  void line(const std::string& s) {
    out += s;
    out.push_back('\n');
  }
};
std::string d2s(int v) { return std::to_string(v); }

std::string add_block(TraceWriter& w, const std::string& a, const std::string& b) {
  w.line(a + " + " + b);
  std::string written;
  int carry = 0;
  for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    int da = digit_at(a, i), db = digit_at(b, i), s = da + db + carry;
    w.line(d2s(da) + "+" + d2s(db) + "+" + d2s(carry) + "=" + d2s(s) + " write " + d2s(s % 10) +
           " carry " + d2s(s / 10));
    written.push_back(static_cast<char>('0' + s % 10));
    carry = s / 10;
  }
  if (carry) {
    w.line("write carry " + d2s(carry));
    written.push_back(static_cast<char>('0' + carry));
  }
  std::string r = from_written(written);
  w.line("result " + r);
  return r;
}

std::string sub_block(TraceWriter& w, const std::string& a, const std::string& b) {
  w.line(a + " - " + b);
  std::string written;
  int borrow = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    int da = digit_at(a, i), db = digit_at(b, i);
    int next = da < db + borrow ? 1 : 0;
    int x = da + 10 * next, v = x - db - borrow;
    w.line(d2s(x) + "-" + d2s(db) + "-" + d2s(borrow) + "=" + d2s(v) + " write " + d2s(v) +
           " borrow " + d2s(next));
    written.push_back(static_cast<char>('0' + v));
    borrow = next;
  }
  std::string r = from_written(written);
  w.line("result " + r);
  return r;
}

std::string mul1_block(TraceWriter& w, const std::string& a, char m) {
  w.line(a + " * " + std::string(1, m));
  const int dm = m - '0';
  std::string written;
  int carry = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    int da = digit_at(a, i), s = da * dm + carry;
    w.line(d2s(da) + "*" + d2s(dm) + "+" + d2s(carry) + "=" + d2s(s) + " write " + d2s(s % 10) +
           " carry " + d2s(s / 10));
    written.push_back(static_cast<char>('0' + s % 10));
    carry = s / 10;
  }
  if (carry) {
    w.line("write carry " + d2s(carry));
    written.push_back(static_cast<char>('0' + carry));
  }
  std::string r = from_written(written);
  w.line("result " + r);
  return r;
}

std::string shifted(const std::string& x) { return x == "0" ? x : x + "0"; }
}  // namespace

Solution solve(const Problem& p) {
  check_problem(p);
  TraceWriter w;
  const auto& x = p.operands;
  std::string r;
  if (p.op == "add") {
    r = add_block(w, x[0], x[1]);
  } else if (p.op == "sub") {
    r = sub_block(w, x[0], x[1]);
  } else if (p.op == "mul1") {
    r = mul1_block(w, x[0], x[1][0]);
  } else if (p.op == "mul2") {
    w.line(x[0] + " * " + x[1]);
    std::string units = mul1_block(w, x[0], x[1][1]);
    std::string tens = mul1_block(w, x[0], x[1][0]);
    w.line(tens + " shift 1 = " + shifted(tens));
    r = add_block(w, units, shifted(tens));
  } else {  // addsub
    w.line(x[0] + " + " + x[1] + " - " + x[2]);
    std::string s = add_block(w, x[0], x[1]);
    r = sub_block(w, s, x[2]);
  }
  return {w.out, r};
}

Solution solve(std::string_view question) {
  auto p = parse_question(question);
  if (!p)
    throw std::invalid_argument("not a question of the arithmetic task family: '" +
                                std::string(question) + "'");
  return solve(*p);
}

Example make_example(const Problem& p, bool with_trace) {
  Solution s = solve(p);
  Example e;
  e.op = p.op;
  e.digits = p.digits();
  e.question = render_question(p);
  e.trace = with_trace ? s.trace : std::string();
  e.answer = s.answer;
  e.format = p.format;
  return e;
}

std::size_t attach_solver_traces(std::vector<Example>& examples) {
  std::size_t bytes = 0;
  for (auto& e : examples) {
    Solution s = solve(e.question);
    e.trace = std::move(s.trace);
    e.answer = std::move(s.answer);
    bytes += e.trace.size();
  }
  return bytes;
}

std::string trim(std::string_view s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  std::size_t b = 0, e = s.size();
  while (b < e && ws(s[b])) ++b;
  while (e > b && ws(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

bool check_answer(const Example& example, std::string_view predicted_text) {
  const std::string want = trim(example.answer);
  return !want.empty() && trim(predicted_text) == want;
}

// ---------------------------------------------------------------------------------------------
namespace {
// The lines of a trace, without their '\n' (a final '\n' adds no empty line).
std::vector<std::string> trace_lines(std::string_view trace) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < trace.size()) {
    std::size_t nl = trace.find('\n', start);
    if (nl == std::string_view::npos) nl = trace.size();
    lines.emplace_back(trace.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}
}  // namespace

const std::vector<std::string>& trace_error_kinds() {
  static const std::vector<std::string> k = {"restatement", "operands", "fact",   "write_carry",
                                             "shift",       "result",   "length", "answer",
                                             "none",        "not_a_task"};
  return k;
}

TraceError first_trace_error(std::string_view question, std::string_view trace,
                             std::string_view answer) {
  TraceError e;
  const auto p = parse_question(question);
  if (!p) {
    e.kind = "not_a_task";
    return e;
  }
  const Solution want = solve(*p);
  const auto got_lines = trace_lines(trace), want_lines = trace_lines(want.trace);
  const std::size_t common = std::min(got_lines.size(), want_lines.size());
  for (std::size_t i = 0; i < common; ++i) {
    const std::string &g = got_lines[i], &w = want_lines[i];
    if (g == w) continue;
    e.line = static_cast<long>(i + 1);
    e.got = g;
    e.want = w;
    const std::size_t eq = w.find('=');
    if (w.rfind("result ", 0) == 0) {
      e.kind = "result";
    } else if (w.rfind("write carry", 0) == 0) {
      e.kind = "write_carry";
    } else if (w.find(" shift ") != std::string::npos) {
      e.kind = "shift";
    } else if (eq == std::string::npos) {
      e.kind = "restatement";
    } else if (g.compare(0, eq + 1, w, 0, eq + 1) != 0) {
      e.kind = "operands";
    } else {
      // Same left side: compare the value up to the next space.
      const std::size_t ws = w.find(' ', eq), gs = g.find(' ', eq);
      e.kind = w.substr(eq, ws - eq) != g.substr(eq, gs - eq) ? "fact" : "write_carry";
    }
    return e;
  }
  if (got_lines.size() != want_lines.size()) {
    e.kind = "length";
    e.line = static_cast<long>(common + 1);
    e.got = common < got_lines.size() ? got_lines[common] : "";
    e.want = common < want_lines.size() ? want_lines[common] : "";
    return e;
  }
  e.kind = trim(answer) == want.answer ? "none" : "answer";
  return e;
}

// The trace checker. It re-derives every column from the block's header operands, written
// independently of the solver above, then compares with the solver's trace.
namespace {
enum class LineKind { hdr_addsub, hdr_add, hdr_sub, hdr_mul, col_add, col_sub, col_mul,
                      write_carry, shift, result };
struct LinePattern {
  LineKind kind;
  const char* pattern;
};
const std::vector<LinePattern>& line_patterns() {
  static const std::vector<LinePattern> p = {
      {LineKind::hdr_addsub, "{n} + {n} - {n}"},
      {LineKind::hdr_add, "{n} + {n}"},
      {LineKind::hdr_sub, "{n} - {n}"},
      {LineKind::hdr_mul, "{n} * {n}"},
      {LineKind::col_add, "{d}+{d}+{d}={n} write {d} carry {d}"},
      {LineKind::col_sub, "{n}-{d}-{d}={d} write {d} borrow {d}"},
      {LineKind::col_mul, "{d}*{d}+{d}={n} write {d} carry {d}"},
      {LineKind::write_carry, "write carry {d}"},
      {LineKind::shift, "{n} shift 1 = {n}"},
      {LineKind::result, "result {n}"},
  };
  return p;
}
int small(const std::string& s) { return s.size() > 3 ? 100000 : std::stoi(s); }

struct Block {
  LineKind kind;                 // hdr_add, hdr_sub or hdr_mul (one-digit multiplier)
  std::string x, y;
  std::size_t col = 0, ncols = 0;
  int carry = 0;                 // carry or borrow into the next column
  std::string written;           // least significant first
  bool carry_written = false;
};

using ParsedLine = std::pair<LineKind, std::vector<std::string>>;

// Keeps the first failure only: its line and message go into the TraceCheck.
struct FirstFailure {
  TraceCheck& tc;
  bool failed = false;
  void operator()(long line, const std::string& msg) {
    if (!failed) {
      failed = true;
      tc.first_bad_line = line;
      tc.message = msg;
    }
  }
};

// Grammar: every line matches one of line_patterns(), the last one is "result N". Sets
// tc.well_formed and tc.final_result; returns the parsed lines (up to the first bad one).
std::vector<ParsedLine> parse_trace(const std::vector<std::string>& lines, TraceCheck& tc,
                                    FirstFailure& fail) {
  std::vector<ParsedLine> parsed;
  tc.well_formed = !lines.empty();
  if (lines.empty()) fail(1, "empty trace");
  for (std::size_t i = 0; i < lines.size() && tc.well_formed; ++i) {
    bool matched = false;
    for (const auto& lp : line_patterns()) {
      if (auto caps = match_pattern(lp.pattern, lines[i])) {
        parsed.emplace_back(lp.kind, std::move(*caps));
        matched = true;
        break;
      }
    }
    if (!matched) {
      tc.well_formed = false;
      fail(static_cast<long>(i + 1), "line does not follow the trace grammar: '" + lines[i] + "'");
    }
  }
  if (tc.well_formed && parsed.back().first != LineKind::result) {
    tc.well_formed = false;
    fail(static_cast<long>(lines.size()), "the last line is not 'result N'");
  }
  if (tc.well_formed) tc.final_result = parsed.back().second[0];
  return parsed;
}

// Each check below takes one parsed line with the open block (if any) and returns why the line
// is wrong, or "" when it is right (after advancing the block).

// "a + b", "a - b", "a * m": opens a block ("a * mm", mul2's restatement, opens none).
std::string check_header(std::optional<Block>& blk, LineKind kind,
                         const std::vector<std::string>& c) {
  if (blk && blk->col > 0) return "header inside an unfinished block";
  blk.reset();
  if (kind == LineKind::hdr_mul && c[1].size() != 1) return "";  // mul2 restatement
  if (kind == LineKind::hdr_sub && compare_decimal(c[0], c[1]) < 0)
    return "subtraction with a negative result";
  Block b;
  b.kind = kind;
  b.x = c[0];
  b.y = c[1];
  b.ncols = kind == LineKind::hdr_mul ? b.x.size() : std::max(b.x.size(), b.y.size());
  blk = b;
  return "";
}

// "a+b+c=s write w carry k" or "a*m+c=s write w carry k".
std::string check_add_mul_column(std::optional<Block>& blk, LineKind kind,
                                 const std::vector<std::string>& c) {
  const LineKind want = kind == LineKind::col_add ? LineKind::hdr_add : LineKind::hdr_mul;
  if (!blk || blk->kind != want) return "column line outside its kind of block";
  if (blk->col >= blk->ncols) return "more columns than the operands have";
  int a = c[0][0] - '0', m = c[1][0] - '0', cin = c[2][0] - '0', s = small(c[3]);
  int w = c[4][0] - '0', cout = c[5][0] - '0';
  int ea = digit_at(blk->x, blk->col);
  int em = kind == LineKind::col_add ? digit_at(blk->y, blk->col) : blk->y[0] - '0';
  int es = kind == LineKind::col_add ? a + m + cin : a * m + cin;
  if (a != ea || m != em) return "column digits are not the operands' digits";
  if (cin != blk->carry) return "incoming carry is not the previous column's";
  if (s != es) return "wrong column value";
  if (w != s % 10 || cout != s / 10) return "wrong written digit or carry";
  blk->written.push_back(static_cast<char>('0' + w));
  blk->carry = cout;
  ++blk->col;
  return "";
}

// "x-b-k=v write v borrow n".
std::string check_sub_column(std::optional<Block>& blk, const std::vector<std::string>& c) {
  if (!blk || blk->kind != LineKind::hdr_sub) return "column line outside its kind of block";
  if (blk->col >= blk->ncols) return "more columns than the operands have";
  int x = small(c[0]), b = c[1][0] - '0', bin = c[2][0] - '0', v = c[3][0] - '0';
  int w = c[4][0] - '0', bout = c[5][0] - '0';
  int da = digit_at(blk->x, blk->col), db = digit_at(blk->y, blk->col);
  int need = da < db + blk->carry ? 1 : 0;
  if (b != db) return "column digits are not the operands' digits";
  if (bin != blk->carry) return "incoming borrow is not the previous column's";
  if (bout != need || x != da + 10 * need) return "wrong borrow";
  if (v != x - b - bin || w != v) return "wrong column value";
  blk->written.push_back(static_cast<char>('0' + w));
  blk->carry = bout;
  ++blk->col;
  return "";
}

// "write carry k" after the last column of an addition or multiplication.
std::string check_write_carry(std::optional<Block>& blk, const std::vector<std::string>& c) {
  if (!blk || blk->kind == LineKind::hdr_sub || blk->col != blk->ncols || blk->carry_written)
    return "'write carry' out of place";
  if (c[0][0] - '0' != blk->carry || blk->carry == 0)
    return "written carry is not the last column's carry";
  blk->written.push_back(c[0][0]);
  blk->carry_written = true;
  return "";
}

// "result N": closes the block; N must be its written digits.
std::string check_result(std::optional<Block>& blk, const std::vector<std::string>& c) {
  if (!blk) return "'result' without a block";
  std::string why;
  if (blk->col != blk->ncols) why = "'result' before the last column";
  else if (blk->carry != 0 && !blk->carry_written) why = "final carry not written";
  else if (c[0] != from_written(blk->written)) why = "result is not the written digits";
  blk.reset();
  return why;
}

std::string check_line(std::optional<Block>& blk, const ParsedLine& line) {
  const auto& [kind, c] = line;
  switch (kind) {
    case LineKind::hdr_addsub:
      return blk ? "header inside an unfinished block" : "";
    case LineKind::hdr_add:
    case LineKind::hdr_sub:
    case LineKind::hdr_mul:
      return check_header(blk, kind, c);
    case LineKind::col_add:
    case LineKind::col_mul:
      return check_add_mul_column(blk, kind, c);
    case LineKind::col_sub:
      return check_sub_column(blk, c);
    case LineKind::write_carry:
      return check_write_carry(blk, c);
    case LineKind::shift:
      if (blk) return "shift inside an unfinished block";
      return c[1] != shifted(c[0]) ? "wrong shift" : "";
    case LineKind::result:
      return check_result(blk, c);
  }
  return "";
}

// Arithmetic, block by block, up to the first wrong line. Sets tc.arithmetic_ok.
void check_arithmetic(const std::vector<std::string>& lines, const std::vector<ParsedLine>& parsed,
                      TraceCheck& tc, FirstFailure& fail) {
  tc.arithmetic_ok = true;
  std::optional<Block> blk;
  for (std::size_t i = 0; i < parsed.size() && tc.arithmetic_ok; ++i) {
    const std::string why = check_line(blk, parsed[i]);
    if (!why.empty()) {
      tc.arithmetic_ok = false;
      fail(static_cast<long>(i + 1), why + ": '" + lines[i] + "'");
    }
  }
}

// Against the solver: sets tc.matches_solver (false when the question is not of the family).
void compare_with_solver(std::string_view question, std::string_view trace, TraceCheck& tc,
                         FirstFailure& fail) {
  auto p = parse_question(question);
  if (!p) {
    fail(0, "the question is not of the arithmetic task family");
    return;
  }
  const std::string want = solve(*p).trace;
  tc.matches_solver = (trace == want);
  if (!tc.matches_solver && !fail.failed) {
    long ln = 1;  // first line where the two texts differ
    for (std::size_t i = 0; i < trace.size() && i < want.size() && trace[i] == want[i]; ++i)
      if (trace[i] == '\n') ++ln;
    fail(ln, "differs from the solver's trace");
  }
}
}  // namespace

TraceCheck check_trace(std::string_view question, std::string_view trace) {
  TraceCheck tc;
  FirstFailure fail{tc};
  const std::vector<std::string> lines = trace_lines(trace);
  const std::vector<ParsedLine> parsed = parse_trace(lines, tc, fail);
  if (tc.well_formed) check_arithmetic(lines, parsed, tc, fail);
  compare_with_solver(question, trace, tc, fail);
  return tc;
}

}  // namespace audit::datasets
