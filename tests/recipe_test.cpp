// Tests of the recipe loader (reproduce/recipe/recipe.h): every malformed fixture in
// tests/fixtures/recipes/ is refused with the message its first line expects (file:line:column and
// key), --set syntax and override order, every shipped recipe loads with its published numbers,
// the resolved TOML round-trips to the same SHA-256, and `audit check` exit codes.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/errors.h"
#include "ledger/store/ledger.h"
#include "reproduce/recipe/recipe.h"
#include "tests/support/support.h"

namespace fs = std::filesystem;
using audit::InputError;
using audit::testing::read_file;
using audit::testing::run_audit;
using namespace audit::recipe;

namespace {

fs::path source() { return audit::testing::source_dir(); }
fs::path fixtures() { return source() / "tests" / "fixtures" / "recipes"; }
fs::path recipes() { return source() / "recipes"; }

// The message of the InputError `fn` throws ("" and a test failure when it throws none).
template <class F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an audit::InputError, none was thrown";
  return "";
}

const char* kMinimal = "[claim]\nname = \"mini\"\n";

std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  if (fs::exists(fixtures()))
    for (const auto& e : fs::directory_iterator(fixtures()))
      if (e.path().extension() == ".toml") names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

// ------------------------------------------------------------------ malformed fixtures

class MalformedRecipe : public ::testing::TestWithParam<std::string> {};

