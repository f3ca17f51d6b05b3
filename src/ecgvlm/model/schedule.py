"""The learning-rate schedule every training loop uses: linear warm-up, then a cosine decay.

    factor = warmup_cosine(step, total, warmup)                    # fine-tune: decay right after warm-up
    factor = warmup_cosine(step, total, warmup, decay_start(total, 0.25), min_ratio=0.05)  # pretraining
    lr = warmup_cosine(step, total, warmup, peak=1e-3)             # an absolute rate (CNN baseline)

The arithmetic is written once, in one order, so every loop's rates are bit-for-bit what they were
when each loop had its own copy (runs stay reproducible across the move).
"""

from __future__ import annotations

import math


def warmup_cosine(
    step: int,
    total: int,
    warmup: int,
    decay_from: int | None = None,
    min_ratio: float = 0.0,
    peak: float = 1.0,
) -> float:
    """The rate at ``step`` (0-based) as a multiple of ``peak``.

    Linear warm-up ``(step + 1) / warmup`` over the first ``warmup`` steps, ``peak`` until
    ``decay_from`` (default: the end of warm-up), then a cosine from ``peak`` down to
    ``min_ratio * peak`` at ``total``, held there after.
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    start = warmup if decay_from is None else decay_from
    if step < start:
        return peak
    p = min(1.0, (step - start) / max(1, total - start))
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def decay_start(total: int, decay_frac: float) -> int:
    """The step where a decay over the last ``decay_frac`` of ``total`` steps begins."""
    return int(round(total * (1 - decay_frac)))
