// Tests of datasets/chat_template: every template renders the same text as transformers'
// apply_chat_template(tokenize=False) on the real Jinja source (tests/fixtures/chat_templates/,
// rendered by tests/golden/chat_template_peer.py in the project venv), over one list of cases per
// template; detection from the real sources; tokenizer_config.json read and refused with
// audit::InputError naming file and key; s1's thinking text and evaluation prompt.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/python_peer.h"  // default_python, shell_quote
#include "datasets/chat_template/chat_template.h"
#include "tests/support/support.h"

using namespace audit::datasets;
using audit::InputError;
using nlohmann::json;

namespace {

std::string template_file(const std::string& stem) {
  return audit::testing::source_dir() + "/tests/fixtures/chat_templates/" + stem + ".jinja";
}

struct Case {
  std::string what;
  std::vector<ChatMessage> messages;
  bool add_generation_prompt = false;
};

struct Template {
  std::string name;         // ours
  std::string stem;         // the fixture with its Jinja source
  bool chatml = false;      // ChatML markers (else Llama's header form)
};

const TokenizerConfig& llama_cfg() {
  static TokenizerConfig cfg = [] {
    TokenizerConfig c;
    c.bos_token = "<|begin_of_text|>";
    c.eos_token = "<|eot_id|>";
    return c;
  }();
  return cfg;
}
const TokenizerConfig& qwen_cfg() {
  static TokenizerConfig cfg = [] {
    TokenizerConfig c;
    c.eos_token = "<|im_end|>";
    return c;
  }();
  return cfg;
}

// The s1 assistant content built the s1 way (data/tokenization.py), written out here rather than
// taken from thinking_markers(): for ChatML exactly s1's string; for Llama audit's header form.
std::string s1_content(bool chatml, const std::string& thinking, const std::string& answer) {
  if (chatml) return "<|im_start|>think\n" + thinking + "\n<|im_start|>answer\n" + answer;
  return "<|start_header_id|>think<|end_header_id|>\n\n" + thinking +
         "\n<|start_header_id|>answer<|end_header_id|>\n\n" + answer;
}

std::vector<Case> cases_for(const Template& t) {
  const ChatMessage sys{"system", "You are a careful solver.", ""};
  const ChatMessage u1{"user", "What is 2+2?", ""};
  const ChatMessage a1{"assistant", "4", ""};
  const ChatMessage u2{"user", "And 3+3?", ""};
  const ChatMessage a2{"assistant", "6", ""};
  const ChatMessage think{"assistant", "Answer: 4", "2 plus 2.\nThat is 4.\n\nCheck: 4-2=2."};
  std::vector<Case> cs = {
      {"user only, generation prompt", {u1}, true},
      {"user only, no generation prompt", {u1}, false},
      {"system + user", {sys, u1}, true},
      {"system only", {sys}, true},
      {"multi-turn", {sys, u1, a1, u2, a2}, false},
      {"multi-turn without system, generation prompt", {u1, a1, u2}, true},
      {"empty contents", {{"system", "", ""}, {"user", "", ""}, {"assistant", "", ""}}, true},
      {"empty conversation", {}, true},
      {"later system message", {u1, {"system", "Be brief.", ""}, u2}, true},
      {"unicode and newlines",
       {{"user", "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x9A\x80\nline 2\n\n", ""},
        {"assistant", "  padded\t\n", ""},
        {"user", "\xE3\x80\x80ideographic space and nbsp\xC2\xA0", ""},
        {"assistant", "\xE2\x80\xA8line separator\xE2\x80\xA9\x1f", ""}},
       false},
      {"quotes, backslashes, Jinja and special tokens in content",
       {{"user", "He said \"hi\" \\ {{ not jinja }} {% raw %} <|im_end|> <|eot_id|>", ""}}, true},
      {"s1 thinking", {u1, think}, false},
      {"s1 thinking with system, then another turn", {sys, u1, think, u2}, true},
      {"s1 thinking with an empty trace and spaces", {u1, {"assistant", " 4 ", " \n"}}, false},
  };
  if (t.chatml) {
    cs.push_back({"tool results",
                  {u1, a1, {"tool", "{\"sum\": 4}", ""}, {"tool", "line\nbreak", ""}, u2},
                  true});
    cs.push_back({"tool result first", {{"tool", "r", ""}, u1}, false});
  }
  if (t.name == "llama3") cs.push_back({"ipython", {u1, {"ipython", " out ", ""}}, true});
  if (t.name == "llama3.1")
    cs.push_back({"tool and ipython results",
                  {u1, {"tool", "x \"q\"\n\t\\ \x01", ""}, {"ipython", "h\xC3\xA9", ""}},
                  true});
  return cs;
}

const std::vector<Template>& templates() {
  static const std::vector<Template> ts = {{"chatml_qwen2.5", "qwen2.5_instruct", true},
                                           {"chatml", "qwen2_instruct", true},
                                           {"llama3", "llama3_instruct", false},
                                           {"llama3.1", "llama3.1_instruct", false}};
  return ts;
}
const TokenizerConfig& cfg_for(const Template& t) { return t.chatml ? qwen_cfg() : llama_cfg(); }

json job_json(const Template& t) {
  json cases = json::array();
  for (const Case& c : cases_for(t)) {
    json msgs = json::array();
    for (const ChatMessage& m : c.messages) {
      const std::string content =
          m.thinking.empty() ? m.content : s1_content(t.chatml, m.thinking, m.content);
      msgs.push_back({{"role", m.role}, {"content", content}});
    }
    cases.push_back({{"messages", msgs}, {"add_generation_prompt", c.add_generation_prompt}});
  }
  return {{"template", template_file(t.stem)},
          {"bos_token", cfg_for(t).bos_token},
          {"eos_token", cfg_for(t).eos_token},
          {"cases", cases}};
}

// What transformers renders for every template's cases, one peer run for all of them (importing
// transformers is most of its time): the "rendered" list of each template, in templates() order.
// Empty when the peer failed (the failure is reported once, by the first test that asks).
const json& transformers_rendered() {
  static const json rendered = []() -> json {
    audit::testing::TempDir dir("chat_template");
    json jobs = json::array();
    for (const Template& t : templates()) jobs.push_back(job_json(t));
    audit::testing::write_file(dir.file("jobs.json"), json{{"jobs", jobs}}.dump());
    const std::string cmd =
        audit::shell_quote(audit::default_python()) + " " +
        audit::shell_quote(audit::testing::source_dir() + "/tests/golden/chat_template_peer.py") +
        " --jobs " + audit::shell_quote(dir.file("jobs.json")) + " --out " +
        audit::shell_quote(dir.file("rendered.json"));
    const auto r = audit::testing::run_command(cmd);
    if (r.exit_code != 0) {
      ADD_FAILURE() << "the transformers peer failed (exit " << r.exit_code << "): " << cmd
                    << "\n" << r.output;
      return json::array();
    }
    const json parsed = json::parse(audit::testing::read_file(dir.file("rendered.json")));
    json out = json::array();
    for (const json& job : parsed.at("jobs")) out.push_back(job.at("rendered"));
    return out;
  }();
  return rendered;
}

// Position and a window of the first difference, for the failure message.
std::string first_difference(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  const size_t from = i > 20 ? i - 20 : 0;
  return "first difference at byte " + std::to_string(i) + ": ours ..." +
         json(a.substr(from, 60)).dump() + " transformers ..." + json(b.substr(from, 60)).dump();
}

void expect_same_as_transformers(size_t which, size_t expect_refused) {
  const Template& t = templates().at(which);
  const TokenizerConfig& cfg = cfg_for(t);
  const auto cs = cases_for(t);
  ASSERT_EQ(transformers_rendered().size(), templates().size());
  const json& rendered = transformers_rendered()[which];
  ASSERT_EQ(rendered.size(), cs.size());
  size_t refused = 0;
  for (size_t i = 0; i < cs.size(); ++i) {
    SCOPED_TRACE(t.name + ": " + cs[i].what);
    if (rendered[i].contains("error")) {
      ++refused;
      EXPECT_THROW(render_chat(t.name, cs[i].messages, cs[i].add_generation_prompt, cfg),
                   std::invalid_argument)
          << "transformers refused: " << rendered[i]["error"].get<std::string>();
      continue;
    }
    const std::string theirs = rendered[i].at("text").get<std::string>();
    std::string ours;
    ASSERT_NO_THROW(ours = render_chat(t.name, cs[i].messages, cs[i].add_generation_prompt, cfg));
    EXPECT_EQ(ours, theirs) << first_difference(ours, theirs);
  }
  // Only the cases we expect transformers to refuse (the empty conversation) may be compared as
  // refusals: the rest must have been rendered.
  EXPECT_EQ(refused, expect_refused);
}

std::string error_key(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.key;
  }
  ADD_FAILURE() << "no InputError";
  return "<none>";
}

}  // namespace