TEST_P(MalformedRecipe, RefusedWithExpectedMessage) {
  fs::path p = fixtures() / GetParam();
  std::string text = read_file(p);
  const std::string tag = "# expect: ";
  ASSERT_EQ(text.rfind(tag, 0), 0u) << p << " must start with '" << tag << "<message substring>'";
  std::string expect = text.substr(tag.size(), text.find('\n') - tag.size());
  ASSERT_NE(expect, "TODO") << p;
  // The expectation names the file itself: "<name>.toml:L:C: 'key': ...".
  std::string msg = error_of([&] { load_recipe(p.string()); });
  EXPECT_NE(msg.find(expect), std::string::npos)
      << "fixture " << p.filename() << "\n  expected substring: " << expect
      << "\n  actual message:     " << msg;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MalformedRecipe, ::testing::ValuesIn(fixture_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param.substr(0, info.param.size() - 5);
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(RecipeErrors, AtLeastTwelveFixtures) { EXPECT_GE(fixture_names().size(), 12u); }

TEST(RecipeErrors, InputErrorCarriesFileLineColumnAndKey) {
  try {
    parse_recipe_text("[claim]\nname = \"x\"\n[train]\nepochs = -1\n", "t.toml");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file, "t.toml");
    EXPECT_EQ(e.line, 4);
    EXPECT_EQ(e.column, 10);
    EXPECT_EQ(e.key, "train.epochs");
  }
}

TEST(RecipeErrors, MissingFileNamesThePath) {
  std::string msg = error_of([] { load_recipe("/nonexistent/dir/nope.toml"); });
  EXPECT_NE(msg.find("/nonexistent/dir/nope.toml: cannot open recipe"), std::string::npos) << msg;
}

TEST(RecipeErrors, NestedTableArrayKeyPath) {
  std::string msg = error_of([] {
    parse_recipe_text(
        "[claim]\nname = \"x\"\nphases = [\n  { phase = \"a\", gpu_hours = 1.0 },\n"
        "  { phase = \"b\", gpu_hours = -2.0 },\n]\n",
        "p.toml");
  });
  EXPECT_NE(msg.find("p.toml:5:30: 'claim.phases[1].gpu_hours': out of range: -2.0 (must be >= 0.0)"),
            std::string::npos)
      << msg;
}

// ------------------------------------------------------------------ --set

TEST(RecipeSet, BadSyntaxNamesSet) {
  std::string msg = error_of([] { parse_recipe_text(kMinimal, "m.toml", {"train.lr"}); });
  EXPECT_NE(msg.find("--set: expected section.key=value, got \"train.lr\""), std::string::npos) << msg;
  msg = error_of([] { parse_recipe_text(kMinimal, "m.toml", {"train.lr.x=1"}); });
  EXPECT_NE(msg.find("--set: 'train.lr.x': expected section.key=value (one dot)"), std::string::npos)
      << msg;
  msg = error_of([] { parse_recipe_text(kMinimal, "m.toml", {"=3"}); });
  EXPECT_NE(msg.find("--set: expected section.key=value"), std::string::npos) << msg;
}

TEST(RecipeSet, UnknownKeyAndSection) {
  std::string msg = error_of([] { parse_recipe_text(kMinimal, "m.toml", {"train.lrr=1e-5"}); });
  EXPECT_NE(msg.find("--set: 'train.lrr': unknown key in [train] (did you mean 'lr'?)"),
            std::string::npos)
      << msg;
  msg = error_of([] { parse_recipe_text(kMinimal, "m.toml", {"trian.lr=1e-5"}); });
  EXPECT_NE(msg.find("--set: 'trian.lr': unknown section [trian] (did you mean 'train'?)"),
            std::string::npos)
      << msg;
}

TEST(RecipeSet, WrongTypeAndRangeNameSetNotTheFile) {
  std::string msg = error_of([] { parse_recipe_text(kMinimal, "m.toml", {"train.epochs=abc"}); });
  EXPECT_NE(msg.find("--set: 'train.epochs': expected an integer, got string \"abc\""),
            std::string::npos)
      << msg;
  msg = error_of([] { parse_recipe_text(kMinimal, "m.toml", {"train.warmup_frac=2"}); });
  EXPECT_NE(msg.find("--set: 'train.warmup_frac': out of range: 2.0 (must be in [0.0, 1.0])"),
            std::string::npos)
      << msg;
  msg = error_of([] { parse_recipe_text(kMinimal, "m.toml", {"eval.think_budgets=[1, 2"}); });
  EXPECT_NE(msg.find("--set: 'eval.think_budgets': cannot parse value"), std::string::npos) << msg;
  msg = error_of([] { parse_recipe_text(kMinimal, "m.toml", {"train.precision=fp16"}); });
  EXPECT_NE(msg.find("--set: 'train.precision': invalid value \"fp16\""), std::string::npos) << msg;
}

TEST(RecipeSet, OverrideOrderDefaultFileSetLaterWins) {
  const std::string text = "[claim]\nname = \"o\"\n[train]\nepochs = 3\nlr = 2e-5\n";
  Recipe d = parse_recipe_text(text, "o.toml");
  EXPECT_EQ(d.train.epochs, 3);           // file beats default (5)
  EXPECT_EQ(d.train.global_batch, 16);    // default where the file says nothing
  EXPECT_DOUBLE_EQ(d.train.lr, 2e-5);
  Recipe s = parse_recipe_text(text, "o.toml", {"train.epochs=7", "train.global_batch=32"});
  EXPECT_EQ(s.train.epochs, 7);           // --set beats file
  EXPECT_EQ(s.train.global_batch, 32);    // --set beats default
  Recipe l = parse_recipe_text(text, "o.toml", {"train.epochs=7", "train.epochs=9"});
  EXPECT_EQ(l.train.epochs, 9);           // later --set wins
  EXPECT_EQ(l.sets, (std::vector<std::string>{"train.epochs=7", "train.epochs=9"}));
  EXPECT_NE(d.sha256, s.sha256);
}

TEST(RecipeSet, ValueKinds) {
  Recipe r = parse_recipe_text(
      kMinimal, "m.toml",
      {"train.precision=fp32", "claim.title=\"a \\\"quoted\\\" title\"", "claim.headline=under $50",
       "data.operations=[\"add\", \"mul2\"]", "eval.think_budgets=[8,16]", "train.packing=false",
       "train.lr=3e-4", "replay.steps=9", "prices.gpu_hour_usd=[1.5, 2.5, 4]",
       "prices.gpu_hour_usd_source=test band",
       "extras=[{category = \"search\", quantity = 3.0, unit = \"GPU-hour\"}]"});
  EXPECT_EQ(r.train.precision, "fp32");  // bare word -> string
  EXPECT_EQ(r.claim.title, "a \"quoted\" title");
  EXPECT_EQ(r.claim.headline, "under $50");
  EXPECT_EQ(r.data.operations, (std::vector<std::string>{"add", "mul2"}));
  EXPECT_EQ(r.eval.think_budgets, (std::vector<int64_t>{8, 16}));
  EXPECT_FALSE(r.train.packing);
  EXPECT_DOUBLE_EQ(r.train.lr, 3e-4);
  EXPECT_EQ(r.replay.steps, 9);
  EXPECT_TRUE(r.prices.gpu_hour_usd.set);
  EXPECT_DOUBLE_EQ(r.prices.gpu_hour_usd.high, 4.0);
  EXPECT_EQ(r.prices.gpu_hour_usd.source, "test band");
  ASSERT_EQ(r.extras.size(), 1u);
  EXPECT_EQ(r.extras[0].unit, "GPU-hour");
}

TEST(RecipeSet, WithSeedSetsTrainAndDataSeeds) {
  Recipe r = parse_recipe_text(kMinimal, "m.toml", with_seed({"train.seed=1"}, 77));
  EXPECT_EQ(r.train.seed, 77);
  EXPECT_EQ(r.data.seed, 77);
  EXPECT_EQ(with_seed({"a.b=1"}, -1), (std::vector<std::string>{"a.b=1"}));
}

// ------------------------------------------------------------------ defaults

// The model and training defaults are settings.h's, written once: a recipe that names nothing
// gets them, and these are the values (a change here changes every recipe that omits the key).
// The training keys that moved into settings::TrainSettings are still validated by the parser.
TEST(RecipeDefaults, TrainingKeysInTheSettingsAreStillValidated) {
  for (const char* bad : {"train.schedule=step", "train.precision=fp16", "train.checkpoint_every=-1",
                          "train.recompute=maybe"}) {
    const std::string msg = error_of([&] { parse_recipe_text(kMinimal, "m.toml", {bad}); });
    const std::string key = std::string(bad).substr(0, std::string(bad).find('='));
    EXPECT_NE(msg.find("'" + key + "'"), std::string::npos) << bad << ": " << msg;
  }
  const Recipe r = parse_recipe_text(kMinimal, "m.toml",
                                     {"train.schedule=constant", "train.precision=bf16",
                                      "train.checkpoint_every=10", "train.recompute=true"});
  EXPECT_EQ(r.train.schedule, "constant");
  EXPECT_EQ(r.train.precision, "bf16");
  EXPECT_EQ(r.train.checkpoint_every, 10);
  EXPECT_TRUE(r.train.recompute);
}

TEST(RecipeDefaults, BaseAndTrainAreTheOneSetOfSettings) {
  const Recipe r = parse_recipe_text(kMinimal, "m.toml");
  EXPECT_EQ(static_cast<const audit::settings::ModelSettings&>(r.base),
            audit::settings::ModelSettings{});
  EXPECT_EQ(static_cast<const audit::settings::TrainSettings&>(r.train),
            audit::settings::TrainSettings{});
  const auto& b = r.base;
  EXPECT_EQ(b.arch, "qwen2");
  EXPECT_EQ(b.vocab, 264);
  EXPECT_EQ(b.hidden, 64);
  EXPECT_EQ(b.layers, 2);
  EXPECT_EQ(b.heads, 4);
  EXPECT_EQ(b.kv_heads, 4);
  EXPECT_EQ(b.head_dim, 16);
  EXPECT_EQ(b.ffn, 256);
  EXPECT_DOUBLE_EQ(b.rope_theta, 10000.0);
  EXPECT_EQ(b.max_position, 2048);
  EXPECT_DOUBLE_EQ(b.rms_eps, 1e-6);
  EXPECT_TRUE(b.qkv_bias);
  EXPECT_FALSE(b.tie_embeddings);
  EXPECT_FALSE(is_moe(b));
  const auto& t = r.train;
  EXPECT_EQ(t.epochs, 5);
  EXPECT_EQ(t.global_batch, 16);
  EXPECT_EQ(t.micro_batch, 0);
  EXPECT_EQ(t.micro_batch_or_global(), 16);
  EXPECT_DOUBLE_EQ(t.lr, 1e-5);
  EXPECT_DOUBLE_EQ(t.warmup_frac, 0.05);
  EXPECT_DOUBLE_EQ(t.min_lr_frac, 0.0);
  EXPECT_DOUBLE_EQ(t.beta1, 0.9);
  EXPECT_DOUBLE_EQ(t.beta2, 0.95);
  EXPECT_DOUBLE_EQ(t.adam_eps, 1e-8);
  EXPECT_DOUBLE_EQ(t.weight_decay, 1e-4);
  EXPECT_DOUBLE_EQ(t.grad_clip, 1.0);
  EXPECT_EQ(t.seed, 42);
  EXPECT_EQ(t.threads, 0);
  EXPECT_EQ(t.schedule, "cosine");
  EXPECT_EQ(t.precision, "fp32");
  EXPECT_FALSE(t.recompute);
  EXPECT_EQ(t.checkpoint_every, 0);
  // What logs and checkpoint messages print: every field, in order.
  EXPECT_EQ(audit::settings::to_string(t),
            "epochs=5 global_batch=16 micro_batch=0 lr=1e-05 warmup_frac=0.05 schedule=cosine "
            "min_lr_frac=0 beta1=0.9 beta2=0.95 adam_eps=1e-08 weight_decay=0.0001 grad_clip=1 "
            "precision=fp32 recompute=false seed=42 checkpoint_every=0 threads=0");
  EXPECT_EQ(audit::settings::to_string(b).substr(0, 127),
            "arch=qwen2 vocab=264 hidden=64 layers=2 heads=4 kv_heads=4 head_dim=16 ffn=256 "
            "rope_theta=10000 max_position=2048 rms_eps=1e-06");
}

// Every settings field is a recipe key (its own name; the vocabulary's is vocab_size): one the
// recipe cannot set would be a default no recipe could change.
TEST(RecipeDefaults, EverySettingIsARecipeKey) {
  const Recipe r = parse_recipe_text(kMinimal, "m.toml");
  auto section = [&](const std::string& name) {
    const std::string& t = r.resolved_toml;
    const size_t at = t.find("[" + name + "]\n");
    EXPECT_NE(at, std::string::npos) << name;
    return t.substr(at, t.find("\n[", at + 1) - at);
  };
  const std::string base = section("base"), train = section("train");
  int n = 0;
  audit::settings::ModelSettings::for_each_field([&](const char* name, auto) {
    const std::string key = std::string(name) == "vocab" ? "vocab_size" : name;
    EXPECT_NE(base.find("\n" + key + " = "), std::string::npos) << "base." << key;
    ++n;
  });
  audit::settings::TrainSettings::for_each_field([&](const char* name, auto) {
    EXPECT_NE(train.find("\n" + std::string(name) + " = "), std::string::npos) << "train." << name;
    ++n;
  });
  EXPECT_GT(n, 0);
  // And a value set in the recipe reaches the struct field of that name.
  const Recipe s = parse_recipe_text(kMinimal, "m.toml",
                                     {"base.vocab_size=300", "base.max_position=99",
                                      "train.micro_batch=4", "train.min_lr_frac=0.25"});
  EXPECT_EQ(s.base.vocab, 300);
  EXPECT_EQ(s.base.max_position, 99);
  EXPECT_EQ(s.train.micro_batch_or_global(), 4);
  EXPECT_DOUBLE_EQ(s.train.min_lr_frac, 0.25);
}

// ------------------------------------------------------------------ shipped recipes

TEST(ShippedRecipes, EveryRecipeLoadsAndRoundTrips) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(recipes())) {
    if (e.path().extension() != ".toml") continue;
    ++n;
    SCOPED_TRACE(e.path().string());
    Recipe r = load_recipe(e.path().string());
    EXPECT_FALSE(r.claim.sources.empty()) << "a shipped recipe cites its sources";
    EXPECT_EQ(r.sha256.size(), 64u);
    Recipe again = parse_recipe_text(r.resolved_toml, "resolved");
    EXPECT_EQ(again.resolved_toml, r.resolved_toml);
    EXPECT_EQ(again.sha256, r.sha256);
  }
  EXPECT_GE(n, 4);
}

