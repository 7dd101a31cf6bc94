#!/usr/bin/env python3
"""The `[launch]` test fixture: a claimant-style training script run under torchrun.

Trains a tiny `transformers` causal LM with the real Hugging Face `Trainer` (data-parallel over
the ranks torchrun starts, Gloo backend, on the CPU), prints the Trainer's own logs as any
published training script would (the log dicts, the tqdm bar on stderr, the final
train_runtime/train_loss dict), and saves the final checkpoint (model.safetensors, config.json
and the tokenizer) into --output_dir. Nothing is downloaded: without --model the model and a
word-level tokenizer are made here, seeded.

  torchrun --nproc_per_node 2 launch_train.py --output_dir OUT [--model DIR] [--steps 10]

The data is synthetic and learnable (each sequence counts upward through the vocabulary from a
random start, so the next token is always the current one plus one): the loss falls from about
ln(vocab) within a few steps. Each rank prints one line `launch_train: rank R of W pid P` on
stdout, so a caller can check that every rank ran; rank 0 ends with one JSON line
{"output_dir", "world_size", "steps", "train_loss", "log_history"}.
"""
import argparse
import json
import os
import random
import sys

import torch
import transformers
from transformers import (PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM, Trainer,
                          TrainingArguments, default_data_collator)

VOCAB = 128
SEQ = 16
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def make_tokenizer():
    """A word-level tokenizer of exactly VOCAB entries ([UNK], w0.., then the special tokens)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    words = ["[UNK]"] + [f"w{i}" for i in range(VOCAB - 1 - len(SPECIALS))]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>",
                                   eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="[UNK]")


def make_model(seed):
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                      max_position_embeddings=64, rms_norm_eps=1e-6, tie_word_embeddings=True)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(cfg)


class Counting(torch.utils.data.Dataset):
    """n sequences of SEQ token ids counting upward (mod the word range) from a seeded start.

    With the tokenizer made here the text "w5 w6 ..." is tokenized; a loaded model's tokenizer
    (any vocabulary) gets the same task on its token ids 0 .. min(vocab, 256) directly.
    """

    def __init__(self, tokenizer, n, seed, made_here=True):
        words = len(tokenizer) - len(SPECIALS) - 1 if made_here else min(len(tokenizer), 256)
        rng = random.Random(seed)
        self.rows = []
        for _ in range(n):
            start = rng.randrange(words)
            if made_here:
                text = " ".join(f"w{(start + i) % words}" for i in range(SEQ))
                ids = tokenizer(text)["input_ids"]
                assert len(ids) == SEQ, (text, ids)
            else:
                ids = [(start + i) % words for i in range(SEQ)]
            self.rows.append({"input_ids": torch.tensor(ids),
                              "attention_mask": torch.ones(SEQ, dtype=torch.long),
                              "labels": torch.tensor(ids)})

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output_dir", required=True)
    ap.add_argument("--model", help="a Hugging Face checkpoint folder to fine-tune instead")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4, help="per-device batch size")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()

    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    print(f"launch_train: rank {rank} of {world} pid {os.getpid()}", flush=True)
    torch.set_num_threads(1)  # ranks share the machine's cores

    if a.model:
        tokenizer = transformers.AutoTokenizer.from_pretrained(a.model)
        model = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    else:
        tokenizer = make_tokenizer()
        model = make_model(a.seed)
    data = Counting(tokenizer, n=a.steps * a.batch * world, seed=a.seed, made_here=not a.model)

    args = TrainingArguments(
        output_dir=a.output_dir, max_steps=a.steps, per_device_train_batch_size=a.batch,
        learning_rate=a.lr, warmup_steps=0, lr_scheduler_type="linear", weight_decay=0.0,
        logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[],
        use_cpu=True, ddp_backend="gloo", ddp_find_unused_parameters=False, seed=a.seed,
        dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      data_collator=default_data_collator, processing_class=tokenizer)
    result = trainer.train()
    trainer.save_model(a.output_dir)  # rank 0 writes; safetensors is the default
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(a.output_dir)
        history = [h for h in trainer.state.log_history if "loss" in h]
        print(json.dumps({"output_dir": a.output_dir, "world_size": world,
                          "steps": trainer.state.global_step,
                          "train_loss": result.training_loss, "log_history": history}),
              flush=True)
    trainer.accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
