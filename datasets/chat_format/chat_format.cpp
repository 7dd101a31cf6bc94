// The byte and the chat-template formats (see chat_format.h).
#include "datasets/chat_format/chat_format.h"

#include <algorithm>
#include <stdexcept>

namespace audit::datasets {

std::vector<Sequence> ChatFormat::documents(const std::vector<Example>& ex, LossOn loss_on) const {
  std::vector<Sequence> v;
  v.reserve(ex.size());
  for (const auto& e : ex) v.push_back(document(e, loss_on));
  return v;
}

namespace {

void mask_from(Sequence& s, LossOn loss_on) {
  s.loss_mask.assign(s.tokens.size(), 0);
  const std::size_t first = loss_on == LossOn::all ? 1 : s.prompt_len;
  for (std::size_t i = first; i < s.tokens.size(); ++i) s.loss_mask[i] = 1;
}

// ---------------------------------------------------------------- the miniature's bytes

class ByteFormat final : public ChatFormat {
 public:
  const Tokenizer& tokenizer() const override { return tok_; }
  std::vector<TokenId> prompt(std::string_view q) const override { return format_prompt(tok_, q); }
  Sequence document(std::string_view q, std::string_view trace, std::string_view answer,
                    LossOn loss_on) const override {
    return format_document(tok_, q, trace, answer, loss_on);
  }
  ParsedCompletion parse(const std::vector<TokenId>& c) const override {
    return parse_completion(tok_, c);
  }
  TokenId end_think_id() const override { return tok_.end_think_id(); }
  std::vector<TokenId> answer_prefix() const override { return {tok_.answer_id()}; }
  std::vector<TokenId> stop_ids() const override { return {tok_.eos_id()}; }
  std::vector<TokenId> wait_ids() const override { return tok_.wait_tokens(); }
  TokenId pad_id() const override { return tok_.pad_id(); }
  nlohmann::json describe() const override {
    return {{"kind", "byte"},
            {"tokenizer", tok_.describe()},
            {"template", "<bos><|question|>{question}<think>{trace}</think><answer>{answer}"
                         "</answer><eos>"}};
  }

 private:
  ByteTokenizer tok_;
};

// ---------------------------------------------------------------- a chat template

class TemplateFormat final : public ChatFormat {
 public:
  TemplateFormat(std::shared_ptr<const Tokenizer> tok, TokenizerConfig cfg, std::string name)
      : tok_(std::move(tok)), cfg_(std::move(cfg)), name_(std::move(name)),
        markers_(thinking_markers(name_)) {
    auto need = [&](const std::string& token, const std::string& what) {
      TokenId id = tok_->token_to_id(token);
      if (id < 0)
        throw std::invalid_argument("the tokenizer has no token " + token + " (" + what +
                                    " of chat template " + name_ + ")");
      return id;
    };
    // The answer marker: its first token ends the thinking, the rest is forced after it.
    const auto marker = tok_->encode(markers_.answer_start);
    if (marker.size() < 2 || !tok_->is_special(marker.front()))
      throw std::invalid_argument("chat template " + name_ + ": the tokenizer does not make the "
                                  "answer marker " + markers_.answer_start +
                                  " a special token followed by text");
    end_think_ = marker.front();
    answer_prefix_.assign(marker.begin() + 1, marker.end());
    answer_marker_text_ = tok_->decode(marker);
    stops_.push_back(need(markers_.end_of_turn, "end of turn"));
    if (!cfg_.eos_token.empty()) {
      TokenId eos = need(cfg_.eos_token, "eos_token of " + cfg_.path);
      if (eos != stops_.front()) stops_.push_back(eos);
    }
    pad_ = cfg_.pad_token.empty() ? -1 : tok_->token_to_id(cfg_.pad_token);
    if (pad_ < 0) pad_ = stops_.front();
    wait_ = tok_->encode("Wait");
  }

  const Tokenizer& tokenizer() const override { return *tok_; }

  std::vector<TokenId> prompt(std::string_view q) const override {
    return tok_->encode(prompt_text(q));
  }

