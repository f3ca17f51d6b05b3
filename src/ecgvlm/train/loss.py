"""The fine-tuning loss: next-token cross-entropy on answer tokens only (``model.chat`` lays out the labels)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ecgvlm.model.chat import IGNORE


def causal_lm_loss(model, batch: dict, label_logits_only: bool = True) -> torch.Tensor:
    """Mean next-token cross-entropy over answer tokens.

    With ``label_logits_only`` lm_head runs only at positions whose next token is a label, through
    transformers' boolean ``logits_to_keep``: a 128k-vocab logit tensor for every position (the
    largest activation of a long prompt) never exists.
    """
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    target = labels[:, 1:]
    if not label_logits_only:
        logits = model(**inputs, use_cache=False).logits[:, :-1]
        return F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE
        )
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = target != IGNORE
    if not keep.any():  # nothing to learn in this batch (all answers truncated): a zero that has a graph
        return sum(p.sum() * 0.0 for p in model.parameters() if p.requires_grad)
    logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
    return F.cross_entropy(logits.float(), target[target != IGNORE])
