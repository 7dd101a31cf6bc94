// Chat templates rendered natively (see chat_template.h): tokenizer_config.json, the detection of
// a template by the pieces of its Jinja source, and one short renderer per template.
#include "datasets/chat_template/chat_template.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/errors.h"  // InputError

namespace audit::datasets {
namespace {

using nlohmann::json;

// ---- text helpers -------------------------------------------------------------------------

// Python's str.isspace() for one code point (_PyUnicode_IsWhitespace).
bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

// Decodes the UTF-8 code point at s[i]; its length in `len` (1 for an invalid byte, decoded as
// U+FFFF, which is no whitespace).
char32_t decode_at(const std::string& s, size_t i, size_t& len) {
  const auto b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    len = 1;
    return 0xFFFF;
  }
  char32_t c = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < n; ++k) {
    const auto cb = static_cast<unsigned char>(s[i + k]);
    if ((cb >> 6) != 0x2) {
      len = 1;
      return 0xFFFF;
    }
    c = (c << 6) | (cb & 0x3F);
  }
  len = n;
  return c;
}

// JSON string literal as Python's json.dumps(s, ensure_ascii=False) writes it (transformers'
// `tojson` filter): ", \ and control characters escaped, everything else as is.
std::string python_json_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

std::string without_whitespace(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s)
    if (c != ' ' && c != '\n' && c != '\t' && c != '\r') out += c;
  return out;
}

bool contains_all(const std::string& squeezed_source, const std::vector<std::string>& pieces) {
  for (const auto& p : pieces)
    if (squeezed_source.find(without_whitespace(p)) == std::string::npos) return false;
  return true;
}

// ---- messages -----------------------------------------------------------------------------

bool one_of(const std::string& role, const std::vector<std::string>& roles) {
  for (const auto& r : roles)
    if (r == role) return true;
  return false;
}

// Checks the roles and thinking of every message, and returns each message's text as the
// template sees it (an s1 thinking message: its markers, trace and answer in one string).
std::vector<std::string> message_texts(const std::string& name, const std::vector<ChatMessage>& messages,
                                       const std::vector<std::string>& roles) {
  const ThinkingMarkers markers = thinking_markers(name);
  std::vector<std::string> texts;
  texts.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (!one_of(m.role, roles)) {
      std::string allowed;
      for (const auto& r : roles) allowed += (allowed.empty() ? "" : ", ") + r;
      throw std::invalid_argument("chat template '" + name + "': message " + std::to_string(i) +
                                  " has role '" + m.role + "', which it does not render (roles: " +
                                  allowed + ")");
    }
    if (!m.thinking.empty() && m.role != "assistant")
      throw std::invalid_argument("chat template '" + name + "': message " + std::to_string(i) +
                                  " has thinking but role '" + m.role +
                                  "'; only an assistant message thinks");
    texts.push_back(m.thinking.empty() ? m.content
                                       : markers.think_start + m.thinking + "\n" +
                                             markers.answer_start + m.content);
  }
  return texts;
}

// transformers refuses an empty conversation before any template sees it.
void require_messages(const std::string& name, const std::vector<ChatMessage>& messages) {
  if (messages.empty())
    throw std::invalid_argument("chat template '" + name + "': an empty conversation");
}

const std::string& require_bos(const std::string& name, const TokenizerConfig& cfg) {
  if (cfg.bos_token.empty())
    throw std::invalid_argument("chat template '" + name +
                                "' starts with bos_token, and the tokenizer config has none" +
                                (cfg.path.empty() ? std::string() : " (" + cfg.path + ")"));
  return cfg.bos_token;
}

// ---- one renderer per template ------------------------------------------------------------

const std::vector<std::string> kChatmlRoles = {"system", "user", "assistant", "tool"};

