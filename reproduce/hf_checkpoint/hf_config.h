// Hugging Face config.json <-> settings::ModelSettings (torch-free). read_config() understands
// the six model_types the settings name (qwen2, llama, mistral: built and loaded; qwen2_moe,
// mixtral, deepseek_v3: counted) in both the transformers 4 layout (rope_theta, rope_scaling,
// torch_dtype) and the transformers 5 one (rope_parameters, dtype). What ModelSettings cannot
// represent is refused rather than approximated: a bias our o_proj/MLP does not carry, an
// activation other than SiLU, a rope type other than llama3 on a loadable arch, sliding windows
// on only some layers, MoE layers interleaved with dense ones.
//
// Every failure is audit::InputError naming config.json and the key (exit 2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "reproduce/settings/settings.h"  // ModelSettings

namespace audit::hf {

// What a config.json says: the architecture and the few facts about the checkpoint beside it.
struct HfConfig {
  std::string path;                        // the file read ("" when parsed from text)
  settings::ModelSettings model;           // model.arch = model_type
  std::vector<std::string> architectures;  // e.g. {"Qwen2ForCausalLM"}; may be empty
  std::string dtype;                       // torch_dtype / dtype: "bfloat16", ... ("" if absent)
  std::vector<int64_t> bos_token_ids;      // bos_token_id (one, a list, or none)
  std::vector<int64_t> eos_token_ids;      // eos_token_id (one, a list, or none)
  // True for the archs reproduce/model builds (qwen2, llama, mistral).
  bool loadable() const;
};

// The model_types that the model builds and loads: "qwen2", "llama", "mistral".
bool is_loadable_arch(const std::string& arch);

// Reads and checks config.json. Throws audit::InputError naming the file and the key.
HfConfig read_config(const std::string& path);
// The same from the file's text (`path` only names it in errors); the fuzz tests call this.
HfConfig parse_config(const std::string& text, const std::string& path);

// The config.json that transformers writes for this model: architectures
// (Qwen2ForCausalLM / LlamaForCausalLM / MistralForCausalLM), model_type, every shape key,
// rope_theta and rope_scaling, sliding window, tie_word_embeddings and `dtype` ("bfloat16",
// "float32", "float16"). Only for the loadable archs; throws std::invalid_argument for a field
// transformers cannot express for that arch (e.g. qwen2 without q/k/v bias).
nlohmann::json config_json(const settings::ModelSettings& m, const std::string& dtype,
                           const std::vector<int64_t>& bos = {},
                           const std::vector<int64_t>& eos = {});
// Writes config_json() to `path` (PATH.tmp then rename). Throws std::runtime_error on I/O failure.
void write_config(const settings::ModelSettings& m, const std::string& path,
                  const std::string& dtype, const std::vector<int64_t>& bos = {},
                  const std::vector<int64_t>& eos = {});

// Reads a whole (small) text file; InputError naming it when it cannot be opened or read.
std::string read_text_file(const std::string& path);
// Writes a text file through PATH.tmp and rename; std::runtime_error naming it on failure.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace audit::hf
