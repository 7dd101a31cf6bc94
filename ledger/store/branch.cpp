// The run's branch from the CI's environment, stored as an event (see branch.h).
#include "ledger/store/branch.h"

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "ledger/store/event_keys.h"
#include "ledger/store/ledger.h"

namespace audit::ledger {
namespace {

// The first of `names` set to a non-empty value: {value, name}.
std::pair<std::string, std::string> first_set(std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (const char* v = std::getenv(n); v != nullptr && *v != '\0') return {v, n};
  return {"", ""};
}

}  // namespace

std::optional<BranchInfo> branch_from_env() {
  auto [branch, from] =
      first_set({"AUDIT_BRANCH", "GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_BRANCH",
                 "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "BUILDKITE_BRANCH"});
  if (branch.empty()) return std::nullopt;
  auto [commit, commit_from] =
      first_set({"AUDIT_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA", "BUILDKITE_COMMIT"});
  return BranchInfo{branch, from, commit, commit_from};
}

void record_branch(Ledger& l, int64_t run_id, const BranchInfo& b) {
  nlohmann::json v = {{"branch", b.branch}, {"from", b.from}};
  if (!b.commit.empty()) {
    v["commit"] = b.commit;
    v["commit_from"] = b.commit_from;
  }
  l.append_event(run_id, 0, keys::kPoint, keys::kGitBranch, v, "ledger/store/branch.cpp");
}

std::optional<BranchInfo> record_branch_from_env(Ledger& l, int64_t run_id) {
  auto b = branch_from_env();
  if (b) record_branch(l, run_id, *b);
  return b;
}

std::optional<BranchInfo> run_branch(const Ledger& l, int64_t run_id) {
  for (const auto& e : l.events(run_id)) {
    if (e.key != keys::kGitBranch) continue;
    auto v = nlohmann::json::parse(e.value, nullptr, false);
    if (!v.is_object() || !v.contains("branch") || !v["branch"].is_string()) continue;
    BranchInfo b;
    b.branch = v["branch"].get<std::string>();
    b.from = v.value("from", "");
    b.commit = v.value("commit", "");
    b.commit_from = v.value("commit_from", "");
    return b;
  }
  return std::nullopt;
}

}  // namespace audit::ledger
