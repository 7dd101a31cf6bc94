// `audit run` on a Hugging Face base checkpoint (base.train_here = false): a complete model
// folder made at test time (tests/golden/make_run_checkpoint.py: a trained BPE tokenizer, a tiny
// random transformers model, the real chat template) is loaded, prompted through its chat
// template with s1's thinking markers, optionally fine-tuned, and evaluated end to end. Bad
// checkpoint set-ups exit 2 before a run is opened.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "ledger/store/ledger.h"
#include "tests/support/support.h"

namespace {
using audit::testing::run_audit;

// The cached model folder of `arch` ("qwen2" with Qwen2.5's template, "llama" with Llama 3's).
std::string checkpoint(const std::string& arch) {
  const std::string src = audit::testing::source_dir();
  const std::string tmpl = src + "/tests/fixtures/chat_templates/" +
                           (arch == "qwen2" ? "qwen2.5_instruct.jinja" : "llama3_instruct.jinja");
  const std::string script = src + "/tests/golden/make_run_checkpoint.py";
  return audit::testing::python_fixture(
      "run_checkpoint_" + arch,
      "'" + audit::testing::python() + "' '" + script + "' {OUT} --arch " + arch + " --template '" +
          tmpl + "'",
      {script, src + "/tests/golden/make_tokenizers.py", tmpl});
}

std::string recipe() { return std::string(audit::testing::source_dir()) + "/recipes/hf-base.toml"; }

std::string tiny_sets() {
  return " --set data.pool_size=60 --set data.select_n=16 --set eval.n_id=6 --set eval.n_ood=4"
         " --set eval.max_new_tokens=12 --set train.threads=1";
}

nlohmann::json event_value(const audit::ledger::Ledger& l, int64_t run, const std::string& key) {
  for (const auto& e : l.events(run))
    if (e.key == key) return nlohmann::json::parse(e.value);
  return nullptr;
}
}  // namespace

TEST(RunCheckpoint, EvaluatesALoadedQwen2ThroughItsChatTemplate) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const std::string ckpt = checkpoint("qwen2");
  ASSERT_FALSE(ckpt.empty());
  const audit::testing::TempDir dir("audit_run_ckpt");
  const std::string db = dir.file("audit.db");
  const auto ran = run_audit("run " + recipe() + " --quiet --meter-interval 0.2 --ledger " + db +
                             " --set base.checkpoint=" + ckpt + tiny_sets());
  ASSERT_EQ(ran.exit_code, 0) << ran.output;

  audit::ledger::Ledger l(db);
  const int64_t run = l.latest_run();
  ASSERT_GT(run, 0);
  EXPECT_EQ(l.run(run)->status, audit::ledger::RunStatus::succeeded);
  std::set<std::string> stages;
  for (const auto& s : l.stages(run)) stages.insert(s.name);
  EXPECT_EQ(stages, (std::set<std::string>{"load_base", "distill", "select", "eval"}))
      << "epochs = 0: the loaded model is evaluated, not pretrained or fine-tuned";

  // The loaded model is the fixture's: its parameter count and its chat format are recorded.
  const auto manifest = nlohmann::json::parse(audit::testing::read_file(ckpt + "/manifest.json"));
  const auto base = event_value(l, run, "base_checkpoint");
  ASSERT_TRUE(base.is_object());
  EXPECT_EQ(base["parameters"].get<int64_t>(), manifest["parameters"].get<int64_t>());
  EXPECT_EQ(base["format"]["kind"], "chat_template");
  EXPECT_EQ(base["format"]["template"], "chatml_qwen2.5");
  EXPECT_EQ(base["format"]["tokenizer"]["vocab_size"].get<int64_t>(),
            manifest["vocab_size"].get<int64_t>());

  // Base evaluations on every split; no tuned rows (no SFT stage).
  std::set<std::string> splits;
  for (const auto& e : l.evals(run)) {
    EXPECT_EQ(e.model, "base");
    splits.insert(e.split);
  }
  EXPECT_TRUE(splits.count("id"));
  EXPECT_GE(splits.size(), 4u);
  EXPECT_EQ(run_audit("ledger verify --ledger " + db).exit_code, 0);
}

