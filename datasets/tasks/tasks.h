// The task family of the s1 miniature: arithmetic questions whose answers are checked exactly,
// with step-by-step thinking traces written by an exact solver (the "teacher" when the recipe
// declares the solver as the distillation source).
//
// Operations (Example::op):
//   add    a + b           column addition with carries
//   sub    a - b (a >= b)  column subtraction with borrows
//   mul1   a * m, m 2..9   one-digit multiplier, column products with carries
//   mul2   a * m, m 10..99 two partial products, a shift, then a column addition
//   addsub a + b - c       composition: an addition block, then a subtraction block
// digits = the length of the longest operand. Surface formats (Example::format):
//   standard  "What is 4821 + 379?"
//   words     "Compute the sum of 4821 and 379." / "Subtract 379 from 4821." /
//             "Compute the product of 4821 and 7." / "Add 4821 and 379, then subtract 1234."
//   equation  "4821 + 379 = ?"
// The trace is the same whatever the format: it starts by restating the problem in standard
// notation, then one line per column, then "result N". Every line ends with '\n'. Example for
// 4821 + 379:
//   4821 + 379
//   1+9+0=10 write 0 carry 1
//   2+7+1=10 write 0 carry 1
//   8+3+1=12 write 2 carry 1
//   4+0+1=5 write 5 carry 0
//   result 5200
// Subtraction columns read "1-9-0" without a borrow and "11-9-0=2 write 2 borrow 1" with one
// (the minuend digit plus the borrowed ten). Arithmetic is on digit strings: no length limit.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/tasks/random.h"

namespace audit::datasets {

struct Example {
  std::string op;        // add | sub | mul1 | mul2 | addsub | user (JSONL data)
  int digits = 0;        // length of the longest operand (0 for user data)
  std::string question;  // the surface text given to the model
  std::string trace;     // thinking trace ("" when none: pretraining data, undistilled pool)
  std::string answer;    // canonical answer: decimal digits, no sign, no leading zeros
  std::string format;    // standard | words | equation | jsonl
};
void to_json(nlohmann::json& j, const Example& e);
void from_json(const nlohmann::json& j, Example& e);

const std::vector<std::string>& all_ops();      // add sub mul1 mul2 addsub
const std::vector<std::string>& all_formats();  // standard words equation
bool is_task_op(std::string_view op);
bool is_task_format(std::string_view format);
// Whether random_problem can make `op` questions with this many digits (mul2 needs >= 2).
bool op_supports_digits(std::string_view op, int digits);

// A parsed question: what is asked, independent of its surface text.
struct Problem {
  std::string op;
  std::vector<std::string> operands;  // canonical decimal strings
  std::string format = "standard";
  int digits() const;       // longest operand length
  std::string key() const;  // "add:4821,379": identity of the problem across formats
};

// The question text of p in p.format. Throws std::invalid_argument for an unknown op/format.
std::string render_question(const Problem& p);
// The problem a question asks, or nullopt if the text is not a question of this task family
// (unknown template, non-canonical number, negative result, multiplier of 3+ digits).
std::optional<Problem> parse_question(std::string_view question);
// A random problem with `digits` digits (see op rules above). Throws std::invalid_argument for
// an unknown op or format, or digits the op cannot have (op_supports_digits).
Problem random_problem(const std::string& op, int digits, const std::string& format, Rng& rng);

struct Solution {
  std::string trace;
  std::string answer;
};
// The exact solver. Throws std::invalid_argument if the question is not of this family.
Solution solve(std::string_view question);
Solution solve(const Problem& p);
// An Example for p; the trace is left empty when with_trace is false (direct-answer data).
Example make_example(const Problem& p, bool with_trace = true);

// The solver as the distillation teacher: fills each example's trace (and answer) from
// solve(question). Returns the number of trace bytes written (= byte-tokenizer tokens), the
// quantity a per-token teacher price applies to. Throws std::invalid_argument for a question
// outside the task family.
std::size_t attach_solver_traces(std::vector<Example>& examples);

// Exact answer check: predicted_text with leading/trailing ASCII whitespace removed must equal
// the example's answer (itself trimmed). "05200", "+5200" or "5,200" are wrong.
bool check_answer(const Example& example, std::string_view predicted_text);
std::string trim(std::string_view s);

// Verification of a trace for a question, independent of how it was written (a teacher model's
// trace is checked the same way as the solver's).
struct TraceCheck {
  bool well_formed = false;     // every line follows the trace grammar, last line "result N"
  bool arithmetic_ok = false;   // every column line is arithmetically true, and each block's
                                // "result" equals its written digits (checked line by line,
                                // without calling the solver)
  bool matches_solver = false;  // identical to solve(question).trace
  std::string final_result;     // N of the last "result N" line ("" if none)
  long first_bad_line = 0;      // 1-based line of the first problem (0: none)
  std::string message;          // why it failed ("" when ok)
  bool ok() const { return well_formed && arithmetic_ok && matches_solver; }
};
TraceCheck check_trace(std::string_view question, std::string_view trace);

// Where a model's trace first departs from the solver's, for diagnosing a tuned model: the
// lines are compared in order and the first differing line is classified by the solver's line
// there. Kinds, in trace order:
//   "restatement"  a block header ("4821 + 379"): the question copied wrong
//   "operands"     a column line's left side ("1+9+0"): a digit fetched wrong or a wrong carry in
//   "fact"         the value after '=' ("=10"): a one-digit fact wrong
//   "write_carry"  the rest of a column line (" write 0 carry 1"), or "write carry N"
//   "shift"        a mul2 shift line
//   "result"       a "result N" line: the written digits read back wrong
//   "length"       every line agrees but the trace stops early or runs on
//   "answer"       the trace equals the solver's but the answer does not
//   "none"         trace and answer are right
//   "not_a_task"   the question is not of this task family
struct TraceError {
  std::string kind;
  long line = 0;     // 1-based line of the first difference (0: none)
  std::string got;   // the model's line there ("" past its end)
  std::string want;  // the solver's line there ("" past its end)
};
TraceError first_trace_error(std::string_view question, std::string_view trace,
                             std::string_view answer);
// The kinds above in trace order, for tables.
const std::vector<std::string>& trace_error_kinds();

// Exact arithmetic on canonical decimal strings.
std::string add_decimal(std::string_view a, std::string_view b);
std::string sub_decimal(std::string_view a, std::string_view b);  // requires a >= b
std::string mul_decimal(std::string_view a, std::string_view b);
int compare_decimal(std::string_view a, std::string_view b);       // -1, 0, 1
bool is_canonical_number(std::string_view s);                       // "0" or [1-9][0-9]*

}  // namespace audit::datasets
