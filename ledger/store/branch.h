// The branch a run was made on, for `audit dashboard --baseline-branch`. RunInfo.git_commit is
// the commit audit itself was built from (configure time); the branch and commit of the code
// under audit come from the CI's environment when the run starts, and are stored as one
// "git_branch" event of the run (chained like every event; no schema change). Variables, first
// set and non-empty wins: AUDIT_BRANCH (set it yourself anywhere), GITHUB_HEAD_REF (GitHub pull
// requests: the source branch), GITHUB_REF_NAME (GitHub pushes), CI_COMMIT_BRANCH (GitLab branch
// pipelines), CI_MERGE_REQUEST_SOURCE_BRANCH_NAME (GitLab merge requests), BUILDKITE_BRANCH.
// Commit: AUDIT_COMMIT, GITHUB_SHA, CI_COMMIT_SHA, BUILDKITE_COMMIT.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace audit::ledger {

class Ledger;

struct BranchInfo {
  std::string branch;       // e.g. "main"
  std::string from;         // the variable it was read from, e.g. "GITHUB_REF_NAME"
  std::string commit;       // the CI's commit ("" when no variable names one)
  std::string commit_from;  // its variable ("" when none)
};

// The branch (and commit) from the environment variables above; nullopt when none is set.
std::optional<BranchInfo> branch_from_env();

// Appends the run's "git_branch" event. A run has at most one; the reader takes the first.
void record_branch(Ledger& l, int64_t run_id, const BranchInfo& b);

// Records branch_from_env() when it finds one; returns what it recorded.
std::optional<BranchInfo> record_branch_from_env(Ledger& l, int64_t run_id);

// The branch stored with a run (its first "git_branch" event); nullopt when none was recorded.
std::optional<BranchInfo> run_branch(const Ledger& l, int64_t run_id);

}  // namespace audit::ledger