// Qwen2.5-*-Instruct, without tools.
std::string render_qwen25(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  require_messages("chatml_qwen2.5", messages);
  const auto texts = message_texts("chatml_qwen2.5", messages, kChatmlRoles);
  std::string out = messages[0].role == "system"
                        ? "<|im_start|>system\n" + texts[0] + "<|im_end|>\n"
                        : std::string("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. "
                                      "You are a helpful assistant.<|im_end|>\n");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role == "system" && i == 0) continue;  // already in the system block
    if (role == "tool") {
      if (i == 0 || messages[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + texts[i] + "\n</tool_response>";
      if (i + 1 == messages.size() || messages[i + 1].role != "tool") out += "<|im_end|>\n";
      continue;
    }
    out += "<|im_start|>" + role + "\n" + texts[i] + "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

// Qwen2-*-Instruct: plain ChatML.
std::string render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  require_messages("chatml", messages);
  const auto texts = message_texts("chatml", messages, kChatmlRoles);
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i == 0 && messages[0].role != "system")
      out += "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
    out += "<|im_start|>" + messages[i].role + "\n" + texts[i] + "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

std::string llama_block(const std::string& role, const std::string& body) {
  return "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + body + "<|eot_id|>";
}

// Meta-Llama-3-*-Instruct.
std::string render_llama3(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                          const TokenizerConfig& cfg) {
  require_messages("llama3", messages);
  const auto texts = message_texts("llama3", messages, {"system", "user", "assistant", "ipython"});
  std::string out = require_bos("llama3", cfg);
  for (size_t i = 0; i < messages.size(); ++i) {
    out += llama_block(messages[i].role, python_strip(texts[i]));
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// Llama-3.1-*-Instruct, without tools and with the template's default date.
std::string render_llama31(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                           const TokenizerConfig& cfg) {
  require_messages("llama3.1", messages);
  const auto texts =
      message_texts("llama3.1", messages, {"system", "user", "assistant", "tool", "ipython"});
  std::string out = require_bos("llama3.1", cfg);
  size_t first = 0;
  std::string system_message;
  if (messages[0].role == "system") {
    system_message = python_strip(texts[0]);
    first = 1;
  }
  out += "<|start_header_id|>system<|end_header_id|>\n\n";
  out += "Cutting Knowledge Date: December 2023\n";
  out += "Today Date: 26 Jul 2024\n\n";
  out += system_message + "<|eot_id|>";
  for (size_t i = first; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role == "tool" || role == "ipython")
      out += llama_block("ipython", python_json_string(texts[i]));  // a string `is iterable`: tojson
    else
      out += llama_block(role, python_strip(texts[i]));
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

bool is_llama(const std::string& name) { return name == "llama3" || name == "llama3.1"; }

// ---- tokenizer_config.json ----------------------------------------------------------------

bool file_exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, 0, 0, "", "cannot open for reading (check the permissions)");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw InputError(path, 0, 0, "", "read failed");
  return ss.str();
}

// A special token: a string, {"content": string, ...} (an AddedToken), or null/absent -> "".
std::string token_field(const json& cfg, const std::string& key, const std::string& file) {
  const auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    const auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
    throw InputError(file, 0, 0, key + ".content", "must be a string (the token's text)");
  }
  throw InputError(file, 0, 0, key, "must be a string or an object with a string 'content', not " +
                                        std::string(it->type_name()));
}

bool bool_field(const json& cfg, const std::string& key, const std::string& file) {
  const auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return false;
  if (!it->is_boolean())
    throw InputError(file, 0, 0, key, "must be true or false, not " + std::string(it->type_name()));
  return it->get<bool>();
}

std::string template_field(const json& cfg, const std::string& file) {
  const auto it = cfg.find("chat_template");
  if (it == cfg.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array())
    throw InputError(file, 0, 0, "chat_template",
                     "must be a string or a list of {\"name\", \"template\"} objects, not " +
                         std::string(it->type_name()));
  std::string found;
  bool have_default = false;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& e = (*it)[i];
    const std::string at = "chat_template[" + std::to_string(i) + "]";
    if (!e.is_object()) throw InputError(file, 0, 0, at, "must be an object with 'name' and 'template'");
    const auto n = e.find("name");
    const auto t = e.find("template");
    if (n == e.end() || !n->is_string()) throw InputError(file, 0, 0, at + ".name", "must be a string");
    if (t == e.end() || !t->is_string())
      throw InputError(file, 0, 0, at + ".template", "must be a string");
    if (n->get<std::string>() == "default") {
      found = t->get<std::string>();
      have_default = true;
    }
  }
  if (!have_default)
    throw InputError(file, 0, 0, "chat_template", "the list of named templates has none named 'default'");
  return found;
}

