// The dense qwen2/llama/mistral decoder (see model.h): one file for the architecture,
// intermediates named as in HF's modeling_qwen2.py / modeling_llama.py / modeling_mistral.py so
// that a dump can be compared with a PyTorch hook dump.
#include "reproduce/model/model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/custom_class.h>

#include "common/errors.h"  // audit::InputError for load_state

namespace audit::model {

namespace F = torch::nn::functional;

// ---------------------------------------------------------------------------------------------
// ModelConfig

void ModelConfig::validate() const {
  auto need = [](bool ok, const char* field, const std::string& why) {
    if (!ok) throw std::invalid_argument(std::string("model.") + field + ": " + why);
  };
  const bool counted_only = arch == "deepseek_v3" || arch == "qwen2_moe" || arch == "mixtral";
  need(!counted_only, "arch",
       "\"" + arch + "\" (MoE/MLA) is read for counting, estimate and replay only; this model "
       "builds \"qwen2\", \"llama\" and \"mistral\"");
  need(arch == "qwen2" || arch == "llama" || arch == "mistral", "arch",
       "unknown architecture \"" + arch + "\" (built: qwen2, llama, mistral)");
  need(routed_experts == 0, "routed_experts", "MoE layers are not built here yet (must be 0)");
  need(q_lora_rank == 0 && kv_lora_rank == 0, "kv_lora_rank",
       "MLA attention is not built here yet (ranks must be 0)");
  need(mtp_depth == 0, "mtp_depth", "multi-token prediction is not built here yet (must be 0)");
  need(vocab > 0, "vocab", "must be positive");
  need(hidden > 0, "hidden", "must be positive");
  need(layers > 0, "layers", "must be positive");
  need(heads > 0, "heads", "must be positive");
  need(kv_heads > 0 && heads % kv_heads == 0, "kv_heads",
       "must be positive and divide heads (" + std::to_string(heads) + ")");
  need(head_dim > 0 && head_dim % 2 == 0, "head_dim", "must be positive and even (rotary pairs)");
  need(ffn > 0, "ffn", "must be positive");
  need(rope_theta > 0, "rope_theta", "must be positive");
  need(max_position > 0, "max_position", "must be positive");
  need(rms_eps > 0, "rms_eps", "must be positive");
  need(rope_scaling.empty() || rope_scaling == "default" || rope_scaling == "llama3",
       "rope_scaling", "\"" + rope_scaling + "\" is not built (built: none, \"llama3\")");
  if (rope_scaling == "llama3") {
    need(rope_factor > 0, "rope_factor", "must be positive for llama3 rope scaling");
    need(rope_low_freq_factor > 0 && rope_high_freq_factor > rope_low_freq_factor,
         "rope_high_freq_factor", "llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor");
    need(rope_original_max_position >= 0, "rope_original_max_position", "must not be negative");
  }
  need(sliding_window >= 0, "sliding_window", "must be 0 (off) or a positive window");
}

int64_t ModelConfig::parameter_count() const {
  const int64_t q = hidden * heads * head_dim, kv = 2 * hidden * kv_heads * head_dim;
  const int64_t bias = qkv_bias ? heads * head_dim + 2 * kv_heads * head_dim : 0;
  const int64_t o = heads * head_dim * hidden, mlp = 3 * hidden * ffn, norms = 2 * hidden;
  const int64_t per_layer = q + kv + bias + o + mlp + norms;
  return vocab * hidden * (tie_embeddings ? 1 : 2) + layers * per_layer + hidden;
}

// ---------------------------------------------------------------------------------------------
// Modules

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

namespace {

// RMSNorm: y = w * x_hat, x_hat = x * rstd, rstd = 1 / sqrt(mean(x^2) + eps), in fp32; backward
//   dx = rstd * (g - x_hat * mean(g * x_hat)),  g = dy * w;   dw = sum over rows of dy * x_hat.
// Autograd through the decomposed ops makes many full passes over the activations per norm. On
// the CPU in fp32 (training's case here) two row-wise loops do it in one pass forward and one
// backward; elsewhere (CUDA, bf16) the same formulas run as tensor ops. The golden test checks
// the CPU path against HF's formulation, and Model.FusedRmsNormEqualsTensorOps checks the two
// paths against each other.
bool use_cpu_loops(const torch::Tensor& x, const torch::Tensor& w) {
  return x.device().is_cpu() && w.device().is_cpu() && x.scalar_type() == torch::kFloat &&
         w.scalar_type() == torch::kFloat && x.is_contiguous() && w.is_contiguous();
}

// Forward rows of x [rows, D]; writes y and rstd [rows].
void rms_forward_cpu(const float* x, const float* w, float* y, float* rstd, int64_t rows,
                     int64_t D, double eps) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / D), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * D;
      float* yr = y + r * D;
      float ss = 0.f;
      for (int64_t i = 0; i < D; ++i) ss += xr[i] * xr[i];
      const float rs = 1.f / std::sqrt(ss / static_cast<float>(D) + static_cast<float>(eps));
      rstd[r] = rs;
      for (int64_t i = 0; i < D; ++i) yr[i] = w[i] * (xr[i] * rs);
    }
  });
}

