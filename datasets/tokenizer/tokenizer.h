// Tokenizers. `Tokenizer` is what every consumer (chat formats, packing, evaluation, `audit
// tokenize`) sees; `ByteTokenizer` below is the s1 miniature's, and `HfTokenizer`
// (datasets/hf_tokenizer/hf_tokenizer.h) reads a Hugging Face tokenizer.json.
//
// The byte-level tokenizer of the s1 miniature: ids 0..255 are the bytes of the text, ids 256..263
// are the special tokens of the chat template (see packing.h for the template itself):
//
//   <bos><|question|>{question}<think>{thinking trace}</think><answer>{answer}</answer><eos>
//
// encode() never produces a special id (text that spells "<think>" stays bytes); specials enter
// only through the template. decode() renders specials by name, so decode(encode(s)) == s.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace audit::datasets {

using TokenId = std::int32_t;

// The string budget forcing appends when it suppresses </think> (s1: "Wait"), encoded as bytes.
inline constexpr const char* kWait = "Wait";

// Special token ids, in vocabulary order after the 256 bytes.
enum class Special : TokenId {
  pad = 256,     // <pad>: padding, never a loss target
  bos,           // <bos>: start of a document
  eos,           // <eos>: end of a document (the model should stop here)
  question,      // <|question|>: the question follows
  think,         // <think>: the thinking trace follows (the prompt ends here)
  end_think,     // </think>: end of thinking; budget forcing suppresses this token
  answer,        // <answer>: the final answer follows
  end_answer,    // </answer>
};

// The interface every tokenizer implements.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Embedding rows the model needs: every id encode() or a template can produce is below this.
  virtual int64_t vocab_size() const = 0;
  // Text -> ids. Plain text only: no BOS/EOS or template tokens are added. Whether special-token
  // spellings in the text become their ids is the tokenizer's rule (Hugging Face: added tokens
  // are matched in the text; the byte tokenizer: never).
  virtual std::vector<TokenId> encode(std::string_view text) const = 0;
  // Ids -> text; special tokens are dropped when skip_special is true. Throws std::out_of_range
  // for an id outside the vocabulary.
  virtual std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const = 0;
  // The id of a token spelled exactly `token` (a special like "<|im_end|>" or a vocabulary
  // entry), or -1 when there is none.
  virtual TokenId token_to_id(std::string_view token) const = 0;
  // Whether id is a special token (a template marker, BOS/EOS, padding): what decode skips.
  virtual bool is_special(TokenId id) const = 0;
  // {"kind": ..., "vocab_size": ..., ...} for the ledger and `audit model inspect`.
  virtual nlohmann::json describe() const = 0;
};

class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int kNumBytes = 256;
  static constexpr int kNumSpecials = 8;

  int64_t vocab_size() const override { return kNumBytes + kNumSpecials; }  // 264

  // Text -> byte ids (0..255). Never yields a special id.
  std::vector<TokenId> encode(std::string_view text) const override;
  // Ids -> text; specials are written as their names ("<think>"), or dropped when skip_special.
  // Throws std::out_of_range for an id outside [0, vocab_size()).
  std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const override;
  // A special's id by name, a single byte's id for a one-character string, else -1.
  TokenId token_to_id(std::string_view token) const override;

  // Id of a special by name, e.g. special("</think>"). Throws std::invalid_argument if unknown.
  TokenId special(std::string_view name) const;
  static TokenId id(Special s) { return static_cast<TokenId>(s); }
  bool is_special(TokenId id) const override { return id >= kNumBytes && id < vocab_size(); }
  // "<think>" for a special, the byte as a 1-char string otherwise.
  std::string token_name(TokenId id) const;
  // Names of the specials in id order (index i is id 256 + i).
  static const std::vector<std::string>& special_names();

  TokenId pad_id() const { return id(Special::pad); }
  TokenId bos_id() const { return id(Special::bos); }
  TokenId eos_id() const { return id(Special::eos); }
  TokenId question_id() const { return id(Special::question); }
  TokenId think_id() const { return id(Special::think); }
  TokenId end_think_id() const { return id(Special::end_think); }
  TokenId answer_id() const { return id(Special::answer); }
  TokenId end_answer_id() const { return id(Special::end_answer); }

  // The bytes of kWait, for budget forcing.
  std::vector<TokenId> wait_tokens() const { return encode(kWait); }

  // {"kind":"byte","vocab_size":264,"specials":{"<pad>":256,...}} for the ledger.
  nlohmann::json describe() const override;
};

}  // namespace audit::datasets
