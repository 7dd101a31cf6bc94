// HfTokenizer: tokenizer.json read into a pipeline (added tokens, normalizer, pre-tokenizer, BPE,
// post-processor, decoder) that reproduces the `tokenizers` library step by step. The comments
// name the tokenizers function each piece mirrors.
#include "datasets/hf_tokenizer/hf_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#ifdef AUDIT_HAVE_ICU
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>
#endif

#include <algorithm>
#include <array>
#include <fstream>
#include <mutex>
#include <queue>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <unordered_map>
#include <unordered_set>

#include "common/errors.h"

namespace audit::datasets {
namespace hf_detail {
namespace {

using json = nlohmann::json;

constexpr int64_t kMaxId = int64_t{1} << 24;  // refuse larger ids (the id table is dense)
constexpr size_t kCacheCapacity = 1 << 16;    // words kept in the BPE cache
constexpr size_t kCacheMaxWord = 256;         // longer words are not cached (tokenizers: MAX_LENGTH)

// ---- UTF-8 ----------------------------------------------------------------------------------

size_t utf8_len(unsigned char c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

uint32_t decode_cp(const char* p, size_t n) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  switch (n) {
    case 1: return u[0];
    case 2: return ((u[0] & 0x1Fu) << 6) | (u[1] & 0x3Fu);
    case 3: return ((u[0] & 0x0Fu) << 12) | ((u[1] & 0x3Fu) << 6) | (u[2] & 0x3Fu);
    default:
      return ((u[0] & 0x07u) << 18) | ((u[1] & 0x3Fu) << 12) | ((u[2] & 0x3Fu) << 6) | (u[3] & 0x3Fu);
  }
}

void append_cp(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Length of the longest valid start of a UTF-8 sequence at s[i] (the "maximal subpart"), and
// whether it is complete. A lone invalid byte gives (1, false)... except ASCII, (1, true).
std::pair<size_t, bool> utf8_step(std::string_view s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return {1, true};
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) need = 2;
  else if (b == 0xE0) need = 3, lo = 0xA0;
  else if (b >= 0xE1 && b <= 0xEC) need = 3;
  else if (b == 0xED) need = 3, hi = 0x9F;
  else if (b >= 0xEE && b <= 0xEF) need = 3;
  else if (b == 0xF0) need = 4, lo = 0x90;
  else if (b >= 0xF1 && b <= 0xF3) need = 4;
  else if (b == 0xF4) need = 4, hi = 0x8F;
  else return {1, false};
  size_t k = 1;
  for (; k < need; ++k) {
    if (i + k >= s.size()) return {k, false};
    const auto c = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return {k, false};
  }
  return {need, true};
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto [n, ok] = utf8_step(s, i);
    if (!ok) return false;
    i += n;
  }
  return true;
}

// Rust's String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD.
std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto [n, ok] = utf8_step(s, i);
    if (ok) out.append(s.data() + i, n);
    else out += "\xEF\xBF\xBD";
    i += n;
  }
  return out;
}

// Unicode White_Space (Rust's char::is_whitespace).
bool is_white_space(uint32_t c) {
  return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// The code points of s in order with their byte offsets.
struct Cp {
  uint32_t cp;
  size_t at, len;
};
std::vector<Cp> code_points(std::string_view s) {
  std::vector<Cp> out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = std::min(utf8_len(static_cast<unsigned char>(s[i])), s.size() - i);
    out.push_back({decode_cp(s.data() + i, n), i, n});
    i += n;
  }
  return out;
}

// ---- GPT-2 byte <-> unicode ----------------------------------------------------------------

struct ByteMap {
  std::array<std::string, 256> byte_to_char;      // UTF-8 of the char standing for each byte
  std::unordered_map<uint32_t, unsigned char> char_to_byte;
  ByteMap() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      append_cp(byte_to_char[b], cp);
      char_to_byte[cp] = static_cast<unsigned char>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

// The bytes a byte-level token stands for, or false when a char is outside the alphabet.
bool byte_level_bytes(std::string_view token, std::string& out) {
  out.clear();
  const auto& m = byte_map();
  for (size_t i = 0; i < token.size();) {
    const size_t n = std::min(utf8_len(static_cast<unsigned char>(token[i])), token.size() - i);
    auto it = m.char_to_byte.find(decode_cp(token.data() + i, n));
    if (it == m.char_to_byte.end()) return false;
    out += static_cast<char>(it->second);
    i += n;
  }
  return true;
}

// ---- errors ---------------------------------------------------------------------------------

struct Ctx {
  std::string file;
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw InputError(file, 0, 0, key, what);
  }
};

std::string join(const std::string& key, const std::string& name) {
  return key.empty() ? name : key + "." + name;
}

// obj[name] when obj is an object holding it, else nullptr.
const json* member(const json& obj, const char* name) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

// A Sequence's members: obj[list_key] must be an array; fn(item, "KEY.LIST[i]") for each.
template <class F>
void for_each_item(const Ctx& c, const json& obj, const char* list_key, const std::string& key,
                   F&& fn) {
  const json* list = member(obj, list_key);
  if (list == nullptr || !list->is_array()) c.fail(key + "." + list_key, "must be an array");
  for (size_t i = 0; i < list->size(); ++i)
    fn((*list)[i], key + "." + list_key + "[" + std::to_string(i) + "]");
}

bool get_bool(const Ctx& c, const json& obj, const char* name, const std::string& key, bool dflt) {
  const json* v = member(obj, name);
  if (v == nullptr || v->is_null()) return dflt;
  if (!v->is_boolean()) c.fail(join(key, name), "must be true or false, not " + v->dump());
  return v->get<bool>();
}

std::string get_string(const Ctx& c, const json& obj, const char* name, const std::string& key) {
  const json* v = member(obj, name);
  if (v == nullptr || !v->is_string()) c.fail(join(key, name), "must be a string");
  return v->get<std::string>();
}

int64_t get_int(const Ctx& c, const json& v, const std::string& key, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) c.fail(key, "must be an integer, not " + v.dump());
  const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX}
                        ? INT64_MAX
                        : v.get<int64_t>();
  if (x < lo || x > hi)
    c.fail(key, std::to_string(x) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

// The single character of a "replacement"/"content" string.
std::string get_char(const Ctx& c, const json& obj, const char* name, const std::string& key) {
  std::string s = get_string(c, obj, name, key);
  if (s.empty() || utf8_len(static_cast<unsigned char>(s[0])) != s.size())
    c.fail(join(key, name), "must be a single character, not \"" + s + "\"");
  return s;
}

std::string type_of(const Ctx& c, const json& obj, const std::string& key) {
  if (!obj.is_object()) c.fail(key, "must be an object with a \"type\", not " + obj.dump());
  return get_string(c, obj, "type", key);
}

[[noreturn]] void unsupported(const Ctx& c, const std::string& key, const std::string& type,
                              const std::string& supported) {
  c.fail(key + ".type", "\"" + type + "\" is not supported (supported: " + supported + ")");
}

// ---- regex (PCRE2) --------------------------------------------------------------------------

struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
  pcre2_match_context* ctx = pcre2_match_context_create(nullptr);
  MatchScratch() { pcre2_jit_stack_assign(ctx, nullptr, stack); }
  ~MatchScratch() {
    pcre2_match_context_free(ctx);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(data);
  }
};
MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

