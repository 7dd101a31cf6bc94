// Tests of reproduce/hf_checkpoint (torch-free): config.json for the six model_types and what is
// refused, safetensors header checks, checkpoint directories (single file and sharded) made at
// test time by transformers itself (tests/golden/make_hf_checkpoints.py), their tensors against
// config.json, and seeded fuzzing of the header parser and of read_config.
#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/python_peer.h"
#include "reproduce/hf_checkpoint/checkpoint_dir.h"
#include "reproduce/hf_checkpoint/hf_config.h"
#include "reproduce/hf_checkpoint/safetensors_header.h"
#include "tests/support/support.h"

namespace {

using audit::InputError;
using audit::testing::TempDir;
using audit::testing::read_file;
using audit::testing::write_file;
using nlohmann::json;
namespace hf = audit::hf;
namespace st = audit::safetensors;

// Runs fn and returns the InputError's message; fails the test when nothing or another
// exception type is thrown.
template <class F>
std::string input_error(F&& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected audit::InputError, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected audit::InputError, nothing was thrown";
  return "";
}

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

// A safetensors file from a header and a data area.
std::string safetensors_bytes(const json& header, const std::string& data) {
  const std::string h = header.dump();
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((h.size() >> (8 * i)) & 0xff));
  return out + h + data;
}

// The checkpoints made once for the suite by transformers (the manifest: name -> entry).
class HfCheckpoints : public ::testing::Test {
 protected:
  // Made once per build folder (tests/support hf_checkpoint_fixtures).
  static void SetUpTestSuite() {
    for (const auto& e : audit::testing::hf_checkpoint_fixtures()) (*manifest_)[e["name"]] = e;
  }
  static const json& entry(const std::string& name) { return manifest_->at(name); }
  static std::string path(const std::string& name) { return entry(name)["dir"]; }
  // A copy of a fixture's folder that a test may damage.
  static std::string copy(const std::string& name, const TempDir& into) {
    const std::string to = into.file(name);
    const auto r = audit::testing::run_command("cp -r " + audit::shell_quote(path(name)) + " " +
                                               audit::shell_quote(to));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return to;
  }

  static json* manifest_;
};
json* HfCheckpoints::manifest_ = new json(json::object());

// ------------------------------------------------------------------------- config.json

TEST_F(HfCheckpoints, ReadsTheConfigsTransformersWrites) {
  const auto q = hf::read_config(path("qwen2-tied-bf16") + "/config.json");
  EXPECT_EQ(q.model.arch, "qwen2");
  EXPECT_EQ(q.model.vocab, 128);
  EXPECT_EQ(q.model.hidden, 32);
  EXPECT_EQ(q.model.layers, 2);
  EXPECT_EQ(q.model.heads, 4);
  EXPECT_EQ(q.model.kv_heads, 2);
  EXPECT_EQ(q.model.head_dim, 8);
  EXPECT_EQ(q.model.ffn, 64);
  EXPECT_EQ(q.model.max_position, 256);
  EXPECT_DOUBLE_EQ(q.model.rope_theta, 1e6);  // transformers 5: inside rope_parameters
  EXPECT_TRUE(q.model.qkv_bias);
  EXPECT_TRUE(q.model.tie_embeddings);
  EXPECT_EQ(q.model.sliding_window, 0);
  EXPECT_EQ(q.dtype, "bfloat16");
  EXPECT_EQ(q.architectures, std::vector<std::string>{"Qwen2ForCausalLM"});
  EXPECT_TRUE(q.loadable());

  const auto l = hf::read_config(path("llama-rope3-bf16-sharded") + "/config.json");
  EXPECT_EQ(l.model.arch, "llama");
  EXPECT_FALSE(l.model.qkv_bias);
  EXPECT_FALSE(l.model.tie_embeddings);
  EXPECT_EQ(l.model.rope_scaling, "llama3");
  EXPECT_DOUBLE_EQ(l.model.rope_factor, 8.0);
  EXPECT_DOUBLE_EQ(l.model.rope_low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(l.model.rope_high_freq_factor, 4.0);
  EXPECT_EQ(l.model.rope_original_max_position, 64);
  EXPECT_DOUBLE_EQ(l.model.rope_theta, 500000.0);
  EXPECT_EQ(l.bos_token_ids, std::vector<int64_t>{1});
  EXPECT_EQ(l.eos_token_ids, std::vector<int64_t>{2});

  EXPECT_EQ(hf::read_config(path("mistral-fp32") + "/config.json").model.sliding_window, 16);
  EXPECT_EQ(hf::read_config(path("mistral-bf16-sharded") + "/config.json").model.sliding_window, 0);
}

json qwen2_config_v4() {  // the transformers 4 layout of a real Qwen2.5-0.5B config.json
  return json::parse(R"({"architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643,
    "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "intermediate_size": 4864,
    "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2",
    "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
    "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_sliding_window": false,
    "vocab_size": 151936})");
}