TEST(ShippedRecipes, S1CarriesThePublishedNumbers) {
  Recipe r = load_recipe((recipes() / "s1.toml").string());
  EXPECT_EQ(r.claim.name, "s1");
  EXPECT_NEAR(claimed_gpu_hours(r.claim), 6.93, 0.005);
  EXPECT_DOUBLE_EQ(r.claim.claimed_cost_usd, 50.0);
  EXPECT_EQ(r.base.layers, 64);
  EXPECT_EQ(r.base.hidden, 5120);
  EXPECT_EQ(r.base.heads, 40);
  EXPECT_EQ(r.base.kv_heads, 8);
  EXPECT_EQ(r.base.ffn, 27648);
  EXPECT_EQ(r.base.vocab, 152064);
  EXPECT_TRUE(r.base.qkv_bias);
  EXPECT_FALSE(r.base.tie_embeddings);
  EXPECT_DOUBLE_EQ(r.base.pretrain_tokens, 18e12);
  EXPECT_EQ(r.train.epochs, 5);
  EXPECT_EQ(r.train.steps, 315);
  EXPECT_EQ(r.train.global_batch, 16);
  EXPECT_DOUBLE_EQ(r.train.lr, 1e-5);
  EXPECT_EQ(r.train.block_size, 32768);
  EXPECT_EQ(r.train.parallelism, "fsdp_full_shard");
  ASSERT_EQ(r.claim.results.size(), 3u);
  EXPECT_EQ(r.claim.results[0].n, 30);
  ASSERT_EQ(r.claim.reference_runs.size(), 1u);
  EXPECT_DOUBLE_EQ(r.claim.reference_runs[0].wall_seconds, 5269.0);
  bool ablation = false;
  for (const auto& x : r.extras)
    if (x.category == "search" && x.quantity == 394.0 && x.unit == "GPU-hour") ablation = true;
  EXPECT_TRUE(ablation) << "the 394 GPU-hour ablation is declared";
}

