// Tests of reproduce/model/checkpoint.h: loading checkpoints that transformers wrote (tests/golden/
// make_hf_checkpoints.py, made at test time) tensor for tensor, saving a checkpoint that
// transformers loads and that gives the same logits there, and the peak host memory of loading
// (measured in a process of its own by tests/torch/probe/checkpoint_load_probe.cpp).
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/errors.h"
#include "common/python_peer.h"
#include "reproduce/model/checkpoint.h"
#include "reproduce/model/safetensors.h"
#include "tests/support/support.h"

namespace {

using audit::InputError;
using audit::testing::TempDir;
using nlohmann::json;
namespace hf = audit::hf;
namespace st = audit::safetensors;

class Checkpoints : public ::testing::Test {
 protected:
  // Made once per build folder (tests/support hf_checkpoint_fixtures).
  static void SetUpTestSuite() {
    for (const auto& e : audit::testing::hf_checkpoint_fixtures()) (*manifest_)[e["name"]] = e;
  }
  static std::string path(const std::string& name) { return manifest_->at(name)["dir"]; }
  static json* manifest_;
};
json* Checkpoints::manifest_ = new json(json::object());

// Every parameter equals the stored tensor converted to the model's dtype, bit for bit.
void expect_equal_to_files(audit::model::CausalLM& m, const hf::CheckpointDir& c) {
  int64_t n = 0;
  for (const auto& p : m->named_parameters()) {
    const auto& shard = c.shard(p.key());
    const auto stored = st::File(shard.file).read(p.key()).to(p.value().scalar_type());
    EXPECT_TRUE(torch::equal(p.value().cpu(), stored)) << p.key();
    ++n;
  }
  EXPECT_GT(n, 0);
}

TEST_F(Checkpoints, LoadsWhatTransformersWroteTensorForTensor) {
  for (const std::string name : {"qwen2-tied-bf16", "qwen2-untied-fp32-sharded"}) {
    SCOPED_TRACE(name);
    auto m = audit::model::load_model(path(name), torch::kCPU, torch::kFloat);
    const auto c = hf::open_checkpoint(path(name));
    EXPECT_EQ(static_cast<const audit::settings::ModelSettings&>(m->cfg), c.config.model);
    expect_equal_to_files(m, c);
    // And into bf16 parameters.
    auto b = audit::model::load_model(path(name), torch::kCPU, torch::kBFloat16);
    expect_equal_to_files(b, c);
  }
}

TEST_F(Checkpoints, RefusesAModelThatDiffersFromConfigJson) {
  const auto c = hf::open_checkpoint(path("qwen2-tied-bf16"));
  auto cfg = audit::model::model_config(c.config);
  cfg.rms_eps = 1e-5;
  audit::model::CausalLM m(cfg);
  try {
    audit::model::load_checkpoint(m, c);
    FAIL() << "loaded into a model of other settings";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
}

// Saved by audit, loaded by transformers: same parameters, same logits (fp32, 1e-5).
TEST_F(Checkpoints, TransformersLoadsWhatAuditSaves) {
  for (const bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    audit::model::ModelConfig cfg;
    cfg.vocab = 128;
    cfg.hidden = 32;
    cfg.layers = 2;
    cfg.heads = 4;
    cfg.kv_heads = 2;
    cfg.head_dim = 8;
    cfg.ffn = 64;
    cfg.rope_theta = 1e6;
    cfg.tie_embeddings = tied;
    audit::model::CausalLM m(cfg);
    audit::model::init_weights(m, 7);
    const TempDir out("ckpt_save");
    audit::model::SaveOptions opt;
    opt.max_shard_bytes = tied ? 5'000'000'000ull : 20'000;  // untied: sharded with an index
    opt.tokenizer_source_dir = path("qwen2-tied-bf16");
    opt.eos_token_ids = {127};
    audit::model::save_checkpoint(m, out.path(), opt);
    const auto c = hf::open_checkpoint(out.path());
    EXPECT_EQ(c.sharded, !tied);
    EXPECT_NO_THROW(hf::check_tensors(c));
    auto back = audit::model::load_model(out.path());
    expect_equal_to_files(back, c);

    auto ids = torch::tensor({{3, 17, 99, 5, 64, 1}}, torch::kLong);
    auto ours = m->forward(ids).squeeze(0);
    const std::string script =
        "import sys, json, torch, transformers\n"
        "transformers.logging.set_verbosity_error()\n"
        "m = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32)\n"
        "t = transformers.AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "ids = torch.tensor([[3, 17, 99, 5, 64, 1]])\n"
        "with torch.no_grad(): y = m(ids).logits[0]\n"
        "print(json.dumps({'logits': y.flatten().tolist(), 'vocab': len(t),\n"
        "  'arch': type(m).__name__, 'params': sum(p.numel() for p in m.parameters())}))\n";
    audit::testing::write_file(out.file("peer.py"), script);
    const auto r = audit::run_python_json(audit::shell_quote(audit::default_python()) + " " +
                                              audit::shell_quote(out.file("peer.py")) + " " +
                                              audit::shell_quote(out.path()) + " 2>&1",
                                          "transformers loading audit's checkpoint");
    EXPECT_EQ(r["arch"], "Qwen2ForCausalLM");
    EXPECT_EQ(r["vocab"], 128);
    EXPECT_EQ(r["params"].get<int64_t>(), cfg.parameter_count());
    auto theirs = torch::tensor(r["logits"].get<std::vector<float>>()).view(ours.sizes());
    EXPECT_LT((ours - theirs).abs().max().item<float>(), 1e-5)
        << "max |ours - transformers| logits";
  }
}

// Peak host memory of loading beyond the parameters: under 1.2x the largest shard. A loader that
// kept whole shards, or the whole state, in memory exceeds it (the checkpoint is several shards).
TEST(CheckpointMemory, PeakHostMemoryStaysUnderTheLargestShard) {
  audit::model::ModelConfig cfg;
  cfg.vocab = 16000;
  cfg.hidden = 256;
  cfg.layers = 4;
  cfg.heads = 4;
  cfg.kv_heads = 2;
  cfg.head_dim = 64;
  cfg.ffn = 1024;
  audit::model::CausalLM m(cfg);
  const TempDir out("ckpt_memory");
  audit::model::SaveOptions opt;
  opt.dtype = torch::kBFloat16;
  opt.max_shard_bytes = 9'000'000;
  audit::model::save_checkpoint(m, out.path(), opt);
  const std::string probe = audit::testing::build_dir() + "/tests/checkpoint_load_probe";
  const auto r = audit::testing::run_command(audit::shell_quote(probe) + " " +
                                             audit::shell_quote(out.path()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = json::parse(r.output);
  const double extra = (j["hwm_after_kb"].get<double>() - j["rss_before_kb"].get<double>()) * 1024;
  const double largest = j["largest_shard_bytes"].get<double>();
  std::fprintf(stderr, "loading %s: %zu shards, %.1f MB in all, largest %.1f MB; peak host "
               "memory beyond the parameters %.1f MB (%.2fx the largest shard)\n",
               out.path().c_str(), j["shards"].get<size_t>(), j["total_bytes"].get<double>() / 1e6,
               largest / 1e6, extra / 1e6, extra / largest);
  EXPECT_GE(j["shards"].get<int>(), 3);
  EXPECT_LT(extra, 1.2 * largest) << r.output;
}

}  // namespace
