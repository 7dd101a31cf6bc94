// Golden tests of the Qwen2 model (STYLE.md 2) against tests/golden/make_golden.py, an
// independent HF-style PyTorch implementation run in float64; plus the parameter-name contract
// (STYLE.md 4), packed-sequence masking, and the safetensors reader's checks.
//
// The fixture is regenerated at test time from the torch package: the test runs
// $AUDIT_PYTHON (default /root/.cache/audit/venv/bin/python3) tests/golden/make_golden.py into
// <build>/golden. Only when that interpreter does not exist does it fall back to the committed
// copy in tests/fixtures/golden (and says so).
#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <unistd.h>

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

std::string python() {
  const char* p = std::getenv("AUDIT_PYTHON");
  return (p != nullptr && *p != '\0') ? p : "/root/.cache/audit/venv/bin/python3";
}

// Directory holding qwen2_untied.safetensors and qwen2_tied.safetensors.
const std::string& golden_dir() {
  static const std::string dir = [] {
    const std::string py = python();
    if (access(py.c_str(), X_OK) != 0) {
      std::fprintf(stderr, "note: %s not found; using the committed fixture\n", py.c_str());
      return std::string(audit::testing::source_dir()) + "/tests/fixtures/golden";
    }
    const std::string out = std::string(audit::testing::build_dir()) + "/golden";
    const std::string cmd = "'" + py + "' '" + audit::testing::source_dir() +
                            "/tests/golden/make_golden.py' --out '" + out + "'";
    const auto r = audit::testing::run_command(cmd);
    if (r.exit_code != 0)
      throw std::runtime_error("golden fixture generation failed (" + cmd + ")\n" + r.output);
    return out;
  }();
  return dir;
}

ModelConfig config_of(const st::File& f) {
  auto j = nlohmann::json::parse(f.metadata().at("config"));
  ModelConfig c;
  c.vocab = j["vocab"];
  c.hidden = j["hidden"];
  c.layers = j["layers"];
  c.heads = j["heads"];
  c.kv_heads = j["kv_heads"];
  c.head_dim = j["head_dim"];
  c.ffn = j["ffn"];
  c.rope_theta = j["rope_theta"];
  c.rms_eps = j["rms_eps"];
  c.qkv_bias = j["qkv_bias"];
  c.tie_embeddings = j["tie_embeddings"];
  return c;
}

// The fixture's weights: every tensor whose name does not start with "case.".
std::map<std::string, torch::Tensor> weights_of(const st::File& f) {
  std::map<std::string, torch::Tensor> w;
  for (const auto& i : f.tensors())
    if (i.name.rfind("case.", 0) != 0) w[i.name] = f.read(i.name);
  return w;
}

// fp32 against a float64 reference: one rounding is 2^-24 ~ 6e-8 relative; a forward and backward
// through 2 layers with sums over <= 64 terms stays well under 1e-5 of the tensor's largest
// magnitude. The test fails on a real bug (a wrong sign, bias, mask or rotary pairing) by orders
// of magnitude more than this.
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

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, NamedParametersEqualReferenceStateDict) {
  st::File f(golden_dir() + "/" + GetParam());
  CausalLM m(config_of(f));
  auto ref = nlohmann::json::parse(f.metadata().at("state_dict"));
  auto params = m->named_parameters();
  ASSERT_EQ(params.size(), ref.size());
  size_t i = 0;
  for (const auto& p : params) {  // same names, same order, same shapes
    EXPECT_EQ(p.key(), ref[i][0].get<std::string>()) << "at index " << i;
    EXPECT_EQ(p.value().sizes().vec(), ref[i][1].get<std::vector<int64_t>>()) << p.key();
    ++i;
  }
  EXPECT_EQ(m->cfg.parameter_count(), [&] {
    int64_t n = 0;
    for (const auto& p : params) n += p.value().numel();
    return n;
  }());
}

TEST_P(Golden, LogitsLossAndEveryGradientMatch) {
  st::File f(golden_dir() + "/" + GetParam());
  CausalLM m(config_of(f));
  audit::model::load_state(m, weights_of(f), f.path());
  for (const std::string c : {"plain", "packed"}) {
    SCOPED_TRACE("case " + c);
    const std::string p = "case." + c + ".";
    auto ids = f.read(p + "input_ids");
    auto mask = f.read(p + "loss_mask");
    torch::Tensor pos;
    if (f.contains(p + "position_ids")) pos = f.read(p + "position_ids");
    m->zero_grad();
    auto logits = m->forward(ids, pos);
    const double targets = (mask.narrow(1, 1, mask.size(1) - 1) != 0).sum().item<double>();
    auto loss = audit::train::masked_lm_loss(logits, ids, mask, targets);
    loss.backward();
    expect_close("logits", logits, f.read(p + "logits"));
    expect_close("loss", loss, f.read(p + "loss"));
    int compared = 0;
    for (const auto& param : m->named_parameters()) {
      ASSERT_TRUE(param.value().grad().defined()) << param.key() << " got no gradient";
      expect_close("grad " + param.key(), param.value().grad(), f.read(p + "grad." + param.key()));
      ++compared;
    }
    EXPECT_EQ(compared, static_cast<int>(m->parameters().size()));
  }
}

INSTANTIATE_TEST_SUITE_P(Qwen2, Golden,
                         ::testing::Values("qwen2_untied.safetensors", "qwen2_tied.safetensors"),
                         [](const auto& info) {
                           return info.param.find("tied") != std::string::npos &&
                                          info.param.find("untied") == std::string::npos
                                      ? std::string("tied")
                                      : std::string("untied");
                         });

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
