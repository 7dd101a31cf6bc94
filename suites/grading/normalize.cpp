// Normalisation and equivalence of math answers. The steps follow the MATH dataset's
// _strip_string (hendrycks/math) and Minerva's normalize_final_answer, written here as plain
// scanners; the numeric comparison is exact (rationals), where the MATH references use sympy.
// The rules are listed in docs/datasets.md ("Grading").
#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <vector>

#include "suites/grading/grading.h"
#include "suites/grading/text.h"  // trim, matching_brace, command_at

namespace audit::suites {
namespace {
using namespace text;
constexpr size_t npos = std::string_view::npos;

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t p = s.find(from); p != npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
}

// Removes every occurrence of the command `cmd` (not followed by a letter).
void remove_command(std::string& s, std::string_view cmd) {
  for (size_t p = s.find(cmd); p != npos; p = s.find(cmd, p))
    if (command_at(s, p, cmd)) s.erase(p, cmd.size());
    else ++p;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// Strips what wraps the whole answer, repeatedly: $..$, $$..$$, \(..\), \[..\], \boxed{..},
// \fbox{..}, and one trailing period.
std::string strip_wrappers(std::string s) {
  for (bool changed = true; changed;) {
    changed = false;
    s = std::string(trim(s));
    auto unwrap = [&](std::string_view open, std::string_view close) {
      if (s.size() >= open.size() + close.size() && starts_with(s, open) && ends_with(s, close)) {
        s = s.substr(open.size(), s.size() - open.size() - close.size());
        return changed = true;
      }
      return false;
    };
    if (unwrap("$$", "$$") || unwrap("$", "$") || unwrap("\\(", "\\)") || unwrap("\\[", "\\]"))
      continue;
    for (std::string_view cmd : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
      if (!command_at(s, 0, cmd)) continue;
      size_t i = cmd.size();
      while (i < s.size() && s[i] == ' ') ++i;
      if (i < s.size() && s[i] == '{' && matching_brace(s, i) == s.size() - 1) {
        s = s.substr(i + 1, s.size() - i - 2);
        changed = true;
      }
    }
    if (!changed && s.size() > 1 && s.back() == '.' && s[s.size() - 2] != '.') {
      s.pop_back();
      changed = true;
    }
  }
  return s;
}

// Spacing commands (\! \, \; \: "\ " \quad \qquad ~) removed; a "\\" line break becomes a space.
std::string remove_spacing(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '~') continue;
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[i + 1];
    if (c == '!' || c == ',' || c == ';' || c == ':' || c == ' ') {
      ++i;
    } else if (c == '\\') {
      out += ' ';
      ++i;
    } else if (command_at(s, i, "\\quad") || command_at(s, i, "\\qquad")) {
      out += ' ';
      i += command_at(s, i, "\\qquad") ? 5 : 4;
    } else {
      out += s.substr(i, 2);  // keeps \{ \} \% and the first letter of a command
      ++i;
    }
  }
  return out;
}

constexpr std::string_view kTextCommands[] = {"\\text",   "\\textrm", "\\textnormal",
                                              "\\mbox",   "\\mathrm", "\\textit",
                                              "\\textup", "\\textsf"};

// Whether s is nothing but units: \text-like groups joined by '/', \cdot and powers ^2, ^3
// (what follows "5\text{ m}" in "5\text{ m}/\text{s}^2"), or empty.
bool only_units(std::string_view s) {
  for (s = trim(s); !s.empty(); s = trim(s)) {
    bool skipped = false;
    for (std::string_view joint : {"/", "\\cdot", "^2", "^3", "^{2}", "^{3}", "."})
      if (starts_with(s, joint)) {
        s.remove_prefix(joint.size());
        skipped = true;
        break;
      }
    for (std::string_view c : kTextCommands) {
      if (skipped || !command_at(s, 0, c)) continue;
      size_t open = c.size();
      while (open < s.size() && s[open] == ' ') ++open;
      const size_t close = open < s.size() && s[open] == '{' ? matching_brace(s, open) : npos;
      if (close == npos) return false;
      s.remove_prefix(close + 1);
      skipped = true;
    }
    if (!skipped) return false;
  }
  return true;
}

