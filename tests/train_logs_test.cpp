// Training-log parsing: the Hugging Face Trainer's log dicts (lines captured from a real
// transformers 5.24.0 run under torchrun, tqdm bar and all, plus the 4.x spelling s1's repository
// quotes), recipe regex formats, refusals, and the loss-curve artifact's shape.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "reproduce/train_logs/train_logs.h"
#include "tests/support/support.h"

using namespace audit::train_logs;

namespace {
std::string fixture_log() {
  return audit::testing::read_file(audit::testing::source_dir() +
                                   "/tests/fixtures/train_logs/"
                                   "hf_trainer_torchrun2_transformers-5.24.0.log");
}
}  // namespace

TEST(TrainLogs, HfTrainerPrinterLine) {
  auto p = LogParser::hf_trainer();
  auto pt = p.feed("{'loss': '4.864', 'grad_norm': '0.9544', 'learning_rate': '0.003', 'epoch': '0.1'}\n");
  ASSERT_TRUE(pt.has_value());
  EXPECT_EQ(pt->step, 1);
  EXPECT_DOUBLE_EQ(pt->loss, 4.864);
  EXPECT_DOUBLE_EQ(pt->grad_norm, 0.9544);
  EXPECT_DOUBLE_EQ(pt->lr, 0.003);
  EXPECT_DOUBLE_EQ(pt->epoch, 0.1);
  pt = p.feed("{'loss': '4.738', 'grad_norm': '1.083', 'learning_rate': '2.7e-05', 'epoch': '0.2'}");
  ASSERT_TRUE(pt.has_value());
  EXPECT_EQ(pt->step, 2) << "no step printed: the count of loss dicts";
  EXPECT_DOUBLE_EQ(pt->lr, 2.7e-05);
  EXPECT_EQ(p.points(), 2);
}

TEST(TrainLogs, HfTrainerUnderTqdmCarriageReturns) {
  // A line as captured with stdout and stderr merged: the bar, its erasure, then the dict.
  auto p = LogParser::hf_trainer();
  auto pt = p.feed(
      "\r 10%|\xe2\x96\x88         | 1/10 [00:00<00:00, 20.14it/s]\r 20%|\xe2\x96\x88\xe2\x96\x88"
      "        | 2/10 [00:00<00:00, 18.38it/s]\r                                              "
      "\r{'loss': '4.738', 'grad_norm': '1.083', 'learning_rate': '0.0027', 'epoch': '0.2'}\r\n");
  ASSERT_TRUE(pt.has_value());
  EXPECT_DOUBLE_EQ(pt->loss, 4.738);
  EXPECT_DOUBLE_EQ(pt->epoch, 0.2);
  EXPECT_FALSE(p.feed("\r 30%|###       | 3/10 [00:00<00:00, 18.38it/s]").has_value());
}

TEST(TrainLogs, HfTrainer4xBareFloatsAndSummary) {
  // transformers 4.x printed floats bare; the summary line is quoted from s1's train/sft.sh.
  auto p = LogParser::hf_trainer(2);
  auto pt = p.feed("{'loss': 0.3741, 'grad_norm': 2.9032, 'learning_rate': 1e-05, 'epoch': 0.02}");
  ASSERT_TRUE(pt.has_value());
  EXPECT_EQ(pt->step, 2) << "logging_steps 2: the first logged step is 2";
  EXPECT_DOUBLE_EQ(pt->loss, 0.3741);
  EXPECT_DOUBLE_EQ(pt->lr, 1e-05);
  EXPECT_EQ(p.feed("{'loss': np.float64(0.25), 'grad_norm': tensor(1.5, device='cuda:0'), "
                   "'learning_rate': 9e-06, 'epoch': 0.04}")
                ->step,
            4);
  EXPECT_TRUE(p.summary().is_null());
  EXPECT_FALSE(p.feed("{'train_runtime': 5268.8407, 'train_samples_per_second': 0.949, "
                      "'train_steps_per_second': 0.119, 'train_loss': 0.1172730620391667, "
                      "'epoch': 5.0}")
                   .has_value())
      << "the closing summary is not a step";
  ASSERT_TRUE(p.summary().is_object());
  EXPECT_DOUBLE_EQ(p.summary()["train_runtime"].get<double>(), 5268.8407);
  EXPECT_DOUBLE_EQ(p.summary()["train_loss"].get<double>(), 0.1172730620391667);
}

TEST(TrainLogs, HfTrainerIgnoresOtherDicts) {
  auto p = LogParser::hf_trainer();
  EXPECT_FALSE(p.feed("[transformers] Updated tokens: {'eos_token_id': 127, 'bos_token_id': 126}"));
  EXPECT_FALSE(p.feed("{'eval_loss': '1.25', 'eval_runtime': '3.1', 'epoch': '1'}"));
  EXPECT_FALSE(p.feed("{'loss': [1, 2], 'epoch': 1}")) << "a loss that is no number";
  EXPECT_FALSE(p.feed("{'loss': 1.0, 'epoch'")) << "a dict cut short";
  EXPECT_FALSE(p.feed("{\"log_history\": [{\"loss\": 4.8, \"step\": 1}], \"ok\": true}"))
      << "a JSON line is read whole: the dicts inside it are not log lines";
  EXPECT_FALSE(p.feed(""));
  EXPECT_EQ(p.points(), 0);
  // Prefixed text (rank tags, timestamps) around a log dict is fine; an explicit step wins.
  auto pt = p.feed("[rank0]: 12:00:01 {'loss': 'nan', 'step': 40, 'epoch': '2'}");
  ASSERT_TRUE(pt.has_value());
  EXPECT_EQ(pt->step, 40);
  EXPECT_TRUE(std::isnan(pt->loss)) << "a diverged run's nan loss is a point, kept as nan";
  EXPECT_TRUE(std::isnan(pt->lr));
}

