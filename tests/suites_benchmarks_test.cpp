// Tests of suites/benchmarks: suite files of the three kinds load with the spec's key names,
// choices are shuffled by the documented per-item permutation (checked against literals and
// against an independent implementation of the algorithm), GPQA's form and the choices form give
// the same item, and every bad input throws audit::InputError with its file:line:column and key.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "suites/benchmarks/benchmarks.h"
#include "tests/support/support.h"

using namespace audit::suites;
using audit::InputError;

namespace {

SuiteSpec spec_of(SuiteKind kind, const std::string& path = "suite.jsonl") {
  SuiteSpec s;
  s.name = "TEST";
  s.path = path;
  s.kind = kind;
  return s;
}

// The error parse_suite throws on `text` (fails the test if none).
InputError suite_error(const std::string& text, const SuiteSpec& spec) {
  try {
    parse_suite(text, spec);
  } catch (const InputError& e) {
    return e;
  }
  ADD_FAILURE() << "loaded without error: " << text;
  return InputError("", 0, 0, "", "none");
}

// The documented shuffle written out again from its description (not from the module's code):
// mt19937_64 seeded with splitmix64(splitmix64(seed) ^ fnv1a64("choice:<line>")), Fisher-Yates
// from the back, j drawn below i by rejection sampling.
std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
std::vector<int> reference_permutation(int n, std::uint64_t seed, long line) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : "choice:" + std::to_string(line)) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  std::mt19937_64 engine(splitmix(splitmix(seed) ^ h));
  std::vector<int> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
  for (std::uint64_t i = static_cast<std::uint64_t>(n); i > 1; --i) {
    const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t limit = max - (max % i + 1) % i;
    std::uint64_t x;
    do x = engine(); while (x > limit);
    std::swap(v[i - 1], v[x % i]);
  }
  return v;
}

long col(const std::string& line, const std::string& key) {
  const std::size_t p = line.find("\"" + key + "\"");
  EXPECT_NE(p, std::string::npos) << key << " not in " << line;
  return static_cast<long>(p) + 1;
}

}  // namespace

TEST(BenchmarkSuites, KindNames) {
  for (SuiteKind k : {SuiteKind::math, SuiteKind::choice, SuiteKind::exact})
    EXPECT_EQ(parse_suite_kind(to_string(k)), k);
  EXPECT_STREQ(to_string(SuiteKind::choice), "choice");
  try {
    parse_suite_kind("mcq");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'mcq'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("math, choice or exact"), std::string::npos);
  }
}

TEST(BenchmarkSuites, MathItemsWithProblemKeyNumbersAndIds) {
  const std::string text =
      "{\"problem\": \"What is $1+1$?\", \"answer\": \"2\", \"unique_id\": \"x\"}\n"
      "\n"
      "{\"question\": \"Half of one?\", \"answer\": 0.5}\r\n"
      "{\"question\": \"Ten squared?\", \"answer\": 100.0}\n"
      "{\"question\": \"Big?\", \"answer\": 12345678901234567890}\n"
      "{\"question\": \"Tiny?\", \"answer\": -2.5e-7}\n";
  const Suite s = parse_suite(text, spec_of(SuiteKind::math, "math.jsonl"));
  EXPECT_EQ(s.spec.name, "TEST");
  ASSERT_EQ(s.items.size(), 5u);
  EXPECT_EQ(s.items[0].question, "What is $1+1$?");  // "problem" stands in for "question"
  EXPECT_EQ(s.items[0].reference, "2");
  EXPECT_EQ(s.items[0].id, "math.jsonl:1");
  EXPECT_EQ(s.items[0].n_choices, 0);
  EXPECT_EQ(s.items[1].reference, "0.5");
  EXPECT_EQ(s.items[1].id, "math.jsonl:3");
  EXPECT_EQ(s.items[2].reference, "100");  // shortest text of the number, no ".0"
  EXPECT_EQ(s.items[3].reference, "12345678901234567890");
  EXPECT_EQ(s.items[4].reference, "-2.5e-07");
  EXPECT_EQ(s.items[4].id, "math.jsonl:6");
}