TEST(HfConfig, ReadsTheTransformers4LayoutAndImpliesTheParameterCount) {
  const auto c = hf::parse_config(qwen2_config_v4().dump(), "config.json");
  EXPECT_EQ(c.model.head_dim, 64);
  EXPECT_DOUBLE_EQ(c.model.rope_theta, 1e6);
  EXPECT_EQ(c.model.sliding_window, 0);  // use_sliding_window false
  EXPECT_EQ(c.dtype, "bfloat16");
  // Qwen2.5-0.5B: 494,032,768 parameters (its model card says 0.49B).
  EXPECT_EQ(hf::implied_parameter_count(c.model), 494032768);
}

TEST(HfConfig, ReadsTheMoeArchs) {
  const auto q = hf::parse_config(R"({"model_type": "qwen2_moe", "vocab_size": 151936,
    "hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 16,
    "num_key_value_heads": 16, "intermediate_size": 5632, "moe_intermediate_size": 1408,
    "shared_expert_intermediate_size": 5632, "num_experts": 60, "num_experts_per_tok": 4,
    "decoder_sparse_step": 1, "mlp_only_layers": [], "max_position_embeddings": 8192,
    "rope_theta": 1000000.0, "tie_word_embeddings": false})",
                                  "moe.json");
  EXPECT_EQ(q.model.routed_experts, 60);
  EXPECT_EQ(q.model.top_k, 4);
  EXPECT_EQ(q.model.expert_ffn, 1408);
  EXPECT_EQ(q.model.shared_experts, 1);
  EXPECT_EQ(q.model.shared_expert_ffn, 5632);
  EXPECT_TRUE(q.model.qkv_bias);
  // Qwen1.5-MoE-A2.7B: 14.3B parameters.
  EXPECT_EQ(hf::implied_parameter_count(q.model), 14315784192);

  const auto m = hf::parse_config(R"({"model_type": "mixtral", "vocab_size": 32000,
    "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "intermediate_size": 14336, "num_local_experts": 8,
    "num_experts_per_tok": 2, "max_position_embeddings": 32768, "rope_theta": 1e6,
    "sliding_window": null, "torch_dtype": "bfloat16"})",
                                  "mixtral.json");
  EXPECT_EQ(m.model.routed_experts, 8);
  EXPECT_EQ(m.model.expert_ffn, 14336);
  EXPECT_EQ(m.model.shared_experts, 0);
  EXPECT_FALSE(m.model.qkv_bias);
  // Mixtral-8x7B: 46,702,792,704 parameters.
  EXPECT_EQ(hf::implied_parameter_count(m.model), 46702792704);

  const auto d = hf::parse_config(R"({"model_type": "deepseek_v3", "vocab_size": 129280,
    "hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": 128,
    "num_key_value_heads": 128, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8,
    "first_k_dense_replace": 3, "moe_layer_freq": 1, "scoring_func": "sigmoid",
    "routed_scaling_factor": 2.5, "n_group": 8, "topk_group": 4, "num_nextn_predict_layers": 1,
    "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
    "v_head_dim": 128, "max_position_embeddings": 163840, "rope_theta": 10000,
    "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096},
    "hidden_act": "silu", "attention_bias": false, "tie_word_embeddings": false})",
                                  "ds.json");
  EXPECT_EQ(d.model.routed_experts, 256);
  EXPECT_EQ(d.model.shared_experts, 1);
  EXPECT_EQ(d.model.first_dense_layers, 3);
  EXPECT_EQ(d.model.score_func, "sigmoid");
  EXPECT_DOUBLE_EQ(d.model.routed_scaling, 2.5);
  EXPECT_EQ(d.model.expert_groups, 8);
  EXPECT_EQ(d.model.topk_groups, 4);
  EXPECT_EQ(d.model.mtp_depth, 1);
  EXPECT_EQ(d.model.q_lora_rank, 1536);
  EXPECT_EQ(d.model.kv_lora_rank, 512);
  EXPECT_EQ(d.model.v_head_dim, 128);
  EXPECT_EQ(d.model.rope_scaling, "");  // yarn: counted only, not computed
  EXPECT_FALSE(d.loadable());
  EXPECT_FALSE(hf::has_expected_tensors("deepseek_v3"));
}

