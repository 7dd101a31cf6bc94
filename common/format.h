// The one set of number, money, time and size formatters of the project. Deterministic (no
// locale, no clock): the report, `audit ledger`, `estimate`, `replay` and the progress lines all
// print through these, so one figure reads the same everywhere.
#pragma once

#include <cstddef>
#include <string>

namespace audit::text {

std::string fmt(const char* printf_format, double v);  // fmt("%.2f", 1.234) -> "1.23"
std::string num(double v, int sig = 3);  // sig significant digits, trailing zeros cut: "0.042", "1.2e+10"
std::string with_commas(double v);       // 12345.6 -> "12,346"
// Plain decimals with `sig` significant digits and never an exponent: 0.0000123 -> "0.000012"
// (sig 2), 1234.5 -> "1235"; beyond 15 decimals "0.000000000000001", 1e15 and above with commas.
std::string decimal(double v, int sig = 3);
// Money, never in exponent notation (axes, labels, tables): "$0", "$0.000012", "$0.0042",
// "$1.23", "$50", "$12,345", "$3.5M", "$1.2B", "$4.5T", "$1,234T"; negative with a leading "-".
std::string money(double usd);
std::string percent(double fraction, int decimals = 1);  // 0.921 -> "92.1%"
std::string points(double fraction_delta);               // 0.123 -> "+12.3 pts"
std::string share(double fraction);  // a part of a whole: "42%", "3.1%", "0.0014%" (no exponent)
std::string utc(double unix_s);      // "2026-11-29 20:03:12 UTC"; "—" when unset (<= 0)
std::string duration(double s);      // "42.1 s", "12.5 min", "3.25 h"; "—" when negative
std::string bytes(double b);         // "1.5 GiB"; "—" when unset (<= 0)
std::string clock(double s);         // progress and ETA: "0:45", "12:03", "1:02:03"
std::string rate(double per_s);      // "950", "12.3k", "4.1M"
// Levenshtein distance (insertions, deletions, substitutions; bytes): the "did you mean" of
// unknown verbs and recipe keys.
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace audit::text
