// Tests of the recipe's [launch] and [launch.eval] sections (reproduce/recipe): what they read
// (argv or a shell string, workdir relative to the recipe, env, durations, caps), that the
// resolved TOML round-trips, and every bad input refused with file:line and the key, also
// through `audit check` (exit 2, nothing on stdout).
#include <sys/stat.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/errors.h"
#include "reproduce/recipe/recipe.h"
#include "tests/support/support.h"

using audit::InputError;
using audit::testing::TempDir;
using namespace audit::recipe;

namespace {

const char* kClaim = "[claim]\nname = \"launch\"\n\n";

// Writes the recipe into dir (with a work/ folder beside it) and loads it.
Recipe load_in(const TempDir& dir, const std::string& launch) {
  ::mkdir(dir.file("work").c_str(), 0755);
  const std::string path = dir.file("r.toml");
  audit::testing::write_file(path, kClaim + launch);
  return load_recipe(path);
}

std::string error_in(const TempDir& dir, const std::string& launch) {
  try {
    load_in(dir, launch);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InputError for:\n" << launch;
  return "";
}

}  // namespace

TEST(LaunchRecipe, AbsentSectionIsNotSetAndNotWritten) {
  Recipe r = parse_recipe_text(kClaim, "x.toml");
  EXPECT_FALSE(r.launch.set);
  EXPECT_EQ(r.resolved_toml.find("[launch"), std::string::npos);
}

TEST(LaunchRecipe, ReadsEveryKey) {
  TempDir dir("launch_recipe");
  Recipe r = load_in(dir,
                     "[launch]\n"
                     "command = [\"torchrun\", \"--nproc_per_node\", \"2\", \"train.py\"]\n"
                     "workdir = \"work\"\n"
                     "env = { OMP_NUM_THREADS = \"1\", \"WANDB_MODE\" = \"offline\" }\n"
                     "output_dir = \"ckpts/final\"\n"
                     "log_format = \"regex\"\n"
                     "log_regex = 'step (?<step>\\d+) loss (?<loss>[0-9.]+)'\n"
                     "timeout = \"1h30m\"\n"
                     "grace = 10\n"
                     "max_gpu_hours = 2.5\n"
                     "max_usd = 40\n"
                     "[launch.eval]\n"
                     "command = \"lm_eval --model hf --output_path out\"\n"
                     "timeout = 600\n"
                     "results = \"out\"\n");
  const LaunchSection& l = r.launch;
  EXPECT_TRUE(l.set);
  EXPECT_EQ(l.command, (std::vector<std::string>{"torchrun", "--nproc_per_node", "2", "train.py"}));
  EXPECT_EQ(launch_workdir(r), dir.file("work"));
  EXPECT_EQ(l.env.at("OMP_NUM_THREADS"), "1");
  EXPECT_EQ(l.env.at("WANDB_MODE"), "offline");
  EXPECT_EQ(l.output_dir, "ckpts/final");
  EXPECT_EQ(l.log_format, "regex");
  EXPECT_DOUBLE_EQ(l.timeout, 5400);
  EXPECT_DOUBLE_EQ(l.grace, 10);
  EXPECT_DOUBLE_EQ(l.max_gpu_hours, 2.5);
  EXPECT_DOUBLE_EQ(l.max_usd, 40);
  EXPECT_TRUE(l.eval.set);
  EXPECT_EQ(l.eval.command,
            (std::vector<std::string>{"sh", "-c", "lm_eval --model hf --output_path out"}));
  EXPECT_EQ(launch_eval_workdir(r), dir.file("work"));
  EXPECT_DOUBLE_EQ(l.eval.timeout, 600);
  EXPECT_EQ(l.eval.results, "out");
  // The resolved recipe reads back to the same hash.
  Recipe again = parse_recipe_text(r.resolved_toml, dir.file("r.toml"));
  EXPECT_EQ(again.sha256, r.sha256) << r.resolved_toml;
  EXPECT_TRUE(again.launch.eval.set);
  EXPECT_NE(r.resolved_toml.find("[launch.eval]"), std::string::npos);
}

TEST(LaunchRecipe, DefaultsAndTheRecipesFolder) {
  TempDir dir("launch_recipe");
  Recipe r = load_in(dir, "[launch]\ncommand = \"python train.py\"\n");
  EXPECT_EQ(r.launch.command, (std::vector<std::string>{"sh", "-c", "python train.py"}));
  EXPECT_EQ(launch_workdir(r), dir.path());
  EXPECT_EQ(r.launch.log_format, "hf-trainer");
  EXPECT_DOUBLE_EQ(r.launch.grace, 30);
  EXPECT_DOUBLE_EQ(r.launch.timeout, 0);
  EXPECT_DOUBLE_EQ(r.launch.max_usd, 0);
  EXPECT_FALSE(r.launch.eval.set);
  Recipe again = parse_recipe_text(r.resolved_toml, dir.file("r.toml"));
  EXPECT_EQ(again.sha256, r.sha256) << r.resolved_toml;
}

TEST(LaunchRecipe, SetOverridesLaunchKeys) {
  TempDir dir("launch_recipe");
  ::mkdir(dir.file("work").c_str(), 0755);
  audit::testing::write_file(dir.file("r.toml"), std::string(kClaim) + "[launch]\ncommand = [\"true\"]\n");
  Recipe r = load_recipe(dir.file("r.toml"), {"launch.timeout=2h", "launch.max_usd=5",
                                               "launch.command=python train.py --fast"});
  EXPECT_DOUBLE_EQ(r.launch.timeout, 7200);
  EXPECT_DOUBLE_EQ(r.launch.max_usd, 5);
  EXPECT_EQ(r.launch.command, (std::vector<std::string>{"sh", "-c", "python train.py --fast"}));
}

TEST(LaunchRecipe, Durations) {
  double s = 0;
  EXPECT_TRUE(parse_duration("90m", &s));
  EXPECT_DOUBLE_EQ(s, 5400);
  EXPECT_TRUE(parse_duration("2h", &s));
  EXPECT_DOUBLE_EQ(s, 7200);
  EXPECT_TRUE(parse_duration("30s", &s));
  EXPECT_DOUBLE_EQ(s, 30);
  EXPECT_TRUE(parse_duration("1.5d", &s));
  EXPECT_DOUBLE_EQ(s, 129600);
  EXPECT_TRUE(parse_duration("45", &s));
  EXPECT_DOUBLE_EQ(s, 45);
  for (const char* bad : {"", "m", "10x", "-5m", "1h 30", "ten"}) EXPECT_FALSE(parse_duration(bad, &s)) << bad;
}

// Each bad [launch]: the message holds "r.toml:LINE:" and the key (line 4 is [launch]'s first key).
struct BadCase {
  const char* launch;
  const char* expect;
};

TEST(LaunchRecipe, BadInputNamesLineAndKey) {
  const std::vector<BadCase> cases = {
      {"[launch]\ncommand = []\n", "r.toml:5:11: 'launch.command': [launch] needs a non-empty command"},
      {"[launch]\ncommand = \"  \"\n", "r.toml:5:11: 'launch.command': [launch] needs a non-empty command"},
      {"[launch]\nworkdir = \"work\"\n", "r.toml:4:1: 'launch.command': [launch] needs a non-empty command"},
      {"[launch]\ncommand = [\"\", \"x\"]\n", "r.toml:5:11: 'launch.command': the program name (the first element) is empty"},
      {"[launch]\ncommand = 3\n", "r.toml:5:11: 'launch.command': expected a string (run by sh -c) or an array of strings"},
      {"[launch]\ncommand = [\"a\", 1]\n", "'launch.command[1]': expected a string"},
      {"[launch]\ncommand = [\"true\"]\nlog_format = \"regex\"\n", "r.toml:6:14: 'launch.log_regex': log_format = \"regex\" needs log_regex"},
      {"[launch]\ncommand = [\"true\"]\nlog_format = \"regex\"\nlog_regex = \"loss (?<loss>[0-9.]+\"\n",
       "r.toml:7:13: 'launch.log_regex': invalid regular expression at offset 20: missing closing parenthesis"},
      {"[launch]\ncommand = [\"true\"]\nlog_format = \"regex\"\nlog_regex = \"loss ([0-9.]+)\"\n",
       "r.toml:7:13: 'launch.log_regex': the pattern needs a named group for the loss"},
      {"[launch]\ncommand = [\"true\"]\nlog_regex = \"(?<loss>x)\"\n", "'launch.log_regex': log_regex is only read with log_format = \"regex\""},
      {"[launch]\ncommand = [\"true\"]\nlog_format = \"json\"\n", "r.toml:6:14: 'launch.log_format': invalid value \"json\""},
      {"[launch]\ncommand = [\"true\"]\nmax_usd = 0\n", "r.toml:6:11: 'launch.max_usd': a cap must be positive"},
      {"[launch]\ncommand = [\"true\"]\nmax_gpu_hours = -1\n", "r.toml:6:17: 'launch.max_gpu_hours': a cap must be positive"},
      {"[launch]\ncommand = [\"true\"]\ntimeout = 0\n", "r.toml:6:11: 'launch.timeout': must be a positive duration"},
      {"[launch]\ncommand = [\"true\"]\ntimeout = \"soon\"\n", "r.toml:6:11: 'launch.timeout': cannot read \"soon\" as a duration"},
      {"[launch]\ncommand = [\"true\"]\ngrace = -2\n", "r.toml:6:9: 'launch.grace': out of range"},
      {"[launch]\ncommand = [\"true\"]\nenv = { A = 1 }\n", "'launch.env.A': expected a string, got integer 1"},
      {"[launch]\ncommand = [\"true\"]\nenv = \"A=1\"\n", "'launch.env': expected a table of strings"},
      {"[launch]\ncommand = [\"true\"]\ncomand = [\"x\"]\n", "r.toml:6:1: 'launch.comand': unknown key in [launch] (did you mean 'command'?)"},
      {"[[launch]]\ncommand = [\"true\"]\n", "'launch': expected a table [launch], got array"},
      {"[launch]\ncommand = [\"true\"]\n[launch.eval]\nresults = \"out\"\n", "'launch.eval.command': [launch.eval] needs a non-empty command"},
      {"[launch]\ncommand = [\"true\"]\n[launch.eval]\ncommand = \"lm_eval\"\n", "'launch.eval.results': [launch.eval] needs results"},
      {"[launch]\ncommand = [\"true\"]\n[launch.eval]\ncommand = \"lm_eval\"\nresults = \"o\"\nworkdir = \"gone\"\n",
       "r.toml:9:11: 'launch.eval.workdir': workdir"},
      {"[launch]\ncommand = [\"true\"]\n[launch.eval]\ncommand = \"lm_eval\"\nresults = \"o\"\noutput = 1\n",
       "'launch.eval.output': unknown key in [launch.eval]"},
  };
  TempDir dir("launch_recipe_bad");
  for (const auto& c : cases) {
    const std::string msg = error_in(dir, c.launch);
    EXPECT_NE(msg.find(c.expect), std::string::npos)
        << "recipe:\n" << c.launch << "expected: " << c.expect << "\nactual:   " << msg;
  }
}

// A workdir that is not a folder is the user's clone not given yet: the recipe still loads (check,
// estimate, a stored run's recipe), keeping the complete refusal for `audit run`
// (tests/run_launch_test.cpp checks the exit 2 there).
TEST(LaunchRecipe, MissingWorkdirIsKeptForTheRun) {
  TempDir dir("launch_recipe_workdir");
  for (const char* wd : {"nope", "r.toml"}) {
    const Recipe r = load_in(dir, std::string("[launch]\ncommand = [\"true\"]\nworkdir = \"") + wd + "\"\n");
    EXPECT_NE(r.launch.workdir_missing.find("is not an existing folder"), std::string::npos) << wd;
    EXPECT_EQ(r.launch.workdir_line, 6) << wd;
    EXPECT_EQ(r.launch.workdir_column, 11) << wd;
  }
  ::mkdir(dir.file("work").c_str(), 0755);
  EXPECT_EQ(load_in(dir, "[launch]\ncommand = [\"true\"]\nworkdir = \"work\"\n").launch.workdir_missing, "");
}

TEST(LaunchRecipe, AuditCheckRefusesWithExitTwo) {
  TempDir dir("launch_recipe_check");
  ::mkdir(dir.file("work").c_str(), 0755);
  const std::string bad = dir.file("bad.toml"), good = dir.file("good.toml");
  audit::testing::write_file(bad, std::string(kClaim) +
                                      "[launch]\ncommand = [\"true\"]\nlog_format = \"regex\"\n"
                                      "log_regex = \"step (?<step>\\\\d+)\"\n");
  audit::testing::write_file(good, std::string(kClaim) +
                                       "[launch]\ncommand = [\"true\"]\nworkdir = \"work\"\n");
  const std::string out = dir.file("out.txt"), err = dir.file("err.txt");
  auto r = audit::testing::run_audit("check '" + bad + "' > '" + out + "' 2> '" + err + "'");
  EXPECT_EQ(r.exit_code, 2);
  const std::string e = audit::testing::read_file(err);
  EXPECT_NE(e.find("bad.toml:7:13: 'launch.log_regex': the pattern needs a named group for the loss"),
            std::string::npos)
      << e;
  EXPECT_EQ(audit::testing::read_file(out), "");
  r = audit::testing::run_audit("check '" + good + "' > '" + out + "' 2> '" + err + "'");
  EXPECT_EQ(r.exit_code, 0) << audit::testing::read_file(err);
  EXPECT_NE(audit::testing::read_file(out).find("[launch]\ncommand = [\"true\"]\nworkdir = \"work\""),
            std::string::npos);
}
