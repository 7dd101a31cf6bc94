// `audit estimate RECIPE [--set k=v]... [--json]`: the paper-only audit of a claim, in well under
// a second and without training: compute of the claimed run, stated GPU-hours, implied
// utilization with its plausibility verdict, claimed cost against price bands, and the full cost
// with the base model and the declared extras (reproduce/estimate/estimate.h).
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>

#include "reproduce/cli/cli.h"
#include "reproduce/estimate/estimate.h"  // estimate_recipe
#include "reproduce/recipe/recipe.h"    // load_recipe

namespace audit::cli {

void add_estimate_command(CLI::App& app, GlobalOptions& g) {
  auto* cmd = app.add_subcommand("estimate", "Paper-only compute and cost audit of a recipe (no training)");
  auto recipe_path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("recipe", *recipe_path, "Recipe file (TOML), e.g. recipes/s1.toml")->required();
  cmd->add_flag("--json", *as_json,
                "Print the estimate as JSON to stdout (lines, cost items, totals, prices)");
  add_recipe_options(*cmd, g);
  add_out_option(*cmd, g, "Also write the JSON estimate to this file");
  cmd->footer(
      "Prints, each line marked measured | declared | estimated with its formula and inputs:\n"
      "  parameters counted from [base]; tokens D of the claimed run (SFT: select_n x epochs x\n"
      "  mean length band); compute 6*N*D (8*N*D with recompute); the GPU-hours the claim states;\n"
      "  the utilization they imply (of the GPU's bf16 dense peak) and a verdict: over 100%\n"
      "  impossible, over 60% implausible; the claimed cost against the GPU-hour price band; the\n"
      "  base model's pretraining (6*N*D at an MFU band and price band); the declared extras;\n"
      "  and three totals: claimed, final run as stated, full cost.\n"
      "Prices are the shipped bands (docs/cost-model.md) unless the recipe's [prices] or --set\n"
      "prices.KEY=[low,mid,high] override them.\n\n"
      "Examples:\n"
      "  audit estimate recipes/s1.toml\n"
      "  audit estimate recipes/deepseek-v3.toml --json\n"
      "  audit estimate recipes/sky-t1.toml --set 'prices.gpu_hour_usd=[2.0,2.5,3.0]'\n\n"
      "Exit codes: 0 ok, 2 bad recipe (file, key and reason on stderr), 3 unexpected failure\n"
      "(e.g. --out cannot be written).");
  cmd->callback([recipe_path, as_json, &g] {
    run_and_exit("estimate", [&] {
      const recipe::Recipe r = recipe::load_recipe(*recipe_path, recipe::with_seed(g.sets, g.seed));
      const reproduce::Estimate e = reproduce::estimate_recipe(r);
      const std::string json = e.to_json().dump(2);
      if (*as_json) {
        std::printf("%s\n", json.c_str());
      } else {
        std::fputs(e.to_text().c_str(), stdout);
      }
      if (!g.out.empty()) {
        std::FILE* f = std::fopen(g.out.c_str(), "wb");
        if (!f) throw std::runtime_error("cannot write " + g.out + " (check the folder exists)");
        const bool ok = std::fwrite(json.data(), 1, json.size(), f) == json.size();
        if (std::fclose(f) != 0 || !ok) throw std::runtime_error("cannot write " + g.out);
      }
      return kExitOk;
    });
  });
}

}  // namespace audit::cli