  Sequence document(std::string_view q, std::string_view trace, std::string_view answer,
                    LossOn loss_on) const override {
    const std::string head = prompt_text(q);
    // The assistant turn as s1 writes it: thinking, then "Answer: {answer}".
    std::string full = render_chat(
        name_, {{"user", std::string(q), ""},
                s1_assistant_message({std::string(trace)}, std::string(answer))},
        false, cfg_);
    if (full.compare(0, head.size(), head) != 0)
      throw std::logic_error("chat template " + name_ +
                             ": the thinking prompt is not a prefix of the rendered conversation");
    // The completion ends with the assistant's end of turn (what follows it, such as ChatML's
    // newline, is not the model's to predict).
    std::string tail = full.substr(head.size());
    const auto end = tail.rfind(markers_.end_of_turn);
    if (end != std::string::npos) tail.resize(end + markers_.end_of_turn.size());
    Sequence s;
    s.tokens = tok_->encode(head);
    s.prompt_len = s.tokens.size();
    const auto rest = tok_->encode(tail);
    s.tokens.insert(s.tokens.end(), rest.begin(), rest.end());
    mask_from(s, loss_on);
    return s;
  }

  ParsedCompletion parse(const std::vector<TokenId>& c) const override {
    ParsedCompletion p;
    auto is_stop = [&](TokenId id) {
      return std::find(stops_.begin(), stops_.end(), id) != stops_.end();
    };
    std::size_t k = 0;
    while (k < c.size() && c[k] != end_think_ && !is_stop(c[k])) ++k;
    p.thinking = tok_->decode({c.begin(), c.begin() + std::ptrdiff_t(k)});
    p.thinking_tokens = k;
    p.stopped = std::any_of(c.begin(), c.end(), is_stop);
    if (k < c.size() && c[k] == end_think_) {
      p.closed_think = true;
      std::size_t e = k;
      while (e < c.size() && !is_stop(c[e])) ++e;
      const std::string rest = tok_->decode({c.begin() + std::ptrdiff_t(k), c.begin() + std::ptrdiff_t(e)});
      if (rest.compare(0, answer_marker_text_.size(), answer_marker_text_) == 0) {
        p.has_answer = true;
        p.answer = python_strip(rest.substr(answer_marker_text_.size()));
        // s1's answers read "Answer: {answer}".
        if (p.answer.rfind("Answer:", 0) == 0) p.answer = python_strip(p.answer.substr(7));
      }
    }
    return p;
  }

  TokenId end_think_id() const override { return end_think_; }
  std::vector<TokenId> answer_prefix() const override { return answer_prefix_; }
  std::vector<TokenId> stop_ids() const override { return stops_; }
  std::vector<TokenId> wait_ids() const override { return wait_; }
  TokenId pad_id() const override { return pad_; }

  nlohmann::json describe() const override {
    return {{"kind", "chat_template"},
            {"template", name_},
            {"tokenizer", tok_->describe()},
            {"tokenizer_config", cfg_.path},
            {"markers",
             {{"think_start", markers_.think_start},
              {"answer_start", markers_.answer_start},
              {"end_of_turn", markers_.end_of_turn}}},
            {"end_think_id", end_think_},
            {"stop_ids", stops_},
            {"pad_id", pad_}};
  }

 private:
  std::string prompt_text(std::string_view q) const {
    return render_thinking_prompt(name_, {{"user", std::string(q), ""}}, cfg_);
  }

  std::shared_ptr<const Tokenizer> tok_;
  TokenizerConfig cfg_;
  std::string name_;
  ThinkingMarkers markers_;
  TokenId end_think_ = -1, pad_ = -1;
  std::vector<TokenId> answer_prefix_, stops_, wait_;
  std::string answer_marker_text_;
};

}  // namespace

std::unique_ptr<ChatFormat> byte_format() { return std::make_unique<ByteFormat>(); }

std::unique_ptr<ChatFormat> template_format(std::shared_ptr<const Tokenizer> tokenizer,
                                            const TokenizerConfig& config,
                                            const std::string& template_name) {
  const auto& names = chat_template_names();
  if (std::find(names.begin(), names.end(), template_name) == names.end())
    throw std::invalid_argument("unknown chat template '" + template_name + "'");
  return std::make_unique<TemplateFormat>(std::move(tokenizer), config, template_name);
}

}  // namespace audit::datasets
