// Grading of one completion by suite kind (math, choice, exact), and exact match.
#include <stdexcept>
#include <string>

#include "suites/grading/grading.h"
#include "suites/grading/text.h"  // trim, is_upper, to_lower

namespace audit::suites {

bool exact_match(std::string_view predicted, std::string_view reference) {
  return text::trim(predicted) == text::trim(reference);
}

Grade grade(std::string_view kind, std::string_view completion_answer, std::string_view reference,
            int n_choices) {
  Grade g;
  if (kind == "math") {
    g.extracted = extract_math_answer(completion_answer);
    // A reference that is a whole solution is graded by its last \boxed{} answer.
    const bool solution = reference.find("\\boxed") != std::string_view::npos ||
                          reference.find("\\fbox") != std::string_view::npos;
    const std::string ref = solution ? extract_math_answer(reference) : std::string(reference);
    g.correct = !g.extracted.empty() && math_equal(g.extracted, ref);
    return g;
  }
  if (kind == "choice") {
    if (n_choices < 1 || n_choices > 26)
      throw std::invalid_argument("grade: a choice suite needs n_choices in 1..26, got " +
                                  std::to_string(n_choices));
    const std::string_view ref = text::trim(reference);
    const char letter = ref.size() == 1 && text::is_alpha(ref[0])
                            ? char(text::to_lower(ref[0]) - 'a' + 'A')
                            : '\0';
    if (letter == '\0' || letter - 'A' >= n_choices)
      throw std::invalid_argument("grade: the reference of a choice item must be one letter "
                                  "among the " + std::to_string(n_choices) + " choices, got '" +
                                  std::string(reference) + "'");
    const int chosen = extract_choice(completion_answer, n_choices);
    if (chosen >= 0) g.extracted = std::string(1, char('A' + chosen));
    g.correct = chosen == letter - 'A';
    return g;
  }
  if (kind == "exact") {
    g.extracted = std::string(text::trim(completion_answer));
    g.correct = exact_match(completion_answer, reference);
    return g;
  }
  throw std::invalid_argument("grade: unknown suite kind '" + std::string(kind) +
                              "' (math, choice or exact)");
}

}  // namespace audit::suites
