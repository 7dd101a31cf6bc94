// The paper-only audit of a recipe (`audit estimate`): maps the recipe onto the cost model
// (ledger/costs/cost_model.h), computes compute, implied utilization and its verdict, and the cost rows
// with claimed / final-run / full totals. See reproduce/estimate/estimate.h and docs/cost-model.md.
#include "reproduce/estimate/estimate.h"
#include "common/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace audit::reproduce {
namespace {

using ledger::Band;

std::string num(double v) {
  if (v == 0) return "0";
  double a = std::fabs(v);
  if (a >= 1e6 || a < 1e-3) {  // 3.276e10 rather than 3.28e+10
    std::string t = text::fmt("%.4g", v);
    auto epos = t.find('e');
    if (epos == std::string::npos) return t;
    std::string mant = t.substr(0, epos), ex = t.substr(epos + 1);
    std::string sign = ex[0] == '-' ? "-" : "";
    ex = ex.substr(ex[0] == '+' || ex[0] == '-' ? 1 : 0);
    while (ex.size() > 1 && ex[0] == '0') ex.erase(0, 1);
    return mant + "e" + sign + ex;
  }
  if (a >= 100) return text::fmt("%.0f", v);
  return text::fmt("%.4g", v);
}

std::string value_text(double v, const std::string& unit) {
  if (unit == "USD") return text::money(v);
  if (unit == "fraction of peak" || unit == "fraction") return text::fmt("%.1f%%", 100 * v);
  return num(v);
}

bool is_point(const Band& b) { return b.low == b.mid && b.mid == b.high; }

std::string band_text(const Band& b, const std::string& unit) {
  std::string u =
      (unit == "USD" || unit == "fraction of peak" || unit == "fraction") ? "" : " " + unit;
  if (is_point(b)) return value_text(b.mid, unit) + u;
  return value_text(b.mid, unit) + u + " (band " + value_text(b.low, unit) + " - " +
         value_text(b.high, unit) + ")";
}

InputError recipe_error(const recipe::Recipe& r, const std::string& key, const std::string& what) {
  return InputError(r.path, 0, 0, key, what);
}

ledger::Provenance provenance_of(const std::string& s) {
  if (s == "measured") return ledger::Provenance::measured;
  if (s == "estimated") return ledger::Provenance::estimated;
  return ledger::Provenance::declared;
}

Band band_of(const recipe::Band& b) { return Band(b.low, b.mid, b.high); }

std::string claim_gpu_type(const recipe::Recipe& r) {
  return r.hardware.gpu_type.empty() ? r.claim.gpu_type : r.hardware.gpu_type;
}

double median_of(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? static_cast<double>(v[n / 2]) : 0.5 * static_cast<double>(v[n / 2 - 1] + v[n / 2]);
}

std::string sources_text(const recipe::ClaimSection& c) {
  return c.sources.empty() ? std::string("the recipe's [claim]") : c.sources.front();
}

}  // namespace

const EstimateLine* Estimate::line(const std::string& key) const {
  for (const auto& l : lines) {
    if (l.key == key) return &l;
  }
  return nullptr;
}

ledger::ArchSpec arch_from_recipe(const recipe::BaseSection& b) {
  ledger::ArchSpec a = arch_from_settings(b);
  a.name = b.name;
  return a;
}

ledger::ArchSpec arch_from_settings(const settings::ModelSettings& b) {
  ledger::ArchSpec a;
  a.vocab = b.vocab;
  a.hidden = b.hidden;
  a.layers = b.layers;
  a.heads = b.heads;
  a.kv_heads = b.kv_heads;
  a.head_dim = b.head_dim;
  a.ffn = b.ffn;
  a.qkv_bias = b.qkv_bias;
  a.tie_embeddings = b.tie_embeddings;
  a.routed_experts = b.routed_experts;
  a.shared_experts = b.shared_experts;
  a.top_k = b.top_k;
  a.expert_ffn = b.expert_ffn;
  a.shared_expert_ffn = b.shared_expert_ffn;
  a.shared_expert_gate = b.arch == "qwen2_moe" && b.shared_experts > 0;
  a.first_dense_layers = b.first_dense_layers;
  a.router_bias = b.routed_experts > 0 && b.score_func == "sigmoid";
  a.q_lora_rank = b.q_lora_rank;
  a.kv_lora_rank = b.kv_lora_rank;
  a.qk_nope_head_dim = b.qk_nope_head_dim;
  a.qk_rope_head_dim = b.qk_rope_head_dim;
  a.v_head_dim = b.v_head_dim;
  a.mtp_depth = b.mtp_depth;
  return a;
}

