// Timing the claimed architecture's parts with LibTorch for `audit replay` (see
// reproduce/replay_layers/replay_layers.h): Qwen2 decoder layers from model.h, DeepSeek-V3-style layers
// (multi-head latent attention + MoE with sigmoid/bias top-k routing through the gating
// launchers) defined here, the embedding/head, a fused AdamW step, and the self-check against a
// real Trainer run.
#include "reproduce/replay_layers/replay_layers.h"

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "kernels/devices/devices.h"          // cuda_device_info, kernel_support
#include "kernels/moe_gating/moe_gating.h"       // moe_gating_cpu / moe_gating_cuda
#include "ledger/costs/hardware.h"          // this_cpu, find_hardware
#include "reproduce/model/model.h"    // DecoderLayer, RMSNorm, MLP, RotaryEmbedding
#include "reproduce/trainer/trainer.h"  // Trainer (self-check)
#include "common/format.h"

namespace audit::replay {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index() < 0 ? 0 : d.index());
}


// Rotary tables for MLA's decoupled RoPE dims: cos, sin [1, 1, T, dim] (HF rotate_half form).
std::pair<torch::Tensor, torch::Tensor> rope_tables(int64_t dim, double theta, int64_t T,
                                                    const torch::Device& dev) {
  auto idx = torch::arange(0, dim, 2, torch::TensorOptions().dtype(torch::kFloat).device(dev));
  auto inv = torch::pow(theta, -idx / static_cast<double>(dim));
  auto pos = torch::arange(T, torch::TensorOptions().dtype(torch::kFloat).device(dev));
  auto freqs = torch::outer(pos, inv);
  auto emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos().view({1, 1, T, dim}), emb.sin().view({1, 1, T, dim})};
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t h = x.size(-1) / 2;
  auto rot = torch::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
  return x * cos.to(x.dtype()) + rot * sin.to(x.dtype());
}

model::ModelConfig ffn_config(int64_t hidden, int64_t ffn) {
  model::ModelConfig c;
  c.hidden = hidden;
  c.ffn = ffn;
  return c;
}

// Multi-head latent attention (DeepSeek-V2/V3), training form (keys and values decompressed):
// q = q_b(norm(q_a(x))) split into nope and rope dims; kv_a(x) -> latent + a shared RoPE key;
// kv_b(norm(latent)) -> per-head key (nope) and value; causal SDPA with q/k dim nope + rope.
struct MlaImpl : torch::nn::Module {
  MlaImpl(const ledger::ArchSpec& a, double eps)
      : heads(a.heads), nope(a.qk_nope_head_dim), rope(a.qk_rope_head_dim), vdim(a.v_head_dim),
        kv_rank(a.kv_lora_rank) {
    const int64_t qk = nope + rope;
    if (a.q_lora_rank > 0) {
      q_a = register_module("q_a_proj", torch::nn::Linear(torch::nn::LinearOptions(a.hidden, a.q_lora_rank).bias(false)));
      q_norm = register_module("q_a_layernorm", model::RMSNorm(a.q_lora_rank, eps));
      q_b = register_module("q_b_proj", torch::nn::Linear(torch::nn::LinearOptions(a.q_lora_rank, heads * qk).bias(false)));
    } else {
      q_b = register_module("q_proj", torch::nn::Linear(torch::nn::LinearOptions(a.hidden, heads * qk).bias(false)));
    }
    kv_a = register_module("kv_a_proj_with_mqa", torch::nn::Linear(torch::nn::LinearOptions(a.hidden, kv_rank + rope).bias(false)));
    kv_norm = register_module("kv_a_layernorm", model::RMSNorm(kv_rank, eps));
    kv_b = register_module("kv_b_proj", torch::nn::Linear(torch::nn::LinearOptions(kv_rank, heads * (nope + vdim)).bias(false)));
    o = register_module("o_proj", torch::nn::Linear(torch::nn::LinearOptions(heads * vdim, a.hidden).bias(false)));
  }

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
    const int64_t B = x.size(0), T = x.size(1);
    auto q = q_a ? q_b(q_norm(q_a(x))) : q_b(x);
    q = q.view({B, T, heads, nope + rope}).transpose(1, 2);  // [B, H, T, qk]
    auto q_nope = q.narrow(-1, 0, nope);
    auto q_pe = apply_rope(q.narrow(-1, nope, rope), cos, sin);
    auto ckv = kv_a(x);                                      // [B, T, rank + rope]
    auto latent = ckv.narrow(-1, 0, kv_rank);
    auto k_pe = apply_rope(ckv.narrow(-1, kv_rank, rope).view({B, 1, T, rope}), cos, sin);
    auto kv = kv_b(kv_norm(latent)).view({B, T, heads, nope + vdim}).transpose(1, 2);
    auto k_nope = kv.narrow(-1, 0, nope);
    auto v = kv.narrow(-1, nope, vdim);
    auto qf = torch::cat({q_nope, q_pe.to(q_nope.dtype())}, -1);
    auto kf = torch::cat({k_nope, k_pe.to(k_nope.dtype()).expand({B, heads, T, rope})}, -1);
    auto attn = at::scaled_dot_product_attention(qf, kf.to(qf.dtype()), v.to(qf.dtype()), {}, 0.0,
                                                 /*is_causal=*/true);
    return o(attn.transpose(1, 2).reshape({B, T, heads * vdim}));
  }

  int64_t heads, nope, rope, vdim, kv_rank;
  torch::nn::Linear q_a{nullptr}, q_b{nullptr}, kv_a{nullptr}, kv_b{nullptr}, o{nullptr};
  model::RMSNorm q_norm{nullptr}, kv_norm{nullptr};
};
TORCH_MODULE(Mla);