TEST(ChatTemplate, Qwen25SameAsTransformers) {
  expect_same_as_transformers(0, 1);
}

TEST(ChatTemplate, ChatmlQwen2SameAsTransformers) {
  expect_same_as_transformers(1, 1);
}

TEST(ChatTemplate, Llama3SameAsTransformers) {
  expect_same_as_transformers(2, 1);
}

TEST(ChatTemplate, Llama31SameAsTransformers) {
  expect_same_as_transformers(3, 1);
}

TEST(ChatTemplate, DetectsTheRealSources) {
  EXPECT_EQ(detect_chat_template(audit::testing::read_file(template_file("qwen2.5_instruct"))),
            "chatml_qwen2.5");
  EXPECT_EQ(detect_chat_template(audit::testing::read_file(template_file("qwen2_instruct"))), "chatml");
  EXPECT_EQ(detect_chat_template(audit::testing::read_file(template_file("llama3_instruct"))), "llama3");
  EXPECT_EQ(detect_chat_template(audit::testing::read_file(template_file("llama3.1_instruct"))),
            "llama3.1");
  for (const auto& name : chat_template_names()) EXPECT_NO_THROW(thinking_markers(name));
}

TEST(ChatTemplate, DetectionRefusesRelativesThatRenderDifferently) {
  auto replaced = [](std::string s, const std::string& from, const std::string& to) {
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? s : s.replace(at, from.size(), to);
  };
  const std::string qwen = audit::testing::read_file(template_file("qwen2.5_instruct"));
  const std::string llama31 = audit::testing::read_file(template_file("llama3.1_instruct"));
  const std::string qwen2 = audit::testing::read_file(template_file("qwen2_instruct"));
  EXPECT_EQ(detect_chat_template(""), "");
  // Qwen2.5-Math's kind: another default system prompt.
  EXPECT_EQ(detect_chat_template(replaced(qwen, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>",
                                          "Please reason step by step.<|im_end|>")),
            "");
  // Llama 3.2's kind: today's date.
  EXPECT_EQ(detect_chat_template(replaced(llama31, "{%- set date_string = \"26 Jul 2024\" %}",
                                          "{%- set date_string = strftime_now(\"%d %b %Y\") %}")),
            "");
  // A ChatML without a default system prompt.
  EXPECT_EQ(detect_chat_template(replaced(qwen2, "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}", "")),
            "");
  // Reformatted whitespace is the same template.
  EXPECT_EQ(detect_chat_template(replaced(qwen, "{%- for message in messages %}\n", "{%- for message in messages %}\n\n  ")),
            "chatml_qwen2.5");
}

