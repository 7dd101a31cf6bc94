// Generation with a KV cache and budget forcing (see generate.h).
#include "reproduce/model/generate.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <stdexcept>
#include <string>

#include <ATen/CPUGeneratorImpl.h>

namespace audit::generate {

namespace {

void check_inputs(const model::CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                  const GenerateConfig& cfg) {
  const int64_t vocab = model->config().vocab;
  auto in_vocab = [&](int64_t id) { return id >= 0 && id < vocab; };
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty())
      throw std::invalid_argument("generate: prompt " + std::to_string(i) + " is empty");
    for (int64_t id : prompts[i])
      if (!in_vocab(id))
        throw std::invalid_argument("generate: prompt " + std::to_string(i) + " holds id " +
                                    std::to_string(id) + " outside [0, " + std::to_string(vocab) + ")");
  }
  const auto& b = cfg.budget;
  if (b.num_waits > 0 && b.wait_ids.empty())
    throw std::invalid_argument("generate: budget.num_waits > 0 needs budget.wait_ids");
  if (b.end_think_id >= 0 && !in_vocab(b.end_think_id))
    throw std::invalid_argument("generate: budget.end_think_id outside the vocabulary");
  for (const auto* ids : {&b.wait_ids, &b.answer_prefix_ids, &cfg.stop_ids})
    for (int64_t id : *ids)
      if (!in_vocab(id)) throw std::invalid_argument("generate: forced/stop id " + std::to_string(id) +
                                                     " outside the vocabulary");
  if (!in_vocab(cfg.pad_id)) throw std::invalid_argument("generate: pad_id outside the vocabulary");
  if (cfg.max_new_tokens < 1) throw std::invalid_argument("generate: max_new_tokens must be >= 1");
  if (cfg.batch_size < 1) throw std::invalid_argument("generate: batch_size must be >= 1");
  if (!(cfg.top_p > 0.0 && cfg.top_p <= 1.0))
    throw std::invalid_argument("generate: top_p must lie in (0, 1], got " + std::to_string(cfg.top_p));
  if (!(cfg.temperature >= 0.0)) throw std::invalid_argument("generate: temperature must be >= 0");
  if (cfg.top_k < 0) throw std::invalid_argument("generate: top_k must be >= 0");
}

// HF's TopPLogitsWarper on one row of logits [vocab]: sorted ascending, a token is removed when
// the cumulative probability up to and including it is <= 1 - top_p; the most likely token is
// always kept. Removed tokens get -inf.
torch::Tensor nucleus(const torch::Tensor& scaled, double top_p) {
  auto [sorted, order] = scaled.sort(0, /*descending=*/false);
  auto cumulative = sorted.softmax(0).cumsum(0);
  auto remove_sorted = cumulative <= (1.0 - top_p);
  remove_sorted[-1] = false;
  auto remove = torch::empty_like(remove_sorted).scatter_(0, order, remove_sorted);
  return scaled.masked_fill(remove, -std::numeric_limits<float>::infinity());
}

// One prompt's decoding state: the budget-forcing state machine shared by both paths.
class Row {
 public:
  Row(const GenerateConfig& cfg, uint64_t seed)
      : cfg_(cfg), gen_(at::make_generator<at::CPUGeneratorImpl>(seed)),
        thinking_(cfg.budget.end_think_id >= 0) {}

  bool finished() const { return finished_; }
  Generation& result() { return out_; }

  // Decides the next token from the model's logits for it ([vocab], any device) and records it.
  int64_t next(const torch::Tensor& logits) {
    const auto& b = cfg_.budget;
    int64_t token;
    if (thinking_ && b.max_thinking_tokens >= 0 && out_.thinking_tokens >= b.max_thinking_tokens) {
      forced_.clear();  // the cap wins over a pending "Wait"
      token = b.end_think_id;
      out_.thinking_capped = true;
    } else if (!forced_.empty()) {
      token = forced_.front();
      forced_.pop_front();
    } else {
      token = propose(logits);
      if (thinking_ && (token == b.end_think_id || is_stop(token)) && out_.waits < b.num_waits) {
        ++out_.waits;  // suppress the stop and append "Wait" instead
        forced_.assign(b.wait_ids.begin(), b.wait_ids.end());
        token = forced_.front();
        forced_.pop_front();
      }
    }
    out_.tokens.push_back(token);
    if (thinking_) {
      if (token == b.end_think_id) {
        thinking_ = false;
        out_.end_think_at = static_cast<int64_t>(out_.tokens.size()) - 1;
        forced_.assign(b.answer_prefix_ids.begin(), b.answer_prefix_ids.end());
      } else if (is_stop(token)) {
        finish(StopReason::stop_token);
      } else {
        ++out_.thinking_tokens;
      }
    } else if (is_stop(token)) {
      finish(StopReason::stop_token);
    }
    if (!finished_ && static_cast<int64_t>(out_.tokens.size()) >= cfg_.max_new_tokens)
      finish(StopReason::max_new_tokens);
    return token;
  }

