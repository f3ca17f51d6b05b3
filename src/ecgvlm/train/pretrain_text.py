"""Stage 3 of the tiny base: the language model learns the report register from text alone.

A real VLM's language model read text long before it saw an image; the tiny base's text side only
ever wrote short stage-2 answers (yes/no, numbers), so the output rows of most report words were
still at their random initialisation and a LoRA fine-tune (which keeps ``lm_head`` frozen) could
not make reports form. This stage trains the text model and ``lm_head`` as a plain language model
on report prompts and reports, **with no image**: the cross-attention layers are skipped by Mllama
without image states, and the vision tower and projector stay frozen. It teaches how reports are
written, never which report goes with which ECG, so the zero-shot scores stay at chance.

The corpus is a pure function of (seed, index): synthetic records of their own stream (synth seed
``20_000 + seed``, so neither the image-text stage's pages nor a demo's records), each with the
generator's full label prior, and the report task of ``ecgvlm.instruct`` (its prompts and wording).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TEXT_SEED_OFFSET = 20_000  # the records' synth seed: away from stage 2 (10_000 + seed) and datasets


def report_example(seed: int, index: int) -> tuple[str, str]:
    """(prompt, report) of record ``index`` of the stage-3 stream."""
    from ecgvlm.instruct.tasks import report_task
    from ecgvlm.instruct.unit import _clean_labels, _clean_measurements
    from ecgvlm.signals.synth import synthesize_record

    k = 0
    while True:  # a record without a labelled statement has no report: take the next one
        record = synthesize_record(TEXT_SEED_OFFSET + seed, index * 8 + k)
        labels = _clean_labels(record.labels)
        qa = report_task(
            labels, _clean_measurements(record.measurements), np.random.default_rng([seed, index, k])
        )
        if qa is not None:
            return qa.question, qa.answer
        k += 1


def text_batch(tokenizer, pairs: list[tuple[str, str]]) -> dict:
    """Padded text-only batch, labels on the report and its end-of-turn only."""
    import torch

    from ecgvlm.model.chat import IGNORE, encode_messages

    encoded = [
        encode_messages(
            tokenizer, [{"role": "user", "content": q}, {"role": "assistant", "content": a}], False
        )
        for q, a in pairs
    ]
    width = max(len(ids) for ids, _ in encoded)
    width = -(-width // 8) * 8
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, (x, y) in enumerate(encoded):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def text_parameters(model) -> list:
    """The text model and lm_head, cross-attention layers excluded; everything else frozen."""
    text = model.model.language_model
    model.requires_grad_(False)
    text.requires_grad_(True)
    model.lm_head.requires_grad_(True)
    for i in model.config.text_config.cross_attention_layers:
        text.layers[i].requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def train_text(
    model, tokenizer, seed: int, steps: int, batch_size: int, lr: float, warmup: int, progress: bool = True
) -> list[dict]:
    """``steps`` AdamW steps of report language modelling; returns the loss log."""
    import torch

    from ecgvlm.model.schedule import warmup_cosine

    params = text_parameters(model)
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.0)
    # the cosine is measured from step 0 (decay_from=0), warm-up included, down to 5 % of ``lr``
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, steps, warmup, 0, 0.05))
    model.train()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc="pretrain text", unit="step", dynamic_ncols=True)
    log = []
    for step in range(steps):
        pairs = [report_example(seed, i) for i in range(step * batch_size, (step + 1) * batch_size)]
        batch = {k: v.to(model.device) for k, v in text_batch(tokenizer, pairs).items()}
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        log.append({"step": step + 1, "loss": round(loss.item(), 5)})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{sum(r['loss'] for r in log[-50:]) / len(log[-50:]):.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    return log


def text_stage(
    base: Path, out: Path, seed: int, steps: int, batch_size: int, lr: float, threads: int = 1,
    device: str = "cpu", progress: bool = True,
) -> Path:  # fmt: skip
    """Stage 3 on an exported base folder (fp16 weights, read as fp32) -> ``out`` (fp16).

    Working from the exported files, not from stage 2's fp32 weights in memory, makes
    ``ecgvlm pretrain-base --from-base BASE --text-steps N`` on a shipped base give the same bytes
    as a rebuild of all three stages.
    """
    import os
    import shutil
    import time

    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
    import torch
    from transformers import MllamaForConditionalGeneration

    from ecgvlm.errors import ECGVLMError
    from ecgvlm.io import atomic_write_json, share_files
    from ecgvlm.model.load import load_processor

    if not (base / "config.json").is_file():
        raise ECGVLMError("not a model folder (no config.json)", base)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration.from_pretrained(
        str(base),
        dtype=torch.float32,
        local_files_only=True,
        use_safetensors=True,
        attn_implementation="sdpa",
    ).to(device)
    processor = load_processor(base)
    t0 = time.time()
    log = train_text(model, processor.tokenizer, seed, steps, batch_size, lr, max(1, steps // 20), progress)
    wall = time.time() - t0
    tmp = out.parent / f".{out.name}.text.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(base, tmp, ignore=shutil.ignore_patterns("model.safetensors", "_work", "*.md"))
    model.to("cpu").to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    info = json.loads((base / "pretrain.json").read_text()) if (base / "pretrain.json").is_file() else {}
    info["text_stage"] = {
        "seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr, "threads": threads,
        "wall_s": round(wall, 1), "loss": [r["loss"] for r in log],
        "final_loss_avg50": round(sum(r["loss"] for r in log[-50:]) / max(1, len(log[-50:])), 4),
    }  # fmt: skip
    atomic_write_json(tmp / "pretrain.json", info)
    share_files(tmp)
    out.mkdir(parents=True, exist_ok=True)
    for f in tmp.iterdir():
        os.replace(f, out / f.name)
    shutil.rmtree(tmp, ignore_errors=True)
    return out