TEST(ShippedRecipes, DeepSeekV3PhasesAddUp) {
  Recipe r = load_recipe((recipes() / "deepseek-v3.toml").string());
  EXPECT_TRUE(is_moe(r.base));
  EXPECT_EQ(r.base.routed_experts, 256);
  EXPECT_EQ(r.base.top_k, 8);
  EXPECT_EQ(r.base.kv_lora_rank, 512);
  double sum = 0;
  for (const auto& p : r.claim.phases) sum += p.gpu_hours;
  EXPECT_DOUBLE_EQ(sum, r.claim.gpu_hours);
  EXPECT_DOUBLE_EQ(r.claim.gpu_hours * r.claim.claimed_gpu_hour_usd, r.claim.claimed_cost_usd);
}

TEST(ShippedRecipes, S1MiniIsTrainedHereAndMapsSplits) {
  Recipe r = load_recipe((recipes() / "s1-mini.toml").string());
  EXPECT_TRUE(r.base.train_here);
  EXPECT_EQ(r.data.select_n, 1000);
  EXPECT_EQ(r.train.epochs, 5);
  EXPECT_EQ(r.train.global_batch, 16);
  for (const auto& res : r.claim.results)
    EXPECT_NE(std::find(kSplitNames.begin(), kSplitNames.end(), res.split), kSplitNames.end());
}

