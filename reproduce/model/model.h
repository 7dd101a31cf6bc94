// The dense decoder-only transformers of Hugging Face's qwen2, llama and mistral in the LibTorch
// C++ frontend: RMSNorm, rotary position embeddings (plain, or with Llama 3.1's "llama3"
// frequency scaling), grouped-query attention through torch::scaled_dot_product_attention with an
// optional sliding window (mistral; qwen2 when configured), SwiGLU MLP, optional q/k/v bias
// (qwen2), untied or tied embeddings and lm_head. The three share one graph; ModelConfig's fields
// (qkv_bias, rope_scaling, sliding_window, tie_embeddings) are what tells them apart.
//
// Module names are chosen so that named_parameters() yields exactly the Hugging Face names
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ..., model.norm.weight,
// lm_head.weight); load_state() takes tensors by those names, so a real HF checkpoint loads
// without a name map. tests/torch/hf_parity_test.cpp checks logits, loss and every gradient
// against transformers itself (tests/golden/hf_forward_peer.py) on tiny random models of each
// architecture.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "reproduce/settings/settings.h"  // ModelSettings: the fields and their defaults

namespace audit::model {

// The model's configuration: settings::ModelSettings (reproduce/settings/settings.h), where every
// architecture field has its one default, shared with the recipe's [base] section. A recipe's
// model is ModelConfig(recipe.base). This file builds the dense qwen2, llama and mistral
// architectures; validate() refuses the fields of what it does not build yet (MoE, MLA,
// multi-token prediction) and the architectures that are only counted (deepseek_v3, qwen2_moe,
// mixtral).
struct ModelConfig : settings::ModelSettings {
  ModelConfig() = default;
  explicit ModelConfig(const settings::ModelSettings& s) : settings::ModelSettings(s) {}

  // Throws std::invalid_argument naming the field when the sizes do not fit together or name a
  // part this model does not build.
  void validate() const;
  // Parameter count (embeddings and lm_head included; counted once when tied).
  int64_t parameter_count() const;
  // "arch=qwen2 vocab=264 hidden=64 ..." (every field) for logs and checkpoint checks.
  std::string to_string() const { return settings::to_string(*this); }

  // Run-only, not a setting: false builds the parameters uninitialised, for a model whose every
  // parameter is loaded next (load_model): drawing 0.5B random numbers only to overwrite them
  // took longer than the load. The built model's own cfg has it true again.
  bool initialize = true;
};

// A linear layer with the parameter names and default initialisation of torch::nn::Linear
// (kaiming-uniform weight, uniform bias, from the global generator in the same order), forward
// as at::linear (one addmm with a bias, as Python's F.linear), and no initialisation at all when
// built with initialize = false.
struct LinearImpl : torch::nn::Module {
  LinearImpl(int64_t in, int64_t out, bool bias, bool initialize = true);
  torch::Tensor forward(const torch::Tensor& x) const;
  torch::Tensor weight, bias;  // bias undefined when built without one
};
TORCH_MODULE(Linear);

// An embedding table with torch::nn::Embedding's name and default initialisation (standard
// normal), or none with initialize = false.
struct EmbeddingImpl : torch::nn::Module {
  EmbeddingImpl(int64_t rows, int64_t dim, bool initialize = true);
  torch::Tensor forward(const torch::Tensor& ids);
  torch::Tensor weight;
};
TORCH_MODULE(Embedding);

// Per-layer key/value cache for incremental decoding. Keys and values are stored already
// rotated, [batch, kv_heads, capacity, head_dim]; `valid` marks which cached positions are real
// tokens (false for left padding) so padded rows of a batch never attend to padding.
struct KVCache {
  std::vector<torch::Tensor> k, v;  // one per layer
  torch::Tensor valid;              // [batch, capacity] bool
  int64_t length = 0;               // positions filled so far
  int64_t capacity = 0;
};

// Root-mean-square layer norm with a learned scale, computed in fp32 like HF's Qwen2RMSNorm
// (with a hand-written backward when gradients are needed; see model.cpp).
struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// Rotary embedding tables: inv_freq is a buffer (moves with .to(device)), not a parameter,
// matching HF's non-persistent model.rotary_emb.inv_freq.
struct RotaryEmbeddingImpl : torch::nn::Module {
  RotaryEmbeddingImpl(int64_t head_dim, double theta);  // plain RoPE
  // From the config: head_dim, rope_theta, and rope_scaling "" or "llama3" (anything else throws
  // std::invalid_argument; validate() refuses it first).
  explicit RotaryEmbeddingImpl(const ModelConfig& c);
  // position_ids [B, T] (int64; B may be 1 to broadcast) -> cos, sin_signed [B, 1, T, head_dim]
  // in fp32, where sin_signed is HF's sin table with its first half negated (rotate_half's sign).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& position_ids);
  torch::Tensor inv_freq;
};
TORCH_MODULE(RotaryEmbedding);

// How the attention of one forward pass is masked.
struct AttentionMask {
  bool is_causal = true;  // plain causal over the whole sequence (no mask tensor)
  torch::Tensor mask;     // else a bool mask broadcastable to [B, 1, Tq, Tk]: true = may attend
};

struct AttentionImpl : torch::nn::Module {
  explicit AttentionImpl(const ModelConfig& c);
  // x [B, T, hidden]; cos/sin from RotaryEmbedding. With cache_k/cache_v (a layer of KVCache)
  // the new keys/values are written at [start, start + T) and attention covers [0, start + T).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const AttentionMask& mask, torch::Tensor* cache_k = nullptr,
                        torch::Tensor* cache_v = nullptr, int64_t start = 0);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t heads, kv_heads, head_dim;
};
TORCH_MODULE(Attention);

