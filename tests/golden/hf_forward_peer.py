#!/usr/bin/env python3
"""The transformers side of the forward-parity checks: loads a Hugging Face checkpoint directory
with transformers itself and runs its forward pass on given token ids.

Used by tests/torch/hf_parity_test.cpp (logits, loss and every gradient of our model against
transformers on tiny random checkpoints) and by `audit model compare` (reproduce/cli_torch/
cmd_model_compare.cpp). The model is loaded with attn_implementation="eager" and
torch_dtype=float32 (a bf16 checkpoint is upcast on load, as ours is), on the CPU.

Usage:
  hf_forward_peer.py --model DIR --out FILE.safetensors
                     (--ids 1,2,3 | --ids-json FILE | --prompt TEXT) [--grads] [--threads N]
  hf_forward_peer.py --jobs FILE.json [--threads N]

--jobs runs many forwards in one process (importing transformers takes seconds): FILE.json is a
list of {"model": DIR, "out": FILE, "ids": [[...]], "grads": bool}, one JSON line printed each.

--ids-json holds a list of ids or a list of equal-length lists (a batch). --prompt tokenizes
TEXT with transformers' AutoTokenizer from DIR (no special tokens added). With --grads the loss
is HF's causal-LM loss with labels = input ids (mean over the T-1 shifted targets of each row),
and its gradient for every parameter is written too.

Writes to --out: "logits" [B, T, vocab] fp32, "input_ids" [B, T] int64, "inv_freq" (the rotary
buffer), and with --grads "loss" (scalar) and "grad.<parameter name>" per parameter. Prints one
JSON line: {"model_type", "ids" (the batch), "logits_shape", "loss" (or null),
"parameters" ([name, shape] in named_parameters() order), "tokenized_by", "torch",
"transformers"}.
"""
import argparse
import json
import os
import sys

# Never reach the hub (fixtures are local directories); keep stderr to warnings that matter.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch


def parse_ids(a, model_dir):
    if a.ids is not None:
        try:
            return [[int(x) for x in a.ids.split(",") if x.strip() != ""]], None
        except ValueError:
            sys.exit(f"hf_forward_peer: --ids must be comma-separated integers, got {a.ids!r}")
    if a.ids_json is not None:
        with open(a.ids_json) as f:
            data = json.load(f)
        if data and isinstance(data[0], int):
            data = [data]
        return [[int(x) for x in row] for row in data], None
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    return [tok(a.prompt, add_special_tokens=False)["input_ids"]], "transformers.AutoTokenizer"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="checkpoint directory (config.json, *.safetensors)")
    ap.add_argument("--out", help="safetensors file to write")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--ids", help="comma-separated token ids (one row)")
    src.add_argument("--ids-json", help="JSON file: a list of ids or a list of rows")
    src.add_argument("--prompt", help="text, tokenized with AutoTokenizer from --model")
    src.add_argument("--jobs", help="JSON file: a list of {model, out, ids, grads}")
    ap.add_argument("--grads", action="store_true", help="also the loss and every gradient")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.jobs is not None:
        with open(a.jobs) as f:
            for job in json.load(f):
                ids = job["ids"]
                rows = [ids] if ids and isinstance(ids[0], int) else ids
                run(job["model"], job["out"], rows, None, bool(job.get("grads", False)))
        return
    if a.model is None or a.out is None:
        sys.exit("hf_forward_peer: --model and --out are required (or --jobs)")
    rows, tokenized_by = parse_ids(a, a.model)
    run(a.model, a.out, rows, tokenized_by, a.grads)


def run(model_dir, out_path, rows, tokenized_by, grads):
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        sys.exit("hf_forward_peer: the token ids must be one or more non-empty rows of equal length")
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager",
                                                 dtype=torch.float32)
    model.eval()  # no dropout (tiny configs have none anyway)
    ids = torch.tensor(rows, dtype=torch.long)
    vocab = model.config.vocab_size
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        sys.exit(f"hf_forward_peer: token ids must lie in [0, {vocab})")

    out = {"input_ids": ids.contiguous()}
    loss = None
    if grads:
        res = model(input_ids=ids, labels=ids)
        res.loss.backward()
        loss = res.loss.detach()
        out["loss"] = loss.reshape(())
        for name, p in model.named_parameters():
            out["grad." + name] = p.grad.detach().contiguous()
    else:
        with torch.no_grad():
            res = model(input_ids=ids)
    out["logits"] = res.logits.detach().float().contiguous()
    inv_freq = getattr(model.model.rotary_emb, "inv_freq", None)
    if inv_freq is not None:
        out["inv_freq"] = inv_freq.detach().float().contiguous()
    save_file(out, out_path)
    print(json.dumps({
        "model_type": model.config.model_type,
        "ids": rows,
        "logits_shape": list(res.logits.shape),
        "loss": None if loss is None else float(loss),
        "parameters": [[n, list(p.shape)] for n, p in model.named_parameters()],
        "tokenized_by": tokenized_by,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()
