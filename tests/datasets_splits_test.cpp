// Tests of datasets/splits and datasets/decontam: seeded reproducibility, disjointness, the OOD
// properties of each test set, and the n-gram overlap report (zero when clean, exact when planted).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "datasets/decontam/decontam.h"
#include "datasets/tasks/splits.h"

using namespace audit::datasets;

namespace {
SplitConfig small_config(std::uint64_t seed = 7) {
  SplitConfig c;
  c.seed = seed;
  c.min_digits = 1;
  c.max_digits = 3;
  c.pool_size = 600;
  c.id_test_size = 60;
  c.ood_test_size = 60;
  c.pretrain_size = 1500;
  return c;
}
const Splits& shared_splits() {
  static const Splits s = make_splits(small_config());
  return s;
}
int max_digits_of(const std::vector<Example>& v) {
  int m = 0;
  for (const auto& e : v) m = std::max(m, e.digits);
  return m;
}
}  // namespace

TEST(Splits, SameSeedSameSplitsOtherSeedOther) {
  const Splits& a = shared_splits();
  const Splits b = make_splits(small_config());
  const Splits c = make_splits(small_config(8));
  EXPECT_EQ(summary(a).dump(), summary(b).dump());
  for (const auto& [name, v] : a.all()) {
    (void)v;
    auto fa = summary(a)["splits"][name]["fingerprint"];
    EXPECT_NE(fa, summary(c)["splits"][name]["fingerprint"]) << name;
  }
  EXPECT_EQ(a.pool[17].question, b.pool[17].question);
}

TEST(Splits, SizesAndContents) {
  const Splits& s = shared_splits();
  EXPECT_TRUE(s.warnings.empty());
  EXPECT_EQ(s.pool.size(), 600u);
  EXPECT_EQ(s.pretrain.size(), 1500u);
  for (const auto& [name, v] : s.test_sets()) {
    EXPECT_EQ(v->size(), 60u) << name;
    for (const auto& e : *v) {  // reference traces and answers from the solver
      ASSERT_FALSE(e.trace.empty()) << name;
      Solution sol = solve(e.question);
      EXPECT_EQ(e.answer, sol.answer);
      EXPECT_EQ(e.trace, sol.trace);
    }
  }
  for (const auto& e : s.pool) {  // the distill stage writes the pool's traces
    EXPECT_TRUE(e.trace.empty());
    EXPECT_EQ(e.answer, solve(e.question).answer);
  }
  for (const auto& e : s.pretrain) {  // direct answers, no traces
    EXPECT_TRUE(e.trace.empty());
    EXPECT_EQ(e.answer, solve(e.question).answer);
  }
  auto j = summary(s);
  EXPECT_EQ(j["splits"]["pool"]["count"], 600);
  EXPECT_EQ(j["splits"]["pool"]["requested"], 600);
  EXPECT_EQ(j["config"]["seed"], 7);
}

TEST(Splits, DisjointByQuestionAndProblem) {
  const Splits& s = shared_splits();
  EXPECT_NO_THROW(check_disjoint(s.all()));
  std::set<std::string> questions, keys;
  std::size_t total = 0;
  for (const auto& [name, v] : s.all())
    for (const auto& e : *v) {
      ++total;
      questions.insert(e.question);
      keys.insert(parse_question(e.question)->key());
    }
  EXPECT_EQ(questions.size(), total);
  EXPECT_EQ(keys.size(), total);  // not even the same problem in another format
  // Planted duplicates are refused, whatever the format.
  std::vector<Example> leak = {s.id_test[3]};
  EXPECT_THROW(check_disjoint({{"pool", &s.pool}, {"id_test", &s.id_test}, {"leak", &leak}}),
               std::logic_error);
  Problem p = *parse_question(s.id_test[3].question);
  p.format = "words";
  std::vector<Example> reworded = {make_example(p)};
  try {
    check_disjoint({{"id_test", &s.id_test}, {"reworded", &reworded}});
    FAIL() << "a reworded test problem was not caught";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("id_test"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("reworded"), std::string::npos) << e.what();
  }
}