TEST(ChatTemplate, RefusesWhatTheTemplateDoesNotRender) {
  const std::vector<ChatMessage> odd = {{"narrator", "x", ""}};
  for (const auto& name : chat_template_names()) {
    SCOPED_TRACE(name);
    EXPECT_THROW(render_chat(name, odd, true, llama_cfg()), std::invalid_argument);
    EXPECT_THROW(render_chat(name, {{"user", "q", "thinking on a user turn"}}, true, llama_cfg()),
                 std::invalid_argument);
  }
  EXPECT_THROW(render_chat("chatml", {{"ipython", "x", ""}}, false, qwen_cfg()), std::invalid_argument);
  EXPECT_THROW(render_chat("llama3", {{"tool", "x", ""}}, false, llama_cfg()), std::invalid_argument);
  EXPECT_THROW(render_chat("gemma", {{"user", "x", ""}}, false, qwen_cfg()), std::invalid_argument);
  EXPECT_THROW(thinking_markers("gemma"), std::invalid_argument);
  // Llama without a bos_token in the config: refused, not rendered without it.
  EXPECT_THROW(render_chat("llama3", {{"user", "x", ""}}, false, qwen_cfg()), std::invalid_argument);
  EXPECT_THROW(render_chat("llama3.1", {{"user", "x", ""}}, false, qwen_cfg()), std::invalid_argument);
}