// The MoE FFN: router (gate + score-correction bias), routed SwiGLU experts computed grouped by
// expert through the gating launchers' permutation, and the shared expert(s). The routed experts
// are stacked tensors (HF: mlp.experts.N.{gate,up,down}_proj.weight = experts_*[N]).
struct MoeImpl : torch::nn::Module {
  MoeImpl(const ledger::ArchSpec& a, const recipe::BaseSection& b, int64_t slots_, bool on_cuda)
      : experts(a.routed_experts), top_k(a.top_k), slots(slots_ > 0 ? std::min(slots_, a.routed_experts) : a.routed_experts),
        cuda(on_cuda) {
    cfg.num_experts = static_cast<int>(a.routed_experts);
    cfg.top_k = static_cast<int>(a.top_k);
    cfg.score = b.score_func == "sigmoid" ? kernels::MoeScore::kSigmoid : kernels::MoeScore::kSoftmax;
    cfg.renormalize = true;
    cfg.routed_scaling_factor = static_cast<float>(b.routed_scaling);
    cfg.n_group = static_cast<int>(std::max<int64_t>(1, b.expert_groups));
    cfg.topk_group = static_cast<int>(b.expert_groups > 1 ? b.topk_groups : 1);
    kernels::check_moe_gating_config(cfg, 0);
    gate = register_parameter("gate_weight", torch::randn({experts, a.hidden}) * 0.02);
    bias = register_buffer("e_score_correction_bias", torch::zeros({experts}));
    const double s = 1.0 / std::sqrt(static_cast<double>(a.hidden));
    w_gate = register_parameter("experts_gate_proj", torch::randn({slots, a.expert_ffn, a.hidden}) * s);
    w_up = register_parameter("experts_up_proj", torch::randn({slots, a.expert_ffn, a.hidden}) * s);
    w_down = register_parameter(
        "experts_down_proj",
        torch::randn({slots, a.hidden, a.expert_ffn}) / std::sqrt(static_cast<double>(a.expert_ffn)));
    if (a.shared_experts > 0)
      shared = register_module("shared_experts", model::MLP(ffn_config(a.hidden, a.shared_experts * a.expert_ffn)));
  }

  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t B = x.size(0), T = x.size(1), H = x.size(2), N = B * T;
    auto x2 = x.reshape({N, H});
    auto logits = torch::matmul(x2, gate.t().to(x2.dtype()));  // [N, E]
    auto lg = logits.detach().to(torch::kFloat).contiguous();
    auto i32 = torch::TensorOptions().dtype(torch::kInt).device(lg.device());
    auto ids = torch::empty({N, top_k}, i32);
    auto wts = torch::empty({N, top_k}, lg.options());
    auto counts = torch::empty({experts}, i32);
    auto offsets = torch::empty({experts + 1}, i32);
    auto perm = torch::empty({N * top_k}, i32);
    auto inv = torch::empty({N * top_k}, i32);
    const bool sigmoid = cfg.score == kernels::MoeScore::kSigmoid;
    kernels::MoeGatingTensors t;
    t.logits = lg.data_ptr();
    t.bias = sigmoid ? bias.data_ptr<float>() : nullptr;
    t.topk_ids = ids.data_ptr<int32_t>();
    t.topk_weights = wts.data_ptr<float>();
    t.expert_counts = counts.data_ptr<int32_t>();
    t.expert_offsets = offsets.data_ptr<int32_t>();
    t.permuted_index = perm.data_ptr<int32_t>();
    t.inverse_index = inv.data_ptr<int32_t>();
    if (cuda) {
      const size_t ws_bytes = kernels::moe_gating_cuda_workspace_bytes(cfg, N);
      auto ws = torch::empty({static_cast<int64_t>(std::max<size_t>(ws_bytes, 1))},
                             torch::TensorOptions().dtype(torch::kUInt8).device(lg.device()));
      kernels::moe_gating_cuda(cfg, N, t, ws.data_ptr(), ws_bytes, /*stream=*/nullptr);
    } else {
      kernels::moe_gating_cpu(cfg, N, t);
    }
    // The weights again, differentiably (the kernel's are not on the autograd tape): the same
    // scores gathered at the kernel's ids, renormalized and scaled.
    auto ids64 = ids.to(torch::kLong);
    auto scores = sigmoid ? torch::sigmoid(logits.to(torch::kFloat)) : torch::softmax(logits.to(torch::kFloat), -1);
    auto w = scores.gather(1, ids64);
    w = w / (w.sum(-1, true) + 1e-20) * static_cast<double>(cfg.routed_scaling_factor);
    auto perm64 = perm.to(torch::kLong);
    auto tok = torch::floor_divide(perm64, top_k);
    auto xs = x2.index_select(0, tok);  // [N*k, H] grouped by expert
    // Split by expert and unbind the stacked weights once: their backward is one cat / stack
    // (narrow or select per expert would materialize a full-size zero gradient per expert).
    auto cnt = counts.to(torch::kCPU);
    const int32_t* c = cnt.data_ptr<int32_t>();
    std::vector<int64_t> sizes(c, c + experts);
    auto chunks = xs.split_with_sizes(sizes, 0);
    auto wg = w_gate.unbind(0), wu = w_up.unbind(0), wd = w_down.unbind(0);
    std::vector<torch::Tensor> outs;
    outs.reserve(static_cast<size_t>(experts));
    for (int64_t e = 0; e < experts; ++e) {
      auto& xe = chunks[static_cast<size_t>(e)];
      if (xe.size(0) == 0) continue;
      const auto s = static_cast<size_t>(e % slots);
      auto g = torch::matmul(xe, wg[s].t().to(xe.dtype()));
      auto u = torch::matmul(xe, wu[s].t().to(xe.dtype()));
      outs.push_back(torch::matmul(torch::silu(g) * u, wd[s].t().to(xe.dtype())));
    }
    auto ys = torch::cat(outs, 0);  // [N*k, H]
    auto wp = w.reshape({-1}).index_select(0, perm64).unsqueeze(1).to(ys.dtype());
    auto routed = torch::zeros({N, H}, ys.options()).index_add(0, tok, ys * wp);
    auto out = routed.view({B, T, H});
    if (shared) out = out + shared(x).to(out.dtype());
    return out;
  }

  int64_t experts, top_k, slots;
  bool cuda;
  kernels::MoeGatingConfig cfg;
  torch::Tensor gate, bias, w_gate, w_up, w_down;
  model::MLP shared{nullptr};
};
TORCH_MODULE(Moe);