TEST(Splits, OodPropertiesHold) {
  const Splits& s = shared_splits();
  const auto& c = s.config;
  const int trained_max = std::max({max_digits_of(s.pool), max_digits_of(s.pretrain),
                                    max_digits_of(s.id_test)});
  EXPECT_EQ(trained_max, c.max_digits);
  for (const auto& e : s.ood_long) {
    EXPECT_GT(e.digits, trained_max) << e.question;
    EXPECT_GE(e.digits, c.long_min());
    EXPECT_LE(e.digits, c.long_max());
    EXPECT_TRUE(std::count(c.train_ops.begin(), c.train_ops.end(), e.op)) << e.op;
  }
  std::set<std::string> trained_ops;
  for (const auto* v : {&s.pool, &s.pretrain, &s.id_test, &s.ood_long, &s.ood_format})
    for (const auto& e : *v) trained_ops.insert(e.op);
  for (const auto& e : s.ood_heldout) {
    EXPECT_EQ(e.op, "addsub");
    EXPECT_EQ(trained_ops.count(e.op), 0u);
  }
  EXPECT_EQ(trained_ops, (std::set<std::string>{"add", "sub", "mul1"}));
  for (const auto& e : s.ood_format) {
    EXPECT_EQ(e.format, c.ood_format);
    EXPECT_NE(e.format, c.train_format);
    EXPECT_EQ(parse_question(e.question)->format, "words");
  }
  for (const auto& e : s.pool) EXPECT_EQ(e.format, c.train_format);
  for (const auto& e : s.id_test) EXPECT_EQ(e.format, c.train_format);
  // Pretraining: mostly the train format, about pretrain_ood_format_fraction in the OOD format.
  std::size_t words = 0;
  for (const auto& e : s.pretrain) words += e.format == "words";
  EXPECT_NEAR(static_cast<double>(words) / static_cast<double>(s.pretrain.size()),
              c.pretrain_ood_format_fraction, 0.05);
}

TEST(Splits, PretrainSkillsAreCopiesAndReversalsOfUnusedProblems) {
  SplitConfig c = small_config();
  c.pretrain_skills_fraction = 0.3;
  const Splits s = make_splits(c);
  ASSERT_EQ(s.pretrain.size(), c.pretrain_size);
  std::size_t copies = 0, reversals = 0, facts = 0, first_third = 0;
  std::set<std::string> test_problems;
  for (const auto& [name, set] : s.test_sets())
    for (const auto& e : *set) test_problems.insert(parse_question(e.question)->key());
  for (std::size_t i = 0; i < s.pretrain.size(); ++i) {
    const Example& e = s.pretrain[i];
    if (e.op != "skill") continue;
    EXPECT_TRUE(e.trace.empty());
    first_third += i < s.pretrain.size() / 3;
    const std::string rev = "Reverse the digits of ";
    if (e.question.rfind("Repeat: ", 0) == 0) {
      ++copies;
      EXPECT_EQ(e.question.substr(8), e.answer);
      // The copied problem is none of the test problems.
      auto p = parse_question(e.answer + " = ?");
      ASSERT_TRUE(p.has_value()) << e.answer;
      EXPECT_EQ(test_problems.count(p->key()), 0u) << e.answer;
    } else if (e.question.find(" facts") != std::string::npos) {
      // Four one-digit column facts in the trace's notation, e.g. "7*6+3=45\n".
      ++facts;
      std::istringstream lines(e.answer);
      std::string x;
      int n = 0;
      while (std::getline(lines, x)) {
        ++n;
        int a = 0, b = 0, c = 0, v = 0;
        char o1 = 0, o2 = 0;
        ASSERT_EQ(std::sscanf(x.c_str(), "%d%c%d%c%d=%d", &a, &o1, &b, &o2, &c, &v), 6) << x;
        EXPECT_EQ(o1 == '*' ? a * b + c : o1 == '+' ? a + b + c : a - b - c, v) << x;
        EXPECT_GE(v, 0) << x;
        if (o1 == '*') EXPECT_LT(c, b) << x << ": a column's carry is below the multiplier";
        EXPECT_EQ(e.question[0], o1 == '*' ? 'M' : o1 == '+' ? 'A' : 'S') << e.question;
      }
      EXPECT_EQ(n, 4) << e.answer;
    } else {
      ASSERT_EQ(e.question.rfind(rev, 0), 0u) << e.question;
      std::string x = e.question.substr(rev.size());
      x.pop_back();  // '.'
      EXPECT_EQ(std::string(x.rbegin(), x.rend()), e.answer);
      ++reversals;
    }
  }
  EXPECT_EQ(copies + reversals + facts, 450u);  // 0.3 x 1500: 1/4, 1/4, 1/2
  EXPECT_NEAR(static_cast<double>(copies), 112.5, 1.0);
  EXPECT_NEAR(static_cast<double>(reversals), 112.5, 1.0);
  EXPECT_NEAR(static_cast<double>(facts), 225.0, 1.0);  // index % 4 in {2, 3}
  // Spread through the list, not appended at the end.
  EXPECT_NEAR(static_cast<double>(first_third), 150.0, 5.0);
  // The arithmetic test sets are unchanged by the skills mix.
  const Splits plain = make_splits(small_config());
  EXPECT_EQ(fingerprint(plain.id_test), fingerprint(s.id_test));
}