TEST(ChatTemplate, ThinkingPromptIsS1sEvaluationPrompt) {
  // s1 README / eval/generate.py, verbatim: the prompt s1-32B is evaluated with.
  const std::string p = "How many r in raspberry";
  const std::string s1_prompt =
      "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
      "<|im_end|>\n<|im_start|>user\n" + p + "<|im_end|>\n<|im_start|>assistant\n" +
      "<|im_start|>think";
  EXPECT_EQ(render_thinking_prompt("chatml_qwen2.5", {{"user", p, ""}}, qwen_cfg()), s1_prompt);
  const auto m = thinking_markers("chatml_qwen2.5");
  EXPECT_EQ(m.think_start, "<|im_start|>think\n");
  EXPECT_EQ(m.answer_start, "<|im_start|>answer\n");
  EXPECT_EQ(m.end_of_turn, "<|im_end|>");
  const auto l = thinking_markers("llama3.1");
  EXPECT_EQ(render_thinking_prompt("llama3.1", {{"user", p, ""}}, llama_cfg()),
            render_chat("llama3.1", {{"user", p, ""}}, true, llama_cfg()) +
                "<|start_header_id|>think<|end_header_id|>\n\n");
  EXPECT_EQ(l.end_of_turn, "<|eot_id|>");
}

TEST(ChatTemplate, S1AssistantMessageIsBuiltTheS1Way) {
  const auto m = s1_assistant_message({"  first step", "second step \n", ""}, " 42 \n");
  EXPECT_EQ(m.role, "assistant");
  EXPECT_EQ(m.thinking, "first step\nsecond step");  // "\n".join(...).strip()
  EXPECT_EQ(m.content, "Answer:  42");  // ("Answer: " + attempt).strip(): s1 keeps both spaces
  EXPECT_EQ(s1_assistant_message({"t"}, "The Answer: 7 ").content, "The Answer: 7");
  EXPECT_EQ(s1_assistant_message({"t"}, "").content, "Answer:");
  EXPECT_EQ(python_strip("\xE3\x80\x80 x\xC2\xA0y \xC2\x85"), "x\xC2\xA0y");
  EXPECT_EQ(python_strip(" \xFF "), "\xFF");  // an invalid byte is no whitespace
  EXPECT_EQ(python_strip(" \t\n"), "");
}