using Span = std::pair<size_t, size_t>;

class Regex {
 public:
  Regex(const std::string& pattern, const Ctx& c, const std::string& key) : pattern_(pattern) {
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    if (code_ == nullptr) {
      std::array<PCRE2_UCHAR, 256> msg{};
      pcre2_get_error_message(err, msg.data(), msg.size());
      c.fail(key, "cannot compile the regex at offset " + std::to_string(off) + ": " +
                      reinterpret_cast<const char*>(msg.data()));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if it fails
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every match in s, as the onig crate's find_iter gives them to tokenizers: left to right,
  // non-overlapping, an empty match right after the previous match skipped.
  void find_all(std::string_view s, std::vector<Span>& out) const {
    out.clear();
    auto& sc = scratch();
    size_t start = 0;
    bool have_last = false;
    size_t last_end = 0;
    while (start <= s.size()) {
      const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start,
                                 PCRE2_NO_UTF_CHECK, sc.data, sc.ctx);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        std::array<PCRE2_UCHAR, 256> msg{};
        pcre2_get_error_message(rc, msg.data(), msg.size());
        throw std::runtime_error("regex " + pattern_ + ": " + reinterpret_cast<const char*>(msg.data()));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(sc.data);
      const size_t ms = ov[0], me = ov[1];
      if (ms == me) {
        if (!(have_last && last_end == me)) out.emplace_back(ms, me);
        have_last = true;
        last_end = me;
        if (me >= s.size()) break;
        start = me + utf8_len(static_cast<unsigned char>(s[me]));
      } else {
        out.emplace_back(ms, me);
        have_last = true;
        last_end = me;
        start = me;
      }
    }
  }
  bool matches_at_start(std::string_view s) const {
    auto& sc = scratch();
    const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0,
                               PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED, sc.data, sc.ctx);
    return rc >= 0;
  }

 private:
  std::string pattern_;
  pcre2_code* code_ = nullptr;
};

const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// A "pattern" of Split/Replace: {"String": s} (literal) or {"Regex": r}.
struct Pattern {
  std::string literal;
  std::unique_ptr<Regex> regex;
  json source;

  void load(const Ctx& c, const json& obj, const std::string& key) {
    const json* p = member(obj, "pattern");
    if (p == nullptr || !p->is_object() || p->size() != 1)
      c.fail(join(key, "pattern"), "must be {\"String\": ...} or {\"Regex\": ...}");
    source = *p;
    if (const json* s = member(*p, "String")) {
      if (!s->is_string()) c.fail(join(key, "pattern.String"), "must be a string");
      literal = s->get<std::string>();
    } else if (const json* r = member(*p, "Regex")) {
      if (!r->is_string()) c.fail(join(key, "pattern.Regex"), "must be a string");
      regex = std::make_unique<Regex>(r->get<std::string>(), c, join(key, "pattern.Regex"));
    } else {
      c.fail(join(key, "pattern"), "must be {\"String\": ...} or {\"Regex\": ...}");
    }
  }
  // tokenizers' Pattern::find_matches, the matches only.
  void find_all(std::string_view s, std::vector<Span>& out) const {
    if (regex) {
      regex->find_all(s, out);
      return;
    }
    out.clear();
    if (literal.empty()) return;
    for (size_t at = s.find(literal); at != std::string_view::npos; at = s.find(literal, at + literal.size()))
      out.emplace_back(at, at + literal.size());
  }
};

std::string replace_all(std::string_view s, const Pattern& p, const std::string& content) {
  std::vector<Span> m;
  p.find_all(s, m);
  if (m.empty()) return std::string(s);
  std::string out;
  size_t prev = 0;
  for (auto [a, b] : m) {
    out.append(s.data() + prev, a - prev);
    out += content;
    prev = b;
  }
  out.append(s.data() + prev, s.size() - prev);
  return out;
}

// ---- normalizers ----------------------------------------------------------------------------

struct Normalizer {
  enum Kind { kNfc, kNfd, kNfkc, kNfkd, kPrepend, kReplace } kind;
  std::string text;  // Prepend: what; Replace: content
  Pattern pattern;   // Replace
};

#ifdef AUDIT_HAVE_ICU
std::string icu_normalize(Normalizer::Kind k, std::string_view s) {
  bool ascii = true;
  for (char ch : s) ascii = ascii && static_cast<unsigned char>(ch) < 0x80;
  if (ascii) return std::string(s);
  UErrorCode st = U_ZERO_ERROR;
  const icu::Normalizer2* n = k == Normalizer::kNfc    ? icu::Normalizer2::getNFCInstance(st)
                              : k == Normalizer::kNfd  ? icu::Normalizer2::getNFDInstance(st)
                              : k == Normalizer::kNfkc ? icu::Normalizer2::getNFKCInstance(st)
                                                       : icu::Normalizer2::getNFKDInstance(st);
  if (U_FAILURE(st)) throw std::runtime_error("ICU normalizer unavailable");
  const icu::UnicodeString in = icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), s.size()));
  const icu::UnicodeString out = n->normalize(in, st);
  if (U_FAILURE(st)) throw std::runtime_error("ICU normalization failed");
  std::string r;
  out.toUTF8String(r);
  return r;
}
#endif

// ---- pre-tokenizers -------------------------------------------------------------------------

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
enum class Prepend { kAlways, kFirst, kNever };

// A Metaspace pre-tokenizer's or decoder's prepend rule: "prepend_scheme", or the older
// "add_prefix_space" (true = always).
Prepend prepend_scheme(const Ctx& c, const json& obj, const std::string& key) {
  if (const json* s = member(obj, "prepend_scheme"); s != nullptr && !s->is_null()) {
    const std::string v = s->is_string() ? s->get<std::string>() : "";
    if (v == "always") return Prepend::kAlways;
    if (v == "first") return Prepend::kFirst;
    if (v == "never") return Prepend::kNever;
    c.fail(key + ".prepend_scheme", s->dump() + " is not first, always or never");
  }
  return get_bool(c, obj, "add_prefix_space", key, true) ? Prepend::kAlways : Prepend::kNever;
}

struct PreTokenizer {
  enum Kind { kSplit, kByteLevel, kMetaspace } kind;
  Pattern pattern;                       // Split
  std::unique_ptr<Regex> gpt2;           // ByteLevel with use_regex
  Behavior behavior = Behavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;         // ByteLevel
  std::string replacement;               // Metaspace
  Prepend prepend = Prepend::kAlways;    // Metaspace
  bool split = true;                     // Metaspace
};

// A piece of text on its way to the model; at_origin: it starts at offset 0 of the input
// (Metaspace's prepend_scheme "first" prepends to that piece only).
struct Piece {
  std::string text;
  bool at_origin;
};

