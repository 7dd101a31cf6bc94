// Recipe loading: strict TOML -> section structs, --set overrides, cross-field checks, the
// canonical resolved TOML and its SHA-256. One list of fields per section (visit_* below) drives
// the reader, the writer and the --set key table, so the three cannot drift apart.
#include "reproduce/recipe/recipe.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <sys/stat.h>

#include "datasets/tasks/tasks.h"  // the task family's operation and format names
#include "common/format.h"  // text::edit_distance
#include "common/sha256.h"
#include "suites/lm_eval/lm_eval.h"  // claim.results_from
#include "reproduce/hf_checkpoint/hf_config.h"  // read_config: [base] from a config.json

namespace audit::recipe {
namespace {

constexpr int64_t kIntMax = std::numeric_limits<int64_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();
const char* const kSetSource = "--set";  // source path given to --set values

// ---------------------------------------------------------------- the fields, once per section
// Each visit_* lists the section's fields in canonical order with their checks. V is one of
// Reader (TOML -> struct), Writer (struct -> TOML) or KeyCollector (key -> kind, for --set).

template <class V>
void visit_result(V& v, ClaimResult& r) {
  v.str("benchmark", r.benchmark, true);
  v.real("score", r.score, 0, 100, true);
  v.integer("n", r.n, 0);
  std::vector<std::string> splits = {""};
  splits.insert(splits.end(), kSplitNames.begin(), kSplitNames.end());
  v.choice("split", r.split, splits);
  v.str("suite", r.suite);
}

template <class V>
void visit_phase(V& v, ClaimPhase& p) {
  v.str("phase", p.phase, true);
  v.real("gpu_hours", p.gpu_hours, 0, kInf, true);
  v.str("source", p.source);
}

template <class V>
void visit_reference_run(V& v, ReferenceRun& r) {
  v.str("description", r.description, true);
  v.str("gpu_type", r.gpu_type);
  v.integer("gpu_count", r.gpu_count, 0);
  v.real("wall_seconds", r.wall_seconds, 0);
  v.str("source", r.source);
}

template <class V>
void visit_claim(V& v, ClaimSection& c) {
  v.str("name", c.name, true);
  v.str("title", c.title);
  v.str("headline", c.headline);
  v.strings("sources", c.sources);
  v.real("claimed_cost_usd", c.claimed_cost_usd, 0);
  v.real("claimed_gpu_hour_usd", c.claimed_gpu_hour_usd, 0);
  v.str("gpu_type", c.gpu_type);
  v.integer("gpu_count", c.gpu_count, 0);
  v.integer("nodes", c.nodes, 0);
  v.real("wall_hours", c.wall_hours, 0);
  v.real("gpu_hours", c.gpu_hours, 0);
  v.choice("stage", c.stage, {"sft", "pretrain", "rl"});
  v.table_array("results", c.results, [](auto& e, ClaimResult& x) { visit_result(e, x); });
  v.str("results_from", c.results_from);
  v.str("results_metric", c.results_metric);
  v.str("results_read_from", c.results_read_from);
  v.table_array("phases", c.phases, [](auto& e, ClaimPhase& x) { visit_phase(e, x); });
  v.table_array("reference_runs", c.reference_runs,
                [](auto& e, ReferenceRun& x) { visit_reference_run(e, x); });
}

template <class V>
void visit_base(V& v, BaseSection& b) {
  v.str("name", b.name);
  v.str("checkpoint", b.checkpoint);
  v.str("config", b.config);
  v.str("claimed_model", b.claimed_model);
  v.choice("arch", b.arch, {"qwen2", "llama", "mistral", "deepseek_v3", "qwen2_moe", "mixtral"});
  v.integer("vocab_size", b.vocab, 1);
  v.integer("hidden", b.hidden, 1);
  v.integer("layers", b.layers, 1);
  v.integer("heads", b.heads, 1);
  v.integer("kv_heads", b.kv_heads, 1);
  v.integer("head_dim", b.head_dim, 1);
  v.integer("ffn", b.ffn, 1);
  v.real("rope_theta", b.rope_theta, 1e-9);
  v.integer("max_position", b.max_position, 1);
  v.real("rms_eps", b.rms_eps, 1e-12, 1.0);
  v.boolean("qkv_bias", b.qkv_bias);
  v.boolean("tie_embeddings", b.tie_embeddings);
  v.choice("rope_scaling", b.rope_scaling, {"", "llama3"});
  v.real("rope_factor", b.rope_factor, 1e-9);
  v.real("rope_low_freq_factor", b.rope_low_freq_factor, 1e-9);
  v.real("rope_high_freq_factor", b.rope_high_freq_factor, 1e-9);
  v.integer("rope_original_max_position", b.rope_original_max_position, 0);
  v.integer("sliding_window", b.sliding_window, 0);
  v.integer("routed_experts", b.routed_experts, 0);
  v.integer("shared_experts", b.shared_experts, 0);
  v.integer("top_k", b.top_k, 0);
  v.integer("expert_ffn", b.expert_ffn, 0);
  v.integer("shared_expert_ffn", b.shared_expert_ffn, 0);
  v.integer("first_dense_layers", b.first_dense_layers, 0);
  v.choice("score_func", b.score_func, {"softmax", "sigmoid"});
  v.real("routed_scaling", b.routed_scaling, 1e-9);
  v.integer("expert_groups", b.expert_groups, 1);
  v.integer("topk_groups", b.topk_groups, 1);
  v.integer("mtp_depth", b.mtp_depth, 0);
  v.integer("q_lora_rank", b.q_lora_rank, 0);
  v.integer("kv_lora_rank", b.kv_lora_rank, 0);
  v.integer("qk_nope_head_dim", b.qk_nope_head_dim, 0);
  v.integer("qk_rope_head_dim", b.qk_rope_head_dim, 0);
  v.integer("v_head_dim", b.v_head_dim, 0);
  v.real("pretrain_tokens", b.pretrain_tokens, 0);
  v.str("pretrain_source", b.pretrain_source);
  v.real("declared_params", b.declared_params, 0);
  v.real("declared_active_params", b.declared_active_params, 0);
  v.real("amortize_share", b.amortize_share, 0, 1);
  v.str("amortize_source", b.amortize_source);
  v.boolean("train_here", b.train_here);
  v.integer("pretrain_steps", b.pretrain_steps, 0);
  v.integer("pretrain_batch", b.pretrain_batch, 1);
  v.real("pretrain_lr", b.pretrain_lr, 1e-12, 1.0);
  v.integer("pretrain_examples", b.pretrain_examples, 0);
  v.integer("pretrain_seq_len", b.pretrain_seq_len, 1);
  v.real("pretrain_skills_fraction", b.pretrain_skills_fraction, 0, 1);
}

template <class V>
void visit_data(V& v, DataSection& d) {
  v.choice("source", d.source, {"synthetic", "jsonl"});
  v.str("jsonl_path", d.jsonl_path);
  v.str("question_field", d.question_field);
  v.str("thinking_field", d.thinking_field);
  v.str("answer_field", d.answer_field);
  v.integer("pool_size", d.pool_size, 1);
  v.integer("select_n", d.select_n, 1);
  v.integer("seed", d.seed, 0);
  v.strings("operations", d.operations);
  v.integer("min_digits", d.min_digits, 1, 1000);
  v.integer("max_digits", d.max_digits, 1, 1000);
  v.integer("ood_long_digits", d.ood_long_digits, 1, 1000);
  v.integer("ood_long_max_digits", d.ood_long_max_digits, 0, 1000);
  v.str("ood_heldout_op", d.ood_heldout_op);
  v.str("ood_format", d.ood_format);
  v.choice("teacher", d.teacher, {"solver", "model", "api"});
  v.str("teacher_name", d.teacher_name);
  v.real("teacher_tokens_per_sample", d.teacher_tokens_per_sample, 0);
  v.integer("pool_size_declared", d.pool_size_declared, 0);
  v.boolean("filter_quality", d.filter_quality);
  v.boolean("filter_difficulty", d.filter_difficulty);
  v.boolean("filter_diversity", d.filter_diversity);
  v.band("seq_len_mean", d.seq_len_mean, 0, kInf, false);
  v.band("seq_len_p90", d.seq_len_p90, 0, kInf, false);
  v.integer("seq_len_max", d.seq_len_max, 0);
  v.str("seq_len_source", d.seq_len_source);
}

template <class V>
void visit_train(V& v, TrainSection& t) {
  v.integer("epochs", t.epochs, 0, 100000);
  v.integer("steps", t.steps, 0);
  v.integer("global_batch", t.global_batch, 1);
  v.integer("micro_batch", t.micro_batch, 0);
  v.real("lr", t.lr, 1e-12, 1.0);
  v.real("warmup_frac", t.warmup_frac, 0, 1);
  v.choice("schedule", t.schedule, {"cosine", "linear", "constant"});
  v.real("min_lr_frac", t.min_lr_frac, 0, 1);
  v.choice("optimizer", t.optimizer, {"adamw"});
  v.real("beta1", t.beta1, 0, 0.999999);
  v.real("beta2", t.beta2, 0, 0.999999999);
  v.real("adam_eps", t.adam_eps, 1e-30, 1.0);
  v.real("weight_decay", t.weight_decay, 0, 10);
  v.real("grad_clip", t.grad_clip, 0);
  v.integer("block_size", t.block_size, 1);
  v.choice("precision", t.precision, {"fp32", "bf16", "fp8"});
  v.boolean("packing", t.packing);
  v.boolean("recompute", t.recompute);
  v.choice("parallelism", t.parallelism,
           {"none", "ddp", "fsdp_full_shard", "fsdp_shard_grad_op", "zero1", "zero3", "ep_pp_dp"});
  v.choice("loss_on", t.loss_on, {"answer", "all"});
  v.integer("seed", t.seed, 0);
  v.integer("checkpoint_every", t.checkpoint_every, 0);
  v.integer("threads", t.threads, 0, 4096);
}

template <class V>
void visit_suite(V& v, EvalSuite& s) {
  v.str("name", s.name, true);
  v.str("path", s.path, true);
  v.choice("kind", s.kind, {"math", "choice", "exact"});
  v.boolean("ood", s.ood);
  v.str("question_field", s.question_field);
  v.str("answer_field", s.answer_field);
  v.str("choices_field", s.choices_field);
  v.integer("limit", s.limit, 0);
}

template <class V>
void visit_eval(V& v, EvalSection& e) {
  v.integer("seeds", e.seeds, 1, 1000);
  v.integer("n_id", e.n_id, 0);
  v.integer("n_ood", e.n_ood, 0);
  v.integer("max_new_tokens", e.max_new_tokens, 1);
  v.integers("think_budgets", e.think_budgets, 1, kIntMax);
  v.integer("wait_extensions", e.wait_extensions, 0, 1000);
  v.boolean("greedy", e.greedy);
  v.real("temperature", e.temperature, 0, 100);
  v.real("top_p", e.top_p, 1e-9, 1);
  v.integer("samples", e.samples, 1, 100000);
  v.integer("batch_size", e.batch_size, 1, 1 << 20);
  v.str("suites_dir", e.suites_dir);
  v.table_array("suites", e.suites, [](auto& x, EvalSuite& s) { visit_suite(x, s); });
}

template <class V>
void visit_prices(V& v, PricesSection& p) {
  v.band("gpu_hour_usd", p.gpu_hour_usd, 0, kInf, true);
  v.band("cpu_hour_usd", p.cpu_hour_usd, 0, kInf, true);
  v.band("api_usd_per_mtok", p.api_usd_per_mtok, 0, kInf, true);
  v.band("kwh_usd", p.kwh_usd, 0, kInf, true);
  v.band("pue", p.pue, 1, 5, true);
  v.band("co2_kg_per_kwh", p.co2_kg_per_kwh, 0, 10, true);
  v.band("expert_hour_usd", p.expert_hour_usd, 0, kInf, true);
  v.band("base_mfu", p.base_mfu, 1e-6, 1, true);
}

template <class V>
void visit_hardware(V& v, HardwareSection& h) {
  v.str("gpu_type", h.gpu_type);
  v.integer("gpu_count", h.gpu_count, 0);
  v.integer("nodes", h.nodes, 0);
  v.integer("gpus_per_node", h.gpus_per_node, 1, 1024);
  v.str("interconnect", h.interconnect);
}

template <class V>
void visit_replay(V& v, ReplaySection& r) {
  v.integer("layers", r.layers, 0);
  v.integer("steps", r.steps, 1, 100000);
  v.integer("warmup_steps", r.warmup_steps, 0, 100000);
  v.integers("seq_lens", r.seq_lens, 1, kIntMax);
  v.real("overlap_low", r.overlap_low, 0, 1);
  v.real("overlap_high", r.overlap_high, 0, 1);
}

template <class V>
void visit_regression(V& v, RegressionSection& r) {
  v.real("cost_growth_pct", r.cost_growth_pct, 0, 1e6);
  v.real("gpu_hours_growth_pct", r.gpu_hours_growth_pct, 0, 1e6);
  v.real("accuracy_drop_points", r.accuracy_drop_points, 0, 100);
  v.real("throughput_ratio", r.throughput_ratio, 0, 1);
  v.boolean("verdict_changes", r.verdict_changes);
}

template <class V>
void visit_extra(V& v, ExtraCost& x) {
  v.str("category", x.category, true);
  v.str("description", x.description);
  v.real("quantity", x.quantity, 0, kInf, true);
  v.choice("unit", x.unit, kExtraUnits, true);
  v.str("gpu_type", x.gpu_type);
  v.choice("provenance", x.provenance, {"declared", "estimated"});
  v.str("formula", x.formula);
  v.band("price_usd", x.price_usd, 0, kInf, true);
  v.str("source", x.source);
}

template <class V>
void visit_launch_eval(V& v, LaunchEvalSection& e) {
  v.command("command", e.command);
  v.str("workdir", e.workdir);
  v.string_map("env", e.env);
  v.duration("timeout", e.timeout);
  v.str("results", e.results);
}

template <class V>
void visit_launch(V& v, LaunchSection& l) {
  v.command("command", l.command);
  v.str("workdir", l.workdir);
  v.string_map("env", l.env);
  v.str("output_dir", l.output_dir);
  v.choice("log_format", l.log_format, {"hf-trainer", "regex", "none"});
  v.str("log_regex", l.log_regex);
  v.duration("timeout", l.timeout);
  v.real("grace", l.grace, 0, 86400);
  v.cap("max_gpu_hours", l.max_gpu_hours);
  v.cap("max_usd", l.max_usd);
  v.optional_section("eval", l.eval.set, [&](auto& s) { visit_launch_eval(s, l.eval); });
}

template <class V>
void visit_recipe(V& v, Recipe& r) {
  v.section("claim", [&](auto& s) { visit_claim(s, r.claim); });
  v.section("base", [&](auto& s) { visit_base(s, r.base); });
  v.section("data", [&](auto& s) { visit_data(s, r.data); });
  v.section("train", [&](auto& s) { visit_train(s, r.train); });
  v.section("eval", [&](auto& s) { visit_eval(s, r.eval); });
  v.section("prices", [&](auto& s) { visit_prices(s, r.prices); });
  v.section("hardware", [&](auto& s) { visit_hardware(s, r.hardware); });
  v.section("replay", [&](auto& s) { visit_replay(s, r.replay); });
  v.optional_section("launch", r.launch.set, [&](auto& s) { visit_launch(s, r.launch); });
  v.section("regression", [&](auto& s) { visit_regression(s, r.regression); });
  v.table_array("extras", r.extras, [](auto& e, ExtraCost& x) { visit_extra(e, x); });
}

// ---------------------------------------------------------------- formatting helpers

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// Shortest text that reads back as exactly d, always recognisable as a TOML float.
std::string toml_double(double d) {
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string s = buf;
  if (!std::isfinite(d)) return std::isnan(d) ? "nan" : (d < 0 ? "-inf" : "inf");
  if (std::fabs(d) < 1e7 && d == std::floor(d) && s.find_first_of("eE") != std::string::npos) {
    std::snprintf(buf, sizeof buf, "%.0f", d);  // 10000.0 rather than 1e+04
    s = buf;
  }
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string describe(const toml::node& n) {
  std::ostringstream os;
  if (auto s = n.as_string()) return "string " + toml_string(s->get());
  if (auto i = n.as_integer()) return "integer " + std::to_string(i->get());
  if (auto f = n.as_floating_point()) return "floating-point number " + toml_double(f->get());
  if (auto b = n.as_boolean()) return std::string("boolean ") + (b->get() ? "true" : "false");
  if (n.is_array()) return "array";
  if (n.is_table()) return "table";
  if (n.is_date()) return "date";
  if (n.is_time()) return "time";
  if (n.is_date_time()) return "date-time";
  return "value";
}

std::string suggestion(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = std::max<size_t>(2, key.size() / 3) + 1;
  for (const auto& k : known) {
    size_t d = text::edit_distance(key, k);
    if (d < best_d) best_d = d, best = k;
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

// ---------------------------------------------------------------- where values came from

struct Loc {
  std::string file;
  long line = 0, column = 0;
};

struct ParseCtx {
  std::string file;                  // recipe name used in messages
  std::map<std::string, Loc> locs;   // dotted key -> where its value was written
};

Loc loc_of(const ParseCtx& ctx, const toml::source_region& src) {
  if (src.path && *src.path == kSetSource) return {kSetSource, 0, 0};
  return {ctx.file, static_cast<long>(src.begin.line), static_cast<long>(src.begin.column)};
}

[[noreturn]] void fail(const Loc& at, const std::string& key, const std::string& msg) {
  throw InputError(at.file, at.line, at.column, key, msg);
}

// ---------------------------------------------------------------- Reader: TOML -> structs

class Reader {
 public:
  Reader(ParseCtx& ctx, const toml::table* tbl, std::string prefix, Loc where, bool root)
      : ctx_(ctx), tbl_(tbl), prefix_(std::move(prefix)), where_(std::move(where)), root_(root) {}

  template <class F>
  void section(const char* name, F fn) {
    const toml::node* n = get(name);
    if (n && !n->is_table())
      fail(loc_of(ctx_, n->source()), name,
           std::string("expected a table [") + name + "], got " + describe(*n));
    Loc where = n ? loc_of(ctx_, n->source()) : Loc{ctx_.file, 0, 0};
    Reader sub(ctx_, n ? n->as_table() : nullptr, name, where, false);
    fn(sub);
    sub.finish();
  }

  // A table that may be absent; `set` says whether it is there.
  template <class F>
  void optional_section(const char* name, bool& set, F fn) {
    const toml::node* n = get(name);
    if (n && !n->is_table())
      fail(loc_of(ctx_, n->source()), dotted(name),
           "expected a table [" + dotted(name) + "], got " + describe(*n));
    set = n != nullptr;
    if (n) ctx_.locs[dotted(name)] = loc_of(ctx_, n->source());
    Loc where = n ? loc_of(ctx_, n->source()) : Loc{ctx_.file, 0, 0};
    Reader sub(ctx_, n ? n->as_table() : nullptr, dotted(name), where, false);
    fn(sub);
    sub.finish();
  }

  // argv as an array of strings, or one string run by sh -c.
  void command(const char* key, std::vector<std::string>& out) {
    const toml::node* n = value(key, false);
    if (!n) return;
    if (n->is_string()) {
      const std::string& text = n->as_string()->get();
      out.clear();
      if (text.find_first_not_of(" \t\n") != std::string::npos) out = {"sh", "-c", text};
      return;
    }
    if (!n->is_array())
      type_error(*n, key, "a string (run by sh -c) or an array of strings (the argv)");
    strings(key, out);
  }

  // A table of string values, e.g. env = { CUDA_VISIBLE_DEVICES = "0,1" }.
  void string_map(const char* key, std::map<std::string, std::string>& out) {
    const toml::node* n = value(key, false);
    if (!n) return;
    const toml::table* t = n->as_table();
    if (!t) type_error(*n, key, "a table of strings, e.g. { NAME = \"value\" }");
    out.clear();
    for (auto&& [k, e] : *t) {
      const std::string name(k.str());
      if (!e.is_string())
        fail(loc_of(ctx_, e.source()), dotted(key) + "." + name,
             "expected a string, got " + describe(e));
      if (name.empty() || name.find('=') != std::string::npos)
        fail(loc_of(ctx_, e.source()), dotted(key) + "." + name,
             "an environment variable's name must be non-empty and hold no '='");
      out[name] = e.as_string()->get();
    }
  }

  // Seconds as a positive number, or a string such as "90m", "2h", "30s"; absent = 0 (none).
  void duration(const char* key, double& out) {
    const toml::node* n = value(key, false);
    if (!n) return;
    double v = 0;
    if (n->is_string()) {
      if (!parse_duration(n->as_string()->get(), &v))
        fail(loc_of(ctx_, n->source()), dotted(key),
             "cannot read " + toml_string(n->as_string()->get()) +
                 " as a duration; write seconds as a number, or e.g. \"90m\", \"2h\", \"30s\"");
    } else {
      v = read_real(*n, dotted(key), -kInf, kInf);
    }
    if (!(v > 0))
      fail(loc_of(ctx_, n->source()), dotted(key),
           "must be a positive duration, got " + toml_double(v) + " s (leave it out for none)");
    out = v;
  }

  // A budget cap: absent = no cap; when given it must be > 0.
  void cap(const char* key, double& out) {
    const toml::node* n = value(key, false);
    if (!n) return;
    const double v = read_real(*n, dotted(key), -kInf, kInf);
    if (!(v > 0))
      fail(loc_of(ctx_, n->source()), dotted(key),
           "a cap must be positive, got " + toml_double(v) + " (leave it out for no cap)");
    out = v;
  }

  void str(const char* key, std::string& out, bool required = false) {
    if (const toml::node* n = value(key, required)) {
      if (!n->is_string()) type_error(*n, key, "a string");
      out = n->as_string()->get();
    }
  }

  void choice(const char* key, std::string& out, const std::vector<std::string>& choices,
              bool required = false) {
    if (const toml::node* n = value(key, required)) {
      if (!n->is_string()) type_error(*n, key, "a string");
      const std::string& s = n->as_string()->get();
      if (std::find(choices.begin(), choices.end(), s) == choices.end()) {
        std::vector<std::string> quoted;
        for (const auto& c : choices) quoted.push_back(toml_string(c));
        fail(loc_of(ctx_, n->source()), dotted(key),
             "invalid value " + toml_string(s) + "; must be one of " + join(quoted, ", ") +
                 suggestion(s, choices));
      }
      out = s;
    }
  }

  void integer(const char* key, int64_t& out, int64_t lo, int64_t hi = kIntMax,
               bool required = false) {
    if (const toml::node* n = value(key, required)) out = read_int(*n, dotted(key), lo, hi);
  }

  void real(const char* key, double& out, double lo, double hi = kInf, bool required = false) {
    if (const toml::node* n = value(key, required)) out = read_real(*n, dotted(key), lo, hi);
  }

  void boolean(const char* key, bool& out) {
    if (const toml::node* n = value(key, false)) {
      if (!n->is_boolean()) type_error(*n, key, "a boolean (true or false)");
      out = n->as_boolean()->get();
    }
  }

  void strings(const char* key, std::vector<std::string>& out) {
    const toml::node* n = value(key, false);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a) type_error(*n, key, "an array of strings");
    out.clear();
    for (size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      if (!e.is_string())
        fail(loc_of(ctx_, e.source()), elem(key, i),
             "expected a string, got " + describe(e) + " (array of strings)");
      out.push_back(e.as_string()->get());
    }
  }

  void integers(const char* key, std::vector<int64_t>& out, int64_t lo, int64_t hi) {
    const toml::node* n = value(key, false);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a) type_error(*n, key, "an array of integers");
    out.clear();
    for (size_t i = 0; i < a->size(); ++i) out.push_back(read_int(*a->get(i), elem(key, i), lo, hi));
  }

  void band(const char* key, Band& out, double lo, double hi, bool with_source) {
    if (const toml::node* n = value(key, false)) {
      const toml::array* a = n->as_array();
      if (!a) type_error(*n, key, "an array [low, mid, high] (or [] for unset)");
      if (a->size() == 0) {
        out.set = false;
        out.low = out.mid = out.high = 0;
      } else if (a->size() != 3) {
        fail(loc_of(ctx_, n->source()), dotted(key),
             "expected [low, mid, high] (3 numbers) or [] for unset, got " +
                 std::to_string(a->size()) + " elements");
      } else {
        double v[3];
        for (size_t i = 0; i < 3; ++i) v[i] = read_real(*a->get(i), elem(key, i), lo, hi);
        if (!(v[0] <= v[1] && v[1] <= v[2]))
          fail(loc_of(ctx_, n->source()), dotted(key),
               "band must satisfy low <= mid <= high, got [" + toml_double(v[0]) + ", " +
                   toml_double(v[1]) + ", " + toml_double(v[2]) + "]");
        out.set = true;
        out.low = v[0], out.mid = v[1], out.high = v[2];
      }
    }
    if (with_source) str((std::string(key) + "_source").c_str(), out.source);
  }

  template <class T, class F>
  void table_array(const char* key, std::vector<T>& out, F fn) {
    const toml::node* n = value(key, false);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a) type_error(*n, key, "an array of tables ([[" + dotted(key) + "]] or [{...}, ...])");
    out.clear();
    for (size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      if (!e.is_table())
        fail(loc_of(ctx_, e.source()), elem(key, i), "expected a table, got " + describe(e));
      T item{};
      Reader sub(ctx_, e.as_table(), elem(key, i), loc_of(ctx_, e.source()), false);
      fn(sub, item);
      sub.finish();
      out.push_back(std::move(item));
    }
  }

  // Refuses every key nobody asked for.
  void finish() {
    if (!tbl_) return;
    for (auto&& [k, node] : *tbl_) {
      std::string name(k.str());
      if (std::find(known_.begin(), known_.end(), name) != known_.end()) continue;
      Loc at = loc_of(ctx_, k.source());
      if (at.line == 0 && at.file != kSetSource) at = loc_of(ctx_, node.source());
      if (root_)
        fail(at, name,
             (node.is_table() ? "unknown section [" + name + "]"
                              : "unknown top-level key '" + name + "'") +
                 "; known sections: " + join(known_, ", ") + suggestion(name, known_));
      fail(at, dotted(name),
           "unknown key in [" + prefix_ + "]" + suggestion(name, known_) + "; known keys: " +
               join(known_, ", "));
    }
  }

 private:
  std::string dotted(const std::string& key) const {
    return prefix_.empty() ? key : prefix_ + "." + key;
  }
  std::string elem(const std::string& key, size_t i) const {
    return dotted(key) + "[" + std::to_string(i) + "]";
  }

  const toml::node* get(const char* key) {
    known_.push_back(key);
    return tbl_ ? tbl_->get(key) : nullptr;
  }

  const toml::node* value(const char* key, bool required) {
    const toml::node* n = get(key);
    if (!n) {
      if (required)
        fail(where_, dotted(key),
             "missing required key" +
                 (prefix_.empty() ? std::string()
                  : tbl_         ? " in [" + prefix_ + "]"
                                 : " (the recipe has no [" + prefix_ + "] section)"));
      return nullptr;
    }
    ctx_.locs[dotted(key)] = loc_of(ctx_, n->source());
    return n;
  }

  [[noreturn]] void type_error(const toml::node& n, const std::string& key,
                               const std::string& expected) {
    fail(loc_of(ctx_, n.source()), dotted(key), "expected " + expected + ", got " + describe(n));
  }

  int64_t read_int(const toml::node& n, const std::string& key, int64_t lo, int64_t hi) {
    if (!n.is_integer())
      fail(loc_of(ctx_, n.source()), key, "expected an integer, got " + describe(n));
    int64_t v = n.as_integer()->get();
    if (v < lo || v > hi)
      fail(loc_of(ctx_, n.source()), key,
           "out of range: " + std::to_string(v) + " (must be " + range_text(lo, hi) + ")");
    return v;
  }

  double read_real(const toml::node& n, const std::string& key, double lo, double hi) {
    double v;
    if (n.is_integer()) v = static_cast<double>(n.as_integer()->get());
    else if (n.is_floating_point()) v = n.as_floating_point()->get();
    else fail(loc_of(ctx_, n.source()), key, "expected a number, got " + describe(n));
    if (!std::isfinite(v))
      fail(loc_of(ctx_, n.source()), key, "must be a finite number, got " + toml_double(v));
    if (v < lo || v > hi)
      fail(loc_of(ctx_, n.source()), key,
           "out of range: " + toml_double(v) + " (must be " + range_text(lo, hi) + ")");
    return v;
  }

  template <class T>
  static std::string range_text(T lo, T hi) {
    auto f = [](T x) {
      if constexpr (std::is_integral_v<T>) return std::to_string(x);
      else return toml_double(x);
    };
    bool open_hi;
    if constexpr (std::is_integral_v<T>) open_hi = hi == kIntMax;
    else open_hi = std::isinf(hi);
    if (open_hi) return ">= " + f(lo);
    return "in [" + f(lo) + ", " + f(hi) + "]";
  }

  ParseCtx& ctx_;
  const toml::table* tbl_;
  std::string prefix_;
  Loc where_;
  bool root_;
  std::vector<std::string> known_;
};

// ---------------------------------------------------------------- Writer: structs -> TOML

class Writer {
 public:
  enum class Mode { root, section, inline_table };
  explicit Writer(Mode mode) : mode_(mode) {}