TEST(BenchmarkSuites, FieldMappingAndLimit) {
  SuiteSpec spec = spec_of(SuiteKind::exact);
  spec.question_field = "input";
  spec.answer_field = "target";
  const std::string text =
      "{\"input\": \"Capital of France?\", \"target\": \" Paris \", \"question\": 3}\n"
      "{\"input\": \"Two words\", \"target\": \"a b\"}\n"
      "{\"input\": \"Third\", \"target\": 3}\n";
  Suite s = parse_suite(text, spec);
  ASSERT_EQ(s.items.size(), 3u);
  EXPECT_EQ(s.items[0].question, "Capital of France?");  // "question" (a number) is not read
  EXPECT_EQ(s.items[0].reference, " Paris ");  // kept as written: the scorer trims
  EXPECT_EQ(s.items[2].reference, "3");
  spec.limit = 2;
  s = parse_suite(text, spec);
  ASSERT_EQ(s.items.size(), 2u);
  EXPECT_EQ(s.items[1].id, "suite.jsonl:2");
  // The lines past the limit are still checked.
  InputError e = suite_error(text + "{\"input\": \"no target\"}\n", spec);
  EXPECT_EQ(e.line, 4);
  EXPECT_EQ(e.key, "target");
  // With the question key mapped, "problem" does not stand in for it.
  e = suite_error("{\"problem\": \"p\", \"target\": \"t\"}\n", spec);
  EXPECT_EQ(e.key, "input");
  EXPECT_EQ(e.column, 0);
  // A mapped choices key.
  SuiteSpec c = spec_of(SuiteKind::choice);
  c.choices_field = "options";
  c.answer_field = "label";
  const Suite cs = parse_suite("{\"question\": \"q\", \"options\": [\"x\", \"y\"], \"label\": 1}\n", c);
  ASSERT_EQ(cs.items.size(), 1u);
  EXPECT_EQ(cs.items[0].n_choices, 2);
}

TEST(BenchmarkSuites, ChoicePermutationIsTheDocumentedOne) {
  // Literals: the same on every platform and every run.
  EXPECT_EQ(choice_permutation(4, 1234, 1), (std::vector<int>{2, 0, 1, 3}));
  EXPECT_EQ(choice_permutation(4, 1234, 3), (std::vector<int>{0, 3, 2, 1}));
  EXPECT_EQ(choice_permutation(26, 1234, 2),
            (std::vector<int>{8, 14, 23, 19, 6, 17, 2, 5, 0, 24, 21, 3, 25, 10, 15, 9, 22, 18, 7,
                              20, 16, 12, 13, 11, 4, 1}));
  // And the algorithm as written in the header, over many seeds, lines and sizes.
  for (std::uint64_t seed : {0ULL, 1ULL, 1234ULL, 0xFFFFFFFFFFFFFFFFULL})
    for (long line = 1; line <= 40; ++line)
      for (int n = 2; n <= 26; n += 3)
        ASSERT_EQ(choice_permutation(n, seed, line), reference_permutation(n, seed, line))
            << "seed " << seed << " line " << line << " n " << n;
}

TEST(BenchmarkSuites, ChoiceItemsShuffledFixedAcrossRunsDifferentAcrossItems) {
  SuiteSpec spec = spec_of(SuiteKind::choice, "gpqa.jsonl");
  spec.shuffle_seed = 1234;
  std::string text;
  for (int i = 0; i < 24; ++i)
    text += "{\"question\": \"Q" + std::to_string(i) +
            "\", \"choices\": [\"right\", \"w1\", \"w2\", \"w3\"], \"answer\": \"A\"}\n";
  const Suite a = parse_suite(text, spec);
  const Suite b = parse_suite(text, spec);
  ASSERT_EQ(a.items.size(), 24u);
  std::set<std::string> letters, orders;
  for (std::size_t i = 0; i < a.items.size(); ++i) {
    EXPECT_EQ(a.items[i].question, b.items[i].question);
    EXPECT_EQ(a.items[i].reference, b.items[i].reference);
    EXPECT_EQ(a.items[i].n_choices, 4);
    letters.insert(a.items[i].reference);
    orders.insert(a.items[i].question.substr(a.items[i].question.find('\n')));
  }
  EXPECT_EQ(letters.size(), 4u);  // the correct choice lands on every letter
  EXPECT_GE(orders.size(), 10u);  // and the orders differ between items
  // Line 1 with seed 1234: perm = {2, 0, 1, 3}: A) w2 B) right C) w1 D) w3.
  EXPECT_EQ(a.items[0].question, "Q0\n\nA) w2\nB) right\nC) w1\nD) w3");
  EXPECT_EQ(a.items[0].reference, "B");
  // Line 3: perm = {0, 3, 2, 1}.
  EXPECT_EQ(a.items[2].question, "Q2\n\nA) right\nB) w3\nC) w2\nD) w1");
  EXPECT_EQ(a.items[2].reference, "A");
  // Another seed gives another order for the same item.
  spec.shuffle_seed = 1235;
  const Suite c = parse_suite(text, spec);
  int differ = 0;
  for (std::size_t i = 0; i < c.items.size(); ++i) differ += c.items[i].question != a.items[i].question;
  EXPECT_GE(differ, 10);
}

