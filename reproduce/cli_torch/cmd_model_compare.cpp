// `audit model compare DIR`: our forward pass against transformers' on the same token ids.
//
// Loads the Hugging Face checkpoint directory into our model (fp32, CPU), has the Python peer
// tests/golden/hf_forward_peer.py (installed as share/audit/peers/) load the same directory with
// transformers (eager attention, float32) and run the same ids, then prints the largest absolute
// logit difference and the top-1 agreement (the share of positions whose argmax agrees). Exit 0
// within the tolerance, 1 above it, 2 on bad input (a directory we cannot load, ids outside the
// vocabulary, an empty prompt), 3 when the peer itself fails.
//
// Token ids: --ids as given; --prompt tokenized natively by the directory's tokenizer.json
// (datasets/hf_tokenizer, with the post-processor's specials as transformers' tokenizer(text)
// adds them); neither: a fixed deterministic sequence of 32 ids spread over the vocabulary.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "datasets/hf_tokenizer/hf_tokenizer.h"
#include "common/errors.h"                // InputError: exit 2
#include "common/python_peer.h"           // default_python, shell_quote, run_python_json
#include "common/resources.h"             // resource_path("peers/hf_forward_peer.py")
#include "reproduce/cli/cli.h"
#include "reproduce/model/checkpoint.h"   // load_model
#include "reproduce/model/model.h"
#include "reproduce/model/safetensors.h"  // the peer's logits file

namespace audit::cli {

namespace {

struct CompareOptions {
  std::string dir;
  std::string prompt;
  std::string ids;  // "1,2,3"
  double tolerance = 1e-4;
  bool json = false;
  int threads = 0;
  std::string python;
};

// Default ids: 32 (or max_position, if fewer) ids spread over the vocabulary, no randomness.
std::vector<int64_t> default_ids(const model::ModelConfig& c) {
  const int64_t n = std::min<int64_t>(32, c.max_position);
  std::vector<int64_t> ids;
  for (int64_t t = 0; t < n; ++t) ids.push_back((7919 * t + 13) % c.vocab);
  return ids;
}

std::vector<int64_t> parse_ids(const std::string& text, int64_t vocab) {
  std::vector<int64_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(pos, end - pos);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size())
      throw InputError("--ids", 0, 0, "", "\"" + item + "\" is not a token id (want e.g. 1,2,3)");
    if (v < 0 || v >= vocab)
      throw InputError("--ids", 0, 0, "", "token id " + item + " is outside the vocabulary [0, " +
                                              std::to_string(vocab) + ")");
    ids.push_back(v);
    pos = end + 1;
  }
  return ids;
}

