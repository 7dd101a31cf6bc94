// Tests of datasets/jsonl: the s1K-shaped loader accepts the documented key variants and refuses
// every malformed line with audit::InputError naming file, line, column and key (exit 2).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>

#include "datasets/jsonl/jsonl.h"
#include "tests/support/support.h"

using namespace audit::datasets;
using audit::InputError;

namespace {
std::string fixture(const std::string& name) {
  return std::string(audit::testing::source_dir()) + "/tests/fixtures/jsonl/" + name;
}
std::string line_of(const std::string& path, long n) {
  std::ifstream in(path);
  std::string l;
  for (long i = 0; i < n && std::getline(in, l); ++i) {
  }
  return l;
}
// Loads a bad fixture and returns the error (fails the test if none is thrown).
InputError load_error(const std::string& name) {
  try {
    load_jsonl(fixture(name));
  } catch (const InputError& e) {
    return e;
  }
  ADD_FAILURE() << name << " loaded without error";
  return InputError("", 0, 0, "", "none");
}
long column_of_key(const std::string& path, long line, const std::string& key, int nth = 1) {
  const std::string l = line_of(path, line);
  std::size_t pos = std::string::npos;
  for (int i = 0; i < nth; ++i) pos = l.find("\"" + key + "\"", pos == std::string::npos ? 0 : pos + 1);
  return static_cast<long>(pos) + 1;
}
}  // namespace

TEST(Jsonl, LoadsS1kShapeAndVariants) {
  const auto recs = load_jsonl(fixture("s1k_shape.jsonl"));
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].line, 1);
  EXPECT_EQ(recs[0].question, "What is 4821 + 379?");
  EXPECT_EQ(recs[0].thinking, "4821 + 379\n1+9+0=10 write 0 carry 1\n\nsecond part");
  EXPECT_EQ(recs[0].answer, "5200");  // attempt
  EXPECT_EQ(recs[0].solution, "5200");
  EXPECT_EQ(recs[0].file, fixture("s1k_shape.jsonl"));
  EXPECT_EQ(recs[1].line, 3);
  EXPECT_EQ(recs[1].thinking, "Recall the planets by mass.");
  EXPECT_EQ(recs[1].answer, "Jupiter");  // solution as the fallback
  EXPECT_EQ(recs[2].line, 5);
  EXPECT_EQ(recs[2].answer, "4");
  auto ex = to_examples(recs);
  EXPECT_EQ(ex[0].op, "add");
  EXPECT_EQ(ex[0].digits, 4);
  EXPECT_EQ(ex[0].format, "standard");
  EXPECT_EQ(ex[1].op, "user");
  EXPECT_EQ(ex[1].format, "jsonl");
  EXPECT_EQ(ex[2].trace, recs[2].thinking);
}

TEST(Jsonl, CrlfBomAndOptions) {
  const std::string text = "\xEF\xBB\xBF{\"question\": \"q\", \"trace\": \"t\", \"answer\": \"a\"}\r\n\r\n"
                           "{\"question\": \"q2\", \"answer\": \"a2\"}\r\n";
  EXPECT_THROW(parse_jsonl(text, "mem.jsonl"), InputError);  // line 3 has no thinking
  JsonlOptions opt;
  opt.require_thinking = false;
  auto recs = parse_jsonl(text, "mem.jsonl", opt);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].answer, "a");
  EXPECT_EQ(recs[1].line, 3);
  EXPECT_EQ(recs[1].thinking, "");
  EXPECT_TRUE(parse_jsonl("", "empty.jsonl").empty());
  EXPECT_TRUE(parse_jsonl("\n \n\t\n", "blank.jsonl").empty());
}

struct BadCase {
  std::string file;
  long line;
  std::string key;
  std::string message_part;
  std::function<long(const std::string&)> column;  // expected column, from the fixture text
};