// ------------------------------------------------------------------ canonical form and hash

TEST(RecipeHash, Sha256OfKnownText) {
  EXPECT_EQ(audit::ledger::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(RecipeHash, IndependentOfLayoutSensitiveToValues) {
  Recipe a = parse_recipe_text("[claim]\nname = \"h\"\n[train]\nlr = 1e-5\nepochs = 5\n", "a");
  Recipe b = parse_recipe_text(
      "# a comment\n[train]\nepochs = 5   # same as the default\nlr = 0.00001\n\n[claim]\n"
      "name = 'h'\n",
      "b");
  EXPECT_EQ(a.resolved_toml, b.resolved_toml);
  EXPECT_EQ(a.sha256, b.sha256);
  Recipe c = parse_recipe_text("[claim]\nname = \"h\"\n[train]\nlr = 1.1e-5\n", "c");
  EXPECT_NE(a.sha256, c.sha256);
}

TEST(RecipeHash, TrickyValuesRoundTrip) {
  Recipe r = parse_recipe_text(kMinimal, "m.toml");
  r.claim.title = "quote \" backslash \\ newline \n tab \t bell \x07 unicode \xC3\xA9 <script>";
  r.claim.sources = {"", "a,b", "[x]"};
  r.train.lr = 0.1;
  r.train.weight_decay = 1e-300;
  r.claim.gpu_hours = 2.788e6;
  r.claim.wall_hours = 26.0 / 60.0;
  r.base.pretrain_tokens = 14.8e12;
  r.base.rope_theta = 1000000.0;
  r.claim.results = {{"A \"B\"", 12.25, 30, "id"}};
  r.extras = {ExtraCost{"search", "d", 1.5, "GPU-hour", "", "estimated", "f", {true, 1, 2, 3, "s"}, "src"}};
  std::string text = to_toml(r);
  Recipe back = parse_recipe_text(text, "back");
  EXPECT_EQ(back.claim.title, r.claim.title);
  EXPECT_EQ(back.claim.sources, r.claim.sources);
  EXPECT_EQ(back.train.lr, r.train.lr);
  EXPECT_EQ(back.train.weight_decay, r.train.weight_decay);
  EXPECT_EQ(back.claim.wall_hours, r.claim.wall_hours);
  EXPECT_EQ(back.base.pretrain_tokens, r.base.pretrain_tokens);
  EXPECT_EQ(back.claim.results[0].benchmark, "A \"B\"");
  EXPECT_EQ(back.extras[0].price_usd.source, "s");
  EXPECT_EQ(to_toml(back), text);
  EXPECT_EQ(back.sha256, audit::ledger::sha256_hex(text));
  EXPECT_NE(text.find("rope_theta = 1000000.0\n"), std::string::npos) << "integral floats stay readable";
}

// Mutated shipped recipes (byte flips, insertions, truncations, seeded): each one either loads
// or is refused with an InputError naming the input; never another exception or a crash.
TEST(RecipeFuzz, MutatedRecipesLoadOrAreRefusedCleanly) {
  const std::string base = read_file(recipes() / "s1.toml");
  const std::string alphabet = "[]{}=\"'.,#\n -0123456789abcxyzefn";
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&] {  // splitmix64
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  int refused = 0, loaded = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string text = base;
    int edits = 1 + static_cast<int>(next() % 3);
    for (int k = 0; k < edits; ++k) {
      size_t pos = next() % text.size();
      switch (next() % 4) {
        case 0: text[pos] = alphabet[next() % alphabet.size()]; break;
        case 1: text.insert(pos, 1, alphabet[next() % alphabet.size()]); break;
        case 2: text.erase(pos, 1 + next() % 8); break;
        case 3: text.resize(pos); break;
      }
      if (text.empty()) text = "x";
    }
    try {
      Recipe r = parse_recipe_text(text, "fuzz.toml");
      EXPECT_EQ(parse_recipe_text(r.resolved_toml, "again").sha256, r.sha256);
      ++loaded;
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("fuzz.toml", 0), 0u) << e.what();
      ++refused;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "mutation " << i << " threw a non-input error: " << e.what();
    }
  }
  EXPECT_GT(refused, 100);
  EXPECT_GT(loaded, 10);
}