// tokenizers' NormalizedString::split: the matches (flag true) and the text between them
// (false), then the behavior, then the pieces that are kept and not empty.
void split_by(const Piece& p, const std::vector<Span>& matches, Behavior behavior, bool invert,
              std::vector<Piece>& out) {
  struct Part { size_t a, b; bool flag; };
  std::vector<Part> parts;
  const std::string& s = p.text;
  size_t prev = 0;
  for (auto [a, b] : matches) {
    if (prev != a) parts.push_back({prev, a, false});
    parts.push_back({a, b, true});
    prev = b;
  }
  if (prev != s.size()) parts.push_back({prev, s.size(), false});
  if (s.empty()) parts = {{0, 0, false}};
  if (invert)
    for (auto& x : parts) x.flag = !x.flag;
  // After the behavior, flag means "remove".
  std::vector<Part> res;
  switch (behavior) {
    case Behavior::kRemoved: res = parts; break;
    case Behavior::kIsolated:
      for (auto x : parts) res.push_back({x.a, x.b, false});
      break;
    case Behavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (auto x : parts) {
        if (x.flag && !prev_match) {
          if (!res.empty()) res.back().b = x.b;
          else res.push_back({x.a, x.b, false});
        } else {
          res.push_back({x.a, x.b, false});
        }
        prev_match = x.flag;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool prev_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->flag && !prev_match) {
          if (!res.empty()) res.back().a = it->a;
          else res.push_back({it->a, it->b, false});
        } else {
          res.push_back({it->a, it->b, false});
        }
        prev_match = it->flag;
      }
      std::reverse(res.begin(), res.end());
      break;
    }
    case Behavior::kContiguous: {
      bool prev_match = false;
      for (auto x : parts) {
        if (x.flag == prev_match) {
          if (!res.empty()) res.back().b = x.b;
          else res.push_back({x.a, x.b, false});
        } else {
          res.push_back({x.a, x.b, false});
        }
        prev_match = x.flag;
      }
      break;
    }
  }
  for (const auto& x : res) {
    if (x.flag || x.a == x.b) continue;
    out.push_back({s.substr(x.a, x.b - x.a), p.at_origin && x.a == 0});
  }
}

// ---- decoders -------------------------------------------------------------------------------

struct Decoder {
  enum Kind { kByteLevel, kMetaspace, kReplace, kByteFallback, kFuse, kStrip } kind;
  std::string replacement;  // Metaspace
  Prepend prepend = Prepend::kAlways;
  Pattern pattern;          // Replace
  std::string content;      // Replace, Strip
  int64_t start = 0, stop = 0;
};

// ---- added tokens ---------------------------------------------------------------------------

struct AddedToken {
  TokenId id;
  std::string content;
  bool single_word, lstrip, rstrip, normalized, special;
};

// Byte trie of added-token contents: non-overlapping leftmost-longest matches, as the
// aho-corasick automaton (MatchKind::LeftmostLongest) of AddedVocabulary finds them.
class Trie {
 public:
  void add(std::string_view s, int token) {
    if (s.empty()) return;
    if (nodes_.empty()) nodes_.emplace_back();
    first_[static_cast<unsigned char>(s[0])] = true;
    int at = 0;
    for (char ch : s) {
      int next = child(at, static_cast<unsigned char>(ch));
      if (next < 0) {
        next = static_cast<int>(nodes_.size());
        nodes_[at].next.emplace_back(static_cast<unsigned char>(ch), next);
        nodes_.emplace_back();
      }
      at = next;
    }
    if (nodes_[at].token < 0) nodes_[at].token = token;
  }
  bool empty() const { return nodes_.empty(); }
  struct Match { size_t a, b; int token; };
  void find(std::string_view s, std::vector<Match>& out) const {
    out.clear();
    if (nodes_.empty()) return;
    for (size_t i = 0; i < s.size();) {
      if (!first_[static_cast<unsigned char>(s[i])]) { ++i; continue; }
      int at = 0, best = -1;
      size_t best_end = 0;
      for (size_t j = i; j < s.size(); ++j) {
        at = child(at, static_cast<unsigned char>(s[j]));
        if (at < 0) break;
        if (nodes_[at].token >= 0) best = nodes_[at].token, best_end = j + 1;
      }
      if (best >= 0) {
        out.push_back({i, best_end, best});
        i = best_end;
      } else {
        ++i;
      }
    }
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int>> next;
    int token = -1;
  };
  int child(int at, unsigned char ch) const {
    for (auto [c, n] : nodes_[at].next)
      if (c == ch) return n;
    return -1;
  }
  std::vector<Node> nodes_;
  std::array<bool, 256> first_{};
};

// ---- post-processor -------------------------------------------------------------------------

struct TemplateItem {
  bool sequence;               // $A
  std::vector<TokenId> ids;    // a special token's ids
};

}  // namespace

// ---- the tokenizer --------------------------------------------------------------------------

struct Impl {
  std::string path;
  json config;  // tokenizer_config.json's token names, or null
  json normalizer_json, pre_tokenizer_json, post_processor_json, decoder_json;

  // Model (BPE).
  std::unordered_map<std::string, TokenId> vocab;      // as written in tokenizer.json
  std::unordered_map<std::string, TokenId> byte_vocab; // byte-level: the bytes each token stands for
  std::unordered_map<uint64_t, std::pair<int32_t, TokenId>> merges;  // (left, right) -> (rank, id)
  size_t n_merges = 0;
  bool byte_level = false, byte_fallback = false, fuse_unk = false, ignore_merges = false;
  TokenId unk_id = -1;
  std::array<TokenId, 256> byte_unit{};      // byte-level: the token of each single byte
  std::array<TokenId, 256> fallback_byte{};  // <0xNN> tokens (byte_fallback)

  // Added tokens, ids, specials.
  std::vector<AddedToken> added;
  std::unordered_map<std::string, TokenId> added_ids;
  std::unordered_set<std::string> special_contents;
  Trie raw_trie, normalized_trie;  // token index into `added`
  std::vector<std::string> id_to_token;
  std::vector<uint8_t> id_known;
  std::vector<uint8_t> id_special;

  std::vector<Normalizer> normalizers;
  std::vector<PreTokenizer> pre_tokenizers;
  bool has_post_template = false;
  std::vector<std::vector<TemplateItem>> templates;  // applied in order (Sequence)
  bool has_decoder = false;
  std::vector<Decoder> decoders;
  std::unique_ptr<Regex> word_char;  // Rust regex's Unicode \w, for single_word
  // The pre-tokenizer is one regex split into isolated pieces (Qwen2, Llama 3: Split Isolated
  // then ByteLevel without regex; GPT-2: ByteLevel with its regex): encode() then runs the
  // model on the pieces in place, without copying them.
  const Regex* fast_split = nullptr;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<TokenId>> cache;

  // ---- loading ----
  void load_model(const Ctx& c, const json& m);
  void load_normalizer(const Ctx& c, const json& n, const std::string& key);
  void load_pre_tokenizer(const Ctx& c, const json& p, const std::string& key);
  void load_post_processor(const Ctx& c, const json& p, const std::string& key);
  void load_decoder(const Ctx& c, const json& d, const std::string& key);
  void load_added(const Ctx& c, const json& a);

  // ---- encoding ----
  std::string normalize(std::string s) const;
  void added_splits(std::string_view s, const Trie& trie,
                    std::vector<std::pair<int, Span>>& out) const;
  void pre_tokenize(std::vector<Piece>& pieces) const;
  void bpe(std::string_view word, std::vector<TokenId>& out) const;
  void merge_word(std::string_view word, std::vector<TokenId>& out) const;
  void encode_piece(std::string_view piece, bool at_origin, std::vector<TokenId>& out) const;
  void encode(std::string_view text, std::vector<TokenId>& out) const;
};

