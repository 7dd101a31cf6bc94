// The chat format: everything the trainer, generation and evaluation need to know about how a
// question becomes a prompt, how (question, thinking, answer) becomes a training sequence, and
// how a completion splits back into thinking and answer — in token ids, for one tokenizer.
//
// Two kinds:
//  - byte_format(): the s1 miniature's byte tokenizer and its template (datasets/packing):
//      prompt      <bos><|question|>{question}<think>
//      completion  {trace}</think><answer>{answer}</answer><eos>
//  - template_format(): a Hugging Face tokenizer with its chat template (datasets/chat_template)
//    and s1's thinking markers. For ChatML (Qwen2.5, s1's base):
//      prompt      <|im_start|>system\n...<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n
//                  <|im_start|>assistant\n<|im_start|>think
//      completion  \n{trace}\n<|im_start|>answer\nAnswer: {answer}<|im_end|>
//    (s1's text, data/tokenization.py; parse() strips the "Answer:").
//    The end of thinking is the first token of the answer marker (<|im_start|> for ChatML): that
//    is the token budget forcing suppresses (s1 stops its thinking phase on it) or forces, and
//    the rest of the marker ("answer\n") is the forced answer prefix. The stop tokens are the
//    template's end of turn and the tokenizer's EOS.
//
// A training sequence is the prompt's ids followed by the ids of the rest of the rendered
// conversation, so the prompt a model is evaluated on is token for token the prefix it was
// trained on.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/chat_template/chat_template.h"
#include "datasets/packing/packing.h"
#include "datasets/tokenizer/tokenizer.h"

namespace audit::datasets {

class ChatFormat {
 public:
  virtual ~ChatFormat() = default;
  virtual const Tokenizer& tokenizer() const = 0;
  // The prompt given at evaluation: it ends where the thinking starts.
  virtual std::vector<TokenId> prompt(std::string_view question) const = 0;
  // The full training sequence with its loss mask (see packing.h for LossOn).
  virtual Sequence document(std::string_view question, std::string_view trace,
                            std::string_view answer, LossOn loss_on) const = 0;
  // A completion (what followed the prompt) split into thinking and answer.
  virtual ParsedCompletion parse(const std::vector<TokenId>& completion) const = 0;

  // Generation control (reproduce/model/generate.h).
  virtual TokenId end_think_id() const = 0;                // the token that ends the thinking
  virtual std::vector<TokenId> answer_prefix() const = 0;  // forced after end_think_id
  virtual std::vector<TokenId> stop_ids() const = 0;       // any of them ends the completion
  virtual std::vector<TokenId> wait_ids() const = 0;       // s1's "Wait"
  virtual TokenId pad_id() const = 0;                      // padding (masked, never a target)

  // {"kind": ..., "tokenizer": {...}, "markers": {...}} for the ledger.
  virtual nlohmann::json describe() const = 0;

  Sequence document(const Example& e, LossOn loss_on = LossOn::completion) const {
    return document(e.question, e.trace, e.answer, loss_on);
  }
  std::vector<Sequence> documents(const std::vector<Example>& ex,
                                  LossOn loss_on = LossOn::completion) const;
};

// The miniature's byte tokenizer and template.
std::unique_ptr<ChatFormat> byte_format();

// A Hugging Face tokenizer with the chat template `template_name` (chat_template_names()) and
// its thinking markers. Throws std::invalid_argument naming what is missing: an unknown
// template, or a marker, end-of-turn or EOS token the tokenizer does not have.
std::unique_ptr<ChatFormat> template_format(std::shared_ptr<const Tokenizer> tokenizer,
                                            const TokenizerConfig& config,
                                            const std::string& template_name);

}  // namespace audit::datasets
