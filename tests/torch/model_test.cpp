// Unit tests of the model (reproduce/model/model.h) that need no reference implementation:
// packed-sequence masking, the sliding window, the fused RMSNorm against tensor ops, seeded
// init, load_state's checks, config validation, and the safetensors reader's checks. Parity with
// transformers (logits, loss, every gradient, parameter names) is tests/torch/hf_parity_test.cpp.
#include <cstdio>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/errors.h"
#include "reproduce/recipe/recipe.h"
#include "reproduce/model/model.h"
#include "reproduce/model/safetensors.h"
#include "reproduce/trainer/trainer.h"  // masked_lm_loss: the loss the trainer uses
#include "tests/support/support.h"

namespace {

// Tiny tensors: one intra-op thread is faster and immune to a busy machine (these are
// correctness tests; bit-exactness never depends on it, both runs of a comparison share it).
const bool kOneThread = (torch::set_num_threads(1), true);

using audit::InputError;
using audit::model::CausalLM;
using audit::model::ModelConfig;
namespace st = audit::safetensors;

// Two fp32 computations of the same function in a different op order: well under 1e-5 of the
// tensor's largest magnitude. A real bug (a wrong mask or window) misses by orders of magnitude.
constexpr double kRelTol = 1e-5;

void expect_close(const std::string& what, const torch::Tensor& actual,
                  const torch::Tensor& expected, double rel = kRelTol) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  auto a = actual.detach().to(torch::kDouble), e = expected.detach().to(torch::kDouble);
  const double max_abs = (a - e).abs().max().item<double>();
  const double scale = std::max(e.abs().max().item<double>(), 1e-12);
  EXPECT_LE(max_abs, rel * scale) << what << ": max abs diff " << max_abs << ", relative error "
                                  << max_abs / scale << " (tolerance " << rel << ")";
}

ModelConfig tiny() {
  ModelConfig c;
  c.vocab = 40;
  c.hidden = 32;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 8;
  c.ffn = 48;
  return c;
}

TEST(Model, PackedSegmentsEqualSeparateSequences) {
  CausalLM m(tiny());
  audit::model::init_weights(m, 3, 0.2);
  torch::NoGradGuard no_grad;
  auto a = torch::randint(0, 40, {1, 5}, torch::kLong);
  auto b = torch::randint(0, 40, {1, 7}, torch::kLong);
  auto packed = torch::cat({a, b}, 1);
  auto pos = torch::cat({torch::arange(5), torch::arange(7)}).unsqueeze(0);
  auto out = m->forward(packed, pos);
  expect_close("segment a", out.narrow(1, 0, 5), m->forward(a));
  expect_close("segment b", out.narrow(1, 5, 7), m->forward(b));
  // Without the restart, b's logits would see a: they must differ then (the test can fail).
  auto unpacked = m->forward(packed);
  EXPECT_GT((unpacked.narrow(1, 5, 7) - m->forward(b)).abs().max().item<double>(), 1e-3);
}

// With one layer and a sliding window W, position t sees exactly tokens t-W+1..t; rotary
// attention depends on relative positions only, so its logits equal the last position's of a
// forward over just those W tokens. Two layers: the receptive field is 2(W-1) back, so changing
// token 0 leaves positions >= 2W-1 untouched and changes earlier ones.
TEST(Model, SlidingWindowAttendsToTheLastWTokensOnly) {
  ModelConfig c = tiny();
  c.arch = "mistral";
  c.qkv_bias = false;
  c.sliding_window = 4;
  c.layers = 1;
  CausalLM one(c);
  audit::model::init_weights(one, 7, 0.3);
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, 40, {1, 12}, torch::kLong);
  auto full = one->forward(ids);
  for (int64_t t = 3; t < 12; ++t)
    expect_close("window ending at " + std::to_string(t), full[0][t],
                 one->forward(ids.narrow(1, t - 3, 4))[0][3], 1e-5);
  c.layers = 2;
  CausalLM two(c);
  audit::model::init_weights(two, 8, 0.3);
  auto changed = ids.clone();
  changed[0][0] = (ids[0][0].item<int64_t>() + 1) % 40;
  auto a = two->forward(ids), b = two->forward(changed);
  EXPECT_LE((a.narrow(1, 7, 5) - b.narrow(1, 7, 5)).abs().max().item<double>(), 1e-6);
  EXPECT_GT((a.narrow(1, 0, 7) - b.narrow(1, 0, 7)).abs().max().item<double>(), 1e-3);
  // And with packed sequences the window and the segments both hold.
  auto pos = torch::cat({torch::arange(5), torch::arange(7)}).unsqueeze(0);
  auto packed = two->forward(ids, pos);
  expect_close("packed segment 2", packed.narrow(1, 5, 7), two->forward(ids.narrow(1, 5, 7)));
}