  template <class F>
  void section(const char* name, F fn) {
    Writer sub(Mode::section);
    fn(sub);
    if (!out_.empty()) out_ += "\n";
    out_ += "[" + std::string(name) + "]\n" + sub.out_;
  }

  // Written only when set; a table inside a section comes after the section's keys.
  template <class F>
  void optional_section(const char* name, bool& set, F fn) {
    if (!set) return;
    const std::string full = prefix_.empty() ? name : prefix_ + "." + name;
    Writer sub(Mode::section);
    sub.prefix_ = full;
    fn(sub);
    std::string& into = mode_ == Mode::root ? out_ : nested_;
    if (!into.empty() || mode_ != Mode::root) into += "\n";
    into += "[" + full + "]\n" + sub.out_ + sub.nested_;
  }

  void command(const char* key, std::vector<std::string>& v) { strings(key, v); }
  void string_map(const char* key, std::map<std::string, std::string>& m) {
    std::vector<std::string> parts;
    for (const auto& [k, v] : m) parts.push_back(toml_string(k) + " = " + toml_string(v));
    put(key, parts.empty() ? "{}" : "{ " + join(parts, ", ") + " }");
  }
  void duration(const char* key, double& v) {
    if (v > 0) put(key, toml_double(v));
  }
  void cap(const char* key, double& v) {
    if (v > 0) put(key, toml_double(v));
  }