std::int64_t length_field(const json& cfg, const std::string& file) {
  const auto it = cfg.find("model_max_length");
  if (it == cfg.end() || it->is_null()) return 0;
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  if (it->is_number_unsigned()) {
    const auto v = it->get<std::uint64_t>();
    return v > static_cast<std::uint64_t>(kMax) ? kMax : static_cast<std::int64_t>(v);
  }
  if (it->is_number_integer()) {
    const auto v = it->get<std::int64_t>();
    if (v < 0) throw InputError(file, 0, 0, "model_max_length", "must not be negative");
    return v;
  }
  if (it->is_number_float()) {
    const double v = it->get<double>();
    if (!std::isfinite(v) || v < 0)
      throw InputError(file, 0, 0, "model_max_length", "must be a non-negative number");
    // transformers writes "no limit" as int(1e30), which JSON readers see as a float
    return v >= 9.2e18 ? kMax : static_cast<std::int64_t>(v);
  }
  throw InputError(file, 0, 0, "model_max_length",
                   "must be a number, not " + std::string(it->type_name()));
}

long line_of(const std::string& text, size_t byte) {
  long line = 1;
  for (size_t i = 0; i < byte && i < text.size(); ++i)
    if (text[i] == '\n') ++line;
  return line;
}

}  // namespace

std::string python_strip(const std::string& text) {
  size_t begin = 0;
  while (begin < text.size()) {
    size_t len = 0;
    if (!is_python_space(decode_at(text, begin, len))) break;
    begin += len;
  }
  size_t end = text.size();
  while (end > begin) {
    size_t start = end - 1;  // back to the first byte of the last code point
    while (start > begin && (static_cast<unsigned char>(text[start]) >> 6) == 0x2 && end - start < 4)
      --start;
    size_t len = 0;
    const char32_t c = decode_at(text, start, len);
    if (start + len != end) {  // not one whole code point: an invalid byte, no whitespace
      break;
    }
    if (!is_python_space(c)) break;
    end = start;
  }
  return text.substr(begin, end - begin);
}

const std::vector<std::string>& chat_template_names() {
  static const std::vector<std::string> names = {"chatml_qwen2.5", "chatml", "llama3", "llama3.1"};
  return names;
}

std::string detect_chat_template(const std::string& jinja) {
  if (jinja.empty()) return "";
  const std::string s = without_whitespace(jinja);
  // Each list holds the pieces of the real source that decide what it renders (tools aside).
  if (contains_all(s, {
          R"({{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }})",
          R"('<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n')",
          R"((message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls))",
          R"({{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }})",
          R"({{- '\n<tool_response>\n' }})",
          R"({%- if add_generation_prompt %} {{- '<|im_start|>assistant\n' }} {%- endif %})",
      }))
    return "chatml_qwen2.5";
  if (contains_all(s, {
          R"({% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %})",
          R"({{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %})",
          R"({% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})",
      }))
    return "chatml";
  const std::string llama_turn =
      R"('<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>')";
  if (s.find("CuttingKnowledgeDate") == std::string::npos &&
      contains_all(s, {
          R"({% set loop_messages = messages %}{% for message in loop_messages %}{% set content = )" +
              llama_turn + " %}",
          R"({% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %})",
          R"({% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %})",
      }))
    return "llama3";
  if (s.find("strftime_now") == std::string::npos &&
      contains_all(s, {
          R"({{- bos_token }})",
          R"({%- if not date_string is defined %} {%- set date_string = "26 Jul 2024" %} {%- endif %})",
          R"({%- if messages[0]['role'] == 'system' %} {%- set system_message = messages[0]['content']|trim %} {%- set messages = messages[1:] %} {%- else %} {%- set system_message = "" %} {%- endif %})",
          R"({{- "<|start_header_id|>system<|end_header_id|>\n\n" }})",
          R"({{- "Cutting Knowledge Date: December 2023\n" }} {{- "Today Date: " + date_string + "\n\n" }})",
          R"({{- system_message }} {{- "<|eot_id|>" }})",
          "{{- " + llama_turn + " }}",
          R"({{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }})",
          R"({%- if add_generation_prompt %} {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }} {%- endif %})",
      }))
    return "llama3.1";
  return "";
}

