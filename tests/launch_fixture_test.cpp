// The `[launch]` fixture on its own: tests/golden/launch_train.py under the venv's
// `torchrun --nproc_per_node 2` (Gloo, CPU) trains a tiny transformers model with the real HF
// Trainer. Both ranks run, the Trainer's stdout parses into a falling loss curve, and the
// output_dir is a checkpoint reproduce/hf_checkpoint reads. (`audit run` with [launch] on this
// fixture, metered end to end, is the run tests' business.)
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <sys/stat.h>

#include "common/python_peer.h"  // shell_quote
#include "reproduce/hf_checkpoint/checkpoint_dir.h"
#include "reproduce/train_logs/train_logs.h"
#include "tests/support/support.h"
#include "tests/support/venv_tools.h"

namespace {
bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
}  // namespace

TEST(LaunchFixture, TorchrunTwoRanksTrainsLogsAndSaves) {
  using audit::shell_quote;
  const std::string torchrun = audit::testing::venv_tool("torchrun");
  ASSERT_FALSE(torchrun.empty()) << "no torchrun beside " << audit::testing::python()
                                 << " (make setup installs torch into the venv)";
  const audit::testing::TempDir dir("audit_launch_fixture");
  const std::string out = dir.file("ckpt");
  const std::string script = audit::testing::source_dir() + "/tests/golden/launch_train.py";
  // --standalone: a rendezvous on a free local port, so parallel tests do not collide.
  const std::string cmd = "cd " + shell_quote(dir.path()) +
                          " && PYTHONUNBUFFERED=1 timeout 300 " + shell_quote(torchrun) +
                          " --standalone --nproc_per_node 2 " + shell_quote(script) +
                          " --output_dir " + shell_quote(out) + " --steps 10 > stdout.txt 2> stderr.txt";
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = audit::testing::run_command(cmd);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "torchrun --nproc_per_node 2 launch_train.py: %.1f s\n", secs);
  const std::string stdout_text = audit::testing::read_file(dir.file("stdout.txt"));
  const std::string stderr_text = audit::testing::read_file(dir.file("stderr.txt"));
  ASSERT_EQ(r.exit_code, 0) << stdout_text << "\n" << stderr_text;

  EXPECT_NE(stdout_text.find("launch_train: rank 0 of 2"), std::string::npos) << stdout_text;
  EXPECT_NE(stdout_text.find("launch_train: rank 1 of 2"), std::string::npos) << stdout_text;

  auto parser = audit::train_logs::LogParser::hf_trainer();
  const auto pts = audit::train_logs::parse_text(parser, stdout_text);
  ASSERT_EQ(pts.size(), 10u) << "one log dict per step (logging_steps=1), rank 0 only\n"
                             << stdout_text;
  for (size_t i = 0; i < pts.size(); ++i) {
    EXPECT_EQ(pts[i].step, int64_t(i + 1));
    EXPECT_TRUE(std::isfinite(pts[i].loss));
    EXPECT_TRUE(std::isfinite(pts[i].lr));
  }
  EXPECT_LT(pts.front().loss, std::log(128.0) + 0.5) << "a fresh model starts near ln(vocab)";
  EXPECT_LT(pts.back().loss, pts.front().loss - 0.2) << "the counting task is learnt";
  EXPECT_GT(pts.front().lr, pts.back().lr) << "linear decay";
  ASSERT_TRUE(parser.summary().is_object()) << "the train_runtime/train_loss dict";
  EXPECT_GT(parser.summary()["train_runtime"].get<double>(), 0.0);

  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"})
    EXPECT_TRUE(is_file(out + "/" + f)) << f;
  const auto ck = audit::hf::open_checkpoint(out);
  EXPECT_EQ(ck.config.model.arch, "qwen2");
  EXPECT_FALSE(ck.sharded);
  EXPECT_NO_THROW(audit::hf::check_tensors(ck));
  EXPECT_GT(ck.parameter_count(), 0);
}