ledger::PriceTable prices_from_recipe(const recipe::Recipe& r) {
  namespace k = ledger::price_keys;
  ledger::PriceTable t = ledger::PriceTable::defaults();
  auto apply = [&](const char* recipe_key, const recipe::Band& b, const std::string& table_key) {
    if (!b.set) return;
    try {
      t.set(table_key, band_of(b), b.source.empty() ? "recipe [prices]." + std::string(recipe_key)
                                                    : b.source,
            "recipe");
    } catch (const std::invalid_argument& e) {
      throw recipe_error(r, std::string("prices.") + recipe_key, e.what());
    }
  };
  if (r.prices.gpu_hour_usd.set) {
    auto hw = ledger::find_hardware(claim_gpu_type(r));
    if (!hw || hw->kind != "gpu")
      throw recipe_error(r, "prices.gpu_hour_usd",
                         "prices the claimed GPU type, but '" + claim_gpu_type(r) +
                             "' is not in the hardware table");
    apply("gpu_hour_usd", r.prices.gpu_hour_usd, ledger::gpu_hour_key(hw->id));
  }
  apply("cpu_hour_usd", r.prices.cpu_hour_usd, k::kCpuHour);
  apply("api_usd_per_mtok", r.prices.api_usd_per_mtok, k::kTeacherOutput);
  apply("kwh_usd", r.prices.kwh_usd, k::kKwh);
  apply("pue", r.prices.pue, k::kPue);
  apply("co2_kg_per_kwh", r.prices.co2_kg_per_kwh, k::kCo2PerKwh);
  apply("expert_hour_usd", r.prices.expert_hour_usd, k::kExpertHour);
  apply("base_mfu", r.prices.base_mfu, k::kBaseMfu);
  return t;
}

EstimateLine claimed_tokens(const recipe::Recipe& r, const MeasuredTokens* measured) {
  EstimateLine l;
  l.key = "tokens";
  l.label = "tokens processed by the claimed run (D)";
  l.unit = "tokens";
  if (r.claim.stage == "pretrain") {
    l.value = Band::point(r.base.pretrain_tokens);
    l.provenance = "declared";
    l.formula = "base.pretrain_tokens";
    l.inputs = {{"pretrain_tokens", r.base.pretrain_tokens}};
    l.note = r.base.pretrain_source;
    return l;
  }
  const double epochs = static_cast<double>(r.train.epochs);
  if (measured) {
    l.value = Band::point(measured->samples * epochs * measured->mean);
    l.provenance = "measured";
    l.formula = "samples in the training file x epochs x measured mean tokens per sample";
    l.inputs = {{"samples", measured->samples},
                {"epochs", r.train.epochs},
                {"mean_tokens_per_sample", ledger::to_json(Band::point(measured->mean))},
                {"length_from", "measured: " + measured->source},
                {"packing", r.train.packing}};
    l.note = measured->source;
    if (!r.train.packing) l.note += "; padding not counted";
    return l;
  }
  const double samples = static_cast<double>(r.data.select_n);
  Band len;
  std::string len_from;
  if (r.data.seq_len_mean.set) {
    len = band_of(r.data.seq_len_mean);
    len_from = "data.seq_len_mean";
    l.note = r.data.seq_len_source;
  } else if (!r.replay.seq_lens.empty()) {
    const auto [mn, mx] = std::minmax_element(r.replay.seq_lens.begin(), r.replay.seq_lens.end());
    len = Band(static_cast<double>(*mn), median_of(r.replay.seq_lens), static_cast<double>(*mx));
    len_from = "replay.seq_lens (min, median, max): the mean length is not published";
    l.note = r.data.seq_len_source.empty() ? "length profile unknown" : r.data.seq_len_source;
  } else {
    const double bs = static_cast<double>(r.train.block_size);
    len = Band(bs / 16, bs / 4, bs);
    len_from = "train.block_size / 16, / 4, x 1: the length profile is unknown";
    l.note = "length profile unknown: a wide band bounded by the block size";
  }
  l.value = len * (samples * epochs);
  l.provenance = "estimated";
  l.formula = "select_n x epochs x mean tokens per sample";
  l.inputs = {{"select_n", r.data.select_n},
              {"epochs", r.train.epochs},
              {"mean_tokens_per_sample", ledger::to_json(len)},
              {"length_from", len_from},
              {"packing", r.train.packing}};
  if (!r.train.packing) l.note += (l.note.empty() ? "" : "; ") + std::string("padding not counted");
  return l;
}

