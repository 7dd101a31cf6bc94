// The layering rule of docs/architecture.md: every module is one folder and one library target,
// and a module includes only headers of the modules it links (its DEPS in audit_module(), and
// theirs). CMake writes the modules and their DEPS to <build>/modules.txt; this test reads every
// #include of every module's files and fails on one that reaches a module not below it, naming
// the file, the line, the header and both modules. It also fails on a cycle in the DEPS and on a
// source file that belongs to no module.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/support.h"

namespace {
namespace fs = std::filesystem;
using audit::testing::write_file;

struct Module {
  std::string name, dir;
  std::vector<std::string> deps;
};

// The top-level folders' layers, bottom (0) up: a folder's modules use modules of their own
// folder or of a lower layer only.
using Layers = std::map<std::string, int>;

// modules.txt: "layer FOLDER..." lines bottom to top, then "NAME DIR DEPS..." per module.
std::vector<Module> read_modules(const fs::path& file, Layers& layers) {
  std::ifstream in(file);
  std::vector<Module> out;
  int next_layer = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream s(line);
    Module m;
    if (!(s >> m.name >> m.dir)) continue;
    if (m.name == "layer") {
      for (std::string f = m.dir;; ) {
        layers[f] = next_layer;
        if (!(s >> f)) break;
      }
      ++next_layer;
      continue;
    }
    for (std::string d; s >> d;)
      if (d.rfind("audit_", 0) == 0) m.deps.push_back(d);
    out.push_back(m);
  }
  return out;
}

std::string top_folder(const std::string& dir) { return dir.substr(0, dir.find('/')); }

// "" when a module of folder `from` may use one of folder `to`, else why not.
std::string folder_problem(const Layers& layers, const std::string& from, const std::string& to) {
  if (from == to) return "";
  const auto a = layers.find(from), b = layers.find(to);
  if (a == layers.end() || b == layers.end()) return "folder " + (a == layers.end() ? from : to) + " has no layer";
  if (b->second < a->second) return "";
  return "folder " + from + "/ (layer " + std::to_string(a->second) + ") uses " + to + "/ (layer " +
         std::to_string(b->second) + "), " + (b->second == a->second ? "beside" : "above") + " it";
}

