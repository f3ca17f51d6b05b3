"""Stage 1 of the tiny base: the vision tower alone learns to measure traces on ECG pages.

Why a separate stage: trained from scratch together with the text model, the 10M-parameter Mllama
learns the answers' priors from the question text long before its ViT can see 2-px cues, and the
gradient then drives the vision features to a constant (measured: the spread of the projected
features across images fell from 0.20 at initialisation to 0.006 after 750 steps; answers on a blank
page equalled those on the real one). Real VLMs avoid this the same way: their image encoder is
pretrained on its own before the language model reads it.

Here the vision tower (patch embedding, local and global layers) plus a throw-away linear head on
its mean- and max-pooled patch features regress measurements of the page's signal: per lead the R
height, S depth, Q depth, ST level and T deflection, and page-wide the QRS and PR durations, heart
rate, beats in the rhythm strip. Never a diagnosis. The head is discarded; stage 2
(``ecgvlm.train.pretrain``) then trains the projector, cross-attention and text model on the
image-text tasks with this tower frozen.

Deterministic like stage 2: batch ``s`` holds pool records drawn from (seed, s), one thread.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import atomic_write_bytes, atomic_write_json
from ecgvlm.signals.record import LEADS

PER_LEAD = ("r_amp", "s_amp", "st", "t_amp")
N_TARGETS = len(PER_LEAD) * 12 + 12 + 5


def page_targets(feats: dict) -> np.ndarray:
    """Scaled regression targets (about unit range) from ``delineate`` features of a page's record."""
    out = []
    for key in PER_LEAD:
        scale = 0.2 if key in ("st", "t_amp") else 1.0  # ST and T are small: 0.2 mV -> 1
        out += [float(np.clip(feats[key][ld] / scale, -4, 4)) for ld in LEADS]
    out += [float(np.clip(feats["q"][ld][1] / 0.2, 0, 4)) for ld in LEADS]
    out += [
        feats["qrs"] / 100.0,
        feats.get("pr", 160.0) / 160.0,
        float("pr" in feats),
        feats["hr"] / 80.0,
        feats["strip_beats"] / 7.0,
    ]
    return np.asarray(out, dtype=np.float32)


def vision_batch(processor, seed: int, step: int, batch_size: int, record_pool: int):
    """(pixel inputs, targets) of batch ``step``: a pure function of its arguments."""
    import torch

    from ecgvlm.train.pretrain_pages import ecg_page, measurable

    rng = np.random.default_rng([int(seed), int(step), 11])
    images, targets = [], []
    while len(images) < batch_size:
        image, feats, _style = ecg_page(seed, int(rng.integers(record_pool)))
        if not measurable(feats):
            continue  # a record the delineator cannot measure teaches nothing here
        images.append(image)
        targets.append(page_targets(feats))
    px = processor.image_processor(images=[[im] for im in images], return_tensors="pt")
    inputs = {k: px[k] for k in ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask")}
    return inputs, torch.from_numpy(np.stack(targets))


def pooled_features(vision_model, inputs: dict):
    """Mean and max over all patch tokens of the tower's output: (batch, 2 * output dim)."""
    import torch

    h = vision_model(**inputs).last_hidden_state
    h = h.reshape(h.shape[0], -1, h.shape[-1])
    return torch.cat([h.mean(1), h.amax(1)], dim=-1)


def train_vision(model, processor, cfg, progress: bool = True) -> list[dict]:
    """Train ``model.model.vision_model`` in place for ``cfg.vision_steps``; returns the loss log."""
    import torch

    vision = model.model.vision_model
    out_dim = vision.config.vision_output_dim
    torch.manual_seed(cfg.seed + 1)
    head = torch.nn.Linear(2 * out_dim, N_TARGETS).to(cfg.device)
    params = list(vision.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.vision_lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    total, warm = cfg.vision_steps, max(1, cfg.vision_steps // 10)

    # Its own warm-up + cosine, not model.schedule.warmup_cosine: this one rounds pi * (s - warm)
    # before dividing, so the shared function would move some rates by one ulp and the shipped base
    # (bit-reproducible from its card's command) would no longer be rebuilt byte for byte.
    def factor(s: int) -> float:
        if s < warm:
            return (s + 1) / warm
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    vision.train()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="pretrain (vision)", unit="step", dynamic_ncols=True)
    log = []
    for step in range(total):
        inputs, y = vision_batch(processor, cfg.seed, step, cfg.vision_batch_size, cfg.record_pool)
        inputs = {k: v.to(cfg.device) for k, v in inputs.items()}
        loss = torch.nn.functional.mse_loss(head(pooled_features(vision, inputs)), y.to(cfg.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        sched.step()
        log.append({"step": step + 1, "loss": round(loss.item(), 5)})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{sum(r['loss'] for r in log[-50:]) / len(log[-50:]):.4f}")
    if bar is not None:
        bar.close()
    return log


def vision_stage(load_init: Callable[[], Any], processor, cfg, work: Path, progress: bool) -> list[dict]:
    """Stage 1 once (``cfg``: a ``PretrainConfig``): the trained tower goes to WORK/vision.safetensors
    (a rerun reuses it)."""
    from safetensors.torch import save

    done, log_file, opts_file = (
        work / "vision.safetensors",
        work / "vision_log.json",
        work / "vision_options.json",
    )
    # what the tower depends on: a rerun with other stage-1 options must not reuse it silently
    options = {
        "seed": cfg.seed,
        "geometry": cfg.geometry,
        "vision_steps": cfg.vision_steps,
        "vision_batch_size": cfg.vision_batch_size,
        "vision_lr": cfg.vision_lr,
        "weight_decay": cfg.weight_decay,
        "record_pool": cfg.record_pool,
    }
    if done.is_file() and log_file.is_file():
        if opts_file.is_file() and (old := json.loads(opts_file.read_text())) != options:
            changed = ", ".join(f"{k} {old.get(k)} -> {v}" for k, v in options.items() if old.get(k) != v)
            raise ECGVLMError(
                f"the stage-1 tower in this folder was trained with other options ({changed}); "
                "rerun with the same options or use a new --out",
                done,
            )
        return json.loads(log_file.read_text())
    model = load_init()
    t0 = time.time()
    log = train_vision(model, processor, cfg, progress)
    log.append({"wall_s": round(time.time() - t0, 1)})
    state = {k: v.detach().contiguous() for k, v in model.model.vision_model.state_dict().items()}
    tower = save(state)
    atomic_write_json(log_file, log)
    atomic_write_json(opts_file, options)
    atomic_write_bytes(done, tower)  # last: a tower on disk always has its log and options beside it
    return log
