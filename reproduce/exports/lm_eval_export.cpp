// The lm-eval export: a run's eval rows of one model as an lm-eval results JSON (the writer is
// suites/lm_eval's write_lm_eval_results; this picks the model and names it).
#include <set>

#include "common/errors.h"
#include "common/version.h"
#include "reproduce/exports/exports.h"
#include "suites/lm_eval/lm_eval.h"

namespace audit::exports {

std::string export_lm_eval(const ledger::Ledger& l, int64_t run_id, const std::string& model) {
  auto r = l.run(run_id);
  if (!r) throw ledger::LedgerError(l.path() + ": no run " + std::to_string(run_id));
  const auto evals = l.evals(run_id);
  if (evals.empty())
    throw InputError(l.path(), 0, 0, "evals",
                     "run " + std::to_string(run_id) + " stored no eval rows to export");
  std::vector<std::string> models;  // in first-seen order
  std::set<std::string> seen;
  for (const auto& e : evals)
    if (seen.insert(e.model).second) models.push_back(e.model);
  const std::string pick = !model.empty() ? model : seen.count("tuned") ? "tuned" : models[0];
  std::vector<ledger::EvalResult> rows;
  for (const auto& e : evals)
    if (e.model == pick) rows.push_back(e);
  if (rows.empty()) {
    std::string have;
    for (const auto& m : models) have += (have.empty() ? "" : ", ") + m;
    throw InputError(l.path(), 0, 0, "--model",
                     "run " + std::to_string(run_id) + " has no eval rows of model '" + pick +
                         "' (it has: " + have + ")");
  }
  lm_eval::WriteOptions o;
  o.model = "audit:" + r->name + "/" + pick;
  o.model_args = "ledger=" + l.path() + ",run=" + std::to_string(run_id) + ",model=" + pick;
  const std::string made_with = run_audit_version(l, run_id);
  o.audit_version = made_with.empty() ? std::string(version()) : made_with;
  o.git_hash = r->git_commit;
  o.date = r->started_at;
  return lm_eval::write_lm_eval_results(rows, o).dump(2) + "\n";
}

}  // namespace audit::exports
