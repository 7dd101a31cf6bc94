// config.json reading and writing (what is understood and refused: hf_config.h).
#include "reproduce/hf_checkpoint/hf_config.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/errors.h"  // audit::InputError

namespace audit::hf {

using nlohmann::json;

namespace {

// Typed access to one config.json object, every failure naming the file and the key.
class Keys {
 public:
  Keys(const json& j, const std::string& path, std::string prefix = "")
      : j_(j), path_(path), prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw InputError(path_, 0, 0, prefix_ + key, what);
  }
  // Present and not null.
  bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  const json& at(const std::string& key) const { return j_.at(key); }

  int64_t integer(const std::string& key) const {
    if (!has(key)) fail(key, "missing (required for model_type " + model_type_ + ")");
    const json& v = j_.at(key);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {  // 896.0 is 896; 0.5 is not an integer
      const double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15)
        return static_cast<int64_t>(d);
    }
    fail(key, "must be an integer, not " + describe(v));
  }
  int64_t integer(const std::string& key, int64_t dflt) const {
    return has(key) ? integer(key) : dflt;
  }
  // An integer >= lo (a size): refuses 0 and negatives where a shape needs them positive.
  int64_t size(const std::string& key, int64_t lo = 1) const {
    const int64_t v = integer(key);
    if (v < lo) fail(key, "must be >= " + std::to_string(lo) + ", not " + std::to_string(v));
    return v;
  }
  int64_t size(const std::string& key, int64_t dflt, int64_t lo) const {
    return has(key) ? size(key, lo) : dflt;
  }
  double real(const std::string& key) const {
    if (!has(key)) fail(key, "missing (required for model_type " + model_type_ + ")");
    const json& v = j_.at(key);
    if (!v.is_number()) fail(key, "must be a number, not " + describe(v));
    const double d = v.get<double>();
    if (!std::isfinite(d)) fail(key, "must be finite");
    return d;
  }
  double real(const std::string& key, double dflt) const { return has(key) ? real(key) : dflt; }
  double positive(const std::string& key, double dflt) const {
    const double d = real(key, dflt);
    if (!(d > 0)) fail(key, "must be > 0, not " + std::to_string(d));
    return d;
  }
  bool boolean(const std::string& key, bool dflt) const {
    if (!has(key)) return dflt;
    const json& v = j_.at(key);
    if (!v.is_boolean()) fail(key, "must be true or false, not " + describe(v));
    return v.get<bool>();
  }
  std::string str(const std::string& key, const std::string& dflt) const {
    if (!has(key)) return dflt;
    const json& v = j_.at(key);
    if (!v.is_string()) fail(key, "must be a string, not " + describe(v));
    return v.get<std::string>();
  }
  // An int, a list of ints, or absent/null.
  std::vector<int64_t> int_list(const std::string& key) const {
    std::vector<int64_t> out;
    if (!has(key)) return out;
    const json& v = j_.at(key);
    if (v.is_number_integer()) return {v.get<int64_t>()};
    if (!v.is_array()) fail(key, "must be an integer or a list of integers, not " + describe(v));
    for (const auto& e : v) {
      if (!e.is_number_integer()) fail(key, "must list integers only, not " + describe(e));
      out.push_back(e.get<int64_t>());
    }
    return out;
  }
  void set_model_type(const std::string& t) { model_type_ = t; }

  static std::string describe(const json& v) {
    std::string s = v.dump();
    if (s.size() > 40) s = s.substr(0, 37) + "...";
    return std::string(v.type_name()) + " " + s;
  }

 private:
  const json& j_;
  std::string path_;
  std::string prefix_;
  std::string model_type_ = "?";
};

const std::set<std::string> kArchs = {"qwen2", "llama", "mistral", "deepseek_v3", "qwen2_moe",
                                      "mixtral"};