// Backward; dw is the sum of per-thread partial sums, added in thread order (deterministic for a
// given thread count, which the resume test relies on).
void rms_backward_cpu(const float* dy, const float* x, const float* w, const float* rstd,
                      float* dx, float* dw, int64_t rows, int64_t D) {
  const int64_t threads = at::get_num_threads();
  std::vector<float> partial(static_cast<size_t>(threads * D), 0.f);
  at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / D), [&](int64_t begin, int64_t end) {
    float* acc = partial.data() + at::get_thread_num() * D;
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * D;
      const float* dyr = dy + r * D;
      float* dxr = dx + r * D;
      const float rs = rstd[r];
      float dot = 0.f;
      for (int64_t i = 0; i < D; ++i) dot += dyr[i] * w[i] * (xr[i] * rs);
      dot /= static_cast<float>(D);
      for (int64_t i = 0; i < D; ++i) {
        const float x_hat = xr[i] * rs;
        dxr[i] = rs * (dyr[i] * w[i] - x_hat * dot);
        acc[i] += dyr[i] * x_hat;
      }
    }
  });
  for (int64_t i = 0; i < D; ++i) dw[i] = 0.f;
  for (int64_t t = 0; t < threads; ++t)
    for (int64_t i = 0; i < D; ++i) dw[i] += partial[t * D + i];
}

struct RMSNormFunction : torch::autograd::Function<RMSNormFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, double eps, bool cpu_loops) {
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
    ctx->saved_data["cpu_loops"] = cpu_loops;
    if (cpu_loops) {
      const int64_t D = weight.size(0), rows = x.numel() / D;
      auto y = torch::empty_like(x);
      auto rstd = torch::empty({rows}, x.options());
      rms_forward_cpu(x.data_ptr<float>(), weight.data_ptr<float>(), y.data_ptr<float>(),
                      rstd.data_ptr<float>(), rows, D, eps);
      ctx->save_for_backward({x, rstd, weight});
      return y;
    }
    auto xf = x.to(torch::kFloat);
    auto rstd = torch::rsqrt(xf.square().mean(-1, /*keepdim=*/true) + eps);
    auto x_hat = (xf * rstd).to(x.scalar_type());  // HF: hidden.to(input_dtype) before the scale
    ctx->save_for_backward({x_hat, rstd, weight});
    return weight * x_hat;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    const auto& weight = saved[2];
    if (ctx->saved_data["cpu_loops"].toBool()) {
      const auto& x = saved[0];
      auto dy = grad_out[0].contiguous();
      const int64_t D = weight.size(0), rows = x.numel() / D;
      auto dx = torch::empty_like(x);
      auto dw = torch::empty_like(weight);
      rms_backward_cpu(dy.data_ptr<float>(), x.data_ptr<float>(), weight.data_ptr<float>(),
                       saved[1].data_ptr<float>(), dx.data_ptr<float>(), dw.data_ptr<float>(),
                       rows, D);
      return {dx, dw, torch::Tensor(), torch::Tensor()};
    }
    auto x_hat = saved[0].to(torch::kFloat), rstd = saved[1];
    const auto x_dtype = static_cast<torch::ScalarType>(ctx->saved_data["x_dtype"].toInt());
    auto dy = grad_out[0].to(torch::kFloat);
    auto g = dy * weight;
    auto dot = (g * x_hat).mean(-1, /*keepdim=*/true);
    auto dx = ((g - x_hat * dot) * rstd).to(x_dtype);
    auto dw = (dy * x_hat).reshape({-1, x_hat.size(-1)}).sum(0).to(weight.scalar_type());
    return {dx, dw, torch::Tensor(), torch::Tensor()};
  }
};
}  // namespace

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps,
                       bool allow_cpu_loops) {
  return RMSNormFunction::apply(x, weight, eps, allow_cpu_loops && use_cpu_loops(x, weight));
}