TEST(HfConfig, RefusesWhatItCannotRepresentNamingTheKey) {
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    const char* key;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"unknown model_type", [](json& j) { j["model_type"] = "gpt2"; }, "'model_type'",
       "unknown model_type \"gpt2\""},
      {"no model_type", [](json& j) { j.erase("model_type"); }, "'model_type'", "missing"},
      {"missing key", [](json& j) { j.erase("hidden_size"); }, "'hidden_size'", "missing"},
      {"wrong type", [](json& j) { j["hidden_size"] = "896"; }, "'hidden_size'",
       "must be an integer, not string"},
      {"zero", [](json& j) { j["num_hidden_layers"] = 0; }, "'num_hidden_layers'", ">= 1"},
      {"kv heads", [](json& j) { j["num_key_value_heads"] = 3; }, "'num_key_value_heads'",
       "does not divide"},
      {"activation", [](json& j) { j["hidden_act"] = "gelu"; }, "'hidden_act'", "only silu"},
      {"mlp bias", [](json& j) { j["mlp_bias"] = true; }, "'mlp_bias'", "not supported"},
      {"llama bias",
       [](json& j) {
         j["model_type"] = "llama";
         j["attention_bias"] = true;
       },
       "'attention_bias'", "o_proj"},
      {"rope type",
       [](json& j) { j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}}; },
       "'rope_scaling.rope_type'", "\"yarn\" is not supported"},
      {"llama3 without factor",
       [](json& j) {
         j["rope_scaling"] = {{"rope_type", "llama3"}, {"original_max_position_embeddings", 8}};
       },
       "'rope_scaling.factor'", "missing"},
      {"partial sliding window",
       [](json& j) {
         j["use_sliding_window"] = true;
         j["max_window_layers"] = 12;
       },
       "'max_window_layers'", "per-layer window"},
      {"mixed layer types",
       [](json& j) { j["layer_types"] = {"full_attention", "sliding_attention"}; },
       "'layer_types'", "mixes"},
      {"not an object", [](json& j) { j = json::array({1, 2}); }, "", "must be a JSON object"},
  };
  for (const auto& c : cases) {
    json j = qwen2_config_v4();
    c.edit(j);
    const std::string msg = input_error([&] { hf::parse_config(j.dump(), "dir/config.json"); });
    EXPECT_HAS(msg, "dir/config.json") << c.what;
    EXPECT_HAS(msg, c.key) << c.what;
    EXPECT_HAS(msg, c.message) << c.what;
  }
  const std::string bad_json = input_error([] { hf::parse_config("{\"model_type\": ", "c.json"); });
  EXPECT_HAS(bad_json, "c.json: not valid JSON");
  const std::string missing = input_error([] { hf::read_config("/nonexistent/config.json"); });
  EXPECT_HAS(missing, "/nonexistent/config.json: cannot open");

  json moe = json::parse(R"({"model_type": "qwen2_moe", "vocab_size": 10, "hidden_size": 8,
    "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 16,
    "moe_intermediate_size": 4, "num_experts": 4, "num_experts_per_tok": 2})");
  moe["decoder_sparse_step"] = 2;
  EXPECT_HAS(input_error([&] { hf::parse_config(moe.dump(), "m.json"); }),
             "'decoder_sparse_step'");
  moe["decoder_sparse_step"] = 1;
  moe["mlp_only_layers"] = {1};
  EXPECT_HAS(input_error([&] { hf::parse_config(moe.dump(), "m.json"); }), "'mlp_only_layers'");
  moe["mlp_only_layers"] = {0, 1};
  EXPECT_EQ(hf::parse_config(moe.dump(), "m.json").model.first_dense_layers, 2);
}