TEST(ChatTemplate, ReadsTokenizerConfig) {
  audit::testing::TempDir dir("chat_template");
  const std::string qwen = audit::testing::read_file(template_file("qwen2.5_instruct"));
  json cfg = {{"bos_token", nullptr},
              {"eos_token", "<|im_end|>"},
              {"pad_token", {{"content", "<|endoftext|>"}, {"lstrip", false}, {"special", true}}},
              {"add_bos_token", false},
              {"chat_template", qwen},
              {"model_max_length", 131072}};
  audit::testing::write_file(dir.file("tokenizer_config.json"), cfg.dump(2));
  auto c = read_tokenizer_config(dir.path());
  EXPECT_EQ(c.path, dir.file("tokenizer_config.json"));
  EXPECT_EQ(c.bos_token, "");
  EXPECT_EQ(c.eos_token, "<|im_end|>");
  EXPECT_EQ(c.pad_token, "<|endoftext|>");
  EXPECT_EQ(c.unk_token, "");
  EXPECT_EQ(c.chat_template, qwen);
  EXPECT_EQ(c.template_name, "chatml_qwen2.5");
  EXPECT_EQ(c.model_max_length, 131072);

  // Llama's form: the list of named templates, add_bos_token, the "no limit" length (1e30).
  const std::string llama = audit::testing::read_file(template_file("llama3.1_instruct"));
  audit::testing::write_file(
      dir.file("tokenizer_config.json"),
      "{\"bos_token\": \"<|begin_of_text|>\", \"add_bos_token\": true, "
      "\"model_max_length\": 1000000000000000019884624838656, \"chat_template\": [" +
          json({{"name", "tool_use"}, {"template", "{{ tools }}"}}).dump() + ", " +
          json({{"name", "default"}, {"template", llama}}).dump() + "]}");
  c = read_tokenizer_config(dir.path());
  EXPECT_EQ(c.bos_token, "<|begin_of_text|>");
  EXPECT_TRUE(c.add_bos_token);
  EXPECT_FALSE(c.add_eos_token);
  EXPECT_EQ(c.template_name, "llama3.1");
  EXPECT_EQ(c.model_max_length, std::numeric_limits<std::int64_t>::max());

  // A chat_template.jinja beside the config takes priority over the config's template.
  audit::testing::write_file(dir.file("chat_template.jinja"),
                             audit::testing::read_file(template_file("qwen2_instruct")));
  EXPECT_EQ(read_tokenizer_config(dir.path()).template_name, "chatml");

  // No file: an empty config; a chat_template.jinja alone is read.
  audit::testing::TempDir empty("chat_template");
  c = read_tokenizer_config(empty.path());
  EXPECT_EQ(c.path, "");
  EXPECT_EQ(c.chat_template, "");
  EXPECT_EQ(c.template_name, "");
  audit::testing::write_file(empty.file("chat_template.jinja"),
                             audit::testing::read_file(template_file("llama3_instruct")));
  EXPECT_EQ(read_tokenizer_config(empty.path()).template_name, "llama3");
}

TEST(ChatTemplate, RefusesBadTokenizerConfig) {
  audit::testing::TempDir dir("chat_template");
  const std::string file = dir.file("tokenizer_config.json");
  auto key_of = [&](const std::string& text) {
    audit::testing::write_file(file, text);
    return error_key([&] { read_tokenizer_config(dir.path()); });
  };
  EXPECT_EQ(key_of("{\"bos_token\": 5}"), "bos_token");
  EXPECT_EQ(key_of("{\"eos_token\": [\"x\"]}"), "eos_token");
  EXPECT_EQ(key_of("{\"pad_token\": {\"content\": 3}}"), "pad_token.content");
  EXPECT_EQ(key_of("{\"unk_token\": {\"lstrip\": true}}"), "unk_token.content");
  EXPECT_EQ(key_of("{\"add_bos_token\": \"yes\"}"), "add_bos_token");
  EXPECT_EQ(key_of("{\"add_eos_token\": 1}"), "add_eos_token");
  EXPECT_EQ(key_of("{\"chat_template\": 7}"), "chat_template");
  EXPECT_EQ(key_of("{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}]}"),
            "chat_template");
  EXPECT_EQ(key_of("{\"chat_template\": [{\"name\": \"default\"}]}"), "chat_template[0].template");
  EXPECT_EQ(key_of("{\"chat_template\": [{\"template\": \"x\"}]}"), "chat_template[0].name");
  EXPECT_EQ(key_of("{\"chat_template\": [\"x\"]}"), "chat_template[0]");
  EXPECT_EQ(key_of("{\"model_max_length\": \"big\"}"), "model_max_length");
  EXPECT_EQ(key_of("{\"model_max_length\": -1}"), "model_max_length");

  audit::testing::write_file(file, "{\n  \"bos_token\": \"<s>\",\n  oops\n}");
  try {
    read_tokenizer_config(dir.path());
    ADD_FAILURE() << "malformed JSON was read";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file, file);
    EXPECT_EQ(e.line, 3);
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
  }
  audit::testing::write_file(file, "[1, 2]");
  EXPECT_THROW(read_tokenizer_config(dir.path()), InputError);
  try {
    audit::testing::write_file(file, "{\"bos_token\": 5}");
    read_tokenizer_config(dir.path());
  } catch (const InputError& e) {
    EXPECT_EQ(e.file, file);
    EXPECT_NE(std::string(e.what()).find("'bos_token'"), std::string::npos) << e.what();
  }
}