// rope_scaling (transformers 4) or rope_parameters (transformers 5) -> the settings' fields.
void read_rope(const Keys& k, const std::string& path, settings::ModelSettings& m) {
  const char* key = k.has("rope_scaling") ? "rope_scaling"
                    : k.has("rope_parameters") ? "rope_parameters" : nullptr;
  // rope_theta: top level (4.x) or inside rope_parameters (5.x).
  m.rope_theta = k.positive("rope_theta", m.rope_theta);
  if (k.has("rope_parameters") && k.at("rope_parameters").is_object()) {
    Keys rp(k.at("rope_parameters"), path, "rope_parameters.");
    rp.set_model_type(m.arch);
    m.rope_theta = rp.positive("rope_theta", m.rope_theta);
  }
  m.rope_scaling = "";
  if (key == nullptr) return;
  const json& r = k.at(key);
  if (!r.is_object()) k.fail(key, "must be an object, not " + Keys::describe(r));
  Keys rk(r, path, std::string(key) + ".");
  rk.set_model_type(m.arch);
  std::string type = rk.str("rope_type", rk.str("type", "default"));
  if (type == "default") return;
  if (type == "llama3") {
    m.rope_scaling = "llama3";
    m.rope_factor = rk.real("factor");
    if (!(m.rope_factor > 0)) rk.fail("factor", "must be > 0");
    m.rope_low_freq_factor = rk.positive("low_freq_factor", m.rope_low_freq_factor);
    m.rope_high_freq_factor = rk.positive("high_freq_factor", m.rope_high_freq_factor);
    m.rope_original_max_position = rk.size("original_max_position_embeddings");
    if (m.rope_high_freq_factor <= m.rope_low_freq_factor)
      rk.fail("high_freq_factor", "must exceed low_freq_factor (" +
                                      std::to_string(m.rope_low_freq_factor) + ")");
    return;
  }
  // Counted-only archs (DeepSeek-V3 ships yarn) keep their shapes; the rope is not computed.
  if (!is_loadable_arch(m.arch)) return;
  rk.fail(r.contains("rope_type") ? "rope_type" : "type",
          "rope type \"" + type + "\" is not supported (only llama3 scaling or none)");
}

// The sliding window of every layer, or refused when only some layers slide.
void read_sliding_window(const Keys& k, settings::ModelSettings& m) {
  int64_t window = k.size("sliding_window", 0, 0);
  if (m.arch == "qwen2" || m.arch == "qwen2_moe") {
    if (!k.boolean("use_sliding_window", false)) window = 0;
    if (window > 0) {
      // HF Qwen2: layer i slides when i >= max_window_layers.
      const int64_t mwl = k.integer("max_window_layers", 0);
      if (mwl >= m.layers) window = 0;
      else if (mwl > 0)
        k.fail("max_window_layers", "sliding window on layers " + std::to_string(mwl) +
                                        ".. only (a per-layer window) is not supported");
    }
  }
  if (k.has("layer_types")) {
    const json& lt = k.at("layer_types");
    if (!lt.is_array()) k.fail("layer_types", "must be a list of strings");
    std::set<std::string> kinds;
    for (const auto& e : lt) {
      if (!e.is_string()) k.fail("layer_types", "must be a list of strings");
      kinds.insert(e.get<std::string>());
    }
    if (kinds.size() > 1)
      k.fail("layer_types", "mixes full and sliding attention layers; not supported");
    if (kinds.count("sliding_attention") && window == 0)
      window = k.size("sliding_window", 1);
    if (kinds.count("full_attention")) window = 0;
    for (const auto& kind : kinds)
      if (kind != "sliding_attention" && kind != "full_attention")
        k.fail("layer_types", "unknown layer type \"" + kind + "\"");
  }
  m.sliding_window = window;
}

}  // namespace

bool is_loadable_arch(const std::string& arch) {
  return arch == "qwen2" || arch == "llama" || arch == "mistral";
}

bool HfConfig::loadable() const { return is_loadable_arch(model.arch); }

