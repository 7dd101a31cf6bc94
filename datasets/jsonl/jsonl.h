// Loader for user reasoning data in s1K's shape, and the strict line reader it shares with the
// benchmark suite loader (suites/benchmarks). One JSON object per line with, by default:
//   question                       string, required, non-empty
//   thinking trajectory            exactly one of: "thinking_trajectories" (non-empty array of
//                                  strings, as s1K; joined with "\n"), "thinking" or "trace"
//                                  (string); required unless options say otherwise
//   answer                         "attempt" (s1K: the teacher's answer, what s1 trains on) or
//                                  "answer" (not both); "solution" (s1K: the reference) is used
//                                  when neither is present and is kept as `solution`
// A recipe may map each field to a key of its own (JsonlFields): a mapped field reads exactly
// that key, with no fallback (the thinking key may hold a string or an array of strings).
// Other keys (cot_type, source_type, metadata, ...) are ignored. Blank lines are allowed; CRLF
// line ends and a UTF-8 byte-order mark are accepted. Anything else - malformed JSON, invalid
// UTF-8, a line over max_line_bytes, a file with no record, a line that is not an object, a
// missing key, a wrong type, an empty value, two keys for the same field, a duplicated key -
// throws audit::InputError(file, line, column, key, message), which the CLI maps to exit 2.
// Columns are 1-based byte offsets into the line (after a byte-order mark on line 1): of the
// JSON error, of the first invalid UTF-8 byte, or of the key's opening quote.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "datasets/tasks/tasks.h"
#include "common/errors.h"

namespace audit::datasets {

// Lines longer than this are refused before they are parsed (JsonlOptions::max_line_bytes).
inline constexpr std::size_t kDefaultMaxLineBytes = std::size_t{16} << 20;  // 16 MiB

struct JsonlRecord {
  std::string question;
  std::string thinking;   // "" only when options.require_thinking is false and none was given
  std::string answer;     // attempt, else answer, else solution (or the mapped answer key)
  std::string solution;   // the "solution" field when present ("" otherwise)
  std::string file;       // where it came from
  long line = 0;          // 1-based
};

// Which key holds each field. At its default a field keeps the fallbacks described above; set
// to another name (a recipe's [data] mapping), exactly that key is read, and a missing one is
// an InputError naming it. Names must not be empty (InputError, line 0, key "fields.<field>").
struct JsonlFields {
  std::string question = "question";
  std::string thinking = "thinking_trajectories";  // mapped: a string or an array of strings
  std::string answer = "attempt";                  // mapped: a string; no "solution" fallback
};

struct JsonlOptions {
  bool require_thinking = true;  // false: question/answer data (e.g. pretraining documents)
  bool require_answer = true;
  JsonlFields fields;
  // A longer line (bytes, without its line end) is refused before any JSON is built from it.
  std::size_t max_line_bytes = kDefaultMaxLineBytes;
};

// The whole file as bytes: a regular file is read once into a string of its size, a pipe or
// a device to its end. Throws audit::InputError (line 0) when the path does not exist, is a
// folder, or cannot be opened or read.
std::string load_text_file(const std::string& path);

// The column of a top-level key's opening quote on the current line (1-based), 0 if absent.
using JsonlColumnOf = std::function<long(const std::string& key)>;
// Called once per record: the parsed object and its 1-based line number.
using JsonlObjectFn =
    std::function<void(const nlohmann::json& object, long line, const JsonlColumnOf& column_of)>;

// The strict line reader both loaders use. Splits `text` into lines ('\n', a trailing '\r'
// removed, a UTF-8 byte-order mark skipped on line 1), skips blank lines (spaces and tabs
// only), and for every other line checks, in this order: its size (InputError at column 1
// when over max_line_bytes, before anything else is done with it), UTF-8 validity (column of
// the first invalid sequence, see first_invalid_utf8), JSON syntax (column from the parser),
// that it is an object (column 1), and that no top-level key repeats (column of the second
// copy). Then calls fn. A text with no record throws InputError(file, 0, 0, "", "no records
// ..."). Errors thrown by fn pass through unchanged. `file` only names the text in errors.
void for_each_jsonl_object(std::string_view text, const std::string& file,
                           std::size_t max_line_bytes, const JsonlObjectFn& fn);

// The 0-based offset where the first invalid UTF-8 sequence of `bytes` starts (a stray byte, or
// the lead byte of a sequence that is cut short, overlong, a surrogate or over U+10FFFF: the
// position Python's UnicodeDecodeError gives), or std::string_view::npos when all is valid.
std::size_t first_invalid_utf8(std::string_view bytes);

// Reads a file. Throws audit::InputError (unreadable file: line 0).
std::vector<JsonlRecord> load_jsonl(const std::string& path, const JsonlOptions& options = {});
// Parses text; `file` names it in errors.
std::vector<JsonlRecord> parse_jsonl(std::string_view text, const std::string& file,
                                     const JsonlOptions& options = {});

// An Example for the rest of the pipeline: op/digits/format from parse_question when the
// question is of the arithmetic family, else op "user", digits 0, format "jsonl".
Example to_example(const JsonlRecord& r);
std::vector<Example> to_examples(const std::vector<JsonlRecord>& records);

}  // namespace audit::datasets
