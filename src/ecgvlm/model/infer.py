"""Scoring helpers for the evaluate and serve stages: batched generation and option probabilities.

    texts = generate(model, processor, images, prompts, max_new_tokens=64)
    probs = option_probs(model, processor, images, prompts, ["NORM", "MI", "STTC", "CD", "HYP"])

Prompts are laid out exactly as in training (``ecgvlm.model.chat``): ``<|image|>`` at the start
of the user turn (or where ``<image>`` stands), then the assistant header. Works on a plain
Mllama model or a ``peft.PeftModel``.
"""

from __future__ import annotations

import numpy as np
import torch

from ecgvlm.model.chat import IGNORE, Collator, encode_messages


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """Token ids of a user turn holding ``prompt`` followed by the assistant header (training's layout)."""
    ids, _ = encode_messages(tokenizer, [{"role": "user", "content": prompt}])
    return (
        ids
        + tokenizer("<|start_header_id|>assistant<|end_header_id|>\n\n", add_special_tokens=False)[
            "input_ids"
        ]
    )


def model_device(model) -> torch.device:
    """The device of the model's first parameter (plain or PEFT-wrapped)."""
    return next(model.parameters()).device


def model_dtype(model) -> torch.dtype:
    """The dtype of the model's first floating-point parameter: what pixel inputs are cast to."""
    return next(p for p in model.parameters() if p.is_floating_point()).dtype


def prompt_batch(processor, images: list, seqs: list[list[int]], left_pad: bool) -> dict:
    """Collator batch; with ``left_pad`` the text is shifted right (generation wants the last token last)."""
    items = [{"input_ids": s, "labels": [IGNORE] * len(s), "image": im} for s, im in zip(seqs, images)]
    batch = Collator(processor, pad_to_multiple_of=0)(items)
    batch.pop("labels")
    if left_pad:
        lengths = batch["attention_mask"].sum(1)
        for i, n in enumerate(lengths.tolist()):
            shift = batch["input_ids"].shape[1] - n
            for k in ("input_ids", "attention_mask", "cross_attention_mask"):
                batch[k][i] = torch.roll(batch[k][i], shifts=shift, dims=0)
    return batch


@torch.no_grad()
def generate(
    model, processor, images: list, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 8
) -> list[str]:
    """Greedy answers, one per (image, prompt) pair, in input order."""
    tok = processor.tokenizer
    eos = [tok.convert_tokens_to_ids(t) for t in ("<|eot_id|>", "<|end_of_text|>", "<|eom_id|>")]
    out: list[str] = []
    dev = model_device(model)
    dtype = model_dtype(model)
    for s in range(0, len(prompts), batch_size):
        seqs = [prompt_ids(tok, p) for p in prompts[s : s + batch_size]]
        batch = prompt_batch(processor, images[s : s + batch_size], seqs, left_pad=True)
        batch = {k: v.to(dev) for k, v in batch.items()}
        batch["pixel_values"] = batch["pixel_values"].to(dtype)
        gen = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=tok.pad_token_id,
        )
        new = gen[:, batch["input_ids"].shape[1] :]
        out += [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
    return out


@torch.no_grad()
def option_probs(
    model, processor, images: list, prompts: list[str], options: list[str], mode: str = "sequence"
) -> np.ndarray:
    """(n_prompts, n_options) probabilities, each row summing to 1.

    ``sequence``: softmax over options of each option's full log-likelihood (answer tokens + nothing
    else), so multi-token options are compared fairly. ``first``: the next-token distribution at the
    answer start, restricted to each option's first token and renormalised (one forward per prompt).
    """
    tok = processor.tokenizer
    dev = model_device(model)
    dtype = model_dtype(model)
    opt_ids = [tok(o, add_special_tokens=False)["input_ids"] for o in options]
    rows = []
    for image, prompt in zip(images, prompts):
        base = prompt_ids(tok, prompt)
        if mode == "first":
            batch = {
                k: v.to(dev) for k, v in prompt_batch(processor, [image], [base], left_pad=False).items()
            }
            batch["pixel_values"] = batch["pixel_values"].to(dtype)
            logp = torch.log_softmax(model(**batch, logits_to_keep=1).logits[0, -1].float(), -1)
            scores = torch.stack([logp[ids[0]] for ids in opt_ids])
        elif mode == "sequence":
            seqs = [base + ids for ids in opt_ids]
            batch = {
                k: v.to(dev)
                for k, v in prompt_batch(processor, [image] * len(seqs), seqs, left_pad=False).items()
            }
            batch["pixel_values"] = batch["pixel_values"].to(dtype)
            logp = torch.log_softmax(model(**batch).logits.float(), -1)
            scores = torch.stack(
                [
                    sum(logp[k, len(base) - 1 + j, t] for j, t in enumerate(ids))
                    for k, ids in enumerate(opt_ids)
                ]
            )
        else:
            raise ValueError(f"mode must be 'sequence' or 'first', not {mode!r}")
        rows.append(torch.softmax(scores, 0).cpu().numpy())
    return np.stack(rows).astype(np.float64)
