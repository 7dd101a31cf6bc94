// Tests of datasets/jsonl: the s1K-shaped loader accepts the documented key variants and the
// recipe's field mapping, and refuses every malformed line (bad JSON, invalid UTF-8, a line
// over the size limit, an empty file, ...) with audit::InputError naming file, line, column and
// key (exit 2).
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

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

namespace {
// An InputError from parse_jsonl(text) (fails the test if none is thrown).
InputError parse_error(const std::string& text, const JsonlOptions& opt = {}) {
  try {
    parse_jsonl(text, "mem.jsonl", opt);
  } catch (const InputError& e) {
    return e;
  }
  ADD_FAILURE() << "parsed without error: " << text.substr(0, 200);
  return InputError("", 0, 0, "", "none");
}
}  // namespace

TEST(Jsonl, EmptyFileAndBlankLinesAreRefused) {
  for (const std::string text : {"", "\n \n\t\n", "\r\n", "\xEF\xBB\xBF"}) {
    InputError e = parse_error(text);
    EXPECT_EQ(e.file, "mem.jsonl");
    EXPECT_EQ(e.line, 0);
    EXPECT_EQ(e.column, 0);
    EXPECT_EQ(e.key, "");
    EXPECT_EQ(std::string(e.what()).rfind("mem.jsonl: no records", 0), 0u) << e.what();
  }
}

TEST(Jsonl, FieldMappingReadsExactlyTheMappedKeys) {
  JsonlOptions opt;
  opt.fields.question = "prompt";
  opt.fields.thinking = "reasoning";
  opt.fields.answer = "response";
  const std::string text =
      "{\"prompt\": \"p1\", \"reasoning\": \"r1\", \"response\": \"a1\", \"question\": 7}\n"
      "{\"prompt\": \"p2\", \"reasoning\": [\"r2a\", \"r2b\"], \"response\": \"a2\"}\n";
  const auto recs = parse_jsonl(text, "mem.jsonl", opt);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].question, "p1");  // "question" (a number here) is not read
  EXPECT_EQ(recs[0].thinking, "r1");
  EXPECT_EQ(recs[0].answer, "a1");
  EXPECT_EQ(recs[0].solution, "");
  EXPECT_EQ(recs[1].thinking, "r2a\nr2b");
  EXPECT_EQ(recs[1].answer, "a2");

  // A mapped key is read with no fallback: the default keys do not stand in for it.
  const std::string line = "{\"prompt\": \"p\", \"trace\": \"t\", \"attempt\": \"a\", \"solution\": \"s\"}";
  InputError e = parse_error(line + "\n", opt);
  EXPECT_EQ(e.line, 1);
  EXPECT_EQ(e.column, 0);
  EXPECT_EQ(e.key, "reasoning");
  EXPECT_NE(std::string(e.what()).find("mem.jsonl:1: 'reasoning': missing thinking"),
            std::string::npos) << e.what();
  const std::string s1k = "{\"question\": \"q\", \"trace\": \"t\", \"attempt\": \"a\", \"solution\": \"s\"}";
  JsonlOptions only_answer;
  only_answer.fields.answer = "response";
  e = parse_error(s1k + "\n", only_answer);  // "question" is still the default
  EXPECT_EQ(e.key, "response");
  EXPECT_EQ(e.line, 1);
  EXPECT_NE(std::string(e.what()).find("missing answer"), std::string::npos) << e.what();
  JsonlOptions only_question;
  only_question.fields.question = "prompt_text";
  e = parse_error("{\"question\": \"q\", \"trace\": \"t\", \"answer\": \"a\"}\n", only_question);
  EXPECT_EQ(e.key, "prompt_text");
  EXPECT_NE(std::string(e.what()).find("missing required key"), std::string::npos);

  // Types of mapped keys: thinking is a string or an array of strings, the answer a string.
  const std::string bad_think = "{\"prompt\": \"p\", \"reasoning\": 3, \"response\": \"a\"}";
  e = parse_error(bad_think + "\n", opt);
  EXPECT_EQ(e.key, "reasoning");
  EXPECT_EQ(e.column, static_cast<long>(bad_think.find("\"reasoning\"")) + 1);
  EXPECT_NE(std::string(e.what()).find("a string or an array of strings, got number"),
            std::string::npos) << e.what();
  const std::string bad_item = "{\"prompt\": \"p\", \"reasoning\": [\"x\", null], \"response\": \"a\"}";
  e = parse_error(bad_item + "\n", opt);
  EXPECT_EQ(e.key, "reasoning[1]");
  EXPECT_EQ(e.column, static_cast<long>(bad_item.find("\"reasoning\"")) + 1);
  const std::string bad_answer = "{\"prompt\": \"p\", \"reasoning\": \"r\", \"response\": [\"a\"]}";
  e = parse_error(bad_answer + "\n", opt);
  EXPECT_EQ(e.key, "response");
  EXPECT_EQ(e.column, 35);  // counted by hand: the opening quote of "response"
  EXPECT_EQ(static_cast<long>(bad_answer.find("\"response\"")) + 1, 35);

  // Mapping the answer to s1K's reference keeps it as the solution too.
  JsonlOptions to_solution;
  to_solution.fields.answer = "solution";
  auto r = parse_jsonl(s1k + "\n", "mem.jsonl", to_solution);
  EXPECT_EQ(r.at(0).answer, "s");
  EXPECT_EQ(r.at(0).solution, "s");
  // The defaults keep their fallbacks (attempt, else answer, else solution).
  r = parse_jsonl(s1k + "\n", "mem.jsonl");
  EXPECT_EQ(r.at(0).answer, "a");
  EXPECT_EQ(r.at(0).solution, "s");

  JsonlOptions empty_name;
  empty_name.fields.thinking = "";
  e = parse_error(line + "\n", empty_name);
  EXPECT_EQ(e.key, "fields.thinking");
}

