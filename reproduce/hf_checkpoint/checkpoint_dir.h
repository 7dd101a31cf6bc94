// A Hugging Face checkpoint directory on disk, without LibTorch: config.json plus either
// model.safetensors or shards model-0000N-of-0000M.safetensors listed by
// model.safetensors.index.json, and optionally tokenizer.json. open_checkpoint() reads every
// header (never the weights) and checks the directory's structure; check_tensors() checks the
// tensors against the ones config.json implies (names and shapes as transformers writes them).
// The LibTorch loader (reproduce/model/checkpoint.h) maps the shards this describes.
//
// Failures throw audit::InputError naming the file and the tensor or key (exit 2).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "reproduce/hf_checkpoint/hf_config.h"          // HfConfig
#include "reproduce/hf_checkpoint/safetensors_header.h"  // Header, TensorInfo

namespace audit::hf {

// One safetensors file of the checkpoint.
struct Shard {
  std::string file;  // its path
  safetensors::Header header;
};

struct CheckpointDir {
  std::string dir;
  HfConfig config;
  bool sharded = false;
  std::string index_file;     // model.safetensors.index.json when sharded, else ""
  std::vector<Shard> shards;  // in file-name order
  // Every tensor: which shard holds it (position in shards).
  std::map<std::string, size_t> shard_of;

  const safetensors::TensorInfo& info(const std::string& name) const;  // InputError if absent
  const Shard& shard(const std::string& name) const;
  // Elements of every weight tensor (rotary inv_freq buffers and a tied lm_head.weight copy are
  // not parameters and are not counted).
  int64_t parameter_count() const;
  uint64_t total_bytes() const;          // sum of the shard files' sizes
  std::set<std::string> dtypes() const;  // safetensors dtypes of the tensors, e.g. {"BF16"}
};

// Opens and checks a directory (config.json and every header; see above).
CheckpointDir open_checkpoint(const std::string& dir);

// The tensors a config implies, as transformers names and shapes them.
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};
// For qwen2, llama, mistral (dense), qwen2_moe and mixtral (experts one by one, as on the Hub).
// Tied embeddings: no lm_head.weight. Throws std::invalid_argument for deepseek_v3.
std::vector<ExpectedTensor> expected_tensors(const settings::ModelSettings& m);
bool has_expected_tensors(const std::string& arch);
// Sum of the expected tensors' elements: the parameter count config.json implies.
int64_t implied_parameter_count(const settings::ModelSettings& m);

// Checks the checkpoint's tensors against expected_tensors(config): every expected tensor
// present with the same shape, nothing unexpected (inv_freq buffers and an lm_head.weight next to
// tied embeddings are tolerated), floating dtypes F32/BF16/F16 and equal to config.json's dtype
// when it names one. InputError names the tensor (and both shapes). No-op for deepseek_v3.
void check_tensors(const CheckpointDir& c);

// config.json's dtype name -> the safetensors one: "bfloat16" -> "BF16" ("" if not a float type).
std::string safetensors_dtype(const std::string& config_dtype);

// True for names that are buffers, not parameters (".rotary_emb.inv_freq").
bool is_buffer_name(const std::string& name);

}  // namespace audit::hf
