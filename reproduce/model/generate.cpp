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
    return decide([&] { return propose(logits); });
  }
  // The same with the greedy choice already made (argmax over the batch's logits at once).
  int64_t next_from(int64_t argmax) {
    return decide([&] { return argmax; });
  }

 private:
  // The budget-forcing state machine; `proposal()` is the model's choice, asked for only when no
  // token is forced.
  template <class Proposal>
  int64_t decide(const Proposal& proposal) {
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
      token = proposal();
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

// The one-token decoding step of generate(), after a prefill through CausalLM::forward_cached:
// the same computation as forward_cached with T = 1, in fewer and cheaper ops per step (the
// tests check it against the no-cache reference and transformers):
//  - rotary cos/sin tables for every position the batch can reach are computed once, and each
//    step gathers its rows (forward_cached recomputes them from the positions every call);
//  - the attention mask is an additive fp mask over cache columns kept for the whole batch (0 for
//    real tokens, -inf for left padding), of which a step takes a view; none at all when the
//    batch has no padding; a sliding window narrows the keys instead of masking them;
//  - activations stay [B, hidden] and the new keys/values are written in place into the
//    preallocated cache (no growth by concatenation).
class DecodeStep {
 public:
  DecodeStep(model::CausalLM& model, model::KVCache& cache, int64_t positions, bool padded)
      : model_(model), cache_(cache) {
    const auto& c = model->config();
    heads_ = c.heads;
    kv_heads_ = c.kv_heads;
    head_dim_ = c.head_dim;
    window_ = c.sliding_window;
    const auto dtype = model->model->embed_tokens->weight.scalar_type();
    auto all = torch::arange(positions, torch::TensorOptions().dtype(torch::kLong).device(model->device()));
    auto [cos, sin] = model->model->rotary_emb(all.unsqueeze(0));  // [1, 1, P, head_dim] fp32
    cos_ = cos.view({positions, head_dim_}).to(dtype);
    sin_ = sin.view({positions, head_dim_}).to(dtype);
    if (padded) {
      // Columns of the prefill that hold padding get -inf; every later column is a real token.
      mask_ = torch::zeros({cache.valid.size(0), cache.capacity}, cos_.options());
      const int64_t filled = cache.length;
      mask_.narrow(1, 0, filled)
          .masked_fill_(cache.valid.narrow(1, 0, filled).logical_not(),
                        -std::numeric_limits<float>::infinity());
    }
  }

  // Feeds ids [B] at rotary positions [B] (int64, on the model's device) into the next cache
  // column; returns the logits of the new token, [B, vocab].
  torch::Tensor operator()(const torch::Tensor& ids, const torch::Tensor& positions) {
    const int64_t B = ids.size(0), at = cache_.length, Tk = at + 1;
    TORCH_CHECK(Tk <= cache_.capacity, "KV cache full: ", Tk, " > ", cache_.capacity);
    cache_.valid.select(1, at).fill_(true);
    // Keys [lo, Tk): with a sliding window a query sees at most `window` keys, itself included.
    const int64_t lo = window_ > 0 ? std::max<int64_t>(0, Tk - window_) : 0;
    std::optional<torch::Tensor> mask;
    if (mask_.defined()) mask = mask_.narrow(1, lo, Tk - lo).view({B, 1, 1, Tk - lo});
    auto cos = cos_.index_select(0, positions).view({B, 1, head_dim_});
    auto sin = sin_.index_select(0, positions).view({B, 1, head_dim_});
    auto rotary = [&](const torch::Tensor& x) {  // x [B, heads, head_dim]
      return x * cos + x.roll(head_dim_ / 2, -1) * sin;
    };
    auto x = model_->model->embed_tokens(ids);  // [B, hidden]
    int64_t i = 0;
    for (const auto& module : *model_->model->layers) {
      auto* layer = module->as<model::DecoderLayer>();
      auto& attn = *layer->self_attn;
      auto h = layer->input_layernorm(x);
      auto q = rotary(attn.q_proj->forward(h).view({B, heads_, head_dim_}));
      auto k = rotary(attn.k_proj->forward(h).view({B, kv_heads_, head_dim_}));
      auto v = attn.v_proj->forward(h).view({B, kv_heads_, head_dim_});
      cache_.k[i].select(2, at).copy_(k);
      cache_.v[i].select(2, at).copy_(v);
      auto keys = cache_.k[i].narrow(2, lo, Tk - lo);
      auto values = cache_.v[i].narrow(2, lo, Tk - lo);
      auto o = at::scaled_dot_product_attention(q.unsqueeze(2), keys, values, mask, 0.0, false,
                                                std::nullopt, kv_heads_ != heads_);
      x = x + attn.o_proj->forward(o.reshape({B, heads_ * head_dim_}));
      x = x + layer->mlp->forward(layer->post_attention_layernorm(x));
      ++i;
    }
    cache_.length = Tk;
    return model_->project(model_->model->norm(x));
  }

 private:
  model::CausalLM& model_;
  model::KVCache& cache_;
  int64_t heads_, kv_heads_, head_dim_, window_;
  torch::Tensor cos_, sin_, mask_;
};

}  // namespace