TEST(HfConfig, WriteConfigRoundTripsEveryLoadableArch) {
  const TempDir dir("hf_config");
  for (const std::string arch : {"qwen2", "llama", "mistral"}) {
    audit::settings::ModelSettings m;
    m.arch = arch;
    m.qkv_bias = arch == "qwen2";
    m.tie_embeddings = arch != "mistral";
    m.rope_theta = 5e5;
    if (arch == "llama") {
      m.rope_scaling = "llama3";
      m.rope_factor = 8;
      m.rope_original_max_position = 128;
    }
    if (arch == "mistral") m.sliding_window = 32;
    const std::string p = dir.file(arch + ".json");
    hf::write_config(m, p, "bfloat16", {1}, {2, 3});
    const auto c = hf::read_config(p);
    EXPECT_EQ(c.model, m) << audit::settings::to_string(c.model) << "\n"
                          << audit::settings::to_string(m);
    EXPECT_EQ(c.dtype, "bfloat16");
    EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2, 3}));
  }
  audit::settings::ModelSettings bad;
  bad.qkv_bias = false;  // qwen2 always has q/k/v biases
  EXPECT_THROW(hf::config_json(bad, "float32"), std::invalid_argument);
  bad.arch = "deepseek_v3";
  EXPECT_THROW(hf::config_json(bad, "float32"), std::invalid_argument);
}

