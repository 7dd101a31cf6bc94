#!/usr/bin/env python3
"""The summary of `make check-gpu` (ci/check-gpu.sh): reads what each step left in its folder,
parses the key figures from its output, writes one JSON file and prints a table.

Layout read (written by ci/check-gpu.sh, or by a test):
  STEPS_DIR/environment         key=value lines: gpu_name, driver_version, cuda_version,
                                nvcc_version, torch_cuda_version, compute_capability, gpu_count,
                                git_commit, git_dirty, build_dir, budget_s
  STEPS_DIR/<step>/command      the shell command the step ran
  STEPS_DIR/<step>/exit_code    its exit status (124 or 137: killed at its time limit)
  STEPS_DIR/<step>/seconds      wall seconds
  STEPS_DIR/<step>/limit_s      its time limit
  STEPS_DIR/<step>/skipped      present when the step did not run: why
  STEPS_DIR/<step>/timed_out    present when the step never started because the check's time
                                budget was spent: why (counted as timed out)
  STEPS_DIR/<step>/output.log   stdout and stderr together
  STEPS_DIR/<step>/*.json       what the step wrote with --json-out / --benchmark_out

Exit status: 0 when no step failed or timed out, 1 otherwise, 2 on bad usage. Standard library
only, so any python3 runs it.
"""
import argparse
import datetime
import json
import os
import re
import sqlite3
import sys

# The order of ci/check-gpu.sh; a folder with another name is reported after these.
STEP_ORDER = [
    "build",
    "ctest-gpu",
    "moe-gating-bench",
    "replay-self-check",
    "bench-comm-nccl",
    "bench-train",
    "replay-s1-8k",
    "replay-deepseek-v3",
    "run-s1-mini",
]

ENV_KEYS = ["gpu_name", "driver_version", "cuda_version", "nvcc_version", "torch_cuda_version",
            "compute_capability", "gpu_count", "git_commit", "git_dirty", "build_dir", "budget_s"]


def read_text(path, default=None):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def read_json(path):
    text = read_text(path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def read_number(path):
    text = read_text(path)
    if text is None or not text.strip():
        return None
    try:
        v = float(text.strip())
    except ValueError:
        return None
    return int(v) if v.is_integer() and "." not in text else v


def read_environment(steps_dir):
    env = {}
    for line in (read_text(os.path.join(steps_dir, "environment"), "") or "").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip()
    return env


def parse_rate(text):
    """'950' -> 950, '12.3k' -> 12300, '4.1M' -> 4.1e6 (common/format.cpp text::rate)."""
    m = re.fullmatch(r"([0-9.]+)([kMG]?)", text.strip())
    if not m:
        return None
    return float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]


def median(xs):
    xs = sorted(x for x in xs if isinstance(x, (int, float)))
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def fmt_num(v, digits=4):
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    if abs(v) >= 1e4:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


# --- per-step parsers: (figures, headline, problems). A problem fails a step that exited 0. ---

def parse_build(step_dir, log):
    figures, problems = {}, []
    m = re.search(r"CMAKE_CUDA_ARCHITECTURES=(\S+)", read_text(os.path.join(step_dir, "command"), "") or "")
    if m:
        figures["cuda_architectures"] = m.group(1)
    return figures, "", problems


def parse_ctest(_dir, log):
    figures, problems = {}, []
    m = re.search(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)", log)
    skipped = len(re.findall(r"\*\*\*Skipped", log))
    if m:
        failed, total = int(m.group(2)), int(m.group(3))
        figures.update(tests_total=total, tests_failed=failed, tests_skipped=skipped,
                       tests_passed=total - failed - skipped)
        if total == 0:
            problems.append("no GPU tests found (ctest -L gpu matched nothing)")
        if skipped:
            problems.append(f"{skipped} GPU test(s) skipped on a machine with a GPU: their paths did not run")
    elif "No tests were found" in log:
        figures.update(tests_total=0, tests_failed=0, tests_skipped=0, tests_passed=0)
        problems.append("no GPU tests found (ctest -L gpu matched nothing)")
    else:
        problems.append("no ctest summary line in the output")
    failed_names = re.findall(r"Test\s+#\d+: (\S+) \.+\s*\*\*\*(?:Failed|Timeout|Exception)", log)
    if failed_names:
        figures["failed_tests"] = failed_names
    headline = ""
    if "tests_total" in figures:
        headline = (f"{figures['tests_total']} tests: {figures['tests_passed']} passed, "
                    f"{figures['tests_failed']} failed, {figures['tests_skipped']} skipped")
    return figures, headline, problems