// \text-like groups: the whole answer "\text{(B)}" becomes its content; a group after something
// else and followed by nothing but units is a unit and is dropped with them ("5\text{ cm}^2" -> 5,
// "5\text{ m}/\text{s}" -> 5); any other group becomes its content, "and" a comma
// ("1\text{ and }2" -> "1,2").
std::string resolve_text_groups(std::string s) {
  for (size_t from = 0;;) {
    size_t pos = npos, name = 0;
    for (std::string_view c : kTextCommands)
      for (size_t p = s.find(c, from); p != npos && p < pos; p = s.find(c, p + 1))
        if (command_at(s, p, c)) {
          pos = p, name = c.size();
          break;
        }
    if (pos == npos) return s;
    size_t open = pos + name;
    while (open < s.size() && s[open] == ' ') ++open;
    const size_t close = open < s.size() && s[open] == '{' ? matching_brace(s, open) : npos;
    if (close == npos) {
      from = pos + 1;
      continue;
    }
    const std::string content = s.substr(open + 1, close - open - 1);
    const std::string_view before = trim(std::string_view(s).substr(0, pos));
    if (!before.empty() && only_units(std::string_view(s).substr(close + 1))) {
      s = std::string(before);  // a unit
      continue;
    }
    const std::string_view inner = trim(content);
    s.replace(pos, close + 1 - pos, inner == "and" || inner == ",and" ? "," : content);
    from = pos;
  }
}

// \textbf{x}, \mathbf{x}, \boldsymbol{x} and \displaystyle dropped, keeping x.
std::string unwrap_emphasis(std::string s) {
  remove_command(s, "\\displaystyle");
  for (std::string_view c : {"\\textbf", "\\mathbf", "\\boldsymbol"})
    for (size_t p = s.find(c); p != npos; p = s.find(c, p)) {
      const size_t open = p + c.size();
      const size_t close = open < s.size() && s[open] == '{' ? matching_brace(s, open) : npos;
      if (!command_at(s, p, c) || close == npos) {
        ++p;
        continue;
      }
      s = s.substr(0, p) + s.substr(open + 1, close - open - 1) + s.substr(close + 1);
    }
  return s;
}

// Unit words dropped from the end of an answer after a number ("5 cm", "12 square units").
std::string drop_unit_words(std::string s) {
  static constexpr std::string_view units[] = {
      "square", "sq",     "units",   "unit",   "cm",      "mm",    "km",      "meters",
      "meter",  "inches", "inch",    "feet",   "foot",    "ft",    "miles",   "mile",
      "mph",    "hours",  "hour",    "minutes", "minute", "seconds", "days",  "day",
      "weeks",  "years",  "dollars", "dollar", "cents",   "cent",  "degrees", "degree",
      "pounds", "pound",  "kg",      "gm",     "grams",   "percent", "ways",  "points",
      "digits", "integers", "students", "edges", "meals", "people", "times"};
  for (;;) {
    const std::string_view t = trim(s);
    size_t b = t.size();
    while (b > 0 && is_alpha(t[b - 1])) --b;
    const std::string_view word = t.substr(b);
    const std::string_view rest = trim(t.substr(0, b));
    bool unit = false;
    for (std::string_view u : units) unit = unit || word == u;
    if (!unit || rest.empty() || b == 0 || t[b - 1] == '\\') return s;
    if (!is_digit(rest.back()) && rest.back() != '}' && !is_alpha(rest.back())) return s;
    if (is_alpha(rest.back())) {  // only a chain of unit words after a number ("square units")
      size_t c = rest.size();
      while (c > 0 && is_alpha(rest[c - 1])) --c;
      bool also_unit = false;
      for (std::string_view u : units) also_unit = also_unit || rest.substr(c) == u;
      if (!also_unit) return s;
    }
    s = std::string(rest);
  }
}

// One argument of a command at i (spaces skipped): a {group}'s content, a \command, or one
// character; sets i past it. nullopt at the end of the text or on an unclosed group.
std::optional<std::string> read_arg(std::string_view s, size_t& i) {
  while (i < s.size() && s[i] == ' ') ++i;
  if (i >= s.size() || s[i] == '}') return std::nullopt;
  if (s[i] == '{') {
    const size_t close = matching_brace(s, i);
    if (close == npos) return std::nullopt;
    std::string arg(s.substr(i + 1, close - i - 1));
    i = close + 1;
    return arg;
  }
  const size_t b = i;
  if (s[i] == '\\' && i + 1 < s.size()) {
    ++i;
    if (is_alpha(s[i]))
      while (i < s.size() && is_alpha(s[i])) ++i;
    else
      ++i;
  } else {
    ++i;
  }
  return std::string(s.substr(b, i - b));
}

