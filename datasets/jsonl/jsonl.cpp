// Strict JSONL reader and the s1K-shaped loader built on it (see jsonl.h).
#include "datasets/jsonl/jsonl.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
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

// "12,345,678": byte counts in messages.
std::string with_commas(std::size_t n) {
  const std::string d = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (i && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return out;
}

// Typed reads of one record's keys, each error naming file, line, column and key.
class RecordReader {
 public:
  RecordReader(const json& obj, const std::string& file, long line, const JsonlColumnOf& column_of)
      : obj_(obj), file_(file), line_(line), column_of_(column_of) {}

  bool has(const std::string& key) const { return obj_.contains(key); }
  InputError error(const std::string& key, const std::string& msg) const {
    return InputError(file_, line_, column_of_(key), key, msg);
  }
  InputError missing(const std::string& key, const std::string& msg) const {
    return InputError(file_, line_, 0, key, msg);
  }
  // A string that is not empty (after trimming).
  std::string string_at(const std::string& key) const {
    const json& v = obj_.at(key);
    if (!v.is_string()) throw error(key, std::string("must be a string, got ") + type_name(v));
    std::string s = v.get<std::string>();
    if (trim(s).empty()) throw error(key, "must not be empty");
    return s;
  }
  // A non-empty array of strings joined with "\n", or, when string_allowed, a string.
  std::string trajectories_at(const std::string& key, bool string_allowed) const {
    const json& v = obj_.at(key);
    if (string_allowed && v.is_string()) return string_at(key);
    if (!v.is_array())
      throw error(key, std::string(string_allowed ? "must be a string or an array of strings"
                                                  : "must be an array of strings") +
                           ", got " + type_name(v));
    if (v.empty()) throw error(key, "must hold at least one trajectory");
    std::string joined;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string())
        throw InputError(file_, line_, column_of_(key), key + "[" + std::to_string(i) + "]",
                         std::string("must be a string, got ") + type_name(v[i]));
      if (i) joined += "\n";
      joined += v[i].get<std::string>();
    }
    if (trim(joined).empty()) throw error(key, "must not be empty");
    return joined;
  }
  // Exactly one of `names` may be present; returns it ("" if none).
  std::string one_of(std::initializer_list<const char*> names) const {
    std::string found;
    for (const char* n : names) {
      if (!obj_.contains(n)) continue;
      if (!found.empty())
        throw error(n, "both '" + found + "' and '" + n + "' given; use one of them");
      found = n;
    }
    return found;
  }

 private:
  const json& obj_;
  const std::string& file_;
  long line_;
  const JsonlColumnOf& column_of_;
};
}  // namespace