TEST(RecipePaths, ResolvedRelativeToTheRecipe) {
  Recipe r = parse_recipe_text(kMinimal, "recipes/sub/x.toml");
  EXPECT_EQ(resolve_path(r, "data.jsonl"), "recipes/sub/data.jsonl");
  EXPECT_EQ(resolve_path(r, "/abs/data.jsonl"), "/abs/data.jsonl");
}

// ------------------------------------------------------------------ audit check

TEST(AuditCheck, ExitCodesAndOutput) {
  const audit::testing::TempDir tmp("audit_check_test");
  const std::string out = tmp.file("out.txt"), err = tmp.file("err.txt");
  const std::string s1 = (recipes() / "s1.toml").string();
  // stdout and stderr to their own files: the exit code of `audit <args>`.
  auto run = [](const std::string& args) { return run_audit(args).exit_code; };

  EXPECT_EQ(run("check " + s1 + " > " + out + " 2> " + err), 0) << read_file(err);
  std::string text = read_file(out);
  Recipe r = load_recipe(s1);
  EXPECT_EQ(text, r.resolved_toml + "\n# sha256 " + r.sha256 + "\n");

  EXPECT_EQ(run("check " + s1 + " --sha256 --set train.epochs=3 > " + out), 0);
  EXPECT_EQ(read_file(out), load_recipe(s1, {"train.epochs=3"}).sha256 + "\n");

  EXPECT_EQ(run("check " + (fixtures() / "unknown_key.toml").string() + " > " + out + " 2> " + err),
            2);
  EXPECT_NE(read_file(err).find("unknown_key.toml:7:1: 'train.lrr': unknown key"), std::string::npos)
      << read_file(err);
  EXPECT_EQ(read_file(out), "") << "nothing on stdout when invalid";

  EXPECT_EQ(run("check " + s1 + " --set train.lrr=1 > " + out + " 2> " + err), 2);
  EXPECT_NE(read_file(err).find("--set: 'train.lrr'"), std::string::npos) << read_file(err);
  EXPECT_EQ(run("check /nonexistent.toml > " + out + " 2> " + err), 2);
}