void Impl::load_model(const Ctx& c, const json& m) {
  const std::string type = type_of(c, m, "model");
  if (type != "BPE") unsupported(c, "model", type, "BPE");
  if (const json* d = member(m, "dropout"); d != nullptr && !d->is_null()) {
    if (!d->is_number() || d->get<double>() != 0.0)
      c.fail("model.dropout", "BPE dropout " + d->dump() + " is not supported (must be null)");
  }
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json* v = member(m, k);
    if (v != nullptr && !v->is_null() && !(v->is_string() && v->get<std::string>().empty()))
      c.fail(std::string("model.") + k, v->dump() + " is not supported (must be null or \"\")");
  }
  byte_fallback = get_bool(c, m, "byte_fallback", "model", false);
  fuse_unk = get_bool(c, m, "fuse_unk", "model", false);
  ignore_merges = get_bool(c, m, "ignore_merges", "model", false);

  const json* v = member(m, "vocab");
  if (v == nullptr || !v->is_object()) c.fail("model.vocab", "must be an object {token: id}");
  vocab.reserve(v->size());
  for (auto it = v->begin(); it != v->end(); ++it)
    vocab[it.key()] = static_cast<TokenId>(get_int(c, it.value(), "model.vocab." + it.key(), 0, kMaxId - 1));

  if (const json* u = member(m, "unk_token"); u != nullptr && !u->is_null()) {
    if (!u->is_string()) c.fail("model.unk_token", "must be a string or null");
    auto it = vocab.find(u->get<std::string>());
    if (it == vocab.end())
      c.fail("model.unk_token", "\"" + u->get<std::string>() + "\" is not in model.vocab");
    unk_id = it->second;
  }

  const json* mg = member(m, "merges");
  if (mg == nullptr || !mg->is_array()) c.fail("model.merges", "must be an array");
  merges.reserve(mg->size());
  int32_t rank = 0;
  for (const auto& e : *mg) {
    const std::string key = "model.merges[" + std::to_string(rank) + "]";
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const auto sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        c.fail(key, "\"" + s + "\" is not two tokens separated by one space");
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>(), b = e[1].get<std::string>();
    } else {
      c.fail(key, "must be \"a b\" or [\"a\", \"b\"]");
    }
    auto ia = vocab.find(a), ib = vocab.find(b), in = vocab.find(a + b);
    if (ia == vocab.end() || ib == vocab.end() || in == vocab.end())
      c.fail(key, "\"" + a + "\" + \"" + b + "\": a part or the merged token is not in model.vocab");
    merges[(static_cast<uint64_t>(static_cast<uint32_t>(ia->second)) << 32) |
           static_cast<uint32_t>(ib->second)] = {rank, in->second};
    ++rank;
  }
  n_merges = static_cast<size_t>(rank);

  fallback_byte.fill(-1);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = vocab.find(name);
    if (it != vocab.end()) fallback_byte[b] = it->second;
  }
}

void Impl::load_normalizer(const Ctx& c, const json& n, const std::string& key) {
  if (n.is_null()) return;
  const std::string type = type_of(c, n, key);
  if (type == "Sequence") {
    for_each_item(c, n, "normalizers", key,
                  [&](const json& item, const std::string& at) { load_normalizer(c, item, at); });
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
#ifdef AUDIT_HAVE_ICU
    Normalizer x;
    x.kind = type == "NFC" ? Normalizer::kNfc : type == "NFD" ? Normalizer::kNfd
             : type == "NFKC" ? Normalizer::kNfkc : Normalizer::kNfkd;
    normalizers.push_back(std::move(x));
#else
    c.fail(key + ".type", "\"" + type + "\" needs ICU, and this build has none");
#endif
  } else if (type == "Prepend") {
    Normalizer x;
    x.kind = Normalizer::kPrepend;
    x.text = get_string(c, n, "prepend", key);
    normalizers.push_back(std::move(x));
  } else if (type == "Replace") {
    Normalizer x;
    x.kind = Normalizer::kReplace;
    x.pattern.load(c, n, key);
    x.text = get_string(c, n, "content", key);
    normalizers.push_back(std::move(x));
  } else {
    unsupported(c, key, type, "NFC, NFD, NFKC, NFKD, Prepend, Replace, Sequence");
  }
}

void Impl::load_pre_tokenizer(const Ctx& c, const json& p, const std::string& key) {
  if (p.is_null()) return;
  const std::string type = type_of(c, p, key);
  if (!pre_tokenizers.empty() && pre_tokenizers.back().kind == PreTokenizer::kByteLevel)
    c.fail(key, "a pre-tokenizer after ByteLevel is not supported (ByteLevel must be the last)");
  if (type == "Sequence") {
    for_each_item(c, p, "pretokenizers", key,
                  [&](const json& item, const std::string& at) { load_pre_tokenizer(c, item, at); });
  } else if (type == "Split") {
    PreTokenizer x;
    x.kind = PreTokenizer::kSplit;
    x.pattern.load(c, p, key);
    const std::string b = get_string(c, p, "behavior", key);
    if (b == "Removed") x.behavior = Behavior::kRemoved;
    else if (b == "Isolated") x.behavior = Behavior::kIsolated;
    else if (b == "MergedWithPrevious") x.behavior = Behavior::kMergedWithPrevious;
    else if (b == "MergedWithNext") x.behavior = Behavior::kMergedWithNext;
    else if (b == "Contiguous") x.behavior = Behavior::kContiguous;
    else c.fail(key + ".behavior", "\"" + b + "\" is not a split behavior");
    x.invert = get_bool(c, p, "invert", key, false);
    pre_tokenizers.push_back(std::move(x));
  } else if (type == "ByteLevel") {
    PreTokenizer x;
    x.kind = PreTokenizer::kByteLevel;
    x.add_prefix_space = get_bool(c, p, "add_prefix_space", key, true);
    if (get_bool(c, p, "use_regex", key, true)) x.gpt2 = std::make_unique<Regex>(kGpt2Pattern, c, key);
    pre_tokenizers.push_back(std::move(x));
    byte_level = true;
  } else if (type == "Metaspace") {
    PreTokenizer x;
    x.kind = PreTokenizer::kMetaspace;
    x.replacement = get_char(c, p, "replacement", key);
    x.prepend = prepend_scheme(c, p, key);
    x.split = get_bool(c, p, "split", key, true);
    pre_tokenizers.push_back(std::move(x));
  } else {
    unsupported(c, key, type, "Split, ByteLevel, Metaspace, Sequence");
  }
}