// Problems found in the tree at root for these modules; empty when the layering holds.
std::vector<std::string> check_layering(const fs::path& root, const std::vector<Module>& mods,
                                        const Layers& layers) {
  std::vector<std::string> problems;
  std::map<std::string, const Module*> by_name;
  for (const auto& m : mods) by_name[m.name] = &m;
  for (const auto& m : mods)
    for (const auto& d : m.deps)
      if (by_name.count(d)) {
        const auto why = folder_problem(layers, top_folder(m.dir), top_folder(by_name[d]->dir));
        if (!why.empty()) problems.push_back(m.name + " DEPS " + d + ": " + why);
      }

  // Cycles in the declared DEPS (depth-first with colours), then each module's closure.
  std::map<std::string, int> colour;
  std::function<void(const std::string&, std::vector<std::string>&)> visit =
      [&](const std::string& n, std::vector<std::string>& path) {
        colour[n] = 1;
        path.push_back(n);
        if (by_name.count(n))
          for (const auto& d : by_name[n]->deps) {
            if (colour[d] == 1) {
              std::string cyc;
              for (auto it = std::find(path.begin(), path.end(), d); it != path.end(); ++it)
                cyc += *it + " -> ";
              problems.push_back("DEPS cycle: " + cyc + d);
            } else if (colour[d] == 0) {
              visit(d, path);
            }
          }
        path.pop_back();
        colour[n] = 2;
      };
  for (const auto& m : mods) {
    std::vector<std::string> path;
    if (colour[m.name] == 0) visit(m.name, path);
  }
  std::map<std::string, std::set<std::string>> below;
  std::function<const std::set<std::string>&(const std::string&)> closure =
      [&](const std::string& n) -> const std::set<std::string>& {
    auto it = below.find(n);
    if (it != below.end()) return it->second;
    auto& out = below[n];
    if (by_name.count(n))
      for (const auto& d : by_name[n]->deps) {
        out.insert(d);
        if (!below.count(d) || d != n) {
          auto sub = closure(d);
          out.insert(sub.begin(), sub.end());
        }
      }
    return out;
  };
  for (const auto& p : problems)
    if (p.rfind("DEPS cycle", 0) == 0) return problems;  // no closure to check against

  auto module_of = [&](const fs::path& rel_dir) -> const Module* {
    const Module* best = nullptr;
    for (const auto& m : mods) {
      const std::string d = rel_dir.generic_string();
      if ((d == m.dir || d.rfind(m.dir + "/", 0) == 0) && (!best || m.dir.size() > best->dir.size()))
        best = &m;
    }
    return best;
  };

  const std::regex include_re(R"re(^\s*#\s*include\s*"([^"]+)")re");
  for (const auto& [top, layer] : layers) {
    if (!fs::exists(root / top)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root / top)) {
      const auto ext = e.path().extension().string();
      if (!e.is_regular_file() || (ext != ".h" && ext != ".cpp" && ext != ".cu" && ext != ".cuh"))
        continue;
      const fs::path rel = fs::relative(e.path(), root);
      const Module* self = module_of(rel.parent_path());
      if (self == nullptr || self->dir != rel.parent_path().generic_string()) {
        problems.push_back(rel.generic_string() + ": in no module folder (each module is one "
                                                  "folder with its own audit_module target)");
        continue;
      }
      const auto& allowed = closure(self->name);
      std::ifstream in(e.path());
      int lineno = 0;
      for (std::string line; std::getline(in, line);) {
        ++lineno;
        std::smatch m;
        if (!std::regex_search(line, m, include_re)) continue;
        const fs::path header = m[1].str();
        const std::string first = *header.begin();
        if (!layers.count(first)) continue;  // tests/, third-party or relative: not a module header
        const Module* target = module_of(header.parent_path());
        if (target == nullptr) {
          problems.push_back(rel.generic_string() + ":" + std::to_string(lineno) + ": includes " +
                             header.generic_string() + ", which is in no module");
        } else if (const auto why = folder_problem(layers, top, first); !why.empty()) {
          problems.push_back(rel.generic_string() + ":" + std::to_string(lineno) + ": includes " +
                             header.generic_string() + ": " + why);
        } else if (target != self && !allowed.count(target->name)) {
          problems.push_back(rel.generic_string() + ":" + std::to_string(lineno) + ": " +
                             self->name + " includes " + header.generic_string() + " of " +
                             target->name + ", which " + self->name +
                             " does not link (a back edge, or a DEPS entry missing)");
        }
      }
    }
  }
  return problems;
}

const Layers kTestLayers = {{"common", 0}, {"ledger", 1}, {"reproduce", 2}};

TEST(Layering, EveryIncludeReachesOnlyModulesBelow) {
  const fs::path modules = fs::path(audit::testing::build_dir()) / "modules.txt";
  ASSERT_TRUE(fs::exists(modules)) << modules << " is written by CMake at configure time";
  Layers layers;
  const auto mods = read_modules(modules, layers);
  ASSERT_GE(mods.size(), 20u) << "expected one module per folder";
  ASSERT_GE(layers.size(), 7u) << "expected every top-level source folder on a layer";
  const auto problems = check_layering(audit::testing::source_dir(), mods, layers);
  std::string all;
  for (const auto& p : problems) all += "  " + p + "\n";
  EXPECT_TRUE(problems.empty()) << problems.size() << " layering problems:\n" << all;
}

// The checker itself finds a back edge, a cycle and a stray file in a tree made here.
TEST(Layering, CheckerNamesABackEdgeACycleAndAStrayFile) {
  const audit::testing::TempDir tmp("layering");
  const fs::path root = tmp.path();
  fs::create_directories(root / "reproduce/low");
  fs::create_directories(root / "reproduce/high");
  write_file(tmp.file("reproduce/low/low.h"), "#include \"reproduce/high/high.h\"\n");
  write_file(tmp.file("reproduce/high/high.h"), "#include \"reproduce/low/low.h\"\n");
  std::vector<Module> mods = {{"audit_low", "reproduce/low", {}},
                              {"audit_high", "reproduce/high", {"audit_low"}}};
  auto p = check_layering(root, mods, kTestLayers);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("reproduce/low/low.h:1: audit_low includes reproduce/high/high.h of audit_high"),
            std::string::npos)
      << p[0];

  mods[0].deps = {"audit_high"};
  p = check_layering(root, mods, kTestLayers);
  ASSERT_FALSE(p.empty());
  EXPECT_NE(p[0].find("DEPS cycle"), std::string::npos) << p[0];

  mods[0].deps.clear();
  write_file(tmp.file("reproduce/low/low.h"), "// nothing\n");
  write_file(tmp.file("reproduce/stray.cpp"), "// nothing\n");
  p = check_layering(root, mods, kTestLayers);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("reproduce/stray.cpp: in no module folder"), std::string::npos) << p[0];
}

// Between folders: an include from a lower folder to a higher one is named, even when the
// modules' DEPS would allow it, and so is the DEPS entry itself.
TEST(Layering, CheckerNamesAnIncludeThatRunsUpBetweenFolders) {
  const audit::testing::TempDir tmp("layering_folders");
  const fs::path root = tmp.path();
  fs::create_directories(root / "ledger/store");
  fs::create_directories(root / "reproduce/recipe");
  write_file(tmp.file("ledger/store/store.h"), "#include \"reproduce/recipe/recipe.h\"\n");
  write_file(tmp.file("reproduce/recipe/recipe.h"), "// nothing\n");
  const std::vector<Module> mods = {{"audit_recipe", "reproduce/recipe", {}},
                                    {"audit_ledger", "ledger/store", {"audit_recipe"}}};
  const auto p = check_layering(root, mods, kTestLayers);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_NE(p[0].find("audit_ledger DEPS audit_recipe: folder ledger/ (layer 1) uses reproduce/ "
                      "(layer 2), above it"),
            std::string::npos)
      << p[0];
  EXPECT_NE(p[1].find("ledger/store/store.h:1: includes reproduce/recipe/recipe.h: folder ledger/"),
            std::string::npos)
      << p[1];
}

}  // namespace
