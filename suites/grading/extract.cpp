// Answer extraction: the final answer of a math completion and the chosen letter of a
// multiple-choice completion. Hand-written scanners rather than std::regex: completions of
// reasoning models run to tens of thousands of characters, where libstdc++'s recursive regex
// matcher is slow and can exhaust the stack.
#include <algorithm>
#include <optional>
#include <vector>

#include "suites/grading/grading.h"
#include "suites/grading/text.h"  // trim, lower, matching_brace, command_at

namespace audit::suites {
namespace {
using namespace text;
constexpr size_t npos = std::string_view::npos;

// Drops trailing periods and surrounding markdown bold/italic stars.
std::string_view strip_decorations(std::string_view s) {
  s = trim(s);
  for (bool changed = true; changed && !s.empty();) {
    changed = false;
    if (s.back() == '.' || s.back() == '*') s.remove_suffix(1), changed = true;
    else if (s.front() == '*') s.remove_prefix(1), changed = true;
    s = trim(s);
  }
  return s;
}

// The answer inside a \boxed (or \fbox) command whose name ends at `after_name`: the balanced
// {...} group, or for "\boxed 5" the text up to a '$' or the line's end; nullopt when the group
// never closes (a truncated completion) or is empty.
std::optional<std::string> boxed_at(std::string_view s, size_t after_name) {
  size_t i = after_name;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  if (i < s.size() && s[i] == '{') {
    const size_t close = matching_brace(s, i);
    if (close == npos) return std::nullopt;
    const auto content = trim(s.substr(i + 1, close - i - 1));
    if (content.empty()) return std::nullopt;
    return std::string(content);
  }
  if (i == after_name) return std::nullopt;  // "\boxed" directly followed by something else
  size_t e = i;
  while (e < s.size() && s[e] != '$' && s[e] != '\n') ++e;
  const auto content = strip_decorations(s.substr(i, e - i));
  if (content.empty()) return std::nullopt;
  return std::string(content);
}

// The content of the last complete \boxed{...} or \fbox{...}; nullopt when there is none.
std::optional<std::string> last_boxed(std::string_view s) {
  std::vector<std::pair<size_t, size_t>> found;  // (position, name length)
  for (std::string_view name : {std::string_view("\\boxed"), std::string_view("\\fbox")})
    for (size_t p = s.find(name); p != npos; p = s.find(name, p + 1))
      if (command_at(s, p, name)) found.emplace_back(p, name.size());
  std::sort(found.begin(), found.end());
  for (auto it = found.rbegin(); it != found.rend(); ++it)
    if (auto content = boxed_at(s, it->first + it->second)) return content;
  return std::nullopt;
}

// The answer written after an "answer is"/"answer:" phrase that ends at i: a $...$ (or \(...\))
// math span if the line has one, else the line up to the end of its sentence.
std::string answer_after(std::string_view s, size_t i) {
  while (i < s.size() && is_space(s[i])) ++i;
  size_t eol = s.find('\n', i);
  if (eol == npos) eol = s.size();
  std::string_view line = s.substr(i, eol - i);
  // Minerva's "... I hope it is correct." tail.
  const size_t hope = lower(line).find("i hope it is correct");
  if (hope != npos) line = line.substr(0, hope);
  // A math span on the line: $...$ / $$...$$ / \(...\) / \[...\].
  for (auto [open, close] : {std::pair<std::string_view, std::string_view>{"$$", "$$"},
                             {"\\(", "\\)"}, {"\\[", "\\]"}, {"$", "$"}}) {
    const size_t a = line.find(open);
    if (a == npos) continue;
    const size_t b = line.find(close, a + open.size());
    if (b == npos) continue;
    const auto span = trim(line.substr(a + open.size(), b - a - open.size()));
    if (!span.empty()) return std::string(span);
  }
  // Plain text: up to the first ". " (a sentence end; "3.5" has no space).
  const size_t stop = line.find(". ");
  if (stop != npos) line = line.substr(0, stop);
  return std::string(strip_decorations(line));
}

// The answer after the last "answer is" / "answer:" phrase (any case), or "".
std::string phrase_answer(std::string_view s) {
  const std::string low = lower(s);
  for (size_t p = low.rfind("answer"); p != npos; p = p == 0 ? npos : low.rfind("answer", p - 1)) {
    size_t i = p + 6;
    if (i < low.size() && is_alpha(low[i])) continue;  // "answers", "answered"
    while (i < low.size() && (low[i] == ' ' || low[i] == '\t' || low[i] == '*')) ++i;
    if (low.compare(i, 2, "is") == 0 && (i + 2 >= low.size() || !is_alpha(low[i + 2]))) {
      i += 2;
      while (i < low.size() && (low[i] == ' ' || low[i] == '\t')) ++i;
      if (i < low.size() && low[i] == ':') ++i;
    } else if (i < low.size() && low[i] == ':') {
      ++i;
    } else {
      continue;
    }
    std::string answer = answer_after(s, i);
    if (!answer.empty()) return answer;
  }
  return "";
}

// With a number starting at i (digit, '.' digit or '-' digit): its end. Thousands groups
// (",ddd" followed by a non-digit), one decimal part and one "/denominator" are included.
size_t number_end(std::string_view s, size_t i) {
  auto digits = [&](size_t j) {
    while (j < s.size() && is_digit(s[j])) ++j;
    return j;
  };
  auto decimal = [&](size_t j) {
    j = digits(j);
    while (j + 3 < s.size() && s[j] == ',' && is_digit(s[j + 1]) && is_digit(s[j + 2]) &&
           is_digit(s[j + 3]) && (j + 4 >= s.size() || !is_digit(s[j + 4])))
      j += 4;
    if (j + 1 < s.size() && s[j] == '.' && is_digit(s[j + 1])) j = digits(j + 1);
    return j;
  };
  if (s[i] == '-') ++i;
  size_t e = s[i] == '.' ? digits(i + 1) : decimal(i);
  if (e + 1 < s.size() && s[e] == '/' && is_digit(s[e + 1])) e = decimal(e + 1);
  return e;
}

// The last number in the text, as written; "" when there is none.
std::string last_number(std::string_view s) {
  std::string_view last;
  for (size_t i = 0; i < s.size();) {
    const char c = s[i], prev = i ? s[i - 1] : ' ';
    const bool next_digit = i + 1 < s.size() && is_digit(s[i + 1]);
    const bool starts = is_digit(c) || (c == '.' && next_digit && !is_digit(prev)) ||
                        (c == '-' && i + 1 < s.size() &&
                         (is_digit(s[i + 1]) ||
                          (s[i + 1] == '.' && i + 2 < s.size() && is_digit(s[i + 2]))) &&
                         !is_alnum(prev) && prev != ')' && prev != '}');
    if (!starts) {
      ++i;
      continue;
    }
    const size_t e = number_end(s, i);
    last = s.substr(i, e - i);
    i = e;
  }
  return std::string(last);
}

// ---- multiple choice ----

// The index of letter c among n choices, or -1.
int letter_index(char c, int n) { return is_upper(c) && c - 'A' < n ? c - 'A' : -1; }

// After an answer phrase ending at i: the index of the letter it names (past fillers such as
// "is", ":", "option", "(", "**", "\boxed{", "\text{"), or -1. The letter must stand alone
// ("B", "B.", "B)"), so "the answer is Bob" names nothing.
int letter_after(std::string_view s, std::string_view low, size_t i, int n) {
  static constexpr std::string_view fillers[] = {
      "is",     "would be", "should be", "will be", "must be",  ":",        "=",
      "option", "choice",   "letter",    "**",      "*",        "(",        "[",
      "$",      "\\boxed{", "\\text{",   "\\textbf{", "\\mathrm{", "\\mathbf{", "{"};
  for (int steps = 0; steps < 16; ++steps) {
    while (i < s.size() && is_space(s[i])) ++i;
    bool moved = false;
    for (std::string_view f : fillers)
      if (low.compare(i, f.size(), f) == 0 &&
          (!is_alpha(f.back()) || i + f.size() >= low.size() || !is_alpha(low[i + f.size()]))) {
        i += f.size();
        moved = true;
        break;
      }
    if (!moved) break;
  }
  if (i < s.size() && is_upper(s[i]) && (i + 1 >= s.size() || !is_alnum(s[i + 1])))
    return letter_index(s[i], n);
  return -1;
}

}  // namespace

std::string extract_math_answer(std::string_view completion) {
  if (auto boxed = last_boxed(completion)) return *boxed;
  if (auto phrase = phrase_answer(completion); !phrase.empty()) return phrase;
  return last_number(completion);
}

int extract_choice(std::string_view s, int n_choices) {
  if (n_choices < 1 || n_choices > 26) return -1;
  const std::string low = lower(s);
  // Explicit answers: the last one naming a valid letter wins.
  size_t best_pos = npos;
  int best = -1;
  auto consider = [&](size_t pos, int index) {
    if (index >= 0 && (best_pos == npos || pos > best_pos)) best_pos = pos, best = index;
  };
  for (std::string_view key : {std::string_view("answer"), std::string_view("correct option"),
                               std::string_view("correct choice")})
    for (size_t p = low.find(key); p != npos; p = low.find(key, p + 1)) {
      const size_t e = p + key.size();
      if (e < low.size() && is_alpha(low[e])) continue;  // "answers"
      consider(p, letter_after(s, low, e, n_choices));
    }
  for (size_t p = s.find("\\boxed"); p != npos; p = s.find("\\boxed", p + 1))
    if (command_at(s, p, "\\boxed")) consider(p, letter_after(s, low, p + 6, n_choices));
  if (best >= 0) return best;

  // Otherwise the last formatted letter: "(B)", "[B]", "**B**", "B)", or a lone final letter.
  for (size_t i = 0; i < s.size(); ++i) {
    const int index = letter_index(s[i], n_choices);
    if (index < 0) continue;
    const char prev = i ? s[i - 1] : ' ', next = i + 1 < s.size() ? s[i + 1] : ' ';
    const bool paren = (prev == '(' && next == ')') || (prev == '[' && next == ']');
    const bool bold = i >= 2 && s.compare(i - 2, 2, "**") == 0 && s.compare(i + 1, 2, "**") == 0;
    const bool closing = next == ')' && !is_alnum(prev);
    if (paren || bold || closing) consider(i, index);
  }
  // A lone letter ending the text, past closing punctuation: "... so the choice is\n\nC."
  size_t j = s.size();
  while (j > 0 && (is_space(s[j - 1]) || std::string_view(".)]*}$").find(s[j - 1]) != npos)) --j;
  if (j > 0 && letter_index(s[j - 1], n_choices) >= 0 && (j == 1 || !is_alnum(s[j - 2])))
    consider(j - 1, letter_index(s[j - 1], n_choices));
  return best;
}

}  // namespace audit::suites