// transformers reads what write_config writes: AutoConfig's fields equal ours.
TEST(HfConfig, TransformersReadsTheConfigsWeWrite) {
  const TempDir dir("hf_config_py");
  for (const std::string arch : {"qwen2", "llama", "mistral"}) {
    audit::settings::ModelSettings m;
    m.arch = arch;
    m.qkv_bias = arch == "qwen2";
    m.vocab = 300;
    m.hidden = 48;
    m.heads = 6;
    m.kv_heads = 2;
    m.head_dim = 8;
    m.rope_theta = 5e5;
    if (arch == "llama") {
      m.rope_scaling = "llama3";
      m.rope_factor = 8;
      m.rope_original_max_position = 128;
    }
    if (arch != "llama") m.sliding_window = 32;
    ASSERT_EQ(::mkdir(dir.file(arch).c_str(), 0755), 0);
    hf::write_config(m, dir.file(arch + "/config.json"), "bfloat16");
  }
  const std::string script =
      "import sys, json, transformers\n"
      "out = {}\n"
      "for a in ['qwen2', 'llama', 'mistral']:\n"
      "  c = transformers.AutoConfig.from_pretrained(sys.argv[1] + '/' + a)\n"
      "  rp = getattr(c, 'rope_parameters', None) or getattr(c, 'rope_scaling', None) or {}\n"
      "  out[a] = {'type': type(c).__name__, 'hidden': c.hidden_size, 'kv': c.num_key_value_heads,\n"
      "    'head_dim': getattr(c, 'head_dim', None), 'theta': rp.get('rope_theta', getattr(c, 'rope_theta', None)),\n"
      "    'rope_type': rp.get('rope_type'), 'factor': rp.get('factor'),\n"
      "    'window': getattr(c, 'sliding_window', None),\n"
      "    'layer_types': getattr(c, 'layer_types', None)}\n"
      "print(json.dumps(out))\n";
  write_file(dir.file("peer.py"), script);
  const auto out = audit::testing::run_command(audit::shell_quote(audit::default_python()) + " " +
                                               audit::shell_quote(dir.file("peer.py")) + " " +
                                               audit::shell_quote(dir.path()) + " 2>/dev/null");
  ASSERT_EQ(out.exit_code, 0) << out.output;
  const json r = json::parse(out.output);
  EXPECT_EQ(r["qwen2"]["type"], "Qwen2Config");
  EXPECT_EQ(r["llama"]["type"], "LlamaConfig");
  EXPECT_EQ(r["mistral"]["type"], "MistralConfig");
  for (const char* a : {"qwen2", "llama", "mistral"}) {
    EXPECT_EQ(r[a]["hidden"], 48) << a;
    EXPECT_EQ(r[a]["kv"], 2) << a;
    EXPECT_EQ(r[a]["head_dim"], 8) << a;
    EXPECT_DOUBLE_EQ(r[a]["theta"].get<double>(), 5e5) << a;
  }
  EXPECT_EQ(r["llama"]["rope_type"], "llama3");
  EXPECT_DOUBLE_EQ(r["llama"]["factor"].get<double>(), 8.0);
  EXPECT_EQ(r["mistral"]["window"], 32);
  EXPECT_EQ(r["qwen2"]["window"], 32);
  EXPECT_EQ(r["qwen2"]["layer_types"], json({"sliding_attention", "sliding_attention"}));
}

// ------------------------------------------------------------------------- safetensors headers

TEST(SafetensorsHeader, RefusesBrokenFilesNamingFileAndTensor) {
  const TempDir dir("st_header");
  const json good = {{"a", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}}},
                     {"b", {{"dtype", "BF16"}, {"shape", {2, 2}}, {"data_offsets", {8, 16}}}}};
  const std::string bytes = safetensors_bytes(good, std::string(16, '\0'));
  write_file(dir.file("good.safetensors"), bytes);
  const auto h = st::read_header(dir.file("good.safetensors"));
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.info("b").shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(h.data_start, 8 + good.dump().size());

  auto refused = [&](const std::string& name, const std::string& content) {
    write_file(dir.file(name), content);
    return input_error([&] { st::read_header(dir.file(name)); });
  };
  std::string m = refused("short.safetensors", "abc");
  EXPECT_HAS(m, "short.safetensors: too short");
  m = refused("trunc.safetensors", bytes.substr(0, 20));
  EXPECT_HAS(m, "trunc.safetensors: header length");
  EXPECT_HAS(m, "exceeds the file");
  m = refused("past.safetensors", bytes.substr(0, bytes.size() - 4));  // data cut short
  EXPECT_HAS(m, "'b': data_offsets [8, 16] outside the data area of 12 bytes");
  json over = good;
  over["b"]["data_offsets"] = {4, 12};
  m = refused("overlap.safetensors", safetensors_bytes(over, std::string(16, '\0')));
  EXPECT_HAS(m, "overlaps tensor");
  json size = good;
  size["a"]["shape"] = {3};
  m = refused("size.safetensors", safetensors_bytes(size, std::string(16, '\0')));
  EXPECT_HAS(m, "'a': holds 8 bytes but F32 [3] needs 12");
  json dtype = good;
  dtype["a"]["dtype"] = "Q4";
  m = refused("dtype.safetensors", safetensors_bytes(dtype, std::string(16, '\0')));
  EXPECT_HAS(m, "'a': unsupported safetensors dtype 'Q4'");
  json huge = good;
  huge["a"]["shape"] = {int64_t(1) << 40, int64_t(1) << 40};
  m = refused("huge.safetensors", safetensors_bytes(huge, std::string(16, '\0')));
  EXPECT_HAS(m, "too large");
  m = refused("json.safetensors", safetensors_bytes(good, "").substr(0, 8) + std::string(60, '{'));
  EXPECT_HAS(m, "json.safetensors");
}

