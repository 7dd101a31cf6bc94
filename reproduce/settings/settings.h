// Model and training settings with their defaults, written once. The recipe's [base] and [train]
// sections (reproduce/recipe/recipe.h) are these structs plus what only a claim has; the model's
// ModelConfig (reproduce/model/model.h) and the trainer's TrainConfig
// (reproduce/trainer/trainer.h) are these structs plus what only a run has. A recipe that omits a
// key gets the default below, and so does code that builds a model or a trainer without one.
// No LibTorch here: the torch-free `audit` binary parses recipes into the same structs.
//
// Model field names follow the recipe keys; the Hugging Face config.json name is in each
// comment, so a config.json can be read into the same struct (vocab_size -> vocab, ...).
#pragma once

#include <cstdint>
#include <string>

namespace audit::settings {

// The architecture of a decoder-only transformer: Qwen2 (dense, GQA, SwiGLU) or DeepSeek-V3
// (MLA attention, MoE FFN, multi-token prediction). The defaults are a tiny dense Qwen2 over the
// byte tokenizer; the MoE, MLA and MTP fields are zero (off) unless arch = "deepseek_v3".
struct ModelSettings {
  std::string arch = "qwen2";    // HF model_type. Built and trained: "qwen2" (q/k/v bias),
                                 // "llama", "mistral" (dense, GQA, SwiGLU). Counted only (estimate,
                                 // replay): "deepseek_v3" (MLA + MoE), "qwen2_moe", "mixtral"
  int64_t vocab = 264;           // vocabulary size: embedding rows and lm_head outputs; 264 = the
                                 // byte tokenizer (256 bytes + 8 template specials,
                                 // datasets/tokenizer/tokenizer.h) (recipe key and HF vocab_size)
  int64_t hidden = 64;           // residual stream width d_model (HF hidden_size)
  int64_t layers = 2;            // decoder layers (HF num_hidden_layers)
  int64_t heads = 4;             // query heads (HF num_attention_heads)
  int64_t kv_heads = 4;          // key/value heads (GQA groups); must divide heads
                                 // (HF num_key_value_heads)
  int64_t head_dim = 16;         // per-head width of q/k/v (qwen2; HF head_dim, else
                                 // hidden / heads); for MLA see the qk_*/v_head_dim fields
  int64_t ffn = 256;             // dense SwiGLU inner width, also that of the first dense layers
                                 // of an MoE model (HF intermediate_size)
  double rope_theta = 10000.0;   // rotary base (HF rope_theta; Qwen2.5 uses 1e6)
  int64_t max_position = 2048;   // longest position the model supports
                                 // (HF max_position_embeddings)
  double rms_eps = 1e-6;         // RMSNorm epsilon (HF rms_norm_eps)
  bool qkv_bias = true;          // q/k/v projections carry a bias; o_proj never does (Qwen2 yes,
                                 // DeepSeek-V3 no; HF attention_bias)
  bool tie_embeddings = false;   // lm_head shares the embedding matrix (HF tie_word_embeddings)
  // Rotary scaling (HF rope_scaling); "" = none. "llama3": Llama 3.1's frequency-dependent
  // scaling of inv_freq by rope_factor between the low and high frequency factors.
  std::string rope_scaling = "";       // HF rope_scaling.rope_type (or .type)
  double rope_factor = 1.0;            // HF rope_scaling.factor
  double rope_low_freq_factor = 1.0;   // HF rope_scaling.low_freq_factor
  double rope_high_freq_factor = 4.0;  // HF rope_scaling.high_freq_factor
  int64_t rope_original_max_position = 0;  // HF rope_scaling.original_max_position_embeddings
  int64_t sliding_window = 0;    // attention window in tokens; 0 = full causal attention
                                 // (HF sliding_window, when use_sliding_window is not false)
  // MoE (arch = "deepseek_v3"; routed_experts = 0 means every layer has a dense FFN)
  int64_t routed_experts = 0;    // routed experts per MoE layer (HF n_routed_experts)
  int64_t shared_experts = 0;    // always-on shared experts per MoE layer (HF n_shared_experts)
  int64_t top_k = 0;             // routed experts per token (HF num_experts_per_tok)
  int64_t expert_ffn = 0;        // inner width of one expert (HF moe_intermediate_size;
                                 // mixtral: intermediate_size)
  int64_t shared_expert_ffn = 0; // inner width of the shared expert(s) together; 0 = shared_experts
                                 // * expert_ffn (qwen2_moe: shared_expert_intermediate_size)
  int64_t first_dense_layers = 0;// leading layers with a dense FFN of width ffn instead of MoE
                                 // (HF first_k_dense_replace)
  std::string score_func = "softmax";  // gate scores: "softmax" | "sigmoid" (+ a per-expert
                                       // bias, DeepSeek-V3) (HF scoring_func)
  double routed_scaling = 1.0;   // scale on routed expert outputs (DeepSeek-V3: 2.5;
                                 // HF routed_scaling_factor)
  int64_t expert_groups = 1;     // node-limited routing: expert groups (DeepSeek-V3: 8; HF n_group)
  int64_t topk_groups = 1;       // groups a token may route to (DeepSeek-V3: 4; HF topk_group)
  int64_t mtp_depth = 0;         // multi-token-prediction modules (DeepSeek-V3: 1;
                                 // HF num_nextn_predict_layers)
  // MLA (arch = "deepseek_v3")
  int64_t q_lora_rank = 0;       // query low-rank dim; 0 = plain q projection (HF q_lora_rank)
  int64_t kv_lora_rank = 0;      // compressed KV latent dim (HF kv_lora_rank)
  int64_t qk_nope_head_dim = 0;  // per-head q/k dim without RoPE (HF qk_nope_head_dim)
  int64_t qk_rope_head_dim = 0;  // per-head q/k dim with RoPE, the decoupled key
                                 // (HF qk_rope_head_dim)
  int64_t v_head_dim = 0;        // per-head value dim (HF v_head_dim)

