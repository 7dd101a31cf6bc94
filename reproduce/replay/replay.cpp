// The extrapolation math of `audit replay`: roofline translation, work model, length profile,
// communication and the predicted band with its verdict. See reproduce/replay/replay.h and
// docs/replay.md. No LibTorch.
#include "reproduce/replay/replay.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "ledger/costs/hardware.h"     // find_hardware
#include "reproduce/estimate/estimate.h"  // arch_from_recipe, prices_from_recipe, claimed_tokens

namespace audit::replay {

using ledger::Band;

double roofline_seconds(const Work& w, const Peak& p) {
  if (!(p.flops > 0) || !(p.bytes_s > 0))
    throw std::invalid_argument("replay: peak of '" + p.device +
                                "' needs positive FLOP/s and bytes/s");
  return w.flops / p.flops + w.bytes / p.bytes_s;
}

Translation translate(double measured_s, const Work& timed, const Peak& here, const Work& claimed,
                      const Peak& there) {
  if (!(measured_s > 0)) throw std::invalid_argument("replay: measured time must be > 0");
  const double r = roofline_seconds(timed, here);
  if (!(r > 0)) throw std::invalid_argument("replay: timed work is empty (no FLOPs, no bytes)");
  Translation t;
  t.efficiency = r / measured_s;
  t.compute_fraction_here = (timed.flops / here.flops) / r;
  t.compute_s = (claimed.flops / there.flops) / t.efficiency;
  t.memory_s = (claimed.bytes / there.bytes_s) / t.efficiency;
  t.seconds = t.compute_s + t.memory_s;
  return t;
}

const char* part_name(Part p) {
  switch (p) {
    case Part::kDenseLayer: return "dense_layer";
    case Part::kMoeLayer: return "moe_layer";
    case Part::kEmbedHead: return "embed_head";
    case Part::kOptimizer: return "optimizer";
  }
  return "?";
}

Part parse_part(const std::string& s) {
  for (Part p : {Part::kDenseLayer, Part::kMoeLayer, Part::kEmbedHead, Part::kOptimizer})
    if (s == part_name(p)) return p;
  throw std::invalid_argument("replay: unknown part '" + s + "'");
}

LayerParams layer_params(const ledger::ArchSpec& a, bool moe_layer) {
  ledger::ArchSpec one = a;
  one.layers = 1;
  one.mtp_depth = 0;
  if (a.is_moe()) {
    one.first_dense_layers = moe_layer ? 0 : 1;
  } else if (moe_layer) {
    throw std::invalid_argument("replay: '" + a.name + "' has no MoE layers");
  }
  const auto p = ledger::count_parameters(one);
  const int64_t outside = p.embedding + p.lm_head + a.hidden;  // + the final norm
  LayerParams lp;
  lp.total = p.total - outside;
  lp.active = p.active - outside;
  return lp;
}

namespace {

double attention_flops_causal(const ledger::ArchSpec& a, double seq_len, double batch) {
  ledger::ArchSpec one = a;
  one.layers = 1;
  // The cost model's figure is per token and non-causal; a causal (flash) kernel does half.
  return 0.5 * ledger::attention_training_flops_per_token(one, seq_len) * seq_len * batch;
}

}  // namespace

Work layer_work(const ledger::ArchSpec& a, bool moe_layer, double seq_len, double batch,
                double bytes_per_value, bool recompute) {
  const LayerParams lp = layer_params(a, moe_layer);
  const double tokens = seq_len * batch;
  double touched = static_cast<double>(lp.total);
  if (moe_layer && a.is_moe()) {
    const double expert = 3.0 * static_cast<double>(a.hidden) * static_cast<double>(a.expert_ffn);
    const double routed = static_cast<double>(a.routed_experts);
    const double hit = std::min(routed, tokens * static_cast<double>(a.top_k));
    touched -= (routed - hit) * expert;
  }
  Work w;
  w.flops = 6.0 * static_cast<double>(lp.active) * tokens + attention_flops_causal(a, seq_len, batch);
  double weight_passes = 4.0;
  if (recompute) {
    w.flops *= 4.0 / 3.0;
    weight_passes += 1.0;
  }
  w.bytes = bytes_per_value *
            (weight_passes * touched + 34.0 * static_cast<double>(a.hidden) * tokens);
  return w;
}

Work embed_head_work(const ledger::ArchSpec& a, double seq_len, double batch,
                     double bytes_per_value) {
  const double tokens = seq_len * batch;
  const double vh = static_cast<double>(a.vocab) * static_cast<double>(a.hidden);
  Work w;
  w.flops = 6.0 * vh * tokens;
  w.bytes = bytes_per_value * (4.0 * vh + 2.0 * static_cast<double>(a.hidden) * tokens) +
            12.0 * static_cast<double>(a.vocab) * tokens;
  return w;
}

Work optimizer_work(double params) {
  Work w;
  w.flops = 12.0 * params;
  w.bytes = 28.0 * params;
  return w;
}

double normal_quantile(double p) {
  if (!(p > 0 && p < 1)) throw std::invalid_argument("replay: quantile needs 0 < p < 1");
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    const double cdf = 0.5 * std::erfc(-mid / std::sqrt(2.0));
    (cdf < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

double lognormal_sigma(double mean, double p90) {
  if (!(mean > 0) || !(p90 > mean)) return 0.0;
  const double z = normal_quantile(0.9);  // 1.28155
  const double c = std::log(p90 / mean);
  const double disc = z * z - 2.0 * c;
  if (disc <= 0) return z;  // p90/mean beyond what a log-normal with this mean reaches
  return z - std::sqrt(disc);
}

std::vector<double> length_quantiles(double mean, double p90, double max_len, int n) {
  if (!(mean > 0)) throw std::invalid_argument("replay: mean sequence length must be > 0");
  if (n < 1) throw std::invalid_argument("replay: need at least one quantile");
  const double sigma = lognormal_sigma(mean, p90);
  const double mu = std::log(mean) - 0.5 * sigma * sigma;
  std::vector<double> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    double len = sigma == 0 ? mean : std::exp(mu + sigma * normal_quantile((i + 0.5) / n));
    if (max_len > 0) len = std::min(len, max_len);
    out.push_back(std::max(1.0, len));
  }
  return out;
}

double collective_bytes_per_step(const std::string& parallelism, double params, double gpus,
                                 double bytes_per_value) {
  if (gpus <= 1) return 0.0;
  const double ring = (gpus - 1.0) / gpus * params * bytes_per_value;
  if (parallelism == "fsdp_full_shard" || parallelism == "zero3") return 3.0 * ring;
  if (parallelism == "fsdp_shard_grad_op" || parallelism == "ddp" || parallelism == "zero1")
    return 2.0 * ring;
  if (parallelism == "none" || parallelism == "ep_pp_dp") return 0.0;
  throw std::invalid_argument("replay: unknown parallelism '" + parallelism + "'");
}

double ep_bytes_per_token(const ledger::ArchSpec& a, int64_t topk_groups, double dispatch_bytes,
                          double combine_bytes) {
  if (!a.is_moe()) return 0.0;
  const double moe_layers = static_cast<double>(a.layers - a.first_dense_layers + a.mtp_depth);
  const double copies = static_cast<double>(
      topk_groups > 0 ? std::min(a.top_k, topk_groups) : a.top_k);
  return moe_layers * copies * static_cast<double>(a.hidden) * (dispatch_bytes + combine_bytes) *
         2.0;
}

// ---------------------------------------------------------------------------------------------
// The communication model's self-check

double link_bytes_of(const std::string& kind, double bytes, double ranks) {
  if (ranks <= 1) return 0.0;
  const double share = (ranks - 1.0) / ranks * bytes;
  if (kind == "all_reduce") return 2.0 * share;
  if (kind == "all_gather" || kind == "reduce_scatter" || kind == "broadcast") return share;
  throw std::invalid_argument("replay: no link model for collective '" + kind + "'");
}

LinkCalibration calibrate_link(double ranks, double small_bytes, double small_s,
                               double large_bytes, double large_s) {
  if (ranks < 2) throw std::invalid_argument("replay: a link needs at least 2 ranks");
  if (!(small_bytes > 0 && small_s > 0 && large_bytes > 0 && large_s > 0))
    throw std::invalid_argument("replay: link calibration needs positive sizes and times");
  if (!(large_bytes > small_bytes && large_s > small_s))
    throw std::invalid_argument(
        "replay: the large all-reduce must be larger and slower than the small one (" +
        std::to_string(large_s) + " s for " + std::to_string(large_bytes) + " B vs " +
        std::to_string(small_s) + " s for " + std::to_string(small_bytes) + " B)");
  LinkCalibration c;
  c.ranks = ranks;
  c.small_bytes = small_bytes;
  c.small_s = small_s;
  c.large_bytes = large_bytes;
  c.large_s = large_s;
  const double xs = link_bytes_of("all_reduce", small_bytes, ranks);
  const double xl = link_bytes_of("all_reduce", large_bytes, ranks);
  c.bytes_s = (xl - xs) / (large_s - small_s);
  c.latency_s = std::max(0.0, small_s - xs / c.bytes_s);
  c.plain_bytes_s = xl / large_s;
  return c;
}

nlohmann::json LinkCalibration::to_json() const {
  return {{"ranks", ranks},         {"small_bytes", small_bytes}, {"small_s", small_s},
          {"large_bytes", large_bytes}, {"large_s", large_s},     {"bytes_s", bytes_s},
          {"latency_s", latency_s}, {"plain_bytes_s", plain_bytes_s}};
}

double collective_calls_per_step(const std::string& parallelism, double ranks,
                                 const StepCollectives& s) {
  if (parallelism != "ddp" && parallelism != "fsdp_full_shard" && parallelism != "none")
    throw std::invalid_argument("replay: no call model for parallelism '" + parallelism + "'");
  if (ranks <= 1 || parallelism == "none") return 0.0;
  if (parallelism == "ddp") return s.ddp_buckets;
  return s.flats_per_unit * (3.0 * s.layers + 2.0) + (s.norm_all_reduce ? 1.0 : 0.0);
}

double ddp_bucket_count(const std::vector<double>& group_bytes, double bucket_bytes) {
  if (!(bucket_bytes > 0)) throw std::invalid_argument("replay: ddp needs a bucket size > 0");
  double n = 0;
  for (double b : group_bytes)
    if (b > 0) n += std::max(1.0, std::ceil(b / bucket_bytes));
  return n;
}

CommPrediction predict_step_comm(const std::string& parallelism, double params, double root_params,
                                 double ranks, double bytes_per_value, double calls,
                                 const LinkCalibration& link) {
  if (!(link.bytes_s > 0)) throw std::invalid_argument("replay: the link has no bandwidth");
  if (root_params < 0 || root_params > params)
    throw std::invalid_argument("replay: root unit parameters outside [0, params]");
  CommPrediction p;
  const double all = collective_bytes_per_step(parallelism, params, ranks, bytes_per_value);
  p.bytes = all;
  if (parallelism == "fsdp_full_shard")
    p.bytes -= collective_bytes_per_step(parallelism, root_params, ranks, bytes_per_value) / 3.0;
  p.calls = calls;
  p.bandwidth_s = p.bytes / link.bytes_s;
  p.latency_s = calls * link.latency_s;
  p.seconds = p.bandwidth_s + p.latency_s;
  p.plain_s = link.plain_bytes_s > 0 ? all / link.plain_bytes_s : 0.0;
  return p;
}

KindLink fit_kind_link(const std::string& kind, double ranks, const std::vector<double>& bytes,
                       const std::vector<double>& seconds) {
  if (bytes.size() != seconds.size() || bytes.size() < 2)
    throw std::invalid_argument("replay: fitting " + kind + " needs at least two sizes");
  // Weighted least squares of t = a + x / b (x: link bytes) with w = 1 / t^2.
  double sw = 0, sx = 0, st = 0, sxx = 0, sxt = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (!(bytes[i] > 0 && seconds[i] > 0))
      throw std::invalid_argument("replay: fitting " + kind + " needs positive sizes and times");
    const double x = link_bytes_of(kind, bytes[i], ranks), t = seconds[i], w = 1.0 / (t * t);
    sw += w;
    sx += w * x;
    st += w * t;
    sxx += w * x * x;
    sxt += w * x * t;
  }
  const double den = sw * sxx - sx * sx;
  const double slope = den != 0 ? (sw * sxt - sx * st) / den : 0.0;
  if (!(slope > 0))
    throw std::invalid_argument("replay: " + kind + "'s times do not grow with its size: no "
                                "bandwidth can be fitted");
  KindLink k;
  k.kind = kind;
  k.ranks = ranks;
  k.bytes_s = 1.0 / slope;
  k.latency_s = std::max(0.0, (st - slope * sx) / sw);
  k.points = static_cast<int>(bytes.size());
  return k;
}

nlohmann::json KindLink::to_json() const {
  return {{"kind", kind}, {"ranks", ranks}, {"bytes_s", bytes_s}, {"latency_s", latency_s},
          {"points", points}};
}

std::map<std::string, KindTraffic> step_traffic_by_kind(const std::string& parallelism,
                                                        double params, double root_params,
                                                        double ranks, double bytes_per_value,
                                                        const StepCollectives& s) {
  if (parallelism != "ddp" && parallelism != "fsdp_full_shard" && parallelism != "none")
    throw std::invalid_argument("replay: no traffic model for parallelism '" + parallelism + "'");
  std::map<std::string, KindTraffic> t;
  if (ranks <= 1 || parallelism == "none") return t;
  const double ring = (ranks - 1.0) / ranks * bytes_per_value;
  if (parallelism == "ddp") {
    t["all_reduce"] = {s.ddp_buckets, 2.0 * ring * params};
    return t;
  }
  const double layer_params = params - root_params;
  t["all_gather"] = {s.flats_per_unit * (2.0 * s.layers + 1.0),
                     ring * (2.0 * layer_params + root_params)};
  t["reduce_scatter"] = {s.flats_per_unit * (s.layers + 1.0), ring * params};
  if (s.norm_all_reduce) t["all_reduce"] = {1.0, link_bytes_of("all_reduce", 8.0, ranks)};
  return t;
}

double predict_step_comm_by_kind(const std::map<std::string, KindTraffic>& traffic,
                                 const std::map<std::string, KindLink>& links) {
  double s = 0;
  for (const auto& [kind, t] : traffic) {
    auto it = links.find(kind);
    if (it == links.end())
      throw std::invalid_argument("replay: no measured line for " + kind);
    s += t.calls * it->second.latency_s + t.link_bytes / it->second.bytes_s;
  }
  return s;
}

nlohmann::json CommPrediction::to_json() const {
  return {{"bytes", bytes},         {"calls", calls},     {"bandwidth_s", bandwidth_s},
          {"latency_s", latency_s}, {"seconds", seconds}, {"plain_s", plain_s}};
}

nlohmann::json to_json(const Measurement& m) {
  return {{"part", part_name(m.part)},
          {"timed_seq_len", m.timed_seq_len},
          {"claimed_seq_len", m.claimed_seq_len},
          {"batch", m.batch},
          {"seconds", m.seconds},
          {"params", m.params},
          {"timed_flops", m.timed.flops},
          {"timed_bytes", m.timed.bytes},
          {"samples", m.samples}};
}

double Cluster::link_bytes_s() const { return nodes > 1 ? inter_bytes_s : intra_bytes_s; }

namespace {

InputError key_error(const recipe::Recipe& r, const std::string& key, const std::string& what) {
  return InputError(r.path, 0, 0, key, what);
}

Band band_of(const recipe::Band& b) { return Band(b.low, b.mid, b.high); }

// "nvlink4+ib400" -> 400 (Gb/s per GPU); 0 when no "ib<digits>" is named.
double ib_gbits(const std::string& s) {
  for (size_t i = 0; i + 2 < s.size(); ++i) {
    if ((s[i] == 'i' || s[i] == 'I') && (s[i + 1] == 'b' || s[i + 1] == 'B') &&
        std::isdigit(static_cast<unsigned char>(s[i + 2]))) {
      return std::atof(s.c_str() + i + 2);
    }
  }
  return 0.0;
}

bool is_layer(Part p) { return p == Part::kDenseLayer || p == Part::kMoeLayer; }

std::vector<const Measurement*> measurements_of(const ReplayInputs& in, Part part) {
  std::vector<const Measurement*> out;
  for (const auto& m : in.measurements)
    if (m.part == part) out.push_back(&m);
  if (out.empty() && is_layer(part)) {
    const Part other = part == Part::kDenseLayer ? Part::kMoeLayer : Part::kDenseLayer;
    for (const auto& m : in.measurements)
      if (m.part == other) out.push_back(&m);
  }
  std::sort(out.begin(), out.end(), [](const Measurement* a, const Measurement* b) {
    return a->claimed_seq_len < b->claimed_seq_len;
  });
  return out;
}

// Roofline efficiency at claimed length len, linear in log(length) between measurements.
double efficiency_at(const ReplayInputs& in, const std::vector<const Measurement*>& ms,
                     double len) {
  auto eff = [&](const Measurement* m) {
    if (!(m->seconds > 0))
      throw std::invalid_argument(std::string("replay: measurement of ") + part_name(m->part) +
                                  " has no positive time");
    return roofline_seconds(m->timed, in.here) / m->seconds;
  };
  if (ms.size() == 1 || len <= static_cast<double>(ms.front()->claimed_seq_len))
    return eff(ms.front());
  if (len >= static_cast<double>(ms.back()->claimed_seq_len)) return eff(ms.back());
  for (size_t i = 1; i < ms.size(); ++i) {
    const double l0 = static_cast<double>(ms[i - 1]->claimed_seq_len);
    const double l1 = static_cast<double>(ms[i]->claimed_seq_len);
    if (len <= l1) {
      if (l1 <= l0) return eff(ms[i]);
      const double f = (std::log(len) - std::log(l0)) / (std::log(l1) - std::log(l0));
      return (1 - f) * eff(ms[i - 1]) + f * eff(ms[i]);
    }
  }
  return eff(ms.back());
}

double total_params(const ledger::ArchSpec& a) {
  const auto p = ledger::count_parameters(a);
  return static_cast<double>(p.total + p.mtp_total);
}

double optimizer_params_per_gpu(const ReplayInputs& in) {
  const double p = total_params(in.claimed);
  const std::string& par = in.parallelism;
  if (par == "ddp" || par == "none") return p;
  return p / static_cast<double>(std::max<int64_t>(1, in.cluster.gpus));  // sharded states
}

}  // namespace

double predicted_part_seconds(const ReplayInputs& in, Part part, double len, double peak_flops) {
  const auto ms = measurements_of(in, part);
  if (ms.empty())
    throw std::invalid_argument(std::string("replay: no measurement of ") + part_name(part) +
                                (is_layer(part) ? " (nor of any layer)" : ""));
  Peak there = in.there;
  there.flops = peak_flops;
  Work claimed;
  switch (part) {
    case Part::kDenseLayer:
    case Part::kMoeLayer:
      claimed = layer_work(in.claimed, part == Part::kMoeLayer, len, in.micro_batch,
                           in.claimed_bytes_per_value, in.recompute);
      break;
    case Part::kEmbedHead:
      claimed = embed_head_work(in.claimed, len, in.micro_batch, in.claimed_bytes_per_value);
      break;
    case Part::kOptimizer:
      throw std::invalid_argument("replay: the optimizer is per step, not per length");
  }
  return roofline_seconds(claimed, there) / efficiency_at(in, ms, len);
}

namespace {

// The claimed GPU's row of the hardware table; sets in.there and in.there_fp8_flops.
// `gpu_key` is the recipe key that named it (for errors).
ledger::Hardware claimed_gpu(const recipe::Recipe& r, const std::string& gpu_key,
                             ReplayInputs& in) {
  const std::string gpu = r.hardware.gpu_type.empty() ? r.claim.gpu_type : r.hardware.gpu_type;
  if (gpu.empty()) throw key_error(r, gpu_key, "replay needs the claimed GPU type");
  const auto hw = ledger::find_hardware(gpu);
  if (!hw || hw->kind != "gpu") {
    std::string ids;
    for (const auto& id : ledger::hardware_ids()) ids += (ids.empty() ? "" : ", ") + id;
    throw key_error(r, gpu_key, "'" + gpu + "' is not a GPU of the hardware table (" + ids + ")");
  }
  in.there = Peak{hw->id, hw->bf16_dense_flops, hw->memory_bw_bytes_s, hw->source};
  in.there_fp8_flops = hw->fp8_dense_flops;
  if (!(in.there.bytes_s > 0) || !(in.there.flops > 0))
    throw key_error(r, gpu_key, "the hardware table has no bf16 peak or memory bandwidth for '" +
                                    hw->id + "'");
  return *hw;
}

// GPUs, nodes and links of the claimed cluster ([hardware], else [claim], else the table).
Cluster cluster_from_recipe(const recipe::Recipe& r, const ledger::Hardware& hw) {
  Cluster c;
  c.gpu_type = hw.id;
  c.gpus = r.hardware.gpu_count > 0 ? r.hardware.gpu_count : r.claim.gpu_count;
  if (c.gpus <= 0)
    throw key_error(r, "hardware.gpu_count", "replay needs the claimed GPU count (or claim.gpu_count)");
  c.gpus_per_node = r.hardware.gpus_per_node > 0 ? r.hardware.gpus_per_node : 8;
  c.nodes = r.hardware.nodes > 0 ? r.hardware.nodes
            : r.claim.nodes > 0  ? r.claim.nodes
                                 : (c.gpus + c.gpus_per_node - 1) / c.gpus_per_node;
  c.intra_bytes_s = hw.nvlink_bytes_s / 2.0;
  const double ib = ib_gbits(r.hardware.interconnect);
  c.inter_bytes_s = (ib > 0 ? ib * 1e9 : hw.network_bits_s) / 8.0;
  c.interconnect = (r.hardware.interconnect.empty() ? std::string("table default") : r.hardware.interconnect) +
                   ": " + hw.interconnect;
  if (c.nodes > 1 && !(c.inter_bytes_s > 0))
    throw key_error(r, "hardware.interconnect",
                    "several nodes but no inter-node bandwidth (name it, e.g. \"nvlink4+ib400\")");
  return c;
}

// Sequences, optimizer steps and micro-batch of the claimed run (needs in.cluster.gpus).
void read_run_size(const recipe::Recipe& r, ReplayInputs& in) {
  in.precision = r.train.precision;
  in.parallelism = r.train.parallelism;
  in.recompute = r.train.recompute;
  in.block_size = static_cast<double>(r.train.block_size);
  const double global_batch = static_cast<double>(r.train.global_batch);
  if (r.claim.stage == "pretrain") {
    if (!(r.base.pretrain_tokens > 0))
      throw key_error(r, "base.pretrain_tokens", "a pretraining claim needs its token count");
    in.sequences = r.base.pretrain_tokens / in.block_size;
    in.steps = r.train.steps > 0 ? static_cast<double>(r.train.steps)
                                 : std::ceil(in.sequences / global_batch);
    in.fixed_length = true;
  } else {
    in.sequences = static_cast<double>(r.data.select_n) * static_cast<double>(r.train.epochs);
    in.steps = r.train.steps > 0
                   ? static_cast<double>(r.train.steps)
                   : std::ceil(static_cast<double>(r.data.select_n) / global_batch) *
                         static_cast<double>(r.train.epochs);
    in.fixed_length = r.train.packing;
  }
  in.micro_batch = r.train.micro_batch > 0
                       ? static_cast<double>(r.train.micro_batch)
                       : std::max(1.0, std::floor(global_batch / static_cast<double>(in.cluster.gpus)));
}

// The length profile: data.seq_len_mean, else the range and median of replay.seq_lens, else
// a band below train.block_size; data.seq_len_p90 when given. Needs in.block_size.
void read_lengths(const recipe::Recipe& r, ReplayInputs& in) {
  if (r.data.seq_len_mean.set) {
    in.seq_mean = band_of(r.data.seq_len_mean);
  } else if (!r.replay.seq_lens.empty()) {
    auto v = r.replay.seq_lens;
    std::sort(v.begin(), v.end());
    const double med = v.size() % 2 ? static_cast<double>(v[v.size() / 2])
                                    : 0.5 * static_cast<double>(v[v.size() / 2 - 1] + v[v.size() / 2]);
    in.seq_mean = Band(static_cast<double>(v.front()), med, static_cast<double>(v.back()));
  } else {
    in.seq_mean = Band(in.block_size / 16, in.block_size / 4, in.block_size);
  }
  if (r.data.seq_len_p90.set) in.seq_p90 = band_of(r.data.seq_len_p90);
  if (in.seq_mean.low > in.block_size)
    throw key_error(r, "data.seq_len_mean", "mean length above train.block_size");
}

// The figure the verdict compares: the pretraining phase's GPU-hours for a pretraining claim,
// else the claim's GPU-hours (or GPUs x wall hours); the wall hours derived when not stated.
void read_claimed_figures(const recipe::Recipe& r, ReplayInputs& in) {
  in.claimed_wall_hours = r.claim.wall_hours;
  in.claimed_gpu_hours = 0;
  if (r.claim.stage == "pretrain") {
    for (const auto& ph : r.claim.phases) {
      if (ph.phase == "pretraining") {
        in.claimed_gpu_hours = ph.gpu_hours;
        in.claimed_basis = "claim.phases pretraining: " + ph.source;
      }
    }
  }
  if (in.claimed_gpu_hours <= 0) {
    in.claimed_gpu_hours = recipe::claimed_gpu_hours(r.claim);
    in.claimed_basis = r.claim.gpu_hours > 0 ? "claim.gpu_hours" : "claim.gpu_count x claim.wall_hours";
  }
  if (in.claimed_wall_hours <= 0 && in.claimed_gpu_hours > 0)
    in.claimed_wall_hours = in.claimed_gpu_hours / static_cast<double>(in.cluster.gpus);
}

}  // namespace

ReplayInputs inputs_from_recipe(const recipe::Recipe& r) {
  ReplayInputs in;
  in.claimed = reproduce::arch_from_recipe(r.base);
  try {
    ledger::count_parameters(in.claimed);
  } catch (const std::invalid_argument& e) {
    throw key_error(r, "base", e.what());
  }
  const std::string gpu_key = r.hardware.gpu_type.empty() ? "claim.gpu_type" : "hardware.gpu_type";
  const ledger::Hardware hw = claimed_gpu(r, gpu_key, in);
  in.cluster = cluster_from_recipe(r, hw);
  in.topk_groups = r.base.expert_groups > 1 ? r.base.topk_groups : 0;
  read_run_size(r, in);
  read_lengths(r, in);

  in.overlap_low = r.replay.overlap_low;
  in.overlap_high = r.replay.overlap_high;
  if (!(in.overlap_low >= 0 && in.overlap_low <= in.overlap_high && in.overlap_high <= 1))
    throw key_error(r, "replay.overlap_low", "need 0 <= overlap_low <= overlap_high <= 1");

  try {
    const auto prices = reproduce::prices_from_recipe(r);
    in.gpu_hour_usd = prices.get(ledger::gpu_hour_key(hw.id)).band;
  } catch (const std::out_of_range& e) {
    throw key_error(r, "prices.gpu_hour_usd", e.what());
  }
  read_claimed_figures(r, in);
  return in;
}

namespace {

// What predict() needs of the claimed model and run, computed once for its three scenarios.
struct PredictContext {
  double G = 1;                       // GPUs
  double bf16 = 0, fp8_peak = 0;      // claimed-GPU peaks (fp8_peak = bf16 unless fp8 is used)
  bool fp8 = false;
  double dense_layers = 0, moe_layers = 0, extra_dense = 0, heads = 1;  // per forward pass
  const Measurement* opt = nullptr;   // the optimizer measurement
  double step_bytes = 0;              // collectives per optimizer step
  double ep_tok = 0;                  // expert-parallel all-to-all bytes per token
  double active_params = 0;
  double micro_batches = 0;           // per GPU
};

PredictContext predict_context(const ReplayInputs& in) {
  if (in.cluster.gpus < 1) throw std::invalid_argument("replay: cluster has no GPUs");
  if (!(in.sequences > 0)) throw std::invalid_argument("replay: no sequences to process");
  if (!(in.micro_batch > 0)) throw std::invalid_argument("replay: micro_batch must be > 0");
  PredictContext x;
  x.G = static_cast<double>(in.cluster.gpus);
  const auto& a = in.claimed;
  x.active_params = static_cast<double>(ledger::count_parameters(a).active);
  x.fp8 = in.precision == "fp8" && in.there_fp8_flops > 0;
  x.bf16 = in.there.flops;
  x.fp8_peak = x.fp8 ? in.there_fp8_flops : x.bf16;

  x.dense_layers = static_cast<double>(a.is_moe() ? a.first_dense_layers : a.layers);
  x.moe_layers =
      a.is_moe() ? static_cast<double>(a.layers - a.first_dense_layers + a.mtp_depth) : 0.0;
  x.extra_dense = a.is_moe() ? 0.0 : static_cast<double>(a.mtp_depth);
  x.heads = 1.0 + static_cast<double>(a.mtp_depth);

  const auto opt_ms = measurements_of(in, Part::kOptimizer);
  if (opt_ms.empty()) throw std::invalid_argument("replay: no measurement of optimizer");
  x.opt = opt_ms.front();

  const double params_all = total_params(a);
  x.step_bytes = collective_bytes_per_step(in.parallelism, params_all, x.G, 2.0);
  const bool ep = a.is_moe() && in.parallelism == "ep_pp_dp";
  x.ep_tok = ep ? ep_bytes_per_token(a, in.topk_groups, x.fp8 ? 1.0 : 2.0, 2.0) : 0.0;
  x.micro_batches = in.sequences / x.G / in.micro_batch;
  return x;
}

struct ScenarioSpec {
  const char* name;
  double mean, p90, overlap, peak;
};

// One case of the band: compute over the length quantiles, optimizer steps, communication.
ScenarioResult predict_scenario(const ReplayInputs& in, const PredictContext& x,
                                const ScenarioSpec& s) {
  ScenarioResult r;
  r.name = s.name;
  r.mean_len = in.fixed_length ? in.block_size : s.mean;
  r.p90_len = in.fixed_length ? in.block_size : s.p90;
  r.overlap = s.overlap;
  r.peak_flops = s.peak;
  std::vector<double> lens =
      in.fixed_length ? std::vector<double>{in.block_size}
                      : length_quantiles(s.mean, s.p90, in.block_size > 0 ? in.block_size : 0);
  double lay = 0, eh = 0, len_sum = 0;
  for (double L : lens) {
    if (x.dense_layers + x.extra_dense > 0)
      lay += (x.dense_layers + x.extra_dense) * predicted_part_seconds(in, Part::kDenseLayer, L, s.peak);
    if (x.moe_layers > 0) lay += x.moe_layers * predicted_part_seconds(in, Part::kMoeLayer, L, s.peak);
    eh += x.heads * predicted_part_seconds(in, Part::kEmbedHead, L, s.peak);
    len_sum += L;
  }
  const double nq = static_cast<double>(lens.size());
  r.layer_s = x.micro_batches * lay / nq;
  r.embed_head_s = x.micro_batches * eh / nq;
  Peak there = in.there;
  there.flops = s.peak;
  const Measurement& opt = *x.opt;
  r.optimizer_s = in.steps * translate(opt.seconds, opt.timed, in.here,
                                       optimizer_work(optimizer_params_per_gpu(in)), there)
                                 .seconds;
  r.compute_s = r.layer_s + r.embed_head_s + r.optimizer_s;
  r.tokens = in.sequences * len_sum / nq;
  const double comm_bytes = in.steps * x.step_bytes + (r.tokens / x.G) * x.ep_tok;
  if (comm_bytes > 0) {
    const double link = in.cluster.link_bytes_s();
    if (!(link > 0))
      throw std::invalid_argument("replay: communication needs a link bandwidth for " +
                                  in.cluster.gpu_type);
    r.comm_s = comm_bytes / link;
  }
  r.wall_s = std::max(r.compute_s + (1.0 - r.overlap) * r.comm_s, r.comm_s);
  r.mfu = ledger::implied_mfu(ledger::training_flops(x.active_params, r.tokens), x.G, r.wall_s,
                              x.bf16);
  return r;
}

Band sorted_band(double x, double y, double z) {
  std::vector<double> v{x, y, z};
  std::sort(v.begin(), v.end());
  return Band(v[0], v[1], v[2]);
}

// The bands over the three scenarios (p.scenarios filled).
void fill_bands(const ReplayInputs& in, double G, Prediction& p) {
  const auto& S = p.scenarios;
  p.wall_hours = sorted_band(S[0].wall_s / 3600, S[1].wall_s / 3600, S[2].wall_s / 3600);
  p.gpu_hours = p.wall_hours * G;
  p.cost_usd = p.gpu_hours * in.gpu_hour_usd;
  p.mfu = sorted_band(S[0].mfu, S[1].mfu, S[2].mfu);
  p.tokens = sorted_band(S[0].tokens, S[1].tokens, S[2].tokens);
  p.tokens_per_gpu_s = sorted_band(S[0].tokens / (G * S[0].wall_s), S[1].tokens / (G * S[1].wall_s),
                                   S[2].tokens / (G * S[2].wall_s));
}

// The claimed figure against the GPU-hour band: p.verdict and p.reason.
void decide(const ReplayInputs& in, double G, Prediction& p) {
  p.claimed_wall_hours = in.claimed_wall_hours;
  p.claimed_gpu_hours = in.claimed_gpu_hours;
  p.claimed_basis = in.claimed_basis;
  char buf[512];
  const double claimed = in.claimed_gpu_hours > 0 ? in.claimed_gpu_hours : in.claimed_wall_hours * G;
  if (!(claimed > 0)) {
    p.verdict = "not reproducible here";
    p.reason = "the claim states no wall time or GPU-hours to compare the prediction with";
  } else if (claimed < p.gpu_hours.low * (1.0 - in.tolerance)) {
    p.verdict = "not supported";
    std::snprintf(buf, sizeof(buf),
                  "the claimed %.4g GPU-hours are below the fastest replay prediction %.4g "
                  "GPU-hours (band low, less %.0f%% slack): the stated time is too short for the "
                  "claimed model, data and cluster",
                  claimed, p.gpu_hours.low, 100 * in.tolerance);
    p.reason = buf;
  } else if (claimed > p.gpu_hours.high * (1.0 + in.tolerance)) {
    p.verdict = "supported";
    std::snprintf(buf, sizeof(buf),
                  "the claimed %.4g GPU-hours exceed the slowest replay prediction %.4g GPU-hours: "
                  "enough time for the claimed run (the claimant's run was less efficient than "
                  "the prediction, or its figure includes more)",
                  claimed, p.gpu_hours.high);
    p.reason = buf;
  } else {
    p.verdict = "supported";
    std::snprintf(buf, sizeof(buf),
                  "the claimed %.4g GPU-hours lie within the replay band %.4g - %.4g GPU-hours "
                  "(with %.0f%% slack)",
                  claimed, p.gpu_hours.low, p.gpu_hours.high, 100 * in.tolerance);
    p.reason = buf;
  }
}

}  // namespace

Prediction predict(const ReplayInputs& in) {
  const PredictContext x = predict_context(in);
  const double bf16 = x.bf16, fp8_peak = x.fp8_peak;
  const ScenarioSpec specs[3] = {
      {"low", in.seq_mean.low, in.seq_p90.low, in.overlap_high, fp8_peak},
      {"mid", in.seq_mean.mid, in.seq_p90.mid, 0.5 * (in.overlap_low + in.overlap_high),
       x.fp8 ? 2.0 / (1.0 / fp8_peak + 1.0 / bf16) : bf16},
      {"high", in.seq_mean.high, in.seq_p90.high, in.overlap_low, bf16},
  };
  Prediction p;
  for (const auto& s : specs) p.scenarios.push_back(predict_scenario(in, x, s));
  fill_bands(in, x.G, p);
  decide(in, x.G, p);
  return p;
}

nlohmann::json Prediction::to_json() const {
  nlohmann::json sc = nlohmann::json::array();
  for (const auto& s : scenarios)
    sc.push_back({{"name", s.name},
                  {"mean_len", s.mean_len},
                  {"p90_len", s.p90_len},
                  {"overlap", s.overlap},
                  {"peak_flops", s.peak_flops},
                  {"layer_s", s.layer_s},
                  {"embed_head_s", s.embed_head_s},
                  {"optimizer_s", s.optimizer_s},
                  {"compute_s", s.compute_s},
                  {"comm_s", s.comm_s},
                  {"wall_s", s.wall_s},
                  {"tokens", s.tokens},
                  {"mfu", s.mfu}});
  return {{"scenarios", sc},
          {"wall_hours", ledger::to_json(wall_hours)},
          {"gpu_hours", ledger::to_json(gpu_hours)},
          {"cost_usd", ledger::to_json(cost_usd)},
          {"mfu", ledger::to_json(mfu)},
          {"tokens", ledger::to_json(tokens)},
          {"tokens_per_gpu_s", ledger::to_json(tokens_per_gpu_s)},
          {"claimed_wall_hours", claimed_wall_hours},
          {"claimed_gpu_hours", claimed_gpu_hours},
          {"claimed_basis", claimed_basis},
          {"verdict", verdict},
          {"reason", reason}};
}

double measure_host_bandwidth(int threads, double bytes_per_array, int repeats) {
  threads = std::max(1, threads);
  const size_t n = static_cast<size_t>(std::max(1e6, bytes_per_array) / sizeof(float));
  std::vector<float> a(n, 0.0f), b(n, 1.0f), c(n, 2.0f);
  double best = 0;
  for (int rep = 0; rep < std::max(1, repeats); ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    const size_t chunk = (n + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads);
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t lo = static_cast<size_t>(t) * chunk, hi = std::min(n, lo + chunk);
        for (size_t i = lo; i < hi; ++i) a[i] = b[i] + 3.0f * c[i];
      });
    }
    for (auto& th : pool) th.join();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) best = std::max(best, 3.0 * static_cast<double>(n * sizeof(float)) / s);
  }
  volatile float sink = a[n / 2];  // keep the loop
  (void)sink;
  return best;
}

double relative_error(double predicted, double measured) {
  if (!(measured > 0)) throw std::invalid_argument("replay: measured time must be > 0");
  return (predicted - measured) / measured;
}

}  // namespace audit::replay