// \frac, \binom and \sqrt with their arguments braced, as TeX reads them: \frac12 ->
// \frac{1}{2}, \frac1{x} -> \frac{1}{x}, \sqrt2 -> \sqrt{2}, \sqrt[3]8 -> \sqrt[3]{8}.
std::string brace_arguments(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const bool two = command_at(s, i, "\\frac") || command_at(s, i, "\\binom");
    const bool sqrt = command_at(s, i, "\\sqrt");
    if (!two && !sqrt) {
      out += s[i++];
      continue;
    }
    const std::string name(s.substr(i, sqrt ? 5 : command_at(s, i, "\\frac") ? 5 : 6));
    size_t j = i + name.size();
    std::string index;
    if (sqrt) {
      size_t k = j;
      while (k < s.size() && s[k] == ' ') ++k;
      if (k < s.size() && s[k] == '[') {
        const size_t e = s.find(']', k);
        if (e != npos) index = "[" + brace_arguments(s.substr(k + 1, e - k - 1)) + "]", j = e + 1;
      }
    }
    auto a = read_arg(s, j);
    auto b = two && a ? read_arg(s, j) : std::optional<std::string>("");
    if (!a || !b) {  // leave a malformed command as written
      out += s[i++];
      continue;
    }
    out += name + index + "{" + brace_arguments(*a) + "}";
    if (two) out += "{" + brace_arguments(*b) + "}";
    i = j;
  }
  return out;
}

// Whitespace removed, except one space ending a command name before a letter ("\pi r").
std::string remove_whitespace(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!is_space(s[i])) {
      out += s[i];
      continue;
    }
    size_t e = i;
    while (e < s.size() && is_space(s[e])) ++e;
    size_t b = out.size();
    while (b > 0 && is_alpha(out[b - 1])) --b;
    if (b > 0 && b < out.size() && out[b - 1] == '\\' && e < s.size() && is_alpha(s[e])) out += ' ';
    i = e - 1;
  }
  return out;
}

// A leading "x=" (one '=' in all; left side a letter, a letter with a subscript, or a Greek
// letter command) dropped: "x=5" -> "5", "\theta=30" -> "30".
std::string drop_assignment(std::string s) {
  const size_t eq = s.find('=');
  if (eq == npos || eq == 0 || eq + 1 >= s.size() || s.find('=', eq + 1) != npos) return s;
  const std::string_view lhs = std::string_view(s).substr(0, eq);
  bool variable = false;
  if (lhs.size() == 1) variable = is_alpha(lhs[0]);
  else if (lhs[0] == '\\') {
    variable = lhs.size() > 2;
    for (size_t i = 1; i < lhs.size(); ++i) variable = variable && is_alpha(lhs[i]);
  } else if (lhs.size() >= 3 && is_alpha(lhs[0]) && lhs[1] == '_') {
    const std::string_view sub = lhs.substr(2);
    variable = (sub.size() == 1 && is_alnum(sub[0])) ||
               (sub.front() == '{' && matching_brace(sub, 0) == sub.size() - 1);
  }
  const char c = s[eq - 1];
  if (c == '<' || c == '>' || c == '!') variable = false;
  return variable ? s.substr(eq + 1) : s;
}

// A whole number written with thousands separators ("-1,234,567.5") without its commas.
std::string drop_thousands_commas(std::string s) {
  size_t i = s[0] == '-' ? 1 : 0, digits = 0;
  while (i < s.size() && is_digit(s[i])) ++i, ++digits;
  if (digits == 0 || digits > 3 || i >= s.size() || s[i] != ',') return s;
  while (i + 3 < s.size() && s[i] == ',' && is_digit(s[i + 1]) && is_digit(s[i + 2]) &&
         is_digit(s[i + 3]))
    i += 4;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (i >= s.size() || !is_digit(s[i])) return s;
    while (i < s.size() && is_digit(s[i])) ++i;
  }
  if (i != s.size()) return s;
  std::string out;
  for (char c : s)
    if (c != ',') out += c;
  return out;
}

