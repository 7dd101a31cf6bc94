// `audit run` on a Hugging Face base checkpoint (base.train_here = false): a complete model
// folder made at test time (tests/golden/make_run_checkpoint.py: a trained BPE tokenizer, a tiny
// random transformers model, the real chat template) is loaded, prompted through its chat
// template with s1's thinking markers, optionally fine-tuned, and evaluated end to end. Bad
// checkpoint set-ups exit 2 before a run is opened. The RunJsonl tests run recipes/s1.toml as
// published on that model, an s1K-shaped JSONL and benchmark files the test writes: SFT, the
// suites, budget forcing, decontamination, the ledger and the report.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
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

namespace {

std::string s1_recipe() { return std::string(audit::testing::source_dir()) + "/recipes/s1.toml"; }

// An s1K-shaped file: question, thinking_trajectories (a list), attempt; plus extra keys s1K has.
// The last sample is longer than the test's block of 256 tokens.
std::string write_s1k(const audit::testing::TempDir& dir) {
  std::ostringstream o;
  for (int i = 0; i < 12; ++i) {
    const int a = 10 + 7 * i, b = 30 + 3 * i;
    nlohmann::json j = {
        {"solution", std::to_string(a + b)},
        {"question", "What is " + std::to_string(a) + " + " + std::to_string(b) +
                         "? Give the sum as a number."},
        {"cot_type", "math"},
        {"thinking_trajectories",
         {"add " + std::to_string(a) + " " + std::to_string(b) + "\nresult " + std::to_string(a + b)}},
        {"attempt", "The sum is \\boxed{" + std::to_string(a + b) + "}."}};
    o << j.dump() << "\n";
  }
  std::string longest;
  for (int k = 0; k < 60; ++k) longest += "digit " + std::to_string(k % 10) + " carry 0\n";
  o << nlohmann::json({{"question", "What is 1234 + 4321?"}, {"thinking_trajectories", {longest}},
                       {"attempt", "\\boxed{5555}"}})
           .dump()
    << "\n";
  const std::string path = dir.file("s1K.jsonl");
  audit::testing::write_file(path, o.str());
  return path;
}

// The three files recipes/s1.toml names, in a folder given as eval.suites_dir: two math suites
// in distribution (one with a question copied from the training file, to be found by the
// decontamination) and a GPQA-style multiple-choice suite out of it.
std::string write_suites(const audit::testing::TempDir& dir) {
  const std::string evals = dir.file("evals");
  audit::testing::run_command("mkdir -p '" + evals + "'");
  std::string math = nlohmann::json({{"problem", "What is 10 + 30? Give the sum as a number."},
                                     {"answer", "40"}}).dump() + "\n";
  for (int i = 0; i < 5; ++i)
    math += nlohmann::json({{"problem", "What is " + std::to_string(200 + i) + " + 5?"},
                            {"answer", std::to_string(205 + i)}}).dump() + "\n";
  audit::testing::write_file(evals + "/math500.jsonl", math);
  std::string aime;
  for (int i = 0; i < 4; ++i)
    aime += nlohmann::json({{"question", "Find the remainder of " + std::to_string(1000 + i) +
                                             " divided by 7."},
                            {"answer", (1000 + i) % 7}}).dump() + "\n";
  audit::testing::write_file(evals + "/aime24.jsonl", aime);
  std::string gpqa;
  for (int i = 0; i < 4; ++i)
    gpqa += nlohmann::json({{"question", "Which particle carries charge number " + std::to_string(i) + "?"},
                            {"correct_answer", "the electron " + std::to_string(i)},
                            {"incorrect_answers", {"a photon", "a neutrino", "a gluon"}}}).dump() + "\n";
  audit::testing::write_file(evals + "/gpqa_diamond.jsonl", gpqa);
  return evals;
}

std::string small_s1(const std::string& ckpt, const std::string& jsonl, const std::string& evals) {
  return " --set base.checkpoint=" + ckpt + " --set data.jsonl_path=" + jsonl +
         " --set eval.suites_dir=" + evals +
         " --set train.precision=fp32 --set train.epochs=1 --set train.global_batch=4"
         " --set train.micro_batch=2 --set train.block_size=256 --set train.lr=1e-3"
         " --set train.threads=1 --set train.checkpoint_every=2 --set eval.max_new_tokens=12"
         " --set 'eval.think_budgets=[4]' --set eval.wait_extensions=1";
}

}  // namespace

