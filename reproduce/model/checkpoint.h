// Hugging Face checkpoint directories <-> the model (LibTorch). Loading memory-maps one shard at a
// time (read-only, private), wraps each tensor in place with torch::from_blob and copies it
// straight into its parameter on the parameter's device, converting the dtype in the copy; the
// pages of a tensor are dropped as soon as it is copied and the shard is unmapped after, so host
// memory beyond the model's own parameters stays below the largest shard (tests/torch/
// checkpoint_test.cpp measures it). No full state map is ever built.
//
// Saving writes the layout transformers writes (config.json, model.safetensors or shards with
// model.safetensors.index.json, generation_config.json, the tokenizer files), so
// `AutoModelForCausalLM.from_pretrained` loads what audit trained.
//
// The directory's structure and its tensors' names, shapes and dtypes are checked first,
// torch-free (reproduce/hf_checkpoint/checkpoint_dir.h). Errors: audit::InputError (exit 2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "reproduce/hf_checkpoint/checkpoint_dir.h"  // CheckpointDir, open_checkpoint
#include "reproduce/model/model.h"                   // CausalLM, ModelConfig

namespace audit::model {

// The model config a checkpoint's config.json describes; InputError (naming config.json) when the
// model does not build that architecture.
ModelConfig model_config(const hf::HfConfig& c);

// Copies every tensor of `ckpt` into the model's parameters (on their device and dtype). The
// model's settings must equal the checkpoint's config.json. Every parameter must be in the
// checkpoint and every checkpoint tensor must name a parameter (rotary inv_freq buffers and the
// lm_head.weight copy of tied embeddings excepted).
void load_checkpoint(CausalLM& m, const hf::CheckpointDir& ckpt);

// Builds the model config.json describes, on `device` with parameters of `dtype`, and loads it.
CausalLM load_model(const std::string& dir, torch::Device device = torch::kCPU,
                    torch::ScalarType dtype = torch::kFloat);

struct SaveOptions {
  // A shard closes before it would exceed this many bytes (transformers' max_shard_size; its
  // default is 5 GB, its own parts 5e9). One shard is written as model.safetensors, no index.
  uint64_t max_shard_bytes = 5'000'000'000ull;
  // The dtype on disk; Undefined = the parameters' own.
  torch::ScalarType dtype = torch::ScalarType::Undefined;
  // A directory to copy tokenizer.json (required there), tokenizer_config.json,
  // special_tokens_map.json and chat_template.jinja (when present) from; "" = none.
  std::string tokenizer_source_dir;
  std::vector<int64_t> bos_token_ids, eos_token_ids;  // for config and generation_config
};

// Writes the model as a Hugging Face checkpoint directory (created if missing). Files are written
// through NAME.tmp and renamed. Throws std::runtime_error on I/O failure, InputError when the
// tokenizer source lacks tokenizer.json.
void save_checkpoint(CausalLM& m, const std::string& dir, const SaveOptions& opt);
void save_checkpoint(CausalLM& m, const std::string& dir,
                     const std::string& tokenizer_source_dir = "");

}  // namespace audit::model