namespace {
// True while a recomputed layer runs its forward without gradients (RecomputedLayer below): the
// norms then take the training path, so the output equals the one recomputed in backward and
// the loss equals the plain forward's bit for bit.
thread_local bool t_training_forward_without_grad = false;
}  // namespace

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  if ((torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad())) ||
      t_training_forward_without_grad)
    return rms_norm(x, weight, eps);
  const int64_t dim = weight.size(0);
  if (x.scalar_type() == torch::kFloat && weight.scalar_type() == torch::kFloat)
    return at::rms_norm(x, {dim}, weight, eps);  // inference: fused where the backend has it
  // Lower precision (autocast on CUDA): normalise in fp32, cast back, then scale, as HF does.
  auto normed = at::rms_norm(x.to(torch::kFloat), {dim}, std::nullopt, eps).to(x.scalar_type());
  return weight * normed;
}

namespace {
// inv_freq[i] = 1 / theta^(2i / head_dim), in fp32 exactly as HF computes it.
torch::Tensor default_inv_freq(int64_t head_dim, double theta) {
  auto exponents = torch::arange(0, head_dim, 2, torch::kLong).to(torch::kFloat) / head_dim;
  return 1.0 / torch::pow(theta, exponents);
}

// Llama 3.1's scaling, op for op as transformers' _compute_llama3_parameters (same fp32 ops in
// the same order; Python's `scalar / tensor` is reciprocal() * scalar): wavelengths longer than
// original/low_freq_factor are divided by factor, shorter than original/high_freq_factor kept,
// and those between interpolated smoothly.
torch::Tensor llama3_inv_freq(const torch::Tensor& inv_freq, const ModelConfig& c) {
  const double factor = c.rope_factor, low = c.rope_low_freq_factor, high = c.rope_high_freq_factor;
  const double old_context_len = static_cast<double>(
      c.rope_original_max_position > 0 ? c.rope_original_max_position : c.max_position);
  const double low_freq_wavelen = old_context_len / low, high_freq_wavelen = old_context_len / high;
  auto wavelen = inv_freq.reciprocal() * (2 * M_PI);
  auto inv_freq_llama = torch::where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq);
  auto smooth_factor = (wavelen.reciprocal() * old_context_len - low) / (high - low);
  auto smoothed_inv_freq =
      (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama;
  auto is_medium_freq = (wavelen < high_freq_wavelen).logical_not() &
                        (wavelen > low_freq_wavelen).logical_not();
  return torch::where(is_medium_freq, smoothed_inv_freq, inv_freq_llama);
}
}  // namespace

RotaryEmbeddingImpl::RotaryEmbeddingImpl(int64_t head_dim, double theta) {
  inv_freq = register_buffer("inv_freq", default_inv_freq(head_dim, theta));
}