// One DeepSeek-V3 block: x + MLA(norm(x)); x + FFN(norm(x)) with a dense SwiGLU or the MoE.
struct DsLayerImpl : torch::nn::Module {
  DsLayerImpl(const ledger::ArchSpec& a, const recipe::BaseSection& b, bool moe_layer,
              int64_t slots, bool on_cuda) {
    attn = register_module("self_attn", Mla(a, b.rms_eps));
    if (moe_layer)
      moe = register_module("mlp", Moe(a, b, slots, on_cuda));
    else
      dense = register_module("mlp", model::MLP(ffn_config(a.hidden, a.ffn)));
    norm1 = register_module("input_layernorm", model::RMSNorm(a.hidden, b.rms_eps));
    norm2 = register_module("post_attention_layernorm", model::RMSNorm(a.hidden, b.rms_eps));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
    auto h = x + attn(norm1(x), cos, sin).to(x.dtype());
    auto f = moe ? moe(norm2(h)) : dense(norm2(h));
    return h + f.to(h.dtype());
  }
  Mla attn{nullptr};
  Moe moe{nullptr};
  model::MLP dense{nullptr};
  model::RMSNorm norm1{nullptr}, norm2{nullptr};
};
TORCH_MODULE(DsLayer);

// Fused AdamW over a parameter list, states allocated once (as the trainer's optimizer).
struct FusedAdamW {
  std::vector<torch::Tensor> params, m, v, steps;
  explicit FusedAdamW(std::vector<torch::Tensor> ps) : params(std::move(ps)) {
    for (auto& p : params) {
      m.push_back(torch::zeros_like(p));
      v.push_back(torch::zeros_like(p));
      steps.push_back(torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(p.device())));
    }
  }
  void step() {
    std::vector<torch::Tensor> P, G, M, V, S;
    for (size_t i = 0; i < params.size(); ++i) {
      if (!params[i].grad().defined()) continue;
      P.push_back(params[i]);
      G.push_back(params[i].grad());
      M.push_back(m[i]);
      V.push_back(v[i]);
      steps[i].add_(1);
      S.push_back(steps[i]);
    }
    if (P.empty()) return;
    at::_fused_adamw_(P, G, M, V, {}, S, 1e-5, 0.9, 0.95, 1e-4, 1e-8, false, false);
  }
  void zero_grad() {
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
  }
  double numel() const {
    double n = 0;
    for (const auto& p : params) n += static_cast<double>(p.numel());
    return n;
  }
};