TEST(Model, FusedRmsNormEqualsTensorOps) {
  // The CPU loops (fast path) against the same formulas as tensor ops (reference), forward and
  // both gradients, over shapes with odd sizes and a batch of rows larger than one chunk.
  for (auto shape : std::vector<std::vector<int64_t>>{{3, 7}, {2, 5, 24}, {4, 300, 128}}) {
    SCOPED_TRACE(c10::str(c10::IntArrayRef(shape)));
    const int64_t D = shape.back();
    auto x0 = torch::randn(shape) * 3, w0 = torch::randn({D});
    auto dy = torch::randn(shape);
    auto run = [&](bool loops) {
      auto x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_();
      auto y = audit::model::rms_norm(x, w, 1e-6, loops);
      y.backward(dy);
      return std::vector<torch::Tensor>{y.detach(), x.grad(), w.grad()};
    };
    auto fast = run(true), ref = run(false);
    expect_close("y", fast[0], ref[0], 1e-6);
    expect_close("dx", fast[1], ref[1], 1e-5);
    expect_close("dw", fast[2], ref[2], 1e-5);
  }
}

TEST(Model, InitIsSeededAndPrivate) {
  CausalLM a(tiny()), b(tiny()), c(tiny());
  torch::manual_seed(1);
  audit::model::init_weights(a, 42);
  torch::manual_seed(2);  // the global RNG must not matter
  audit::model::init_weights(b, 42);
  audit::model::init_weights(c, 43);
  auto pa = a->parameters(), pb = b->parameters(), pc = c->parameters();
  bool any_diff = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::equal(pa[i], pb[i]));
    any_diff = any_diff || !torch::equal(pa[i], pc[i]);
  }
  EXPECT_TRUE(any_diff);
}

TEST(Model, LoadStateRefusesMissingAndMisshapenTensors) {
  CausalLM m(tiny());
  auto w = audit::model::state(m);
  auto missing = w;
  missing.erase("model.layers.1.mlp.up_proj.weight");
  try {
    audit::model::load_state(m, missing, "ckpt.safetensors");
    FAIL() << "no error for a missing tensor";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("ckpt.safetensors"), std::string::npos) << e.what();
    EXPECT_EQ(e.key, "model.layers.1.mlp.up_proj.weight");
  }
  auto wrong = w;
  wrong["model.norm.weight"] = torch::ones({31});
  EXPECT_THROW(audit::model::load_state(m, wrong, "x"), InputError);
  auto extra = w;
  extra["model.layers.9.mlp.up_proj.weight"] = torch::ones({1});
  EXPECT_THROW(audit::model::load_state(m, extra, "x"), InputError);
  EXPECT_NO_THROW(audit::model::load_state(m, extra, "x", /*strict=*/false));
}

TEST(Model, ConfigValidationNamesTheField) {
  ModelConfig c = tiny();
  c.kv_heads = 3;
  try {
    c.validate();
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("kv_heads"), std::string::npos);
  }
}

// --- safetensors ---------------------------------------------------------------------------

using audit::testing::read_file;
using audit::testing::TempDir;
using audit::testing::write_file;

// A recipe's [base] is the model config as it stands (the pipeline and `audit bench train
// --model mini` build their models from ModelConfig(recipe.base)), and the defaults are one set.
TEST(Model, ARecipesBaseSectionIsItsModelConfig) {
  auto r = audit::recipe::parse_recipe_text(
      "[claim]\nname = \"c\"\n[base]\nvocab_size = 300\nhidden = 48\nlayers = 5\nheads = 6\n"
      "kv_heads = 3\nhead_dim = 8\nffn = 136\nrope_theta = 5e5\nmax_position = 640\n"
      "rms_eps = 1e-5\nqkv_bias = false\ntie_embeddings = true\n",
      "test");
  const ModelConfig c(r.base);
  EXPECT_EQ(c.arch, "qwen2");
  EXPECT_EQ(c.vocab, 300);
  EXPECT_EQ(c.hidden, 48);
  EXPECT_EQ(c.layers, 5);
  EXPECT_EQ(c.heads, 6);
  EXPECT_EQ(c.kv_heads, 3);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.ffn, 136);
  EXPECT_DOUBLE_EQ(c.rope_theta, 5e5);
  EXPECT_EQ(c.max_position, 640);
  EXPECT_DOUBLE_EQ(c.rms_eps, 1e-5);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(audit::train::bench_model_config("mini"),
            ModelConfig(audit::recipe::load_recipe(
                            std::string(audit::testing::source_dir()) + "/recipes/s1-mini.toml")
                            .base));

  // A recipe that names no size gets the same model as code that names none, and it builds.
  const auto plain = audit::recipe::parse_recipe_text("[claim]\nname = \"d\"\n", "d.toml");
  EXPECT_EQ(ModelConfig(plain.base), ModelConfig{});
  CausalLM m{ModelConfig{}};
  int64_t n = 0;
  for (const auto& p : m->parameters()) n += p.numel();
  EXPECT_EQ(ModelConfig{}.parameter_count(), n);
}

