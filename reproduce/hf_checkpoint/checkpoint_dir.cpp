// Checkpoint directories: layout, index, headers, expected tensors (see checkpoint_dir.h).
#include "reproduce/hf_checkpoint/checkpoint_dir.h"

#include <algorithm>
#include <stdexcept>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "common/errors.h"  // audit::InputError

namespace audit::hf {

namespace {

bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Adds one shard's tensors to the directory's table; a tensor in two shards is refused.
void add_shard(CheckpointDir& c, Shard shard) {
  const size_t at = c.shards.size();
  for (const auto& t : shard.header.tensors) {
    auto [it, fresh] = c.shard_of.emplace(t.name, at);
    if (!fresh)
      throw InputError(shard.file, 0, 0, t.name,
                       "duplicate tensor: also in " + c.shards[it->second].file);
  }
  c.shards.push_back(std::move(shard));
}

void open_sharded(CheckpointDir& c) {
  const std::string& idx = c.index_file;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(idx));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(idx, 0, 0, "", std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw InputError(idx, 0, 0, "weight_map", "missing object of tensor name -> shard file");
  // shard file -> the tensors the index puts there
  std::map<std::string, std::vector<std::string>> by_file;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      throw InputError(idx, 0, 0, "weight_map." + it.key(), "must be a shard file name");
    const std::string f = it.value().get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
      throw InputError(idx, 0, 0, "weight_map." + it.key(),
                       "shard \"" + f + "\" must be a file name in the directory");
    by_file[f].push_back(it.key());
  }
  if (by_file.empty()) throw InputError(idx, 0, 0, "weight_map", "lists no tensors");
  for (const auto& [f, names] : by_file) {
    const std::string path = join(c.dir, f);
    if (!is_file(path))
      throw InputError(idx, 0, 0, "weight_map." + names.front(),
                       "shard " + f + " named in the index is missing from " + c.dir);
    Shard s{path, safetensors::read_header(path)};
    for (const auto& n : names)
      if (!s.header.contains(n))
        throw InputError(path, 0, 0, n, "tensor listed in " + idx + " is not in this shard");
    for (const auto& t : s.header.tensors)
      if (!j["weight_map"].contains(t.name) || j["weight_map"][t.name] != f)
        throw InputError(path, 0, 0, t.name, "tensor in this shard is not mapped to it by " + idx);
    add_shard(c, std::move(s));
  }
}

void add_linear(std::vector<ExpectedTensor>& out, const std::string& name, int64_t out_f,
                int64_t in_f) {
  out.push_back({name + ".weight", {out_f, in_f}});
}

void add_swiglu(std::vector<ExpectedTensor>& out, const std::string& p, int64_t hidden,
                int64_t inner, const char* gate, const char* up, const char* down) {
  add_linear(out, p + gate, inner, hidden);
  add_linear(out, p + up, inner, hidden);
  add_linear(out, p + down, hidden, inner);
}

}  // namespace

const safetensors::TensorInfo& CheckpointDir::info(const std::string& name) const {
  return shard(name).header.info(name);
}

const Shard& CheckpointDir::shard(const std::string& name) const {
  auto it = shard_of.find(name);
  if (it == shard_of.end()) throw InputError(dir, 0, 0, name, "no such tensor in the checkpoint");
  return shards[it->second];
}

int64_t CheckpointDir::parameter_count() const {
  int64_t n = 0;
  for (const auto& s : shards)
    for (const auto& t : s.header.tensors) {
      if (is_buffer_name(t.name)) continue;
      if (t.name == "lm_head.weight" && config.model.tie_embeddings) continue;
      n += static_cast<int64_t>(t.numel());
    }
  return n;
}

uint64_t CheckpointDir::total_bytes() const {
  uint64_t n = 0;
  for (const auto& s : shards) n += s.header.file_size;
  return n;
}

std::set<std::string> CheckpointDir::dtypes() const {
  std::set<std::string> d;
  for (const auto& s : shards)
    for (const auto& t : s.header.tensors) d.insert(t.dtype);
  return d;
}

CheckpointDir open_checkpoint(const std::string& dir) {
  CheckpointDir c;
  c.dir = dir;
  if (!is_dir(dir)) throw InputError(dir, 0, 0, "", "not a checkpoint directory");
  const std::string cfg = join(dir, "config.json");
  if (!is_file(cfg)) throw InputError(cfg, 0, 0, "", "missing: a checkpoint needs config.json");
  c.config = read_config(cfg);
  const std::string single = join(dir, "model.safetensors");
  const std::string index = join(dir, "model.safetensors.index.json");
  if (is_file(single)) {
    add_shard(c, Shard{single, safetensors::read_header(single)});
  } else if (is_file(index)) {
    c.sharded = true;
    c.index_file = index;
    open_sharded(c);
  } else {
    throw InputError(dir, 0, 0, "",
                     "no model.safetensors nor model.safetensors.index.json (only safetensors "
                     "checkpoints are read)");
  }
  return c;
}

bool has_expected_tensors(const std::string& arch) {
  return arch == "qwen2" || arch == "llama" || arch == "mistral" || arch == "qwen2_moe" ||
         arch == "mixtral";
}