  void str(const char* key, std::string& v, bool = false) { put(key, toml_string(v)); }
  void choice(const char* key, std::string& v, const std::vector<std::string>&, bool = false) {
    put(key, toml_string(v));
  }
  void integer(const char* key, int64_t& v, int64_t, int64_t = 0, bool = false) {
    put(key, std::to_string(v));
  }
  void real(const char* key, double& v, double, double = 0, bool = false) {
    put(key, toml_double(v));
  }
  void boolean(const char* key, bool& v) { put(key, v ? "true" : "false"); }
  void strings(const char* key, std::vector<std::string>& v) {
    std::vector<std::string> parts;
    for (const auto& s : v) parts.push_back(toml_string(s));
    std::string one_line = "[" + join(parts, ", ") + "]";
    if (mode_ == Mode::inline_table || one_line.size() <= 80) return put(key, one_line);
    std::string text = "[\n";  // long lists (citations): one element per line
    for (const auto& p : parts) text += "  " + p + ",\n";
    put(key, text + "]");
  }
  void integers(const char* key, std::vector<int64_t>& v, int64_t, int64_t) {
    std::vector<std::string> parts;
    for (auto x : v) parts.push_back(std::to_string(x));
    put(key, "[" + join(parts, ", ") + "]");
  }
  void band(const char* key, Band& b, double, double, bool with_source) {
    put(key, b.set ? "[" + toml_double(b.low) + ", " + toml_double(b.mid) + ", " +
                         toml_double(b.high) + "]"
                   : "[]");
    if (with_source) put((std::string(key) + "_source").c_str(), toml_string(b.source));
  }

