// A Hugging Face tokenizer read natively from tokenizer.json (and tokenizer_config.json beside
// it, when present), torch-free and without Python: ids identical to the `tokenizers` library's
// encode(text, add_special_tokens=False|True) and text identical to its decode().
//
// Supported (the shapes Qwen2/2.5, Llama 2/3, Mistral and GPT-2 ship):
//   model          BPE: merges as "a b" strings or ["a","b"] pairs, ignore_merges, unk_token,
//                  fuse_unk, byte_fallback (<0xNN> tokens), dropout null (or 0), a word cache
//   normalizer     null, NFC, NFD, NFKC, NFKD (ICU), Prepend, Replace (String or Regex), Sequence
//   pre_tokenizer  null, Split (Regex or String pattern; Isolated, Removed, MergedWithPrevious,
//                  MergedWithNext, Contiguous; invert), ByteLevel (add_prefix_space, use_regex:
//                  the GPT-2 pattern; last in a Sequence), Metaspace (replacement, prepend_scheme
//                  first/always/never or the older add_prefix_space, split), Sequence
//   post_processor null, TemplateProcessing (single), ByteLevel (ids unchanged), Sequence
//   decoder        null, ByteLevel, Metaspace, Replace (String or Regex), ByteFallback, Fuse,
//                  Strip, Sequence
//   added_tokens   matched in the text before normalization (normalized: false) or in the
//                  normalized pieces (normalized: true), leftmost-longest, with single_word,
//                  lstrip and rstrip, exactly as `tokenizers`' AddedVocabulary
// Split patterns run on PCRE2 (UTF + UCP, JIT-compiled), which agrees with the Oniguruma that
// `tokenizers` uses on \p{L}, \p{N}, \s, (?i:...) and (?!\S) up to the Unicode version each ships:
// Debian 12's PCRE2 10.42 knows Unicode 14, tokenizers 0.23's Oniguruma Unicode 15, so a letter or
// digit new in Unicode 15 (Kawi U+11F04, Kawi digits U+11F50.., Cyrillic Extended-D U+1E030..)
// lands in another pre-token than tokenizers puts it in, and the ids can differ on such text
// (`audit tokenize --compare` shows it).
//
// Refused with audit::InputError naming the file and the key (exit 2):
//   model.type other than BPE (WordPiece, WordLevel, Unigram); model.dropout other than null/0;
//   a non-empty model.continuing_subword_prefix or model.end_of_word_suffix; normalizers other
//   than those above (BertNormalizer, Lowercase, Strip, StripAccents, NMT, Precompiled, ...);
//   pre-tokenizers other than those above (Whitespace, WhitespaceSplit, BertPreTokenizer,
//   Digits, Punctuation, CharDelimiterSplit, UnicodeScripts, ...), a ByteLevel pre-tokenizer
//   that is not the last; post-processors other than those above (BertProcessing,
//   RobertaProcessing, a TemplateProcessing whose single template uses $B); decoders other than
//   those above (WordPiece, BPEDecoder, CTC); a non-null truncation or padding; ids outside
//   [0, 2^24); a merge whose parts or result are not in the vocabulary.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/tokenizer/tokenizer.h"

namespace audit::datasets {

namespace hf_detail {
struct Impl;  // the parsed pipeline (PCRE2 and ICU stay out of this header)
}

// A Hugging Face tokenizer read from tokenizer.json. Immutable after load(); encode/decode may
// be called from several threads at once (the word cache is locked).
class HfTokenizer final : public Tokenizer {
 public:
  // `path` is a folder holding tokenizer.json, or the tokenizer.json itself. Throws
  // audit::InputError naming the file and the JSON key for anything unsupported or malformed.
  static std::unique_ptr<HfTokenizer> load(const std::string& path);
  ~HfTokenizer() override;

  // Max id + 1 over the model vocabulary and the added tokens.
  int64_t vocab_size() const override;
  // tokenizers' encode(text, add_special_tokens=False).ids. Throws std::invalid_argument when
  // `text` is not valid UTF-8 (a Python str always is).
  std::vector<TokenId> encode(std::string_view text) const override;
  // tokenizers' encode(text, add_special_tokens=True).ids: encode() through the post-processor
  // (Llama's BOS, for instance).
  std::vector<TokenId> encode_with_specials(std::string_view text) const;
  // tokenizers' decode(ids, skip_special_tokens). Ids in [0, vocab_size()) that name no token
  // are dropped as tokenizers drops them; throws std::out_of_range for an id outside it.
  std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const override;
  // The id of an added token or vocabulary entry spelled exactly `token`, or -1.
  TokenId token_to_id(std::string_view token) const override;
  // The token's spelling as in tokenizer.json (byte-level tokens in the GPT-2 alphabet, e.g.
  // "Ġthe"); "" for an id that names no token.
  std::string id_to_token(TokenId id) const;
  // Whether the id is an added token marked special.
  bool is_special(TokenId id) const override;
  // "byte_level_bpe" (a ByteLevel pre-tokenizer) or "sentencepiece_bpe" (anything else).
  std::string kind() const;
  // The tokenizer.json read.
  std::string path() const;
  // {"kind", "path", "vocab_size", "model": {...}, "added_tokens": [...], "specials": {...},
  //  "normalizer", "pre_tokenizer", "post_processor", "decoder", "config": {...}}.
  nlohmann::json describe() const override;

 private:
  HfTokenizer();
  std::unique_ptr<hf_detail::Impl> impl_;
};

}  // namespace audit::datasets