void Impl::load_post_processor(const Ctx& c, const json& p, const std::string& key) {
  if (p.is_null()) return;
  const std::string type = type_of(c, p, key);
  if (type == "Sequence") {
    for_each_item(c, p, "processors", key,
                  [&](const json& item, const std::string& at) { load_post_processor(c, item, at); });
  } else if (type == "ByteLevel") {
    // Trims offsets only; the ids are unchanged.
  } else if (type == "TemplateProcessing") {
    const json* single = member(p, "single");
    if (single == nullptr || !single->is_array()) c.fail(key + ".single", "must be an array");
    const json* specials = member(p, "special_tokens");
    if (specials != nullptr && !specials->is_null() && !specials->is_object())
      c.fail(key + ".special_tokens", "must be an object");
    std::vector<TemplateItem> items;
    for (size_t i = 0; i < single->size(); ++i) {
      const std::string k = key + ".single[" + std::to_string(i) + "]";
      const json& e = (*single)[i];
      if (const json* s = member(e, "Sequence")) {
        const std::string id = get_string(c, *s, "id", k + ".Sequence");
        if (id != "A") c.fail(k + ".Sequence.id", "\"" + id + "\" is not supported in a single template (only A)");
        items.push_back({true, {}});
      } else if (const json* t = member(e, "SpecialToken")) {
        const std::string id = get_string(c, *t, "id", k + ".SpecialToken");
        const json* entry = specials != nullptr ? member(*specials, id.c_str()) : nullptr;
        if (entry == nullptr)
          c.fail(key + ".special_tokens", "has no entry \"" + id + "\" used by " + k);
        const json* ids = member(*entry, "ids");
        const std::string ik = key + ".special_tokens." + id + ".ids";
        if (ids == nullptr || !ids->is_array()) c.fail(ik, "must be an array of ids");
        TemplateItem item{false, {}};
        for (const auto& x : *ids) item.ids.push_back(static_cast<TokenId>(get_int(c, x, ik, 0, kMaxId - 1)));
        items.push_back(std::move(item));
      } else {
        c.fail(k, "must be {\"Sequence\": ...} or {\"SpecialToken\": ...}");
      }
    }
    templates.push_back(std::move(items));
    has_post_template = true;
  } else {
    unsupported(c, key, type, "TemplateProcessing, ByteLevel, Sequence");
  }
}

void Impl::load_decoder(const Ctx& c, const json& d, const std::string& key) {
  if (d.is_null()) return;
  has_decoder = true;
  const std::string type = type_of(c, d, key);
  Decoder x;
  if (type == "Sequence") {
    for_each_item(c, d, "decoders", key,
                  [&](const json& item, const std::string& at) { load_decoder(c, item, at); });
    return;
  } else if (type == "ByteLevel") {
    x.kind = Decoder::kByteLevel;
  } else if (type == "Metaspace") {
    x.kind = Decoder::kMetaspace;
    x.replacement = get_char(c, d, "replacement", key);
    x.prepend = prepend_scheme(c, d, key);
  } else if (type == "Replace") {
    x.kind = Decoder::kReplace;
    x.pattern.load(c, d, key);
    x.content = get_string(c, d, "content", key);
  } else if (type == "ByteFallback") {
    x.kind = Decoder::kByteFallback;
  } else if (type == "Fuse") {
    x.kind = Decoder::kFuse;
  } else if (type == "Strip") {
    x.kind = Decoder::kStrip;
    x.content = get_char(c, d, "content", key);
    const json* s = member(d, "start");
    const json* e = member(d, "stop");
    if (s == nullptr) c.fail(key + ".start", "is missing");
    if (e == nullptr) c.fail(key + ".stop", "is missing");
    x.start = get_int(c, *s, key + ".start", 0, kMaxId);
    x.stop = get_int(c, *e, key + ".stop", 0, kMaxId);
  } else {
    unsupported(c, key, type, "ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence");
  }
  decoders.push_back(std::move(x));
}

// tokenizers' AddedVocabulary::add_tokens, in file order: a token takes the id of the same
// content in the vocabulary, else the next id after the model's (the "id" written in the file
// is checked for form but not used, as tokenizers does).
void Impl::load_added(const Ctx& c, const json& a) {
  if (a.is_null()) return;
  if (!a.is_array()) c.fail("added_tokens", "must be an array");
  const int64_t model_size = static_cast<int64_t>(vocab.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string key = "added_tokens[" + std::to_string(i) + "]";
    const json& e = a[i];
    if (!e.is_object()) c.fail(key, "must be an object");
    const json* idj = member(e, "id");
    if (idj == nullptr) c.fail(key + ".id", "is missing");
    get_int(c, *idj, key + ".id", 0, kMaxId - 1);
    AddedToken t;
    t.content = get_string(c, e, "content", key);
    t.single_word = get_bool(c, e, "single_word", key, false);
    t.lstrip = get_bool(c, e, "lstrip", key, false);
    t.rstrip = get_bool(c, e, "rstrip", key, false);
    t.normalized = get_bool(c, e, "normalized", key, true);
    t.special = get_bool(c, e, "special", key, false);
    if (t.content.empty()) continue;
    auto known = added_ids.find(t.content);
    if (known != added_ids.end()) {
      t.id = known->second;
    } else if (auto v = vocab.find(t.content); v != vocab.end()) {
      t.id = v->second;
    } else {
      int64_t max_added = -1;
      for (const auto& x : added) max_added = std::max<int64_t>(max_added, x.id);
      int64_t id = model_size;
      if (max_added >= 0 && (max_added >= model_size || model_size == 0)) id = max_added + 1;
      if (id >= kMaxId) c.fail(key, "too many tokens");
      t.id = static_cast<TokenId>(id);
    }
    added_ids[t.content] = t.id;
    bool replaced = false;
    for (auto& x : added)
      if (x.content == t.content) x = t, replaced = true;
    if (!replaced) added.push_back(t);
  }
  for (const auto& t : added)
    if (t.special) special_contents.insert(t.content);
}

std::string Impl::normalize(std::string s) const {
  for (const auto& n : normalizers) {
    switch (n.kind) {
      case Normalizer::kPrepend:
        if (!s.empty()) s = n.text + s;
        break;
      case Normalizer::kReplace:
        s = replace_all(s, n.pattern, n.text);
        break;
      default:
#ifdef AUDIT_HAVE_ICU
        s = icu_normalize(n.kind, s);
#endif
        break;
    }
  }
  return s;
}

// tokenizers' AddedVocabulary::find_matches: (token index or -1, span) covering s.
void Impl::added_splits(std::string_view s, const Trie& trie,
                        std::vector<std::pair<int, Span>>& out) const {
  out.clear();
  if (s.empty()) return;
  std::vector<Trie::Match> matches;
  trie.find(s, matches);
  size_t start_offset = 0;
  for (const auto& m : matches) {
    size_t start = m.a, stop = m.b;
    const AddedToken& t = added[static_cast<size_t>(m.token)];
    if (t.single_word) {
      // Rust regex's \w$ on s[..start] and ^\w on s[stop..].
      bool ends_word = false, starts_word = false;
      if (start > 0) {
        size_t k = start - 1;
        while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        ends_word = word_char->matches_at_start(s.substr(k, start - k));
      }
      if (stop < s.size()) starts_word = word_char->matches_at_start(s.substr(stop));
      if (ends_word || starts_word) continue;
    }
    if (t.lstrip) {
      size_t k = start;
      while (k > 0) {
        size_t j = k - 1;
        while (j > 0 && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) --j;
        if (!is_white_space(decode_cp(s.data() + j, k - j))) break;
        k = j;
      }
      start = std::max(k, start_offset);
    }
    if (t.rstrip) {
      while (stop < s.size()) {
        const size_t n = utf8_len(static_cast<unsigned char>(s[stop]));
        if (!is_white_space(decode_cp(s.data() + stop, n))) break;
        stop += n;
      }
    }
    if (start_offset < start) out.push_back({-1, {start_offset, start}});
    out.push_back({m.token, {start, stop}});
    start_offset = stop;
  }
  if (start_offset != s.size()) out.push_back({-1, {start_offset, s.size()}});
}