def parse_moe_bench(step_dir, log):
    figures, problems = {}, []
    data = read_json(os.path.join(step_dir, "bench.json"))
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        return figures, "", ["no Google Benchmark JSON (bench.json)"]
    cases, errors = [], []
    for b in data["benchmarks"]:
        if not str(b.get("name", "")).startswith("BM_MoeGatingCuda"):
            continue
        if b.get("run_type", "iteration") != "iteration":
            continue
        if b.get("error_occurred"):
            errors.append(f"{b.get('name')}: {b.get('error_message', '')}")
            continue
        name = b["name"]
        t = re.search(r"T:(\d+)", name)
        router = re.search(r"router:(\d+)", name)
        pct = b.get("pct_of_peak")
        cases.append({
            "name": name,
            "label": b.get("label", ""),
            "tokens": int(t.group(1)) if t else None,
            "router": int(router.group(1)) if router else None,
            "time_us": b.get("real_time") if b.get("time_unit", "us") == "us" else None,
            "achieved_GBps": b.get("achieved_GBps"),
            "peak_GBps": b.get("peak_GBps"),
            "fraction_of_peak": pct / 100.0 if isinstance(pct, (int, float)) else None,
        })
    figures["cases"] = cases
    figures["cases_errored"] = len(errors)
    if errors:
        figures["errors"] = errors
        problems.append(f"{len(errors)} CUDA case(s) did not run: {errors[0]}")
    if not cases and not errors:
        problems.append("no BM_MoeGatingCuda case in bench.json")
    measured = [c for c in cases if isinstance(c["achieved_GBps"], (int, float))]
    headline = ""
    if measured:
        best = max(measured, key=lambda c: c["achieved_GBps"])
        figures["best_achieved_GBps"] = best["achieved_GBps"]
        figures["best_fraction_of_peak"] = best["fraction_of_peak"]
        figures["best_case"] = best["name"]
        figures["peak_GBps"] = best["peak_GBps"]
        headline = (f"best {fmt_num(best['achieved_GBps'])} GB/s = "
                    f"{100 * (best['fraction_of_peak'] or 0):.1f}% of peak "
                    f"{fmt_num(best['peak_GBps'])} GB/s ({best['name']})")
    return figures, headline, problems


def parse_bench_comm(step_dir, _log):
    """`audit bench comm --device cuda`: the link calibration and each parallelism's error."""
    figures, problems = {}, []
    data = read_json(os.path.join(step_dir, "comm.json"))
    if not isinstance(data, dict) or not isinstance(data.get("parallelisms"), list):
        return figures, "", ["no bench comm JSON (comm.json)"]
    cal = data.get("calibration") or {}
    figures["backend"] = data.get("backend")
    figures["nproc"] = data.get("nproc")
    figures["link_bytes_s"] = cal.get("bytes_s")
    figures["latency_s"] = cal.get("latency_s")
    errors = {}
    for p in data["parallelisms"]:
        errors[p.get("parallelism")] = p.get("error")
    figures["errors"] = errors
    if data.get("backend") != "nccl":
        problems.append(f"the ranks ran {data.get('backend')}, not nccl")
    if not errors:
        problems.append("no parallelism was measured")
    parts = [f"{k} {100 * v:+.1f}%" for k, v in errors.items() if isinstance(v, (int, float))]
    headline = ""
    if isinstance(cal.get("bytes_s"), (int, float)):
        headline = (f"link {fmt_num(cal['bytes_s'] / 1e9)} GB/s, "
                    f"latency {fmt_num(1e6 * (cal.get('latency_s') or 0))} us; error " + ", ".join(parts))
    return figures, headline, problems


