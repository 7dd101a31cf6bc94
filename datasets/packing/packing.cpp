// Chat template, loss masks, sequence packing and padded batches (see packing.h).
#include "datasets/packing/packing.h"

#include <algorithm>
#include <stdexcept>

namespace audit::datasets {

LossOn parse_loss_on(std::string_view s) {
  if (s == "completion" || s == "answer") return LossOn::completion;
  if (s == "all") return LossOn::all;
  throw std::invalid_argument("unknown loss_on '" + std::string(s) + "' (completion or all)");
}

std::vector<TokenId> format_prompt(const ByteTokenizer& tok, std::string_view question) {
  std::vector<TokenId> t = {tok.bos_id(), tok.question_id()};
  const auto q = tok.encode(question);
  t.insert(t.end(), q.begin(), q.end());
  t.push_back(tok.think_id());
  return t;
}

Sequence format_document(const ByteTokenizer& tok, std::string_view question,
                         std::string_view trace, std::string_view answer, LossOn loss_on) {
  Sequence s;
  s.tokens = format_prompt(tok, question);
  s.prompt_len = s.tokens.size();
  auto append = [&](const std::vector<TokenId>& v) { s.tokens.insert(s.tokens.end(), v.begin(), v.end()); };
  append(tok.encode(trace));
  s.tokens.push_back(tok.end_think_id());
  s.tokens.push_back(tok.answer_id());
  append(tok.encode(answer));
  s.tokens.push_back(tok.end_answer_id());
  s.tokens.push_back(tok.eos_id());
  s.loss_mask.assign(s.tokens.size(), 0);
  const std::size_t first = loss_on == LossOn::all ? 1 : s.prompt_len;
  for (std::size_t i = first; i < s.tokens.size(); ++i) s.loss_mask[i] = 1;
  return s;
}

Sequence format_example(const ByteTokenizer& tok, const Example& e, LossOn loss_on) {
  return format_document(tok, e.question, e.trace, e.answer, loss_on);
}

std::vector<Sequence> format_examples(const ByteTokenizer& tok, const std::vector<Example>& ex,
                                      LossOn loss_on) {
  std::vector<Sequence> v;
  v.reserve(ex.size());
  for (const auto& e : ex) v.push_back(format_example(tok, e, loss_on));
  return v;
}

ParsedCompletion parse_completion(const ByteTokenizer& tok, const std::vector<TokenId>& c) {
  ParsedCompletion p;
  std::size_t i = 0;
  for (; i < c.size() && !tok.is_special(c[i]); ++i) {
    p.thinking.push_back(static_cast<char>(static_cast<unsigned char>(c[i])));
    ++p.thinking_tokens;
  }
  if (i < c.size() && c[i] == tok.end_think_id()) {
    p.closed_think = true;
    ++i;
    if (i < c.size() && c[i] == tok.answer_id()) {
      p.has_answer = true;
      for (++i; i < c.size() && !tok.is_special(c[i]); ++i)
        p.answer.push_back(static_cast<char>(static_cast<unsigned char>(c[i])));
    }
  }
  p.stopped = std::find(c.begin(), c.end(), tok.eos_id()) != c.end();
  return p;
}

std::size_t Batch::supervised_tokens() const {
  std::size_t n = 0;
  for (auto m : loss_mask) n += m;
  return n;
}

std::size_t Batch::real_tokens() const {
  std::size_t n = 0;
  for (auto s : segments) n += s != 0;
  return n;
}

Batch Batch::slice_rows(int begin, int count) const {
  if (begin < 0 || count < 0 || begin + count > rows)
    throw std::out_of_range("Batch::slice_rows: rows [" + std::to_string(begin) + ", " +
                            std::to_string(begin + count) + ") of " + std::to_string(rows));
  Batch b;
  b.rows = count;
  b.cols = cols;
  const auto lo = static_cast<std::ptrdiff_t>(begin) * cols, hi = lo + static_cast<std::ptrdiff_t>(count) * cols;
  b.tokens.assign(tokens.begin() + lo, tokens.begin() + hi);
  b.loss_mask.assign(loss_mask.begin() + lo, loss_mask.begin() + hi);
  b.positions.assign(positions.begin() + lo, positions.begin() + hi);
  b.segments.assign(segments.begin() + lo, segments.begin() + hi);
  return b;
}

std::vector<std::uint8_t> Batch::attention_mask(int r) const {
  if (r < 0 || r >= rows) throw std::out_of_range("Batch::attention_mask: row out of range");
  const std::size_t T = static_cast<std::size_t>(cols);
  const std::int32_t* seg = segments.data() + static_cast<std::size_t>(r) * T;
  std::vector<std::uint8_t> m(T * T, 0);
  for (std::size_t i = 0; i < T; ++i)
    for (std::size_t j = 0; j <= i; ++j) m[i * T + j] = seg[i] != 0 && seg[i] == seg[j];
  return m;
}

double PackStats::efficiency() const {
  const std::size_t total = real_tokens + padding_tokens;
  return total ? static_cast<double>(real_tokens) / static_cast<double>(total) : 0.0;
}

void to_json(nlohmann::json& j, const PackStats& s) {
  j = nlohmann::json{{"sequences", s.sequences},
                     {"truncated", s.truncated},
                     {"skipped", s.skipped},
                     {"blocks", s.blocks},
                     {"real_tokens", s.real_tokens},
                     {"padding_tokens", s.padding_tokens},
                     {"supervised_tokens", s.supervised_tokens},
                     {"efficiency", s.efficiency()}};
}

namespace {
// Appends a padded row of `cols` positions to b.
void add_row(Batch& b, TokenId pad) {
  const std::size_t n = static_cast<std::size_t>(b.cols);
  b.tokens.insert(b.tokens.end(), n, pad);
  b.loss_mask.insert(b.loss_mask.end(), n, 0);
  b.positions.insert(b.positions.end(), n, 0);
  b.segments.insert(b.segments.end(), n, 0);
  ++b.rows;
}
// Writes the first `len` tokens of s into row r at column `at` as segment `seg`.
void put(Batch& b, int r, int at, const Sequence& s, int len, std::int32_t seg) {
  const std::size_t base = static_cast<std::size_t>(r) * static_cast<std::size_t>(b.cols) +
                           static_cast<std::size_t>(at);
  for (int t = 0; t < len; ++t) {
    const std::size_t k = base + static_cast<std::size_t>(t);
    b.tokens[k] = s.tokens[static_cast<std::size_t>(t)];
    b.loss_mask[k] = t == 0 ? 0 : s.loss_mask[static_cast<std::size_t>(t)];
    b.positions[k] = t;
    b.segments[k] = seg;
  }
}
void check_sequence(const Sequence& s) {
  if (s.loss_mask.size() != s.tokens.size())
    throw std::invalid_argument("sequence has " + std::to_string(s.tokens.size()) + " tokens but " +
                                std::to_string(s.loss_mask.size()) + " mask entries");
}
}  // namespace

Packed pack_sequences(const std::vector<Sequence>& seqs, const std::vector<std::size_t>& order,
                      int block_size, TokenId pad_id) {
  if (block_size < 1) throw std::invalid_argument("block_size must be >= 1");
  Packed p;
  Batch& b = p.blocks;
  b.cols = block_size;
  int used = block_size;  // columns used in the current row (full: start a new one)
  std::int32_t seg = 0;
  for (std::size_t idx : order) {
    if (idx >= seqs.size())
      throw std::invalid_argument("pack_sequences: index " + std::to_string(idx) + " of " +
                                  std::to_string(seqs.size()) + " sequences");
    const Sequence& s = seqs[idx];
    check_sequence(s);
    if (s.tokens.size() < 2) {
      ++p.stats.skipped;
      continue;
    }
    int len = static_cast<int>(s.tokens.size());
    if (len > block_size) {
      len = block_size;
      ++p.stats.truncated;
    }
    if (used + len > block_size) {
      add_row(b, pad_id);
      used = 0;
      seg = 0;
    }
    put(b, b.rows - 1, used, s, len, ++seg);
    used += len;
    ++p.stats.sequences;
  }
  p.stats.blocks = static_cast<std::size_t>(b.rows);
  p.stats.real_tokens = b.real_tokens();
  p.stats.padding_tokens = b.segments.size() - p.stats.real_tokens;
  p.stats.supervised_tokens = b.supervised_tokens();
  return p;
}

Batch pad_batch(const std::vector<Sequence>& seqs, const std::vector<std::size_t>& indices,
                int max_len, TokenId pad_id) {
  int longest = 0;
  for (std::size_t idx : indices) {
    if (idx >= seqs.size())
      throw std::invalid_argument("pad_batch: index " + std::to_string(idx) + " of " +
                                  std::to_string(seqs.size()) + " sequences");
    check_sequence(seqs[idx]);
    longest = std::max(longest, static_cast<int>(seqs[idx].tokens.size()));
  }
  Batch b;
  b.cols = max_len > 0 ? std::min(longest, max_len) : longest;
  b.cols = std::max(b.cols, 1);
  for (std::size_t idx : indices) {
    add_row(b, pad_id);
    const Sequence& s = seqs[idx];
    const int len = std::min(static_cast<int>(s.tokens.size()), b.cols);
    if (len > 0) put(b, b.rows - 1, 0, s, len, 1);
  }
  return b;
}

}  // namespace audit::datasets
