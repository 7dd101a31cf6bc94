// Loader for user reasoning data in s1K's shape: one JSON object per line with
//   question                       string, required, non-empty
//   thinking trajectory            exactly one of: "thinking_trajectories" (non-empty array of
//                                  strings, as s1K; joined with "\n"), "thinking" or "trace"
//                                  (string); required unless options say otherwise
//   answer                         "attempt" (s1K: the teacher's answer, what s1 trains on) or
//                                  "answer" (not both); "solution" (s1K: the reference) is used
//                                  when neither is present and is kept as `solution`
// Other keys (cot_type, source_type, metadata, ...) are ignored. Blank lines are allowed; CRLF
// line ends and a UTF-8 byte-order mark are accepted. Anything else - malformed JSON, a line
// that is not an object, a missing key, a wrong type, an empty value, two keys for the same
// field, a duplicated key - throws audit::InputError(file, line, column, key, message), which
// the CLI maps to exit 2. Columns are 1-based byte offsets: of the JSON error, or of the key.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "datasets/tasks/tasks.h"
#include "common/errors.h"

namespace audit::datasets {

struct JsonlRecord {
  std::string question;
  std::string thinking;   // "" only when options.require_thinking is false and none was given
  std::string answer;     // attempt, else answer, else solution
  std::string solution;   // the "solution" field when present ("" otherwise)
  std::string file;       // where it came from
  long line = 0;          // 1-based
};

struct JsonlOptions {
  bool require_thinking = true;  // false: question/answer data (e.g. pretraining documents)
  bool require_answer = true;
};

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