def replay_figures(art):
    figures = {}
    figures["device_name"] = art.get("device_name")
    figures["timed_arch"] = art.get("timed_arch")
    figures["reduced_shapes"] = art.get("reduced_shapes")
    ms = (art.get("timing") or {}).get("measurements") or []
    layers = []
    for m in ms:
        if m.get("part") in ("dense_layer", "moe_layer") and m.get("seconds"):
            tok = m.get("timed_seq_len", 0) * m.get("batch", 0)
            layers.append({"part": m["part"], "seq_len": m.get("timed_seq_len"),
                           "batch": m.get("batch"), "seconds": m["seconds"],
                           "tokens_per_s": tok / m["seconds"] if tok else None})
    figures["layers"] = layers
    pred = art.get("prediction") or {}
    for key in ("gpu_hours", "mfu", "tokens_per_gpu_s", "wall_hours"):
        band = pred.get(key)
        if isinstance(band, list) and len(band) == 3:
            figures[f"predicted_{key}"] = band[1]
    figures["verdict"] = pred.get("verdict")
    eager = art.get("eager")
    if isinstance(eager, dict):
        figures["ours_layer_s"] = eager.get("ours_layer_s")
        figures["eager_layer_s"] = eager.get("layer_s")
        figures["ratio_ours_over_eager_layer_s"] = eager.get("ratio_ours_over_eager")
    return figures


def parse_replay(step_dir, log, want_eager=False, want_seq=None):
    problems = []
    art = read_json(os.path.join(step_dir, "replay.json"))
    if not isinstance(art, dict):
        return {}, "", ["no replay artifact (replay.json)"]
    figures = replay_figures(art)
    if art.get("reduced_shapes"):
        problems.append("timed at reduced shapes on a GPU")
    if want_seq is not None and not any(l["seq_len"] == want_seq for l in figures["layers"]):
        problems.append(f"no layer timed at {want_seq} tokens")
    if want_eager and figures.get("ratio_ours_over_eager_layer_s") is None:
        problems.append("no PyTorch eager comparison in the artifact")
    parts = []
    for l in figures["layers"][:2]:
        parts.append(f"{l['part']} L={l['seq_len']}: {fmt_num(l['seconds'])} s, "
                     f"{fmt_num(l['tokens_per_s'])} tok/s")
    if figures.get("ratio_ours_over_eager_layer_s") is not None:
        parts.append(f"layer time ours/eager {figures['ratio_ours_over_eager_layer_s']:.3f}")
    if figures.get("predicted_gpu_hours") is not None:
        parts.append(f"predicts {fmt_num(figures['predicted_gpu_hours'])} GPU-h")
    if figures.get("verdict"):
        parts.append(f"verdict: {figures['verdict']}")
    return figures, "; ".join(parts), problems


def parse_self_check(step_dir, log):
    problems = []
    art = read_json(os.path.join(step_dir, "replay.json"))
    figures = {}
    if isinstance(art, dict):
        figures = {k: art.get(k) for k in ("predicted_s", "measured_s", "error", "goal", "steps")}
    else:  # the printed lines (reproduce/cli_torch/cmd_replay.cpp do_self_check)
        m = re.search(r"predicts ([0-9.]+) s", log)
        n = re.search(r"the real Trainer took\s+([0-9.]+) s", log)
        e = re.search(r"prediction error\s+([-+0-9.]+)%", log)
        if m and n:
            figures = {"predicted_s": float(m.group(1)), "measured_s": float(n.group(1)),
                       "error": float(e.group(1)) / 100 if e else None}
        else:
            return {}, "", ["no self-check result (replay.json or the printed lines)"]
    v = re.search(r"prediction error .*: (supported|not supported)", log)
    if v:
        figures["verdict"] = v.group(1)
    headline = ""
    if isinstance(figures.get("predicted_s"), (int, float)) and isinstance(figures.get("measured_s"), (int, float)):
        headline = f"predicted {figures['predicted_s']:.3f} s vs measured {figures['measured_s']:.3f} s"
        if isinstance(figures.get("error"), (int, float)):
            headline += f" ({100 * figures['error']:+.1f}%)"
    return figures, headline, problems