// ------------------------------------------------------------------ [base] from a config.json

namespace {

// A Qwen2.5-0.5B-shaped config.json in transformers 4's layout.
const char* kQwenConfig = R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
  "vocab_size": 151936, "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
  "num_key_value_heads": 2, "intermediate_size": 4864, "max_position_embeddings": 32768,
  "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true,
  "torch_dtype": "bfloat16", "use_sliding_window": false, "hidden_act": "silu"})";

}  // namespace

TEST(RecipeHfConfig, BaseConfigReadsTheArchitectureRelativeToTheRecipe) {
  const audit::testing::TempDir tmp("recipe_hf");
  ASSERT_EQ(::mkdir(tmp.file("ckpt").c_str(), 0755), 0);
  audit::testing::write_file(tmp.file("ckpt/config.json"), kQwenConfig);
  const std::string recipe = tmp.file("r.toml");
  for (const std::string key : {"config = \"ckpt/config.json\"", "checkpoint = \"ckpt\""}) {
    SCOPED_TRACE(key);
    audit::testing::write_file(recipe, std::string(kMinimal) + "[base]\n" + key +
                                           "\nhidden = 896\nvocab_size = 151936\n");
    const Recipe r = load_recipe(recipe);
    EXPECT_EQ(r.base.arch, "qwen2");
    EXPECT_EQ(r.base.hidden, 896);
    EXPECT_EQ(r.base.layers, 24);
    EXPECT_EQ(r.base.heads, 14);
    EXPECT_EQ(r.base.kv_heads, 2);
    EXPECT_EQ(r.base.head_dim, 64);
    EXPECT_EQ(r.base.ffn, 4864);
    EXPECT_TRUE(r.base.tie_embeddings);
    EXPECT_TRUE(r.base.qkv_bias);
    EXPECT_DOUBLE_EQ(r.base.rope_theta, 1e6);
    // The resolved recipe carries the shapes, so its hash changes with the config.
    EXPECT_NE(r.resolved_toml.find("layers = 24"), std::string::npos) << r.resolved_toml;
  }
}