// Every decimal number written canonically: a leading 0 (".5" -> "0.5") and no trailing zeros
// after the point ("2.50" -> "2.5", "3.0" -> "3").
std::string canonical_decimals(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const bool lead_dot = s[i] == '.' && i + 1 < s.size() && is_digit(s[i + 1]) &&
                          (i == 0 || !is_alnum(s[i - 1]));
    if (!is_digit(s[i]) && !lead_dot) {
      out += s[i++];
      continue;
    }
    if (is_digit(s[i]) && i > 0 && (is_alpha(s[i - 1]) || s[i - 1] == '.')) {
      while (i < s.size() && is_digit(s[i])) out += s[i++];  // part of a name ("x2")
      continue;
    }
    size_t e = i;
    while (e < s.size() && is_digit(s[e])) ++e;
    std::string whole(s.substr(i, e - i));
    if (whole.empty()) whole = "0";
    std::string frac;
    if (e + 1 < s.size() && s[e] == '.' && is_digit(s[e + 1])) {
      size_t f = e + 1;
      while (f < s.size() && is_digit(s[f])) ++f;
      frac = std::string(s.substr(e + 1, f - e - 1));
      e = f;
      if (e < s.size() && s[e] == '.') {  // "1.2.3": not a number, copied as written
        out += s.substr(i, e - i);
        i = e;
        continue;
      }
      while (!frac.empty() && frac.back() == '0') frac.pop_back();
    }
    out += whole;
    if (!frac.empty()) out += "." + frac;
    i = e;
  }
  return out;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_digit(c)) return false;
  return true;
}

// A whole integer a/b written \frac{a}{b}, and \frac{-a}{b} written -\frac{a}{b}.
std::string canonical_fraction(std::string s) {
  const bool neg = !s.empty() && s[0] == '-';
  const std::string_view body = std::string_view(s).substr(neg ? 1 : 0);
  const size_t slash = body.find('/');
  if (slash != npos && all_digits(body.substr(0, slash)) && all_digits(body.substr(slash + 1)))
    return std::string(neg ? "-" : "") + "\\frac{" + std::string(body.substr(0, slash)) + "}{" +
           std::string(body.substr(slash + 1)) + "}";
  if (starts_with(s, "\\frac{-")) {
    const size_t close = matching_brace(s, 5);
    if (close != npos && close + 1 < s.size() && s[close + 1] == '{' &&
        matching_brace(s, close + 1) == s.size() - 1)
      return "-\\frac{" + s.substr(7);
  }
  return s;
}

// ---- exact rational values ----

using i128 = __int128;
struct Rational {
  i128 num = 0, den = 1;  // den > 0, reduced
};
constexpr i128 kLimit = i128(1) << 62;  // keeps every cross product inside 128 bits

i128 gcd128(i128 a, i128 b) {
  if (a < 0) a = -a;
  while (b != 0) {
    const i128 t = a % b;
    a = b;
    b = t < 0 ? -t : t;
  }
  return a;
}

std::optional<Rational> make_rational(i128 num, i128 den) {
  if (den == 0) return std::nullopt;
  if (den < 0) num = -num, den = -den;
  const i128 g = gcd128(num, den);
  if (g > 1) num /= g, den /= g;
  if (num >= kLimit || -num >= kLimit || den >= kLimit) return std::nullopt;
  return Rational{num, den};
}

// "12", "-0.5", ".5", "3.": a decimal of at most 18 digits, exactly.
std::optional<Rational> parse_decimal(std::string_view s) {
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) neg = s[0] == '-', s.remove_prefix(1);
  const size_t dot = s.find('.');
  const std::string_view whole = s.substr(0, dot);
  const std::string_view frac = dot == npos ? std::string_view() : s.substr(dot + 1);
  if ((whole.empty() && frac.empty()) || (!whole.empty() && !all_digits(whole)) ||
      (!frac.empty() && !all_digits(frac)) || whole.size() + frac.size() > 18)
    return std::nullopt;
  i128 num = 0, den = 1;
  for (char c : whole) num = num * 10 + (c - '0');
  for (char c : frac) num = num * 10 + (c - '0'), den *= 10;
  return make_rational(neg ? -num : num, den);
}

std::optional<Rational> divide(const std::optional<Rational>& a, const std::optional<Rational>& b) {
  if (!a || !b || b->num == 0) return std::nullopt;
  return make_rational(a->num * b->den, a->den * b->num);
}