HfConfig parse_config(const std::string& text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw InputError(path, 0, 0, "", std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw InputError(path, 0, 0, "", "config.json must be a JSON object");
  Keys k(j, path);
  HfConfig c;
  c.path = path;
  settings::ModelSettings& m = c.model;
  if (!k.has("model_type")) k.fail("model_type", "missing: cannot tell the architecture");
  const std::string type = k.str("model_type", "");
  if (!kArchs.count(type))
    k.fail("model_type", "unknown model_type \"" + type +
                             "\" (known: qwen2, llama, mistral, qwen2_moe, mixtral, deepseek_v3)");
  k.set_model_type(type);
  m.arch = type;

  if (k.has("architectures")) {
    const json& a = k.at("architectures");
    if (!a.is_array()) k.fail("architectures", "must be a list of strings");
    for (const auto& e : a) {
      if (!e.is_string()) k.fail("architectures", "must be a list of strings");
      c.architectures.push_back(e.get<std::string>());
    }
  }
  c.dtype = k.str("torch_dtype", k.str("dtype", ""));
  c.bos_token_ids = k.int_list("bos_token_id");
  c.eos_token_ids = k.int_list("eos_token_id");

  const std::string act = k.str("hidden_act", "silu");
  if (act != "silu") k.fail("hidden_act", "\"" + act + "\" is not supported (only silu)");
  if (k.boolean("mlp_bias", false)) k.fail("mlp_bias", "MLP biases are not supported");

  m.vocab = k.size("vocab_size");
  m.hidden = k.size("hidden_size");
  m.layers = k.size("num_hidden_layers");
  m.heads = k.size("num_attention_heads");
  m.kv_heads = k.size("num_key_value_heads", m.heads, 1);
  if (m.heads % m.kv_heads != 0)
    k.fail("num_key_value_heads", std::to_string(m.kv_heads) +
                                      " does not divide num_attention_heads (" +
                                      std::to_string(m.heads) + ")");
  if (k.has("head_dim")) {
    m.head_dim = k.size("head_dim");
  } else {
    if (m.hidden % m.heads != 0)
      k.fail("head_dim", "missing, and hidden_size (" + std::to_string(m.hidden) +
                             ") is not a multiple of num_attention_heads (" +
                             std::to_string(m.heads) + ")");
    m.head_dim = m.hidden / m.heads;
  }
  m.ffn = k.size("intermediate_size");
  m.max_position = k.size("max_position_embeddings", m.max_position, 1);
  m.rms_eps = k.positive("rms_norm_eps", 1e-6);
  m.tie_embeddings = k.boolean("tie_word_embeddings", false);
  read_rope(k, path, m);
  read_sliding_window(k, m);

  // q/k/v bias: Qwen2 always has it (no key); Llama's attention_bias would also put one on
  // o_proj, which our attention has not.
  if (type == "qwen2" || type == "qwen2_moe") {
    m.qkv_bias = true;
  } else {
    const bool bias = k.boolean("attention_bias", false);
    if (bias && type == "llama")
      k.fail("attention_bias", "true is not supported (it biases o_proj too, which the model has "
                               "not)");
    if (bias) k.fail("attention_bias", "true is not supported for " + type);
    m.qkv_bias = false;
  }

  if (type == "qwen2_moe") {
    m.routed_experts = k.size("num_experts");
    m.top_k = k.size("num_experts_per_tok");
    if (m.top_k > m.routed_experts)
      k.fail("num_experts_per_tok", "exceeds num_experts (" + std::to_string(m.routed_experts) + ")");
    m.expert_ffn = k.size("moe_intermediate_size");
    m.shared_expert_ffn = k.size("shared_expert_intermediate_size", 0, 0);
    m.shared_experts = m.shared_expert_ffn > 0 ? 1 : 0;
    if (k.integer("decoder_sparse_step", 1) != 1)
      k.fail("decoder_sparse_step", "only 1 (every layer MoE, after mlp_only_layers) is supported");
    // mlp_only_layers: representable only as a leading run 0..n-1 (first_dense_layers).
    if (k.has("mlp_only_layers")) {
      const json& d = k.at("mlp_only_layers");
      if (!d.is_array()) k.fail("mlp_only_layers", "must be a list of layer indices");
      std::set<int64_t> dense;
      for (const auto& e : d) {
        if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() >= m.layers)
          k.fail("mlp_only_layers", "must list layer indices in [0, num_hidden_layers)");
        dense.insert(e.get<int64_t>());
      }
      const auto n = static_cast<int64_t>(dense.size());
      if (n > 0 && *dense.rbegin() != n - 1)
        k.fail("mlp_only_layers", "dense layers other than a leading run 0..n-1 are not supported");
      m.first_dense_layers = n;
    }
    m.score_func = "softmax";
  } else if (type == "mixtral") {
    m.routed_experts = k.size("num_local_experts");
    m.top_k = k.size("num_experts_per_tok");
    if (m.top_k > m.routed_experts)
      k.fail("num_experts_per_tok",
             "exceeds num_local_experts (" + std::to_string(m.routed_experts) + ")");
    m.expert_ffn = m.ffn;
    m.shared_experts = 0;
    m.score_func = "softmax";
  } else if (type == "deepseek_v3") {
    m.routed_experts = k.size("n_routed_experts");
    m.shared_experts = k.size("n_shared_experts", 0, 0);
    m.top_k = k.size("num_experts_per_tok");
    if (m.top_k > m.routed_experts)
      k.fail("num_experts_per_tok",
             "exceeds n_routed_experts (" + std::to_string(m.routed_experts) + ")");
    m.expert_ffn = k.size("moe_intermediate_size");
    m.first_dense_layers = k.size("first_k_dense_replace", 0, 0);
    if (m.first_dense_layers > m.layers)
      k.fail("first_k_dense_replace", "exceeds num_hidden_layers");
    if (k.integer("moe_layer_freq", 1) != 1)
      k.fail("moe_layer_freq", "only 1 (every layer after first_k_dense_replace MoE) is supported");
    m.score_func = k.str("scoring_func", "sigmoid");
    if (m.score_func != "sigmoid" && m.score_func != "softmax")
      k.fail("scoring_func", "must be \"sigmoid\" or \"softmax\"");
    m.routed_scaling = k.positive("routed_scaling_factor", 1.0);
    m.expert_groups = k.size("n_group", 1, 1);
    m.topk_groups = k.size("topk_group", 1, 1);
    if (m.routed_experts % m.expert_groups != 0)
      k.fail("n_group", "must divide n_routed_experts (" + std::to_string(m.routed_experts) + ")");
    if (m.topk_groups > m.expert_groups) k.fail("topk_group", "exceeds n_group");
    m.mtp_depth = k.size("num_nextn_predict_layers", 0, 0);
    m.q_lora_rank = k.size("q_lora_rank", 0, 0);  // null: a plain q projection
    m.kv_lora_rank = k.size("kv_lora_rank");
    m.qk_nope_head_dim = k.size("qk_nope_head_dim");
    m.qk_rope_head_dim = k.size("qk_rope_head_dim");
    m.v_head_dim = k.size("v_head_dim");
    m.head_dim = m.qk_nope_head_dim + m.qk_rope_head_dim;
  }
  return c;
}

