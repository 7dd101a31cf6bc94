// `audit bench comm` (cmd_bench_comm.cpp): collectives measured over several ranks against the
// replay's communication model, and the scaling of training from one process to several.
#pragma once

#include "reproduce/cli/cli.h"  // GlobalOptions

namespace audit::cli {

// Adds `comm` under the `bench` parent (add_bench_command calls it). Its hidden --rank-dir turns
// the process into one rank of the group the verb started.
void add_bench_comm_command(CLI::App& bench, GlobalOptions& g);

}  // namespace audit::cli