  template <class T, class F>
  void table_array(const char* key, std::vector<T>& v, F fn) {
    if (mode_ == Mode::root) {  // [[key]] blocks after every section
      for (auto& item : v) {
        Writer sub(Mode::section);
        fn(sub, item);
        out_ += "\n[[" + std::string(key) + "]]\n" + sub.out_;
      }
      return;
    }
    if (v.empty()) return put(key, "[]");
    std::string text = "[\n";
    for (auto& item : v) {
      Writer sub(Mode::inline_table);
      fn(sub, item);
      text += "  { " + join(sub.parts_, ", ") + " },\n";
    }
    put(key, text + "]");
  }

  const std::string& text() const { return out_; }

 private:
  std::string prefix_;   // the dotted name of the section being written ("" at the top)
  std::string nested_;   // tables inside this section, written after its keys
  void put(const std::string& key, const std::string& value) {
    if (mode_ == Mode::inline_table) parts_.push_back(key + " = " + value);
    else out_ += key + " = " + value + "\n";
  }

  Mode mode_;
  std::string out_;
  std::vector<std::string> parts_;
};

// ---------------------------------------------------------------- KeyCollector: the key table

enum class Kind { string, integer, real, boolean, strings, integers, band, tables, command,
                  string_map };

class KeyCollector {
 public:
  std::map<std::string, std::map<std::string, Kind>> sections;  // "" = top level