// ------------------------------------------------------------------------- checkpoint dirs

TEST_F(HfCheckpoints, OpensSingleAndShardedCheckpointsAndCountsTheirParameters) {
  for (const auto& [name, e] : manifest_->items()) {
    SCOPED_TRACE(name);
    const auto c = hf::open_checkpoint(e["dir"]);
    EXPECT_EQ(c.sharded, e["sharded"].get<bool>());
    EXPECT_EQ(c.sharded, c.shards.size() > 1);
    EXPECT_EQ(c.config.model.arch, e["arch"]);
    EXPECT_EQ(c.config.model.tie_embeddings, e["tied"].get<bool>());
    EXPECT_NO_THROW(hf::check_tensors(c));
    // transformers' own count (sum of numel over model.parameters()) == ours == config's.
    EXPECT_EQ(c.parameter_count(), e["parameters"].get<int64_t>());
    EXPECT_EQ(hf::implied_parameter_count(c.config.model), e["parameters"].get<int64_t>());
    EXPECT_EQ(c.dtypes(), (std::set<std::string>{e["dtype"] == "bfloat16" ? "BF16" : "F32"}));
    EXPECT_EQ(c.shard_of.count("lm_head.weight"), e["tied"].get<bool>() ? 0u : 1u);
  }
}

TEST_F(HfCheckpoints, RefusesBrokenDirectoriesNamingFileAndTensor) {
  const TempDir tmp("hf_broken");
  // A shard named in the index is missing.
  std::string d = copy("qwen2-untied-fp32-sharded", tmp);
  ASSERT_EQ(std::remove((d + "/model-00003-of-00007.safetensors").c_str()), 0);
  std::string m = input_error([&] { hf::open_checkpoint(d); });
  EXPECT_HAS(m, "model.safetensors.index.json");
  EXPECT_HAS(m, "shard model-00003-of-00007.safetensors named in the index is missing");

  // The index puts a tensor in a shard that does not hold it.
  d = copy("llama-rope3-bf16-sharded", tmp);
  json idx = json::parse(read_file(d + "/model.safetensors.index.json"));
  const std::string moved = "model.norm.weight";
  const std::string was = idx["weight_map"][moved];
  idx["weight_map"][moved] =
      was == "model-00001-of-00003.safetensors" ? "model-00002-of-00003.safetensors"
                                                : "model-00001-of-00003.safetensors";
  write_file(d + "/model.safetensors.index.json", idx.dump());
  m = input_error([&] { hf::open_checkpoint(d); });
  EXPECT_HAS(m, "'model.norm.weight'");

  // config.json disagrees with the tensors: shape, then dtype.
  d = copy("qwen2-tied-bf16", tmp);
  json cfg = json::parse(read_file(d + "/config.json"));
  cfg["intermediate_size"] = 96;
  write_file(d + "/config.json", cfg.dump());
  m = input_error([&] { hf::check_tensors(hf::open_checkpoint(d)); });
  EXPECT_HAS(m, "model.safetensors: 'model.layers.0.mlp.gate_proj.weight': shape [64, 32] but");
  EXPECT_HAS(m, "implies [96, 32]");
  cfg["intermediate_size"] = 64;
  cfg["dtype"] = "float32";
  write_file(d + "/config.json", cfg.dump());
  m = input_error([&] { hf::check_tensors(hf::open_checkpoint(d)); });
  EXPECT_HAS(m, "dtype BF16 but");
  EXPECT_HAS(m, "float32");

  // No weights at all; no config.
  d = copy("mistral-fp32", tmp);
  ASSERT_EQ(std::remove((d + "/model.safetensors").c_str()), 0);
  EXPECT_HAS(input_error([&] { hf::open_checkpoint(d); }), "no model.safetensors");
  ASSERT_EQ(std::remove((d + "/config.json").c_str()), 0);
  EXPECT_HAS(input_error([&] { hf::open_checkpoint(d); }), "config.json: missing");

  // A tensor the config does not imply.
  d = copy("llama-fp32", tmp);  // tied: a stray extra tensor
  cfg = json::parse(read_file(d + "/config.json"));
  cfg["num_hidden_layers"] = 1;
  write_file(d + "/config.json", cfg.dump());
  m = input_error([&] { hf::check_tensors(hf::open_checkpoint(d)); });
  EXPECT_HAS(m, "'model.layers.1.");
  EXPECT_HAS(m, "not implied by");
}

