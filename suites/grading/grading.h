// Answer extraction and grading for the benchmark suites: a suite's `kind` says how a model's
// completion is scored against the reference answer.
//   math    the final answer (last \boxed{...}, else an "answer is ..." phrase, else the last
//           number), normalised and compared to the reference as text, as exact rationals when
//           both are numbers, and element by element for tuples and intervals;
//   choice  the chosen letter of a multiple-choice completion (GPQA style), against a letter;
//   exact   string match after trimming whitespace at both ends.
// The rules are written out in docs/datasets.md ("Grading"). They follow, in our own code, the
// normalisation of the MATH dataset's is_equiv (hendrycks/math, math_equivalence.py:
// _strip_string, _fix_fracs, _fix_sqrt, _fix_a_slash_b, _remove_right_units), as carried by
// lm-eval's hendrycks_math/utils.py, and of Minerva's normalize_final_answer (Lewkowycz et al.
// 2022, appendix D; lm-eval's minerva_math/utils.py: last_boxed_only_string, SUBSTITUTIONS,
// REMOVED_EXPRESSIONS). Where they differ: no sympy (numbers are compared as exact rationals, so
// 0.5 and 0.50001 differ and 1/3 is not 0.3333), letters keep their case, and commas are
// dropped only from a whole number written with thousands separators ("1,000"), never from a
// tuple ("(1,2)").
#pragma once

#include <string>
#include <string_view>

namespace audit::suites {

// The final answer of a math completion: the content of the last complete \boxed{...} or
// \fbox{...} (balanced braces, \{ and \} not counted; "\boxed 5" up to a '$' or the line's end),
// else the text after the last "answer is" / "answer:" phrase (any case; "Final Answer: The
// final answer is $x$. I hope it is correct." gives "x"), else the last number in the text
// (sign, thousands commas, decimals and a/b kept); "" if none. The text is returned as written,
// not normalised.
std::string extract_math_answer(std::string_view completion);

// Canonical text of a math answer (docs/datasets.md, "Grading"): wrappers ($..$, \(..\), \[..\],
// \boxed{}) and spacing removed, \left/\right dropped, \dfrac/\tfrac/shorthand \frac12 written
// \frac{1}{2}, \sqrt2 written \sqrt{2}, units in a trailing \text{} (or a bare unit word after a
// number), degrees and percent signs removed, a leading "x =" dropped, thousands commas of a whole
// number removed, decimals written without trailing zeros and with a leading 0, an integer a/b
// written \frac{a}{b}, "(B)" written B. Never throws; "" for an empty answer.
std::string normalize_math(std::string_view answer);

// Whether two math answers are the same: their normalised texts are equal, or both are numbers
// (integer, decimal, a/b, \frac{a}{b}, with a sign) with the same exact rational value
// (1/2 == 0.5 == \frac{1}{2} == \dfrac12), or both are tuples/intervals with the same brackets
// and element-wise equal entries ("(0.5,3)" == "(\frac12, 3)", "(1,2)" != "(2,1)"). An empty
// answer equals nothing.
bool math_equal(std::string_view predicted, std::string_view reference);

// The chosen option of a multiple-choice completion as a 0-based index (A = 0), or -1. Explicit
// answers first, the last one winning: "answer is B", "Answer: (B)", "answer is **B**", "correct
// option is B", "\boxed{B}". Without one, the last formatted letter: "(B)", "**B**", "B)", or a
// lone letter ending the text. Only capital letters below n_choices count (others are skipped,
// not taken as "no answer"); n_choices outside 1..26 gives -1.
int extract_choice(std::string_view completion, int n_choices);

// String match after trimming whitespace at both ends (and nothing else: case and inner spaces
// count).
bool exact_match(std::string_view predicted, std::string_view reference);

// One graded sample: what was taken from the completion as its answer, and whether it is right.
struct Grade {
  std::string extracted;  // math: extract_math_answer; choice: the letter or ""; exact: trimmed
  bool correct = false;
};

// Grades a completion against a reference. kind: "math" (reference: the answer, or a solution
// whose last \boxed{} is taken), "choice" (reference: one letter "A".."Z", case-insensitive,
// below n_choices; n_choices in 1..26) or "exact". Throws std::invalid_argument on another kind,
// a bad choice reference or n_choices.
Grade grade(std::string_view kind, std::string_view completion_answer, std::string_view reference,
            int n_choices = 0);

}  // namespace audit::suites
