"""Batched yes/no scoring: many (image, question) pairs per forward pass, vision encoded once.

``ecgvlm.model.infer.option_probs`` scores one prompt per forward and re-encodes the image each
time. The interpreter asks every image a dozen questions, and the server wants a whole micro-batch
at once, so here each distinct image goes through the vision tower once and its cross-attention
states are shared by all of its questions. The prompt layout is infer's own (its public helpers), so the
probabilities equal ``option_probs(..., mode="sequence")`` (checked in tests).
"""

from __future__ import annotations

import numpy as np
import torch

from ecgvlm.model.infer import model_device, prompt_batch, prompt_ids


def _mllama(model):
    """The ``MllamaModel`` inside a plain or PEFT-wrapped ``MllamaForConditionalGeneration``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model


def _vision_states(model, batch: dict, rows: list[int]) -> torch.Tensor:
    """Projected vision states of the given batch rows: (len(rows), tiles, patches, hidden)."""
    mm = _mllama(model)
    pv = batch["pixel_values"][rows]
    out = mm.vision_model(
        pixel_values=pv,
        aspect_ratio_ids=batch["aspect_ratio_ids"][rows],
        aspect_ratio_mask=batch["aspect_ratio_mask"][rows],
    ).last_hidden_state
    states = mm.multi_modal_projector(out)
    return states.reshape(len(rows), -1, states.shape[-2], states.shape[-1])


@torch.no_grad()
def batched_option_probs(
    model, processor, images: list, prompts: list[str], options: list[str], batch_size: int = 64
) -> np.ndarray:
    """(n_prompts, n_options): softmax over each option's summed answer log-likelihood.

    Pairs that share an image must pass the same image object (``is``) to share its encoding.
    """
    tok = processor.tokenizer
    dev = model_device(model)
    dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
    opt_ids = [tok(o, add_special_tokens=False)["input_ids"] for o in options]
    items = []  # (pair index, option index, prompt length, option ids, sequence, image)
    for i, (image, prompt) in enumerate(zip(images, prompts)):
        base = prompt_ids(tok, prompt)
        for k, ids in enumerate(opt_ids):
            items.append((i, k, len(base), ids, base + ids, image))
    scores = torch.zeros(len(prompts), len(options), dtype=torch.float64)
    for s in range(0, len(items), batch_size):
        chunk = items[s : s + batch_size]
        batch = prompt_batch(processor, [it[5] for it in chunk], [it[4] for it in chunk], left_pad=False)
        batch = {k: v.to(dev) for k, v in batch.items()}
        batch["pixel_values"] = batch["pixel_values"].to(dtype)
        first: dict[int, int] = {}  # id(image) -> its first row in this chunk
        owner = [first.setdefault(id(it[5]), row) for row, it in enumerate(chunk)]
        uniq = list(first.values())
        states = _vision_states(model, batch, uniq)
        index = torch.tensor([uniq.index(r) for r in owner], device=states.device)
        cross = states[index].reshape(-1, states.shape[-2], states.shape[-1])
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            cross_attention_mask=batch["cross_attention_mask"],
            cross_attention_states=cross,
        ).logits
        logp = torch.log_softmax(logits.float(), -1)
        for row, (i, k, n_base, ids, _, _) in enumerate(chunk):
            pos = torch.arange(n_base - 1, n_base - 1 + len(ids), device=logp.device)
            scores[i, k] = logp[row, pos, torch.tensor(ids, device=logp.device)].sum().double().cpu()
    return torch.softmax(scores, 1).numpy()