TEST(Splits, TestSetsDoNotDependOnPoolSize) {
  SplitConfig c = small_config();
  c.pool_size = 100;
  c.pretrain_size = 300;
  const Splits other = make_splits(c);
  const Splits& s = shared_splits();
  for (std::size_t i = 0; i < s.test_sets().size(); ++i)
    EXPECT_EQ(fingerprint(*s.test_sets()[i].second), fingerprint(*other.test_sets()[i].second))
        << s.test_sets()[i].first;
  EXPECT_NE(fingerprint(s.pool), fingerprint(other.pool));
}

// The ID test set is in distribution only if the SFT pool holds the same kinds of problems.
// With s1-mini's sizes the small digit spaces (one-digit sums and differences, products of one
// and two digits) have fewer distinct problems than pretraining wants; the pool is drawn before
// pretraining so that they are in the pool as well as in the ID set (drawn the other way round,
// the pool held no one-digit problem and 2 two-digit products, and the tuned model failed them).
TEST(Splits, PoolHoldsEveryBucketOfTheIdTestSet) {
  SplitConfig c;  // s1-mini's data section
  c.seed = 1234;
  c.min_digits = 1;
  c.max_digits = 3;
  c.long_min_digits = 4;
  c.long_max_digits = 5;
  c.pretrain_skills_fraction = 0.5;
  const Splits s = make_splits(c);
  std::map<std::string, std::size_t> id, pool;
  for (const auto& e : s.id_test) ++id[bucket_of(e)];
  for (const auto& e : s.pool) ++pool[bucket_of(e)];
  ASSERT_EQ(id.size(), 9u);  // add, sub, mul1 x 1-3 digits
  // One-digit differences are the smallest space (55 problems, 20-odd of them in the ID set).
  for (const auto& [bucket, n] : id) EXPECT_GE(pool[bucket], 15u) << bucket << " (" << n << " in the ID set)";
}

TEST(Splits, ExhaustedDigitSpaceWarnsAndStaysDisjoint) {
  SplitConfig c;
  c.min_digits = 1;
  c.max_digits = 1;
  c.train_ops = {"add"};
  c.heldout_ops = {"sub"};
  c.id_test_size = 10;
  c.ood_test_size = 10;
  c.pool_size = 500;  // only 100 one-digit sums exist
  c.pretrain_size = 500;
  const Splits s = make_splits(c);
  EXPECT_FALSE(s.warnings.empty());
  EXPECT_EQ(s.id_test.size() + s.ood_format.size() + s.pool.size() + s.pretrain.size(), 100u);
  EXPECT_NO_THROW(check_disjoint(s.all()));
}

TEST(Splits, ConfigValidationNamesTheField) {
  auto expect_field = [](SplitConfig c, const std::string& field) {
    try {
      c.validate();
      FAIL() << "accepted bad " << field;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("'" + field + "'"), std::string::npos) << e.what();
    }
  };
  SplitConfig c;
  EXPECT_NO_THROW(c.validate());
  auto bad = c;
  bad.heldout_ops = {"add"};
  expect_field(bad, "heldout_ops");
  bad = c;
  bad.train_ops = {"div"};
  expect_field(bad, "train_ops");
  bad = c;
  bad.min_digits = 0;
  expect_field(bad, "min_digits");
  bad = c;
  bad.min_digits = 5;
  expect_field(bad, "max_digits");
  bad = c;
  bad.long_min_digits = 3;
  expect_field(bad, "long_min_digits");
  bad = c;
  bad.ood_format = "standard";
  expect_field(bad, "ood_format");
  bad = c;
  bad.pretrain_ood_format_fraction = 1.5;
  expect_field(bad, "pretrain_ood_format_fraction");
  EXPECT_THROW(make_splits(bad), std::invalid_argument);
}

TEST(Splits, OptionalOodSetsCanBeSwitchedOff) {
  SplitConfig c;
  c.heldout_ops = {};
  c.ood_format = "";
  c.pool_size = 50;
  c.pretrain_size = 100;
  c.id_test_size = 10;
  c.ood_test_size = 10;
  const Splits s = make_splits(c);
  ASSERT_EQ(s.test_sets().size(), 2u);
  EXPECT_EQ(s.test_sets()[1].first, "ood_long");
  EXPECT_TRUE(s.ood_heldout.empty());
  EXPECT_TRUE(s.ood_format.empty());
  for (const auto& e : s.pretrain) EXPECT_EQ(e.format, "standard");
  EXPECT_FALSE(summary(s)["splits"].contains("ood_format"));
}