struct StepTimes {
  std::vector<double> fwd_bwd, opt;
};

// warmup + steps of: zero grads, forward (loss_fn, under autocast), backward, optimizer.
StepTimes time_steps(const std::function<torch::Tensor()>& loss_fn, FusedAdamW& optim,
                     const torch::Device& dev, bool autocast, int warmup, int steps,
                     const std::function<void(int)>& on_step) {
  StepTimes st;
  for (int i = 0; i < warmup + steps; ++i) {
    optim.zero_grad();
    sync(dev);
    auto t0 = Clock::now();
    torch::Tensor loss;
    {
      train::CudaAutocast guard(autocast);
      loss = loss_fn();
    }
    loss.backward();
    sync(dev);
    const double fb = seconds_since(t0);
    auto t1 = Clock::now();
    optim.step();
    sync(dev);
    const double op = seconds_since(t1);
    if (i >= warmup) {
      st.fwd_bwd.push_back(fb);
      st.opt.push_back(op);
    }
    if (on_step) on_step(i + 1);
  }
  return st;
}

std::vector<torch::Tensor> params_of(const torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p);
  return out;
}

double mem_available_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024.0;
  return 4e9;
}

}  // namespace

ledger::ArchSpec shrink_arch(const ledger::ArchSpec& a, int64_t w) {
  if (w < 1) throw std::invalid_argument("replay: shrink factor must be >= 1");
  if (w == 1) return a;
  ledger::ArchSpec s = a;
  auto div = [w](int64_t v, int64_t lo) { return v <= 0 ? v : std::max(lo, v / w); };
  s.hidden = std::max<int64_t>(8, (a.hidden / w + 7) / 8 * 8);
  s.ffn = div(a.ffn, 8);
  s.expert_ffn = div(a.expert_ffn, 8);
  s.vocab = div(a.vocab, 256);
  s.q_lora_rank = div(a.q_lora_rank, 8);
  s.kv_lora_rank = div(a.kv_lora_rank, 8);
  s.heads = std::max<int64_t>(1, (a.heads + w / 2) / w);
  int64_t kv = std::max<int64_t>(1, std::min(s.heads, (a.kv_heads + w / 2) / w));
  while (s.heads % kv != 0) --kv;
  s.kv_heads = a.is_mla() ? s.heads : kv;
  return s;
}

std::string describe_arch(const ledger::ArchSpec& a) {
  std::ostringstream o;
  o << "hidden=" << a.hidden << " heads=" << a.heads << "/" << a.kv_heads;
  if (a.is_mla())
    o << " mla(q_rank=" << a.q_lora_rank << " kv_rank=" << a.kv_lora_rank << " qk=" << a.qk_nope_head_dim
      << "+" << a.qk_rope_head_dim << " v=" << a.v_head_dim << ")";
  else
    o << " head_dim=" << a.head_dim;
  o << " ffn=" << a.ffn << " vocab=" << a.vocab << " layers=" << a.layers;
  if (a.is_moe())
    o << " experts=" << a.routed_experts << "+" << a.shared_experts << " top" << a.top_k
      << " expert_ffn=" << a.expert_ffn << " first_dense=" << a.first_dense_layers;
  return o.str();
}

Peak device_peak(const std::string& device) {
  torch::Device dev(device);
  if (!dev.is_cuda()) {
    const auto& cpu = ledger::this_cpu();
    Peak p;
    p.device = "cpu";
    p.flops = cpu.fp32_flops;
    const int threads = torch::get_num_threads();
    p.bytes_s = measure_host_bandwidth(threads);
    p.source = cpu.name + ": fp32 peak " + cpu.source + "; memory bandwidth measured here (triad, " +
               std::to_string(threads) + " threads) " + text::fmt("%.3g", p.bytes_s) + " B/s";
    if (!(p.flops > 0)) throw std::runtime_error("replay: this CPU's peak FLOP/s is unknown: " + cpu.source);
    return p;
  }
  const auto info = kernels::cuda_device_info(dev.index() < 0 ? 0 : dev.index());
  std::optional<ledger::Hardware> hw = ledger::find_hardware(info.name);
  if (!hw) {
    std::istringstream words(info.name);
    std::string w;
    while (!hw && words >> w) hw = ledger::find_hardware(w);
  }
  if (!hw || !(hw->bf16_dense_flops > 0))
    throw std::runtime_error("replay: CUDA device '" + info.name +
                             "' is not in the hardware table (ledger/costs/hardware.cpp); its peak is unknown");
  Peak p;
  p.device = hw->id;
  p.flops = hw->bf16_dense_flops;
  p.bytes_s = hw->memory_bw_bytes_s > 0 ? hw->memory_bw_bytes_s : info.peak_memory_bytes_per_s;
  p.source = info.name + " -> table row " + hw->id + " (bf16 dense): " + hw->source;
  return p;
}

