"""Batched answer scoring: many (image, question, answer) triples per forward, vision encoded once.

``ecgvlm.model.infer.option_probs`` scores one prompt per forward and re-encodes the image each
time. The interpreter asks every image a dozen questions, and the server wants a whole micro-batch
at once, so here each distinct image goes through the vision tower once and its cross-attention
states are shared by all of its questions. The prompt layout is infer's own (its public helpers), so the
probabilities equal ``option_probs(..., mode="sequence")`` (checked in tests).

``label_set_probs`` turns a list-valued answer ("MI, STTC") into one probability per label.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import torch

from ecgvlm.model.infer import model_device, model_dtype, prompt_ids


def _mllama(model):
    """The ``MllamaModel`` inside a plain or PEFT-wrapped ``MllamaForConditionalGeneration``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model


def _vision_states(model, pixels: dict, dtype: torch.dtype, chunk: int = 16) -> torch.Tensor:
    """Projected vision states of preprocessed images: (images, tiles, patches, hidden)."""
    mm = _mllama(model)
    dev = model_device(model)
    parts = []
    for s in range(0, len(pixels["pixel_values"]), chunk):
        out = mm.vision_model(
            pixel_values=pixels["pixel_values"][s : s + chunk].to(dev, dtype),
            aspect_ratio_ids=pixels["aspect_ratio_ids"][s : s + chunk].to(dev),
            aspect_ratio_mask=pixels["aspect_ratio_mask"][s : s + chunk].to(dev),
        ).last_hidden_state
        states = mm.multi_modal_projector(out)
        parts.append(states.reshape(states.shape[0], -1, states.shape[-2], states.shape[-1]))
    return torch.cat(parts)


@torch.no_grad()
def batched_option_probs(
    model, processor, images: list, prompts: list[str], options: list[str], batch_size: int = 64
) -> np.ndarray:
    """(n_prompts, n_options): softmax over each option's summed answer log-likelihood.

    Pairs that share an image must pass the same image object (``is``) to share its encoding:
    each distinct image is preprocessed and encoded once per call.
    """
    tok = processor.tokenizer
    dev = model_device(model)
    dtype = model_dtype(model)
    image_id = tok.convert_tokens_to_ids("<|image|>")
    slot: dict[int, int] = {}  # id(image) -> its index among the distinct images
    distinct = []
    for im in images:
        if id(im) not in slot:
            slot[id(im)] = len(distinct)
            distinct.append(im)
    pixels = processor.image_processor([[im] for im in distinct], return_tensors="pt")
    states = _vision_states(model, pixels, dtype)
    n_tiles = [int(t[0]) for t in pixels["num_tiles"]]
    tiles = pixels["aspect_ratio_mask"].shape[-1]
    opt_ids = [tok(o, add_special_tokens=False)["input_ids"] for o in options]
    items = []  # (pair index, option index, prompt length, option ids, sequence, image slot)
    for i, (image, prompt) in enumerate(zip(images, prompts)):
        base = prompt_ids(tok, prompt)
        for k, ids in enumerate(opt_ids):
            items.append((i, k, len(base), ids, base + ids, slot[id(image)]))
    scores = torch.zeros(len(prompts), len(options), dtype=torch.float64)
    for s in range(0, len(items), batch_size):
        chunk = items[s : s + batch_size]
        length = max(len(it[4]) for it in chunk)
        input_ids = torch.full((len(chunk), length), tok.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(chunk), length), dtype=torch.long)
        cross = torch.zeros((len(chunk), length, 1, tiles), dtype=torch.long)
        for row, (_, _, _, _, seq, j) in enumerate(chunk):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            attention[row, : len(seq)] = 1
            at = seq.index(image_id) if image_id in seq else None
            if at is not None:  # as the training collator: from <|image|> to the end of the text
                cross[row, at : len(seq), 0, : n_tiles[j]] = 1
        logits = model(
            input_ids=input_ids.to(dev),
            attention_mask=attention.to(dev),
            cross_attention_mask=cross.to(dev),
            cross_attention_states=states[[it[5] for it in chunk]].reshape(-1, *states.shape[-2:]),
        ).logits
        logp = torch.log_softmax(logits.float(), -1)
        for row, (i, k, n_base, ids, _, _) in enumerate(chunk):
            pos = torch.arange(n_base - 1, n_base - 1 + len(ids), device=logp.device)
            scores[i, k] = logp[row, pos, torch.tensor(ids, device=logp.device)].sum().double().cpu()
    return torch.softmax(scores, 1).numpy()


EOT = "<|eot_id|>"


def label_subsets(labels: list[str] | tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``labels``, each kept in the order of ``labels``."""
    return [c for k in range(1, len(labels) + 1) for c in combinations(labels, k)]


def label_set_probs(
    model, processor, images: list, prompts: list[str], labels: list[str] | tuple[str, ...]
) -> np.ndarray:
    """(n_prompts, n_labels): P(label is in the answer) for questions answered with a label list.

    A model trained to answer "Which superclasses ...?" with "MI, STTC" (labels in a fixed order,
    joined by ", ", then end of turn) defines a distribution over label sets. Each of the
    2^n - 1 non-empty sets is scored as a whole answer and normalised, and a label's probability is
    the mass of the sets that hold it. Unlike asking "Does this ECG show X?", this needs no yes/no
    training, and unlike the likelihood of X as the first code it does not underrate labels that
    come late in the fixed order. For n = 5 that is 31 short answers per image, sharing one vision
    pass.
    """
    if len(labels) > 8:
        raise ValueError(f"{len(labels)} labels make {2 ** len(labels) - 1} answer sets; use at most 8")
    subsets = label_subsets(labels)
    answers = [", ".join(s) + EOT for s in subsets]
    probs = batched_option_probs(model, processor, images, prompts, answers)
    member = np.array([[lab in s for lab in labels] for s in subsets], dtype=np.float64)
    return probs @ member
