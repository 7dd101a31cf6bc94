// The memory plan (reproduce/memory_plan) against a measured peak: one SFT step of the real
// trainer, in this test's own process (ctest runs each test alone), with the kernel's peak-RSS
// counter reset first (/proc/self/clear_refs "5"), so VmHWM is the step's peak.
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "reproduce/memory_plan/memory_plan.h"
#include "reproduce/model/model.h"
#include "reproduce/trainer/trainer.h"

namespace {

double status_kb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string k;
  double v = 0;
  std::string unit;
  while (in >> k) {
    if (k == key + ":") {
      in >> v;
      return v * 1024;
    }
    std::getline(in, unit);
  }
  return -1;
}

TEST(MemoryPlan, PredictsTheMeasuredPeakOfAnSftStep) {
  torch::set_num_threads(1);
  audit::settings::ModelSettings m;
  m.vocab = 8192;
  m.hidden = 256;
  m.layers = 4;
  m.heads = 8;
  m.kv_heads = 2;
  m.head_dim = 32;
  m.ffn = 1024;
  m.max_position = 512;
  const int64_t B = 4, T = 512;
  audit::plan::MemoryInputs in;
  in.model = m;
  in.micro_batch = B;
  in.longest_tokens = T;
  const auto plan = audit::plan::plan_memory(in);

  {
    std::ofstream reset("/proc/self/clear_refs");
    reset << "5";
    if (!reset.good()) GTEST_SKIP() << "cannot reset the peak RSS counter (/proc/self/clear_refs)";
  }
  const double before = status_kb("VmRSS");
  ASSERT_GT(before, 0);
  audit::model::CausalLM model{audit::model::ModelConfig(m)};
  audit::train::TrainConfig cfg;
  cfg.global_batch = B;
  cfg.micro_batch = B;
  cfg.max_steps = 1;
  cfg.epochs = 1;
  audit::train::TrainData data;
  data.tokens = torch::randint(0, m.vocab, {B, T}, torch::kLong);
  data.loss_mask = torch::ones({B, T}, torch::kUInt8);
  audit::train::Trainer t(model, cfg, data);
  t.step();
  const double peak = status_kb("VmHWM") - before;
  const double ratio = peak / plan.total_bytes;
  RecordProperty("planned_bytes", std::to_string(plan.total_bytes));
  RecordProperty("measured_peak_bytes", std::to_string(peak));
  std::printf("memory plan %.0f MB, measured peak %.0f MB (ratio %.2f)\n%s", plan.total_bytes / 1e6,
              peak / 1e6, ratio, plan.to_text().c_str());
  // The plan leaves out allocator slack and the kernels' scratch: within a factor of 1.5 either way.
  EXPECT_GT(ratio, 1 / 1.5) << plan.to_text();
  EXPECT_LT(ratio, 1.5) << plan.to_text();
}

}  // namespace