// The feed-forward seam: what a decoder layer calls on its post-attention norm. The dense SwiGLU
// MLP is the one implementation built now; an MoE layer (router, routed and shared experts) is
// meant to be a second one, which make_feed_forward would choose per layer.
struct FeedForwardImpl : torch::nn::Module {
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};

struct MLPImpl : FeedForwardImpl {
  explicit MLPImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x) override;  // down(silu(gate(x)) * up(x))
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

// The feed-forward block of layer `layer` (registered under HF's name "mlp"): the dense MLP.
std::shared_ptr<FeedForwardImpl> make_feed_forward(const ModelConfig& c, int64_t layer);

struct DecoderLayerImpl : torch::nn::Module {
  explicit DecoderLayerImpl(const ModelConfig& c, int64_t layer = 0);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const AttentionMask& mask, torch::Tensor* cache_k = nullptr,
                        torch::Tensor* cache_v = nullptr, int64_t start = 0);
  // Registered in HF's order so named_parameters() lists names exactly as its state_dict does.
  Attention self_attn{nullptr};
  std::shared_ptr<FeedForwardImpl> mlp;
  RMSNorm input_layernorm{nullptr};
  RMSNorm post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

// The body without the head: HF's Qwen2Model, registered as "model".
struct DecoderImpl : torch::nn::Module {
  explicit DecoderImpl(const ModelConfig& c);
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  RotaryEmbedding rotary_emb{nullptr};
};
TORCH_MODULE(Decoder);

// The full causal language model: HF's Qwen2ForCausalLM.
struct CausalLMImpl : torch::nn::Module {
  explicit CausalLMImpl(const ModelConfig& c);