TEST(TrainLogs, RealTorchrunLog) {
  // tests/golden/launch_train.py under torchrun --nproc_per_node 2 (transformers 5.24.0),
  // stdout and stderr merged: every log dict, its numbers as printed, and the summary.
  auto p = LogParser::hf_trainer();
  const auto pts = parse_text(p, fixture_log());
  ASSERT_EQ(pts.size(), 10u);
  const double loss[10] = {4.864, 4.738, 4.648, 4.616, 4.522, 4.524, 4.516, 4.449, 4.439, 4.445};
  for (size_t i = 0; i < pts.size(); ++i) {
    EXPECT_EQ(pts[i].step, int64_t(i) + 1);
    EXPECT_DOUBLE_EQ(pts[i].loss, loss[i]) << "point " << i;
    EXPECT_NEAR(pts[i].epoch, 0.1 * double(i + 1), 1e-12);
    EXPECT_NEAR(pts[i].lr, 0.003 * (1.0 - 0.1 * double(i)), 1e-12) << "linear decay from 3e-3";
    EXPECT_GT(pts[i].grad_norm, 0.0);
  }
  ASSERT_TRUE(p.summary().is_object());
  EXPECT_DOUBLE_EQ(p.summary()["train_loss"].get<double>(), 4.576);
  EXPECT_DOUBLE_EQ(p.summary()["epoch"].get<double>(), 1.0);
}

TEST(TrainLogs, RegexFormat) {
  auto p = LogParser::regex(
      R"(step\s+(?<step>\d+)/\d+\s+loss\s+(?<loss>[-+0-9.eE]+|nan)(?:\s+lr\s+(?<lr>[-+0-9.eE]+))?)");
  auto a = p.feed("2025-01-01 | step 10/100 loss 2.5 lr 3e-4 | 1200 tok/s");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->step, 10);
  EXPECT_DOUBLE_EQ(a->loss, 2.5);
  EXPECT_DOUBLE_EQ(a->lr, 3e-4);
  EXPECT_TRUE(std::isnan(a->epoch));
  auto b = p.feed("step 20/100 loss 2.25");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->step, 20);
  EXPECT_TRUE(std::isnan(b->lr)) << "an optional group that did not take part";
  EXPECT_FALSE(p.feed("epoch 1 done"));
  // Invalid UTF-8 in a line (binary noise) is skipped over, not an error (PCRE2_MATCH_INVALID_UTF).
  auto u = p.feed("\xff\xfe step 25/100 loss 1.75");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->step, 25);
  // Carriage-return segments are searched one by one.
  auto c = p.feed("\rstep 30/100 loss 2.0\r");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->step, 30);
}

TEST(TrainLogs, RegexWithoutStepCountsLines) {
  auto p = LogParser::regex(R"(loss=(?<loss>\S+))");
  EXPECT_EQ(p.feed("loss=1.5")->step, 1);
  EXPECT_FALSE(p.feed("loss=abc")) << "a loss that is not a number is no point";
  EXPECT_EQ(p.feed("x loss=1.25 y")->step, 2);
  EXPECT_EQ(p.points(), 2);
}

TEST(TrainLogs, RegexRefusals) {
  try {
    LogParser::regex("loss=(?<loss>[0-9.+)");
    FAIL() << "a pattern that does not compile";
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("missing terminating ]"), std::string::npos) << m;
    EXPECT_NE(m.find("at offset 20"), std::string::npos) << m;
  }
  try {
    LogParser::regex(R"(step (?<step>\d+) (?<value>\S+))");
    FAIL() << "a pattern without a loss group";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'loss'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(LogParser::hf_trainer(0), std::invalid_argument);
  EXPECT_THROW(parser_for("tensorboard"), std::invalid_argument);
  EXPECT_FALSE(parser_for("none").has_value());
  EXPECT_EQ(parser_for("hf-trainer")->format(), "hf-trainer");
  EXPECT_EQ(parser_for("regex", "(?<loss>\\d+)")->format(), "regex");
}

TEST(TrainLogs, LossCurveArtifactShape) {
  auto p = LogParser::hf_trainer();
  const auto pts = parse_text(p, fixture_log());
  const auto c = loss_curve_json(pts, "parsed from stdout, hf-trainer format", p.summary());
  // The arrays the native trainer writes and the report reads (reproduce/pipeline, reports/html).
  for (const char* k : {"step", "loss", "lr", "epoch", "grad_norm"}) {
    ASSERT_TRUE(c[k].is_array()) << k;
    EXPECT_EQ(c[k].size(), pts.size()) << k;
  }
  EXPECT_EQ(c["step"][0].get<int64_t>(), 1);
  EXPECT_DOUBLE_EQ(c["loss"][9].get<double>(), 4.445);
  EXPECT_EQ(c["source"], "parsed from stdout, hf-trainer format");
  EXPECT_DOUBLE_EQ(c["summary"]["train_runtime"].get<double>(), 0.6951);
  EXPECT_FALSE(c.contains("tokens_per_s")) << "a log does not give throughput: not invented";

  LogPoint bare;
  bare.step = 3;
  bare.loss = 1.0;
  const auto d = loss_curve_json({bare}, "parsed from stdout, regex format");
  EXPECT_TRUE(d["lr"][0].is_null()) << "what the log did not say is null, never 0";
  EXPECT_FALSE(d.contains("summary"));
  const auto back = nlohmann::json::parse(d.dump());  // what the ledger stores, read back
  EXPECT_TRUE(back["epoch"][0].is_null());
  EXPECT_DOUBLE_EQ(back["loss"][0].get<double>(), 1.0);
}
