// suites/grading: math answer extraction and equivalence (a table of pairs that must and must
// not be equal), multiple-choice letter extraction, exact match and grade() by kind.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "suites/grading/grading.h"

namespace {
using namespace audit::suites;

struct EquivCase {
  const char* a;
  const char* b;
  bool equal;
};

// Pairs of answers and whether they are the same answer. Each row is checked both ways round.
const EquivCase kEquivalence[] = {
    // numbers: fractions, decimals, signs
    {"1/2", "0.5", true},
    {"\\frac{1}{2}", "0.5", true},
    {"\\frac12", "\\frac{1}{2}", true},
    {"\\dfrac12", "1/2", true},
    {"\\tfrac{1}{2}", ".5", true},
    {"\\dfrac{3}{4}", "0.75", true},
    {"0.5", ".5", true},
    {"-0.5", "-.5", true},
    {"-\\frac{1}{2}", "-0.5", true},
    {"\\frac{-1}{2}", "-\\frac{1}{2}", true},
    {"-1/2", "-\\dfrac{1}{2}", true},
    {"\\frac{2}{4}", "\\frac{1}{2}", true},
    {"\\frac{1.5}{3}", "0.5", true},
    {"2.50", "2.5", true},
    {"3.0", "3", true},
    {"3.000", "3", true},
    {"007", "7", true},
    {"+5", "5", true},
    {"1/2", "2", false},
    {"0.5", "0.50001", false},
    {"1/3", "0.3333", false},
    {"-0.5", "0.5", false},
    {"\\frac{1}{2}", "\\frac{2}{1}", false},
    {"3", "30", false},
    {"2.5", "25", false},
    // thousands separators, and commas that are not
    {"1,000", "1000", true},
    {"1{,}000", "1000", true},
    {"1,\\!000", "1000", true},
    {"1\\,000", "1000", true},
    {"-12,345.50", "-12345.5", true},
    {"1,000", "1", false},
    {"(1,2)", "(1, 2)", true},
    {"1, 2", "1,2", true},
    {"(1,2)", "(2,1)", false},
    {"(1,2)", "12", false},
    {"1,2", "12", false},
    {"(1,2)", "1,2", false},
    {"(0.5, 3)", "(\\frac12, 3)", true},
    {"[2,5)", "[2, 5)", true},
    {"[2,5)", "[2,5]", false},
    {"(-\\infty, 2]", "(-\\infty,2]", true},
    {"\\left( 1, 2 \\right)", "(1,2)", true},
    // wrappers, spacing, \left \right
    {"$5$", "5", true},
    {"\\(5\\)", "5", true},
    {"$$\\frac{1}{2}$$", "0.5", true},
    {"\\boxed{7}", "7", true},
    {"5.", "5", true},
    {"\\left(3\\right)", "(3)", true},
    {"x \\in \\left[ 0, 1 \\right]", "x\\in[0,1]", true},
    {"10\\!", "10", true},
    {"2 \\; 3", "23", true},
    // units in \text / \mbox, bare unit words, degrees, percent, money
    {"5\\text{ cm}", "5", true},
    {"5 \\text{cm}^2", "5", true},
    {"5\\text{ m}/\\text{s}", "5", true},
    {"\\frac{3}{4}\\text{ inch}", "0.75", true},
    {"5\\mbox{ inches}", "5", true},
    {"12 \\text{ square units}", "12", true},
    {"5 cm", "5", true},
    {"12 square units", "12", true},
    {"90^\\circ", "90", true},
    {"90^{\\circ}", "90", true},
    {"90\xc2\xb0", "90", true},
    {"50\\%", "50", true},
    {"50%", "50", true},
    {"50\\%", "0.5", false},
    {"\\$18.90", "18.9", true},
    {"\\text{(B)}", "B", true},
    {"\\text{(B)}", "(B)", true},
    {"\\textbf{(C)}", "C", true},
    {"\\text{Evelyn}", "Evelyn", true},
    {"\\text{east}", "east", true},
    {"1 \\text{ and } 2", "1,2", true},
    // variable assignments
    {"x = 5", "5", true},
    {"y=\\frac{1}{2}", "0.5", true},
    {"x_1 = 3", "3", true},
    {"\\theta = 30^\\circ", "30", true},
    {"x = 5", "6", false},
    {"x \\le 5", "5", false},
    // square roots, pi, infinity and other expressions
    {"\\sqrt2", "\\sqrt{2}", true},
    {"2\\sqrt 3", "2\\sqrt{3}", true},
    {"\\frac{\\sqrt3}{2}", "\\dfrac{\\sqrt{3}}{2}", true},
    {"\\sqrt[3]{2}", "\\sqrt{2}", false},
    {"\\sqrt{2}", "\\sqrt{3}", false},
    {"\\frac{\\pi}{2}", "\\frac\\pi2", true},
    {"2\\pi r", "2\\pi  r", true},
    {"\\infty", "\xe2\x88\x9e", true},
    {"+\\infty", "\\infty", true},
    {"-\\infty", "\\infty", false},
    {"\\sqrt{2}", "1.414", false},
    {"x^2+1", "x^2 + 1", true},
    {"x^2+1", "x^2-1", false},
    {"\xe2\x88\x92" "3", "-3", true},
    // letters: case counts, except inside \text
    {"B", "B", true},
    {"B", "b", false},
    {"\\text{B}", "B", true},
    {"A", "B", false},
    // nothing
    {"", "", false},
    {"", "0", false},
    {"\\boxed{}", "0", false},
};

TEST(GradingMath, EquivalenceTable) {
  int rows = 0;
  for (const auto& c : kEquivalence) {
    EXPECT_EQ(math_equal(c.a, c.b), c.equal)
        << "'" << c.a << "' vs '" << c.b << "' normalised '" << normalize_math(c.a) << "' vs '"
        << normalize_math(c.b) << "'";
    EXPECT_EQ(math_equal(c.b, c.a), c.equal) << "'" << c.b << "' vs '" << c.a << "'";
    ++rows;
  }
  EXPECT_GE(rows, 60);
}

TEST(GradingMath, NormalisedText) {
  EXPECT_EQ(normalize_math("\\dfrac12"), "\\frac{1}{2}");
  EXPECT_EQ(normalize_math("1/2"), "\\frac{1}{2}");
  EXPECT_EQ(normalize_math("\\frac{-3}{4}"), "-\\frac{3}{4}");
  EXPECT_EQ(normalize_math("\\sqrt2"), "\\sqrt{2}");
  EXPECT_EQ(normalize_math("\\sqrt[3]8"), "\\sqrt[3]{8}");
  EXPECT_EQ(normalize_math("\\frac1{x}"), "\\frac{1}{x}");
  EXPECT_EQ(normalize_math(" $x = 2.50$ "), "2.5");
  EXPECT_EQ(normalize_math(".5"), "0.5");
  EXPECT_EQ(normalize_math("(1.50, 2.0)"), "(1.5,2)");
  EXPECT_EQ(normalize_math("1,234,567"), "1234567");
  EXPECT_EQ(normalize_math("1,2345"), "1,2345");  // not a thousands group: kept
  EXPECT_EQ(normalize_math("5\\text{ cm}^2"), "5");
  EXPECT_EQ(normalize_math("\\text{(B)}"), "B");
  EXPECT_EQ(normalize_math("\\left\\{1,2\\right\\}"), "\\{1,2\\}");
  EXPECT_EQ(normalize_math("a \\rightarrow b"), "a\\rightarrow b");  // \right of \rightarrow kept
  EXPECT_EQ(normalize_math("2\\pi r"), "2\\pi r");
  EXPECT_EQ(normalize_math(""), "");
  EXPECT_EQ(normalize_math("   "), "");
}

TEST(GradingMath, ExtractsTheLastBoxed) {
  EXPECT_EQ(extract_math_answer("so the answer is $\\boxed{42}$."), "42");
  // nested braces
  EXPECT_EQ(extract_math_answer("Thus $\\boxed{\\frac{\\sqrt{3}}{2}}$ is it."),
            "\\frac{\\sqrt{3}}{2}");
  EXPECT_EQ(extract_math_answer("\\boxed{\\{1, 2\\}}"), "\\{1, 2\\}");  // escaped braces
  // several: the last wins
  EXPECT_EQ(extract_math_answer("First \\boxed{1}, then \\boxed{2}, finally \\boxed{3}."), "3");
  EXPECT_EQ(extract_math_answer("\\fbox{7} and later \\boxed{8}"), "8");
  EXPECT_EQ(extract_math_answer("\\boxed{8} and later \\fbox{7}"), "7");
  // a truncated last box: the last complete one
  EXPECT_EQ(extract_math_answer("\\boxed{5} ... so \\boxed{\\frac{1}{"), "5");
  EXPECT_EQ(extract_math_answer("an empty \\boxed{} after \\boxed{4}"), "4");
  // \boxed without braces (lm-eval's "\boxed 5")
  EXPECT_EQ(extract_math_answer("The answer is $\\boxed 5$."), "5");
  // \boxed wins over later phrases and numbers
  EXPECT_EQ(extract_math_answer("\\boxed{x+1} and then 17 more. Answer: 3"), "x+1");
  // not a \boxed command
  EXPECT_EQ(extract_math_answer("\\boxedfoo{3} is 4"), "4");
}

TEST(GradingMath, ExtractsPhrasesThenNumbers) {
  EXPECT_EQ(extract_math_answer("Final Answer: The final answer is $24$. I hope it is correct."),
            "24");
  EXPECT_EQ(extract_math_answer("We get 3 and 4.\nAnswer: 12"), "12");
  EXPECT_EQ(extract_math_answer("The answer is $\\frac{1}{2}$, clearly."), "\\frac{1}{2}");
  EXPECT_EQ(extract_math_answer("So the answer is 3.5. Done with 7 steps."), "3.5");
  EXPECT_EQ(extract_math_answer("the ANSWER IS **17**."), "17");
  EXPECT_EQ(extract_math_answer("answer:\n  x = 9"), "x = 9");
  // an empty phrase falls back to an earlier one, then to numbers
  EXPECT_EQ(extract_math_answer("The answer is 5.\nAnswer:"), "5");
  // last number: sign, decimals, thousands, a/b; a sentence's period is not a decimal point
  EXPECT_EQ(extract_math_answer("2 + 3 = 5."), "5");
  EXPECT_EQ(extract_math_answer("the total is -7 degrees"), "-7");
  EXPECT_EQ(extract_math_answer("so 10 - 3 gives 7"), "7");
  EXPECT_EQ(extract_math_answer("costs 1,234.50 dollars"), "1,234.50");
  EXPECT_EQ(extract_math_answer("points (1,2) and (3,4)"), "4");
  EXPECT_EQ(extract_math_answer("a ratio of 3/4 here"), "3/4");
  EXPECT_EQ(extract_math_answer("about .25 of it"), ".25");
  // no answer
  EXPECT_EQ(extract_math_answer(""), "");
  EXPECT_EQ(extract_math_answer("I do not know."), "");
  EXPECT_EQ(extract_math_answer("The answers vary."), "");
}

TEST(GradingMath, LongCompletionIsFast) {
  // A reasoning trace of ~1 MB: linear scanners, no regex stack.
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "Wait, let me check step " + std::to_string(i) + " again. ";
  text += "So the final answer is \\boxed{\\dfrac{7}{2}}.";
  EXPECT_EQ(extract_math_answer(text), "\\dfrac{7}{2}");
  EXPECT_TRUE(grade("math", text, "3.5").correct);
}

struct ChoiceCase {
  const char* completion;
  int n;
  int expected;
};

const ChoiceCase kChoices[] = {
    {"Answer: B", 4, 1},
    {"The answer is B.", 4, 1},
    {"The answer is (C)", 4, 2},
    {"the correct answer is: **D**", 4, 3},
    {"**B**", 4, 1},
    {"I pick (B)", 4, 1},
    {"B) 42", 4, 1},
    {"After all that, the choice is\n\nC", 4, 2},
    {"A is wrong, the answer is C", 4, 2},
    {"Option A looks right, but the answer is D.", 4, 3},
    {"Answer: A ... wait, no. Answer: C", 4, 2},
    {"The answer is \\boxed{B}", 4, 1},
    {"so $\\boxed{\\text{(D)}}$", 4, 3},
    {"The correct option is A", 4, 0},
    {"The answer is option B", 4, 1},
    {"(A) 3 (B) 4 (C) 5. The answer is (A).", 4, 0},
    // letters beyond n_choices do not count
    {"Answer: E", 4, -1},
    {"Answer: B. Later: Answer: E", 4, 1},
    {"Answer: E", 5, 4},
    // not answers
    {"The answer is not clear.", 4, -1},
    {"The answer is Bob.", 4, -1},
    {"the answer is b", 4, -1},
    {"", 4, -1},
    {"I cannot decide between the options.", 4, -1},
    {"Answer: B", 0, -1},
};

TEST(GradingChoice, ExtractsTheLetter) {
  for (const auto& c : kChoices)
    EXPECT_EQ(extract_choice(c.completion, c.n), c.expected)
        << "'" << c.completion << "' with " << c.n << " choices";
}

TEST(GradingExact, TrimsOnly) {
  EXPECT_TRUE(exact_match("  Paris\n", "Paris"));
  EXPECT_TRUE(exact_match("a b", "a b"));
  EXPECT_FALSE(exact_match("paris", "Paris"));
  EXPECT_FALSE(exact_match("a  b", "a b"));
  EXPECT_FALSE(exact_match("Paris.", "Paris"));
  EXPECT_TRUE(exact_match("", " \t"));
}

TEST(GradingGrade, ByKind) {
  auto g = grade("math", "We find $x = \\boxed{\\dfrac{1}{2}}$.", "0.5");
  EXPECT_EQ(g.extracted, "\\dfrac{1}{2}");
  EXPECT_TRUE(g.correct);
  g = grade("math", "so the result is 3", "\\frac{1}{3}");
  EXPECT_EQ(g.extracted, "3");
  EXPECT_FALSE(g.correct);
  // a reference that is a whole solution: its boxed answer
  EXPECT_TRUE(grade("math", "\\boxed{1000}", "Adding up gives $\\boxed{1,000}$.").correct);
  EXPECT_FALSE(grade("math", "no idea", "0").correct);  // nothing extracted

  g = grade("choice", "A is wrong; the answer is C.", "C", 4);
  EXPECT_EQ(g.extracted, "C");
  EXPECT_TRUE(g.correct);
  g = grade("choice", "The answer is B", " c ", 4);
  EXPECT_EQ(g.extracted, "B");
  EXPECT_FALSE(g.correct);
  g = grade("choice", "no letter here", "A", 4);
  EXPECT_EQ(g.extracted, "");
  EXPECT_FALSE(g.correct);

  g = grade("exact", "  Paris \n", "Paris");
  EXPECT_EQ(g.extracted, "Paris");
  EXPECT_TRUE(g.correct);
  EXPECT_FALSE(grade("exact", "paris", "Paris").correct);
}

TEST(GradingGrade, RefusesBadArguments) {
  EXPECT_THROW(grade("mcq", "A", "A", 4), std::invalid_argument);
  EXPECT_THROW(grade("", "A", "A"), std::invalid_argument);
  EXPECT_THROW(grade("choice", "A", "A"), std::invalid_argument);       // no n_choices
  EXPECT_THROW(grade("choice", "A", "A", 27), std::invalid_argument);
  EXPECT_THROW(grade("choice", "A", "E", 4), std::invalid_argument);    // beyond the choices
  EXPECT_THROW(grade("choice", "A", "AB", 4), std::invalid_argument);
  EXPECT_THROW(grade("choice", "A", "", 4), std::invalid_argument);
  EXPECT_NO_THROW(grade("choice", "A", "a", 4));
}

}  // namespace
