// From examples to training tensors (as plain vectors; the trainer makes tensors of them):
// the chat template with its loss mask, sequence packing into fixed-length blocks, and
// padding-mode batches.
//
// Template (tokenizer.h has the specials):
//   prompt      <bos><|question|>{question}<think>
//   completion  {trace}</think><answer>{answer}</answer><eos>
// Direct-answer data (pretraining, the base model) has an empty trace: "<think></think>", so
// base and tuned models are prompted the same way. Loss (LossOn::completion, the default, as s1
// masks the question): on every completion token, i.e. the trace, the answer and the closing
// markers the model must learn to emit (</think>, <answer>, </answer>, <eos>); not on the
// prompt. LossOn::all: on every token but the first (<bos> has nothing to be predicted from).
//
// Layout (the trainer's data contract, reproduce/trainer/trainer.h): rows of `cols` token ids,
// each token with its loss flag; the trainer shifts: logits at position t-1 predict tokens[t],
// counted iff loss_mask[t]. A packed row holds whole sequences back to back (each ends with
// <eos>), next-fit in the given order, then padding (<pad>, mask 0, segment 0). Position ids
// restart at 0 for every sequence and segment ids number them 1, 2, ... within the row; the first
// token of a segment always has mask 0 (it is not predictable from the previous segment). The
// model should use the position ids for its rotary embeddings and a block-diagonal causal mask
// (query i attends to key j iff j <= i and seg[i] == seg[j] != 0; equivalently a new segment
// starts wherever a position id does not continue the previous one): then a packed row computes
// exactly what each sequence would compute alone. Plain causal attention over the row with
// restarting positions is an approximation (sequences see their predecessors).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/tasks/tasks.h"
#include "datasets/tokenizer/tokenizer.h"

namespace audit::datasets {

enum class LossOn { completion, all };
// "completion" (alias "answer", the recipe's name: trace + answer) | "all";
// throws std::invalid_argument otherwise.
LossOn parse_loss_on(std::string_view s);

struct Sequence {
  std::vector<TokenId> tokens;
  std::vector<std::uint8_t> loss_mask;  // 1: token i is a training target (predicted from 0..i-1)
  std::size_t prompt_len = 0;           // tokens of the prompt (through <think>)
};

// The prompt given to a model at evaluation: <bos><|question|>{question}<think>.
std::vector<TokenId> format_prompt(const ByteTokenizer& tok, std::string_view question);
// The full training sequence of (question, trace, answer).
Sequence format_document(const ByteTokenizer& tok, std::string_view question,
                         std::string_view trace, std::string_view answer,
                         LossOn loss_on = LossOn::completion);
Sequence format_example(const ByteTokenizer& tok, const Example& e,
                        LossOn loss_on = LossOn::completion);
std::vector<Sequence> format_examples(const ByteTokenizer& tok, const std::vector<Example>& ex,
                                      LossOn loss_on = LossOn::completion);

// What a model generated after the prompt, split by the template.
struct ParsedCompletion {
  std::string thinking;      // bytes before </think> (all bytes if it never closed)
  std::string answer;        // bytes after <answer>, up to the next special or the end
  bool closed_think = false; // </think> was emitted
  bool has_answer = false;   // <answer> followed </think>
  bool stopped = false;      // <eos> was emitted
  std::size_t thinking_tokens = 0;
};
ParsedCompletion parse_completion(const ByteTokenizer& tok, const std::vector<TokenId>& completion);

// Row-major [rows][cols] batch; used for packed blocks and padded batches alike.
struct Batch {
  int rows = 0, cols = 0;
  std::vector<TokenId> tokens;
  std::vector<std::uint8_t> loss_mask;  // 1: tokens[k] is a training target
  std::vector<std::int32_t> positions;  // restart at 0 per sequence
  std::vector<std::int32_t> segments;   // 1.. per sequence within a row; 0 = padding
  std::size_t supervised_tokens() const;  // sum of loss_mask
  std::size_t real_tokens() const;        // tokens with segment != 0
  // Rows [begin, begin + count) as a new batch (a micro-batch, or one rank's share).
  Batch slice_rows(int begin, int count) const;
  // [cols][cols] mask of row r: 1 where query i may attend to key j (block-diagonal causal).
  std::vector<std::uint8_t> attention_mask(int r) const;
};

struct PackStats {
  std::size_t sequences = 0;        // packed
  std::size_t truncated = 0;        // longer than a block: cut to its first block_size tokens
  std::size_t skipped = 0;          // fewer than 2 tokens: nothing to predict
  std::size_t blocks = 0;
  std::size_t real_tokens = 0;      // non-padding tokens
  std::size_t padding_tokens = 0;
  std::size_t supervised_tokens = 0;
  double efficiency() const;        // real / (real + padding)
};
void to_json(nlohmann::json& j, const PackStats& s);

struct Packed {
  Batch blocks;  // rows = blocks, cols = block_size
  PackStats stats;
};
// Packs seqs[order[0]], seqs[order[1]], ... into rows of block_size tokens (see above).
// Throws std::invalid_argument for block_size < 1 or an index out of range.
Packed pack_sequences(const std::vector<Sequence>& seqs, const std::vector<std::size_t>& order,
                      int block_size, TokenId pad_id = static_cast<TokenId>(Special::pad));

// One sequence per row, right-padded to the longest (capped at max_len when max_len > 0;
// longer sequences are truncated). Same conventions as packed rows, one segment per row.
Batch pad_batch(const std::vector<Sequence>& seqs, const std::vector<std::size_t>& indices,
                int max_len = 0, TokenId pad_id = static_cast<TokenId>(Special::pad));

}  // namespace audit::datasets