ThinkingMarkers thinking_markers(const std::string& name) {
  if (name == "chatml_qwen2.5" || name == "chatml")
    return {"<|im_start|>think\n", "<|im_start|>answer\n", "<|im_end|>", "<|im_start|>think"};
  if (is_llama(name)) {
    const std::string think = "<|start_header_id|>think<|end_header_id|>\n\n";
    return {think, "<|start_header_id|>answer<|end_header_id|>\n\n", "<|eot_id|>", think};
  }
  throw std::invalid_argument("unknown chat template '" + name +
                              "' (known: chatml_qwen2.5, chatml, llama3, llama3.1)");
}

std::string render_chat(const std::string& name, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt, const TokenizerConfig& cfg) {
  if (name == "chatml_qwen2.5") return render_qwen25(messages, add_generation_prompt);
  if (name == "chatml") return render_chatml(messages, add_generation_prompt);
  if (name == "llama3") return render_llama3(messages, add_generation_prompt, cfg);
  if (name == "llama3.1") return render_llama31(messages, add_generation_prompt, cfg);
  throw std::invalid_argument("unknown chat template '" + name +
                              "' (known: chatml_qwen2.5, chatml, llama3, llama3.1)");
}

std::string render_thinking_prompt(const std::string& name, const std::vector<ChatMessage>& messages,
                                   const TokenizerConfig& cfg) {
  return render_chat(name, messages, true, cfg) + thinking_markers(name).prompt_suffix;
}

ChatMessage s1_assistant_message(const std::vector<std::string>& thinking_trajectory,
                                 const std::string& attempt) {
  std::string joined;
  for (size_t i = 0; i < thinking_trajectory.size(); ++i)
    joined += (i == 0 ? "" : "\n") + thinking_trajectory[i];
  const std::string answer =
      attempt.find("Answer:") == std::string::npos ? "Answer: " + attempt : attempt;
  return ChatMessage{"assistant", python_strip(answer), python_strip(joined)};
}

TokenizerConfig read_tokenizer_config(const std::string& dir) {
  TokenizerConfig out;
  const std::string file = dir + "/tokenizer_config.json";
  if (file_exists(file)) {
    const std::string text = read_whole(file);
    json cfg;
    try {
      cfg = json::parse(text);
    } catch (const json::parse_error& e) {
      throw InputError(file, line_of(text, e.byte), 0, "", std::string("not valid JSON: ") + e.what());
    }
    if (!cfg.is_object())
      throw InputError(file, 0, 0, "", "must be a JSON object, not " + std::string(cfg.type_name()));
    out.path = file;
    out.bos_token = token_field(cfg, "bos_token", file);
    out.eos_token = token_field(cfg, "eos_token", file);
    out.pad_token = token_field(cfg, "pad_token", file);
    out.unk_token = token_field(cfg, "unk_token", file);
    out.add_bos_token = bool_field(cfg, "add_bos_token", file);
    out.add_eos_token = bool_field(cfg, "add_eos_token", file);
    out.chat_template = template_field(cfg, file);
    out.model_max_length = length_field(cfg, file);
  }
  // As transformers loads it: a chat_template.jinja beside the config takes priority over it.
  const std::string jinja_file = dir + "/chat_template.jinja";
  if (file_exists(jinja_file)) out.chat_template = read_whole(jinja_file);
  out.template_name = detect_chat_template(out.chat_template);
  return out;
}

}  // namespace audit::datasets