  // Logits [B, T, vocab] for input_ids [B, T] (int64).
  // position_ids: omitted -> 0..T-1 with a plain causal mask (the fast is_causal path).
  // Given [B, T] -> rotary positions from it, and a new segment starts wherever a position does
  // not continue the previous one (p[t] != p[t-1] + 1, e.g. a restart at 0): packed sequences
  // then attend only within their own segment (block-diagonal causal mask).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& position_ids = {});
  // The final-norm hidden states [B, T, hidden] (forward() is lm_head over these).
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const torch::Tensor& position_ids = {});
  torch::Tensor project(const torch::Tensor& hidden);  // lm_head (or tied embedding)

  // Incremental decoding: feeds input_ids [B, T] at cache positions [cache.length, +T) with
  // rotary positions position_ids [B, T]; new_valid [B, T] marks real (non-padding) tokens.
  // Returns the logits of the last position only, [B, vocab]; advances cache.length by T.
  torch::Tensor forward_cached(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                               const torch::Tensor& new_valid, KVCache& cache);
  KVCache make_cache(int64_t batch, int64_t capacity) const;

  const ModelConfig& config() const { return cfg; }
  torch::Device device() const;

  // Activation recompute (gradient checkpointing, HF gradient_checkpointing_enable()): when on,
  // and a forward pass records gradients, each decoder layer runs without keeping its
  // activations (only its input is saved) and runs again in backward to compute its gradients.
  // The loss and gradients are those of the plain forward; memory held for backward drops from
  // every layer's intermediates to one [B, T, hidden] input per layer, for one extra forward.
  void set_recompute(bool on) { recompute_ = on; }
  bool recompute() const { return recompute_; }

  // Called around each decoder layer of hidden_states(): before(i, input) just before layer i
  // runs, after(i, output) just after (with recompute on, around the recomputed node). The sharded
  // trainer (fsdp_full_shard) gathers a layer's parameters in before() and frees them in after(),
  // and hooks the two tensors' gradients to do the same around the layer's backward. Empty
  // functions: nothing is called.
  struct LayerHooks {
    std::function<void(int64_t layer, const torch::Tensor& input)> before;
    std::function<void(int64_t layer, const torch::Tensor& output)> after;
  };
  void set_layer_hooks(LayerHooks hooks) { hooks_ = std::move(hooks); }

  ModelConfig cfg;
  Decoder model{nullptr};
  Linear lm_head{nullptr};  // unregistered (null) when tie_embeddings

 private:
  bool recompute_ = false;
  LayerHooks hooks_;
};
TORCH_MODULE(CausalLM);

// Qwen2 initialisation (HF initializer_range 0.02): normal(0, std) for every matrix and
// embedding, zeros for biases, ones for RMSNorm weights; drawn from a private generator seeded
// with `seed`, so the result does not depend on (or disturb) the global torch RNG.
void init_weights(CausalLM& model, uint64_t seed, double std = 0.02);

// Copies tensors by HF name into the model's parameters (dtype converted, shapes checked).
// Every parameter must be present; with strict, a tensor that names no parameter is an error too
// (lm_head.weight is accepted, and must equal embed_tokens, when embeddings are tied).
// `source` names the file for error messages. Errors: audit::InputError (exit 2).
void load_state(CausalLM& model, const std::map<std::string, torch::Tensor>& tensors,
                const std::string& source, bool strict = true);

// The model's parameters by HF name, detached (for writing a safetensors file).
std::map<std::string, torch::Tensor> state(CausalLM& model);

// RMSNorm with autograd (what RMSNormImpl uses when gradients are needed): row-wise CPU loops
// for contiguous fp32 CPU tensors when allow_cpu_loops, else tensor ops. Exposed for the test
// that checks one against the other.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps,
                       bool allow_cpu_loops = true);

// Block-diagonal causal mask for packed sequences, [B, 1, T, T] bool, from position_ids [B, T].
torch::Tensor packed_causal_mask(const torch::Tensor& position_ids);

// The causal mask of queries at sequence indices [q_start, q_start + Tq) over keys [0, Tk),
// [1, 1, Tq, Tk] bool: key j is visible to query i when j <= i and, with window > 0, also
// j > i - window (HF's sliding_window_overlay: a query sees at most `window` keys, itself
// included).
torch::Tensor causal_window_mask(int64_t q_start, int64_t Tq, int64_t Tk, int64_t window,
                                 const torch::TensorOptions& opts);

}  // namespace audit::model