namespace {

EstimateLine make_line(std::string key, std::string label, Band value, std::string unit,
                       std::string provenance, std::string formula,
                       nlohmann::json inputs = nlohmann::json::object(), std::string note = "") {
  EstimateLine l;
  l.key = std::move(key);
  l.label = std::move(label);
  l.value = value;
  l.unit = std::move(unit);
  l.provenance = std::move(provenance);
  l.formula = std::move(formula);
  l.inputs = std::move(inputs);
  l.note = std::move(note);
  return l;
}

// implied_mfu over a FLOP band.
Band mfu_band(const Band& flops, double gpus, double seconds, double peak) {
  return Band(ledger::implied_mfu(flops.low, gpus, seconds, peak),
              ledger::implied_mfu(flops.mid, gpus, seconds, peak),
              ledger::implied_mfu(flops.high, gpus, seconds, peak));
}

// Parameters counted from [base], against the published figures.
void add_model_lines(const recipe::Recipe& r, Estimate& e) {
  e.arch = arch_from_recipe(r.base);
  try {
    e.params = ledger::count_parameters(e.arch);
  } catch (const std::invalid_argument& ex) {
    throw recipe_error(r, "base", ex.what());
  }
  const double n_total = static_cast<double>(e.params.total);
  const double n_active = static_cast<double>(e.params.active);
  auto l = make_line("params_total", "parameters of " + r.base.name + " (counted from [base])",
                     Band::point(n_total), "parameters", "declared",
                     "sum over the architecture's tensors", ledger::to_json(e.params),
                     e.params.counted);
  if (r.base.declared_params > 0)
    l.note += "; published " + num(r.base.declared_params) + " (" +
              text::fmt("%+.1f%%", 100 * (n_total / r.base.declared_params - 1)) + ")";
  e.lines.push_back(l);
  if (!e.arch.is_moe() && e.params.mtp_total <= 0) return;
  l = make_line("params_active", "active parameters per token (N)", Band::point(n_active),
                "parameters", "declared",
                "total - routed experts + top_k of routed_experts per MoE layer",
                {{"top_k", e.arch.top_k}, {"routed_experts", e.arch.routed_experts}});
  if (r.base.declared_active_params > 0)
    l.note = "published " + num(r.base.declared_active_params) + " (" +
             text::fmt("%+.1f%%", 100 * (n_active / r.base.declared_active_params - 1)) + ")";
  if (e.params.mtp_total > 0)
    l.note += std::string(l.note.empty() ? "" : "; ") + "MTP module(s) add " +
              num(static_cast<double>(e.params.mtp_total)) + " parameters (" +
              num(static_cast<double>(e.params.mtp_active)) +
              " active), not in N: 6*N*D leaves the MTP compute out";
  e.lines.push_back(l);
}

// The claimed GPU type, from the hardware table (bad input when unknown).
ledger::Hardware claim_hardware(const recipe::Recipe& r) {
  const std::string gpu_type = claim_gpu_type(r);
  auto hw = ledger::find_hardware(gpu_type);
  if (!hw || hw->kind != "gpu") {
    std::string ids;
    for (const auto& id : ledger::hardware_ids()) ids += (ids.empty() ? "" : ", ") + id;
    throw recipe_error(r, r.hardware.gpu_type.empty() ? "claim.gpu_type" : "hardware.gpu_type",
                       "GPU type '" + gpu_type + "' is not in the hardware table (known: " + ids +
                           ")");
  }
  return *hw;
}

// D, 6·N·D (and 8·N·D with recompute), and the attention term 6·N·D leaves out.
void add_compute_lines(const recipe::Recipe& r, Estimate& e, const MeasuredTokens* measured) {
  const double n_active = static_cast<double>(e.params.active);
  EstimateLine tokens = claimed_tokens(r, measured);
  e.tokens = tokens.value;
  e.lines.push_back(tokens);
  e.train_flops = e.tokens * ledger::training_flops(n_active, 1.0);
  e.hardware_flops = r.train.recompute ? e.tokens * ledger::training_flops(n_active, 1.0, true)
                                       : e.train_flops;
  const nlohmann::json nd = {{"N", n_active}, {"D", ledger::to_json(e.tokens)}};
  e.lines.push_back(make_line("train_flops", "compute of the claimed run (model FLOPs)",
                              e.train_flops, "FLOP", "estimated", "6 x N x D", nd));
  if (r.train.recompute)
    e.lines.push_back(make_line("hardware_flops",
                                "with full activation recompute (hardware FLOPs)",
                                e.hardware_flops, "FLOP", "estimated",
                                "8 x N x D (train.recompute = true)", nd));
  // The attention-score term 6·N·D leaves out, at the mean length, as a share of 6·N·D.
  Band len = Band::point(static_cast<double>(r.train.block_size));
  if (r.claim.stage == "pretrain") {
    if (r.data.seq_len_mean.set) len = band_of(r.data.seq_len_mean);
  } else {
    const auto& m = tokens.inputs["mean_tokens_per_sample"];
    len = Band(m[0].get<double>(), m[1].get<double>(), m[2].get<double>());
  }
  auto share_at = [&](double l) {
    return ledger::attention_training_flops_per_token(e.arch, l) / (6 * n_active);
  };
  e.lines.push_back(make_line(
      "attention_share", "attention-score FLOPs 6*N*D leaves out (share of 6*N*D)",
      Band(share_at(len.low), share_at(len.mid), share_at(len.high)), "fraction", "estimated",
      "12 x layers x heads x head_dim x seq_len / (6 x N) (PaLM convention, non-causal)",
      {{"layers", e.arch.layers}, {"heads", e.arch.heads}, {"seq_len", ledger::to_json(len)}},
      "not counted in the utilization verdict (which would only rise)"));
}

// The GPU-hours the claim states and the utilization they imply, with its verdict.
void add_utilization_lines(const recipe::Recipe& r, Estimate& e) {
  const ledger::Hardware& hw = e.hardware;
  e.gpu_hours = recipe::claimed_gpu_hours(r.claim);
  e.lines.push_back(make_line(
      "gpu_hours", "GPU-hours the claim states", Band::point(e.gpu_hours), hw.id + "-hour",
      "declared", r.claim.gpu_hours > 0 ? "claim.gpu_hours" : "claim.gpu_count x claim.wall_hours",
      {{"gpu_count", r.claim.gpu_count},
       {"wall_hours", r.claim.wall_hours},
       {"gpu_hours", r.claim.gpu_hours}},
      sources_text(r.claim)));
  e.mfu_gpu_hours = e.gpu_hours;
  std::string hours_basis = "all GPU-hours stated";
  if (r.claim.stage == "pretrain")
    for (const auto& p : r.claim.phases)
      if (p.phase == "pretraining" && p.gpu_hours > 0) {
        e.mfu_gpu_hours = p.gpu_hours;
        hours_basis = "the pretraining phase's GPU-hours (" + p.source + "), the phase D belongs to";
      }
  const double peak = hw.bf16_dense_flops;
  const double seconds = e.mfu_gpu_hours * 3600.0;
  e.mfu = mfu_band(e.train_flops, 1, seconds, peak);
  e.hfu = mfu_band(e.hardware_flops, 1, seconds, peak);
  e.verdict = ledger::judge_mfu(e.mfu.mid);
  if (e.hfu.mid > ledger::kMfuImpossible && e.verdict.verdict != "impossible") {
    e.verdict.verdict = "impossible";
    e.verdict.reason = "with full recompute the hardware would execute " +
                       text::fmt("%.1f%%", 100 * e.hfu.mid) + " of peak, more than it can";
  }
  if (!is_point(e.mfu) && e.verdict.verdict != "unknown") {
    const auto lo = ledger::judge_mfu(e.mfu.low), hi = ledger::judge_mfu(e.mfu.high);
    if (lo.verdict != e.verdict.verdict || hi.verdict != e.verdict.verdict)
      e.verdict.reason += "; across the token band it ranges from " + lo.verdict + " (" +
                          text::fmt("%.1f%%", 100 * e.mfu.low) + ") to " + hi.verdict + " (" +
                          text::fmt("%.1f%%", 100 * e.mfu.high) + ")";
  }
  e.lines.push_back(make_line("implied_mfu", "utilization implied (of " + hw.id + " bf16 dense peak)",
                              e.mfu, "fraction of peak", "estimated",
                              "6*N*D / (GPU-hours x 3600 x peak_bf16_dense)",
                              {{"flops", ledger::to_json(e.train_flops)},
                               {"gpu_hours", e.mfu_gpu_hours},
                               {"gpu_hours_basis", hours_basis},
                               {"peak_bf16_dense_flops", peak},
                               {"peak_source", hw.source}},
                              e.verdict.verdict + ": " + e.verdict.reason));
  if (r.train.recompute)
    e.lines.push_back(make_line("implied_hfu", "hardware utilization implied (with recompute)",
                                e.hfu, "fraction of peak", "estimated",
                                "8*N*D / (GPU-hours x 3600 x peak_bf16_dense)",
                                {{"gpu_hours", e.mfu_gpu_hours}, {"peak_bf16_dense_flops", peak}}));
  if (r.train.precision == "fp8" && hw.fp8_dense_flops > 0)
    e.lines.push_back(make_line(
        "implied_mfu_fp8", "utilization implied against the fp8 dense peak (training ran in fp8)",
        e.train_flops * (1.0 / (seconds * hw.fp8_dense_flops)), "fraction of peak", "estimated",
        "6*N*D / (GPU-hours x 3600 x peak_fp8_dense)",
        {{"peak_fp8_dense_flops", hw.fp8_dense_flops}},
        "fp8 covers the matmuls only; the bf16 figure is the usual convention"));
}

// The claim's reference runs (e.g. the repository's own run), and the utilization each implies.
void add_reference_run_lines(const recipe::Recipe& r, Estimate& e) {
  for (const auto& rr : r.claim.reference_runs) {
    auto rhw = ledger::find_hardware(rr.gpu_type.empty() ? claim_gpu_type(r) : rr.gpu_type);
    if (!rhw || rhw->kind != "gpu" || rr.gpu_count <= 0 || rr.wall_seconds <= 0) continue;
    const double gh = static_cast<double>(rr.gpu_count) * rr.wall_seconds / 3600.0;
    const Band m = mfu_band(e.train_flops, rr.gpu_count, rr.wall_seconds, rhw->bf16_dense_flops);
    e.lines.push_back(make_line(
        "reference_run", "reference run: " + rr.description, Band::point(gh), rhw->id + "-hour",
        "declared", "gpu_count x wall_seconds / 3600",
        {{"gpu_count", rr.gpu_count}, {"wall_seconds", rr.wall_seconds}},
        "implies " + band_text(m, "fraction of peak") + " of bf16 peak; " +
            text::fmt("%.2f", gh / std::max(e.gpu_hours, 1e-12)) + "x the headline's GPU-hours; " +
            rr.source));
  }
}

// What the cost model needs: the claim's figures, the base model's pretraining when it was
// trained elsewhere, the recipe's extras and the teacher's traces.
ledger::CostInputs cost_inputs(const recipe::Recipe& r, const Estimate& e) {
  ledger::CostInputs in;
  ledger::ClaimFigures cl;
  cl.name = r.claim.name;
  cl.headline = r.claim.headline;
  cl.usd = r.claim.claimed_cost_usd;
  cl.gpu_type = e.hardware.id;
  cl.gpu_count = static_cast<double>(r.claim.gpu_count);
  cl.wall_hours = r.claim.wall_hours;
  cl.gpu_hours = e.gpu_hours;
  cl.gpu_hour_usd = r.claim.claimed_gpu_hour_usd;
  cl.source = sources_text(r.claim);
  in.claim = cl;
  in.claim_as_final_run = true;
  const bool base_elsewhere = r.claim.stage != "pretrain" && !r.base.train_here;
  if (base_elsewhere && r.base.pretrain_tokens > 0) {
    ledger::BaseModelEstimate b;
    b.name = r.base.name;
    b.n_active = static_cast<double>(e.params.active);
    b.tokens = r.base.pretrain_tokens;
    b.tokens_source = r.base.pretrain_source;
    b.gpu_type = e.hardware.id;
    const auto& mfu = e.prices.get(ledger::price_keys::kBaseMfu);
    b.mfu = mfu.band;
    b.mfu_source = mfu.source;
    in.base = b;
  }
  bool has_data_generation = false;
  for (const auto& x : r.extras) {
    ledger::ExtraItem it;
    it.category = x.category;
    it.description = x.description;
    it.quantity = x.quantity;
    it.unit = x.unit;
    it.gpu_type = x.gpu_type.empty() ? e.hardware.id : x.gpu_type;
    if (x.price_usd.set) {
      it.price = band_of(x.price_usd);
      it.price_source = x.price_usd.source;
    }
    it.provenance = provenance_of(x.provenance);
    it.formula = x.formula;
    it.source = x.source;
    if (x.category == "data_generation") has_data_generation = true;
    in.extras.push_back(it);
  }
  if (!has_data_generation && r.data.teacher_tokens_per_sample > 0) {
    const double pool = static_cast<double>(r.data.pool_size_declared > 0 ? r.data.pool_size_declared
                                                                          : r.data.pool_size);
    ledger::ExtraItem it;
    it.category = "data_generation";
    it.description = "teacher traces" +
                     (r.data.teacher_name.empty() ? std::string() : " from " + r.data.teacher_name);
    it.quantity = pool * r.data.teacher_tokens_per_sample / 1e6;
    it.unit = "1M tokens";
    it.provenance = ledger::Provenance::estimated;
    it.formula = "pool questions x teacher_tokens_per_sample / 1e6";
    it.inputs = {{"pool", pool}, {"teacher_tokens_per_sample", r.data.teacher_tokens_per_sample}};
    it.source = "recipe [data]";
    in.extras.push_back(it);
  }
  return in;
}

// One line per cost row (with the base model's FLOPs and the claim's own rate beside theirs).
void add_cost_item_lines(const recipe::Recipe& r, Estimate& e) {
  for (const auto& c : e.items) {
    const Band q = ledger::quantity_band(c);
    auto l = make_line("cost." + c.category, c.description, ledger::item_cost(c), "USD",
                       ledger::cost_item_json(c)["provenance"].get<std::string>(),
                       band_text(q, c.unit) + " x " +
                           band_text(Band(c.price_low, c.price_mid, c.price_high), "USD") +
                           " per " + c.unit + (c.formula.empty() ? "" : "; quantity: " + c.formula),
                       c.inputs, c.source);
    if (!ledger::in_full_total(c)) l.note = "not added to the full total; " + l.note;
    e.lines.push_back(l);
    if (c.category == "base_model") {
      const double flops = c.inputs["flops"].get<double>();
      e.lines.push_back(make_line(
          "base_flops", "compute of the base model's pretraining", Band::point(flops), "FLOP",
          "estimated", "6 x N x D", {{"N", c.inputs["N"]}, {"D", c.inputs["D"]}},
          text::fmt("%.3g", flops / std::max(e.train_flops.mid, 1.0)) +
              "x the claimed run's compute"));
    }
    if (c.category == "final_run" && r.claim.claimed_gpu_hour_usd > 0)
      e.lines.push_back(make_line(
          "claimed_rate_cost", "claimed GPU-hours at the claim's own rate",
          Band::point(c.quantity * r.claim.claimed_gpu_hour_usd), "USD", "declared",
          "GPU-hours x claim.claimed_gpu_hour_usd",
          {{"gpu_hours", c.quantity}, {"usd_per_gpu_hour", r.claim.claimed_gpu_hour_usd}}));
  }
}

// The three totals and the full cost's multiple of the claim.
void add_total_lines(Estimate& e) {
  const auto& t = e.totals;
  if (t.claimed_known)
    e.lines.push_back(make_line("total.claimed", "claimed cost", t.claimed, "USD", "declared",
                                t.claimed_basis));
  e.lines.push_back(make_line("total.final_run",
                              "final run (as stated, priced at the band; not measured here)",
                              t.final_run, "USD", "declared",
                              "claimed GPU-hours x GPU-hour price band"));
  e.lines.push_back(make_line("total.full", "full cost (final run + base model + extras)", t.full,
                              "USD", "estimated", "sum of every row in the full total"));
  if (t.claimed_known && t.claimed.mid > 0)
    e.lines.push_back(make_line("full_over_claimed", "full cost / claimed cost",
                                t.full * (1.0 / t.claimed.mid), "x", "estimated",
                                "total.full / total.claimed (mid)"));
}

}  // namespace

