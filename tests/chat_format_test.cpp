// The chat formats in token ids: the miniature's byte template and a real tokenizer
// (make_tokenizers.py's Qwen2-shaped BPE, made at test time) with Qwen2.5's chat template and s1's
// thinking markers. A training sequence must start with exactly the evaluation prompt, decode to
// the template's rendering, and parse back into its thinking and answer.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "datasets/chat_format/chat_format.h"
#include "datasets/hf_tokenizer/hf_tokenizer.h"
#include "tests/support/support.h"

using namespace audit::datasets;

namespace {

std::string tokenizers_dir() {
  const std::string src = audit::testing::source_dir();
  return audit::testing::python_fixture(
      "tokenizers",
      "'" + audit::testing::python() + "' '" + src + "/tests/golden/make_tokenizers.py' {OUT} > /dev/null",
      {src + "/tests/golden/make_tokenizers.py"});
}

TokenizerConfig qwen25_config() {
  TokenizerConfig c;
  c.eos_token = "<|im_end|>";
  c.pad_token = "<|endoftext|>";
  c.chat_template = audit::testing::read_file(std::string(audit::testing::source_dir()) +
                                              "/tests/fixtures/chat_templates/qwen2.5_instruct.jinja");
  c.template_name = detect_chat_template(c.chat_template);
  return c;
}

std::vector<TokenId> slice(const std::vector<TokenId>& v, size_t from, size_t to) {
  return {v.begin() + std::ptrdiff_t(from), v.begin() + std::ptrdiff_t(to)};
}

const char* kQuestion = "What is 12 + 30?";
const char* kTrace = "add 12 30\ndigit 0: 2 + 0 = 2 carry 0\nresult 42";

}  // namespace

TEST(ChatFormat, QwenTemplateDocumentStartsWithThePromptAndParsesBack) {
  const std::string dir = tokenizers_dir();
  ASSERT_FALSE(dir.empty());
  std::shared_ptr<const Tokenizer> tok = HfTokenizer::load(dir + "/qwen2");
  const auto cfg = qwen25_config();
  ASSERT_EQ(cfg.template_name, "chatml_qwen2.5");
  const auto fmt = template_format(tok, cfg, cfg.template_name);

  const auto prompt = fmt->prompt(kQuestion);
  EXPECT_EQ(tok->decode(prompt), render_thinking_prompt("chatml_qwen2.5", {{"user", kQuestion, ""}}, cfg));
  const std::string prompt_text = tok->decode(prompt);
  EXPECT_EQ(prompt_text.substr(prompt_text.size() - 17), "<|im_start|>think") << "s1's prompt";

  const auto doc = fmt->document(kQuestion, kTrace, "42", LossOn::completion);
  ASSERT_EQ(doc.prompt_len, prompt.size());
  EXPECT_EQ(slice(doc.tokens, 0, prompt.size()), prompt) << "the evaluation prompt is the prefix";
  // The text is the template's rendering of s1's assistant turn, up to its end of turn.
  const std::string full = render_chat(
      "chatml_qwen2.5", {{"user", kQuestion, ""}, s1_assistant_message({kTrace}, "42")}, false, cfg);
  const std::string text = tok->decode(doc.tokens);
  EXPECT_EQ(text, full.substr(0, full.rfind("<|im_end|>") + 10));
  EXPECT_NE(text.find("<|im_start|>think\n" + std::string(kTrace) + "\n<|im_start|>answer\nAnswer: 42<|im_end|>"),
            std::string::npos)
      << text;
  // The loss covers the completion only.
  for (size_t i = 0; i < doc.tokens.size(); ++i) EXPECT_EQ(doc.loss_mask[i], i >= doc.prompt_len) << i;
  const auto all = fmt->document(kQuestion, kTrace, "42", LossOn::all);
  EXPECT_EQ(all.loss_mask[0], 0);
  EXPECT_EQ(all.loss_mask[1], 1);

  // The completion parses back into the trace and the answer.
  const auto parsed = fmt->parse(slice(doc.tokens, doc.prompt_len, doc.tokens.size()));
  EXPECT_TRUE(parsed.closed_think);
  EXPECT_TRUE(parsed.has_answer);
  EXPECT_TRUE(parsed.stopped);
  EXPECT_EQ(python_strip(parsed.thinking), kTrace);
  EXPECT_EQ(parsed.answer, "42");

  // Generation control: <|im_start|> ends the thinking, "answer\n" is forced after it, and the
  // end of turn stops.
  EXPECT_EQ(fmt->end_think_id(), tok->token_to_id("<|im_start|>"));
  EXPECT_EQ(tok->decode(fmt->answer_prefix()), "answer\n");
  EXPECT_EQ(fmt->stop_ids().front(), tok->token_to_id("<|im_end|>"));
  EXPECT_EQ(fmt->pad_id(), tok->token_to_id("<|endoftext|>"));
  EXPECT_EQ(tok->decode(fmt->wait_ids()), "Wait");
}

TEST(ChatFormat, UnfinishedCompletionsParseAsUnfinished) {
  const std::string dir = tokenizers_dir();
  ASSERT_FALSE(dir.empty());
  std::shared_ptr<const Tokenizer> tok = HfTokenizer::load(dir + "/qwen2");
  const auto fmt = template_format(tok, qwen25_config(), "chatml_qwen2.5");
  const auto thinking_only = tok->encode("\nadd 1 2\nresult 3");
  auto p = fmt->parse(thinking_only);
  EXPECT_FALSE(p.closed_think);
  EXPECT_FALSE(p.has_answer);
  EXPECT_FALSE(p.stopped);
  EXPECT_EQ(p.thinking_tokens, thinking_only.size());
  // Thinking closed by a turn that is not the answer marker: closed, no answer.
  auto other = tok->encode("\nresult 3<|im_start|>user\n3<|im_end|>");
  p = fmt->parse(other);
  EXPECT_TRUE(p.closed_think);
  EXPECT_FALSE(p.has_answer);
  EXPECT_TRUE(p.stopped);
}

TEST(ChatFormat, TokenizerWithoutTheTemplatesTokensIsRefused) {
  const std::string dir = tokenizers_dir();
  ASSERT_FALSE(dir.empty());
  // The Llama 3 shaped fixture has no header tokens: the Llama 3 markers cannot be rendered in it.
  std::shared_ptr<const Tokenizer> tok = HfTokenizer::load(dir + "/llama3");
  TokenizerConfig cfg;
  cfg.bos_token = "<|begin_of_text|>";
  cfg.eos_token = "<|eot_id|>";
  try {
    template_format(tok, cfg, "llama3");
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("llama3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(template_format(tok, cfg, "no-such-template"), std::invalid_argument);
}

TEST(ChatFormat, ByteFormatIsTheMiniaturesTemplate) {
  const auto fmt = byte_format();
  const auto doc = fmt->document(kQuestion, kTrace, "42", LossOn::completion);
  EXPECT_EQ(slice(doc.tokens, 0, doc.prompt_len), fmt->prompt(kQuestion));
  const auto p = fmt->parse(slice(doc.tokens, doc.prompt_len, doc.tokens.size()));
  EXPECT_EQ(p.thinking, kTrace);
  EXPECT_EQ(p.answer, "42");
  EXPECT_TRUE(p.stopped);
  EXPECT_EQ(fmt->describe()["kind"], "byte");
}