void Impl::pre_tokenize(std::vector<Piece>& pieces) const {
  std::vector<Piece> next;
  std::vector<Span> matches;
  for (const auto& p : pre_tokenizers) {
    next.clear();
    for (auto& piece : pieces) {
      switch (p.kind) {
        case PreTokenizer::kSplit:
          p.pattern.find_all(piece.text, matches);
          split_by(piece, matches, p.behavior, p.invert, next);
          break;
        case PreTokenizer::kByteLevel:
          if (p.add_prefix_space && (piece.text.empty() || piece.text[0] != ' '))
            piece.text.insert(0, 1, ' ');
          if (p.gpt2) {
            p.gpt2->find_all(piece.text, matches);
            split_by(piece, matches, Behavior::kIsolated, false, next);
          } else if (!piece.text.empty()) {
            next.push_back(std::move(piece));
          }
          break;
        case PreTokenizer::kMetaspace: {
          std::string s;
          s.reserve(piece.text.size() + 3);
          for (char ch : piece.text) {
            if (ch == ' ') s += p.replacement;
            else s += ch;
          }
          const bool starts = s.compare(0, p.replacement.size(), p.replacement) == 0;
          if (!starts && (p.prepend == Prepend::kAlways || (p.prepend == Prepend::kFirst && piece.at_origin)))
            s.insert(0, p.replacement);
          Piece q{std::move(s), piece.at_origin};
          if (p.split) {
            matches.clear();
            for (size_t at = q.text.find(p.replacement); at != std::string::npos;
                 at = q.text.find(p.replacement, at + p.replacement.size()))
              matches.emplace_back(at, at + p.replacement.size());
            split_by(q, matches, Behavior::kMergedWithNext, false, next);
          } else if (!q.text.empty()) {
            next.push_back(std::move(q));
          }
          break;
        }
      }
    }
    pieces.swap(next);
  }
}

