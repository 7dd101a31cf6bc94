// The executive HTML report of one run, read from the ledger alone: a one-line verdict and the
// three totals (claimed, final run as measured, full cost), then the charts (cost waterfall, ID vs
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
// The page is one self-contained file: inline CSS and inline SVG, no script, no external font or
// image, a Content-Security-Policy that forbids loading anything. Every text from the recipe or
// the data is HTML-escaped. Output is deterministic: the same ledger rows give the same bytes
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