nlohmann::json TimingResult::to_json() const {
  nlohmann::json ms = nlohmann::json::array();
  for (const auto& m : measurements) ms.push_back(replay::to_json(m));
  return {{"measurements", ms},
          {"layers_timed", layers_timed},
          {"layers_reason", layers_reason},
          {"dtype", dtype},
          {"device_name", device_name},
          {"here", {{"device", here.device}, {"flops", here.flops}, {"bytes_s", here.bytes_s},
                    {"source", here.source}}},
          {"memory_budget_bytes", memory_budget_bytes},
          {"seconds_total", seconds_total}};
}

namespace {

// What every timed part shares: the shapes, the options, the device.
struct TimingContext {
  const ledger::ArchSpec& a;
  const recipe::BaseSection& base;
  const TimingOptions& opt;
  torch::Device dev;
  bool cuda;
  double bpv;       // bytes per value: 2 under bf16 autocast, 4 in fp32
  int64_t max_len;  // the longest timed length
  void say(const std::string& s) const {
    if (opt.progress) opt.progress(s);
  }
};

// Refuses a CUDA device that is not there, or one without the MoE gating kernel for an MoE model.
void check_device(const ledger::ArchSpec& a, const TimingOptions& opt, const torch::Device& dev) {
  if (!dev.is_cuda()) return;
  if (!torch::cuda::is_available())
    throw std::runtime_error("replay: --device " + opt.device + " but CUDA is not available");
  if (a.is_moe()) {
    auto ks = kernels::kernel_support(kernels::Kernel::kMoeGating, opt.device);
    if (!ks.supported) throw std::runtime_error("replay: MoE gating kernel: " + ks.reason);
  }
}

// The layer kinds to time: dense, or MoE (and the first dense layers' kind when asked).
std::vector<Part> layer_kinds(const ledger::ArchSpec& a, const TimingOptions& opt) {
  std::vector<Part> kinds;
  if (a.is_moe()) {
    if (opt.time_dense_layer && a.first_dense_layers > 0) kinds.push_back(Part::kDenseLayer);
    kinds.push_back(Part::kMoeLayer);
  } else {
    kinds.push_back(Part::kDenseLayer);
  }
  return kinds;
}

// Memory plan of one layer: params x 16 bytes (fp32 weight, grad, AdamW m and v) + activations.
double layer_bytes(const TimingContext& c, bool moe) {
  const auto& a = c.a;
  auto lp = layer_params(a, moe);
  double p = static_cast<double>(lp.total);
  if (moe && c.opt.expert_slots > 0 && c.opt.expert_slots < a.routed_experts)
    p -= static_cast<double>(a.routed_experts - c.opt.expert_slots) * 3.0 * a.hidden * a.expert_ffn;
  const double tokens = static_cast<double>(c.max_len * c.opt.batch);
  double act = tokens * static_cast<double>(a.hidden) * 34.0 * c.bpv;
  if (moe) act += tokens * a.top_k * (2.0 * a.hidden + 3.0 * a.expert_ffn) * c.bpv;
  return 16.0 * p + act;
}

// k, the layers per timed stack: requested, or as many as the memory plan allows (at most
// max_layers and the model's depth). Sets res.memory_budget_bytes, layers_reason, layers_timed.
int64_t choose_layers(const TimingContext& c, const std::vector<Part>& kinds, TimingResult& res) {
  const auto& opt = c.opt;
  res.memory_budget_bytes =
      opt.memory_fraction * (c.cuda ? static_cast<double>(kernels::cuda_device_info(c.dev.index() < 0 ? 0 : c.dev.index()).total_memory_bytes)
                                    : mem_available_bytes());
  double worst = 0;
  for (Part k : kinds) worst = std::max(worst, layer_bytes(c, k == Part::kMoeLayer));
  int64_t k = opt.layers;
  if (k > 0) {
    res.layers_reason = "requested (--layers / replay.layers)";
  } else {
    k = std::clamp<int64_t>(static_cast<int64_t>(res.memory_budget_bytes / worst), 1, opt.max_layers);
    res.layers_reason = "memory: " + text::fmt("%.3g", worst / 1e9) + " GB per layer (16 B/param + activations at " +
                        std::to_string(c.max_len) + " tokens) within " + text::fmt("%.3g", res.memory_budget_bytes / 1e9) +
                        " GB (" + text::fmt("%.0f%%", 100 * opt.memory_fraction) + " of free), capped at " +
                        std::to_string(opt.max_layers);
    if (worst > res.memory_budget_bytes) res.layers_reason += "; one layer exceeds the plan: it may not fit";
  }
  k = std::min<int64_t>(k, std::max<int64_t>(1, c.a.layers));
  res.layers_timed = k;
  return k;
}

// k layers of one kind on the device: DeepSeek-V3 layers (MLA shapes) or Qwen2 decoder layers
// with their rotary embedding.
struct LayerStack {
  bool mla = false;
  torch::nn::ModuleList modules;
  std::vector<model::DecoderLayer> qwen;
  std::vector<DsLayer> ds;
  model::RotaryEmbedding rotary{nullptr};

