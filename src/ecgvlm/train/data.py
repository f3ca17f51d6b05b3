"""ECGInstruct rows -> model batches: chat template, answer-only labels, tile-aware image batching.

A row (see docs/schemas.md) holds an image path relative to the dataset file's folder and a
``conversations`` (or ``conversation``) list of human/gpt (or user/assistant) turns; ``<image>``
in the first human turn marks where the image goes. Each turn is laid out exactly as the
Llama-3.2-Vision chat template writes it, and only assistant answers (+ their ``<|eot_id|>``)
carry labels; the prompt, ``<|image|>`` and padding are -100.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import read_jsonl, resolve_inside

IGNORE = -100
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
MAX_IMAGE_PIXELS = 64_000_000  # a "page" bigger than this is refused, not decoded


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a ``.json`` (list) or ``.jsonl`` instruction file."""
    path = Path(path)
    if not path.is_file():
        raise ECGVLMError("dataset file not found", path)
    if path.suffix == ".jsonl":
        return list(read_jsonl(path))
    try:
        rows = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ECGVLMError(f"invalid JSON ({e})", path) from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ECGVLMError("expected a JSON list of row objects", path)
    return rows


def select_sources(rows: list[dict], sources: str = "all") -> list[dict]:
    """Filter rows by ``metadata.source``: "all", "ptbxl+synth" (only these), "-ptbxl" (all but)."""
    if not sources or sources == "all":
        return rows
    items = [s.strip() for s in str(sources).replace(",", "+").split("+") if s.strip()]
    drop = {s[1:] for s in items if s.startswith("-")}
    keep = {s for s in items if not s.startswith("-")}

    def ok(row: dict) -> bool:
        src = (row.get("metadata") or {}).get("source")
        return (not keep or src in keep) and src not in drop

    return [r for r in rows if ok(r)]


def messages_of(row: dict, where: str | Path = "") -> list[dict]:
    """Normalised chat messages: roles user/assistant/system, ``<image>`` -> an image part."""
    turns = row.get("conversations", row.get("conversation"))
    if not isinstance(turns, list) or not turns:
        raise ECGVLMError(f"row {row.get('id')!r}: no conversations list", where)
    out = []
    for t in turns:
        role = _ROLES.get(str(t.get("from", t.get("role", ""))).lower()) if isinstance(t, dict) else None
        value = t.get("value", t.get("content")) if isinstance(t, dict) else None
        if role is None or not isinstance(value, str):
            raise ECGVLMError(f"row {row.get('id')!r}: bad turn {str(t)[:60]!r}", where)
        out.append({"role": role, "content": value})
    if not any(m["role"] == "assistant" for m in out):
        raise ECGVLMError(f"row {row.get('id')!r}: no assistant answer", where)
    return out


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


def prompt_text(prompt: str) -> list[dict]:
    """A single-turn user message for inference (``<image>`` tag optional)."""
    return [{"role": "user", "content": prompt}]


def load_image(root: str | Path, rel: str, where: str | Path = ""):
    from PIL import Image

    if not isinstance(rel, str) or not rel:
        raise ECGVLMError("row has no image path", where)
    path = resolve_inside(root, rel)
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise ECGVLMError("image not found", path) from None
    except (OSError, Image.DecompressionBombError, ValueError) as e:
        raise ECGVLMError(f"cannot read image ({e})", path) from None


class InstructDataset:
    """Tokenised rows of one instruction file; images are read lazily in ``__getitem__``."""

    def __init__(
        self, path: str | Path, tokenizer, max_len: int = 512, sources: str = "all", image_root=None
    ):
        self.path = Path(path)
        self.root = Path(image_root) if image_root else self.path.parent
        self.rows = select_sources(read_rows(self.path), sources)
        if not self.rows:
            raise ECGVLMError(f"no rows left (sources={sources!r})", self.path)
        self.tokenizer = tokenizer
        self.max_len = max_len
        image_id = tokenizer.convert_tokens_to_ids("<|image|>")
        self.items = []
        for row in self.rows:
            ids, labels = encode_messages(tokenizer, messages_of(row, self.path))
            ids, labels = truncate(ids, labels, max_len, image_id, where=f"{self.path} row {row.get('id')!r}")
            self.items.append((ids, labels))

    def __len__(self) -> int:
        return len(self.rows)

    def lengths(self) -> list[int]:
        return [len(ids) for ids, _ in self.items]

    def tasks(self) -> list[str]:
        """Each row's ``metadata.subtask`` ("other" when a row names none)."""
        out = []
        for row in self.rows:
            task = (row.get("metadata") or {}).get("subtask")
            out.append(task if isinstance(task, str) and task else "other")
        return out

    def task_counts(self) -> dict[str, int]:
        """Rows per task (see ``tasks``), sorted by task."""
        counts: dict[str, int] = {}
        for task in self.tasks():
            counts[task] = counts.get(task, 0) + 1
        return dict(sorted(counts.items()))

    def curriculum(self, spec: str | None, batch_size: int) -> tuple[list[int], int]:
        """Rows and batch count of an opening curriculum "TASK[+TASK]:N" (none: ``([], 0)``)."""
        if not spec:
            return [], 0
        names, _, count = str(spec).rpartition(":")
        wanted = {t.strip() for t in names.split("+") if t.strip()}
        if not wanted or not count.isdigit():
            raise ECGVLMError(
                f"data.curriculum must look like 'superclass:200' (TASK[+TASK]:BATCHES), got {spec!r}"
            )
        rows = [i for i, t in enumerate(self.tasks()) if t in wanted]
        if not rows:
            raise ECGVLMError(
                f"data.curriculum names tasks with no rows: {', '.join(sorted(wanted))}", self.path
            )
        return rows, min(int(count), len(rows) // batch_size)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ids, labels = self.items[i]
        row = self.rows[i]
        return {
            "input_ids": ids,
            "labels": labels,
            "image": load_image(self.root, row.get("image"), self.path),
        }


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


def epoch_batches(
    n: int,
    batch_size: int,
    seed: int,
    epoch: int,
    lengths: list[int] | None = None,
    group_by_length: bool = False,
    opening: tuple[list[int], int] = ([], 0),
) -> list[list[int]]:
    """The global batches of one epoch: a seeded permutation, optionally length-grouped.

    Length grouping sorts each window of 50 batches by length (longest first) so padding shrinks
    while the order stays random between windows. ``opening`` = (rows, k): the first epoch starts
    with k batches of those rows only (a curriculum: e.g. the short superclass answers first, so a
    fine-tune finds its way from the image to the answer before long reports compete for the
    steps); every row is still seen once per epoch. A pure function of its arguments: resuming at
    (epoch, position) replays exactly the batches an uninterrupted run would see.
    """
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    head: list[list[int]] = []
    rows, k = opening
    if epoch == 0 and k > 0:
        allowed = set(rows)
        first = [i for i in order if i in allowed][: k * batch_size]
        head = [first[i : i + batch_size] for i in range(0, len(first), batch_size)]
        taken = set(first)
        order = [i for i in order if i not in taken]
        n = len(order)
    if group_by_length and lengths is not None:
        window = batch_size * 50
        chunks = [order[i : i + window] for i in range(0, n, window)]
        order = [j for c in chunks for j in sorted(c, key=lambda k: -lengths[k])]
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if group_by_length and len(batches) > 1:
        perm = torch.randperm(len(batches), generator=g).tolist()
        batches = [batches[p] for p in perm]
    return head + batches