// The exact value of a normalised numeric answer: a decimal, a/b of decimals, or \frac{a}{b}
// of such values, with an optional sign; nullopt for anything else.
std::optional<Rational> parse_rational(std::string_view s) {
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) neg = s[0] == '-', s.remove_prefix(1);
  std::optional<Rational> r;
  if (starts_with(s, "\\frac{")) {
    const size_t a_close = matching_brace(s, 5);
    if (a_close == npos || a_close + 1 >= s.size() || s[a_close + 1] != '{' ||
        matching_brace(s, a_close + 1) != s.size() - 1)
      return std::nullopt;
    r = divide(parse_rational(s.substr(6, a_close - 6)),
               parse_rational(s.substr(a_close + 2, s.size() - a_close - 3)));
  } else if (const size_t slash = s.find('/'); slash != npos) {
    r = divide(parse_decimal(s.substr(0, slash)), parse_decimal(s.substr(slash + 1)));
  } else {
    r = parse_decimal(s);
  }
  if (r && neg) r->num = -r->num;
  return r;
}

// ---- tuples and intervals ----

struct Tuple {
  char open = 0, close = 0;  // 0 for a bare list "1,2"
  std::vector<std::string> items;
};

// The top-level comma-separated items of s, with its enclosing brackets when one pair of ( or [
// and ) or ] encloses the whole text. Fewer than two items is not a tuple.
std::optional<Tuple> split_tuple(std::string_view s) {
  Tuple t;
  if (s.size() >= 2 && (s.front() == '(' || s.front() == '[') &&
      (s.back() == ')' || s.back() == ']')) {
    int depth = 0;
    bool encloses = true;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '(' || s[i] == '[' || s[i] == '{') ++depth;
      if (s[i] == ')' || s[i] == ']' || s[i] == '}') --depth;
      if (depth == 0 && i + 1 < s.size()) encloses = false;
    }
    if (encloses) {
      t.open = s.front(), t.close = s.back();
      s = s.substr(1, s.size() - 2);
    }
  }
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i < s.size() && (s[i] == '(' || s[i] == '[' || s[i] == '{')) ++depth;
    if (i < s.size() && (s[i] == ')' || s[i] == ']' || s[i] == '}')) --depth;
    if (i == s.size() || (s[i] == ',' && depth == 0)) {
      t.items.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  if (t.items.size() < 2) return std::nullopt;
  return t;
}

bool equal_normalised(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return false;
  if (a == b) return true;
  const auto ra = parse_rational(a), rb = parse_rational(b);
  if (ra && rb) return ra->num == rb->num && ra->den == rb->den;
  if (ra || rb) return false;
  const auto ta = split_tuple(a), tb = split_tuple(b);
  if (!ta || !tb || ta->open != tb->open || ta->close != tb->close ||
      ta->items.size() != tb->items.size())
    return false;
  for (size_t i = 0; i < ta->items.size(); ++i)
    if (!equal_normalised(ta->items[i], tb->items[i])) return false;
  return true;
}

}  // namespace

std::string normalize_math(std::string_view answer) {
  std::string s(answer);
  replace_all(s, "\xe2\x88\x92", "-");         // U+2212 minus sign
  replace_all(s, "\xc2\xa0", " ");             // no-break space
  replace_all(s, "\xe2\x88\x9e", "\\infty ");  // infinity
  replace_all(s, "\xcf\x80", "\\pi ");         // pi
  replace_all(s, "\xc2\xb0", "");              // degree sign
  s = strip_wrappers(s);
  replace_all(s, "\\$", "");
  replace_all(s, "$", "");
  s = remove_spacing(s);
  remove_command(s, "\\left");
  remove_command(s, "\\right");
  replace_all(s, "\\dfrac", "\\frac");
  replace_all(s, "\\tfrac", "\\frac");
  replace_all(s, "\\cfrac", "\\frac");
  for (std::string_view degree : {"^{\\circ}", "^\\circ", "\\degree"}) replace_all(s, degree, "");
  replace_all(s, "\\%", "");
  replace_all(s, "%", "");
  s = unwrap_emphasis(resolve_text_groups(s));
  s = drop_unit_words(s);
  s = brace_arguments(s);
  s = strip_wrappers(remove_whitespace(s));
  replace_all(s, "{,}", ",");  // "1{,}000"
  s = drop_assignment(s);
  if (s.size() > 1 && s[0] == '+') s.erase(0, 1);
  replace_all(s, "+\\infty", "\\infty");
  if (!s.empty()) s = drop_thousands_commas(s);
  s = canonical_fraction(canonical_decimals(s));
  if (s.size() == 3 && s[0] == '(' && is_upper(s[1]) && s[2] == ')') s = s.substr(1, 1);
  return s;
}

bool math_equal(std::string_view predicted, std::string_view reference) {
  return equal_normalised(normalize_math(predicted), normalize_math(reference));
}

}  // namespace audit::suites