 private:
  bool is_stop(int64_t t) const {
    return std::find(cfg_.stop_ids.begin(), cfg_.stop_ids.end(), t) != cfg_.stop_ids.end();
  }
  void finish(StopReason r) {
    finished_ = true;
    out_.reason = r;
  }
  int64_t propose(const torch::Tensor& logits) {
    auto l = logits.to(torch::kCPU, torch::kFloat);
    if (cfg_.temperature <= 0) return l.argmax().item<int64_t>();
    auto scaled = l / cfg_.temperature;
    if (cfg_.top_k > 0 && cfg_.top_k < scaled.size(0)) {
      auto kth = std::get<0>(scaled.topk(cfg_.top_k)).min();
      scaled = scaled.masked_fill(scaled < kth, -std::numeric_limits<float>::infinity());
    }
    if (cfg_.top_p < 1.0) scaled = nucleus(scaled, cfg_.top_p);
    auto probs = torch::softmax(scaled, 0);
    return torch::multinomial(probs, 1, false, gen_).item<int64_t>();
  }

  const GenerateConfig& cfg_;
  at::Generator gen_;
  bool thinking_;
  bool finished_ = false;
  std::deque<int64_t> forced_;
  Generation out_;
};

}  // namespace

std::vector<Generation> generate(model::CausalLM& model,
                                 const std::vector<std::vector<int64_t>>& prompts,
                                 const GenerateConfig& cfg) {
  check_inputs(model, prompts, cfg);
  torch::NoGradGuard no_grad;
  const torch::Device device = model->device();
  const auto long_cpu = torch::TensorOptions().dtype(torch::kLong);
  std::vector<Generation> out(prompts.size());

  for (size_t first = 0; first < prompts.size(); first += cfg.batch_size) {
    const size_t B = std::min<size_t>(cfg.batch_size, prompts.size() - first);
    int64_t L = 0;
    for (size_t r = 0; r < B; ++r) L = std::max<int64_t>(L, prompts[first + r].size());
    // Left padding: row r's prompt occupies the last len_r columns; positions restart at 0 there.
    auto ids = torch::full({static_cast<int64_t>(B), L}, cfg.pad_id, long_cpu);
    auto pos = torch::zeros({static_cast<int64_t>(B), L}, long_cpu);
    auto valid = torch::zeros({static_cast<int64_t>(B), L}, long_cpu.dtype(torch::kBool));
    std::vector<int64_t> next_pos(B);
    for (size_t r = 0; r < B; ++r) {
      const auto& p = prompts[first + r];
      const int64_t pad = L - static_cast<int64_t>(p.size());
      ids[r].narrow(0, pad, p.size()).copy_(torch::tensor(p, long_cpu));
      pos[r].narrow(0, pad, p.size()).copy_(torch::arange(static_cast<int64_t>(p.size()), long_cpu));
      valid[r].narrow(0, pad, p.size()).fill_(true);
      next_pos[r] = static_cast<int64_t>(p.size());
    }
    std::vector<Row> rows;
    rows.reserve(B);
    for (size_t r = 0; r < B; ++r) rows.emplace_back(cfg, cfg.seed + first + r);

    auto cache = model->make_cache(static_cast<int64_t>(B), L + cfg.max_new_tokens);
    auto logits = model->forward_cached(ids.to(device), pos.to(device), valid.to(device), cache);
    auto step_valid = torch::ones({static_cast<int64_t>(B), 1}, long_cpu.dtype(torch::kBool)).to(device);
    while (true) {
      auto logits_cpu = logits.to(torch::kCPU, torch::kFloat);
      auto next_ids = torch::full({static_cast<int64_t>(B), 1}, cfg.pad_id, long_cpu);
      auto next_positions = torch::zeros({static_cast<int64_t>(B), 1}, long_cpu);
      int64_t* id_out = next_ids.data_ptr<int64_t>();
      int64_t* pos_out = next_positions.data_ptr<int64_t>();
      bool any_active = false;
      for (size_t r = 0; r < B; ++r) {
        if (!rows[r].finished()) {
          id_out[r] = rows[r].next(logits_cpu[r]);
          any_active = any_active || !rows[r].finished();
        }
        pos_out[r] = next_pos[r]++;
      }
      if (!any_active) break;
      logits = model->forward_cached(next_ids.to(device), next_positions.to(device), step_valid, cache);
    }
    for (size_t r = 0; r < B; ++r) out[first + r] = std::move(rows[r].result());
  }
  return out;
}

std::vector<Generation> generate_reference(model::CausalLM& model,
                                           const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerateConfig& cfg) {
  check_inputs(model, prompts, cfg);
  torch::NoGradGuard no_grad;
  const torch::Device device = model->device();
  std::vector<Generation> out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Row row(cfg, cfg.seed + i);
    std::vector<int64_t> seq = prompts[i];
    while (!row.finished()) {
      auto ids = torch::tensor(seq, torch::kLong).unsqueeze(0).to(device);
      auto logits = model->forward(ids);  // [1, T, vocab], plain causal, no cache
      seq.push_back(row.next(logits[0][-1]));
    }
    out.push_back(std::move(row.result()));
  }
  return out;
}

}  // namespace audit::generate