TEST(Jsonl, InvalidUtf8GivesTheColumnOfTheFirstBadByte) {
  // (bytes inside the question's string, 0-based offset of the bad sequence within them)
  const std::vector<std::pair<std::string, std::size_t>> cases = {
      {"ok \xff", 3},                     // never a lead byte
      {"caf\xc3\xa9 \x80", 6},            // stray continuation byte after a valid 2-byte "é"
      {"\xc0\xaf", 0},                    // overlong '/'
      {"ab\xe0\x80\x80", 2},              // overlong 3-byte form
      {"\xed\xa0\x80", 0},                // UTF-16 surrogate
      {"x\xf4\x90\x80\x80", 1},           // over U+10FFFF
      {"\xe2\x82", 0},                    // cut short by the closing quote
      {"\xf0\x9f\x98\x80 \xe2\x82\x28", 5},  // valid emoji, then a bad continuation byte
  };
  const std::string prefix = "{\"question\": \"";
  for (const auto& [bytes, offset] : cases) {
    SCOPED_TRACE(bytes);
    const std::string text = "{\"question\": \"fine\", \"trace\": \"t\", \"answer\": \"a\"}\n\n" +
                             prefix + bytes + "\", \"trace\": \"t\", \"answer\": \"a\"}\n";
    InputError e = parse_error(text);
    EXPECT_EQ(e.line, 3);
    EXPECT_EQ(e.column, static_cast<long>(prefix.size() + offset) + 1);
    EXPECT_EQ(e.key, "");
    EXPECT_NE(std::string(e.what()).find("invalid UTF-8"), std::string::npos) << e.what();
    EXPECT_EQ(first_invalid_utf8(bytes), offset);
  }
  // Valid text of every length, up to U+10FFFF, passes.
  EXPECT_EQ(first_invalid_utf8("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xef\xbb\xbf"),
            std::string_view::npos);
  EXPECT_EQ(first_invalid_utf8(""), std::string_view::npos);
  // A bad byte outside any string (where the JSON parser would also fail) gets the same column.
  InputError e = parse_error("{\"question\": \"q\",\xfe \"trace\": \"t\", \"answer\": \"a\"}\n");
  EXPECT_EQ(e.column, 18);
  EXPECT_NE(std::string(e.what()).find("0xFE"), std::string::npos) << e.what();
}

TEST(Jsonl, LineOverTheLimitIsRefusedBeforeParsing) {
  JsonlOptions opt;
  opt.max_line_bytes = 60;
  const std::string ok = "{\"question\": \"q\", \"trace\": \"t\", \"answer\": \"a\"}";  // 47 bytes
  const std::string longer = "{\"question\": \"" + std::string(100, 'x') + "\"";  // not even JSON
  EXPECT_EQ(parse_jsonl(ok + "\r\n", "mem.jsonl", opt).size(), 1u);
  InputError e = parse_error(ok + "\n" + longer + "\n", opt);
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 1);
  EXPECT_EQ(e.key, "");
  EXPECT_NE(std::string(e.what()).find("mem.jsonl:2:1: line is 115 bytes long, over the limit "
                                       "of 60 bytes"), std::string::npos) << e.what();
  opt.max_line_bytes = ok.size();  // the limit itself is allowed; CR and LF do not count
  EXPECT_EQ(parse_jsonl(ok + "\r\n", "mem.jsonl", opt).size(), 1u);
  opt.max_line_bytes = ok.size() - 1;
  EXPECT_EQ(parse_error(ok + "\r\n", opt).line, 1);
}

