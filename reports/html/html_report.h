// The executive HTML report of one run, read from the ledger alone: a one-line verdict and the
// three totals (claimed, final run as measured, full cost), then the charts (cost waterfall, ID vs
// OOD accuracy with Wilson whiskers, accuracy vs thinking budget, loss curves per stage), then the
// evidence (every cost line with provenance, formula, inputs and source; stage metering; eval
// cells; selection counts; decontamination; the recipe and its SHA-256; ledger verification;
// host, commit, device, status).
//
// The page is one self-contained file: inline CSS and inline SVG, no script, no external font or
// image, a Content-Security-Policy that forbids loading anything. Every text from the recipe or
// the data is HTML-escaped. Output is deterministic: the same ledger rows give the same bytes
// (no clock is read; times shown are the ledger's).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ledger/store/ledger.h"  // Ledger, Verdict

namespace audit::reports {

// Renders the report of run_id. Reads only. Verdicts are the ones stored in the ledger
// (current_verdicts); a claim with no stored verdict is computed and the page says it is not
// stored. Throws ledger::LedgerError when the run does not exist.
std::string render_report(const ledger::Ledger& l, int64_t run_id);

// Stores the run's verdicts (store_verdicts, idempotent), renders the report and writes it to
// out_path (throws std::runtime_error naming the file when it cannot be written). Returns the
// verdicts shown.
std::vector<ledger::Verdict> write_report(ledger::Ledger& l, int64_t run_id,
                                          const std::string& out_path);

}  // namespace audit::reports
