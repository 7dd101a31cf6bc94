// `audit model`: Hugging Face checkpoint directories. `audit model inspect DIR [--declared N]
// [--json]` (torch-free, headers only) prints the architecture config.json describes, the
// parameter count from the tensors against the count config.json implies and a declared figure,
// the dtypes, the shards with their sizes, and the tokenizer's kind, vocabulary and special
// tokens. `audit model compare` (LibTorch) is registered by audit-torch under the same parent;
// the torch-free binary hands it over (cli.h, kTorchSubcommands).
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/format.h"
#include "reproduce/cli/cli.h"
#include "reproduce/hf_checkpoint/checkpoint_dir.h"  // open_checkpoint, check_tensors

namespace audit::cli {

namespace {

using nlohmann::json;

// A published parameter figure ("0.49B") agrees with the count when within this fraction.
constexpr double kDeclaredTolerance = 0.01;

bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string base_name(const std::string& p) {
  const auto s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

// The tokenizer files, read lightly: tokenizer.json's model type, vocabulary size and added
// tokens, and tokenizer_config.json's named special tokens. null when there is no tokenizer.json.
json tokenizer_summary(const std::string& dir, int64_t vocab_size) {
  const std::string path = dir + "/tokenizer.json";
  if (!is_file(path)) return nullptr;
  json t;
  try {
    t = json::parse(hf::read_text_file(path));
  } catch (const json::exception& e) {
    throw InputError(path, 0, 0, "", std::string("not valid JSON: ") + e.what());
  }
  if (!t.is_object() || !t.contains("model") || !t["model"].is_object())
    throw InputError(path, 0, 0, "model", "missing object");
  const json& model = t["model"];
  json out = json::object();
  out["file"] = path;
  out["type"] = model.contains("type") && model["type"].is_string() ? model["type"] : json("?");
  int64_t base = 0, max_id = -1;
  if (model.contains("vocab") && model["vocab"].is_object()) {
    base = static_cast<int64_t>(model["vocab"].size());
    for (const auto& [k, v] : model["vocab"].items())
      if (v.is_number_integer()) max_id = std::max<int64_t>(max_id, v.get<int64_t>());
  } else if (model.contains("vocab") && model["vocab"].is_array()) {  // Unigram
    base = static_cast<int64_t>(model["vocab"].size());
    max_id = base - 1;
  }
  json added = json::array();
  if (t.contains("added_tokens")) {
    if (!t["added_tokens"].is_array())
      throw InputError(path, 0, 0, "added_tokens", "must be a list");
    for (const auto& a : t["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          !a.contains("content") || !a["content"].is_string())
        throw InputError(path, 0, 0, "added_tokens", "entries need an integer id and a content");
      const int64_t id = a["id"].get<int64_t>();
      max_id = std::max(max_id, id);
      added.push_back({{"id", id},
                       {"content", a["content"]},
                       {"special", a.value("special", false)}});
    }
  }
  out["vocab"] = base;
  out["added_tokens"] = added;
  out["max_id"] = max_id;
  if (max_id >= vocab_size)
    throw InputError(path, 0, 0, "", "token id " + std::to_string(max_id) +
                                         " does not fit config.json's vocab_size " +
                                         std::to_string(vocab_size));
  json named = json::object();
  const std::string cfg = dir + "/tokenizer_config.json";
  if (is_file(cfg)) {
    try {
      const json c = json::parse(hf::read_text_file(cfg));
      for (const char* k : {"bos_token", "eos_token", "pad_token", "unk_token"}) {
        if (!c.is_object() || !c.contains(k)) continue;
        const json& v = c[k];
        if (v.is_string()) named[k] = v;
        else if (v.is_object() && v.contains("content") && v["content"].is_string())
          named[k] = v["content"];
      }
    } catch (const json::exception& e) {
      throw InputError(cfg, 0, 0, "", std::string("not valid JSON: ") + e.what());
    }
  }
  out["special_tokens"] = named;
  return out;
}

json inspect(const std::string& dir, double declared) {
  const hf::CheckpointDir c = hf::open_checkpoint(dir);
  hf::check_tensors(c);
  const auto& m = c.config.model;
  json j = json::object();
  j["dir"] = dir;
  j["model_type"] = m.arch;
  j["architectures"] = c.config.architectures;
  j["loadable"] = c.config.loadable();
  json shape = json::object();
  settings::ModelSettings::for_each_field([&](const char* name, auto field) {
    shape[name] = m.*field;
  });
  j["config"] = shape;
  j["config_dtype"] = c.config.dtype;
  j["dtypes"] = c.dtypes();
  const int64_t from_tensors = c.parameter_count();
  j["parameters"] = from_tensors;
  j["parameters_implied"] =
      hf::has_expected_tensors(m.arch) ? json(hf::implied_parameter_count(m)) : json(nullptr);
  if (declared > 0) {
    j["declared"] = declared;
    j["declared_agrees"] =
        std::fabs(static_cast<double>(from_tensors) - declared) <= kDeclaredTolerance * declared;
  }
  json shards = json::array();
  for (const auto& s : c.shards)
    shards.push_back({{"file", base_name(s.file)},
                      {"bytes", s.header.file_size},
                      {"tensors", s.header.tensors.size()}});
  j["sharded"] = c.sharded;
  j["shards"] = shards;
  j["bytes"] = c.total_bytes();
  j["tokenizer"] = tokenizer_summary(dir, m.vocab);
  return j;
}

void print_text(const json& j) {
  const json& c = j["config"];
  std::printf("checkpoint    %s\n", j["dir"].get<std::string>().c_str());
  std::string archs;
  for (const auto& a : j["architectures"]) archs += (archs.empty() ? "" : ", ") + a.get<std::string>();
  std::printf("architecture  %s%s%s\n", j["model_type"].get<std::string>().c_str(),
              archs.empty() ? "" : (" (" + archs + ")").c_str(),
              j["loadable"].get<bool>() ? "" : "  [counted only: audit does not build it]");
  std::printf("shape         vocab %lld, hidden %lld, layers %lld, heads %lld (kv %lld, head_dim "
              "%lld), ffn %lld, %s embeddings%s\n",
              c["vocab"].get<long long>(), c["hidden"].get<long long>(),
              c["layers"].get<long long>(), c["heads"].get<long long>(),
              c["kv_heads"].get<long long>(), c["head_dim"].get<long long>(),
              c["ffn"].get<long long>(), c["tie_embeddings"].get<bool>() ? "tied" : "untied",
              c["qkv_bias"].get<bool>() ? ", q/k/v bias" : "");
  if (c["routed_experts"].get<int64_t>() > 0)
    std::printf("experts       %lld routed (top %lld, width %lld), %lld shared, %lld leading "
                "dense layers\n",
                c["routed_experts"].get<long long>(), c["top_k"].get<long long>(),
                c["expert_ffn"].get<long long>(), c["shared_experts"].get<long long>(),
                c["first_dense_layers"].get<long long>());
  std::printf("rope          theta %s%s%s\n", text::num(c["rope_theta"].get<double>(), 6).c_str(),
              c["rope_scaling"].get<std::string>().empty()
                  ? ""
                  : (", " + c["rope_scaling"].get<std::string>() + " scaling x" +
                     text::num(c["rope_factor"].get<double>())).c_str(),
              c["sliding_window"].get<int64_t>() > 0
                  ? (", sliding window " + std::to_string(c["sliding_window"].get<int64_t>())).c_str()
                  : "");
  std::string params = text::with_commas(j["parameters"].get<double>()) + " from the tensors";
  if (!j["parameters_implied"].is_null())
    params += j["parameters_implied"] == j["parameters"]
                  ? " (config.json implies the same)"
                  : "; config.json implies " + text::with_commas(j["parameters_implied"].get<double>());
  if (j.contains("declared"))
    params += std::string("; declared ") + text::num(j["declared"].get<double>(), 4) +
              (j["declared_agrees"].get<bool>() ? " (agrees within 1%)" : " (DISAGREES)");
  std::printf("parameters    %s\n", params.c_str());
  std::string dtypes;
  for (const auto& d : j["dtypes"]) dtypes += (dtypes.empty() ? "" : ", ") + d.get<std::string>();
  std::printf("dtype         %s on disk%s\n", dtypes.c_str(),
              j["config_dtype"].get<std::string>().empty()
                  ? ""
                  : ("; config.json: " + j["config_dtype"].get<std::string>()).c_str());
  std::printf("shards        %zu, %s%s\n", j["shards"].size(), text::bytes(j["bytes"].get<double>()).c_str(),
              j["sharded"].get<bool>() ? " (model.safetensors.index.json)" : "");
  for (const auto& s : j["shards"])
    std::printf("  %-40s %10s  %zu tensors\n", s["file"].get<std::string>().c_str(),
                text::bytes(s["bytes"].get<double>()).c_str(), s["tensors"].get<size_t>());
  const json& t = j["tokenizer"];
  if (t.is_null()) {
    std::printf("tokenizer     none (no tokenizer.json)\n");
    return;
  }
  std::printf("tokenizer     %s, vocabulary %lld + %zu added tokens (ids up to %lld)\n",
              t["type"].get<std::string>().c_str(), t["vocab"].get<long long>(),
              t["added_tokens"].size(), t["max_id"].get<long long>());
  for (const auto& [k, v] : t["special_tokens"].items())
    std::printf("  %-10s %s\n", k.c_str(), v.get<std::string>().c_str());
  size_t shown = 0;
  for (const auto& a : t["added_tokens"]) {
    if (!a["special"].get<bool>()) continue;
    if (++shown > 12) {
      std::printf("  ...\n");
      break;
    }
    std::printf("  special    %-24s id %lld\n", a["content"].get<std::string>().c_str(),
                a["id"].get<long long>());
  }
}

}  // namespace

CLI::App* add_model_command(CLI::App& app, GlobalOptions&) {
  auto* model = app.add_subcommand("model", "Hugging Face checkpoint directories: inspect, compare");
  model->require_subcommand(1);
  auto* cmd = model->add_subcommand(
      "inspect", "Describe a Hugging Face checkpoint directory (headers only, no weights read)");
  auto dir = std::make_shared<std::string>();
  auto declared = std::make_shared<double>(0);
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("dir", *dir, "Checkpoint directory (config.json, *.safetensors, tokenizer.json)")
      ->required();
  cmd->add_option("--declared", *declared,
                  "A published parameter count to check, e.g. 0.49e9 (agrees within 1%)");
  cmd->add_flag("--json", *as_json, "Print one JSON object to stdout instead of text");
  cmd->footer(
      "Reads config.json (qwen2, llama, mistral, qwen2_moe, mixtral, deepseek_v3), every\n"
      "safetensors header (single file or shards with model.safetensors.index.json) and checks\n"
      "the tensors' names, shapes and dtypes against config.json; reads tokenizer.json lightly.\n\n"
      "Examples:\n"
      "  audit model inspect ~/models/Qwen2.5-0.5B\n"
      "  audit model inspect ~/models/Qwen2.5-0.5B --declared 0.49e9 --json\n\n"
      "Exit codes: 0 ok, 1 the count disagrees with config.json or --declared, 2 bad input\n"
      "(the message names the file and the key or tensor), 3 unexpected failure.");
  cmd->callback([dir, declared, as_json] {
    run_and_exit("model inspect", [&] {
      const json j = inspect(*dir, *declared);
      if (*as_json) std::printf("%s\n", j.dump(1).c_str());
      else print_text(j);
      const bool implied_ok = j["parameters_implied"].is_null() ||
                              j["parameters_implied"] == j["parameters"];
      const bool declared_ok = !j.contains("declared_agrees") || j["declared_agrees"].get<bool>();
      return implied_ok && declared_ok ? kExitOk : kExitVerdictFailed;
    });
  });
  return model;
}

}  // namespace audit::cli