  // Calls f(name, &ModelSettings::field) for every field above, in order: the one list that the
  // comparison, to_string and the trainer's checkpoints walk (a new field goes in it too). The
  // names are the recipe's [base] keys, except vocab (recipe key vocab_size).
  template <class F>
  static void for_each_field(F&& f);
  // Every field equal (a checkpoint fits a model only when all of them are).
  bool operator==(const ModelSettings& o) const;
  bool operator!=(const ModelSettings& o) const { return !(*this == o); }
};

// The optimizer and schedule of one training run: AdamW with linear warmup then cosine, linear or
// constant lr (HF get_cosine/linear/constant_schedule_with_warmup; s1's Trainer used cosine),
// the precision, activation recompute and checkpoint interval. The defaults are s1's SFT values
// where it states them (DESIGN.md): 5 epochs, global batch 16, lr 1e-5, 5% warmup, cosine, AdamW
// (0.9, 0.95), weight decay 1e-4, gradient clipping at 1.0; precision is fp32 unless a recipe
// says otherwise (bf16 needs a CUDA device, fp8 is not built: the trainer refuses both
// elsewhere).
struct TrainSettings {
  int64_t epochs = 5;            // passes over the training samples (s1: 5); 0 in a recipe = no
                                 // SFT stage (`audit run` evaluates the base model as loaded)
  int64_t global_batch = 16;     // sequences per optimizer step across all devices (s1: 16)
  int64_t micro_batch = 0;       // sequences per forward/backward; 0 = global_batch; the rest of
                                 // the global batch is gradient accumulation
  double lr = 1e-5;              // peak learning rate (s1: 1e-5 on 32B; small models need more)
  double warmup_frac = 0.05;     // fraction of the steps with linear warmup, 0..1 (s1: 5%)
  std::string schedule = "cosine";  // lr after warmup: "cosine" (HF cosine, s1) | "linear" (HF
                                    // linear, to min_lr) | "constant" (HF constant: the peak)
  double min_lr_frac = 0.0;      // final lr as a fraction of the peak, 0..1 (s1 / HF cosine: 0)
  double beta1 = 0.9;            // AdamW beta1 (s1: 0.9)
  double beta2 = 0.95;           // AdamW beta2 (s1: 0.95)
  double adam_eps = 1e-8;        // AdamW epsilon
  double weight_decay = 1e-4;    // AdamW decoupled weight decay, on matrices and embeddings only,
                                 // not biases or norms (s1: 1e-4)
  double grad_clip = 1.0;        // max global gradient norm; 0 = no clipping
  std::string precision = "fp32";  // "fp32" | "bf16" (autocast, CUDA only) | "fp8" (claimed
                                   // only: counted by estimate/replay, not trained here)
  bool recompute = false;        // activation recompute per decoder layer (8·N·D instead of
                                 // 6·N·D; s1: --gradient_checkpointing=True)
  int64_t seed = 42;             // init and data-order seed
  int64_t checkpoint_every = 0;  // optimizer steps between checkpoints; 0 = only at the end
  int64_t threads = 0;           // CPU threads for torch; 0 = leave torch's setting (all cores)