TEST(Jsonl, EveryErrorNamesFileLineAndKey) {
  auto key_col = [](long line, std::string key, int nth = 1) {
    return [=](const std::string& path) { return column_of_key(path, line, key, nth); };
  };
  auto zero = [](const std::string&) { return 0L; };
  const std::vector<BadCase> cases = {
      {"missing_question.jsonl", 2, "question", "missing required key", zero},
      {"wrong_type_question.jsonl", 1, "question", "must be a string, got number",
       key_col(1, "question")},
      {"empty_question.jsonl", 1, "question", "must not be empty", key_col(1, "question")},
      {"bad_trajectory_item.jsonl", 1, "thinking_trajectories[1]", "must be a string",
       key_col(1, "thinking_trajectories")},
      {"empty_trajectories.jsonl", 1, "thinking_trajectories", "at least one",
       key_col(1, "thinking_trajectories")},
      {"trajectories_not_array.jsonl", 1, "thinking_trajectories", "array of strings",
       key_col(1, "thinking_trajectories")},
      {"missing_answer.jsonl", 1, "attempt", "missing answer", zero},
      {"missing_thinking.jsonl", 1, "thinking_trajectories", "missing thinking", zero},
      {"ambiguous_thinking.jsonl", 1, "trace", "both 'thinking' and 'trace'", key_col(1, "trace")},
      {"ambiguous_answer.jsonl", 1, "answer", "both 'attempt' and 'answer'", key_col(1, "answer")},
      {"duplicate_key.jsonl", 1, "question", "duplicate key", key_col(1, "question", 2)},
      {"wrong_type_answer.jsonl", 1, "answer", "must be a string, got number",
       key_col(1, "answer")},
      {"not_object.jsonl", 2, "", "must be a JSON object, got array",
       [](const std::string&) { return 1L; }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const std::string path = fixture(c.file);
    InputError e = load_error(c.file);
    EXPECT_EQ(e.file, path);
    EXPECT_EQ(e.line, c.line);
    EXPECT_EQ(e.key, c.key);
    EXPECT_EQ(e.column, c.column(path));
    const std::string what = e.what();
    const std::string where = path + ":" + std::to_string(c.line);
    EXPECT_EQ(what.rfind(where, 0), 0u) << what;
    EXPECT_NE(what.find(c.message_part), std::string::npos) << what;
    if (!c.key.empty()) {
      EXPECT_NE(what.find("'" + c.key + "'"), std::string::npos) << what;
    }
  }
}

TEST(Jsonl, MalformedJsonGivesLineAndColumn) {
  for (const auto& [name, line] : std::vector<std::pair<std::string, long>>{
           {"bad_json.jsonl", 3}, {"trailing_garbage.jsonl", 1}}) {
    SCOPED_TRACE(name);
    InputError e = load_error(name);
    EXPECT_EQ(e.line, line);
    EXPECT_GT(e.column, 0);
    EXPECT_LE(e.column, static_cast<long>(line_of(fixture(name), line).size()) + 1);
    EXPECT_NE(std::string(e.what()).find("malformed JSON"), std::string::npos) << e.what();
    // nlohmann's own "line 1" (it parses one line at a time) must not leak into the message.
    EXPECT_EQ(std::string(e.what()).find("at line 1"), std::string::npos) << e.what();
  }
  // The column points at the unexpected token: here the second string after "y".
  InputError e = load_error("bad_json.jsonl");
  const long answer_col = column_of_key(fixture("bad_json.jsonl"), 3, "answer");
  EXPECT_GE(e.column, answer_col);
  EXPECT_LE(e.column, answer_col + 8);
}

TEST(Jsonl, MissingFileIsInputError) {
  try {
    load_jsonl(fixture("no_such_file.jsonl"));
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.line, 0);
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos);
  }
}

TEST(Jsonl, InvalidUtf8IsMalformed) {
  const std::string text = "{\"question\": \"bad \xff byte\", \"trace\": \"t\", \"answer\": \"a\"}\n";
  try {
    parse_jsonl(text, "utf8.jsonl");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.line, 1);
    EXPECT_GT(e.column, 0);
  }
}

// Fuzz: random byte edits of a valid file either load or throw InputError naming a real line;
// never another exception or a crash.
TEST(Jsonl, FuzzedInputOnlyEverThrowsInputError) {
  const std::string good = audit::testing::read_file(fixture("s1k_shape.jsonl"));
  std::uint64_t state = 12345;
  auto next = [&](std::uint64_t n) {  // small LCG: no dependency on the code under test
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state >> 33) % n;
  };
  const char alphabet[] = "{}[]\":,\\ \n0a-\x80\xff";
  int accepted = 0, refused = 0;
  for (int it = 0; it < 3000; ++it) {
    std::string s = good;
    const int edits = 1 + static_cast<int>(next(3));
    for (int e = 0; e < edits; ++e) {
      const std::size_t pos = next(s.size());
      switch (next(3)) {
        case 0: s[pos] = alphabet[next(sizeof alphabet - 1)]; break;
        case 1: s.erase(pos, 1 + next(4)); break;
        default: s.insert(pos, 1, alphabet[next(sizeof alphabet - 1)]); break;
      }
    }
    const long lines = static_cast<long>(std::count(s.begin(), s.end(), '\n')) + 1;
    try {
      parse_jsonl(s, "fuzz.jsonl");
      ++accepted;
    } catch (const InputError& e) {
      ++refused;
      ASSERT_GE(e.line, 1) << e.what();
      ASSERT_LE(e.line, lines) << e.what();
      ASSERT_EQ(e.file, "fuzz.jsonl");
    } catch (const std::exception& e) {
      FAIL() << "non-InputError exception: " << e.what() << "\n" << s;
    }
  }
  EXPECT_GT(refused, 1000);
  EXPECT_GT(accepted, 10);
}