std::string join(const std::vector<int64_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

int compare(const CompareOptions& o) {
  if (o.threads > 0) torch::set_num_threads(o.threads);
  torch::NoGradGuard no_grad;
  // Ours first: a directory we cannot load is bad input (exit 2) before any Python starts.
  model::CausalLM m = model::load_model(o.dir, torch::kCPU, torch::kFloat);
  m->eval();
  const auto& cfg = m->cfg;

  std::vector<int64_t> ids;
  if (!o.ids.empty()) ids = parse_ids(o.ids, cfg.vocab);
  if (o.prompt.empty() && ids.empty()) ids = default_ids(cfg);
  if (!o.prompt.empty() && !o.ids.empty())
    throw InputError("--prompt", 0, 0, "", "give --prompt or --ids, not both");
  if (!o.prompt.empty()) {
    const auto tok = datasets::HfTokenizer::load(o.dir);
    for (auto id : tok->encode_with_specials(o.prompt)) ids.push_back(id);
    if (ids.empty()) throw InputError("--prompt", 0, 0, "", "the prompt tokenizes to no ids");
    for (auto id : ids)
      if (id >= cfg.vocab)
        throw InputError(tok->path(), 0, 0, "", "the tokenizer gave id " + std::to_string(id) +
                                                    ", outside the model's vocabulary of " +
                                                    std::to_string(cfg.vocab));
  }

  // The peer: transformers on the same directory and ids.
  char tmpl[] = "/tmp/audit_compare.XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd < 0) throw std::runtime_error("cannot make a temporary file under /tmp");
  close(fd);
  const std::string out = std::string(tmpl);
  std::string cmd = shell_quote(o.python) + " " + shell_quote(resource_path("peers/hf_forward_peer.py")) +
                    " --model " + shell_quote(o.dir) + " --out " + shell_quote(out) +
                    " --threads " + std::to_string(torch::get_num_threads());
  cmd += " --ids " + shell_quote(join(ids));
  nlohmann::json line;
  torch::Tensor ref_logits, ref_ids;
  try {
    line = run_python_json(cmd, "transformers forward (hf_forward_peer.py)");
    safetensors::File f(out);
    ref_logits = f.read("logits");
    ref_ids = f.read("input_ids");
  } catch (...) {
    std::remove(out.c_str());
    throw;
  }
  std::remove(out.c_str());
  if (ref_ids.numel() == 0)
    throw InputError("--prompt", 0, 0, "", "the prompt tokenizes to no ids");
  if (ref_ids.max().item<int64_t>() >= cfg.vocab)
    throw InputError("--prompt", 0, 0, "", "the tokenizer gave an id outside the model's vocabulary");

  auto logits = m->forward(ref_ids);
  const double max_diff = (logits - ref_logits).abs().max().item<double>();
  const auto agree = (logits.argmax(-1) == ref_logits.argmax(-1)).to(torch::kDouble).mean().item<double>();
  const bool ok = max_diff <= o.tolerance;
  const int64_t T = ref_ids.size(1);
  if (o.json) {
    nlohmann::json j = {{"dir", o.dir},
                        {"arch", cfg.arch},
                        {"tokens", T},
                        {"ids_from", o.prompt.empty() ? (o.ids.empty() ? "default" : "--ids")
                                                      : "--prompt (tokenizer.json, native)"},
                        {"max_abs_logit_diff", max_diff},
                        {"top1_agreement", agree},
                        {"tolerance", o.tolerance},
                        {"ok", ok},
                        {"transformers", line.value("transformers", "")},
                        {"torch", line.value("torch", "")}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("audit model compare %s\n", o.dir.c_str());
    std::printf("  architecture          %s (fp32, CPU)\n", cfg.arch.c_str());
    std::printf("  token ids             %lld (%s)\n", static_cast<long long>(T),
                o.prompt.empty() ? (o.ids.empty() ? "default sequence" : "--ids")
                                 : "--prompt, tokenized natively from tokenizer.json");
    std::printf("  reference             transformers %s, eager attention, float32\n",
                line.value("transformers", "").c_str());
    std::printf("  max |logit diff|      %.3g (tolerance %.3g)\n", max_diff, o.tolerance);
    std::printf("  top-1 agreement       %.2f%% of %lld positions\n", 100 * agree,
                static_cast<long long>(ref_ids.numel()));
    std::printf("  result                %s\n", ok ? "within tolerance" : "ABOVE TOLERANCE");
  }
  return ok ? 0 : 1;
}

}  // namespace

void add_model_compare_command(CLI::App& parent, GlobalOptions& /*g*/) {
  auto o = std::make_shared<CompareOptions>();
  o->python = default_python();
  auto* cmd = parent.add_subcommand(
      "compare", "Our forward pass against transformers' on the same ids: max logit diff, top-1");
  cmd->description(
      "Loads the Hugging Face checkpoint DIR into our model (fp32, CPU) and, through the Python\n"
      "peer hf_forward_peer.py, into transformers (eager attention, float32); runs both on the\n"
      "same token ids and prints the largest absolute logit difference and the share of\n"
      "positions whose top-1 token agrees. Exit 0 within --tolerance, 1 above it, 2 on bad input,\n"
      "3 unexpected failure (the Python peer failed).");
  cmd->footer(
      "Examples:\n"
      "  audit model compare ./Qwen2.5-0.5B\n"
      "  audit model compare ./ckpt --ids 1,2,3,4 --tolerance 1e-3 --json\n"
      "  audit model compare ./ckpt --prompt \"The capital of France is\"");
  cmd->add_option("DIR", o->dir, "Checkpoint directory (config.json, *.safetensors)")->required();
  auto* prompt = cmd->add_option("--prompt", o->prompt,
                                 "Text, tokenized by transformers' AutoTokenizer from DIR");
  cmd->add_option("--ids", o->ids, "Comma-separated token ids, e.g. 1,2,3")->excludes(prompt);
  cmd->add_option("--tolerance", o->tolerance, "Largest allowed absolute logit difference")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print one JSON object to stdout instead of the table");
  cmd->add_option("--threads", o->threads, "Intra-op threads for both sides (0: torch default)");
  cmd->add_option("--python", o->python, "Python with transformers (default $AUDIT_PYTHON or the venv)")
      ->capture_default_str();
  cmd->callback([o] { run_and_exit("model compare", [&] { return compare(*o); }); });
}

}  // namespace audit::cli