std::vector<Generation> generate(model::CausalLM& model,
                                 const std::vector<std::vector<int64_t>>& prompts,
                                 const GenerateConfig& cfg) {
  check_inputs(model, prompts, cfg);
  c10::InferenceMode inference;  // no autograd bookkeeping at all (cheaper than NoGradGuard)
  const torch::Device device = model->device();
  const auto long_cpu = torch::TensorOptions().dtype(torch::kLong);
  const bool greedy = cfg.temperature <= 0;
  std::vector<Generation> out(prompts.size());

  for (size_t first = 0; first < prompts.size(); first += cfg.batch_size) {
    const int64_t B = static_cast<int64_t>(std::min<size_t>(cfg.batch_size, prompts.size() - first));
    int64_t L = 0, shortest = std::numeric_limits<int64_t>::max();
    for (int64_t r = 0; r < B; ++r) {
      L = std::max<int64_t>(L, prompts[first + r].size());
      shortest = std::min<int64_t>(shortest, prompts[first + r].size());
    }
    // Left padding: row r's prompt occupies the last len_r columns; positions restart at 0 there.
    auto ids = torch::full({B, L}, cfg.pad_id, long_cpu);
    auto pos = torch::zeros({B, L}, long_cpu);
    auto valid = torch::zeros({B, L}, long_cpu.dtype(torch::kBool));
    std::vector<int64_t> next_pos(B);
    for (int64_t r = 0; r < B; ++r) {
      const auto& p = prompts[first + r];
      const int64_t n = static_cast<int64_t>(p.size()), pad = L - n;
      std::copy(p.begin(), p.end(), ids.data_ptr<int64_t>() + r * L + pad);
      for (int64_t t = 0; t < n; ++t) pos.data_ptr<int64_t>()[r * L + pad + t] = t;
      valid[r].narrow(0, pad, n).fill_(true);
      next_pos[r] = n;
    }
    std::vector<Row> rows;
    rows.reserve(B);
    for (int64_t r = 0; r < B; ++r) rows.emplace_back(cfg, cfg.seed + first + r);

    auto cache = model->make_cache(B, L + cfg.max_new_tokens);
    auto logits = model->forward_cached(ids.to(device), pos.to(device), valid.to(device), cache);
    DecodeStep step(model, cache, L + cfg.max_new_tokens, /*padded=*/shortest < L);
    // The step's inputs, filled on the host and copied to the device once per step.
    auto next_ids = torch::full({B}, cfg.pad_id, long_cpu);
    auto next_positions = torch::zeros({B}, long_cpu);
    int64_t* id_out = next_ids.data_ptr<int64_t>();
    int64_t* pos_out = next_positions.data_ptr<int64_t>();
    while (true) {
      // The step's one host sync: greedy reads the batch's argmax ids, sampling the logits.
      torch::Tensor logits_cpu, argmax;
      const int64_t* best = nullptr;
      if (greedy) {
        argmax = logits.argmax(-1).to(torch::kCPU);
        best = argmax.data_ptr<int64_t>();
      } else {
        logits_cpu = logits.to(torch::kCPU, torch::kFloat);
      }
      bool any_active = false;
      for (int64_t r = 0; r < B; ++r) {
        if (!rows[r].finished()) {
          id_out[r] = greedy ? rows[r].next_from(best[r]) : rows[r].next(logits_cpu[r]);
          any_active = any_active || !rows[r].finished();
        }
        pos_out[r] = next_pos[r]++;
      }
      if (!any_active) break;
      logits = step(next_ids.to(device), next_positions.to(device));
    }
    for (int64_t r = 0; r < B; ++r) out[first + r] = std::move(rows[r].result());
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
