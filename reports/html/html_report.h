// The executive HTML report of one run, read from the ledger alone: the verdict as a word and the
// four totals (claimed, final run as measured, marginal cost, full cost with the base model's
// declared share), then the charts (cost waterfall on a linear axis, and on a log axis too when
// the parts differ by orders of magnitude, ID vs
// OOD accuracy with Wilson whiskers, accuracy vs thinking budget, loss curves per stage), then the
// evidence (every cost line with provenance, formula, inputs and source; stage metering; eval
// cells; selection counts; decontamination; the recipe and its SHA-256; ledger verification;
// host, commit, device, status).
//
// Built in two steps: read_report_model() reads the run's rows into a ReportModel (numbers, no
// markup; report_model.h), then render_report() turns the model into the page, one renderer per
// section (sections.h). Nothing here writes to the ledger: verdicts not stored for the run are
// computed in memory and the page says so (`audit verdicts` stores them).
//
// The page is one self-contained file: inline CSS (light, dark and print palettes, WCAG AA) and
// inline SVG, no external font or image, a glossary of its terms, and one script (it opens the
// closed sections for printing) that the Content-Security-Policy allows by its hash while
// forbidding everything else. Every text from the recipe or the data is HTML-escaped. Output is deterministic: the same ledger rows give the same bytes
// (no clock is read; times shown are the ledger's).
#pragma once

#include <cstdint>
#include <string>

#include "ledger/store/ledger.h"         // Ledger
#include "reports/html/report_model.h"  // ReportModel, read_report_model

namespace audit::reports {

// The page of a model.
std::string render_report(const ReportModel& m);
// read_report_model + render_report. Reads only. Throws ledger::LedgerError when the run does not
// exist.
std::string render_report(const ledger::Ledger& l, int64_t run_id);

// Reads the model, renders it and writes the page to out_path (throws std::runtime_error naming
// the file when it cannot be written). Writes nothing to the ledger. Returns the model: its
// verdicts are the ones shown, verdicts_not_stored of them computed for the page only.
ReportModel write_report(const ledger::Ledger& l, int64_t run_id, const std::string& out_path);

}  // namespace audit::reports