// ---------------------------------------------------------------------------------------------
TEST(Decontam, Units) {
  EXPECT_EQ(ngram_units("What is 4821 + 379?", NgramUnit::word),
            (std::vector<std::string>{"what", "is", "4821", "+", "379", "?"}));
  EXPECT_EQ(ngram_units("  A  b\n", NgramUnit::byte), (std::vector<std::string>{"a", " ", "b"}));
  EXPECT_EQ(parse_ngram_unit("byte"), NgramUnit::byte);
  EXPECT_THROW(parse_ngram_unit("token"), std::invalid_argument);
}

TEST(Decontam, CleanSplitsReportZero) {
  const Splits& s = shared_splits();
  std::vector<Example> sft = s.pool;
  attach_solver_traces(sft);
  std::vector<TextSet> train = {documents_of("pretrain", s.pretrain), documents_of("sft", sft)};
  std::vector<TextSet> tests;
  for (const auto& [name, v] : s.test_sets()) tests.push_back(questions_of(name, *v));
  DecontamReport r = decontaminate(train, tests);
  EXPECT_EQ(r.n, 8);
  EXPECT_EQ(r.unit, "word");
  EXPECT_EQ(r.training_docs, s.pretrain.size() + sft.size());
  EXPECT_GT(r.training_ngrams, 0u);
  ASSERT_EQ(r.sets.size(), 4u);
  for (const auto& set : r.sets) {
    EXPECT_EQ(set.items, 60u) << set.test_set;
    EXPECT_EQ(set.items_with_overlap, 0u) << set.test_set << ": " << nlohmann::json(set).dump();
    EXPECT_EQ(set.too_short, 0u);
    EXPECT_EQ(set.fraction, 0.0);
  }
}

TEST(Decontam, FindsPlantedOverlap) {
  const Splits& s = shared_splits();
  std::vector<Example> sft = s.pool;
  attach_solver_traces(sft);
  // Plant three id_test questions (with their traces) and one ood_format question.
  std::vector<Example> leaked = {s.id_test[0], s.id_test[5], s.id_test[9], s.ood_format[2]};
  sft.insert(sft.end(), leaked.begin(), leaked.end());
  std::vector<TextSet> train = {documents_of("pretrain", s.pretrain), documents_of("sft", sft)};
  std::vector<TextSet> tests = {questions_of("id_test", s.id_test),
                                questions_of("ood_format", s.ood_format),
                                questions_of("ood_long", s.ood_long)};
  DecontamReport r = decontaminate(train, tests);
  EXPECT_EQ(r.sets[0].items_with_overlap, 3u);
  EXPECT_EQ(r.sets[0].items_fully_covered, 3u);
  EXPECT_DOUBLE_EQ(r.sets[0].fraction, 3.0 / 60.0);
  EXPECT_EQ(r.sets[0].by_training_set.at("sft"), 3u);
  EXPECT_EQ(r.sets[0].by_training_set.at("pretrain"), 0u);
  EXPECT_EQ(r.sets[0].examples,
            (std::vector<std::string>{s.id_test[0].question, s.id_test[5].question,
                                      s.id_test[9].question}));
  EXPECT_EQ(r.sets[1].items_with_overlap, 1u);
  EXPECT_EQ(r.sets[2].items_with_overlap, 0u);
  nlohmann::json j = r;
  EXPECT_EQ(j["sets"][0]["items_with_overlap"], 3);
  EXPECT_EQ(j["n"], 8);
  EXPECT_EQ(j["training_sets"], (nlohmann::json{"pretrain", "sft"}));
}

TEST(Decontam, LongItemsUseEightGrams) {
  std::vector<TextSet> train = {{"web", {"the quick brown fox jumps over the lazy dog and runs away"}}};
  std::vector<TextSet> tests = {
      {"t", {"a cat: the quick brown fox jumps over the lazy dog, then sleeps",  // one 8-gram
             "the quick brown fox jumps over a lazy dog again and again",      // no 8-gram
             "fox jumps over the lazy dog and runs",                            // 8 units, contained
             "too short"}}};
  DecontamReport r = decontaminate(train, tests);
  EXPECT_EQ(r.sets[0].items_with_overlap, 2u);
  EXPECT_EQ(r.sets[0].items_fully_covered, 1u);
  EXPECT_EQ(r.sets[0].too_short, 1u);
  DecontamConfig bytes;
  bytes.unit = NgramUnit::byte;
  bytes.n = 20;
  // Byte 20-grams also match the second item ("the quick brown fox jumps over " is shared).
  EXPECT_EQ(decontaminate(train, tests, bytes).sets[0].items_with_overlap, 3u);
  DecontamConfig bad;
  bad.n = 0;
  EXPECT_THROW(decontaminate(train, tests, bad), std::invalid_argument);
}
