// recipes/s1-launch.toml: the authors' torchrun command agrees with the recipe's own [train]
// section (the published hyperparameters, once) and with its [launch] keys. Read as TOML here;
// loading it through the recipe parser is ShippedRecipes' business.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include <toml++/toml.h>

#include "tests/support/support.h"

namespace {
// "--key=value" and "--key value" flags of an argv, by key.
std::map<std::string, std::string> flags(const toml::array& argv) {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string a = argv[i].value_or(std::string());
    if (a.rfind("--", 0) != 0) continue;
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      out[a.substr(2, eq - 2)] = a.substr(eq + 1);
    } else if (i + 1 < argv.size()) {
      const std::string next = argv[i + 1].value_or(std::string());
      if (next.rfind("--", 0) != 0) out[a.substr(2)] = next;
    }
  }
  return out;
}
}  // namespace

TEST(S1LaunchRecipe, CommandAgreesWithTrainSection) {
  const auto t = toml::parse_file(audit::testing::source_dir() + "/recipes/s1-launch.toml");
  const toml::array* argv = t["launch"]["command"].as_array();
  ASSERT_NE(argv, nullptr) << "[launch] command is an argv array";
  ASSERT_GT(argv->size(), 2u);
  EXPECT_EQ((*argv)[0].value_or(std::string()), "torchrun");
  const auto f = flags(*argv);
  auto num = [&](const char* k) { return std::stod(f.at(k)); };
  EXPECT_DOUBLE_EQ(num("learning_rate"), t["train"]["lr"].value_or(0.0));
  EXPECT_DOUBLE_EQ(num("num_train_epochs"), t["train"]["epochs"].value_or(0.0));
  EXPECT_DOUBLE_EQ(num("weight_decay"), t["train"]["weight_decay"].value_or(0.0));
  EXPECT_DOUBLE_EQ(num("adam_beta1"), t["train"]["beta1"].value_or(0.0));
  EXPECT_DOUBLE_EQ(num("adam_beta2"), t["train"]["beta2"].value_or(0.0));
  EXPECT_DOUBLE_EQ(num("warmup_ratio"), t["train"]["warmup_frac"].value_or(0.0));
  EXPECT_DOUBLE_EQ(num("block_size"), t["train"]["block_size"].value_or(0.0));
  EXPECT_DOUBLE_EQ(num("per_device_train_batch_size"), t["train"]["micro_batch"].value_or(0.0));
  EXPECT_EQ(f.at("lr_scheduler_type"), t["train"]["schedule"].value_or(std::string()));
  EXPECT_EQ(f.at("model_name"), "Qwen/" + t["base"]["name"].value_or(std::string()));
  EXPECT_EQ(f.at("bf16"), "True");
  EXPECT_EQ(f.at("fsdp"), "full_shard auto_wrap");
  // The checkpoint the command writes is the one [launch] evaluates; one log dict per step.
  EXPECT_EQ(f.at("output_dir"), t["launch"]["output_dir"].value_or(std::string()));
  EXPECT_EQ(f.at("logging_steps"), "1");
  EXPECT_EQ(t["launch"]["log_format"].value_or(std::string()), "hf-trainer");
  EXPECT_EQ(f.at("push_to_hub"), "false") << "an audit uploads nothing";
  EXPECT_GT(t["launch"]["max_gpu_hours"].value_or(0.0), 0.0);
  EXPECT_GT(t["launch"]["max_usd"].value_or(0.0), 0.0);
}