def parse_bench_train(step_dir, log):
    problems = []
    data = read_json(os.path.join(step_dir, "bench.json"))
    if not isinstance(data, list) or not data:
        return {}, "", ["no bench JSON (bench.json)"]
    models, parts = [], []
    for r in data:
        cpp = median(r.get("cpp_tokens_per_s") or [])
        py = median(r.get("python_tokens_per_s") or [])
        models.append({"model": r.get("model"), "device": r.get("device"), "params": r.get("params"),
                       "cpp_tokens_per_s": cpp, "eager_tokens_per_s": py,
                       "ratio_vs_eager": r.get("ratio")})
        ratio = r.get("ratio")
        if isinstance(ratio, (int, float)):
            parts.append(f"{r.get('model')}: {fmt_num(cpp)} vs eager {fmt_num(py)} tok/s = {ratio:.2f}x")
        else:
            parts.append(f"{r.get('model')}: no ratio")
            problems.append(f"model {r.get('model')}: no ratio")
        if r.get("device", "cuda") != "cuda":
            problems.append(f"model {r.get('model')} ran on {r.get('device')}, not cuda")
    return {"models": models}, "; ".join(parts), problems


def train_summaries(step_dir):
    """train_summary events from the step's throwaway ledger, if it has one."""
    db = os.path.join(step_dir, "audit.db")
    if not os.path.exists(db):
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows = con.execute("SELECT value FROM events WHERE key = 'train_summary' ORDER BY id").fetchall()
        con.close()
    except sqlite3.Error:
        return []
    out = []
    for (value,) in rows:
        try:
            out.append(json.loads(value))
        except ValueError:
            pass
    return out


def parse_run(step_dir, log):
    problems, tps = [], {}
    for s in train_summaries(step_dir):
        if isinstance(s, dict) and "label" in s and "tokens_per_s" in s:
            tps[s["label"]] = s["tokens_per_s"]
    source = "ledger train_summary"
    if not tps:  # the last progress line of each training stage: "[sft] 315/315 loss ... 12.3k tok/s"
        source = "progress lines"
        for m in re.finditer(r"^\[([^\]]+)\] \d+/\d+ .*?([0-9.]+[kMG]?) tok/s", log, re.M):
            v = parse_rate(m.group(2))
            if v is not None:
                tps[m.group(1)] = v
    figures = {"tokens_per_s": tps, "tokens_per_s_source": source if tps else None}
    m = re.search(r"^run (\d+) succeeded", log, re.M)
    if m:
        figures["run_id"] = int(m.group(1))
    if not tps:
        problems.append("no training throughput in the ledger or the output")
    headline = "; ".join(f"{k} {fmt_num(v)} tok/s" for k, v in tps.items())
    return figures, headline, problems


PARSERS = {
    "build": parse_build,
    "ctest-gpu": parse_ctest,
    "moe-gating-bench": parse_moe_bench,
    "replay-self-check": parse_self_check,
    "bench-comm-nccl": parse_bench_comm,
    "bench-train": parse_bench_train,
    "replay-s1-8k": lambda d, log: parse_replay(d, log, want_eager=True, want_seq=8192),
    "replay-deepseek-v3": lambda d, log: parse_replay(d, log),
    "run-s1-mini": parse_run,
}