// ------------------------------------------------------------------------- fuzzing

// Seeded mutations of a real file: byte flips, truncations, insertions. Each parse must succeed
// or throw audit::InputError: never crash, never another exception type.
TEST_F(HfCheckpoints, FuzzedSafetensorsHeadersGiveInputErrorOrSuccess) {
  const std::string orig = read_file(path("qwen2-tied-bf16") + "/model.safetensors");
  const uint64_t header_end = 8 + static_cast<uint8_t>(orig[0]) +
                              256 * static_cast<uint8_t>(orig[1]) +
                              65536 * static_cast<uint8_t>(orig[2]);
  std::mt19937_64 rng(20261129);
  int ok = 0, refused = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string b = orig.substr(0, std::min<uint64_t>(orig.size(), header_end + 64));
    const uint64_t claimed_size = orig.size();
    const int kind = static_cast<int>(rng() % 4);
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      const size_t at = rng() % b.size();
      if (kind == 0) b[at] = static_cast<char>(rng());                       // byte flip
      if (kind == 1) b[at] = "{}[]\",:0123456789-e."[rng() % 20];            // JSON syntax
      if (kind == 2 && at > 0) b.resize(at);                                 // truncation
      if (kind == 3) b.insert(at, 1 + rng() % 3, static_cast<char>(rng()));  // insertion
    }
    try {
      st::parse_header(b, std::max<uint64_t>(claimed_size, b.size()) - (rng() % 2) * (rng() % 64),
                       "fuzz.safetensors");
      ++ok;
    } catch (const InputError&) {
      ++refused;
    } catch (const std::exception& e) {
      FAIL() << "iteration " << i << ": not an InputError: " << e.what();
    }
  }
  EXPECT_GT(refused, 100);
  EXPECT_EQ(ok + refused, 3000);
}

// Seeded mutations of a config.json: a value swapped for another JSON type, a key dropped, or
// the text's bytes flipped or cut. read_config must succeed or throw audit::InputError.
TEST_F(HfCheckpoints, FuzzedConfigsGiveInputErrorOrSuccess) {
  std::vector<json> seeds = {json::parse(read_file(path("llama-rope3-bf16-sharded") + "/config.json")),
                             json::parse(read_file(path("mistral-fp32") + "/config.json")),
                             qwen2_config_v4()};
  const std::vector<json> values = {nullptr, true, false, 0, -1, 7, 2.5, -1e300, "silu",
                                    "llama3", json::array(), json::array({1, "x"}),
                                    json::object(), json::object({{"rope_type", "llama3"}}),
                                    uint64_t(18446744073709551615ull), 1e20};
  std::mt19937_64 rng(11);
  int ok = 0, refused = 0;
  for (int i = 0; i < 3000; ++i) {
    json j = seeds[rng() % seeds.size()];
    std::string text;
    const int kind = static_cast<int>(rng() % 3);
    if (kind < 2) {
      for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) {
        auto it = j.begin();
        std::advance(it, static_cast<long>(rng() % j.size()));
        const std::string key = it.key();
        if (kind == 0) j[key] = values[rng() % values.size()];  // type swap
        else j.erase(key);                                      // key dropped
        if (j.empty()) break;
      }
      text = j.dump();
    } else {
      text = j.dump();
      for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) {
        const size_t at = rng() % text.size();
        if (rng() % 2) text[at] = static_cast<char>(rng());
        else text.resize(std::max<size_t>(1, at));
      }
    }
    try {
      hf::parse_config(text, "fuzz.json");
      ++ok;
    } catch (const InputError&) {
      ++refused;
    } catch (const std::exception& e) {
      FAIL() << "iteration " << i << ": not an InputError: " << e.what() << "\n" << text;
    }
  }
  EXPECT_GT(refused, 500);
  EXPECT_GT(ok, 50);
}

}  // namespace