RotaryEmbeddingImpl::RotaryEmbeddingImpl(const ModelConfig& c) {
  auto inv = default_inv_freq(c.head_dim, c.rope_theta);
  if (c.rope_scaling == "llama3")
    inv = llama3_inv_freq(inv, c);
  else if (!c.rope_scaling.empty() && c.rope_scaling != "default")
    throw std::invalid_argument("model.rope_scaling: \"" + c.rope_scaling + "\" is not built");
  inv_freq = register_buffer("inv_freq", inv);
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbeddingImpl::forward(
    const torch::Tensor& position_ids) {
  // freqs [B, T, head_dim/2]. HF's tables are cos(cat(freqs, freqs)) and sin(cat(freqs, freqs))
  // with rotate_half(x) = cat(-x2, x1). Here rotate_half's sign is folded into the sine table,
  // so rotary(x) = x * cos + roll(x, head_dim/2) * sin_signed: one roll instead of two slices,
  // a negation and a concatenation, forward and backward.
  auto freqs = position_ids.to(torch::kFloat).unsqueeze(-1) * inv_freq.view({1, 1, -1});
  auto cos = freqs.cos(), sin = freqs.sin();
  return {torch::cat({cos, cos}, -1).unsqueeze(1), torch::cat({-sin, sin}, -1).unsqueeze(1)};
}

namespace {
// at::linear, the ATen op Python's F.linear calls: a biased projection is one addmm. (The C++
// frontend's torch::nn::Linear::forward goes through matmul plus a separate bias add.)
torch::Tensor linear(const Linear& layer, const torch::Tensor& x) { return (*layer).forward(x); }

// HF's apply_rotary_pos_emb for one tensor [B, heads, T, head_dim], with sin_signed from above.
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos,
                           const torch::Tensor& sin_signed) {
  const int64_t half = x.size(-1) / 2;
  return x * cos.to(x.scalar_type()) + x.roll(half, -1) * sin_signed.to(x.scalar_type());
}
}  // namespace

AttentionImpl::AttentionImpl(const ModelConfig& c)
    : q_proj(c.hidden, c.heads * c.head_dim, c.qkv_bias, c.initialize),
      k_proj(c.hidden, c.kv_heads * c.head_dim, c.qkv_bias, c.initialize),
      v_proj(c.hidden, c.kv_heads * c.head_dim, c.qkv_bias, c.initialize),
      o_proj(c.heads * c.head_dim, c.hidden, false, c.initialize),
      heads(c.heads), kv_heads(c.kv_heads), head_dim(c.head_dim) {
  register_module("q_proj", q_proj);
  register_module("k_proj", k_proj);
  register_module("v_proj", v_proj);
  register_module("o_proj", o_proj);
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                     const torch::Tensor& sin, const AttentionMask& mask,
                                     torch::Tensor* cache_k, torch::Tensor* cache_v,
                                     int64_t start) {
  const int64_t B = x.size(0), T = x.size(1);
  // [B, T, heads*head_dim] -> [B, heads, T, head_dim]
  auto query_states = linear(q_proj, x).view({B, T, heads, head_dim}).transpose(1, 2);
  auto key_states = linear(k_proj, x).view({B, T, kv_heads, head_dim}).transpose(1, 2);
  auto value_states = linear(v_proj, x).view({B, T, kv_heads, head_dim}).transpose(1, 2);
  query_states = apply_rotary(query_states, cos, sin);
  key_states = apply_rotary(key_states, cos, sin);
  if (cache_k != nullptr) {
    cache_k->narrow(2, start, T).copy_(key_states);
    cache_v->narrow(2, start, T).copy_(value_states);
    key_states = cache_k->narrow(2, 0, start + T).to(query_states.scalar_type());
    value_states = cache_v->narrow(2, 0, start + T).to(query_states.scalar_type());
  }
  // Grouped-query attention: each KV head serves heads/kv_heads query heads. enable_gqa does
  // what HF's repeat_kv does without materialising the copies (~15% faster on the CPU flash
  // kernel, with or without a mask).
  std::optional<torch::Tensor> attn_mask;
  if (!mask.is_causal && mask.mask.defined()) attn_mask = mask.mask;
  auto attn_output = at::scaled_dot_product_attention(query_states, key_states, value_states,
                                                      attn_mask, 0.0, mask.is_causal,
                                                      std::nullopt, kv_heads != heads);
  attn_output = attn_output.transpose(1, 2).reshape({B, T, heads * head_dim});
  return linear(o_proj, attn_output);
}

