// The cost model: parameter counts from the architecture, FLOPs, implied utilization with its
// verdict, and the priced cost rows of a run. See ledger/costs/cost_model.h and docs/cost-model.md.
#include "ledger/costs/cost_model.h"
#include "common/format.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>

namespace audit::ledger {
namespace {

void require(bool ok, const std::string& field, const std::string& what) {
  if (!ok) throw std::invalid_argument("architecture '" + field + "': " + what);
}

int64_t attention_per_layer(const ArchSpec& a) {
  const int64_t h = a.hidden;
  if (a.is_mla()) {
    const int64_t qk = a.qk_nope_head_dim + a.qk_rope_head_dim;
    int64_t q = a.q_lora_rank > 0
                    ? h * a.q_lora_rank + a.q_lora_rank /* q_a_layernorm */ +
                          a.q_lora_rank * a.heads * qk
                    : h * a.heads * qk;
    int64_t kv = h * (a.kv_lora_rank + a.qk_rope_head_dim) /* kv_a_proj_with_mqa */ +
                 a.kv_lora_rank /* kv_a_layernorm */ +
                 a.kv_lora_rank * a.heads * (a.qk_nope_head_dim + a.v_head_dim) /* kv_b_proj */;
    int64_t o = a.heads * a.v_head_dim * h;
    return q + kv + o;
  }
  const int64_t q = h * a.heads * a.head_dim;
  const int64_t kv = 2 * h * a.kv_heads * a.head_dim;
  const int64_t bias = a.qkv_bias ? (a.heads + 2 * a.kv_heads) * a.head_dim : 0;
  const int64_t o = a.heads * a.head_dim * h;
  return q + kv + bias + o;
}

int64_t swiglu(int64_t hidden, int64_t inner) { return 3 * hidden * inner; }  // gate, up, down

nlohmann::json band_json(const Band& b) { return to_json(b); }

std::string price_note(const PriceBand& p) {
  std::string s = "price " + p.key + " [" + text::fmt("%.4g", p.band.low) + ", " +
                  text::fmt("%.4g", p.band.mid) + ", " + text::fmt("%.4g", p.band.high) + "] " + p.unit +
                  ": " + p.source;
  if (!p.date.empty()) s += " (" + p.date + ")";
  if (p.overridden) s += " [recipe override]";
  return s;
}

std::string join_source(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + "; " + b;
}

Hardware gpu_or_throw(const std::string& gpu_type, const std::string& what) {
  auto h = find_hardware(gpu_type);
  if (!h || h->kind != "gpu") {
    std::string ids;
    for (const auto& id : hardware_ids()) ids += (ids.empty() ? "" : ", ") + id;
    throw std::invalid_argument(what + ": unknown GPU type '" + gpu_type + "' (known: " + ids + ")");
  }
  return *h;
}

// Local name of a provenance (the ledger's to_string lives in ledger.cpp; the cost model does not
// need the SQLite store linked in).
const char* provenance_name(Provenance p) {
  switch (p) {
    case Provenance::measured: return "measured";
    case Provenance::declared: return "declared";
    case Provenance::estimated: return "estimated";
  }
  return "estimated";
}

const PriceBand& price_or_throw(const PriceTable& prices, const std::string& key) {
  try {
    return prices.get(key);
  } catch (const std::out_of_range& e) {
    throw std::invalid_argument(e.what());
  }
}

void add_stage_items(const RunMetering& run, bool failed, const PriceTable& prices,
                     std::vector<CostItem>& out) {
  for (const auto& s : run.stages) {
    const std::string cat = failed ? "failed_runs" : stage_category(s.name);
    const std::string who = failed ? "run " + std::to_string(run.run_id) + " (" + run.status +
                                         ") stage " + s.name
                                   : "stage " + s.name;
    nlohmann::json base_inputs = {{"run_id", run.run_id}, {"run_status", run.status},
                                  {"stage", s.name},      {"stage_status", s.status},
                                  {"wall_s", s.wall_s}};
    if (s.gpu_s > 0) {
      if (run.gpu_type.empty())
        throw std::invalid_argument(who + " metered " + text::fmt("%.6g", s.gpu_s) +
                                    " GPU-seconds but the run names no GPU type");
      const Hardware& hw = gpu_or_throw(run.gpu_type, who);
      const PriceBand& p = price_or_throw(prices, gpu_hour_key(hw.id));
      CostItem c;
      c.category = cat;
      c.description = who + ": " + std::to_string(s.gpu_count) + " x " + hw.id + " GPU time";
      c.quantity = s.gpu_s / 3600.0;
      c.unit = "GPU-hour";
      c.price_low = p.band.low, c.price_mid = p.band.mid, c.price_high = p.band.high;
      c.provenance = Provenance::measured;
      c.formula = "gpu_s / 3600, gpu_s = gpu_count x wall_s (billed time; busy time beside it)";
      c.inputs = base_inputs;
      c.inputs["gpu_s"] = s.gpu_s;
      c.inputs["gpu_count"] = s.gpu_count;
      c.inputs["gpu_busy_s"] = s.gpu_busy_s;
      c.inputs["gpu_type"] = hw.id;
      c.source = join_source("metered here (ledger stages row)", price_note(p));
      out.push_back(c);
    }
    if (s.cpu_s > 0) {
      const PriceBand& p = price_or_throw(prices, price_keys::kCpuHour);
      CostItem c;
      c.category = cat;
      c.description = who + ": CPU time";
      c.quantity = s.cpu_s / 3600.0;
      c.unit = "CPU-hour";
      c.price_low = p.band.low, c.price_mid = p.band.mid, c.price_high = p.band.high;
      c.provenance = Provenance::measured;
      c.formula = "cpu_s / 3600 (process user + system CPU seconds)";
      c.inputs = base_inputs;
      c.inputs["cpu_s"] = s.cpu_s;
      if (s.gpu_s > 0) {
        c.inputs["in_total"] = false;
        c.description += " (inside the GPU-hour price, not added)";
      }
      c.source = join_source("metered here (ledger stages row)", price_note(p));
      out.push_back(c);
    }
    if (s.power_metered && s.energy_j > 0) {
      const PriceBand& pue = price_or_throw(prices, price_keys::kPue);
      const PriceBand& kwh = price_or_throw(prices, price_keys::kKwh);
      const PriceBand& co2 = price_or_throw(prices, price_keys::kCo2PerKwh);
      const double it_kwh = s.energy_j / 3.6e6;
      CostItem e;
      e.category = "energy";
      e.description = who + ": facility energy (already inside rental prices; shown for owners)";
      e.quantity = it_kwh * pue.band.mid;
      e.unit = "kWh";
      e.price_low = kwh.band.low, e.price_mid = kwh.band.mid, e.price_high = kwh.band.high;
      e.provenance = Provenance::measured;
      e.formula = "energy_j / 3.6e6 x PUE (device energy metered; PUE band estimated)";
      e.inputs = base_inputs;
      e.inputs["energy_j"] = s.energy_j;
      e.inputs["device_kwh"] = it_kwh;
      e.inputs["pue"] = band_json(pue.band);
      e.inputs["quantity_low"] = it_kwh * pue.band.low;
      e.inputs["quantity_high"] = it_kwh * pue.band.high;
      e.inputs["in_total"] = false;
      e.inputs["category_of_stage"] = cat;
      e.source = join_source(join_source("NVML power samples metered here", price_note(pue)),
                             price_note(kwh));
      out.push_back(e);
      CostItem c;
      c.category = "co2";
      c.description = who + ": emissions (not priced)";
      c.quantity = it_kwh * pue.band.mid * co2.band.mid;
      c.unit = "kg CO2e";
      c.provenance = Provenance::estimated;
      c.formula = "energy_j / 3.6e6 x PUE x grid intensity";
      c.inputs = base_inputs;
      c.inputs["device_kwh"] = it_kwh;
      c.inputs["pue"] = band_json(pue.band);
      c.inputs["kg_per_kwh"] = band_json(co2.band);
      c.inputs["quantity_low"] = it_kwh * pue.band.low * co2.band.low;
      c.inputs["quantity_high"] = it_kwh * pue.band.high * co2.band.high;
      c.inputs["in_total"] = false;
      c.source = join_source(price_note(pue), price_note(co2));
      out.push_back(c);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void validate(const ArchSpec& a) {
  require(a.vocab > 0, "vocab", "must be > 0");
  require(a.hidden > 0, "hidden", "must be > 0");
  require(a.layers > 0, "layers", "must be > 0");
  require(a.heads > 0, "heads", "must be > 0");
  if (a.is_mla()) {
    require(a.qk_nope_head_dim + a.qk_rope_head_dim > 0, "qk_nope_head_dim",
            "MLA needs qk_nope_head_dim + qk_rope_head_dim > 0");
    require(a.v_head_dim > 0, "v_head_dim", "MLA needs v_head_dim > 0");
    require(a.q_lora_rank >= 0, "q_lora_rank", "must be >= 0");
  } else {
    require(a.kv_heads > 0, "kv_heads", "must be > 0");
    require(a.head_dim > 0, "head_dim", "must be > 0");
    require(a.heads % a.kv_heads == 0, "kv_heads", "must divide heads");
  }
  if (a.is_moe()) {
    require(a.expert_ffn > 0, "expert_ffn", "an MoE needs expert_ffn > 0");
    require(a.top_k >= 1 && a.top_k <= a.routed_experts, "top_k",
            "must lie in [1, routed_experts]");
    require(a.shared_experts >= 0, "shared_experts", "must be >= 0");
    require(a.shared_expert_ffn >= 0, "shared_expert_ffn", "must be >= 0");
    require(a.first_dense_layers >= 0 && a.first_dense_layers <= a.layers, "first_dense_layers",
            "must lie in [0, layers]");
    require(a.first_dense_layers == 0 || a.ffn > 0, "ffn", "dense layers need ffn > 0");
  } else {
    require(a.ffn > 0, "ffn", "must be > 0");
  }
  require(a.mtp_depth >= 0, "mtp_depth", "must be >= 0");
}

ParamCount count_parameters(const ArchSpec& a) {
  validate(a);
  ParamCount p;
  const int64_t h = a.hidden;
  const int64_t dense_layers = a.is_moe() ? a.first_dense_layers : a.layers;
  const int64_t moe_layers = a.layers - dense_layers;
  const int64_t expert = a.is_moe() ? swiglu(h, a.expert_ffn) : 0;
  const int64_t shared_width =
      a.shared_expert_ffn > 0 ? a.shared_expert_ffn : a.shared_experts * a.expert_ffn;
  const int64_t shared_per_layer =
      a.is_moe() && a.shared_experts > 0
          ? swiglu(h, shared_width) + (a.shared_expert_gate ? h : 0)
          : 0;
  const int64_t router_per_layer =
      a.is_moe() ? a.routed_experts * h + (a.router_bias ? a.routed_experts : 0) : 0;

  p.embedding = a.vocab * h;
  p.lm_head = a.tie_embeddings ? 0 : a.vocab * h;
  p.attention = a.layers * attention_per_layer(a);
  p.dense_ffn = dense_layers * swiglu(h, a.ffn);
  p.routed_experts = moe_layers * a.routed_experts * expert;
  p.shared_experts = moe_layers * shared_per_layer;
  p.router = moe_layers * router_per_layer;
  p.norms = a.layers * 2 * h + h;
  p.total = p.embedding + p.lm_head + p.attention + p.dense_ffn + p.routed_experts +
            p.shared_experts + p.router + p.norms;
  p.active = p.total - p.routed_experts + moe_layers * a.top_k * expert;

  if (a.mtp_depth > 0) {
    // One MTP module: enorm + hnorm, eh_proj (2h -> h), one transformer block (an MoE block when
    // the model is MoE), its output norm; embedding and output head are shared with the model.
    const int64_t block_attn = attention_per_layer(a) + 2 * h;
    const int64_t block_ffn_total =
        a.is_moe() ? a.routed_experts * expert + shared_per_layer + router_per_layer
                   : swiglu(h, a.ffn);
    const int64_t block_ffn_active =
        a.is_moe() ? a.top_k * expert + shared_per_layer + router_per_layer : swiglu(h, a.ffn);
    const int64_t glue = 2 * h + 2 * h * h + h;
    p.mtp_total = a.mtp_depth * (glue + block_attn + block_ffn_total);
    p.mtp_active = a.mtp_depth * (glue + block_attn + block_ffn_active);
  }

  std::string c = "embedding (vocab x hidden)";
  c += a.tie_embeddings ? ", output head tied to it" : " + untied output head";
  if (a.is_mla()) {
    c += "; MLA attention (q low-rank " + std::to_string(a.q_lora_rank) + " with its RMSNorm, " +
         "kv latent " + std::to_string(a.kv_lora_rank) + " + decoupled RoPE key with its RMSNorm, " +
         "kv_b and o projections), no biases";
  } else {
    c += "; GQA attention q/k/v/o";
    c += a.qkv_bias ? " with q/k/v biases" : ", no biases";
  }
  if (a.is_moe()) {
    c += "; " + std::to_string(dense_layers) + " dense SwiGLU layers + " +
         std::to_string(moe_layers) + " MoE layers (" + std::to_string(a.routed_experts) +
         " routed + " + std::to_string(a.shared_experts) + " shared SwiGLU experts" +
         (a.shared_expert_ffn > 0 ? " of width " + std::to_string(a.shared_expert_ffn) : "") +
         (a.shared_expert_gate ? " with a sigmoid gate" : "") + ", router" +
         (a.router_bias ? " with score-correction bias" : "") + ")";
    c += "; active = all but the routed experts a token skips (top-" + std::to_string(a.top_k) +
         " of " + std::to_string(a.routed_experts) + "), embedding and head counted";
  } else {
    c += "; SwiGLU FFN (gate, up, down) without biases";
  }
  c += "; two RMSNorm weights per layer + final RMSNorm";
  if (a.mtp_depth > 0)
    c += "; " + std::to_string(a.mtp_depth) +
         " MTP module(s) counted apart (block + eh_proj + 3 norms; embedding/head shared)";
  p.counted = c;
  return p;
}

nlohmann::json to_json(const ParamCount& p) {
  return {{"embedding", p.embedding},       {"lm_head", p.lm_head},
          {"attention", p.attention},       {"dense_ffn", p.dense_ffn},
          {"routed_experts", p.routed_experts}, {"shared_experts", p.shared_experts},
          {"router", p.router},             {"norms", p.norms},
          {"total", p.total},               {"active", p.active},
          {"mtp_total", p.mtp_total},       {"mtp_active", p.mtp_active},
          {"counted", p.counted}};
}

// ---------------------------------------------------------------------------------------------

double training_flops(double n_active, double tokens, bool full_recompute) {
  return (full_recompute ? 8.0 : 6.0) * n_active * tokens;
}

double inference_flops(double n_active, double tokens) { return 2.0 * n_active * tokens; }

double attention_training_flops_per_token(const ArchSpec& a, double seq_len) {
  const double d = a.is_mla()
                       ? 0.5 * static_cast<double>(a.qk_nope_head_dim + a.qk_rope_head_dim +
                                                   a.v_head_dim)
                       : static_cast<double>(a.head_dim);
  return 12.0 * static_cast<double>(a.layers) * static_cast<double>(a.heads) * d * seq_len;
}

double implied_mfu(double flops, double devices, double seconds, double peak_flops) {
  if (flops <= 0 || devices <= 0 || seconds <= 0 || peak_flops <= 0) return 0;
  return flops / (devices * seconds * peak_flops);
}

MfuVerdict judge_mfu(double mfu) {
  MfuVerdict v;
  v.mfu = mfu;
  const std::string pct = text::fmt("%.1f%%", 100.0 * mfu);
  if (!(mfu > 0) || !std::isfinite(mfu)) {
    v.verdict = "unknown";
    v.reason = "the claim does not state enough (GPUs, hours, tokens) to compute utilization";
  } else if (mfu > kMfuImpossible) {
    v.verdict = "impossible";
    v.reason = "the stated GPU time would have to deliver " + pct +
               " of the hardware's peak dense FLOP/s; no hardware exceeds its peak, so the "
               "stated time, GPU count or token count cannot all be right";
  } else if (mfu > kMfuImplausible) {
    v.verdict = "implausible";
    v.reason = pct + " of peak is above 60%; the best published large-model training runs "
                     "sustain about 40-55% (Llama 3 38-43%, PaLM 46%, MegaScale 55%)";
  } else {
    v.verdict = "plausible";
    v.reason = pct + " of peak is within what published training runs sustain (<= 60%)";
    if (mfu < 0.05)
      v.reason += "; it is low, so the stated time leaves room for far more work than 6*N*D "
                  "counts, or the hardware was poorly used";
  }
  return v;
}

double gpu_hours_for(double flops, double peak_flops, double mfu) {
  if (peak_flops <= 0 || mfu <= 0) return 0;
  return flops / (peak_flops * mfu) / 3600.0;
}

// ---------------------------------------------------------------------------------------------

std::string stage_category(const std::string& n) {
  auto starts = [&](const char* p) { return n.rfind(p, 0) == 0; };
  // Repeats of the final run with other seeds, made only to measure the spread of the
  // evaluation: the claimed run is one run, so they are evaluation cost, not final-run cost.
  if (starts("repeat-")) return "evaluation";
  // "launch": the claimant's own command run under [launch] (reproduce/launch) is the final run.
  if (starts("sft") || starts("grpo") || starts("rl") || starts("train") || starts("finetune") ||
      starts("launch"))
    return "final_run";
  if (starts("pretrain")) return "base_model";
  if (starts("distill") || starts("teacher") || starts("generate")) return "data_generation";
  if (starts("select") || starts("filter") || starts("judge") || starts("decontam"))
    return "filtering";
  if (starts("eval")) return "evaluation";
  if (starts("search") || starts("sweep") || starts("ablation")) return "search";
  return "other";
}

CostItem price_extra(const ExtraItem& e, const PriceTable& prices) {
  CostItem c;
  c.category = e.category;
  c.description = e.description;
  c.quantity = e.quantity;
  c.unit = e.unit;
  c.provenance = e.provenance;
  c.formula = e.formula.empty() ? (e.provenance == Provenance::declared ? "as stated by the claim"
                                                                        : "estimate")
                                : e.formula;
  c.inputs = e.inputs.is_object() ? e.inputs : nlohmann::json::object();
  if (e.quantity_low >= 0) c.inputs["quantity_low"] = e.quantity_low;
  if (e.quantity_high >= 0) c.inputs["quantity_high"] = e.quantity_high;
  std::string price_src;
  if (e.price) {
    c.price_low = e.price->low, c.price_mid = e.price->mid, c.price_high = e.price->high;
    price_src = "price [" + text::fmt("%.4g", e.price->low) + ", " + text::fmt("%.4g", e.price->mid) + ", " +
                text::fmt("%.4g", e.price->high) + "] USD/" + e.unit +
                (e.price_source.empty() ? "" : ": " + e.price_source);
  } else if (e.unit == "USD") {
    c.price_low = c.price_mid = c.price_high = 1.0;
  } else {
    std::string key = e.price_key;
    if (key.empty()) {
      if (e.unit == "GPU-hour") {
        const Hardware& hw = gpu_or_throw(e.gpu_type, "cost line '" + e.description + "'");
        key = gpu_hour_key(hw.id);
        c.inputs["gpu_type"] = hw.id;
      } else if (e.unit == "CPU-hour") {
        key = price_keys::kCpuHour;
      } else if (e.unit == "1M tokens") {
        key = price_keys::kTeacherOutput;
      } else if (e.unit == "kWh") {
        key = price_keys::kKwh;
      } else if (e.unit == "hour") {
        key = price_keys::kExpertHour;
      } else {
        throw std::invalid_argument("cost line '" + e.description + "': unit '" + e.unit +
                                    "' has no default price; give a price band");
      }
    }
    const PriceBand& p = price_or_throw(prices, key);
    c.price_low = p.band.low, c.price_mid = p.band.mid, c.price_high = p.band.high;
    c.inputs["price_key"] = key;
    price_src = price_note(p);
  }
  c.source = join_source(e.source, price_src);
  return c;
}

std::vector<CostItem> build_cost_items(const CostInputs& in, const PriceTable& prices) {
  std::vector<CostItem> out;

  if (in.claim) {
    const ClaimFigures& cl = *in.claim;
    if (cl.usd > 0) {
      CostItem c;
      c.category = "claimed";
      c.description = "the claim's headline" + (cl.headline.empty() ? "" : ": " + cl.headline);
      c.quantity = cl.usd;
      c.unit = "USD";
      c.price_low = c.price_mid = c.price_high = 1.0;
      c.provenance = Provenance::declared;
      c.formula = "as stated";
      c.inputs = {{"headline", cl.headline}, {"usd", cl.usd}, {"in_total", false}};
      if (cl.gpu_hour_usd > 0) c.inputs["assumed_gpu_hour_usd"] = cl.gpu_hour_usd;
      c.source = cl.source;
      out.push_back(c);
    }
    double gh = cl.gpu_hours > 0 ? cl.gpu_hours : cl.gpu_count * cl.wall_hours;
    if (gh > 0) {
      const Hardware& hw = gpu_or_throw(cl.gpu_type, "claim '" + cl.name + "'");
      const PriceBand& p = price_or_throw(prices, gpu_hour_key(hw.id));
      CostItem c;
      c.category = in.claim_as_final_run ? "final_run" : "claimed_compute";
      c.description = "claimed run: " +
                      (cl.gpu_count > 0 && cl.wall_hours > 0
                           ? text::fmt("%.0f", cl.gpu_count) + " x " + hw.id + " for " +
                                 text::fmt("%.4g", cl.wall_hours) + " h"
                           : text::fmt("%.6g", gh) + " " + hw.id + " GPU-hours") +
                      (in.claim_as_final_run ? " (as stated, not measured)" : " (as stated)");
      c.quantity = gh;
      c.unit = "GPU-hour";
      c.price_low = p.band.low, c.price_mid = p.band.mid, c.price_high = p.band.high;
      c.provenance = Provenance::declared;
      c.formula = cl.gpu_hours > 0 ? "GPU-hours as stated" : "gpu_count x wall_hours";
      c.inputs = {{"gpu_type", hw.id}, {"gpu_count", cl.gpu_count}, {"wall_hours", cl.wall_hours},
                  {"gpu_hours", gh}};
      if (cl.gpu_hour_usd > 0) c.inputs["assumed_gpu_hour_usd"] = cl.gpu_hour_usd;
      if (!in.claim_as_final_run) c.inputs["in_total"] = false;
      c.source = join_source(cl.source, price_note(p));
      out.push_back(c);
    }
  }

  if (in.final_run) add_stage_items(*in.final_run, false, prices, out);
  for (const auto& r : in.failed_runs) add_stage_items(r, true, prices, out);

  if (in.base) {
    const BaseModelEstimate& b = *in.base;
    const Hardware& hw = gpu_or_throw(b.gpu_type, "base model '" + b.name + "'");
    if (!(b.mfu.low > 0) || !b.mfu.ordered() || b.mfu.high > 1.0)
      throw std::invalid_argument("base model '" + b.name + "': MFU band must lie in (0, 1]");
    const PriceBand& p = price_or_throw(prices, gpu_hour_key(hw.id));
    const double flops = training_flops(b.n_active, b.tokens);
    CostItem c;
    c.category = "base_model";
    c.description = "pretraining of the base model " + b.name + " (not trained here)";
    c.quantity = gpu_hours_for(flops, hw.bf16_dense_flops, b.mfu.mid);
    c.unit = "GPU-hour";
    c.price_low = p.band.low, c.price_mid = p.band.mid, c.price_high = p.band.high;
    c.provenance = Provenance::estimated;
    c.formula = "6*N*D / (peak_bf16_dense x MFU) / 3600 GPU-hours";
    c.inputs = {{"N", b.n_active},
                {"D", b.tokens},
                {"flops", flops},
                {"gpu_type", hw.id},
                {"peak_bf16_dense_flops", hw.bf16_dense_flops},
                {"mfu", band_json(b.mfu)},
                {"quantity_low", gpu_hours_for(flops, hw.bf16_dense_flops, b.mfu.high)},
                {"quantity_high", gpu_hours_for(flops, hw.bf16_dense_flops, b.mfu.low)}};
    c.source = join_source(join_source("D: " + b.tokens_source, "MFU: " + b.mfu_source),
                           join_source(hw.source, price_note(p)));
    out.push_back(c);
  }

  for (const auto& e : in.extras) out.push_back(price_extra(e, prices));
  return out;
}

Band quantity_band(const CostItem& c) {
  Band q = Band::point(c.quantity);
  if (c.inputs.is_object()) {
    if (c.inputs.contains("quantity_low") && c.inputs["quantity_low"].is_number())
      q.low = c.inputs["quantity_low"].get<double>();
    if (c.inputs.contains("quantity_high") && c.inputs["quantity_high"].is_number())
      q.high = c.inputs["quantity_high"].get<double>();
  }
  return q;
}

Band item_cost(const CostItem& c) {
  return quantity_band(c) * Band(c.price_low, c.price_mid, c.price_high);
}

bool in_full_total(const CostItem& c) {
  if (c.category == "claimed" || c.category == "claimed_compute") return false;
  if (c.inputs.is_object() && c.inputs.contains("in_total") && c.inputs["in_total"].is_boolean())
    return c.inputs["in_total"].get<bool>();
  return true;
}

CostTotals cost_totals(const std::vector<CostItem>& items) {
  CostTotals t;
  Band claimed_usd, claimed_compute, declared_final;
  bool has_usd = false, has_compute = false, has_declared_final = false;
  std::map<std::string, Band> cats;
  for (const auto& c : items) {
    const Band cost = item_cost(c);
    if (c.category == "claimed") {
      claimed_usd = claimed_usd + cost;
      has_usd = true;
    } else if (c.category == "claimed_compute") {
      claimed_compute = claimed_compute + cost;
      has_compute = true;
    }
    if (c.category == "final_run" && in_full_total(c)) {
      t.final_run = t.final_run + cost;
      if (c.provenance == Provenance::declared) {
        declared_final = declared_final + cost;
        has_declared_final = true;
      }
    }
    if (in_full_total(c)) {
      t.full = t.full + cost;
      cats[c.category] = cats[c.category] + cost;
    }
  }
  if (has_usd) {
    t.claimed_known = true;
    t.claimed = claimed_usd;
    t.claimed_basis = "the claim's headline dollars";
  } else if (has_compute || has_declared_final) {
    t.claimed_known = true;
    t.claimed = has_compute ? claimed_compute : declared_final;
    t.claimed_basis = "the claim's GPU-hours x price band";
  }
  for (const auto& [k, v] : cats) t.by_category[k] = band_json(v);
  return t;
}

nlohmann::json to_json(const CostTotals& t) {
  nlohmann::json j = {{"final_run", band_json(t.final_run)},
                      {"full", band_json(t.full)},
                      {"by_category", t.by_category}};
  j["claimed"] = t.claimed_known ? band_json(t.claimed) : nlohmann::json(nullptr);
  j["claimed_basis"] = t.claimed_basis;
  return j;
}

nlohmann::json cost_item_json(const CostItem& c) {
  const Band q = quantity_band(c);
  const Band cost = item_cost(c);
  return {{"category", c.category},
          {"description", c.description},
          {"quantity", c.quantity},
          {"quantity_band", band_json(q)},
          {"unit", c.unit},
          {"price", band_json(Band(c.price_low, c.price_mid, c.price_high))},
          {"cost_usd", band_json(cost)},
          {"provenance", provenance_name(c.provenance)},
          {"formula", c.formula},
          {"inputs", c.inputs},
          {"source", c.source},
          {"in_total", in_full_total(c)}};
}

}  // namespace audit::ledger