  // micro_batch with 0 resolved to global_batch.
  int64_t micro_batch_or_global() const { return micro_batch > 0 ? micro_batch : global_batch; }
  // Calls f(name, &TrainSettings::field) for every field above, in order; the names are the
  // recipe's [train] keys.
  template <class F>
  static void for_each_field(F&& f);
  bool operator==(const TrainSettings& o) const;
  bool operator!=(const TrainSettings& o) const { return !(*this == o); }
};

// "name=value ..." of every field, in order (for logs and checkpoint mismatch messages).
std::string to_string(const ModelSettings& m);
std::string to_string(const TrainSettings& t);

template <class F>
void ModelSettings::for_each_field(F&& f) {
  using M = ModelSettings;
  f("arch", &M::arch);
  f("vocab", &M::vocab);
  f("hidden", &M::hidden);
  f("layers", &M::layers);
  f("heads", &M::heads);
  f("kv_heads", &M::kv_heads);
  f("head_dim", &M::head_dim);
  f("ffn", &M::ffn);
  f("rope_theta", &M::rope_theta);
  f("max_position", &M::max_position);
  f("rms_eps", &M::rms_eps);
  f("qkv_bias", &M::qkv_bias);
  f("tie_embeddings", &M::tie_embeddings);
  f("rope_scaling", &M::rope_scaling);
  f("rope_factor", &M::rope_factor);
  f("rope_low_freq_factor", &M::rope_low_freq_factor);
  f("rope_high_freq_factor", &M::rope_high_freq_factor);
  f("rope_original_max_position", &M::rope_original_max_position);
  f("sliding_window", &M::sliding_window);
  f("routed_experts", &M::routed_experts);
  f("shared_experts", &M::shared_experts);
  f("top_k", &M::top_k);
  f("expert_ffn", &M::expert_ffn);
  f("shared_expert_ffn", &M::shared_expert_ffn);
  f("first_dense_layers", &M::first_dense_layers);
  f("score_func", &M::score_func);
  f("routed_scaling", &M::routed_scaling);
  f("expert_groups", &M::expert_groups);
  f("topk_groups", &M::topk_groups);
  f("mtp_depth", &M::mtp_depth);
  f("q_lora_rank", &M::q_lora_rank);
  f("kv_lora_rank", &M::kv_lora_rank);
  f("qk_nope_head_dim", &M::qk_nope_head_dim);
  f("qk_rope_head_dim", &M::qk_rope_head_dim);
  f("v_head_dim", &M::v_head_dim);
}

template <class F>
void TrainSettings::for_each_field(F&& f) {
  using T = TrainSettings;
  f("epochs", &T::epochs);
  f("global_batch", &T::global_batch);
  f("micro_batch", &T::micro_batch);
  f("lr", &T::lr);
  f("warmup_frac", &T::warmup_frac);
  f("schedule", &T::schedule);
  f("min_lr_frac", &T::min_lr_frac);
  f("beta1", &T::beta1);
  f("beta2", &T::beta2);
  f("adam_eps", &T::adam_eps);
  f("weight_decay", &T::weight_decay);
  f("grad_clip", &T::grad_clip);
  f("precision", &T::precision);
  f("recompute", &T::recompute);
  f("seed", &T::seed);
  f("checkpoint_every", &T::checkpoint_every);
  f("threads", &T::threads);
}

}  // namespace audit::settings