namespace {
// Peak resident memory of this process so far, in MiB (Linux: ru_maxrss is in KiB).
double peak_rss_mib() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}
}  // namespace

// A 50 MB line at the default 16 MiB limit: refused fast, with its size, and without a second
// copy of it (a JSON string built from it would double the memory).
TEST(Jsonl, FiftyMegabyteLineIsRefusedFastWithoutASecondCopy) {
  audit::testing::TempDir dir("audit_jsonl");
  const std::string path = dir.file("big.jsonl");
  constexpr std::size_t kLine = 50'000'000;
  {
    std::ofstream out(path, std::ios::binary);
    out << "{\"question\": \"q\", \"trace\": \"t\", \"answer\": \"a\"}\n{\"question\": \"";
    const std::string chunk(1 << 20, 'x');
    std::size_t left = kLine - 16;  // 14 bytes of prefix, 2 of suffix
    while (left > 0) {
      const std::size_t n = std::min(left, chunk.size());
      out.write(chunk.data(), static_cast<std::streamsize>(n));
      left -= n;
    }
    out << "\"}\n";
  }
  const double rss_before = peak_rss_mib();
  const auto t0 = std::chrono::steady_clock::now();
  try {
    load_jsonl(path);
    FAIL() << "a 50 MB line was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file, path);
    EXPECT_EQ(e.line, 2);
    EXPECT_EQ(e.column, 1);
    EXPECT_NE(std::string(e.what()).find("line is 50,000,000 bytes long, over the limit of "
                                         "16,777,216 bytes"), std::string::npos) << e.what();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double grown = peak_rss_mib() - rss_before;
  std::printf("50 MB line refused in %.3f s; peak memory grew %.1f MiB\n", seconds, grown);
  EXPECT_LT(seconds, 5.0);  // one read and one scan for '\n': ~0.05 s here, slack for a busy CI
  EXPECT_LT(grown, 80.0);   // the file's one copy (48 MiB); a parsed copy would add 48 more
}

TEST(Jsonl, ForEachObjectGivesLinesAndColumns) {
  std::vector<std::pair<long, long>> seen;  // (line, column of "b")
  for_each_jsonl_object("\n{\"a\": 1, \"b\": [2]}\r\n  \n{\"b\": 3}", "mem.jsonl",
                        kDefaultMaxLineBytes,
                        [&](const nlohmann::json& obj, long line, const JsonlColumnOf& col) {
                          EXPECT_TRUE(obj.contains("b"));
                          EXPECT_EQ(col("missing"), 0);
                          seen.emplace_back(line, col("b"));
                        });
  EXPECT_EQ(seen, (std::vector<std::pair<long, long>>{{2, 10}, {4, 2}}));
  // An error of the callback passes through as it is.
  try {
    for_each_jsonl_object("{\"a\": 1}", "mem.jsonl", kDefaultMaxLineBytes,
                          [](const nlohmann::json&, long line, const JsonlColumnOf& col) {
                            throw InputError("mem.jsonl", line, col("a"), "a", "refused");
                          });
    FAIL();
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "mem.jsonl:1:2: 'a': refused");
  }
}

TEST(Jsonl, LoadTextFileRefusesWhatItCannotRead) {
  audit::testing::TempDir dir("audit_jsonl");
  for (const std::string path : {dir.path(), dir.file("absent.jsonl")}) {
    SCOPED_TRACE(path);
    try {
      load_text_file(path);
      FAIL();
    } catch (const InputError& e) {
      EXPECT_EQ(e.file, path);
      EXPECT_EQ(e.line, 0);
    }
  }
  audit::testing::write_file(dir.file("a.txt"), std::string("x\0y\n", 4));
  EXPECT_EQ(load_text_file(dir.file("a.txt")), std::string("x\0y\n", 4));
  EXPECT_EQ(load_text_file("/dev/null"), "");  // not a regular file: read to its end
}
