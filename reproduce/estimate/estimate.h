// The paper-only audit behind `audit estimate RECIPE`: from a recipe alone (no training), the
// compute of the claimed run (6·N·D, N counted from the architecture), the GPU-hours it states,
// the utilization those imply with a plausibility verdict, the claimed cost against price bands,
// and the full cost with the base model's pretraining and the declared extras. Every printed
// line says measured | declared | estimated with its formula and inputs; the cost rows are the
// ledger CostItem rows such an audit would write.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ledger/costs/cost_model.h"  // ArchSpec, ParamCount, Band, PriceTable, CostItem, CostTotals
#include "reproduce/recipe/recipe.h"   // Recipe

namespace audit::reproduce {

// One line of the estimate: a value (a band; low == mid == high for a point) with provenance.
struct EstimateLine {
  std::string key;         // stable id, e.g. "train_flops", "implied_mfu"
  std::string label;       // words, e.g. "compute of the claimed run"
  ledger::Band value;
  std::string unit;        // "FLOP", "GPU-hour", "fraction of peak", "USD", "parameters", ...
  std::string provenance;  // measured | declared | estimated
  std::string formula;
  nlohmann::json inputs = nlohmann::json::object();
  std::string note;        // verdict reason, caveat
};

struct Estimate {
  std::string recipe_path, recipe_sha256;
  std::string claim_name, claim_title, headline, stage;
  ledger::ArchSpec arch;
  ledger::ParamCount params;
  ledger::Hardware hardware;          // the claimed GPU type
  ledger::Band tokens;                // D of the claimed run
  ledger::Band train_flops;           // 6·N·D (model FLOPs)
  ledger::Band hardware_flops;        // 8·N·D with recompute, else = train_flops
  double gpu_hours = 0;               // stated GPU-hours of the claimed run (0 = not stated)
  double mfu_gpu_hours = 0;           // GPU-hours the utilization is computed over
  ledger::Band mfu;                   // implied, fraction of bf16 dense peak (from train_flops)
  ledger::Band hfu;                   // hardware FLOP utilization (from hardware_flops)
  ledger::MfuVerdict verdict;         // at mid, worst of MFU thresholds and HFU > 100%
  std::vector<EstimateLine> lines;    // everything, in print order
  std::vector<ledger::CostItem> items;  // the ledger rows (category, quantity, price band, ...)
  ledger::CostTotals totals;
  ledger::PriceTable prices;

  const EstimateLine* line(const std::string& key) const;  // nullptr when absent
  nlohmann::json to_json() const;
  std::string to_text() const;
};

// Recipe [base] -> cost-model architecture (router bias for sigmoid gates, MLA dims, MTP).
ledger::ArchSpec arch_from_recipe(const recipe::BaseSection& b);
// The same from the architecture alone (no name): what the memory plan counts.
ledger::ArchSpec arch_from_settings(const settings::ModelSettings& m);

// The shipped price table with the recipe's [prices] bands applied (gpu_hour_usd prices the
// claimed GPU type; api_usd_per_mtok the teacher's output tokens; base_mfu the base-model MFU
// band). Throws audit::InputError naming prices.<key>.
ledger::PriceTable prices_from_recipe(const recipe::Recipe& r);

// The tokens of the claimed run as a band, with how they were obtained (formula, inputs,
// provenance): pretraining -> base.pretrain_tokens; SFT/RL -> select_n x epochs x mean
// sequence length ([data] seq_len_mean; else [replay] seq_lens min/median/max; else a band
// bounded by train.block_size), each marked estimated when a length is assumed.
// With `measured` (a run that read and tokenized the training file), D = the file's samples x
// epochs x its measured mean tokens per sample, marked measured, in place of the length band.
struct MeasuredTokens {
  double samples = 0;        // training samples in the file
  double mean = 0;           // mean tokens per sample as rendered for training
  std::string source;        // what was measured, e.g. "s1K.jsonl in Qwen2.5's tokenizer"
};
EstimateLine claimed_tokens(const recipe::Recipe& r, const MeasuredTokens* measured = nullptr);

// Runs the estimate. Throws audit::InputError for a recipe the cost model cannot read (unknown
// GPU type, invalid architecture), naming the key.
Estimate estimate_recipe(const recipe::Recipe& r, const MeasuredTokens* measured = nullptr);

}  // namespace audit::reproduce
