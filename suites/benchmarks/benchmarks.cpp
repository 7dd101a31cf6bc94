// Benchmark suite files: math, exact and multiple-choice items from JSONL (see benchmarks.h).
#include "suites/benchmarks/benchmarks.h"

#include <cmath>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "datasets/jsonl/jsonl.h"  // for_each_jsonl_object, load_text_file
#include "datasets/tasks/random.h" // Rng, fisher_yates
#include "datasets/tasks/tasks.h"  // trim

namespace audit::suites {

namespace {
using nlohmann::json;
using datasets::JsonlColumnOf;
using datasets::trim;

constexpr int kMinChoices = 2;
constexpr int kMaxChoices = 26;  // A..Z

// One line's reads, each error naming the file, the line, the key's column and the key.
struct Item {
  const json& obj;
  const std::string& file;
  long line;
  const JsonlColumnOf& column_of;

  InputError error(const std::string& key, const std::string& msg) const {
    return InputError(file, line, column_of(key), key, msg);
  }
  // An element of an array-valued key: the column of the array's key, the key as "key[i]".
  InputError element_error(const std::string& key, std::size_t i, const std::string& msg) const {
    return InputError(file, line, column_of(key), key + "[" + std::to_string(i) + "]", msg);
  }
  InputError missing(const std::string& key, const std::string& msg) const {
    return InputError(file, line, 0, key, msg);
  }
  std::string nonempty_string(const std::string& key) const {
    const json& v = obj.at(key);
    if (!v.is_string())
      throw error(key, std::string("must be a string, got ") + v.type_name());
    std::string s = v.get<std::string>();
    if (trim(s).empty()) throw error(key, "must not be empty");
    return s;
  }
};

// A JSON number as its shortest text: integers as written, a float with an integral value
// below 2^53 without ".0", other floats as nlohmann's shortest round-trip form.
std::string number_text(const json& v) {
  if (v.is_number_integer()) return v.dump();
  const double d = v.get<double>();
  if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9007199254740992.0)
    return std::to_string(static_cast<long long>(d));
  return v.dump();
}

std::string question_of(const Item& it, const SuiteSpec& spec) {
  std::string key = spec.question_field;
  if (key == "question" && !it.obj.contains(key) && it.obj.contains("problem")) key = "problem";
  if (!it.obj.contains(key))
    throw it.missing(key, key == "question" ? "missing question (give 'question' or 'problem')"
                                            : "missing question");
  return it.nonempty_string(key);
}

// The reference answer of a math or exact item.
std::string reference_of(const Item& it, const SuiteSpec& spec) {
  const std::string& key = spec.answer_field;
  if (!it.obj.contains(key))
    throw it.missing(key, "missing reference answer: every item of this " +
                              std::string(to_string(spec.kind)) + " suite needs one");
  const json& v = it.obj.at(key);
  if (v.is_number()) return number_text(v);
  return it.nonempty_string(key);
}

// The choices of a choice item in their file order and the index of the correct one.
struct Choices {
  std::vector<std::string> texts;
  int correct = -1;
};

// Appends the array of choice strings at `key` to out, each non-empty and distinct from every
// choice before it (compared after trimming); names[j] is how messages name out[j].
void read_choice_array(const Item& it, const std::string& key, std::vector<std::string>& out,
                       const std::vector<std::string>& names) {
  const json& v = it.obj.at(key);
  if (!v.is_array())
    throw it.error(key, std::string("must be an array of strings, got ") + v.type_name());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string())
      throw it.element_error(key, i, std::string("must be a string, got ") + v[i].type_name());
    std::string s = v[i].get<std::string>();
    if (trim(s).empty()) throw it.element_error(key, i, "must not be empty");
    for (std::size_t j = 0; j < out.size(); ++j)
      if (trim(out[j]) == trim(s))
        throw it.element_error(key, i, "duplicate choice: the same text as " + names[j]);
    out.push_back(std::move(s));
  }
}

std::string letter(int i) { return std::string(1, static_cast<char>('A' + i)); }