TEST(BenchmarkSuites, GpqaFormAndChoicesFormGiveTheSameItem) {
  SuiteSpec spec = spec_of(SuiteKind::choice, "same.jsonl");
  spec.shuffle_seed = 7;
  const std::vector<std::string> forms = {
      "{\"question\": \"Which?\", \"correct_answer\": \"yes\", \"incorrect_answers\": [\"no\", "
      "\"maybe\", \"never\"]}",
      "{\"question\": \"Which?\", \"choices\": [\"yes\", \"no\", \"maybe\", \"never\"], "
      "\"answer\": 0}",
      "{\"question\": \"Which?\", \"choices\": [\"yes\", \"no\", \"maybe\", \"never\"], "
      "\"answer\": \"A\"}",
      "{\"question\": \"Which?\", \"choices\": [\"yes\", \"no\", \"maybe\", \"never\"], "
      "\"answer\": \"yes\"}",
  };
  std::vector<SuiteItem> items;
  for (const auto& f : forms) {
    SCOPED_TRACE(f);
    const Suite s = parse_suite("\n\n" + f + "\n", spec);  // each on line 3
    ASSERT_EQ(s.items.size(), 1u);
    items.push_back(s.items[0]);
  }
  const std::vector<int> perm = choice_permutation(4, 7, 3);
  const std::vector<std::string> original = {"yes", "no", "maybe", "never"};
  std::vector<std::string> shuffled;
  std::string letter;
  for (int k = 0; k < 4; ++k) {
    shuffled.push_back(original[static_cast<std::size_t>(perm[static_cast<std::size_t>(k)])]);
    if (perm[static_cast<std::size_t>(k)] == 0) letter = std::string(1, static_cast<char>('A' + k));
  }
  for (const auto& it : items) {
    EXPECT_EQ(it.question, format_choice_question("Which?", shuffled));
    EXPECT_EQ(it.reference, letter);
    EXPECT_EQ(it.n_choices, 4);
    EXPECT_EQ(it.id, "same.jsonl:3");
  }
  // The answer given as another choice's letter, index or text moves with it.
  const Suite s = parse_suite("\n\n{\"question\": \"Which?\", \"choices\": [\"yes\", \"no\", "
                              "\"maybe\", \"never\"], \"answer\": \"C\"}\n", spec);
  for (int k = 0; k < 4; ++k)
    if (perm[static_cast<std::size_t>(k)] == 2)
      EXPECT_EQ(s.items[0].reference, std::string(1, static_cast<char>('A' + k)));
}

struct BadSuite {
  std::string name;
  SuiteKind kind;
  std::string line;       // the bad line; it is written as line 2, after a good one
  std::string key;        // expected key
  std::string col_key;    // the key whose opening quote is the column; "" = column 0
  std::string message;    // part of the message
};

