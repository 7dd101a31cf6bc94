#!/usr/bin/env python3
"""The transformers side of the checkpoint-loading benchmark (bench/checkpoint_bench.cpp).

Times AutoModelForCausalLM.from_pretrained(DIR, dtype=torch.float32) on the CPU REPEATS times
(transformers imported once, before the clock starts; each model freed before the next load) and
prints one JSON line: {"median_s", "times_s", "threads", "transformers", "torch"}.

Usage: python bench_load.py DIR REPEATS [THREADS]   (THREADS 0 or absent: torch's default)
"""
import gc
import json
import statistics
import sys
import time

import torch
import transformers


def main():
    path, repeats = sys.argv[1], int(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    if threads > 0:
        torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        times.append(time.perf_counter() - start)
        assert next(model.parameters()).dtype == torch.float32
        del model
        gc.collect()
    print(json.dumps({"median_s": statistics.median(times), "times_s": times,
                      "threads": torch.get_num_threads(),
                      "transformers": transformers.__version__, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
