#!/usr/bin/env bash
# The s1-mini audit on the CPU, end to end: run, verify the ledger, write the HTML report.
set -euo pipefail
BUILD=${1:-build}
mkdir -p demo
"$BUILD/audit" run recipes/s1-mini.toml --ledger demo/audit.db --device cpu
"$BUILD/audit" ledger verify --ledger demo/audit.db
"$BUILD/audit" report --ledger demo/audit.db --out reports/s1-mini.html
echo "demo: report written to reports/s1-mini.html"