TEST(BenchmarkSuites, EveryBadInputNamesFileLineColumnAndKey) {
  const std::string good_math = "{\"question\": \"q\", \"answer\": \"1\"}";
  const std::string good_choice = "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 1}";
  const std::string four = "\"choices\": [\"a\", \"b\", \"c\", \"d\"]";
  const std::vector<BadSuite> cases = {
      {"math without answer", SuiteKind::math, "{\"question\": \"q\", \"solution\": \"1\"}",
       "answer", "", "missing reference answer"},
      {"exact without answer", SuiteKind::exact, "{\"question\": \"q\"}", "answer", "",
       "every item of this exact suite"},
      {"answer of a wrong type", SuiteKind::math, "{\"question\": \"q\", \"answer\": [1]}",
       "answer", "answer", "must be a string, got array"},
      {"null answer", SuiteKind::math, "{\"question\": \"q\", \"answer\": null}", "answer",
       "answer", "got null"},
      {"empty answer", SuiteKind::math, "{\"question\": \"q\", \"answer\": \" \"}", "answer",
       "answer", "must not be empty"},
      {"no question", SuiteKind::math, "{\"answer\": \"1\"}", "question", "",
       "give 'question' or 'problem'"},
      {"empty question", SuiteKind::math, "{\"answer\": \"1\", \"question\": \" \\t\"}",
       "question", "question", "must not be empty"},
      {"empty problem", SuiteKind::math, "{\"answer\": \"1\", \"problem\": \"\"}", "problem",
       "problem", "must not be empty"},
      {"question not a string", SuiteKind::choice,
       "{\"question\": {\"t\": 1}, \"choices\": [\"a\", \"b\"], \"answer\": 0}", "question",
       "question", "must be a string, got object"},
      {"unknown choice letter", SuiteKind::choice, "{\"question\": \"q\", " + four +
       ", \"answer\": \"E\"}", "answer", "answer", "unknown choice letter 'E': the item has 4 "
       "choices (A to D)"},
      {"index out of range", SuiteKind::choice, "{\"question\": \"q\", " + four +
       ", \"answer\": 4}", "answer", "answer", "choice index 4 is out of range"},
      {"negative index", SuiteKind::choice, "{\"question\": \"q\", " + four + ", \"answer\": -1}",
       "answer", "answer", "choice index -1 is out of range"},
      {"float index", SuiteKind::choice, "{\"question\": \"q\", " + four + ", \"answer\": 1.0}",
       "answer", "answer", "got number"},
      {"answer matching no choice", SuiteKind::choice, "{\"question\": \"q\", " + four +
       ", \"answer\": \"e\"}", "answer", "answer", "matches no choice"},
      {"choice without answer", SuiteKind::choice, "{\"question\": \"q\", " + four + "}",
       "answer", "", "missing answer"},
      {"duplicate choices", SuiteKind::choice, "{\"question\": \"q\", \"choices\": [\"a\", \"b\", "
       "\" a \"], \"answer\": 0}", "choices[2]", "choices", "duplicate choice: the same text as "
       "choices[0]"},
      {"duplicate in GPQA form", SuiteKind::choice, "{\"question\": \"q\", \"correct_answer\": "
       "\"x\", \"incorrect_answers\": [\"y\", \"x\"]}", "incorrect_answers[1]",
       "incorrect_answers", "the same text as correct_answer"},
      {"one choice", SuiteKind::choice, "{\"question\": \"q\", \"choices\": [\"a\"], "
       "\"answer\": 0}", "choices", "choices", "must hold 2 to 26 choices, got 1"},
      {"choice not a string", SuiteKind::choice, "{\"question\": \"q\", \"choices\": [\"a\", 2], "
       "\"answer\": 0}", "choices[1]", "choices", "must be a string, got number"},
      {"empty choice", SuiteKind::choice, "{\"question\": \"q\", \"choices\": [\"a\", \"\"], "
       "\"answer\": 0}", "choices[1]", "choices", "must not be empty"},
      {"choices not an array", SuiteKind::choice, "{\"question\": \"q\", \"choices\": \"a,b\", "
       "\"answer\": 0}", "choices", "choices", "must be an array of strings, got string"},
      {"no choices", SuiteKind::choice, "{\"question\": \"q\", \"answer\": \"A\"}", "choices", "",
       "missing choices"},
      {"both forms", SuiteKind::choice, "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], "
       "\"answer\": 0, \"correct_answer\": \"a\"}", "correct_answer", "correct_answer",
       "use one form"},
      {"GPQA without incorrect answers", SuiteKind::choice, "{\"question\": \"q\", "
       "\"correct_answer\": \"a\"}", "incorrect_answers", "", "needs both"},
      {"GPQA with no incorrect answer", SuiteKind::choice, "{\"question\": \"q\", "
       "\"correct_answer\": \"a\", \"incorrect_answers\": []}", "incorrect_answers",
       "incorrect_answers", "must hold 1 to 25 answers"},
      {"duplicated key", SuiteKind::math, "{\"question\": \"q\", \"answer\": \"1\", \"answer\": "
       "\"2\"}", "answer", "", "duplicate key (first at column 19)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string good = c.kind == SuiteKind::choice ? good_choice : good_math;
    InputError e = suite_error(good + "\n" + c.line + "\n", spec_of(c.kind, "bad.jsonl"));
    EXPECT_EQ(e.file, "bad.jsonl");
    EXPECT_EQ(e.line, 2);
    EXPECT_EQ(e.key, c.key);
    const long column = c.name == "duplicated key" ? 34 : c.col_key.empty() ? 0 : col(c.line, c.col_key);
    EXPECT_EQ(e.column, column);
    const std::string where = "bad.jsonl:2" + (column ? ":" + std::to_string(column) : "") +
                              ": '" + c.key + "': ";
    EXPECT_EQ(std::string(e.what()).rfind(where, 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
  }
  // 27 choices: one too many for A..Z.
  std::string many = "{\"question\": \"q\", \"choices\": [";
  for (int i = 0; i < 27; ++i) many += (i ? ", \"c" : "\"c") + std::to_string(i) + "\"";
  many += "], \"answer\": 0}";
  InputError e = suite_error(many + "\n", spec_of(SuiteKind::choice));
  EXPECT_EQ(e.line, 1);
  EXPECT_EQ(e.column, 19);
  EXPECT_NE(std::string(e.what()).find("got 27"), std::string::npos) << e.what();
}

TEST(BenchmarkSuites, FileLevelErrors) {
  audit::testing::TempDir dir("audit_suites");
  const SuiteSpec missing = spec_of(SuiteKind::math, dir.file("absent.jsonl"));
  try {
    load_suite(missing);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.file, missing.path);
    EXPECT_EQ(e.line, 0);
  }
  for (const std::string text : {"", "\n\n  \r\n"}) {
    audit::testing::write_file(dir.file("empty.jsonl"), text);
    const SuiteSpec spec = spec_of(SuiteKind::choice, dir.file("empty.jsonl"));
    try {
      load_suite(spec);
      FAIL();
    } catch (const InputError& e) {
      EXPECT_EQ(e.file, spec.path);
      EXPECT_EQ(e.line, 0);
      EXPECT_EQ(e.column, 0);
      EXPECT_NE(std::string(e.what()).find(": no records"), std::string::npos) << e.what();
    }
  }
  // The shared reader's checks reach suite files: invalid UTF-8 at its byte column, bad JSON.
  audit::testing::write_file(dir.file("utf8.jsonl"),
                             "{\"question\": \"ok\", \"answer\": \"1\"}\n"
                             "{\"question\": \"caf\xc3\xa9\xc3\", \"answer\": \"1\"}\n");
  try {
    load_suite(spec_of(SuiteKind::math, dir.file("utf8.jsonl")));
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.line, 2);
    EXPECT_EQ(e.column, 20);  // {"question": "caf = 17 bytes, é = 2, then the cut-short byte
    EXPECT_NE(std::string(e.what()).find("invalid UTF-8"), std::string::npos);
  }
  audit::testing::write_file(dir.file("ok.jsonl"), "{\"question\": \"q\", \"answer\": 2}\n");
  const Suite s = load_suite(spec_of(SuiteKind::math, dir.file("ok.jsonl")));
  ASSERT_EQ(s.items.size(), 1u);
  EXPECT_EQ(s.items[0].id, dir.file("ok.jsonl") + ":1");
  SuiteSpec empty_key = spec_of(SuiteKind::math);
  empty_key.answer_field = "";
  EXPECT_THROW(parse_suite("{\"question\": \"q\"}\n", empty_key), InputError);
}