  // cos, sin for length L (MLA: its decoupled RoPE dims).
  std::pair<torch::Tensor, torch::Tensor> rope(const TimingContext& c, int64_t L) {
    if (mla) return rope_tables(c.a.qk_rope_head_dim, c.base.rope_theta, L, c.dev);
    auto pos = torch::arange(L, torch::TensorOptions().dtype(torch::kLong).device(c.dev)).unsqueeze(0);
    return rotary->forward(pos);
  }
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& cos, const torch::Tensor& sin) {
    if (mla) {
      for (auto& l : ds) h = l->forward(h, cos, sin);
    } else {
      model::AttentionMask mask;
      for (auto& l : qwen) h = l->forward(h, cos, sin, mask);
    }
    return h;
  }
};

LayerStack build_stack(const TimingContext& c, bool moe, int64_t k) {
  const auto& a = c.a;
  const auto& base = c.base;
  LayerStack s;
  s.mla = a.is_mla();
  if (s.mla) {
    for (int64_t i = 0; i < k; ++i) {
      s.ds.push_back(DsLayer(a, base, moe, c.opt.expert_slots, c.cuda));
      s.modules->push_back(s.ds.back());
    }
  } else {
    model::ModelConfig mc;
    mc.vocab = a.vocab;
    mc.hidden = a.hidden;
    mc.layers = k;
    mc.heads = a.heads;
    mc.kv_heads = a.kv_heads;
    mc.head_dim = a.head_dim;
    mc.ffn = a.ffn;
    mc.rope_theta = base.rope_theta;
    mc.rms_eps = base.rms_eps;
    mc.qkv_bias = a.qkv_bias;
    if (moe) throw std::invalid_argument("replay: MoE layers need MLA shapes (base.kv_lora_rank) here");
    for (int64_t i = 0; i < k; ++i) {
      s.qwen.push_back(model::DecoderLayer(mc));
      s.modules->push_back(s.qwen.back());
    }
    s.rotary = model::RotaryEmbedding(a.head_dim, base.rope_theta);
    s.rotary->to(c.dev);
  }
  s.modules->to(c.dev);
  return s;
}

// The stack at the li-th timed length: seconds per layer (fwd + bwd); the optimizer step
// samples are appended to opt_samples.
Measurement time_stack_at(const TimingContext& c, LayerStack& s, FusedAdamW& optim, Part kind,
                          int64_t k, size_t li, std::vector<double>& opt_samples) {
  const auto& opt = c.opt;
  const int64_t L = opt.seq_lens[li];
  auto x = torch::randn({opt.batch, L, c.a.hidden}, torch::TensorOptions().dtype(torch::kFloat).device(c.dev));
  torch::Tensor cos, sin;
  std::tie(cos, sin) = s.rope(c, L);
  auto loss_fn = [&]() { return s.forward(x, cos, sin).to(torch::kFloat).pow(2).mean(); };
  const auto t0 = Clock::now();
  auto st = time_steps(loss_fn, optim, c.dev, c.cuda, opt.warmup, opt.steps, [&](int i) {
    c.say("[replay]   " + std::string(part_name(kind)) + " L=" + std::to_string(L) + " step " +
          std::to_string(i) + "/" + std::to_string(opt.warmup + opt.steps) + " (" +
          text::fmt("%.1f", seconds_since(t0)) + " s)");
  });
  Measurement m;
  m.part = kind;
  m.timed_seq_len = L;
  m.claimed_seq_len = opt.claimed_lens[li];
  m.batch = opt.batch;
  for (double sec : st.fwd_bwd) m.samples.push_back(sec / static_cast<double>(k));
  m.seconds = median(m.samples);
  m.timed = layer_work(c.a, kind == Part::kMoeLayer, static_cast<double>(L), static_cast<double>(opt.batch), c.bpv, false);
  c.say("[replay]   " + std::string(part_name(kind)) + " L=" + std::to_string(L) + ": " +
        text::fmt("%.4g", m.seconds) + " s per layer (fwd+bwd, median of " + std::to_string(opt.steps) + ")");
  opt_samples.insert(opt_samples.end(), st.opt.begin(), st.opt.end());
  return m;
}

struct OptimizerTiming {
  std::vector<double> samples;  // seconds per AdamW step over the stack
  double params = 0;            // the stack's parameters
};

// A stack of k layers of `kind` at every timed length (appended to res.measurements).
OptimizerTiming time_layer_stack(const TimingContext& c, Part kind, int64_t k, TimingResult& res) {
  LayerStack s = build_stack(c, kind == Part::kMoeLayer, k);
  FusedAdamW optim(params_of(*s.modules));
  c.say(std::string("[replay] ") + part_name(kind) + ": " + std::to_string(k) + " layer(s), " +
        text::fmt("%.3g", optim.numel() / 1e6) + "M parameters, " + res.dtype + " on " + c.opt.device);
  OptimizerTiming ot;
  for (size_t li = 0; li < c.opt.seq_lens.size(); ++li)
    res.measurements.push_back(time_stack_at(c, s, optim, kind, k, li, ot.samples));
  ot.params = optim.numel();
  return ot;
}