MLPImpl::MLPImpl(const ModelConfig& c)
    : gate_proj(c.hidden, c.ffn, false, c.initialize),
      up_proj(c.hidden, c.ffn, false, c.initialize),
      down_proj(c.ffn, c.hidden, false, c.initialize) {
  register_module("gate_proj", gate_proj);
  register_module("up_proj", up_proj);
  register_module("down_proj", down_proj);
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) {
  auto gate = F::silu(linear(gate_proj, x));
  auto up = linear(up_proj, x);
  return linear(down_proj, gate * up);
}

std::shared_ptr<FeedForwardImpl> make_feed_forward(const ModelConfig& c, int64_t /*layer*/) {
  return std::make_shared<MLPImpl>(c);
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c, int64_t layer)
    : self_attn(c), mlp(make_feed_forward(c, layer)), input_layernorm(c.hidden, c.rms_eps),
      post_attention_layernorm(c.hidden, c.rms_eps) {
  register_module("self_attn", self_attn);
  register_module("mlp", mlp);
  register_module("input_layernorm", input_layernorm);
  register_module("post_attention_layernorm", post_attention_layernorm);
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                        const torch::Tensor& sin, const AttentionMask& mask,
                                        torch::Tensor* cache_k, torch::Tensor* cache_v,
                                        int64_t start) {
  auto attn_norm = input_layernorm(x);
  auto attn_out = self_attn(attn_norm, cos, sin, mask, cache_k, cache_v, start);
  auto residual = x + attn_out;
  auto ffn_norm = post_attention_layernorm(residual);
  auto ffn_out = mlp->forward(ffn_norm);
  return residual + ffn_out;
}

DecoderImpl::DecoderImpl(const ModelConfig& c)
    : embed_tokens(c.vocab, c.hidden, c.initialize), layers(), norm(c.hidden, c.rms_eps),
      rotary_emb(c) {
  for (int64_t i = 0; i < c.layers; ++i) layers->push_back(DecoderLayer(c, i));
  register_module("embed_tokens", embed_tokens);
  register_module("layers", layers);
  register_module("norm", norm);
  register_module("rotary_emb", rotary_emb);
}

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias, bool initialize) {
  weight = register_parameter("weight", torch::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}));
  if (!initialize) return;
  // torch::nn::LinearImpl::reset_parameters, draw for draw.
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = in > 0 ? 1.0 / std::sqrt(double(in)) : 0.0;
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) const {
  return at::linear(x, weight, bias.defined() ? std::optional<torch::Tensor>(bias) : std::nullopt);
}

EmbeddingImpl::EmbeddingImpl(int64_t rows, int64_t dim, bool initialize) {
  weight = register_parameter("weight", torch::empty({rows, dim}));
  if (!initialize) return;
  torch::NoGradGuard no_grad;
  torch::nn::init::normal_(weight);  // torch::nn::EmbeddingImpl::reset_parameters
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) { return torch::embedding(weight, ids); }

CausalLMImpl::CausalLMImpl(const ModelConfig& c) : cfg(c) {
  cfg.validate();
  model = register_module("model", Decoder(cfg));
  if (!cfg.tie_embeddings)
    lm_head = register_module("lm_head", Linear(cfg.hidden, cfg.vocab, false, cfg.initialize));
  cfg.initialize = true;  // what is built from this model's config (a clone) starts initialised
}

torch::Device CausalLMImpl::device() const { return model->embed_tokens->weight.device(); }