  template <class F>
  void section(const char* name, F fn) {
    KeyCollector sub;
    fn(sub);
    sections[name] = sub.sections[""];
  }
  template <class F>
  void optional_section(const char* name, bool&, F fn) {
    KeyCollector sub;
    fn(sub);
    sections[name] = sub.sections[""];  // (a table inside a section is not settable by --set)
  }
  void command(const char* k, std::vector<std::string>&) { add(k, Kind::command); }
  void string_map(const char* k, std::map<std::string, std::string>&) {
    add(k, Kind::string_map);
  }
  void duration(const char* k, double&) { add(k, Kind::command); }  // a number or a string
  void cap(const char* k, double&) { add(k, Kind::real); }
  void str(const char* k, std::string&, bool = false) { add(k, Kind::string); }
  void choice(const char* k, std::string&, const std::vector<std::string>&, bool = false) {
    add(k, Kind::string);
  }
  void integer(const char* k, int64_t&, int64_t, int64_t = 0, bool = false) {
    add(k, Kind::integer);
  }
  void real(const char* k, double&, double, double = 0, bool = false) { add(k, Kind::real); }
  void boolean(const char* k, bool&) { add(k, Kind::boolean); }
  void strings(const char* k, std::vector<std::string>&) { add(k, Kind::strings); }
  void integers(const char* k, std::vector<int64_t>&, int64_t, int64_t) { add(k, Kind::integers); }
  void band(const char* k, Band&, double, double, bool with_source) {
    add(k, Kind::band);
    if (with_source) add(std::string(k) + "_source", Kind::string);
  }
  template <class T, class F>
  void table_array(const char* k, std::vector<T>&, F) { add(k, Kind::tables); }

 private:
  void add(const std::string& k, Kind kind) { sections[""][k] = kind; }
};

const KeyCollector& key_table() {
  static const KeyCollector keys = [] {
    KeyCollector kc;
    Recipe r;
    visit_recipe(kc, r);
    return kc;
  }();
  return keys;
}

std::vector<std::string> names_of(const std::map<std::string, Kind>& m) {
  std::vector<std::string> out;
  for (const auto& kv : m) out.push_back(kv.first);
  return out;
}

// ---------------------------------------------------------------- --set overrides

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

void apply_set(toml::table& root, const std::string& set) {
  const Loc at{kSetSource, 0, 0};
  size_t eq = set.find('=');
  if (eq == std::string::npos)
    fail(at, "", "expected section.key=value, got " + toml_string(set));
  std::string key = trim(set.substr(0, eq)), text = trim(set.substr(eq + 1));
  std::string section, name;
  size_t dot = key.find('.');
  if (dot == std::string::npos) {
    name = key;  // only top-level arrays of tables, e.g. extras=[{...}]
  } else {
    section = key.substr(0, dot);
    name = key.substr(dot + 1);
    if (section.empty() || name.empty() || name.find('.') != std::string::npos)
      fail(at, key, "expected section.key=value (one dot), got " + toml_string(set));
  }
  const auto& keys = key_table().sections;
  if (key.empty()) fail(at, "", "expected section.key=value, got " + toml_string(set));
  Kind kind;
  if (section.empty()) {
    auto it = keys.at("").find(name);
    if (it == keys.at("").end()) {
      std::vector<std::string> known;
      for (const auto& kv : keys) if (!kv.first.empty()) known.push_back(kv.first);
      fail(at, key, "expected section.key=value; known sections: " + join(known, ", "));
    }
    kind = it->second;
  } else {
    auto sit = keys.find(section);
    if (sit == keys.end() || section.empty()) {
      std::vector<std::string> known;
      for (const auto& kv : keys) if (!kv.first.empty()) known.push_back(kv.first);
      fail(at, key, "unknown section [" + section + "]" + suggestion(section, known) +
                        "; known sections: " + join(known, ", "));
    }
    auto kit = sit->second.find(name);
    if (kit == sit->second.end())
      fail(at, key, "unknown key in [" + section + "]" + suggestion(name, names_of(sit->second)) +
                        "; known keys: " + join(names_of(sit->second), ", "));
    kind = kit->second;
  }

  // The value is TOML; a bare word (or any unquoted text for a string key) is a string.
  bool quoted = !text.empty() && (text[0] == '"' || text[0] == '\'');
  bool structured = !text.empty() && (text[0] == '[' || text[0] == '{');
  std::string doc = "v = " + text;
  if (kind == Kind::string && !quoted) doc = "v = " + toml_string(text);
  toml::table parsed;
  try {
    parsed = toml::parse(doc, std::string(kSetSource));
  } catch (const toml::parse_error& e) {
    if (quoted || structured || text.empty())
      fail(at, key, "cannot parse value " + toml_string(text) + " as TOML: " +
                        std::string(e.description()));
    parsed = toml::parse("v = " + toml_string(text), std::string(kSetSource));
  }
  toml::table* target = &root;
  if (!section.empty()) {
    toml::node* sec = root.get(section);
    if (!sec) {
      root.insert(section, toml::table{});
      sec = root.get(section);
    }
    target = sec->as_table();
    if (!target)
      fail(at, key, "the recipe's [" + section + "] is not a table; cannot set a key in it");
  }
  // Move (not copy) so the node keeps its "--set" source for error messages.
  parsed.get("v")->visit([&](auto&& n) { target->insert_or_assign(name, std::move(n)); });
}

// ---------------------------------------------------------------- cross-field checks

// Fails at a key's position, or, when the key was not written (a default), at the first of
// `near` that was (e.g. a rank missing for the chosen arch points at arch).
class Validator {
 public:
  explicit Validator(const ParseCtx& ctx) : ctx_(ctx) {}
  void operator()(bool ok, const std::string& key, const std::string& msg,
                  std::initializer_list<const char*> near = {}) const {
    if (ok) return;
    Loc l = at(key);
    for (const char* n : near)
      if (!located(l) && located(at(n))) l = at(n);
    fail(l, key, msg);
  }

