#!/usr/bin/env python3
"""The `tokenizers` side of `audit tokenize --compare` and of bench/tokenizer_bench.cpp.

  tokenize_peer.py DIR LINES.json [--specials]
      Encodes each string of the JSON array in LINES.json with DIR/tokenizer.json
      (add_special_tokens as --specials says) and prints one JSON object:
      {"tokenizers": VERSION, "ids": [[...], ...]}.
  tokenize_peer.py --bench DIR TEXT_FILE
      Encodes every line of TEXT_FILE one call at a time (Tokenizer.encode, no encode_batch) on
      one thread and prints {"tokenizers": VERSION, "bytes": N, "lines": N, "seconds": S,
      "cpu_seconds": S, "tokens": N} (seconds: wall clock; cpu_seconds: this process's CPU time). Run with TOKENIZERS_PARALLELISM=false and RAYON_NUM_THREADS=1.
"""
import json
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def load(d):
    return Tokenizer.from_file(d if d.endswith(".json") else os.path.join(d, "tokenizer.json"))


def main():
    args = sys.argv[1:]
    if args and args[0] == "--bench":
        tok = load(args[1])
        with open(args[2], encoding="utf-8") as f:
            lines = f.read().split("\n")
        encode = tok.encode
        tokens = 0
        start, cpu_start = time.perf_counter(), time.process_time()
        for line in lines:
            tokens += len(encode(line, add_special_tokens=False).ids)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        nbytes = sum(len(line.encode("utf-8")) for line in lines)
        print(json.dumps({"tokenizers": tokenizers.__version__, "bytes": nbytes, "lines": len(lines),
                          "seconds": seconds, "cpu_seconds": cpu_seconds,
                          "tokens": tokens}))
        return
    specials = "--specials" in args
    args = [a for a in args if a != "--specials"]
    tok = load(args[0])
    with open(args[1], encoding="utf-8") as f:
        lines = json.load(f)
    ids = [tok.encode(line, add_special_tokens=specials).ids for line in lines]
    print(json.dumps({"tokenizers": tokenizers.__version__, "ids": ids}))


if __name__ == "__main__":
    main()