TEST(RunCheckpoint, FineTunesALoadedLlamaThroughItsChatTemplate) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const std::string ckpt = checkpoint("llama");
  ASSERT_FALSE(ckpt.empty());
  const audit::testing::TempDir dir("audit_run_ckpt");
  const std::string db = dir.file("audit.db");
  const auto ran = run_audit("run " + recipe() + " --quiet --meter-interval 0.2 --ledger " + db +
                             " --set base.checkpoint=" + ckpt + tiny_sets() +
                             " --set train.epochs=1 --set train.lr=1e-3");
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  audit::ledger::Ledger l(db);
  const int64_t run = l.latest_run();
  std::set<std::string> stages;
  for (const auto& s : l.stages(run)) stages.insert(s.name);
  EXPECT_TRUE(stages.count("load_base") && stages.count("sft-seed1") && !stages.count("pretrain"))
      << ran.output;
  const auto sft = event_value(l, run, "sft_config");
  ASSERT_TRUE(sft.is_object());
  EXPECT_GT(sft["supervised_tokens"].get<int64_t>(), 0);
  std::set<std::string> models;
  for (const auto& e : l.evals(run)) models.insert(e.model);
  EXPECT_EQ(models, (std::set<std::string>{"base", "tuned"}));
  EXPECT_EQ(event_value(l, run, "base_checkpoint")["format"]["template"], "llama3");
}

TEST(RunCheckpoint, BadSetUpsExitTwoBeforeARunIsOpened) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const std::string ckpt = checkpoint("qwen2");
  ASSERT_FALSE(ckpt.empty());
  const audit::testing::TempDir dir("audit_run_ckpt");
  const std::string db = dir.file("audit.db");
  struct Case {
    std::string sets, expect;
  };
  // A model folder whose tokenizer_config.json has a template audit does not render.
  const std::string odd = dir.file("odd");
  ASSERT_EQ(audit::testing::run_command("cp -r '" + ckpt + "' '" + odd + "'").exit_code, 0);
  audit::testing::write_file(odd + "/tokenizer_config.json",
                             R"({"chat_template": "{{ messages[0]['content'] }}", "eos_token": "<|im_end|>"})");
  const std::vector<Case> cases = {
      {"", "base.train_here"},                                               // no checkpoint
      {" --set base.checkpoint=" + ckpt + " --set base.train_here=true --set base.pretrain_steps=1"
       " --set base.pretrain_examples=10", "base.train_here"},
      {" --set base.checkpoint=" + dir.file("missing"), "missing"},
      {" --set base.checkpoint=" + odd, "chat_template"},
  };
  for (const auto& c : cases) {
    const auto ran = run_audit("run " + recipe() + " --quiet --ledger " + db + c.sets + tiny_sets());
    EXPECT_EQ(ran.exit_code, 2) << c.sets << "\n" << ran.output;
    EXPECT_NE(ran.output.find(c.expect), std::string::npos) << c.sets << "\n" << ran.output;
  }
  // Nothing was opened: no run rows.
  if (audit::testing::run_command("test -f '" + db + "'").exit_code == 0) {
    audit::ledger::Ledger l(db);
    EXPECT_EQ(l.latest_run(), 0);
  }
}

// `audit model compare --prompt` tokenizes with the folder's tokenizer.json natively (a trained
// byte-level BPE here) and runs transformers on the same ids.
TEST(RunCheckpoint, ModelCompareTokenizesThePromptNatively) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const std::string ckpt = checkpoint("qwen2");
  ASSERT_FALSE(ckpt.empty());
  const auto r = run_audit("model compare '" + ckpt +
                           "' --prompt 'What is 12 + 30? Answer: 42' --json --threads 1 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output.substr(r.output.rfind("{\"")));
  EXPECT_EQ(j.at("ids_from"), "--prompt (tokenizer.json, native)");
  const auto tok = run_audit("tokenize '" + ckpt + "' --specials --text 'What is 12 + 30? Answer: 42'");
  ASSERT_EQ(tok.exit_code, 0) << tok.output;
  EXPECT_EQ(j.at("tokens").get<size_t>(),
            nlohmann::json::parse(tok.output.substr(tok.output.find('{')))["ids"].size());
  EXPECT_LE(j.at("max_abs_logit_diff").get<double>(), 1e-4);
}