Estimate estimate_recipe(const recipe::Recipe& r, const MeasuredTokens* measured) {
  Estimate e;
  e.recipe_path = r.path;
  e.recipe_sha256 = r.sha256;
  e.claim_name = r.claim.name;
  e.claim_title = r.claim.title;
  e.headline = r.claim.headline;
  e.stage = r.claim.stage;
  e.prices = prices_from_recipe(r);
  add_model_lines(r, e);
  e.hardware = claim_hardware(r);
  add_compute_lines(r, e, measured);
  add_utilization_lines(r, e);
  add_reference_run_lines(r, e);
  try {
    e.items = ledger::build_cost_items(cost_inputs(r, e), e.prices);
  } catch (const std::invalid_argument& ex) {
    throw recipe_error(r, "extras", ex.what());
  }
  e.totals = ledger::cost_totals(e.items);
  add_cost_item_lines(r, e);
  add_total_lines(e);
  return e;
}

nlohmann::json Estimate::to_json() const {
  nlohmann::json j;
  j["recipe"] = {{"path", recipe_path}, {"sha256", recipe_sha256}};
  j["claim"] = {{"name", claim_name}, {"title", claim_title}, {"headline", headline}, {"stage", stage}};
  j["params"] = ledger::to_json(params);
  j["hardware"] = ledger::to_json(hardware);
  j["tokens"] = ledger::to_json(tokens);
  j["train_flops"] = ledger::to_json(train_flops);
  j["hardware_flops"] = ledger::to_json(hardware_flops);
  j["gpu_hours"] = gpu_hours;
  j["mfu_gpu_hours"] = mfu_gpu_hours;
  j["implied_mfu"] = ledger::to_json(mfu);
  j["implied_hfu"] = ledger::to_json(hfu);
  j["verdict"] = {{"verdict", verdict.verdict}, {"reason", verdict.reason}, {"mfu", verdict.mfu}};
  nlohmann::json ls = nlohmann::json::array();
  for (const auto& l : lines)
    ls.push_back({{"key", l.key}, {"label", l.label}, {"value", ledger::to_json(l.value)},
                  {"unit", l.unit}, {"provenance", l.provenance}, {"formula", l.formula},
                  {"inputs", l.inputs}, {"note", l.note}});
  j["lines"] = ls;
  nlohmann::json its = nlohmann::json::array();
  for (const auto& c : items) its.push_back(ledger::cost_item_json(c));
  j["cost_items"] = its;
  j["totals"] = ledger::to_json(totals);
  j["prices"] = prices.to_json();
  return j;
}