// tokenizers' BPE::merge_word + Word::merge_all.
void Impl::merge_word(std::string_view w, std::vector<TokenId>& out) const {
  struct Sym { TokenId c; int prev, next; size_t len; };
  std::vector<Sym> syms;
  syms.reserve(w.size());
  auto add = [&](TokenId c, size_t len) {
    const int n = static_cast<int>(syms.size());
    if (n > 0) syms.back().next = n;
    syms.push_back({c, n - 1, -1, len});
  };
  bool have_unk = false;
  TokenId unk_c = -1;
  size_t unk_len = 0;
  const auto& bm = byte_map();
  for (size_t i = 0; i < w.size();) {
    const size_t n = byte_level ? 1 : std::min(utf8_len(static_cast<unsigned char>(w[i])), w.size() - i);
    TokenId id = -1;
    std::string_view s;
    if (byte_level) {
      id = byte_unit[static_cast<unsigned char>(w[i])];
      s = bm.byte_to_char[static_cast<unsigned char>(w[i])];
    } else {
      s = w.substr(i, n);
      auto it = vocab.find(std::string(s));
      if (it != vocab.end()) id = it->second;
    }
    if (id >= 0) {
      if (have_unk) add(unk_c, unk_len), have_unk = false;
      add(id, n);
    } else {
      bool done = false;
      if (byte_fallback) {
        bool all = true;
        for (char ch : s) all = all && fallback_byte[static_cast<unsigned char>(ch)] >= 0;
        if (all) {
          for (char ch : s) add(fallback_byte[static_cast<unsigned char>(ch)], 1);
          done = true;
        }
      }
      if (!done && unk_id >= 0) {
        if (have_unk && fuse_unk) {
          unk_len += n;
        } else {
          if (have_unk) add(unk_c, unk_len);
          have_unk = true, unk_c = unk_id, unk_len = n;
        }
      }
    }
    i += n;
  }
  if (have_unk) add(unk_c, unk_len);

  struct Merge {
    size_t pos;
    int32_t rank;
    TokenId id;
    bool operator<(const Merge& o) const {  // the heap pops the lowest rank, then the lowest pos
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  auto lookup = [&](TokenId a, TokenId b) -> const std::pair<int32_t, TokenId>* {
    auto it = merges.find((static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b));
    return it == merges.end() ? nullptr : &it->second;
  };
  std::priority_queue<Merge> queue;
  for (size_t i = 0; i + 1 < syms.size(); ++i)
    if (auto* m = lookup(syms[i].c, syms[i + 1].c)) queue.push({i, m->first, m->second});
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    Sym& cur = syms[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    const size_t next_pos = static_cast<size_t>(cur.next);
    const Sym right = syms[next_pos];
    auto* m = lookup(cur.c, right.c);
    if (m == nullptr || m->second != top.id) continue;
    cur.c = top.id;
    cur.len += right.len;
    cur.next = right.next;
    syms[next_pos].len = 0;
    if (right.next > -1 && static_cast<size_t>(right.next) < syms.size())
      syms[static_cast<size_t>(right.next)].prev = static_cast<int>(top.pos);
    if (cur.prev >= 0) {
      if (auto* pm = lookup(syms[static_cast<size_t>(cur.prev)].c, cur.c))
        queue.push({static_cast<size_t>(cur.prev), pm->first, pm->second});
    }
    if (cur.next >= 0 && static_cast<size_t>(cur.next) < syms.size()) {
      if (auto* nm = lookup(cur.c, syms[static_cast<size_t>(cur.next)].c))
        queue.push({top.pos, nm->first, nm->second});
    }
  }
  for (const auto& s : syms)
    if (s.len != 0) out.push_back(s.c);
}

// tokenizers' BPE::tokenize_with_cache.
void Impl::bpe(std::string_view word, std::vector<TokenId>& out) const {
  if (word.empty()) return;
  thread_local std::string key;
  key.assign(word.data(), word.size());
  if (ignore_merges) {
    const auto& v = byte_level ? byte_vocab : vocab;
    auto it = v.find(key);
    if (it != v.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() < kCacheMaxWord;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache.find(key);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t before = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() < kCacheCapacity)
      cache.emplace(key, std::vector<TokenId>(out.begin() + static_cast<std::ptrdiff_t>(before), out.end()));
  }
}

// The pre-tokenizer and the model on one piece of normalized text.
void Impl::encode_piece(std::string_view piece, bool at_origin, std::vector<TokenId>& out) const {
  if (fast_split != nullptr) {
    thread_local std::vector<Span> matches;
    fast_split->find_all(piece, matches);
    size_t prev = 0;
    for (auto [a, b] : matches) {
      if (prev < a) bpe(piece.substr(prev, a - prev), out);
      if (a < b) bpe(piece.substr(a, b - a), out);
      prev = b;
    }
    if (prev < piece.size()) bpe(piece.substr(prev), out);
    return;
  }
  std::vector<Piece> pieces;
  pieces.push_back({std::string(piece), at_origin});
  pre_tokenize(pieces);
  for (const auto& p : pieces) bpe(p.text, out);
}

// tokenizers' Tokenizer::encode_single_sequence: AddedVocabulary::extract_and_normalize, then
// the pre-tokenizer, then the model on every piece.
void Impl::encode(std::string_view text, std::vector<TokenId>& out) const {
  std::vector<std::pair<int, Span>> outer, inner;
  added_splits(text, raw_trie, outer);
  for (const auto& [tok, span] : outer) {
    if (tok >= 0) {
      out.push_back(added[static_cast<size_t>(tok)].id);
      continue;
    }
    if (span.first == span.second) continue;
    const std::string_view raw = text.substr(span.first, span.second - span.first);
    if (normalizers.empty() && normalized_trie.empty()) {
      encode_piece(raw, span.first == 0, out);
      continue;
    }
    const std::string norm = normalize(std::string(raw));
    if (norm.empty()) continue;
    if (normalized_trie.empty()) {
      encode_piece(norm, span.first == 0, out);
      continue;
    }
    added_splits(norm, normalized_trie, inner);
    for (const auto& [tok2, sp] : inner) {
      if (tok2 >= 0) {
        out.push_back(added[static_cast<size_t>(tok2)].id);
        continue;
      }
      if (sp.first == sp.second) continue;
      encode_piece(std::string_view(norm).substr(sp.first, sp.second - sp.first),
                   span.first == 0 && sp.first == 0, out);
    }
  }
}

}  // namespace hf_detail

using hf_detail::Ctx;
using hf_detail::Impl;
using json = nlohmann::json;

HfTokenizer::HfTokenizer() : impl_(std::make_unique<Impl>()) {}
HfTokenizer::~HfTokenizer() = default;

namespace {

bool is_dir(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

json read_json(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(file, 0, 0, "", "cannot read the file");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    throw InputError(file, 0, 0, "", std::string("not valid JSON: ") + e.what());
  }
}

// A token name in tokenizer_config.json: "..." or {"content": "..."}.
json token_name(const json& v) {
  if (v.is_string()) return v;
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"];
  return nullptr;
}

}  // namespace

std::unique_ptr<HfTokenizer> HfTokenizer::load(const std::string& path) {
  std::string file = path;
  std::string dir;
  if (is_dir(path)) {
    dir = path;
    file = path + "/tokenizer.json";
  } else {
    const auto slash = path.find_last_of('/');
    dir = slash == std::string::npos ? "." : path.substr(0, slash);
  }
  struct stat st{};
  if (::stat(file.c_str(), &st) != 0) throw InputError(file, 0, 0, "", "no such file (a tokenizer.json is needed)");
  const json j = read_json(file);
  std::unique_ptr<HfTokenizer> t(new HfTokenizer());
  Impl& m = *t->impl_;
  m.path = file;
  const Ctx c{file};
  std::string key;  // the section being read, for errors nlohmann raises
  try {
    if (!j.is_object()) c.fail("", "the top level must be an object");
    for (const char* k : {"truncation", "padding"}) {
      const json* v = hf_detail::member(j, k);
      if (v != nullptr && !v->is_null()) c.fail(k, "must be null (truncation and padding are not supported)");
    }
    const json* model = hf_detail::member(j, "model");
    if (model == nullptr) c.fail("model", "is missing");
    key = "model";
    m.load_model(c, *model);
    static const json null_json = nullptr;
    auto section = [&](const char* name) -> const json& {
      const json* v = hf_detail::member(j, name);
      return v != nullptr ? *v : null_json;
    };
    key = "normalizer";
    m.normalizer_json = section("normalizer");
    m.load_normalizer(c, m.normalizer_json, "normalizer");
    key = "pre_tokenizer";
    m.pre_tokenizer_json = section("pre_tokenizer");
    m.load_pre_tokenizer(c, m.pre_tokenizer_json, "pre_tokenizer");
    key = "post_processor";
    m.post_processor_json = section("post_processor");
    m.load_post_processor(c, m.post_processor_json, "post_processor");
    key = "decoder";
    m.decoder_json = section("decoder");
    m.load_decoder(c, m.decoder_json, "decoder");
    key = "added_tokens";
    m.load_added(c, section("added_tokens"));
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw InputError(file, 0, 0, key, e.what());
  }

  // Byte-level: the vocabulary in bytes, and each single byte's token.
  m.byte_unit.fill(-1);
  if (m.byte_level) {
    std::string bytes;
    for (const auto& [tok, id] : m.vocab)
      if (hf_detail::byte_level_bytes(tok, bytes)) m.byte_vocab.emplace(bytes, id);
    for (int b = 0; b < 256; ++b) {
      auto it = m.vocab.find(hf_detail::byte_map().byte_to_char[b]);
      if (it != m.vocab.end()) m.byte_unit[b] = it->second;
    }
  }

  // One isolated regex split and nothing else: the in-place path of encode().
  {
    const auto& p = m.pre_tokenizers;
    if (p.size() == 2 && p[0].kind == hf_detail::PreTokenizer::kSplit && p[0].pattern.regex &&
        p[0].behavior == hf_detail::Behavior::kIsolated && !p[0].invert &&
        p[1].kind == hf_detail::PreTokenizer::kByteLevel && !p[1].add_prefix_space && !p[1].gpt2)
      m.fast_split = p[0].pattern.regex.get();
    if (p.size() == 1 && p[0].kind == hf_detail::PreTokenizer::kByteLevel && !p[0].add_prefix_space && p[0].gpt2)
      m.fast_split = p[0].gpt2.get();
  }

  // Added tokens: the tries, split by whether they match the normalized text.
  for (size_t i = 0; i < m.added.size(); ++i) {
    const auto& a = m.added[i];
    if (a.normalized) m.normalized_trie.add(m.normalize(a.content), static_cast<int>(i));
    else m.raw_trie.add(a.content, static_cast<int>(i));
  }
  m.word_char = std::make_unique<hf_detail::Regex>(
      R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}])", c, "");

  // id -> token: the added tokens take precedence over the vocabulary.
  int64_t size = 0;
  for (const auto& [tok, id] : m.vocab) size = std::max<int64_t>(size, int64_t{id} + 1);
  for (const auto& a : m.added) size = std::max<int64_t>(size, int64_t{a.id} + 1);
  m.id_to_token.assign(static_cast<size_t>(size), std::string());
  m.id_known.assign(static_cast<size_t>(size), 0);
  m.id_special.assign(static_cast<size_t>(size), 0);
  for (const auto& [tok, id] : m.vocab) {
    m.id_to_token[static_cast<size_t>(id)] = tok;
    m.id_known[static_cast<size_t>(id)] = 1;
  }
  for (const auto& a : m.added) {
    m.id_to_token[static_cast<size_t>(a.id)] = a.content;
    m.id_known[static_cast<size_t>(a.id)] = 1;
  }
  for (size_t i = 0; i < m.id_to_token.size(); ++i)
    m.id_special[i] = m.id_known[i] && m.special_contents.count(m.id_to_token[i]) ? 1 : 0;

  // tokenizer_config.json beside it: token names for describe().
  const std::string cfg = dir + "/tokenizer_config.json";
  if (::stat(cfg.c_str(), &st) == 0) {
    const json cj = read_json(cfg);
    if (!cj.is_object()) throw InputError(cfg, 0, 0, "", "the top level must be an object");
    json out = json::object();
    for (const char* k : {"bos_token", "eos_token", "pad_token", "unk_token"}) {
      if (!cj.contains(k) || cj[k].is_null()) continue;
      const json name = token_name(cj[k]);
      if (name.is_null()) throw InputError(cfg, 0, 0, k, "must be a string or {\"content\": ...}");
      out[k] = name;
      out[std::string(k) + "_id"] = t->token_to_id(name.get<std::string>());
    }
    if (cj.contains("model_max_length") && cj["model_max_length"].is_number())
      out["model_max_length"] = cj["model_max_length"];
    out["chat_template"] = cj.contains("chat_template") && !cj["chat_template"].is_null();
    m.config = out;
  }
  return t;
}