 private:
  Loc at(const std::string& key) const {
    auto it = ctx_.locs.find(key);
    return it != ctx_.locs.end() ? it->second : Loc{ctx_.file, 0, 0};
  }
  bool located(const Loc& l) const { return l.line > 0 || l.file != ctx_.file; }
  const ParseCtx& ctx_;
};

// [base]: GQA, MoE and MLA shapes that fit together, and what pretraining here needs.
void validate_base(const BaseSection& b, const Validator& check) {
  check(b.amortize_share == 1.0 || !b.amortize_source.empty(), "base.amortize_source",
        "a base.amortize_share other than 1 needs base.amortize_source (where the share comes "
        "from)",
        {"base.amortize_share"});
  check(b.heads % b.kv_heads == 0, "base.kv_heads",
        "kv_heads (" + std::to_string(b.kv_heads) + ") must divide heads (" +
            std::to_string(b.heads) + ")");
  if (b.routed_experts > 0) {
    check(b.top_k >= 1 && b.top_k <= b.routed_experts, "base.top_k",
          "top_k must be in [1, routed_experts=" + std::to_string(b.routed_experts) + "] for MoE",
          {"base.routed_experts"});
    check(b.expert_ffn >= 1, "base.expert_ffn", "expert_ffn must be >= 1 for MoE",
          {"base.routed_experts"});
    check(b.first_dense_layers <= b.layers, "base.first_dense_layers",
          "first_dense_layers must be <= layers (" + std::to_string(b.layers) + ")",
          {"base.layers"});
    check(b.routed_experts % b.expert_groups == 0, "base.expert_groups",
          "expert_groups must divide routed_experts (" + std::to_string(b.routed_experts) + ")",
          {"base.routed_experts"});
    check(b.topk_groups <= b.expert_groups, "base.topk_groups",
          "topk_groups must be <= expert_groups (" + std::to_string(b.expert_groups) + ")",
          {"base.expert_groups"});
    check(b.topk_groups * (b.routed_experts / b.expert_groups) >= b.top_k, "base.topk_groups",
          "topk_groups * experts per group must be >= top_k",
          {"base.top_k", "base.expert_groups"});
  } else {
    check(b.top_k == 0 && b.shared_experts == 0 && b.first_dense_layers == 0, "base.routed_experts",
          "top_k, shared_experts and first_dense_layers need routed_experts > 0 (MoE)",
          {"base.top_k", "base.shared_experts", "base.first_dense_layers"});
  }
  if (b.arch == "deepseek_v3") {
    check(b.kv_lora_rank > 0, "base.kv_lora_rank",
          "arch \"deepseek_v3\" (MLA) needs kv_lora_rank > 0", {"base.arch"});
    check(b.qk_nope_head_dim > 0 && b.qk_rope_head_dim > 0, "base.qk_rope_head_dim",
          "arch \"deepseek_v3\" (MLA) needs qk_nope_head_dim and qk_rope_head_dim > 0",
          {"base.qk_nope_head_dim", "base.arch"});
    check(b.v_head_dim > 0, "base.v_head_dim", "arch \"deepseek_v3\" (MLA) needs v_head_dim > 0",
          {"base.arch"});
  } else {
    check(b.q_lora_rank == 0 && b.kv_lora_rank == 0, "base.kv_lora_rank",
          "MLA ranks are only for arch \"deepseek_v3\"",
          {"base.q_lora_rank"});
    const bool moe_arch = b.arch == "qwen2_moe" || b.arch == "mixtral";
    check(b.routed_experts == 0 || moe_arch, "base.routed_experts",
          "MoE is only for arch \"deepseek_v3\", \"qwen2_moe\" or \"mixtral\" (" + b.arch +
              " is dense)",
          {"base.arch"});
    check(!moe_arch || b.routed_experts > 0, "base.routed_experts",
          "arch \"" + b.arch + "\" needs routed_experts > 0", {"base.arch"});
  }
  check(b.arch != "mixtral" || b.shared_experts == 0, "base.shared_experts",
        "mixtral has no shared experts", {"base.arch"});
  check(b.shared_expert_ffn == 0 || b.shared_experts > 0, "base.shared_expert_ffn",
        "shared_expert_ffn needs shared_experts > 0", {"base.shared_experts"});
  check(!b.qkv_bias || b.arch == "qwen2" || b.arch == "qwen2_moe", "base.qkv_bias",
        "q/k/v biases are only for arch \"qwen2\" and \"qwen2_moe\" (" + b.arch +
            " has none)",
        {"base.arch"});
  if (b.train_here) {
    check(b.pretrain_steps > 0, "base.pretrain_steps", "train_here = true needs pretrain_steps > 0",
          {"base.train_here"});
    check(b.pretrain_examples > 0, "base.pretrain_examples",
          "train_here = true needs pretrain_examples > 0",
          {"base.train_here"});
  }

}

// [data]: the source, the pool, the operations and the OOD splits.
void validate_data(const DataSection& d, const Validator& check) {
  check(d.source != "jsonl" || !d.jsonl_path.empty(), "data.jsonl_path",
        "source = \"jsonl\" needs jsonl_path", {"data.source"});
  check(d.select_n <= d.pool_size, "data.select_n",
        "select_n (" + std::to_string(d.select_n) + ") must be <= pool_size (" +
            std::to_string(d.pool_size) + ")",
        {"data.pool_size"});
  check(!d.operations.empty(), "data.operations", "needs at least one operation");
  for (size_t i = 0; i < d.operations.size(); ++i) {
    check(!d.operations[i].empty(), "data.operations", "operation names must be non-empty");
    check(std::count(d.operations.begin(), d.operations.end(), d.operations[i]) == 1,
          "data.operations", "operation " + toml_string(d.operations[i]) + " listed twice");
  }
  check(d.min_digits <= d.max_digits, "data.min_digits",
        "min_digits (" + std::to_string(d.min_digits) + ") must be <= max_digits (" +
            std::to_string(d.max_digits) + ")",
        {"data.max_digits"});
  check(d.ood_long_digits > d.max_digits, "data.ood_long_digits",
        "ood_long_digits (" + std::to_string(d.ood_long_digits) +
            ") must exceed max_digits (" + std::to_string(d.max_digits) +
            "): the split tests longer operands than trained on",
        {"data.max_digits"});
  check(d.ood_long_max_digits == 0 || d.ood_long_max_digits >= d.ood_long_digits,
        "data.ood_long_max_digits", "ood_long_max_digits must be 0 or >= ood_long_digits");
  if (d.source == "synthetic") {  // the task family's names (datasets/tasks/tasks.h)
    for (const auto& op : d.operations)
      check(datasets::is_task_op(op), "data.operations",
            "unknown operation " + toml_string(op) + "; known: " + join(datasets::all_ops(), ", "));
    check(d.ood_heldout_op.empty() || datasets::is_task_op(d.ood_heldout_op),
          "data.ood_heldout_op",
          "unknown operation " + toml_string(d.ood_heldout_op) + "; known: " +
              join(datasets::all_ops(), ", "));
    check(d.ood_format.empty() ||
              (datasets::is_task_format(d.ood_format) && d.ood_format != "standard"),
          "data.ood_format",
          "must be a surface format other than the training one (\"standard\"); known: " +
              join(datasets::all_formats(), ", "));
  }
  check(std::find(d.operations.begin(), d.operations.end(), d.ood_heldout_op) ==
            d.operations.end(),
        "data.ood_heldout_op",
        "the held-out operation " + toml_string(d.ood_heldout_op) + " is also in operations",
        {"data.operations"});
  check(!d.seq_len_mean.set || !d.seq_len_p90.set || d.seq_len_p90.low >= d.seq_len_mean.low,
        "data.seq_len_p90", "seq_len_p90 must not be below seq_len_mean");

}

// ---------------------------------------------------------------- [base] from a config.json

// A path of the recipe, relative to the recipe file's folder (as written when absolute).
std::string recipe_relative(const std::string& recipe, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  const auto slash = recipe.find_last_of('/');
  return slash == std::string::npos ? p : recipe.substr(0, slash + 1) + p;
}

bool path_is(const std::string& p, bool dir) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && (dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
}

// The config.json key of a [base] field, for messages.
std::string hf_key(const std::string& field, const std::string& arch) {
  static const std::map<std::string, std::string> keys = {
      {"arch", "model_type"}, {"vocab", "vocab_size"}, {"hidden", "hidden_size"},
      {"layers", "num_hidden_layers"}, {"heads", "num_attention_heads"},
      {"kv_heads", "num_key_value_heads"}, {"ffn", "intermediate_size"},
      {"max_position", "max_position_embeddings"}, {"rms_eps", "rms_norm_eps"},
      {"qkv_bias", "attention_bias"}, {"tie_embeddings", "tie_word_embeddings"},
      {"rope_scaling", "rope_scaling.rope_type"}, {"rope_factor", "rope_scaling.factor"},
      {"rope_low_freq_factor", "rope_scaling.low_freq_factor"},
      {"rope_high_freq_factor", "rope_scaling.high_freq_factor"},
      {"rope_original_max_position", "rope_scaling.original_max_position_embeddings"},
      {"shared_experts", "n_shared_experts"}, {"top_k", "num_experts_per_tok"},
      {"expert_ffn", "moe_intermediate_size"},
      {"shared_expert_ffn", "shared_expert_intermediate_size"},
      {"first_dense_layers", "first_k_dense_replace"}, {"score_func", "scoring_func"},
      {"routed_scaling", "routed_scaling_factor"}, {"expert_groups", "n_group"},
      {"topk_groups", "topk_group"}, {"mtp_depth", "num_nextn_predict_layers"}};
  if (field == "routed_experts")
    return arch == "qwen2_moe" ? "num_experts"
           : arch == "mixtral" ? "num_local_experts" : "n_routed_experts";
  auto it = keys.find(field);
  return it != keys.end() ? it->second : field;
}

std::string show(const std::string& v) { return toml_string(v); }
std::string show(int64_t v) { return std::to_string(v); }
std::string show(double v) { return toml_double(v); }
std::string show(bool v) { return v ? "true" : "false"; }

// base.config / base.checkpoint: the architecture comes from the config.json; every shape key
// typed in the recipe (or by --set) must agree with it.
void apply_hf_config(BaseSection& b, const ParseCtx& ctx) {
  if (b.config.empty() && b.checkpoint.empty()) return;
  const std::string key = b.config.empty() ? "base.checkpoint" : "base.config";
  auto loc = ctx.locs.find(key);
  const Loc at = loc != ctx.locs.end() ? loc->second : Loc{ctx.file, 0, 0};
  std::string path;
  if (!b.config.empty()) {
    path = recipe_relative(ctx.file, b.config);
    if (!path_is(path, false)) fail(at, key, "config file " + path + " not found");
  } else {
    const std::string dir = recipe_relative(ctx.file, b.checkpoint);
    if (!path_is(dir, true)) fail(at, key, "checkpoint directory " + dir + " not found");
    path = dir + "/config.json";
    if (!path_is(path, false)) fail(at, key, "checkpoint " + dir + " has no config.json");
  }
  const hf::HfConfig c = hf::read_config(path);
  // A checkpoint given on the command line re-executes the recipe on that model (e.g. s1 on
  // Qwen2.5-0.5B): the shapes the recipe file types are the claim's model, recorded in
  // base.claimed_model, and result verdicts then say the run's model is not the claim's.
  const bool replaced_by_set = at.file == kSetSource;
  std::vector<std::string> replaced;
  settings::ModelSettings::for_each_field([&](const char* name, auto field) {
    const std::string field_name = name;
    const std::string recipe_key = "base." + (field_name == "vocab" ? "vocab_size" : field_name);
    auto typed = ctx.locs.find(recipe_key);
    if (typed == ctx.locs.end() || b.*field == c.model.*field) return;
    if (replaced_by_set && typed->second.file != kSetSource) {
      replaced.push_back(recipe_key.substr(5) + " " + show(b.*field) + " -> " + show(c.model.*field));
      return;
    }
    fail(typed->second, recipe_key,
         recipe_key + " = " + show(b.*field) + " but " + path + " " +
             hf_key(field_name, c.model.arch) + " = " + show(c.model.*field));
  });
  if (!replaced.empty() && b.claimed_model.empty()) {
    b.claimed_model = (b.name.empty() ? std::string("the recipe's [base]") : b.name) +
                      " (this run uses " + path + ": " + join(replaced, ", ") + ")";
    const std::string dir = recipe_relative(ctx.file, b.checkpoint.empty() ? b.config : b.checkpoint);
    const auto slash = dir.find_last_of('/', dir.size() > 1 ? dir.size() - 2 : 0);
    b.name = slash == std::string::npos ? dir : dir.substr(slash + 1);
  }
  static_cast<settings::ModelSettings&>(b) = c.model;
}

// A launch command: non-empty, with a program name.
void validate_command(const std::vector<std::string>& argv, const std::string& key,
                      const std::string& section, const Validator& check) {
  check(!argv.empty(), key,
        "[" + section + "] needs a non-empty command (an array of strings, or a string run by "
        "sh -c)",
        {section.c_str()});
  check(argv.empty() || !argv[0].empty(), key, "the program name (the first element) is empty");
  for (size_t i = 0; i < argv.size(); ++i)
    check(argv[i].find('\0') == std::string::npos, key, "an argument holds a NUL character");
}

// log_regex: compiles with PCRE2 and has a named group `loss`.
void validate_log_regex(const LaunchSection& l, const Validator& check) {
  if (l.log_format != "regex") {
    check(l.log_regex.empty(), "launch.log_regex",
          "log_regex is only read with log_format = \"regex\" (log_format is " +
              toml_string(l.log_format) + ")");
    return;
  }
  check(!l.log_regex.empty(), "launch.log_regex",
        "log_format = \"regex\" needs log_regex, a PCRE2 pattern with a named group (?<loss>...)",
        {"launch.log_format", "launch"});
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(l.log_regex.data()),
                                   l.log_regex.size(), PCRE2_UTF, &err, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    check(false, "launch.log_regex",
          "invalid regular expression at offset " + std::to_string(offset) + ": " +
              reinterpret_cast<const char*>(msg));
  }
  const bool has_loss =
      pcre2_substring_number_from_name(code, reinterpret_cast<PCRE2_SPTR>("loss")) >= 0;
  pcre2_code_free(code);
  check(has_loss, "launch.log_regex",
        "the pattern needs a named group for the loss, e.g. loss=(?<loss>[0-9.eE+-]+) (step and "
        "lr groups are optional)");
}

// [launch] and [launch.eval]: commands, folders that exist, the log format.
void validate_launch(const Recipe& r, const ParseCtx& ctx, const Validator& check) {
  const LaunchSection& l = r.launch;
  if (!l.set) return;
  validate_command(l.command, "launch.command", "launch", check);
  // The folder is the user's clone of the claimant's code: a recipe names it for `audit run`
  // only, so its absence is kept for the run to refuse, not raised here.
  const std::string wd = recipe_relative(ctx.file, l.workdir.empty() ? "." : l.workdir);
  const std::string why = "workdir " + wd + " is not an existing folder" +
                          (l.workdir.empty() ? " (the recipe's folder is the default)" : "") +
                          " (--set launch.workdir=DIR: the folder the command runs in)";
  try {
    check(path_is(wd, true), "launch.workdir", why, {"launch"});
  } catch (const InputError& e) {
    auto& m = const_cast<LaunchSection&>(l);
    m.workdir_missing = why;
    m.workdir_line = e.line;
    m.workdir_column = e.column;
  }
  validate_log_regex(l, check);
  if (!l.eval.set) return;
  validate_command(l.eval.command, "launch.eval.command", "launch.eval", check);
  if (!l.eval.workdir.empty()) {
    const std::string ewd = recipe_relative(ctx.file, l.eval.workdir);
    check(path_is(ewd, true), "launch.eval.workdir", "workdir " + ewd + " is not an existing folder");
  }
  check(!l.eval.results.empty(), "launch.eval.results",
        "[launch.eval] needs results: the lm-eval results JSON, or the --output_path folder it "
        "writes into (relative to its workdir)",
        {"launch.eval"});
}

// claim.results_from: the tasks of an lm-eval results file become claim.results (recipe.h).
void apply_results_from(ClaimSection& c, const ParseCtx& ctx) {
  if (c.results_from.empty()) return;
  const std::string key = "claim.results_from";
  auto loc = ctx.locs.find(key);
  const Loc at = loc != ctx.locs.end() ? loc->second : Loc{ctx.file, 0, 0};
  const std::string path = recipe_relative(ctx.file, c.results_from);
  std::vector<lm_eval::LmEvalResult> rows;
  std::string file;
  try {
    file = lm_eval::find_lm_eval_results_file(path);
    rows = lm_eval::read_lm_eval_results(file);
  } catch (const InputError& e) {
    fail(at, key, std::string("cannot read the lm-eval results: ") + e.what());
  }
  // Tasks in file order, each with its metrics.
  std::vector<std::string> tasks;
  std::map<std::string, std::vector<const lm_eval::LmEvalResult*>> by_task;
  for (const auto& r : rows) {
    if (!by_task.count(r.task)) tasks.push_back(r.task);
    by_task[r.task].push_back(&r);
  }
  size_t added = 0;
  for (const auto& task : tasks) {
    const auto& ms = by_task[task];
    const lm_eval::LmEvalResult* pick = nullptr;
    if (!c.results_metric.empty()) {
      for (const auto* m : ms)
        if (m->metric == c.results_metric) pick = m;
      if (!pick) continue;  // a task without that metric (a group, another kind of task)
    } else if (ms.size() == 1) {
      pick = ms[0];
    } else {
      std::vector<std::string> names;
      for (const auto* m : ms) names.push_back(toml_string(m->metric));
      fail(at, key,
           file + ": task " + toml_string(task) + " has several metrics (" + join(names, ", ") +
               "); choose one with claim.results_metric");
    }
    if (!(pick->value >= 0 && pick->value <= 1))
      fail(at, key,
           file + ": results." + task + "." + pick->metric + " = " + show(pick->value) +
               " is not an accuracy in [0, 1]");
    ClaimResult res;
    res.benchmark = task;
    res.score = pick->value * 100.0;
    res.n = pick->n > 0 ? pick->n : 0;
    bool listed = false;
    for (const auto& have : c.results) {
      if (have.benchmark != task) continue;
      listed = true;
      if (std::fabs(have.score - res.score) > 1e-9 || have.n != res.n)
        fail(at, key,
             "claim.results lists " + toml_string(task) + " with score " + show(have.score) +
                 " and n " + show(have.n) + ", but " + file + " gives " + show(res.score) +
                 " and n " + show(res.n));
    }
    if (!listed) c.results.push_back(res);
    ++added;
  }
  if (added == 0)
    fail(at, key,
         file + ": no task has " +
             (c.results_metric.empty() ? std::string("a metric")
                                       : "the metric " + toml_string(c.results_metric)));
  std::ifstream in(file, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  c.results_read_from = file + " sha256:" + sha256_hex(ss.str());
  c.results_from.clear();
}

void validate(const Recipe& r, const ParseCtx& ctx) {
  const Validator check(ctx);
  validate_launch(r, ctx, check);
  const auto& c = r.claim;
  check(!c.name.empty() && c.name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
                                                    "qrstuvwxyz0123456789._-") == std::string::npos,
        "claim.name", "must be a non-empty id of letters, digits, '.', '_' or '-', got " +
                          toml_string(c.name));

  validate_base(r.base, check);
  validate_data(r.data, check);

  const auto& t = r.train;
  const int64_t micro = t.micro_batch_or_global();
  check(micro <= t.global_batch && t.global_batch % micro == 0, "train.micro_batch",
        "micro_batch (" + std::to_string(micro) + ") must divide global_batch (" +
            std::to_string(t.global_batch) + ")",
        {"train.global_batch"});

  const auto& e = r.eval;
  check(e.greedy || e.temperature > 0, "eval.temperature",
        "sampling (greedy = false) needs temperature > 0", {"eval.greedy"});
  check(e.samples == 1 || !e.greedy, "eval.samples",
        "samples > 1 needs sampling (greedy = false): greedy decoding repeats one completion",
        {"eval.greedy"});
  check(r.data.source != "jsonl" || !e.suites.empty(), "eval.suites",
        "data.source = \"jsonl\" needs at least one [[eval.suites]] benchmark file: the "
        "synthetic splits test arithmetic only",
        {"data.source"});
  for (size_t i = 0; i < e.suites.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      check(e.suites[i].name != e.suites[j].name, "eval.suites",
            "two suites named " + toml_string(e.suites[i].name));
  for (const auto& res : c.results) {
    if (res.suite.empty()) continue;
    bool found = false;
    for (const auto& s : e.suites) found = found || s.name == res.suite;
    check(found, "claim.results",
          "result " + toml_string(res.benchmark) + " names suite " + toml_string(res.suite) +
              ", which no [[eval.suites]] entry defines");
    check(res.split.empty(), "claim.results",
          "result " + toml_string(res.benchmark) + " names both a suite and a split; use one");
  }

  const auto& h = r.hardware;
  check(h.gpu_count == 0 || h.nodes == 0 || h.gpu_count <= h.nodes * h.gpus_per_node,
        "hardware.gpu_count",
        "gpu_count (" + std::to_string(h.gpu_count) + ") exceeds nodes * gpus_per_node (" +
            std::to_string(h.nodes * h.gpus_per_node) + ")",
        {"hardware.nodes", "hardware.gpus_per_node"});

  check(r.replay.overlap_low <= r.replay.overlap_high, "replay.overlap_low",
        "overlap_low must be <= overlap_high", {"replay.overlap_high"});
}

Recipe parse_table(toml::table& root, const std::string& name, const std::vector<std::string>& sets) {
  for (const auto& s : sets) apply_set(root, s);
  ParseCtx ctx{name, {}};
  Recipe r;
  Reader reader(ctx, &root, "", Loc{name, 0, 0}, true);
  visit_recipe(reader, r);
  reader.finish();
  // qkv_bias defaults to true (Qwen2); the other archs have no q/k/v-only bias.
  if (r.base.arch != "qwen2" && r.base.arch != "qwen2_moe" && !ctx.locs.count("base.qkv_bias"))
    r.base.qkv_bias = false;
  apply_hf_config(r.base, ctx);
  apply_results_from(r.claim, ctx);
  validate(r, ctx);
  r.path = name;
  r.sets = sets;
  r.resolved_toml = to_toml(r);
  r.sha256 = sha256_hex(r.resolved_toml);
  return r;
}

}  // namespace

Recipe parse_recipe_text(const std::string& text, const std::string& name_for_errors,
                         const std::vector<std::string>& sets) {
  toml::table root;
  try {
    root = toml::parse(text, name_for_errors);
  } catch (const toml::parse_error& e) {
    throw InputError(name_for_errors, static_cast<long>(e.source().begin.line),
                     static_cast<long>(e.source().begin.column), "",
                     "TOML syntax error: " + std::string(e.description()));
  }
  return parse_table(root, name_for_errors, sets);
}

RegressionSection parse_regression_section(const std::string& text,
                                           const std::string& name_for_errors, bool* stated) {
  toml::table root;
  try {
    root = toml::parse(text, name_for_errors);
  } catch (const toml::parse_error& e) {
    throw InputError(name_for_errors, static_cast<long>(e.source().begin.line),
                     static_cast<long>(e.source().begin.column), "",
                     "TOML syntax error: " + std::string(e.description()));
  }
  if (stated) *stated = root.contains("regression");
  // Only [regression] is visited; its unknown keys are refused as load_recipe refuses them (the
  // root's finish() is not called: the other sections are not this reader's business).
  ParseCtx ctx{name_for_errors, {}};
  RegressionSection r;
  Reader reader(ctx, &root, "", Loc{name_for_errors, 0, 0}, true);
  reader.section("regression", [&](auto& s) { visit_regression(s, r); });
  return r;
}

Recipe load_recipe(const std::string& path, const std::vector<std::string>& sets) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw InputError(path, 0, 0, "",
                     std::string("cannot open recipe: ") + std::strerror(errno) +
                         " (give the path of a .toml file, e.g. recipes/s1.toml)");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw InputError(path, 0, 0, "", "cannot read recipe");
  return parse_recipe_text(ss.str(), path, sets);
}

