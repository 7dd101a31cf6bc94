#!/usr/bin/env python3
"""The transformers side of the SFT parity checks (tests/torch/sft_parity_test.cpp): what one
SFT step and a short SFT give with transformers' model, torch.optim.AdamW, transformers' lr
schedules and torch's gradient clipping, on the batch and settings the C++ test gives.

Nothing here is our code: the model is AutoModelForCausalLM (fp32, CPU, attn_implementation
"eager"), the loss is its own causal-LM loss on labels with -100 where the loss mask is 0
(question and padding), the attention mask marks the right padding, the lr schedule is
transformers.get_{cosine,linear,constant}_schedule_with_warmup, the optimizer is
torch.optim.AdamW with HF Trainer's two parameter groups (Trainer.get_decay_parameter_names:
no decay on biases and norms), and clipping is torch.nn.utils.clip_grad_norm_. Gradient
accumulation is HF Trainer's: every micro-batch's loss is its summed token loss divided by the
global batch's target count (num_items_in_batch, counted over labels[..., 1:]).

Usage: sft_peer.py --jobs FILE.json [--threads N]
FILE.json is a list of jobs, one JSON line printed for each:
  {"model": DIR, "tokens": [[...]], "loss_mask": [[...]], "attention_mask": [[...]],
   "kind": "step", "out": FILE.safetensors}
      one forward and backward over all rows as one batch: writes "loss" and "grad.<name>" for
      every parameter to FILE; prints {"loss", "parameters"}.
  {"model": DIR, "tokens": ..., "loss_mask": ..., "attention_mask": ..., "kind": "train",
   "steps": K, "global_batch": G, "micro_batch": M, "lr": LR, "warmup_steps": W,
   "schedule": "cosine" | "linear" | "constant", "beta1", "beta2", "eps", "weight_decay",
   "grad_clip", "out": FILE.safetensors}
      K optimizer steps over the rows in order (batch i is rows [i*G, (i+1)*G) mod N, no
      shuffling), micro-batches of M; prints {"loss": [...], "lr": [...], "grad_norm": [...]}
      per step and writes the final parameters to FILE.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch


def load(model_dir):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.train()  # dropout is 0 in these configs; train() as HF Trainer does
    return model


def batch_tensors(job):
    ids = torch.tensor(job["tokens"], dtype=torch.long)
    mask = torch.tensor(job["loss_mask"], dtype=torch.long)
    attn = torch.tensor(job["attention_mask"], dtype=torch.long)
    labels = ids.masked_fill(mask == 0, -100)  # HF: -100 = not a target
    return ids, attn, labels


def one_step(job):
    from safetensors.torch import save_file
    model = load(job["model"])
    ids, attn, labels = batch_tensors(job)
    out = model(input_ids=ids, attention_mask=attn, labels=labels)
    out.loss.backward()
    tensors = {"loss": out.loss.detach().reshape(())}
    names = []
    for name, p in model.named_parameters():
        tensors["grad." + name] = p.grad.detach().contiguous()
        names.append(name)
    save_file(tensors, job["out"])
    return {"loss": out.loss.item(), "parameters": names}


def schedule(optimizer, job):
    import transformers
    kind, warmup, steps = job["schedule"], job["warmup_steps"], job["steps"]
    if kind == "cosine":
        return transformers.get_cosine_schedule_with_warmup(optimizer, warmup, steps)
    if kind == "linear":
        return transformers.get_linear_schedule_with_warmup(optimizer, warmup, steps)
    if kind == "constant":
        return transformers.get_constant_schedule_with_warmup(optimizer, warmup)
    sys.exit(f"sft_peer: unknown schedule {kind!r}")


def short_sft(job):
    from safetensors.torch import save_file
    from transformers import Trainer
    model = load(job["model"])
    ids, attn, labels = batch_tensors(job)
    decay = set(Trainer.get_decay_parameter_names(None, model))  # HF Trainer's grouping
    groups = [
        {"params": [p for n, p in model.named_parameters() if n in decay],
         "weight_decay": job["weight_decay"]},
        {"params": [p for n, p in model.named_parameters() if n not in decay],
         "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=job["lr"], betas=(job["beta1"], job["beta2"]),
                            eps=job["eps"])
    sched = schedule(opt, job)
    n, g, m = ids.shape[0], job["global_batch"], job["micro_batch"]
    losses, lrs, norms = [], [], []
    cursor = 0
    for _ in range(job["steps"]):
        rows = list(range(cursor, min(cursor + g, n)))
        cursor = 0 if cursor + g >= n else cursor + g
        num_items = labels[rows][:, 1:].ne(-100).sum()
        lrs.append(opt.param_groups[0]["lr"])
        total = 0.0
        for at in range(0, len(rows), m):
            mb = rows[at:at + m]
            out = model(input_ids=ids[mb], attention_mask=attn[mb], labels=labels[mb],
                        num_items_in_batch=num_items)
            out.loss.backward()
            total += out.loss.item()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), job["grad_clip"])
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(total)
        norms.append(norm.item())
    save_file({name: p.detach().contiguous() for name, p in model.named_parameters()}, job["out"])
    return {"loss": losses, "lr": lrs, "grad_norm": norms}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", required=True)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    with open(a.jobs) as f:
        jobs = json.load(f)
    import transformers
    for job in jobs:
        result = one_step(job) if job["kind"] == "step" else short_sft(job)
        result.update({"kind": job["kind"], "torch": torch.__version__,
                       "transformers": transformers.__version__})
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