int64_t HfTokenizer::vocab_size() const { return static_cast<int64_t>(impl_->id_to_token.size()); }

std::vector<TokenId> HfTokenizer::encode(std::string_view text) const {
  if (!hf_detail::valid_utf8(text)) throw std::invalid_argument("HfTokenizer::encode: text is not valid UTF-8");
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  impl_->encode(text, out);
  return out;
}

std::vector<TokenId> HfTokenizer::encode_with_specials(std::string_view text) const {
  std::vector<TokenId> ids = encode(text);
  for (const auto& tmpl : impl_->templates) {
    std::vector<TokenId> next;
    next.reserve(ids.size() + 4);
    for (const auto& item : tmpl) {
      if (item.sequence) next.insert(next.end(), ids.begin(), ids.end());
      else next.insert(next.end(), item.ids.begin(), item.ids.end());
    }
    ids.swap(next);
  }
  return ids;
}

std::string HfTokenizer::decode(const std::vector<TokenId>& ids, bool skip_special) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (TokenId id : ids) {
    if (id < 0 || id >= vocab_size())
      throw std::out_of_range("HfTokenizer::decode: id " + std::to_string(id) + " outside [0, " +
                              std::to_string(vocab_size()) + ")");
    const auto i = static_cast<size_t>(id);
    if (!m.id_known[i]) continue;
    if (skip_special && m.id_special[i]) continue;
    tokens.push_back(m.id_to_token[i]);
  }
  if (!m.has_decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  using hf_detail::Decoder;
  for (const auto& d : m.decoders) {
    switch (d.kind) {
      case Decoder::kByteLevel: {
        std::string bytes, tb;
        for (const auto& t : tokens) {
          if (hf_detail::byte_level_bytes(t, tb)) bytes += tb;
          else bytes += t;
        }
        tokens.assign(1, hf_detail::utf8_lossy(bytes));
        break;
      }
      case Decoder::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          std::string s;
          const std::string& t = tokens[i];
          for (size_t k = 0; k < t.size();) {
            if (t.compare(k, d.replacement.size(), d.replacement) == 0) {
              if (!(i == 0 && d.prepend != hf_detail::Prepend::kNever)) s += ' ';
              k += d.replacement.size();
            } else {
              s += t[k++];
            }
          }
          tokens[i] = std::move(s);
        }
        break;
      case Decoder::kReplace:
        for (auto& t : tokens) t = hf_detail::replace_all(t, d.pattern, d.content);
        break;
      case Decoder::kByteFallback: {
        std::vector<std::string> out;
        std::string pending;
        size_t pending_n = 0;
        auto flush = [&] {
          if (pending_n == 0) return;
          if (hf_detail::valid_utf8(pending)) {
            out.push_back(pending);
          } else {
            for (size_t k = 0; k < pending_n; ++k) out.emplace_back("\xEF\xBF\xBD");
          }
          pending.clear();
          pending_n = 0;
        };
        for (auto& t : tokens) {
          int byte = -1;
          if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
              std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4])))
            byte = std::stoi(t.substr(3, 2), nullptr, 16);
          if (byte >= 0) {
            pending += static_cast<char>(byte);
            ++pending_n;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens.swap(out);
        break;
      }
      case Decoder::kFuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        tokens.assign(1, all);
        break;
      }
      case Decoder::kStrip:
        for (auto& t : tokens) {
          const auto cps = hf_detail::code_points(t);
          const uint32_t want = hf_detail::decode_cp(d.content.data(), d.content.size());
          size_t a = 0, b = cps.size();
          for (int64_t k = 0; k < d.start && a < cps.size() && cps[a].cp == want; ++k) ++a;
          for (int64_t k = 0; k < d.stop && b > a && cps[b - 1].cp == want; ++k) --b;
          t = a < b ? t.substr(cps[a].at, cps[b - 1].at + cps[b - 1].len - cps[a].at) : std::string();
        }
        break;
    }
  }
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

TokenId HfTokenizer::token_to_id(std::string_view token) const {
  const std::string k(token);
  auto a = impl_->added_ids.find(k);
  if (a != impl_->added_ids.end()) return a->second;
  auto v = impl_->vocab.find(k);
  return v != impl_->vocab.end() ? v->second : -1;
}

std::string HfTokenizer::id_to_token(TokenId id) const {
  if (id < 0 || id >= vocab_size()) return "";
  return impl_->id_to_token[static_cast<size_t>(id)];
}

bool HfTokenizer::is_special(TokenId id) const {
  return id >= 0 && id < vocab_size() && impl_->id_special[static_cast<size_t>(id)] != 0;
}

std::string HfTokenizer::kind() const { return impl_->byte_level ? "byte_level_bpe" : "sentencepiece_bpe"; }

std::string HfTokenizer::path() const { return impl_->path; }

json HfTokenizer::describe() const {
  const Impl& m = *impl_;
  json added = json::array();
  json specials = json::object();
  for (const auto& a : m.added) {
    added.push_back({{"id", a.id}, {"content", a.content}, {"special", a.special},
                     {"normalized", a.normalized}, {"lstrip", a.lstrip}, {"rstrip", a.rstrip},
                     {"single_word", a.single_word}});
    if (a.special) specials[a.content] = a.id;
  }
  auto type = [](const json& j) -> json { return j.is_object() && j.contains("type") ? j["type"] : json(nullptr); };
  return {{"kind", kind()},
          {"path", m.path},
          {"vocab_size", vocab_size()},
          {"model", {{"type", "BPE"}, {"vocab", m.vocab.size()}, {"merges", m.n_merges},
                     {"byte_fallback", m.byte_fallback}, {"ignore_merges", m.ignore_merges},
                     {"unk_token", m.unk_id >= 0 ? json(m.id_to_token[static_cast<size_t>(m.unk_id)]) : json(nullptr)}}},
          {"added_tokens", added},
          {"specials", specials},
          {"normalizer", m.normalizer_json},
          {"pre_tokenizer", m.pre_tokenizer_json},
          {"post_processor", type(m.post_processor_json)},
          {"decoder", type(m.decoder_json)},
          {"config", m.config}};
}

}  // namespace audit::datasets
