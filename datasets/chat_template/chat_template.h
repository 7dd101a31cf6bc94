// Chat templates rendered natively, by name: the text `transformers`'
// `tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)` makes with
// the real Jinja templates of the models audit trains, written out in C++ (no Jinja engine here).
// tests/chat_template_test.cpp renders the same conversations both ways (tests/golden/
// chat_template_peer.py runs transformers on the sources in tests/fixtures/chat_templates/) and
// requires identical text.
//
//   "chatml_qwen2.5"  Qwen2.5-*-Instruct: ChatML, default system prompt "You are Qwen, created by
//                     Alibaba Cloud. You are a helpful assistant." when the first message is not
//                     a system message; "tool" messages are grouped into a user turn of
//                     <tool_response> blocks, as the template does.
//   "chatml"          Qwen2-*-Instruct: plain ChatML, default system prompt "You are a helpful
//                     assistant." when the first message is not a system message.
//   "llama3"          Meta-Llama-3-*-Instruct: bos_token, then one <|start_header_id|>role
//                     <|end_header_id|> block per message, content trimmed (Python str.strip()).
//   "llama3.1"        Llama-3.1-*-Instruct: bos_token, a system block that always carries
//                     "Cutting Knowledge Date: December 2023" and "Today Date: 26 Jul 2024" (the
//                     template's default date_string), then the messages as in "llama3"; "tool" and
//                     "ipython" messages render as an ipython block with the content as a JSON
//                     string (the template's `tojson`).
//
// Not rendered (refused, or not reachable through this API): tool definitions (the `tools`
// argument), assistant tool calls, content given as a list of parts, `date_string` or
// `custom_tools` overrides, `continue_final_message`.
//
// s1 thinking. s1 (github simplescaling/s1, data/tokenization.py) trains Qwen2.5-32B-Instruct on
// the Qwen2.5 template applied to an assistant message whose content is
//
//   "<|im_start|>think\n" + "\n".join(thinking_trajectory).strip() + "\n<|im_start|>answer\n"
//     + answer.strip()          where answer = "Answer: " + attempt unless "Answer:" is in it,
//
// and evaluates (README, eval/generate.py) by appending "<|im_start|>think" (no newline: the model
// writes it) to the generation prompt. A ChatMessage with non-empty `thinking` renders as
// think_start + thinking + "\n" + answer_start + content in place of its content, with the
// template's own treatment of content after that (Llama trims the whole). s1_assistant_message()
// does s1's preparation of the two strings. For the Llama templates s1 defines no markers; audit's
// own convention is the header form (`thinking_markers`), analogous to ChatML's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace audit::datasets {

// One message of a conversation.
struct ChatMessage {
  std::string role;      // "system", "user", "assistant", "tool" (ChatML, Llama 3.1), "ipython" (Llama)
  std::string content;   // the text (for an s1 thinking message: the answer)
  std::string thinking;  // s1 thinking trace; only on assistant messages; "" = a plain message
};

// What a model folder's tokenizer_config.json says (the fields audit uses).
struct TokenizerConfig {
  std::string path;  // the file read ("" when there was none)
  // Special tokens, "" when absent or null; both the string and the {"content": ...} forms.
  std::string bos_token, eos_token, pad_token, unk_token;
  bool add_bos_token = false, add_eos_token = false;  // as given; false when absent
  // The Jinja source: DIR/chat_template.jinja when it exists (newer transformers saves the
  // template there, and it takes priority when loading), else the config's string, or the entry
  // named "default" of its list-of-named-templates form; else "".
  std::string chat_template;
  std::string template_name;     // detect_chat_template(chat_template)
  std::int64_t model_max_length = 0;  // 0 when absent; INT64_MAX for the "no limit" 1e30 value
};

// Reads DIR/tokenizer_config.json. A folder without one gives an empty config (path ""), not an
// error; a file that is not JSON, not an object, or has a field of the wrong type throws
// audit::InputError naming the file and the key.
TokenizerConfig read_tokenizer_config(const std::string& dir);

// The name (one of chat_template_names()) of the template whose Jinja source this is, recognised
// by the pieces of it that decide the rendering (whitespace ignored); "" for any other template,
// including near relatives that render differently (Qwen2.5-Math's system prompt, Llama 3.2's
// strftime_now date, a ChatML without a default system prompt).
std::string detect_chat_template(const std::string& jinja);

// The names render_chat knows: "chatml_qwen2.5", "chatml", "llama3", "llama3.1".
const std::vector<std::string>& chat_template_names();

// Renders the conversation with the named template, as apply_chat_template(tokenize=False) does;
// with add_generation_prompt the assistant header follows. The Llama templates take bos_token
// from cfg. Throws std::invalid_argument for an unknown name, a role the template does not render
// (ChatML: system, user, assistant, tool; llama3: system, user, assistant, ipython; llama3.1:
// those and tool), thinking on a message that is not the assistant's,
// an empty conversation (transformers refuses one too), or an empty cfg.bos_token for Llama.
std::string render_chat(const std::string& name, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt, const TokenizerConfig& cfg);

// The markers of s1-style thinking inside an assistant turn, per template.
struct ThinkingMarkers {
  std::string think_start;    // ChatML "<|im_start|>think\n"; Llama "<|start_header_id|>think<|end_header_id|>\n\n"
  std::string answer_start;   // ChatML "<|im_start|>answer\n"; Llama "<|start_header_id|>answer<|end_header_id|>\n\n"
  std::string end_of_turn;    // ChatML "<|im_end|>"; Llama "<|eot_id|>"
  std::string prompt_suffix;  // what an evaluation prompt ends with: s1's "<|im_start|>think" for
                              // ChatML (the model writes the newline); Llama: think_start
};
// Throws std::invalid_argument for an unknown name.
ThinkingMarkers thinking_markers(const std::string& name);

// The evaluation prompt of a thinking model: render_chat(..., add_generation_prompt=true) followed
// by thinking_markers(name).prompt_suffix, as s1 prompts at evaluation.
std::string render_thinking_prompt(const std::string& name, const std::vector<ChatMessage>& messages,
                                   const TokenizerConfig& cfg);

// s1's assistant message from a record's thinking trajectory and attempt (data/tokenization.py):
// thinking = "\n".join(trajectory).strip(), content = ("Answer: " + attempt unless the attempt
// contains "Answer:").strip(); strip() as Python's (Unicode whitespace).
ChatMessage s1_assistant_message(const std::vector<std::string>& thinking_trajectory,
                                 const std::string& attempt);

// Python's str.strip() with no argument on UTF-8 text: removes leading and trailing code points
// that Python's str.isspace() accepts (Jinja's `trim` filter is this). Invalid UTF-8 bytes are
// not whitespace.
std::string python_strip(const std::string& text);

}  // namespace audit::datasets