HfConfig read_config(const std::string& path) { return parse_config(read_text_file(path), path); }

json config_json(const settings::ModelSettings& m, const std::string& dtype,
                 const std::vector<int64_t>& bos, const std::vector<int64_t>& eos) {
  auto refuse = [](const std::string& what) {
    throw std::invalid_argument("config.json: " + what);
  };
  if (!is_loadable_arch(m.arch))
    refuse("writing arch \"" + m.arch + "\" is not supported (qwen2, llama, mistral)");
  if (m.routed_experts != 0 || m.kv_lora_rank != 0 || m.mtp_depth != 0)
    refuse("MoE, MLA and MTP fields must be 0 for a dense " + m.arch);
  if (m.arch == "qwen2" && !m.qkv_bias) refuse("qwen2 always has q/k/v biases (qkv_bias = false)");
  if (m.arch != "qwen2" && m.qkv_bias) refuse(m.arch + " has no q/k/v-only bias (qkv_bias = true)");
  if (dtype != "float32" && dtype != "bfloat16" && dtype != "float16")
    refuse("dtype \"" + dtype + "\" (float32, bfloat16 or float16)");
  const std::string cls = m.arch == "qwen2" ? "Qwen2ForCausalLM"
                          : m.arch == "llama" ? "LlamaForCausalLM" : "MistralForCausalLM";
  json j = json::object();
  j["architectures"] = {cls};
  j["model_type"] = m.arch;
  j["vocab_size"] = m.vocab;
  j["hidden_size"] = m.hidden;
  j["num_hidden_layers"] = m.layers;
  j["num_attention_heads"] = m.heads;
  j["num_key_value_heads"] = m.kv_heads;
  j["head_dim"] = m.head_dim;
  j["intermediate_size"] = m.ffn;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = m.max_position;
  j["rms_norm_eps"] = m.rms_eps;
  j["rope_theta"] = m.rope_theta;
  j["tie_word_embeddings"] = m.tie_embeddings;
  j["attention_dropout"] = 0.0;
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  if (m.rope_scaling == "llama3") {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", m.rope_factor},
                         {"low_freq_factor", m.rope_low_freq_factor},
                         {"high_freq_factor", m.rope_high_freq_factor},
                         {"original_max_position_embeddings", m.rope_original_max_position}};
  } else if (!m.rope_scaling.empty()) {
    refuse("rope_scaling \"" + m.rope_scaling + "\"");
  } else {
    j["rope_scaling"] = nullptr;
  }
  if (m.arch == "llama") {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
    j["pretraining_tp"] = 1;
  }
  if (m.arch == "qwen2") {
    j["use_sliding_window"] = m.sliding_window > 0;
    j["sliding_window"] = m.sliding_window > 0 ? json(m.sliding_window) : json(nullptr);
    j["max_window_layers"] = m.sliding_window > 0 ? 0 : m.layers;
  }
  if (m.arch == "mistral")
    j["sliding_window"] = m.sliding_window > 0 ? json(m.sliding_window) : json(nullptr);
  if (m.arch == "llama" && m.sliding_window > 0) refuse("llama has no sliding window");
  auto ids = [](const std::vector<int64_t>& v) {
    return v.empty() ? json(nullptr) : v.size() == 1 ? json(v[0]) : json(v);
  };
  j["bos_token_id"] = ids(bos);
  j["eos_token_id"] = ids(eos);
  j["torch_dtype"] = dtype;  // transformers 4 reads this key, 5 reads it too (and writes dtype)
  return j;
}

void write_config(const settings::ModelSettings& m, const std::string& path,
                  const std::string& dtype, const std::vector<int64_t>& bos,
                  const std::vector<int64_t>& eos) {
  write_text_file(path, config_json(m, dtype, bos, eos).dump(2) + "\n");
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, 0, 0, "", std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw InputError(path, 0, 0, "", "read failed");
  return s.str();
}

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot open " + tmp + " for writing: " + std::strerror(errno));
    out << text;
    out.flush();
    if (!out) throw std::runtime_error("write failed on " + tmp + " (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
}

}  // namespace audit::hf