std::string to_toml(const Recipe& r) {
  Recipe copy = r;  // the visitors take non-const references
  Writer w(Writer::Mode::root);
  visit_recipe(w, copy);
  return w.text();
}

std::vector<std::string> with_seed(std::vector<std::string> sets, int64_t seed) {
  if (seed >= 0) {
    sets.push_back("train.seed=" + std::to_string(seed));
    sets.push_back("data.seed=" + std::to_string(seed));
  }
  return sets;
}

double claimed_gpu_hours(const ClaimSection& c) {
  if (c.gpu_hours > 0) return c.gpu_hours;
  return static_cast<double>(c.gpu_count) * c.wall_hours;
}

std::string resolve_path(const Recipe& r, const std::string& p) {
  std::filesystem::path fp(p);
  if (p.empty() || fp.is_absolute() || r.path.empty()) return p;
  return (std::filesystem::path(r.path).parent_path() / fp).lexically_normal().string();
}

bool is_moe(const BaseSection& b) { return b.routed_experts > 0; }

namespace {
// A folder of the recipe, without the trailing '/' lexically_normal leaves on "dir/.".
std::string recipe_folder_path(const Recipe& r, const std::string& p) {
  std::string out = resolve_path(r, p.empty() ? "." : p);
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out.empty() ? "." : out;
}
}  // namespace

std::string launch_workdir(const Recipe& r) { return recipe_folder_path(r, r.launch.workdir); }

std::string launch_eval_workdir(const Recipe& r) {
  return r.launch.eval.workdir.empty() ? launch_workdir(r)
                                       : recipe_folder_path(r, r.launch.eval.workdir);
}

bool parse_duration(const std::string& text, double* seconds) {
  size_t i = 0;
  double total = 0;
  bool any = false;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    if (i == text.size()) break;
    char* end = nullptr;
    const double v = std::strtod(text.c_str() + i, &end);
    const size_t used = size_t(end - (text.c_str() + i));
    if (used == 0 || !std::isfinite(v) || v < 0) return false;
    i += used;
    double unit = 1;
    if (i < text.size() && text[i] != ' ') {
      switch (text[i]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return false;
      }
      ++i;
    } else if (any) {
      return false;  // "1h 30": a unit is needed after the first part
    }
    total += v * unit;
    any = true;
  }
  if (!any) return false;
  *seconds = total;
  return true;
}

}  // namespace audit::recipe
