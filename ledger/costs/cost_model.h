// The cost model: parameter counts computed from an architecture (dense GQA transformers such as
// Qwen2.5, and DeepSeek-V3's MLA + MoE + multi-token prediction), training and inference FLOPs
// (6·N·D, 8·N·D with full recompute, 2·N per generated token), the utilization a claim implies
// with a plausibility verdict, and the cost items of a run (ledger CostItem rows, each with
// quantity, unit, price band and provenance: measured | declared | estimated).
//
// This header knows nothing of recipes: callers fill the plain structs below (reproduce/estimate
// maps a Recipe onto them; the run pipeline passes ledger StageInfo rows).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ledger/costs/hardware.h"  // Hardware, find_hardware
#include "ledger/store/ledger.h"    // CostItem, StageInfo, Provenance
#include "ledger/costs/prices.h"    // Band, PriceTable

namespace audit::ledger {

// ---------------------------------------------------------------------------------------------
// Architecture and parameter counts

struct ArchSpec {
  std::string name;
  int64_t vocab = 0;              // embedding rows
  int64_t hidden = 0;             // d_model
  int64_t layers = 0;             // transformer blocks of the main model
  int64_t heads = 0;              // query heads
  int64_t kv_heads = 0;           // key/value heads (GQA); ignored for MLA
  int64_t head_dim = 0;           // q/k/v head dim (GQA); ignored for MLA
  int64_t ffn = 0;                // dense SwiGLU intermediate size (dense model, first dense layers)
  bool qkv_bias = false;          // q/k/v projections carry a bias (Qwen2)
  bool tie_embeddings = false;    // output head shares the embedding matrix
  // MoE: routed_experts == 0 means every layer has a dense FFN.
  int64_t routed_experts = 0;     // routed experts per MoE layer
  int64_t shared_experts = 0;     // always-on experts per MoE layer
  int64_t top_k = 0;              // routed experts per token
  int64_t expert_ffn = 0;         // intermediate size of one (routed or shared) expert
  int64_t shared_expert_ffn = 0;  // width of the shared expert(s) together; 0 = shared_experts *
                                  // expert_ffn (Qwen2-MoE: shared_expert_intermediate_size)
  bool shared_expert_gate = false;// a hidden -> 1 sigmoid gate on the shared expert (Qwen2-MoE)
  int64_t first_dense_layers = 0; // leading layers with a dense FFN of size ffn
  bool router_bias = false;       // per-expert score-correction bias (DeepSeek-V3 sigmoid gate)
  // MLA: kv_lora_rank > 0 means multi-head latent attention.
  int64_t q_lora_rank = 0;        // 0 = plain q projection
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t mtp_depth = 0;          // multi-token-prediction modules (not in total/active)

