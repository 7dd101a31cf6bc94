// The report's section renderers, one per part of the page: each takes the ReportModel and returns
// its HTML, escaping every text with h(). html_report.cpp puts them in page order; the charts are
// in html_charts.cpp, the evidence in html_evidence.cpp, the replay in html_replay.cpp. None reads
// the ledger.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "reports/html/report_model.h"

namespace audit::reports::sections {

// Helpers shared by the sections.
std::string h(const std::string& s);                 // svg::escape
std::string badge(const std::string& word);          // a coloured pill: measured, supported, ...
std::string json_html(const nlohmann::json& j, int depth = 0);  // any JSON as escaped tables
std::string budget_label(int64_t budget);            // "unlimited" or the number
std::string cell_text(const std::optional<EvalCell>& c);  // "90.0% [87.3%–92.2%]" or "—"

// The top (html_report.cpp).
std::string head(const ReportModel& m);     // doctype, CSP, title, CSS
std::string header(const ReportModel& m);   // run, status, device, title, claim, recipe hash
std::string verification_alarm(const ReportModel& m);  // "" when the ledger verifies
std::string summary_line(const ReportModel& m);        // the one-line verdict
std::string totals(const ReportModel& m);   // claimed, final run, full cost
std::string nav();
std::string verdicts(const ReportModel& m);
std::string footer(const ReportModel& m);
std::string glossary();  // the terms the page uses, each with an id (#g-...) the page links to
// The page's one script (opens closed <details> for printing) and its CSP source
// ("sha256-<base64>"), which the page's Content-Security-Policy allows and nothing else.
std::string print_script();
std::string print_script_hash();

// The charts (html_charts.cpp).
std::string cost_waterfall(const ReportModel& m);
std::string generalization(const ReportModel& m);
std::string thinking_budget(const ReportModel& m);
std::string loss_curves(const ReportModel& m);

// The evidence (html_evidence.cpp).
std::string cost_lines(const ReportModel& m);
std::string stage_metering(const ReportModel& m);
std::string eval_cells(const ReportModel& m);
std::string trace_errors(const ReportModel& m);
std::string selection(const ReportModel& m);
std::string decontamination(const ReportModel& m);
// [launch] runs: the claimant's command, how it ended and what was metered (empty otherwise).
std::string launched_command(const ReportModel& m);
std::string recipe(const ReportModel& m);
std::string ledger_and_run(const ReportModel& m);
std::string other_artifacts(const ReportModel& m);  // "" when none

// The replay (html_replay.cpp): "" when the run has neither replay artifact.
std::string replay(const ReportModel& m);

}  // namespace audit::reports::sections
