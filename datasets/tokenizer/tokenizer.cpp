// The byte-level tokenizer with chat-template specials (see tokenizer.h).
#include "datasets/tokenizer/tokenizer.h"

#include <stdexcept>

namespace audit::datasets {

const std::vector<std::string>& ByteTokenizer::special_names() {
  static const std::vector<std::string> names = {"<pad>",   "<bos>",    "<eos>",    "<|question|>",
                                                 "<think>", "</think>", "<answer>", "</answer>"};
  return names;
}

std::vector<TokenId> ByteTokenizer::encode(std::string_view text) const {
  std::vector<TokenId> ids;
  ids.reserve(text.size());
  for (unsigned char c : text) ids.push_back(static_cast<TokenId>(c));
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<TokenId>& ids, bool skip_special) const {
  std::string s;
  s.reserve(ids.size());
  for (TokenId id : ids) {
    if (id < 0 || id >= vocab_size())
      throw std::out_of_range("ByteTokenizer::decode: token id " + std::to_string(id) +
                              " outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
    if (id < kNumBytes)
      s.push_back(static_cast<char>(static_cast<unsigned char>(id)));
    else if (!skip_special)
      s += special_names()[static_cast<std::size_t>(id - kNumBytes)];
  }
  return s;
}

TokenId ByteTokenizer::special(std::string_view name) const {
  const auto& names = special_names();
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<TokenId>(kNumBytes + i);
  throw std::invalid_argument("unknown special token '" + std::string(name) + "'");
}

TokenId ByteTokenizer::token_to_id(std::string_view token) const {
  const auto& names = special_names();
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == token) return static_cast<TokenId>(kNumBytes + i);
  if (token.size() == 1) return static_cast<TokenId>(static_cast<unsigned char>(token[0]));
  return -1;
}

std::string ByteTokenizer::token_name(TokenId id) const {
  if (id < 0 || id >= vocab_size())
    throw std::out_of_range("ByteTokenizer::token_name: token id " + std::to_string(id) +
                            " outside the vocabulary");
  if (id >= kNumBytes) return special_names()[static_cast<std::size_t>(id - kNumBytes)];
  return std::string(1, static_cast<char>(static_cast<unsigned char>(id)));
}

nlohmann::json ByteTokenizer::describe() const {
  nlohmann::json specials = nlohmann::json::object();
  for (std::size_t i = 0; i < special_names().size(); ++i)
    specials[special_names()[i]] = kNumBytes + static_cast<int>(i);
  return {{"kind", "byte"}, {"vocab_size", vocab_size()}, {"specials", specials},
          {"wait", kWait}};
}

}  // namespace audit::datasets