// Embedding + final norm + head + cross-entropy at every timed length.
void time_embed_head(const TimingContext& c, TimingResult& res) {
  const auto& a = c.a;
  const auto& opt = c.opt;
  torch::nn::Embedding emb(torch::nn::EmbeddingOptions(a.vocab, a.hidden));
  model::RMSNorm norm(a.hidden, c.base.rms_eps);
  torch::nn::Linear head(torch::nn::LinearOptions(a.hidden, a.vocab).bias(false));
  emb->to(c.dev);
  norm->to(c.dev);
  head->to(c.dev);
  std::vector<torch::Tensor> ps = params_of(*emb);
  for (auto& p : params_of(*norm)) ps.push_back(p);
  for (auto& p : params_of(*head)) ps.push_back(p);
  FusedAdamW optim(ps);
  c.say("[replay] embed_head: vocab " + std::to_string(a.vocab) + " x hidden " + std::to_string(a.hidden));
  for (size_t li = 0; li < opt.seq_lens.size(); ++li) {
    const int64_t L = opt.seq_lens[li];
    auto lo = torch::TensorOptions().dtype(torch::kLong).device(c.dev);
    auto ids = torch::randint(a.vocab, {opt.batch, L}, lo);
    auto tgt = torch::randint(a.vocab, {opt.batch * L}, lo);
    auto loss_fn = [&]() {
      auto logits = head(norm(emb(ids)));
      return torch::nn::functional::cross_entropy(logits.view({-1, a.vocab}).to(torch::kFloat), tgt);
    };
    auto st = time_steps(loss_fn, optim, c.dev, c.cuda, opt.warmup, opt.steps, {});
    Measurement m;
    m.part = Part::kEmbedHead;
    m.timed_seq_len = L;
    m.claimed_seq_len = opt.claimed_lens[li];
    m.batch = opt.batch;
    m.samples = st.fwd_bwd;
    m.seconds = median(st.fwd_bwd);
    m.timed = embed_head_work(a, static_cast<double>(L), static_cast<double>(opt.batch), c.bpv);
    res.measurements.push_back(m);
    c.say("[replay]   embed_head L=" + std::to_string(L) + ": " + text::fmt("%.4g", m.seconds) + " s");
  }
}

}  // namespace

TimingResult time_parts(const ledger::ArchSpec& a, const recipe::BaseSection& base,
                        const TimingOptions& opt) {
  if (opt.seq_lens.empty()) throw std::invalid_argument("replay: no sequence lengths to time");
  if (opt.claimed_lens.size() != opt.seq_lens.size())
    throw std::invalid_argument("replay: claimed_lens must match seq_lens");
  const auto t_start = Clock::now();
  torch::Device dev(opt.device);
  check_device(a, opt, dev);
  const bool cuda = dev.is_cuda();
  const TimingContext c{a, base, opt, dev, cuda, cuda ? 2.0 : 4.0,
                        *std::max_element(opt.seq_lens.begin(), opt.seq_lens.end())};
  torch::manual_seed(opt.seed);
  TimingResult res;
  res.dtype = cuda ? "bf16 autocast" : "fp32";
  res.here = device_peak(opt.device);
  res.device_name = cuda ? kernels::cuda_device_info(dev.index() < 0 ? 0 : dev.index()).name
                         : "cpu: " + ledger::this_cpu().name;
  const std::vector<Part> kinds = layer_kinds(a, opt);
  const int64_t k = choose_layers(c, kinds, res);

  // --- layer stacks; the optimizer per parameter: keep the stack's, the last one timed ---
  Measurement last_opt;
  last_opt.part = Part::kOptimizer;
  double opt_params = 0;
  for (Part kind : kinds) {
    const OptimizerTiming ot = time_layer_stack(c, kind, k, res);
    last_opt.samples = ot.samples;
    last_opt.seconds = median(ot.samples);
    opt_params = ot.params;
  }
  last_opt.params = opt_params;
  last_opt.timed = optimizer_work(opt_params);
  last_opt.timed_seq_len = last_opt.claimed_seq_len = 0;
  res.measurements.push_back(last_opt);

  time_embed_head(c, res);
  res.seconds_total = seconds_since(t_start);
  return res;
}

// ---------------------------------------------------------------------------------------------
// Self-check

