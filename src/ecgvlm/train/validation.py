"""Validation during training: the split's answer loss over all processes, and the best adapter.

``train.eval_every`` steps run the validation file through the model (each process a share of its
batches, summed across processes), and when the loss is the lowest so far the adapter is saved to
``OUTPUT_DIR/best/`` (with ``best.json``: step and loss) beside the last one in ``OUTPUT_DIR``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch


@torch.no_grad()
def evaluate_loss(
    model,
    data,
    collate,
    batch_size: int,
    device,
    precision: str,
    label_logits_only: bool,
    accelerator=None,
) -> float:
    """Mean per-batch answer loss over a dataset in file order (dropout off). With an ``accelerator``
    each process takes every world-th batch and the sums are reduced, so all processes return the
    same mean over all batches."""
    from ecgvlm.train.loss import causal_lm_loss

    was_training = model.training
    model.eval()
    world = accelerator.num_processes if accelerator else 1
    rank = accelerator.process_index if accelerator else 0
    starts = list(range(0, len(data), batch_size))
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of batch losses, batches)
    for i in starts[rank::world]:
        batch = {
            k: v.to(device)
            for k, v in collate([data[j] for j in range(i, min(i + batch_size, len(data)))]).items()
        }
        if precision == "bf16":
            batch["pixel_values"] = batch["pixel_values"].to(torch.bfloat16)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            total[0] += float(causal_lm_loss(model, batch, label_logits_only))
        total[1] += 1
    if world > 1:
        total = accelerator.reduce(total, reduction="sum")
    model.train(was_training)
    return float(total[0] / total[1].clamp(min=1))


def save_best(out: Path, save: Callable[[Path], None], step: int, val_loss: float) -> Path:
    """Replace ``out/best`` with the adapter ``save`` writes, atomically (main process only)."""
    from ecgvlm.io import atomic_write_json

    best = out / "best"
    tmp = out / ".best.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save(tmp)
    atomic_write_json(tmp / "best.json", {"step": step, "val_loss": val_loss})
    old = out / ".best.old"
    shutil.rmtree(old, ignore_errors=True)
    if best.exists():
        os.replace(best, old)
    os.replace(tmp, best)
    shutil.rmtree(old, ignore_errors=True)
    return best


@torch.no_grad()
def superclass_auc(model, processor, data, device, precision: str, limit: int = 200) -> float | None:
    """Quick macro ranking AUC of the five superclasses on the validation file's superclass rows
    (the first ``limit``): each code's first-token probability at the answer start, renormalised
    (what ``ecgvlm evaluate --scores codes`` computes). None without rows or a class to rank."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from ecgvlm.io import load_image
    from ecgvlm.model.infer import option_probs
    from ecgvlm.signals.vocab import SUPERCLASSES

    rows = [r for r in data.rows if r.task == "superclass"][:limit]
    if not rows:
        return None
    was_training = model.training
    model.eval()
    probs = []
    for row in rows:
        image = load_image(data.root, row.image, data.path)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            probs.append(
                option_probs(model, processor, [image], [row.prompt], list(SUPERCLASSES), "first")[0]
            )
    model.train(was_training)
    probs = np.stack(probs)
    if not np.isfinite(probs).all():  # a diverged model: no ranking to score
        return None
    aucs = []
    for k, code in enumerate(SUPERCLASSES):
        gold = []
        for row in rows:
            g = row.gold
            labels = g.get("labels") or [c.strip() for c in str(g.get("answer", "")).split(",")]
            gold.append(code in labels)
        if 0 < sum(gold) < len(gold):
            aucs.append(roc_auc_score(gold, probs[:, k]))
    return float(np.mean(aucs)) if aucs else None