// The config holds MoE, MLA and MTP fields (a DeepSeek-V3 [base] fits in it); the model refuses
// the parts it does not build yet, naming the field.
TEST(Model, ConfigOfAnMoEBaseIsRefusedByTheDenseModel) {
  const auto r = audit::recipe::load_recipe(std::string(audit::testing::source_dir()) +
                                            "/recipes/deepseek-v3.toml");
  ModelConfig c(r.base);
  EXPECT_EQ(c.routed_experts, 256);
  EXPECT_EQ(c.kv_lora_rank, 512);
  try {
    c.validate();
    FAIL() << "an MoE/MLA config was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("model.arch"), std::string::npos) << e.what();
  }
  c = tiny();
  c.mtp_depth = 1;
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c = tiny();
  c.routed_experts = 4;
  EXPECT_THROW(c.validate(), std::invalid_argument);
  for (const std::string arch : {"qwen2_moe", "mixtral", "gpt2"}) {
    c = tiny();
    c.arch = arch;
    try {
      c.validate();
      ADD_FAILURE() << arch << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(arch), std::string::npos) << e.what();
    }
  }
  for (const std::string arch : {"llama", "mistral"}) {
    c = tiny();
    c.arch = arch;
    c.qkv_bias = false;
    EXPECT_NO_THROW(c.validate()) << arch;
  }
  c = tiny();
  c.rope_scaling = "yarn";
  EXPECT_THROW(c.validate(), std::invalid_argument);
}

TEST(Safetensors, RoundTripKeepsValuesDtypesAndMetadata) {
  const TempDir dir("safetensors_test");
  const std::string p = dir.file("rt.safetensors");
  std::map<std::string, torch::Tensor> t = {
      {"a", torch::randn({3, 4})},
      {"b", torch::arange(5, torch::kLong)},
      {"c", torch::randn({2, 2}).to(torch::kBFloat16)},
      {"scalar", torch::tensor(2.5)}};
  st::save(p, t, {{"k", "v"}});
  st::File f(p);
  EXPECT_EQ(f.metadata().at("k"), "v");
  ASSERT_EQ(f.tensors().size(), 4u);
  for (const auto& [name, x] : t) {
    auto y = f.read(name);
    EXPECT_EQ(y.scalar_type(), x.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(y, x)) << name;
  }
}

TEST(Safetensors, DamagedFilesAreRefusedNamingFileAndTensor) {
  const TempDir dir("safetensors_test");
  const std::string p = dir.file("bad.safetensors");
  st::save(p, {{"w", torch::ones({4})}});
  const std::string good = read_file(p);

  auto expect_error = [&](const std::string& bytes, const std::string& needle) {
    write_file(p, bytes);
    try {
      st::File f(p);
      f.read("w");
      ADD_FAILURE() << "accepted a damaged file; expected: " << needle;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(good.substr(0, 5), "too short");
  std::string huge = good;
  huge[6] = '\x7f';  // header length beyond the file
  expect_error(huge, "header length");
  expect_error(good.substr(0, good.size() - 4), "'w'");  // data cut: offsets outside
  std::string not_json = good;
  not_json[8] = '[';
  not_json[9] = '[';
  expect_error(not_json, "JSON");
  // A header whose offsets disagree with dtype and shape.
  std::string h = R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}})";
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((h.size() >> (8 * i)) & 0xff));
  expect_error(bytes + h + std::string(16, '\0'), "needs 16");
  std::string h2 = R"({"w":{"dtype":"Q7","shape":[4],"data_offsets":[0,16]}})";
  std::string bytes2;
  for (int i = 0; i < 8; ++i) bytes2.push_back(static_cast<char>((h2.size() >> (8 * i)) & 0xff));
  expect_error(bytes2 + h2 + std::string(16, '\0'), "Q7");
  EXPECT_THROW(st::File(dir.file("does_not_exist.safetensors")), InputError);
}

TEST(Safetensors, ModelStateRoundTripsThroughAFile) {
  CausalLM a(tiny()), b(tiny());
  audit::model::init_weights(a, 5);
  audit::model::init_weights(b, 6);
  const TempDir dir("safetensors_test");
  const std::string p = dir.file("model.safetensors");
  st::save(p, audit::model::state(a));
  audit::model::load_state(b, st::load(p), p);
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
}

}  // namespace
