"""The chat format the model reads: Llama-3.2-Vision's template, answer-only labels, batching.

    ids, labels = encode_messages(tokenizer, [{"role": "user", "content": "<image>\\nRate?"},
                                              {"role": "assistant", "content": "72 bpm"}])
    ids, labels = truncate(ids, labels, max_len, image_id)
    batch = Collator(processor)([{"input_ids": ids, "labels": labels, "image": image}])

Each turn is laid out exactly as the chat template writes it, and only assistant answers (+ their
``<|eot_id|>``) carry labels; the prompt, ``<|image|>`` and padding are ``IGNORE`` (-100). Train,
evaluate, serve and pretraining all lay prompts out through this module, so what the model is
trained on and what it is asked at inference cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ecgvlm.errors import ECGVLMError

IGNORE = -100  # label of a position the loss skips (torch's cross_entropy ignore_index)


def _content_text(content: str) -> str:
    """ECGInstruct's ``<image>\\n`` becomes the processor's ``<|image|>`` (no newline after it)."""
    return content.replace("<image>\n", "<|image|>").replace("<image>", "<|image|>")


def encode_messages(tokenizer, messages: list[dict], add_image: bool = True) -> tuple[list[int], list[int]]:
    """(input_ids, labels) laid out as the chat template does; labels only on assistant turns.

    If no turn names ``<image>``, the image goes at the start of the first user turn (Llama's place).
    """
    has_tag = any("<image>" in m["content"] for m in messages)
    ids = tokenizer.convert_tokens_to_ids(["<|begin_of_text|>"])
    labels = [IGNORE]
    placed = False

    def add(text: str, learn: bool) -> None:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        labels.extend(piece if learn else [IGNORE] * len(piece))

    for m in messages:
        text = _content_text(m["content"])
        if add_image and m["role"] == "user" and not placed and not has_tag:
            text = "<|image|>" + text
        placed = placed or "<|image|>" in text
        add(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n", False)
        if m["role"] == "assistant":
            add(text + "<|eot_id|>", True)
        else:
            add(text + "<|eot_id|>", False)
    return ids, labels


def truncate(
    ids: list[int], labels: list[int], max_len: int, image_id: int, where: str = ""
) -> tuple[list, list]:
    """Cut from the end to ``max_len``; never cut the image token (refuse if it sits past the limit)."""
    if len(ids) <= max_len:
        return ids, labels
    if image_id in ids and ids.index(image_id) >= max_len - 1:
        raise ECGVLMError(
            f"the image token is at position {ids.index(image_id)}, past max_len={max_len}", where
        )
    return ids[:max_len], labels[:max_len]


@dataclass
class Collator:
    """Pads text (right), processes images into tiles and builds the cross-attention mask.

    Shapes: pixel_values (B, 1, T, 3, H, W), aspect_ratio_ids (B, 1), aspect_ratio_mask (B, 1, T),
    cross_attention_mask (B, L, 1, T) with 1 from the ``<|image|>`` token to the end of the text,
    for valid tiles only. T is the image processor's ``max_image_tiles`` (= vision max_num_tiles).
    """

    processor: Any
    pad_to_multiple_of: int = 8

    def __call__(self, items: list[dict]) -> dict:
        import torch

        tok = self.processor.tokenizer
        pad_id = tok.pad_token_id
        image_id = tok.convert_tokens_to_ids("<|image|>")
        longest = max(len(it["input_ids"]) for it in items)
        m = self.pad_to_multiple_of
        length = int(math.ceil(longest / m) * m) if m else longest
        b = len(items)
        input_ids = torch.full((b, length), pad_id, dtype=torch.long)
        labels = torch.full((b, length), IGNORE, dtype=torch.long)
        attention = torch.zeros((b, length), dtype=torch.long)
        for i, it in enumerate(items):
            n = len(it["input_ids"])
            input_ids[i, :n] = torch.tensor(it["input_ids"])
            labels[i, :n] = torch.tensor(it["labels"])
            attention[i, :n] = 1
        labels[labels == image_id] = IGNORE  # outside lm_head's range
        images = self.processor.image_processor([[it["image"]] for it in items], return_tensors="pt")
        tiles = images["aspect_ratio_mask"].shape[-1]
        cross = torch.zeros((b, length, 1, tiles), dtype=torch.long)
        for i, it in enumerate(items):
            pos = (input_ids[i] == image_id).nonzero()
            if len(pos):
                n_tiles = int(images["num_tiles"][i][0])
                cross[i, int(pos[0]) : len(it["input_ids"]), 0, :n_tiles] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "pixel_values": images["pixel_values"],
            "aspect_ratio_ids": images["aspect_ratio_ids"],
            "aspect_ratio_mask": images["aspect_ratio_mask"],
            "cross_attention_mask": cross,
        }