Choices choices_of(const Item& it, const SuiteSpec& spec) {
  const std::string& ckey = spec.choices_field;
  const bool has_choices = it.obj.contains(ckey);
  const bool has_gpqa = it.obj.contains("correct_answer") || it.obj.contains("incorrect_answers");
  if (has_choices && has_gpqa) {
    const std::string other = it.obj.contains("correct_answer") ? "correct_answer"
                                                                : "incorrect_answers";
    throw it.error(other, "both '" + ckey + "' and '" + other +
                              "' given; use one form ('" + ckey + "' with '" + spec.answer_field +
                              "', or 'correct_answer' with 'incorrect_answers')");
  }
  Choices c;
  std::vector<std::string> names;  // how messages name each choice
  if (has_gpqa) {
    for (const char* key : {"correct_answer", "incorrect_answers"})
      if (!it.obj.contains(key))
        throw it.missing(key, "missing: GPQA's form needs both 'correct_answer' (string) and "
                              "'incorrect_answers' (array of strings)");
    c.texts.push_back(it.nonempty_string("correct_answer"));
    c.correct = 0;
    names.push_back("correct_answer");
    const std::size_t n = it.obj.at("incorrect_answers").is_array()
                              ? it.obj.at("incorrect_answers").size()
                              : 0;
    for (std::size_t i = 0; i < n; ++i)
      names.push_back("incorrect_answers[" + std::to_string(i) + "]");
    read_choice_array(it, "incorrect_answers", c.texts, names);
    if (c.texts.size() < kMinChoices || c.texts.size() > kMaxChoices)
      throw it.error("incorrect_answers", "must hold 1 to 25 answers (2 to 26 choices in all), "
                                          "got " + std::to_string(c.texts.size() - 1));
    return c;
  }
  if (!has_choices)
    throw it.missing(ckey, "missing choices: give '" + ckey + "' (array of strings) with '" +
                               spec.answer_field +
                               "', or 'correct_answer' with 'incorrect_answers'");
  const std::size_t n = it.obj.at(ckey).is_array() ? it.obj.at(ckey).size() : 0;
  for (std::size_t i = 0; i < n; ++i) names.push_back(ckey + "[" + std::to_string(i) + "]");
  read_choice_array(it, ckey, c.texts, names);
  const int count = static_cast<int>(c.texts.size());
  if (count < kMinChoices || count > kMaxChoices)
    throw it.error(ckey, "must hold 2 to 26 choices, got " + std::to_string(count));

  const std::string& akey = spec.answer_field;
  if (!it.obj.contains(akey))
    throw it.missing(akey, "missing answer: a letter, a 0-based index or the text of a choice");
  const json& a = it.obj.at(akey);
  const std::string range = "A to " + letter(count - 1);
  if (a.is_number_integer()) {
    const bool in_range = a.is_number_unsigned() ? a.get<std::uint64_t>() < std::uint64_t(count)
                                                 : a.get<std::int64_t>() >= 0 &&
                                                       a.get<std::int64_t>() < count;
    if (!in_range)
      throw it.error(akey, "choice index " + a.dump() + " is out of range: the item has " +
                               std::to_string(count) + " choices (0 to " +
                               std::to_string(count - 1) + ")");
    c.correct = static_cast<int>(a.get<std::int64_t>());
    return c;
  }
  if (!a.is_string())
    throw it.error(akey, std::string("must be a letter, a 0-based integer index or the text of a "
                                     "choice, got ") + a.type_name());
  const std::string s = trim(a.get<std::string>());
  if (s.empty()) throw it.error(akey, "must not be empty");
  const bool is_letter = s.size() == 1 && s[0] >= 'A' && s[0] <= 'Z';
  if (is_letter && s[0] - 'A' < count) {
    c.correct = s[0] - 'A';
    return c;
  }
  for (int i = 0; i < count; ++i)
    if (trim(c.texts[i]) == s) {
      c.correct = i;
      return c;
    }
  if (is_letter)
    throw it.error(akey, "unknown choice letter '" + s + "': the item has " +
                             std::to_string(count) + " choices (" + range + ")");
  throw it.error(akey, "matches no choice: give a letter " + range +
                           ", a 0-based index or the text of one choice");
}

SuiteItem choice_item(const Item& it, const SuiteSpec& spec, std::string question) {
  const Choices c = choices_of(it, spec);
  const int n = static_cast<int>(c.texts.size());
  const std::vector<int> perm = choice_permutation(n, spec.shuffle_seed, it.line);
  std::vector<std::string> shuffled;
  SuiteItem item;
  for (int k = 0; k < n; ++k) {
    shuffled.push_back(c.texts[static_cast<std::size_t>(perm[k])]);
    if (perm[k] == c.correct) item.reference = letter(k);
  }
  item.question = format_choice_question(question, shuffled);
  item.n_choices = n;
  return item;
}
}  // namespace

SuiteKind parse_suite_kind(std::string_view s) {
  if (s == "math") return SuiteKind::math;
  if (s == "choice") return SuiteKind::choice;
  if (s == "exact") return SuiteKind::exact;
  throw std::invalid_argument("unknown suite kind '" + std::string(s) +
                              "' (expected math, choice or exact)");
}

const char* to_string(SuiteKind k) {
  switch (k) {
    case SuiteKind::math: return "math";
    case SuiteKind::choice: return "choice";
    case SuiteKind::exact: return "exact";
  }
  return "unknown";
}

std::vector<int> choice_permutation(int n, uint64_t shuffle_seed, long line) {
  std::vector<int> perm(static_cast<std::size_t>(n > 0 ? n : 0));
  for (int i = 0; i < n; ++i) perm[static_cast<std::size_t>(i)] = i;
  datasets::Rng rng = datasets::Rng::stream(shuffle_seed, "choice:" + std::to_string(line));
  datasets::fisher_yates(perm, rng);
  return perm;
}

std::string format_choice_question(const std::string& question,
                                   const std::vector<std::string>& choices) {
  std::string s = question + "\n";
  for (std::size_t k = 0; k < choices.size(); ++k)
    s += "\n" + letter(static_cast<int>(k)) + ") " + choices[k];
  return s;
}

Suite parse_suite(std::string_view text, const SuiteSpec& spec) {
  for (const auto* key : {&spec.question_field, &spec.answer_field, &spec.choices_field})
    if (key->empty()) throw InputError(spec.path, 0, 0, "", "a suite's key name is empty");
  Suite suite;
  suite.spec = spec;
  datasets::for_each_jsonl_object(
      text, spec.path, datasets::kDefaultMaxLineBytes,
      [&](const json& obj, long line, const JsonlColumnOf& column_of) {
        const Item it{obj, spec.path, line, column_of};
        std::string question = question_of(it, spec);
        SuiteItem item;
        if (spec.kind == SuiteKind::choice) {
          item = choice_item(it, spec, std::move(question));
        } else {
          item.question = std::move(question);
          item.reference = reference_of(it, spec);
        }
        item.id = spec.path + ":" + std::to_string(line);
        if (spec.limit <= 0 || static_cast<int64_t>(suite.items.size()) < spec.limit)
          suite.items.push_back(std::move(item));
      });
  return suite;
}

Suite load_suite(const SuiteSpec& spec) {
  return parse_suite(datasets::load_text_file(spec.path), spec);
}

}  // namespace audit::suites