std::size_t first_invalid_utf8(std::string_view b) {
  const std::size_t n = b.size();
  std::size_t i = 0;
  while (i < n) {
    const auto c = static_cast<unsigned char>(b[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    // The sequence's length and the range of its second byte (Unicode, Table 3-7).
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3, lo = 0xA0;  // no overlong form
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      len = 3;
    } else if (c == 0xED) {
      len = 3, hi = 0x9F;  // no surrogate
    } else if (c == 0xF0) {
      len = 4, lo = 0x90;  // no overlong form
    } else if (c >= 0xF1 && c <= 0xF3) {
      len = 4;
    } else if (c == 0xF4) {
      len = 4, hi = 0x8F;  // nothing over U+10FFFF
    } else {
      return i;  // 80..C1, F5..FF: never the first byte of a sequence
    }
    if (i + len > n) return i;
    const auto c1 = static_cast<unsigned char>(b[i + 1]);
    if (c1 < lo || c1 > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      const auto ck = static_cast<unsigned char>(b[i + k]);
      if (ck < 0x80 || ck > 0xBF) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

std::string load_text_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw InputError(path, 0, 0, "",
                     std::string("cannot open the file for reading: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode))
    throw InputError(path, 0, 0, "", "is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, 0, 0, "", "cannot open the file for reading");
  std::string text;
  if (S_ISREG(st.st_mode)) {  // one allocation of the file's size, one read into it
    text.resize(static_cast<std::size_t>(st.st_size));
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.gcount() != static_cast<std::streamsize>(text.size()))
      throw InputError(path, 0, 0, "",
                       "read error after " + std::to_string(in.gcount()) + " of " +
                           std::to_string(text.size()) + " bytes");
  } else {  // a pipe or a device: read until its end
    char buf[1 << 16];
    while (in.read(buf, sizeof buf) || in.gcount() > 0)
      text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (in.bad()) throw InputError(path, 0, 0, "", "read error");
  }
  return text;
}

void for_each_jsonl_object(std::string_view text, const std::string& file,
                           std::size_t max_line_bytes, const JsonlObjectFn& fn) {
  long line_no = 0;
  long records = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
    if (line.size() > max_line_bytes)
      throw InputError(file, line_no, 1, "",
                       "line is " + with_commas(line.size()) + " bytes long, over the limit of " +
                           with_commas(max_line_bytes) +
                           " bytes per line (max_line_bytes); JSONL holds one record per line");
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank line
    if (const std::size_t bad = first_invalid_utf8(line); bad != std::string_view::npos) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(
                                                   static_cast<unsigned char>(line[bad])));
      throw InputError(file, line_no, static_cast<long>(bad) + 1, "",
                       std::string("invalid UTF-8: a sequence starting with byte ") + hex);
    }

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
    for (std::size_t i = 0; i < keys.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (keys[i].first == keys[j].first)
          throw InputError(file, line_no, keys[i].second, keys[i].first,
                           "duplicate key (first at column " + std::to_string(keys[j].second) +
                               ")");
    const JsonlColumnOf column_of = [&keys](const std::string& key) -> long {
      for (const auto& [k, c] : keys)
        if (k == key) return c;
      return 0;
    };
    ++records;
    fn(obj, line_no, column_of);
  }
  if (records == 0)
    throw InputError(file, 0, 0, "",
                     text.empty() ? "no records: the file is empty"
                                  : "no records: the file holds only blank lines");
}

std::vector<JsonlRecord> parse_jsonl(std::string_view text, const std::string& file,
                                     const JsonlOptions& opt) {
  const JsonlFields defaults;
  const std::pair<const char*, const std::string*> names[] = {
      {"question", &opt.fields.question},
      {"thinking", &opt.fields.thinking},
      {"answer", &opt.fields.answer}};
  for (const auto& [field, name] : names)
    if (name->empty())
      throw InputError(file, 0, 0, std::string("fields.") + field, "the key name is empty");
  const bool mapped_thinking = opt.fields.thinking != defaults.thinking;
  const bool mapped_answer = opt.fields.answer != defaults.answer;

  std::vector<JsonlRecord> out;
  for_each_jsonl_object(
      text, file, opt.max_line_bytes,
      [&](const json& obj, long line_no, const JsonlColumnOf& column_of) {
        const RecordReader rd(obj, file, line_no, column_of);
        JsonlRecord r;
        r.file = file;
        r.line = line_no;
        const std::string& qkey = opt.fields.question;
        if (!rd.has(qkey)) throw rd.missing(qkey, "missing required key");
        r.question = rd.string_at(qkey);

        if (mapped_thinking) {
          const std::string& tkey = opt.fields.thinking;
          if (rd.has(tkey))
            r.thinking = rd.trajectories_at(tkey, true);
          else if (opt.require_thinking)
            throw rd.missing(tkey, "missing thinking trajectory (the recipe maps it to this key: "
                                   "a string or an array of strings)");
        } else {
          const std::string tkey = rd.one_of({"thinking_trajectories", "thinking", "trace"});
          if (tkey == "thinking_trajectories")
            r.thinking = rd.trajectories_at(tkey, false);
          else if (!tkey.empty())
            r.thinking = rd.string_at(tkey);
          else if (opt.require_thinking)
            throw rd.missing("thinking_trajectories",
                             "missing thinking trajectory: give one of thinking_trajectories "
                             "(array of strings), thinking or trace (string)");
        }

        if (mapped_answer) {
          const std::string& akey = opt.fields.answer;
          if (rd.has(akey))
            r.answer = rd.string_at(akey);
          else if (opt.require_answer)
            throw rd.missing(akey, "missing answer (the recipe maps it to this key: a string)");
          if (akey == "solution") r.solution = r.answer;
        } else {
          if (rd.has("solution")) r.solution = rd.string_at("solution");
          const std::string akey = rd.one_of({"attempt", "answer"});
          if (!akey.empty())
            r.answer = rd.string_at(akey);
          else if (!r.solution.empty())
            r.answer = r.solution;
          else if (opt.require_answer)
            throw rd.missing("attempt",
                             "missing answer: give one of attempt, answer or solution (string)");
        }
        out.push_back(std::move(r));
      });
  return out;
}

std::vector<JsonlRecord> load_jsonl(const std::string& path, const JsonlOptions& options) {
  return parse_jsonl(load_text_file(path), path, options);
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