TEST(RunJsonl, S1RecipeRunsOnACheckpointJsonlAndBenchmarkFiles) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const std::string ckpt = checkpoint("qwen2");
  ASSERT_FALSE(ckpt.empty());
  const audit::testing::TempDir dir("audit_run_jsonl");
  const std::string db = dir.file("audit.db"), work = dir.file("work");
  const std::string sets = small_s1(ckpt, write_s1k(dir), write_suites(dir));
  const auto ran = run_audit("run " + s1_recipe() + " --meter-interval 0.2 --ledger " + db +
                             " --work-dir " + work + sets + " 2>&1");
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  // The memory plan and the truncation are said before training.
  EXPECT_NE(ran.output.find("memory plan"), std::string::npos) << ran.output;
  EXPECT_NE(ran.output.find("1 of 13 samples are longer than the block of 256 tokens"),
            std::string::npos) << ran.output;

  audit::ledger::Ledger l(db);
  const int64_t run = l.latest_run();
  EXPECT_EQ(l.run(run)->status, audit::ledger::RunStatus::succeeded);
  std::vector<std::string> stages;
  for (const auto& s : l.stages(run)) stages.push_back(s.name);
  EXPECT_EQ(stages, (std::vector<std::string>{"load_base", "data", "sft-seed1", "eval"}));

  // The data's measured token counts.
  const auto data = event_value(l, run, "sft_data");
  ASSERT_TRUE(data.is_object());
  EXPECT_EQ(data["records"], 13);
  EXPECT_EQ(data["truncated_samples"], 1);
  EXPECT_GT(data["tokens_max"].get<double>(), 256);
  EXPECT_NEAR(data["tokens_mean"].get<double>() * 13, data["tokens_total"].get<double>(), 1e-6);
  EXPECT_NEAR(data["tokens_after_truncation"].get<double>() + data["tokens_cut"].get<double>(),
              data["tokens_total"].get<double>(), 1e-9);
  EXPECT_LE(data["tokens_p90"].get<double>(), data["tokens_max"].get<double>());
  const auto sft = event_value(l, run, "sft_config");
  EXPECT_EQ(sft["rows"], 13);
  EXPECT_EQ(sft["recompute"], true);
  EXPECT_EQ(sft["precision"], "fp32");
  // The teacher's bill: the file's measured trace length over s1's declared 59,029 questions.
  const auto teacher = event_value(l, run, "teacher_tokens");
  EXPECT_EQ(teacher["questions"], 59029);
  EXPECT_EQ(teacher["provenance"], "estimated");
  // D of the claimed run from the measured counts (13 samples x 1 epoch x mean), not a band.
  const auto est = l.artifact(run, "claimed_run_estimate");
  ASSERT_TRUE(est);
  bool found_tokens = false;
  for (const auto& line : (*est)["lines"])
    if (line["key"] == "tokens") {
      found_tokens = true;
      EXPECT_EQ(line["provenance"], "measured");
      EXPECT_NEAR(line["value"][1].get<double>(), data["tokens_total"].get<double>(), 1e-6);
    }
  EXPECT_TRUE(found_tokens) << est->dump();

  // Base and tuned on every suite with the suite's size and OOD flag; the budget sweep and the
  // "Wait" extension on the first in-distribution suite.
  std::map<std::string, int> rows;
  for (const auto& e : l.evals(run)) {
    ++rows[e.model + " " + e.suite + " " + e.split];
    if (e.split == "GPQA-Diamond") EXPECT_TRUE(e.ood);
    if (e.split == "MATH500") {
      EXPECT_FALSE(e.ood);
      EXPECT_EQ(e.n, 6);
    }
  }
  EXPECT_EQ(rows, (std::map<std::string, int>{{"base AIME24 AIME24", 1},
                                             {"base GPQA-Diamond GPQA-Diamond", 1},
                                             {"base MATH500 MATH500", 1},
                                             {"tuned AIME24 AIME24", 1},
                                             {"tuned GPQA-Diamond GPQA-Diamond", 1},
                                             {"tuned MATH500 MATH500", 1},
                                             {"tuned budget_forcing MATH500", 1},
                                             {"tuned wait_x1 MATH500", 1}}));

  // Decontamination at 8- and 13-grams finds the copied question and nothing in GPQA.
  const auto dec = l.artifact(run, "decontamination");
  ASSERT_TRUE(dec);
  for (const char* n : {"8-gram", "13-gram"}) {
    std::map<std::string, int64_t> overlap;
    for (const auto& set : (*dec)[n]["sets"]) overlap[set["test_set"]] = set["items_with_overlap"];
    EXPECT_EQ(overlap["MATH500"], 1) << n;
    EXPECT_EQ(overlap["GPQA-Diamond"], 0) << n;
  }

  // Results are about s1-32B: a run on another model judges none of them.
  int results = 0;
  for (const auto& v : l.verdicts(run))
    if (v.kind == "result") {
      ++results;
      EXPECT_EQ(v.verdict, "not reproducible here") << v.claim;
      EXPECT_NE(v.reason.find("another model than the claim's"), std::string::npos) << v.reason;
    }
  EXPECT_EQ(results, 3);

  // Every completion, exported as JSONL: (6 + 4 + 4) items x (base + tuned) + 2 x 6 sweep rows.
  const std::string samples = dir.file("samples.jsonl");
  ASSERT_EQ(run_audit("ledger export latest --format samples --ledger " + db + " --out " + samples)
                .exit_code, 0);
  std::istringstream in(audit::testing::read_file(samples));
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    for (const char* k : {"suite", "model", "doc_id", "question", "reference", "completion",
                          "extracted", "correct", "thinking_tokens"})
      EXPECT_TRUE(j.contains(k)) << k << " in " << line;
    ++lines;
  }
  EXPECT_EQ(lines, 40);

  EXPECT_EQ(run_audit("ledger verify --ledger " + db).exit_code, 0);
  const std::string html = dir.file("report.html");
  const auto rep = run_audit("report --ledger " + db + " --out " + html);
  ASSERT_EQ(rep.exit_code == 0 || rep.exit_code == 1, true) << rep.output;
  const std::string page = audit::testing::read_file(html);
  for (const char* s : {"MATH500", "GPQA-Diamond", "Decontamination", "13-gram"})
    EXPECT_NE(page.find(s), std::string::npos) << s;

  // checkpoint_every left a resumable checkpoint; a rerun into the same work folder resumes
  // from it (at the last step) and evaluates the same weights: the same tuned scores.
  EXPECT_EQ(audit::testing::run_command("test -f '" + work + "/sft-seed1.resume.ckpt'").exit_code, 0);
  const auto again = run_audit("run " + s1_recipe() + " --quiet --meter-interval 0.2 --ledger " +
                               db + " --work-dir " + work + sets);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  const int64_t run2 = l.latest_run();
  ASSERT_NE(run2, run);
  EXPECT_EQ(event_value(l, run2, "resumed")["step"], 4);
  std::map<std::string, int64_t> first, second;
  for (const auto& e : l.evals(run))
    if (e.model == "tuned") first[e.suite + e.split] = e.correct;
  for (const auto& e : l.evals(run2))
    if (e.model == "tuned") second[e.suite + e.split] = e.correct;
  EXPECT_EQ(first, second);
}