torch::Tensor packed_causal_mask(const torch::Tensor& position_ids) {
  const int64_t T = position_ids.size(1);
  // A segment starts at t = 0 and wherever the position does not continue the previous one.
  auto starts = torch::ones_like(position_ids, torch::kLong);
  if (T > 1)
    starts.narrow(1, 1, T - 1)
        .copy_(position_ids.narrow(1, 1, T - 1) != position_ids.narrow(1, 0, T - 1) + 1);
  auto segment = starts.cumsum(1);                                          // [B, T]
  auto same_segment = segment.unsqueeze(2) == segment.unsqueeze(1);          // [B, T, T]
  auto causal = torch::ones({T, T}, position_ids.options().dtype(torch::kBool)).tril();
  return (same_segment & causal).unsqueeze(1);                              // [B, 1, T, T]
}

torch::Tensor causal_window_mask(int64_t q_start, int64_t Tq, int64_t Tk, int64_t window,
                                 const torch::TensorOptions& opts) {
  auto o = opts.dtype(torch::kLong);
  auto q = torch::arange(q_start, q_start + Tq, o).view({Tq, 1});
  auto k = torch::arange(0, Tk, o).view({1, Tk});
  auto visible = k <= q;
  if (window > 0) visible = visible & (k > q - window);
  return visible.view({1, 1, Tq, Tk});
}

// ---------------------------------------------------------------------------------------------
// Activation recompute

namespace {

// What backward needs to run a layer again: the layer, its rotary tables and mask, and the
// autocast state its forward ran under (backward runs on the autograd engine's thread, outside
// the caller's autocast scope). A TorchScript custom class, so the autograd context can hold it.
struct RecomputeState : torch::CustomClassHolder {
  std::shared_ptr<DecoderLayerImpl> layer;
  torch::Tensor cos, sin;
  AttentionMask mask;
  bool autocast_cuda = false;
  at::ScalarType autocast_dtype = at::kBFloat16;
};
const auto kRecomputeStateClass =
    torch::class_<RecomputeState>("audit_model", "RecomputeState");

// Sets CUDA autocast to (on, dtype) for its scope, as torch.autocast does; nothing when off.
class AutocastScope {
 public:
  AutocastScope(bool on, at::ScalarType dtype) : on_(on) {
    if (!on_) return;
    prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    prev_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, prev_dtype_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kBFloat16;
};

// One decoder layer as a single autograd node (torch.utils.checkpoint, non-reentrant in spirit):
// forward runs the layer with gradients off, so none of its intermediates are kept, and saves
// only its input; backward runs the layer again with gradients on and differentiates that run
// with torch::autograd::grad with respect to the input and every parameter of the layer. The
// parameters are inputs of the node, so their gradients reach .grad through autograd's own
// accumulation (and torch::autograd::grad over the whole model sees them too).
struct RecomputedLayer : torch::autograd::Function<RecomputedLayer> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               at::TensorList params, c10::intrusive_ptr<RecomputeState> state) {
    (void)params;  // inputs of the node only: the layer reads them itself
    ctx->save_for_backward({x});
    ctx->saved_data["state"] = state;
    const bool prev = t_training_forward_without_grad;
    t_training_forward_without_grad = true;
    torch::Tensor out;
    try {
      out = state->layer->forward(x, state->cos, state->sin, state->mask);
    } catch (...) {
      t_training_forward_without_grad = prev;
      throw;
    }
    t_training_forward_without_grad = prev;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto state = ctx->saved_data["state"].toCustomClass<RecomputeState>();
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    const auto params = state->layer->parameters();
    torch::Tensor out;
    {
      torch::AutoGradMode grad_on(true);
      AutocastScope autocast(state->autocast_cuda, state->autocast_dtype);
      out = state->layer->forward(x, state->cos, state->sin, state->mask);
    }
    std::vector<torch::Tensor> wrt{x};
    wrt.insert(wrt.end(), params.begin(), params.end());
    auto grads = torch::autograd::grad({out}, wrt, {grad_out[0]}, /*retain_graph=*/false,
                                       /*create_graph=*/false, /*allow_unused=*/true);
    grads.emplace_back();  // the state: not a tensor input
    return grads;          // x, then one per parameter, in forward's argument order
  }
};

}  // namespace