SelfCheckOptions default_self_check() {
  SelfCheckOptions o;
  auto& a = o.arch;
  const model::ModelConfig d = train::bench_model_config("small");
  a.name = "self-check (the small benchmark model)";
  a.vocab = d.vocab;
  a.hidden = d.hidden;
  a.layers = d.layers;
  a.heads = d.heads;
  a.kv_heads = d.kv_heads;
  a.head_dim = d.head_dim;
  a.ffn = d.ffn;
  a.qkv_bias = d.qkv_bias;
  o.samples = 64;
  o.seq_len = 256;
  o.batch = 8;
  o.epochs = 1;
  o.replay_layers = 1;
  return o;
}

nlohmann::json SelfCheckResult::to_json() const {
  return {{"predicted_s", predicted_s}, {"measured_s", measured_s}, {"error", error},
          {"steps", steps},             {"tokens", tokens},         {"timing", timing.to_json()},
          {"prediction", prediction.to_json()}};
}

SelfCheckResult self_check(const SelfCheckOptions& o) {
  if (o.threads > 0) torch::set_num_threads(o.threads);
  ledger::count_parameters(o.arch);  // validates
  recipe::BaseSection base;
  base.rope_theta = 10000.0;
  base.rms_eps = 1e-6;
  auto say = [&](const std::string& s) {
    if (o.progress) o.progress(s);
  };
  SelfCheckResult r;
  // 1. Replay: k layers, a few steps, at the training micro-batch and length.
  TimingOptions t;
  t.device = o.device;
  t.layers = o.replay_layers;
  t.warmup = o.replay_warmup;
  t.steps = o.replay_steps;
  t.batch = o.batch;
  t.seq_lens = {o.seq_len};
  t.claimed_lens = {o.seq_len};
  t.seed = o.seed;
  t.progress = o.progress;
  r.timing = time_parts(o.arch, base, t);

  ReplayInputs in;
  in.claimed = o.arch;
  in.measurements = r.timing.measurements;
  in.here = r.timing.here;
  in.there = r.timing.here;
  in.cluster.gpu_type = r.timing.here.device;
  in.cluster.gpus = 1;
  in.parallelism = "none";
  in.precision = torch::Device(o.device).is_cuda() ? "bf16" : "fp32";
  in.sequences = static_cast<double>(o.samples * o.epochs);
  r.steps = (o.samples + o.batch - 1) / o.batch * o.epochs;
  in.steps = static_cast<double>(r.steps);
  in.micro_batch = static_cast<double>(o.batch);
  in.fixed_length = true;
  in.block_size = static_cast<double>(o.seq_len);
  in.overlap_low = in.overlap_high = 0;
  in.gpu_hour_usd = ledger::Band(0, 0, 0);
  in.claimed_bytes_per_value = torch::Device(o.device).is_cuda() ? 2.0 : 4.0;
  r.prediction = predict(in);
  r.predicted_s = r.prediction.scenarios[1].wall_s;
  r.tokens = static_cast<double>(o.samples * o.epochs * o.seq_len);
  say("[self-check] replay of " + std::to_string(t.layers) + " of " + std::to_string(o.arch.layers) +
      " layers predicts " + text::fmt("%.3f", r.predicted_s) + " s for " + std::to_string(r.steps) + " steps");

  // 2. The real thing: the whole model trained by the Trainer over the same samples.
  model::ModelConfig mc;
  mc.vocab = o.arch.vocab;
  mc.hidden = o.arch.hidden;
  mc.layers = o.arch.layers;
  mc.heads = o.arch.heads;
  mc.kv_heads = o.arch.kv_heads;
  mc.head_dim = o.arch.head_dim;
  mc.ffn = o.arch.ffn;
  mc.qkv_bias = o.arch.qkv_bias;
  mc.tie_embeddings = o.arch.tie_embeddings;
  model::CausalLM lm(mc);
  model::init_weights(lm, o.seed);
  train::TrainData data;
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(o.seed + 1);
  data.tokens = torch::randint(mc.vocab, {o.samples, o.seq_len}, gen, torch::kLong);
  data.loss_mask = torch::ones({o.samples, o.seq_len}, torch::kLong);
  train::TrainConfig tc;
  tc.epochs = o.epochs;
  tc.global_batch = o.batch;
  tc.micro_batch = o.batch;
  tc.device = o.device;
  tc.precision = torch::Device(o.device).is_cuda() ? "bf16" : "fp32";  // as the timed layers
  tc.seed = o.seed;
  tc.lr = 1e-3;
  train::Trainer trainer(lm, tc, data);
  sync(torch::Device(o.device));
  const auto t0 = Clock::now();
  trainer.train([&](const train::StepInfo& s) {
    say("[self-check] train step " + std::to_string(s.step) + "/" + std::to_string(s.total_steps) +
        " loss " + text::fmt("%.3f", s.loss));
  });
  sync(torch::Device(o.device));
  r.measured_s = seconds_since(t0);
  r.error = relative_error(r.predicted_s, r.measured_s);
  say("[self-check] measured " + text::fmt("%.3f", r.measured_s) + " s; prediction error " +
      text::fmt("%+.1f%%", 100 * r.error));
  return r;
}

}  // namespace audit::replay
