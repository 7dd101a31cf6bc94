// Tests of datasets/: the byte tokenizer, deterministic randomness, and the arithmetic task
// family (solver against integer arithmetic, trace checker, templates, exact answer checks).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "datasets/tasks/random.h"
#include "datasets/tasks/tasks.h"
#include "datasets/tokenizer/tokenizer.h"

using namespace audit::datasets;

namespace {
using u128 = unsigned __int128;
std::string u128_str(u128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v) {
    s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  return s;
}
u128 to_u128(const std::string& s) {
  u128 v = 0;
  for (char c : s) v = v * 10 + static_cast<unsigned>(c - '0');
  return v;
}
std::vector<std::string> lines_of(const std::string& t) {
  std::vector<std::string> v;
  std::size_t b = 0;
  while (b < t.size()) {
    std::size_t e = t.find('\n', b);
    v.push_back(t.substr(b, e - b));
    b = e + 1;
  }
  return v;
}
std::string join_lines(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& l : v) s += l + "\n";
  return s;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
TEST(Tokenizer, VocabAndSpecials) {
  ByteTokenizer tok;
  EXPECT_EQ(tok.vocab_size(), 264);
  const std::vector<std::string> names = {"<pad>",   "<bos>",    "<eos>",    "<|question|>",
                                          "<think>", "</think>", "<answer>", "</answer>"};
  ASSERT_EQ(ByteTokenizer::special_names(), names);
  for (std::size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(tok.special(names[i]), 256 + static_cast<TokenId>(i)) << names[i];
    EXPECT_TRUE(tok.is_special(256 + static_cast<TokenId>(i)));
    EXPECT_EQ(tok.token_name(256 + static_cast<TokenId>(i)), names[i]);
  }
  EXPECT_EQ(tok.pad_id(), 256);
  EXPECT_EQ(tok.think_id(), tok.special("<think>"));
  EXPECT_EQ(tok.end_think_id(), tok.special("</think>"));
  EXPECT_EQ(tok.eos_id(), tok.special("<eos>"));
  EXPECT_FALSE(tok.is_special(255));
  EXPECT_THROW(tok.special("<nope>"), std::invalid_argument);
  EXPECT_EQ(tok.describe()["specials"]["</answer>"], 263);
}

TEST(Tokenizer, RoundTripAllBytes) {
  ByteTokenizer tok;
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  auto ids = tok.encode(all);
  ASSERT_EQ(ids.size(), 256u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(ids[static_cast<std::size_t>(b)], b);
  EXPECT_EQ(tok.decode(ids), all);
  Rng rng(7);
  for (int k = 0; k < 100; ++k) {
    std::string s(static_cast<std::size_t>(rng.below(64)), '\0');
    for (auto& c : s) c = static_cast<char>(rng.below(256));
    EXPECT_EQ(tok.decode(tok.encode(s)), s);
  }
}

TEST(Tokenizer, TextNeverBecomesSpecial) {
  ByteTokenizer tok;
  auto ids = tok.encode("<think>Wait</think>");
  for (TokenId id : ids) EXPECT_LT(id, 256);
  EXPECT_EQ(ids.size(), std::string("<think>Wait</think>").size());
  std::vector<TokenId> mixed = {tok.think_id(), 'h', 'i', tok.end_think_id()};
  EXPECT_EQ(tok.decode(mixed), "<think>hi</think>");
  EXPECT_EQ(tok.decode(mixed, /*skip_special=*/true), "hi");
  EXPECT_THROW(tok.decode({264}), std::out_of_range);
  EXPECT_THROW(tok.decode({-1}), std::out_of_range);
  EXPECT_EQ(tok.decode(tok.wait_tokens()), "Wait");
  EXPECT_EQ(std::string(kWait), "Wait");
}

// ---------------------------------------------------------------------------------------------
TEST(Random, EngineIsTheStandardOne) {
  // The C++ standard fixes the 10000th output of a default-seeded mt19937_64.
  std::mt19937_64 e;
  e.discard(9999);
  EXPECT_EQ(e(), 9981545732273789042ULL);
}

TEST(Random, BelowIsUniformAndInRange) {
  Rng rng(123);
  std::vector<int> counts(6, 0);
  for (int i = 0; i < 60000; ++i) {
    auto v = rng.below(6);
    ASSERT_LT(v, 6u);
    ++counts[v];
  }
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);
  for (int i = 0; i < 1000; ++i) {
    auto v = rng.between(-3, 3);
    ASSERT_GE(v, -3);
    ASSERT_LE(v, 3);
    double r = rng.real();
    ASSERT_GE(r, 0.0);
    ASSERT_LT(r, 1.0);
  }
  EXPECT_THROW(rng.below(0), std::invalid_argument);
}

TEST(Random, ShuffleIsAStablePermutation) {
  auto a = shuffled_indices(50, 42, 0), b = shuffled_indices(50, 42, 0);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, shuffled_indices(50, 42, 1));
  EXPECT_NE(a, shuffled_indices(50, 43, 0));
  std::set<std::size_t> s(a.begin(), a.end());
  EXPECT_EQ(s.size(), 50u);
  EXPECT_EQ(*s.rbegin(), 49u);
  // Golden values: the order must be the same with every standard library and platform.
  EXPECT_EQ(shuffled_indices(10, 42, 0),
            (std::vector<std::size_t>{0, 4, 2, 5, 7, 6, 3, 9, 1, 8}));
}