std::string Estimate::to_text() const {
  std::ostringstream o;
  o << "audit estimate: " << claim_name;
  if (!claim_title.empty()) o << " - " << claim_title;
  o << "\n";
  o << "recipe " << recipe_path << " (sha256 " << recipe_sha256.substr(0, 12) << ")";
  if (!headline.empty()) o << "; headline: \"" << headline << "\"";
  o << "\n";
  o << "verdict: the stated compute is " << verdict.verdict << " (" << verdict.reason << ")\n";
  o << "totals: claimed " << (totals.claimed_known ? band_text(totals.claimed, "USD") : "n/a")
    << "; final run as stated " << band_text(totals.final_run, "USD") << "; full cost "
    << band_text(totals.full, "USD") << "\n\n";
  for (const auto& l : lines) {
    o << "- " << l.label << ": " << band_text(l.value, l.unit) << "\n";
    o << "    [" << l.provenance << "] " << l.formula;
    if (!l.inputs.empty() && l.inputs.is_object()) {
      std::string in;
      for (auto it = l.inputs.begin(); it != l.inputs.end(); ++it) {
        if (it.key() == "counted" || it.key() == "peak_source") continue;
        std::string v;
        if (it.value().is_string()) {
          v = it.value().get<std::string>();
        } else if (it.value().is_number()) {
          v = num(it.value().get<double>());
        } else if (it.value().is_array() && !it.value().empty() && it.value()[0].is_number()) {
          for (const auto& x : it.value()) v += (v.empty() ? "[" : ", ") + num(x.get<double>());
          v += "]";
        } else {
          v = it.value().dump();
        }
        in += (in.empty() ? "" : ", ") + it.key() + "=" + v;
      }
      if (!in.empty() && in.size() < 400) o << "; inputs: " << in;
    }
    o << "\n";
    if (!l.note.empty()) {
      // Sources can be long; the text view keeps the first 240 characters (--json has all).
      std::string note = l.note;
      if (note.size() > 240) note = note.substr(0, 240) + "... (--json for the full source)";
      o << "    " << note << "\n";
    }
  }
  return o.str();
}

}  // namespace audit::reproduce