  bool is_moe() const { return routed_experts > 0; }
  bool is_mla() const { return kv_lora_rank > 0; }
};

// Throws std::invalid_argument naming the field when the spec cannot describe a model
// (non-positive sizes, kv_heads not dividing heads, top_k > routed_experts, ...).
void validate(const ArchSpec& a);

// Parameters by part, counted exactly (int64). "total" and "active" are the main model
// (embedding, all blocks, final norm, output head unless tied); the MTP modules are reported
// apart (mtp_total / mtp_active) because published totals (DeepSeek-V3's 671B) exclude them.
// Active = what one token passes through: everything except the routed experts it is not
// routed to (top_k of routed_experts per MoE layer); the embedding and head are counted.
struct ParamCount {
  int64_t embedding = 0;      // vocab x hidden
  int64_t lm_head = 0;        // hidden x vocab; 0 when tied
  int64_t attention = 0;      // projections (+ biases, + MLA's low-rank norms), all layers
  int64_t dense_ffn = 0;      // SwiGLU of the dense layers
  int64_t routed_experts = 0; // all routed experts of all MoE layers
  int64_t shared_experts = 0; // shared experts of all MoE layers
  int64_t router = 0;         // gate weights (+ score-correction bias)
  int64_t norms = 0;          // two RMSNorm weights per layer + the final norm
  int64_t total = 0;
  int64_t active = 0;
  int64_t mtp_total = 0;      // extra parameters of the MTP modules (embedding/head shared)
  int64_t mtp_active = 0;
  std::string counted;        // what was counted, in words (for reports and docs)
};
nlohmann::json to_json(const ParamCount& p);

ParamCount count_parameters(const ArchSpec& a);

// ---------------------------------------------------------------------------------------------
// FLOPs

// Training FLOPs: 6·N·D (forward 2·N·D + backward 4·N·D), 8·N·D with full activation recompute
// (one more forward). N = active parameters, D = tokens processed.
double training_flops(double n_active, double tokens, bool full_recompute = false);
// Inference FLOPs: 2·N per generated (or prefilled) token.
double inference_flops(double n_active, double tokens);
// Attention-score FLOPs per token that 6·N·D leaves out (PaLM's MFU convention): training
// 12 · layers · heads · head_dim · seq_len (non-causal; qk and v dims averaged for MLA).
// Reported beside 6·N·D as a note, never folded into the verdict.
double attention_training_flops_per_token(const ArchSpec& a, double seq_len);

// ---------------------------------------------------------------------------------------------
// Utilization implied by a claim

// FLOPs / (devices x seconds x peak FLOP/s per device); 0 when any input is 0.
double implied_mfu(double flops, double devices, double seconds, double peak_flops);

struct MfuVerdict {
  double mfu = 0;
  std::string verdict;  // "impossible" (> 100%), "implausible" (> 60%), "plausible", "unknown"
  std::string reason;
};
MfuVerdict judge_mfu(double mfu);
inline constexpr double kMfuImpossible = 1.0;
inline constexpr double kMfuImplausible = 0.6;

// GPU-hours needed for `flops` at utilization `mfu` of `peak_flops` per GPU.
double gpu_hours_for(double flops, double peak_flops, double mfu);

// ---------------------------------------------------------------------------------------------
// Cost items of a run

// Category a stage's metering goes to: sft/grpo/rl/train/launch -> final_run, pretrain -> base_model,
// distill/teacher -> data_generation, select/filter/judge -> filtering, eval -> evaluation,
// search/sweep -> search, anything else -> other.
std::string stage_category(const std::string& stage_name);

// What one run metered (Ledger::stages rows) and on which GPU type.
struct RunMetering {
  int64_t run_id = 0;
  std::string status;              // run status: succeeded | failed | aborted | running
  std::vector<StageInfo> stages;
  std::string gpu_type;            // hardware id of the metered GPUs (e.g. "H100-SXM"); "" = none
};

// The claim's own numbers (declared).
struct ClaimFigures {
  std::string name;                // e.g. "s1"
  std::string headline;            // e.g. "under $50"
  double usd = 0;                  // dollar figure claimed; 0 = none
  std::string gpu_type;            // hardware id, e.g. "H100-SXM"
  double gpu_count = 0;
  double wall_hours = 0;
  double gpu_hours = 0;            // stated GPU-hours (or gpu_count x wall_hours)
  double gpu_hour_usd = 0;         // the GPU-hour price the claim assumed; 0 = not stated
  std::string source;              // citation
};

// The base model's pretraining, estimated as 6·N·D at an MFU band and a price band.
struct BaseModelEstimate {
  std::string name;
  double n_active = 0;             // active parameters (computed from the architecture)
  double tokens = 0;               // pretraining tokens (declared by the base's makers)
  std::string tokens_source;
  std::string gpu_type;            // hardware the estimate prices (its bf16 dense peak)
  Band mfu;                        // utilization band (fraction of bf16 dense peak)
  std::string mfu_source;
};

// A cost the headline left out, declared by the claimant or estimated from their sources.
struct ExtraItem {
  std::string category;            // data_generation, filtering, curation, search, evaluation, ...
  std::string description;
  double quantity = 0;             // mid
  double quantity_low = -1;        // band on the quantity; < 0 = same as quantity
  double quantity_high = -1;
  std::string unit;                // GPU-hour | CPU-hour | 1M tokens | kWh | hour | USD
  std::string gpu_type;            // for GPU-hours (price key gpu_hour.<id>)
  std::string price_key;           // explicit PriceTable key; "" = by unit
  std::optional<Band> price;       // explicit per-unit price band (overrides the table)
  std::string price_source;        // source of an explicit price
  Provenance provenance = Provenance::declared;
  std::string formula;             // how quantity was obtained (estimated/derived lines)
  nlohmann::json inputs = nlohmann::json::object();
  std::string source;              // citation
};

struct CostInputs {
  std::optional<RunMetering> final_run;     // this run, measured (stages mapped by category)
  std::vector<RunMetering> failed_runs;     // failed/aborted runs of this recipe: failed_runs
  std::optional<ClaimFigures> claim;        // declared
  // true in paper-only estimates: the claim's GPU-hours become the (declared) final_run line.
  // false with a measured final run: they are shown as claimed_compute, outside the full total.
  bool claim_as_final_run = false;
  std::optional<BaseModelEstimate> base;    // the base was not trained here
  std::vector<ExtraItem> extras;
};

// Builds the rows. Every row carries its formula and inputs; quantities known only as a band
// put "quantity_low"/"quantity_high" in inputs; rows outside the full total (the claim's own
// figures, energy already inside rental prices, CO2) put "in_total": false in inputs.
// Throws std::invalid_argument for an unknown GPU type or price key (message names it).
std::vector<CostItem> build_cost_items(const CostInputs& in, const PriceTable& prices);

// One ExtraItem priced into a row (used by build_cost_items; exposed for callers and tests).
CostItem price_extra(const ExtraItem& e, const PriceTable& prices);

// USD band of one row: quantity band x price band (low x low, mid x mid, high x high).
Band item_cost(const CostItem& c);
Band quantity_band(const CostItem& c);
bool in_full_total(const CostItem& c);

// The three totals of DESIGN.md's cost honesty rules.
struct CostTotals {
  bool claimed_known = false;
  Band claimed;                    // the headline dollars, else the claimed GPU-hours x band
  std::string claimed_basis;       // which of the two
  Band final_run;                  // category final_run (measured, or declared in estimates)
  Band full;                       // every row in the full total
  nlohmann::json by_category = nlohmann::json::object();  // category -> [low, mid, high]
};
CostTotals cost_totals(const std::vector<CostItem>& items);
nlohmann::json to_json(const CostTotals& t);
nlohmann::json cost_item_json(const CostItem& c);  // every field, provenance as text

}  // namespace audit::ledger