TEST(Random, WeightedFollowsWeights) {
  Rng rng(5);
  std::vector<int> c(3, 0);
  for (int i = 0; i < 40000; ++i) ++c[rng.weighted({1.0, 0.0, 3.0})];
  EXPECT_EQ(c[1], 0);
  EXPECT_NEAR(c[0], 10000, 600);
  EXPECT_NEAR(c[2], 30000, 600);
  EXPECT_THROW(rng.weighted({0.0, 0.0}), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
TEST(Decimal, MatchesIntegerArithmetic) {
  Rng rng(11);
  for (int k = 0; k < 3000; ++k) {
    auto num = [&] {
      std::string s = std::to_string(rng.between(0, 9));
      int len = static_cast<int>(rng.between(1, 18));
      for (int i = 1; i < len; ++i) s.push_back(static_cast<char>('0' + rng.below(10)));
      std::size_t z = s.find_first_not_of('0');
      return z == std::string::npos ? std::string("0") : s.substr(z);
    };
    std::string a = num(), b = num();
    u128 x = to_u128(a), y = to_u128(b);
    ASSERT_TRUE(is_canonical_number(a)) << a;
    EXPECT_EQ(add_decimal(a, b), u128_str(x + y));
    EXPECT_EQ(mul_decimal(a, b), u128_str(x * y));
    EXPECT_EQ(compare_decimal(a, b), x < y ? -1 : (x > y ? 1 : 0));
    if (x >= y) {
      EXPECT_EQ(sub_decimal(a, b), u128_str(x - y));
    } else {
      EXPECT_THROW(sub_decimal(a, b), std::invalid_argument);
    }
  }
  EXPECT_FALSE(is_canonical_number("007"));
  EXPECT_FALSE(is_canonical_number(""));
  EXPECT_FALSE(is_canonical_number("-1"));
  EXPECT_TRUE(is_canonical_number("0"));
}

TEST(Tasks, SolverMatchesIntegerArithmeticForEveryOp) {
  Rng rng(2024);
  int n = 0;
  for (const auto& op : all_ops())
    for (int d = 1; d <= 17; ++d) {
      if (!op_supports_digits(op, d)) continue;
      for (int k = 0; k < 40; ++k, ++n) {
        const auto& fmt = all_formats()[rng.below(all_formats().size())];
        Problem p = random_problem(op, d, fmt, rng);
        ASSERT_EQ(p.digits(), d) << p.key();
        const auto& x = p.operands;
        u128 a = to_u128(x[0]), b = to_u128(x[1]), want;
        if (op == "add") want = a + b;
        else if (op == "sub") want = a - b;
        else if (op == "mul1" || op == "mul2") want = a * b;
        else want = a + b - to_u128(x[2]);
        if (op == "sub") {
          ASSERT_GE(a, b);
        }
        if (op == "addsub") {
          ASSERT_GE(a + b, to_u128(x[2]));
        }
        if (op == "mul1") {
          ASSERT_TRUE(b >= 2 && b <= 9);
        }
        if (op == "mul2") {
          ASSERT_TRUE(b >= 10 && b <= 99);
        }
        const std::string q = render_question(p);
        Solution s = solve(q);
        ASSERT_EQ(s.answer, u128_str(want)) << q;
        EXPECT_EQ(solve(p).trace, s.trace);
        TraceCheck tc = check_trace(q, s.trace);
        ASSERT_TRUE(tc.ok()) << q << "\n" << s.trace << tc.message;
        EXPECT_EQ(tc.final_result, s.answer);
        EXPECT_EQ(s.trace.back(), '\n');
      }
    }
  EXPECT_GT(n, 2500);
}

TEST(Tasks, TraceHasOneLinePerColumn) {
  // 4821 + 379 exactly as documented in tasks.h.
  EXPECT_EQ(solve("What is 4821 + 379?").trace,
            "4821 + 379\n"
            "1+9+0=10 write 0 carry 1\n"
            "2+7+1=10 write 0 carry 1\n"
            "8+3+1=12 write 2 carry 1\n"
            "4+0+1=5 write 5 carry 0\n"
            "result 5200\n");
  EXPECT_EQ(solve("What is 1000 - 1?").trace,
            "1000 - 1\n"
            "10-1-0=9 write 9 borrow 1\n"
            "10-0-1=9 write 9 borrow 1\n"
            "10-0-1=9 write 9 borrow 1\n"
            "1-0-1=0 write 0 borrow 0\n"
            "result 999\n");
  EXPECT_EQ(solve("What is 95 * 7?").trace,
            "95 * 7\n"
            "5*7+0=35 write 5 carry 3\n"
            "9*7+3=66 write 6 carry 6\n"
            "write carry 6\n"
            "result 665\n");
  EXPECT_EQ(solve("What is 4821 * 37?").answer, "178377");
  // Column lines per block = the longer operand's length (add, sub) or the multiplicand's (mul).
  Rng rng(3);
  for (int k = 0; k < 200; ++k) {
    const std::string op = k % 3 == 0 ? "add" : (k % 3 == 1 ? "sub" : "mul1");
    Problem p = random_problem(op, 1 + k % 9, "standard", rng);
    auto ls = lines_of(solve(p).trace);
    std::size_t cols = 0;
    for (const auto& l : ls) cols += l.find(" write ") != std::string::npos && l.rfind("write carry", 0) != 0;
    EXPECT_EQ(cols, static_cast<std::size_t>(p.digits())) << p.key();
    EXPECT_EQ(ls.front(), p.operands[0] + (op == "add" ? " + " : op == "sub" ? " - " : " * ") + p.operands[1]);
  }
}

TEST(Tasks, TraceCheckerCatchesCorruption) {
  const std::string q = "What is 4821 + 379?";
  auto ls = lines_of(solve(q).trace);
  {  // wrong column sum
    auto bad = ls;
    bad[2] = "2+7+1=11 write 1 carry 1";
    auto tc = check_trace(q, join_lines(bad));
    EXPECT_TRUE(tc.well_formed);
    EXPECT_FALSE(tc.arithmetic_ok);
    EXPECT_EQ(tc.first_bad_line, 3);
    EXPECT_FALSE(tc.ok());
  }
  {  // wrong carry chain
    auto bad = ls;
    bad[2] = "2+7+0=9 write 9 carry 0";
    auto tc = check_trace(q, join_lines(bad));
    EXPECT_FALSE(tc.arithmetic_ok);
    EXPECT_EQ(tc.first_bad_line, 3);
  }
  {  // a column dropped
    auto bad = ls;
    bad.erase(bad.begin() + 3);
    EXPECT_FALSE(check_trace(q, join_lines(bad)).arithmetic_ok);
  }
  {  // broken grammar
    auto bad = ls;
    bad[1] = "1 plus 9 is 10";
    auto tc = check_trace(q, join_lines(bad));
    EXPECT_FALSE(tc.well_formed);
    EXPECT_EQ(tc.first_bad_line, 2);
  }
  {  // result not the written digits
    auto bad = ls;
    bad.back() = "result 5300";
    EXPECT_FALSE(check_trace(q, join_lines(bad)).arithmetic_ok);
  }
  {  // arithmetically right but for other operands: matches_solver catches it
    const std::string other = solve("What is 4821 + 378?").trace;
    auto tc = check_trace(q, other);
    EXPECT_TRUE(tc.well_formed);
    EXPECT_TRUE(tc.arithmetic_ok);
    EXPECT_FALSE(tc.matches_solver);
    EXPECT_EQ(tc.first_bad_line, 1);
  }
  EXPECT_FALSE(check_trace(q, "").well_formed);
  EXPECT_FALSE(check_trace(q, "result 5200").ok());  // no block
  // Wrong borrow in a subtraction.
  const std::string qs = "What is 52 - 38?";
  auto sl = lines_of(solve(qs).trace);
  ASSERT_EQ(sl[1], "12-8-0=4 write 4 borrow 1");
  sl[1] = "2-8-0=4 write 4 borrow 0";
  EXPECT_FALSE(check_trace(qs, join_lines(sl)).arithmetic_ok);
  // Every solver trace of mul2 and addsub passes; a swapped block fails.
  auto ml = lines_of(solve("What is 4821 * 37?").trace);
  EXPECT_TRUE(check_trace("What is 4821 * 37?", join_lines(ml)).ok());
  std::swap(ml[2], ml[3]);
  EXPECT_FALSE(check_trace("What is 4821 * 37?", join_lines(ml)).ok());
}

// The first departure from the solver's trace, classified by the solver's line there. The cases
// are the model errors seen in s1-mini's tuned traces (docs/datasets.md).
TEST(Tasks, FirstTraceErrorNamesTheKindOfLine) {
  const std::string q = "What is 4821 + 379?";
  const Solution sol = solve(q);
  const auto ls = lines_of(sol.trace);
  // 0 "4821 + 379", 1 "1+9+0=10 write 0 carry 1", 2 "2+7+1=10 write 0 carry 1",
  // 3 "8+3+1=12 write 2 carry 1", 4 "4+0+1=5 write 5 carry 0", 5 "result 5200"
  ASSERT_EQ(ls.size(), 6u);
  auto kind_of = [&](std::size_t line, const std::string& text, long* at = nullptr) {
    auto bad = ls;
    bad[line] = text;
    auto e = first_trace_error(q, join_lines(bad), sol.answer);
    if (at) *at = e.line;
    EXPECT_EQ(e.got, text);
    EXPECT_EQ(e.want, ls[line]);
    return e.kind;
  };
  long at = 0;
  EXPECT_EQ(kind_of(0, "4812 + 379", &at), "restatement");
  EXPECT_EQ(at, 1);
  EXPECT_EQ(kind_of(2, "2+8+1=11 write 1 carry 1", &at), "operands");  // fetched the wrong digit
  EXPECT_EQ(at, 3);
  EXPECT_EQ(kind_of(2, "2+7+0=9 write 9 carry 0"), "operands");        // dropped the carry in
  EXPECT_EQ(kind_of(3, "8+3+1=13 write 3 carry 1"), "fact");
  EXPECT_EQ(kind_of(3, "8+3+1=1 write 1 carry 1"), "fact");            // a digit short
  EXPECT_EQ(kind_of(3, "8+3+1=12 write 2 carry 0"), "write_carry");
  EXPECT_EQ(kind_of(5, "result 5020"), "result");
  EXPECT_EQ(kind_of(1, ""), "operands");

  EXPECT_EQ(first_trace_error(q, sol.trace, sol.answer).kind, "none");
  EXPECT_EQ(first_trace_error(q, sol.trace, " 5200 ").kind, "none");
  EXPECT_EQ(first_trace_error(q, sol.trace, "5300").kind, "answer");
  auto shorter = ls;
  shorter.pop_back();
  auto e = first_trace_error(q, join_lines(shorter), sol.answer);
  EXPECT_EQ(e.kind, "length");
  EXPECT_EQ(e.line, 6);
  EXPECT_EQ(e.want, "result 5200");
  EXPECT_EQ(first_trace_error(q, "", sol.answer).kind, "length");  // a direct answer
  EXPECT_EQ(first_trace_error("What is the capital of France?", "", "Paris").kind, "not_a_task");

  // The final carry line and mul2's shift line.
  const std::string q2 = "What is 95 + 25?";
  auto l2 = lines_of(solve(q2).trace);
  ASSERT_EQ(l2[3], "write carry 1");
  l2[3] = "write carry 2";
  EXPECT_EQ(first_trace_error(q2, join_lines(l2), "").kind, "write_carry");
  const std::string q3 = "What is 123 * 45?";
  auto l3 = lines_of(solve(q3).trace);
  auto shift = std::find_if(l3.begin(), l3.end(),
                            [](const std::string& x) { return x.find(" shift ") != std::string::npos; });
  ASSERT_NE(shift, l3.end());
  *shift = "492 shift 1 = 4290";
  EXPECT_EQ(first_trace_error(q3, join_lines(l3), "").kind, "shift");
  // Every kind returned is one of the listed kinds.
  for (const char* k : {"restatement", "operands", "fact", "write_carry", "shift", "result",
                        "length", "answer", "none", "not_a_task"})
    EXPECT_NE(std::find(trace_error_kinds().begin(), trace_error_kinds().end(), k),
              trace_error_kinds().end())
        << k;
}

TEST(Tasks, FormatsParseAndRender) {
  Problem add{"add", {"4821", "379"}, "standard"};
  EXPECT_EQ(render_question(add), "What is 4821 + 379?");
  add.format = "words";
  EXPECT_EQ(render_question(add), "Compute the sum of 4821 and 379.");
  add.format = "equation";
  EXPECT_EQ(render_question(add), "4821 + 379 = ?");
  Problem sub{"sub", {"4821", "379"}, "words"};
  EXPECT_EQ(render_question(sub), "Subtract 379 from 4821.");
  Problem as{"addsub", {"1", "2", "3"}, "words"};
  EXPECT_EQ(render_question(as), "Add 1 and 2, then subtract 3.");
  Rng rng(9);
  for (const auto& op : all_ops())
    for (const auto& f : all_formats())
      for (int k = 0; k < 20; ++k) {
        Problem p = random_problem(op, 2 + k % 5, f, rng);
        auto q = render_question(p);
        auto back = parse_question(q);
        ASSERT_TRUE(back) << q;
        EXPECT_EQ(back->op, p.op);
        EXPECT_EQ(back->operands, p.operands);
        EXPECT_EQ(back->format, f);
        EXPECT_EQ(back->key(), p.key());
        // The trace does not depend on the surface format.
        Problem std_p = p;
        std_p.format = "standard";
        EXPECT_EQ(solve(q).trace, solve(render_question(std_p)).trace);
      }
  EXPECT_FALSE(parse_question("What is 05 + 3?"));
  EXPECT_FALSE(parse_question("What is 3 - 5?"));     // negative result
  EXPECT_FALSE(parse_question("What is 3 * 123?"));   // 3-digit multiplier
  EXPECT_FALSE(parse_question("What is 1 + 2 - 4?"));
  EXPECT_FALSE(parse_question("What is 3 + 5 ?"));
  EXPECT_FALSE(parse_question("Who wrote Hamlet?"));
  EXPECT_THROW(solve("Who wrote Hamlet?"), std::invalid_argument);
  EXPECT_THROW(random_problem("mul2", 1, "standard", rng), std::invalid_argument);
  EXPECT_THROW(random_problem("div", 2, "standard", rng), std::invalid_argument);
  EXPECT_THROW(random_problem("add", 2, "latin", rng), std::invalid_argument);
}

TEST(Tasks, CheckAnswerIsExact) {
  Example e = make_example(Problem{"add", {"4821", "379"}, "standard"});
  EXPECT_EQ(e.answer, "5200");
  EXPECT_EQ(e.digits, 4);
  EXPECT_EQ(e.op, "add");
  EXPECT_TRUE(check_answer(e, "5200"));
  EXPECT_TRUE(check_answer(e, " 5200\n"));
  EXPECT_FALSE(check_answer(e, "05200"));
  EXPECT_FALSE(check_answer(e, "+5200"));
  EXPECT_FALSE(check_answer(e, "5,200"));
  EXPECT_FALSE(check_answer(e, "5200 5200"));
  EXPECT_FALSE(check_answer(e, ""));
  Example empty;
  EXPECT_FALSE(check_answer(empty, ""));
  EXPECT_TRUE(make_example(Problem{"add", {"1", "2"}, "standard"}, false).trace.empty());
  // JSON round trip.
  Example back = nlohmann::json(e).get<Example>();
  EXPECT_EQ(back.question, e.question);
  EXPECT_EQ(back.trace, e.trace);
  EXPECT_EQ(back.answer, e.answer);
  EXPECT_EQ(back.digits, e.digits);
}

TEST(Tasks, AttachSolverTracesCountsBytes) {
  std::vector<Example> v = {make_example(Problem{"add", {"12", "5"}, "standard"}, false),
                            make_example(Problem{"mul1", {"95", "7"}, "words"}, false)};
  std::size_t bytes = attach_solver_traces(v);
  EXPECT_EQ(bytes, v[0].trace.size() + v[1].trace.size());
  EXPECT_EQ(v[1].trace, solve("What is 95 * 7?").trace);
  EXPECT_GT(bytes, 0u);
}

// Fuzz: edited traces and questions never crash the checker or the parser, and a trace the
// checker passes is exactly the solver's.
TEST(Tasks, FuzzedTracesAndQuestions) {
  Rng rng(77);
  const char alphabet[] = "0123456789+-*= \nwriteculbos";
  int passed = 0;
  for (int it = 0; it < 3000; ++it) {
    const auto& op = all_ops()[rng.below(all_ops().size())];
    Problem p = random_problem(op, 2 + static_cast<int>(rng.below(4)), "standard", rng);
    const std::string q = render_question(p);
    std::string t = solve(p).trace;
    std::string q2 = q;
    const auto kind = rng.below(4);  // 0: untouched, 1-2: trace edited, 3: question edited
    if (kind == 1 || kind == 2) {
      const std::size_t pos = rng.below(t.size());
      switch (rng.below(3)) {
        case 0: t[pos] = alphabet[rng.below(sizeof alphabet - 1)]; break;
        case 1: t.erase(pos, 1 + rng.below(3)); break;
        default: t.insert(pos, 1, alphabet[rng.below(sizeof alphabet - 1)]); break;
      }
    } else if (kind == 3) {
      q2[rng.below(q2.size())] = alphabet[rng.below(sizeof alphabet - 1)];
    }
    TraceCheck tc = check_trace(q2, t);
    (void)parse_question(q2);
    if (tc.ok()) {
      ++passed;
      ASSERT_EQ(t, solve(q2).trace);
    } else {
      ASSERT_FALSE(tc.message.empty());
    }
  }
  EXPECT_GT(passed, 600);  // the untouched quarter passes (and edits that change nothing)
}