TEST(RecipeHfConfig, ShapesContradictingConfigJsonAreRefusedNamingBothValues) {
  const audit::testing::TempDir tmp("recipe_hf");
  audit::testing::write_file(tmp.file("config.json"), kQwenConfig);
  const std::string recipe = tmp.file("r.toml");
  audit::testing::write_file(recipe, std::string(kMinimal) +
                                         "[base]\nconfig = \"config.json\"\nhidden = 64\n");
  std::string m = error_of([&] { load_recipe(recipe); });
  EXPECT_NE(m.find("r.toml:5:"), std::string::npos) << m;
  EXPECT_NE(m.find("base.hidden = 64 but " + tmp.file("config.json") + " hidden_size = 896"),
            std::string::npos)
      << m;
  // --set counts as typed too; arch and booleans are compared as well.
  audit::testing::write_file(recipe, std::string(kMinimal) + "[base]\nconfig = \"config.json\"\n");
  m = error_of([&] { load_recipe(recipe, {"base.arch=\"llama\""}); });
  EXPECT_NE(m.find("base.arch = \"llama\" but"), std::string::npos) << m;
  EXPECT_NE(m.find("model_type = \"qwen2\""), std::string::npos) << m;
  m = error_of([&] { load_recipe(recipe, {"base.tie_embeddings=false"}); });
  EXPECT_NE(m.find("tie_word_embeddings = true"), std::string::npos) << m;
  // Missing files name the key.
  audit::testing::write_file(recipe, std::string(kMinimal) + "[base]\nconfig = \"nope.json\"\n");
  m = error_of([&] { load_recipe(recipe); });
  EXPECT_NE(m.find("'base.config'"), std::string::npos) << m;
  EXPECT_NE(m.find("nope.json not found"), std::string::npos) << m;
  audit::testing::write_file(recipe, std::string(kMinimal) + "[base]\ncheckpoint = \"nodir\"\n");
  m = error_of([&] { load_recipe(recipe); });
  EXPECT_NE(m.find("'base.checkpoint'"), std::string::npos) << m;
  // A bad config.json is refused naming it and its key.
  audit::testing::write_file(tmp.file("config.json"), R"({"model_type": "gpt2"})");
  audit::testing::write_file(recipe, std::string(kMinimal) + "[base]\nconfig = \"config.json\"\n");
  m = error_of([&] { load_recipe(recipe); });
  EXPECT_NE(m.find("config.json: 'model_type': unknown model_type"), std::string::npos) << m;
}

TEST(RecipeHfConfig, QkvBiasIsOnlyForQwen2AndMoeArchsAreAccepted) {
  auto r = parse_recipe_text(std::string(kMinimal) + "[base]\narch = \"llama\"\n", "l.toml");
  EXPECT_FALSE(r.base.qkv_bias);  // the default (true, Qwen2's) does not apply to llama
  std::string m = error_of([] {
    parse_recipe_text(std::string(kMinimal) + "[base]\narch = \"mistral\"\nqkv_bias = true\n",
                      "m.toml");
  });
  EXPECT_NE(m.find("'base.qkv_bias'"), std::string::npos) << m;
  r = parse_recipe_text(std::string(kMinimal) +
                            "[base]\narch = \"qwen2_moe\"\nrouted_experts = 8\ntop_k = 2\n"
                            "expert_ffn = 32\nshared_experts = 1\nshared_expert_ffn = 128\n",
                        "q.toml");
  EXPECT_TRUE(r.base.qkv_bias);
  m = error_of([] {
    parse_recipe_text(std::string(kMinimal) +
                          "[base]\narch = \"mixtral\"\nrouted_experts = 8\ntop_k = 2\n"
                          "expert_ffn = 32\nshared_experts = 1\n",
                      "x.toml");
  });
  EXPECT_NE(m.find("mixtral has no shared experts"), std::string::npos) << m;
}