torch::Tensor CausalLMImpl::hidden_states(const torch::Tensor& input_ids,
                                          const torch::Tensor& position_ids) {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be [batch, seq], got ", input_ids.sizes());
  const int64_t T = input_ids.size(1), window = cfg.sliding_window;
  AttentionMask mask;
  torch::Tensor positions = position_ids;
  if (!positions.defined()) {
    // [1, T]: the rotary tables are computed once and broadcast over the batch.
    positions = torch::arange(T, input_ids.options().dtype(torch::kLong)).unsqueeze(0);
  } else {
    TORCH_CHECK(positions.sizes() == input_ids.sizes(), "position_ids ", positions.sizes(),
                " must match input_ids ", input_ids.sizes());
    // Only pay for a mask when some row really restarts (packed sequences).
    bool contiguous = true;
    if (T > 1)
      contiguous = (positions.narrow(1, 1, T - 1) == positions.narrow(1, 0, T - 1) + 1)
                       .all()
                       .item<bool>();
    if (!contiguous) mask = AttentionMask{false, packed_causal_mask(positions)};
  }
  if (window > 0 && T > window) {  // sliding window (mistral): only when it cuts something
    auto win = causal_window_mask(0, T, T, window, input_ids.options());
    mask = AttentionMask{false, mask.mask.defined() ? (mask.mask & win) : win};
  }
  auto [cos, sin] = model->rotary_emb(positions);
  auto x = model->embed_tokens(input_ids);
  const bool recompute = recompute_ && torch::GradMode::is_enabled();
  int64_t index = 0;
  for (const auto& layer : *model->layers) {
    auto* l = layer->as<DecoderLayer>();
    const int64_t i = index++;
    if (hooks_.before) hooks_.before(i, x);
    if (!recompute) {
      x = l->forward(x, cos, sin, mask);
      if (hooks_.after) hooks_.after(i, x);
      continue;
    }
    auto state = c10::make_intrusive<RecomputeState>();
    state->layer = std::dynamic_pointer_cast<DecoderLayerImpl>(layer);
    state->cos = cos;
    state->sin = sin;
    state->mask = mask;
    state->autocast_cuda = at::autocast::is_autocast_enabled(at::kCUDA);
    state->autocast_dtype = at::autocast::get_autocast_dtype(at::kCUDA);
    const auto params = l->parameters();
    x = RecomputedLayer::apply(x, at::TensorList(params), state);
    if (hooks_.after) hooks_.after(i, x);
  }
  return model->norm(x);
}

torch::Tensor CausalLMImpl::project(const torch::Tensor& hidden) {
  return at::linear(hidden, cfg.tie_embeddings ? model->embed_tokens->weight : lm_head->weight);
}

torch::Tensor CausalLMImpl::forward(const torch::Tensor& input_ids,
                                    const torch::Tensor& position_ids) {
  return project(hidden_states(input_ids, position_ids));
}

KVCache CausalLMImpl::make_cache(int64_t batch, int64_t capacity) const {
  KVCache cache;
  auto opts = model->embed_tokens->weight.options().requires_grad(false);
  for (int64_t i = 0; i < cfg.layers; ++i) {
    cache.k.push_back(torch::zeros({batch, cfg.kv_heads, capacity, cfg.head_dim}, opts));
    cache.v.push_back(torch::zeros({batch, cfg.kv_heads, capacity, cfg.head_dim}, opts));
  }
  cache.valid = torch::zeros({batch, capacity}, opts.dtype(torch::kBool));
  cache.capacity = capacity;
  return cache;
}