TEST(RunJsonl, BadDataSuitesAndSettingsExitTwoBeforeARunIsOpened) {
  AUDIT_SKIP_WITHOUT_TORCH();
  const std::string ckpt = checkpoint("qwen2");
  ASSERT_FALSE(ckpt.empty());
  const audit::testing::TempDir dir("audit_run_jsonl_bad");
  const std::string db = dir.file("audit.db");
  const std::string jsonl = write_s1k(dir), evals = write_suites(dir);
  const std::string missing = dir.file("missing.jsonl"), badutf = dir.file("badutf.jsonl"),
                    empty = dir.file("empty.jsonl");
  audit::testing::write_file(missing, R"({"question": "q", "thinking_trajectories": ["t"], "attempt": "a"})"
                                      "\n" R"({"question": "q2", "thinking_trajectories": ["t"]})" "\n");
  audit::testing::write_file(badutf, "{\"question\": \"caf\xC3\", \"thinking_trajectories\": [\"t\"], \"attempt\": \"a\"}\n");
  audit::testing::write_file(empty, "\n\n");
  const std::string noanswer = dir.file("evals_noanswer");
  audit::testing::run_command("cp -r '" + evals + "' '" + noanswer + "'");
  audit::testing::write_file(noanswer + "/math500.jsonl", R"({"problem": "What is 1 + 1?"})" "\n");
  struct Case {
    std::string sets, expect;
  };
  const std::string ok = small_s1(ckpt, jsonl, evals);
  const std::vector<Case> cases = {
      {small_s1(ckpt, missing, evals), "missing.jsonl:2"},
      {small_s1(ckpt, missing, evals), "attempt"},
      {small_s1(ckpt, badutf, evals), "badutf.jsonl:1:"},
      {small_s1(ckpt, empty, evals), "no records"},
      {small_s1(ckpt, jsonl, noanswer), "math500.jsonl:1"},
      {ok + " --set train.precision=bf16", "train.precision"},
      {ok + " --set data.teacher=solver", "data.teacher"},
      {"", "memory plan"},  // s1's 32B shapes on this machine, refused before its precision
      {"", "610 GiB"},
  };
  for (const auto& c : cases) {
    const auto ran = run_audit("run " + s1_recipe() + " --quiet --ledger " + db + c.sets + " 2>&1");
    EXPECT_EQ(ran.exit_code, 2) << c.sets << "\n" << ran.output;
    EXPECT_NE(ran.output.find(c.expect), std::string::npos) << c.expect << "\n" << ran.output;
  }
  if (audit::testing::run_command("test -f '" + db + "'").exit_code == 0) {
    audit::ledger::Ledger l(db);
    EXPECT_EQ(l.latest_run(), 0) << "a refused recipe leaves no run row";
  }
}