std::vector<ExpectedTensor> expected_tensors(const settings::ModelSettings& m) {
  if (!has_expected_tensors(m.arch))
    throw std::invalid_argument("no tensor list for arch \"" + m.arch + "\"");
  std::vector<ExpectedTensor> out;
  const int64_t h = m.hidden, q = m.heads * m.head_dim, kv = m.kv_heads * m.head_dim;
  out.push_back({"model.embed_tokens.weight", {m.vocab, h}});
  for (int64_t l = 0; l < m.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add_linear(out, p + "self_attn.q_proj", q, h);
    add_linear(out, p + "self_attn.k_proj", kv, h);
    add_linear(out, p + "self_attn.v_proj", kv, h);
    if (m.qkv_bias) {
      out.push_back({p + "self_attn.q_proj.bias", {q}});
      out.push_back({p + "self_attn.k_proj.bias", {kv}});
      out.push_back({p + "self_attn.v_proj.bias", {kv}});
    }
    add_linear(out, p + "self_attn.o_proj", h, q);
    const bool moe = m.routed_experts > 0 && l >= m.first_dense_layers;
    if (!moe) {
      add_swiglu(out, p + "mlp.", h, m.ffn, "gate_proj", "up_proj", "down_proj");
    } else if (m.arch == "mixtral") {
      add_linear(out, p + "block_sparse_moe.gate", m.routed_experts, h);
      for (int64_t e = 0; e < m.routed_experts; ++e)
        add_swiglu(out, p + "block_sparse_moe.experts." + std::to_string(e) + ".", h,
                   m.expert_ffn, "w1", "w3", "w2");
    } else {  // qwen2_moe
      add_linear(out, p + "mlp.gate", m.routed_experts, h);
      for (int64_t e = 0; e < m.routed_experts; ++e)
        add_swiglu(out, p + "mlp.experts." + std::to_string(e) + ".", h, m.expert_ffn,
                   "gate_proj", "up_proj", "down_proj");
      if (m.shared_experts > 0) {
        const int64_t w = m.shared_expert_ffn > 0 ? m.shared_expert_ffn
                                                  : m.shared_experts * m.expert_ffn;
        add_swiglu(out, p + "mlp.shared_expert.", h, w, "gate_proj", "up_proj", "down_proj");
        add_linear(out, p + "mlp.shared_expert_gate", 1, h);
      }
    }
    out.push_back({p + "input_layernorm.weight", {h}});
    out.push_back({p + "post_attention_layernorm.weight", {h}});
  }
  out.push_back({"model.norm.weight", {h}});
  if (!m.tie_embeddings) out.push_back({"lm_head.weight", {m.vocab, h}});
  return out;
}

int64_t implied_parameter_count(const settings::ModelSettings& m) {
  int64_t n = 0;
  for (const auto& t : expected_tensors(m)) {
    int64_t e = 1;
    for (auto d : t.shape) e *= d;
    n += e;
  }
  return n;
}

std::string safetensors_dtype(const std::string& d) {
  if (d == "bfloat16") return "BF16";
  if (d == "float32") return "F32";
  if (d == "float16") return "F16";
  return "";
}

bool is_buffer_name(const std::string& name) { return ends_with(name, ".inv_freq"); }

void check_tensors(const CheckpointDir& c) {
  const settings::ModelSettings& m = c.config.model;
  const std::string want_dtype = safetensors_dtype(c.config.dtype);
  for (const auto& s : c.shards)
    for (const auto& t : s.header.tensors) {
      if (is_buffer_name(t.name)) continue;
      if (t.dtype != "F32" && t.dtype != "BF16" && t.dtype != "F16")
        throw InputError(s.file, 0, 0, t.name,
                         "dtype " + t.dtype + " is not a weight dtype (F32, BF16 or F16)");
      if (!want_dtype.empty() && t.dtype != want_dtype)
        throw InputError(s.file, 0, 0, t.name,
                         "dtype " + t.dtype + " but " + c.config.path + " says dtype " +
                             c.config.dtype + " (" + want_dtype + ")");
    }
  if (!has_expected_tensors(m.arch)) return;
  std::set<std::string> expected;
  for (const auto& e : expected_tensors(m)) {
    expected.insert(e.name);
    auto it = c.shard_of.find(e.name);
    if (it == c.shard_of.end())
      throw InputError(c.sharded ? c.index_file : c.shards.front().file, 0, 0, e.name,
                       "missing: " + c.config.path + " implies this tensor of shape " +
                           safetensors::shape_string(e.shape));
    const auto& t = c.shards[it->second].header.info(e.name);
    if (t.shape != e.shape)
      throw InputError(c.shards[it->second].file, 0, 0, e.name,
                       "shape " + safetensors::shape_string(t.shape) + " but " + c.config.path +
                           " implies " + safetensors::shape_string(e.shape));
  }
  for (const auto& [name, at] : c.shard_of) {
    if (expected.count(name) || is_buffer_name(name)) continue;
    const auto& t = c.shards[at].header.info(name);
    if (name == "lm_head.weight" && m.tie_embeddings) {
      const std::vector<int64_t> want = {m.vocab, m.hidden};
      if (t.shape != want)
        throw InputError(c.shards[at].file, 0, 0, name,
                         "shape " + safetensors::shape_string(t.shape) + " but " + c.config.path +
                             " implies " + safetensors::shape_string(want) + " (tied)");
      continue;
    }
    throw InputError(c.shards[at].file, 0, 0, name,
                     "tensor not implied by " + c.config.path + " (model_type " + m.arch + ")");
  }
}

}  // namespace audit::hf