// ------------------------------------------------------------------------- audit model inspect

namespace {

TEST_F(HfCheckpoints, ModelInspectDescribesACheckpoint) {
  const std::string d = path("qwen2-tied-bf16");
  const auto text = audit::testing::run_audit("model inspect " + audit::shell_quote(d));
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_HAS(text.output, "architecture  qwen2 (Qwen2ForCausalLM)");
  EXPECT_HAS(text.output, "(config.json implies the same)");
  EXPECT_HAS(text.output, "BF16 on disk; config.json: bfloat16");
  EXPECT_HAS(text.output, "model.safetensors");
  EXPECT_HAS(text.output, "WordLevel");
  EXPECT_HAS(text.output, "<|im_end|>");

  const auto js = audit::testing::run_audit("model inspect --json " +
                                            audit::shell_quote(path("llama-rope3-bf16-sharded")));
  ASSERT_EQ(js.exit_code, 0) << js.output;
  const json j = json::parse(js.output);
  EXPECT_EQ(j["model_type"], "llama");
  EXPECT_EQ(j["parameters"], entry("llama-rope3-bf16-sharded")["parameters"]);
  EXPECT_EQ(j["parameters_implied"], j["parameters"]);
  EXPECT_EQ(j["config"]["rope_scaling"], "llama3");
  EXPECT_TRUE(j["sharded"].get<bool>());
  EXPECT_EQ(j["shards"].size(), 3u);
  EXPECT_EQ(j["tokenizer"]["type"], "WordLevel");
  EXPECT_EQ(j["tokenizer"]["special_tokens"]["eos_token"], "<|im_end|>");
  EXPECT_EQ(j["tokenizer"]["max_id"], 127);

  // A declared figure: within 1% agrees (exit 0), else exit 1.
  const std::string n = std::to_string(entry("mistral-fp32")["parameters"].get<int64_t>());
  EXPECT_EQ(audit::testing::run_audit("model inspect --declared " + n + " " +
                                      audit::shell_quote(path("mistral-fp32")))
                .exit_code,
            0);
  const auto off = audit::testing::run_audit("model inspect --declared 1e6 " +
                                             audit::shell_quote(path("mistral-fp32")));
  EXPECT_EQ(off.exit_code, 1) << off.output;
  EXPECT_HAS(off.output, "DISAGREES");
}

TEST_F(HfCheckpoints, ModelInspectExitsTwoOnBadInputNamingTheFile) {
  const TempDir tmp("inspect_bad");
  std::string d = copy("qwen2-untied-fp32-sharded", tmp);
  ASSERT_EQ(std::remove((d + "/model-00002-of-00007.safetensors").c_str()), 0);
  auto r = audit::testing::run_audit("model inspect " + audit::shell_quote(d));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_HAS(r.output, "model-00002-of-00007.safetensors named in the index is missing");

  d = copy("mistral-fp32", tmp);
  std::string bytes = read_file(d + "/model.safetensors");
  write_file(d + "/model.safetensors", bytes.substr(0, bytes.size() / 2));  // truncated
  r = audit::testing::run_audit("model inspect " + audit::shell_quote(d));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_HAS(r.output, d + "/model.safetensors: '");
  EXPECT_HAS(r.output, "outside the data area");

  r = audit::testing::run_audit("model inspect " + audit::shell_quote(tmp.file("nothing")));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_HAS(r.output, "not a checkpoint directory");
}

}  // namespace