def summarize_step(steps_dir, name):
    d = os.path.join(steps_dir, name)
    step = {
        "name": name,
        "command": (read_text(os.path.join(d, "command"), "") or "").strip(),
        "exit_code": read_number(os.path.join(d, "exit_code")),
        "seconds": read_number(os.path.join(d, "seconds")),
        "limit_s": read_number(os.path.join(d, "limit_s")),
        "status": None,
        "reason": "",
        "figures": {},
        "summary": "",
        "log": os.path.join(d, "output.log"),
    }
    skipped = read_text(os.path.join(d, "skipped"))
    not_started = read_text(os.path.join(d, "timed_out"))
    if skipped is not None:
        step["status"], step["reason"] = "skipped", skipped.strip()
        return step
    if not_started is not None:
        step["status"], step["reason"] = "timed out", not_started.strip()
        return step
    log = read_text(step["log"], "") or ""
    parser = PARSERS.get(name)
    figures, headline, problems = parser(d, log) if parser else ({}, "", [])
    step["figures"], step["summary"] = figures, headline
    rc = step["exit_code"]
    if rc in (124, 137):
        step["status"] = "timed out"
        step["reason"] = f"killed at its {step['limit_s']} s limit"
    elif rc is None:
        step["status"], step["reason"] = "failed", "no exit code recorded"
    elif rc == 0 and not problems:
        step["status"] = "passed"
    elif (rc == 1 and name in ("replay-s1-8k", "replay-deepseek-v3") and not problems
          and figures.get("verdict") == "not supported"):
        # `audit replay` exits 1 when the claim is faster than the replay's band: that is the
        # claim's verdict, and the GPU path ran to its end.
        step["status"] = "passed"
        step["reason"] = "exit 1 is the claim's verdict (not supported), not a failure of the path"
    else:
        step["status"] = "failed"
        why = [f"exit {rc}"] if rc != 0 else []
        step["reason"] = "; ".join(why + problems)
    if step["status"] != "passed":
        last = last_line(log)
        if last:
            step["last_output_line"] = last
            if rc != 0:
                step["reason"] += f" (last output: {last})"
    return step


def last_line(log, width=160):
    lines = [l.strip() for l in log.splitlines() if l.strip()]
    if not lines:
        return ""
    return lines[-1] if len(lines[-1]) <= width else lines[-1][:width - 3] + "..."


def collect(steps_dir):
    present = [n for n in sorted(os.listdir(steps_dir)) if os.path.isdir(os.path.join(steps_dir, n))]
    names = [n for n in STEP_ORDER if n in present] + [n for n in present if n not in STEP_ORDER]
    env = read_environment(steps_dir)
    steps = [summarize_step(steps_dir, n) for n in names]
    counts = {s: sum(1 for x in steps if x["status"] == s)
              for s in ("passed", "failed", "skipped", "timed out")}
    summary = {
        "schema": "audit.check-gpu/1",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "steps_dir": os.path.abspath(steps_dir),
    }
    for k in ENV_KEYS:
        v = env.get(k)
        if k in ("gpu_count", "budget_s") and v is not None and v.isdigit():
            v = int(v)
        elif k == "git_dirty" and v is not None:
            v = v == "true"
        summary[k] = v if v != "" else None
    summary["steps"] = steps
    summary["counts"] = counts
    summary["ok"] = counts["failed"] == 0 and counts["timed out"] == 0
    return summary


def table(summary):
    rows = [("step", "status", "exit", "seconds", "limit", "figures / reason")]
    for s in summary["steps"]:
        detail = s["summary"]
        if s["reason"]:
            detail = (detail + " | " if detail else "") + s["reason"]
        rows.append((s["name"], s["status"],
                     "-" if s["exit_code"] is None else str(s["exit_code"]),
                     "-" if s["seconds"] is None else f"{s['seconds']:.1f}",
                     "-" if s["limit_s"] is None else str(s["limit_s"]),
                     detail))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for r in rows:
        lines.append("  ".join(r[i].ljust(widths[i]) if i in (0, 1) else r[i].rjust(widths[i])
                               for i in range(5)) + "  " + r[5])
    head = (f"GPU: {summary.get('gpu_name') or '?'} (driver {summary.get('driver_version') or '?'}, "
            f"CUDA {summary.get('cuda_version') or '?'}, nvcc {summary.get('nvcc_version') or '?'}); "
            f"commit {summary.get('git_commit') or '?'}")
    c = summary["counts"]
    foot = (f"{c['passed']} passed, {c['failed']} failed, {c['timed out']} timed out, "
            f"{c['skipped']} skipped")
    return "\n".join([head] + lines + [foot])


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps-dir", required=True, help="folder with one sub-folder per step")
    ap.add_argument("--out", required=True, help="summary JSON to write")
    ap.add_argument("--table-out", help="also write the table to this file")
    a = ap.parse_args(argv)
    if not os.path.isdir(a.steps_dir):
        print(f"check_gpu_summary: no folder {a.steps_dir}", file=sys.stderr)
        return 2
    summary = collect(a.steps_dir)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    text = table(summary)
    print(text)
    if a.table_out:
        with open(a.table_out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
