// Strict JSONL loader for s1K-shaped reasoning data (see jsonl.h).
#include "datasets/jsonl/jsonl.h"

#include <fstream>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

namespace audit::datasets {

namespace {
using nlohmann::json;

// (decoded key, 1-based column of its opening quote) for every key of the top-level object, in
// order of appearance, duplicates included. The line must already be valid JSON.
std::vector<std::pair<std::string, long>> top_level_keys(std::string_view line) {
  std::vector<std::pair<std::string, long>> keys;
  int depth = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == '"') {
      const std::size_t start = i;
      for (++i; i < line.size() && line[i] != '"'; ++i)
        if (line[i] == '\\') ++i;
      if (depth != 1) continue;
      std::size_t k = i + 1;
      while (k < line.size() && (line[k] == ' ' || line[k] == '\t')) ++k;
      if (k < line.size() && line[k] == ':') {
        std::string raw(line.substr(start, i - start + 1));
        std::string key = json::parse(raw).get<std::string>();
        keys.emplace_back(std::move(key), static_cast<long>(start + 1));
      }
    }
  }
  return keys;
}

const char* type_name(const json& v) { return v.type_name(); }

// The message part of a nlohmann parse error, without its own "line 1, column N" prefix.
std::string parse_error_message(const json::parse_error& e) {
  std::string w = e.what();
  std::size_t col = w.find("column ");
  if (col != std::string::npos) {
    std::size_t colon = w.find(": ", col);
    if (colon != std::string::npos) return "malformed JSON: " + w.substr(colon + 2);
  }
  return std::string("malformed JSON: ") + w;
}
}  // namespace

std::vector<JsonlRecord> parse_jsonl(std::string_view text, const std::string& file,
                                     const JsonlOptions& opt) {
  std::vector<JsonlRecord> out;
  long line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank line

    json obj;
    try {
      obj = json::parse(line);
    } catch (const json::parse_error& e) {
      throw InputError(file, line_no, static_cast<long>(e.byte), "", parse_error_message(e));
    }
    if (!obj.is_object())
      throw InputError(file, line_no, 1, "",
                       std::string("each line must be a JSON object, got ") + type_name(obj));

    const auto keys = top_level_keys(line);
    auto column_of = [&](const std::string& key) -> long {
      for (const auto& [k, c] : keys)
        if (k == key) return c;
      return 0;
    };
    for (std::size_t i = 0; i < keys.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (keys[i].first == keys[j].first)
          throw InputError(file, line_no, keys[i].second, keys[i].first,
                           "duplicate key (first at column " + std::to_string(keys[j].second) +
                               ")");
    auto error = [&](const std::string& key, const std::string& msg) -> InputError {
      return InputError(file, line_no, column_of(key), key, msg);
    };
    auto get_string = [&](const std::string& key) -> std::string {
      const json& v = obj.at(key);
      if (!v.is_string())
        throw error(key, std::string("must be a string, got ") + type_name(v));
      std::string s = v.get<std::string>();
      if (trim(s).empty()) throw error(key, "must not be empty");
      return s;
    };
    // Exactly one of `names` may be present; returns it ("" if none).
    auto one_of = [&](std::initializer_list<const char*> names) -> std::string {
      std::string found;
      for (const char* n : names) {
        if (!obj.contains(n)) continue;
        if (!found.empty())
          throw error(n, "both '" + found + "' and '" + n + "' given; use one of them");
        found = n;
      }
      return found;
    };

    JsonlRecord r;
    r.file = file;
    r.line = line_no;
    if (!obj.contains("question"))
      throw InputError(file, line_no, 0, "question", "missing required key");
    r.question = get_string("question");

    const std::string tkey = one_of({"thinking_trajectories", "thinking", "trace"});
    if (tkey == "thinking_trajectories") {
      const json& v = obj.at(tkey);
      if (!v.is_array())
        throw error(tkey, std::string("must be an array of strings, got ") + type_name(v));
      if (v.empty()) throw error(tkey, "must hold at least one trajectory");
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_string())
          throw InputError(file, line_no, column_of(tkey), tkey + "[" + std::to_string(i) + "]",
                           std::string("must be a string, got ") + type_name(v[i]));
        if (i) r.thinking += "\n";
        r.thinking += v[i].get<std::string>();
      }
      if (trim(r.thinking).empty()) throw error(tkey, "must not be empty");
    } else if (!tkey.empty()) {
      r.thinking = get_string(tkey);
    } else if (opt.require_thinking) {
      throw InputError(file, line_no, 0, "thinking_trajectories",
                       "missing thinking trajectory: give one of thinking_trajectories (array of "
                       "strings), thinking or trace (string)");
    }

    if (obj.contains("solution")) r.solution = get_string("solution");
    const std::string akey = one_of({"attempt", "answer"});
    if (!akey.empty())
      r.answer = get_string(akey);
    else if (!r.solution.empty())
      r.answer = r.solution;
    else if (opt.require_answer)
      throw InputError(file, line_no, 0, "attempt",
                       "missing answer: give one of attempt, answer or solution (string)");
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<JsonlRecord> load_jsonl(const std::string& path, const JsonlOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, 0, 0, "", "cannot open JSONL file for reading (does it exist?)");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw InputError(path, 0, 0, "", "read error");
  return parse_jsonl(ss.str(), path, options);
}

Example to_example(const JsonlRecord& r) {
  Example e;
  e.question = r.question;
  e.trace = r.thinking;
  e.answer = r.answer;
  if (auto p = parse_question(r.question)) {
    e.op = p->op;
    e.digits = p->digits();
    e.format = p->format;
  } else {
    e.op = "user";
    e.digits = 0;
    e.format = "jsonl";
  }
  return e;
}

std::vector<Example> to_examples(const std::vector<JsonlRecord>& records) {
  std::vector<Example> v;
  v.reserve(records.size());
  for (const auto& r : records) v.push_back(to_example(r));
  return v;
}

}  // namespace audit::datasets
