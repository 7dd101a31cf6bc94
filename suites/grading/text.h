// Small ASCII text helpers shared by the grading files (internal to suites/grading).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace audit::suites::text {

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
inline bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
inline char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

// s without whitespace at both ends.
inline std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// The ASCII lower-case copy of s (same length, so positions carry over).
inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_lower(c);
  return out;
}

// With s[open] == '{': the position of the matching '}', or npos when the text ends first.
// Escaped braces (\{ and \}) do not count.
inline size_t matching_brace(std::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;  // skip the escaped character (\{, \}, \\)
      continue;
    }
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth == 0) return i;
  }
  return std::string_view::npos;
}

// Whether s at pos starts with the command `cmd` (e.g. "\\text") not followed by a letter, so
// that "\\text" does not match "\\textbf".
inline bool command_at(std::string_view s, size_t pos, std::string_view cmd) {
  return s.compare(pos, cmd.size(), cmd) == 0 &&
         (pos + cmd.size() >= s.size() || !is_alpha(s[pos + cmd.size()]));
}

}  // namespace audit::suites::text