torch::Tensor CausalLMImpl::forward_cached(const torch::Tensor& input_ids,
                                           const torch::Tensor& position_ids,
                                           const torch::Tensor& new_valid, KVCache& cache) {
  const int64_t B = input_ids.size(0), T = input_ids.size(1), start = cache.length;
  TORCH_CHECK(start + T <= cache.capacity, "KV cache full: ", start, " + ", T, " > ",
              cache.capacity);
  TORCH_CHECK(cache.valid.size(0) == B, "KV cache batch ", cache.valid.size(0), " != ", B);
  cache.valid.narrow(1, start, T).copy_(new_valid);
  const int64_t Tk = start + T, window = cfg.sliding_window;
  const bool padded = !cache.valid.narrow(1, 0, Tk).all().item<bool>();
  const bool windowed = window > 0 && Tk > window;  // some query loses keys to the window
  AttentionMask mask;
  if (!padded && !windowed && start == 0) {
    mask.is_causal = true;  // prefill without padding: square causal
  } else if (!padded && !windowed && T == 1) {
    mask.is_causal = false;  // one new token sees every cached position
  } else {
    // Query i sits at cache index start + i; it may see key j <= start + i (and, with a sliding
    // window, j > start + i - window) that is a real token, and always itself (so a padding query
    // never has an all-masked row: no NaN). Padding is only ever on the left and every later
    // token is real, so a window over cache indices is a window over real tokens.
    auto visible = causal_window_mask(start, T, Tk, window, input_ids.options());
    if (padded) {
      auto opts = input_ids.options().dtype(torch::kLong);
      auto qpos = torch::arange(start, Tk, opts).view({T, 1});
      auto kpos = torch::arange(0, Tk, opts).view({1, Tk});
      auto self = (kpos == qpos).view({1, 1, T, Tk});
      auto key_ok = cache.valid.narrow(1, 0, Tk).view({B, 1, 1, Tk});
      visible = visible & (key_ok | self);
    }
    mask = AttentionMask{false, visible};
  }
  auto [cos, sin] = model->rotary_emb(position_ids);
  auto x = model->embed_tokens(input_ids);
  int64_t i = 0;
  for (const auto& layer : *model->layers) {
    x = layer->as<DecoderLayer>()->forward(x, cos, sin, mask, &cache.k[i], &cache.v[i], start);
    ++i;
  }
  cache.length = Tk;
  auto last = model->norm(x.select(1, T - 1));
  return project(last);
}

// ---------------------------------------------------------------------------------------------
// Weights

void init_weights(CausalLM& m, uint64_t seed, double std) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : m->named_parameters()) {
    const std::string& name = p.key();
    torch::Tensor& w = p.value();
    auto ends_with = [&](const std::string& suffix) {
      return name.size() >= suffix.size() &&
             name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends_with("norm.weight")) {
      w.fill_(1.0);
    } else if (ends_with(".bias")) {
      w.zero_();
    } else {
      auto drawn = torch::empty(w.sizes(), torch::kFloat).normal_(0.0, std, gen);
      w.copy_(drawn);
    }
  }
}

void load_state(CausalLM& m, const std::map<std::string, torch::Tensor>& tensors,
                const std::string& source, bool strict) {
  torch::NoGradGuard no_grad;
  auto params = m->named_parameters();
  for (auto& p : params) {
    auto it = tensors.find(p.key());
    if (it == tensors.end())
      throw InputError(source, 0, 0, p.key(),
                       "missing tensor for parameter of shape " + c10::str(p.value().sizes()));
    if (it->second.sizes() != p.value().sizes())
      throw InputError(source, 0, 0, p.key(),
                       "shape " + c10::str(it->second.sizes()) + " does not match the model's " +
                           c10::str(p.value().sizes()) + " (" + m->cfg.to_string() + ")");
    p.value().copy_(it->second);
  }
  for (const auto& [name, t] : tensors) {
    if (params.contains(name)) continue;
    if (name == "lm_head.weight" && m->cfg.tie_embeddings) {
      const auto& emb = m->model->embed_tokens->weight;
      if (t.sizes() != emb.sizes() || !torch::equal(t.to(emb.device(), emb.scalar_type()), emb))
        throw InputError(source, 0, 0, name,
                         "embeddings are tied but lm_head.weight differs from embed_tokens");
      continue;
    }
    if (name.size() > 9 && name.compare(name.size() - 9, 9, ".inv_freq") == 0) continue;
    if (strict) throw InputError(source, 0, 0, name, "tensor names no parameter of the model");
  }
}

std::map<std::string, torch::Tensor> state(CausalLM& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m->named_parameters()) out[p.key()] = p.value().detach();
  return out;
}

}  // namespace audit::model
