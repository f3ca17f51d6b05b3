"""ECGInstruct rows -> training items: the tokenised dataset and each epoch's batches.

A row (see docs/schemas.md) holds an image path relative to the dataset file's folder and a
``conversations`` (or ``conversation``) list of human/gpt (or user/assistant) turns; ``<image>``
in the first human turn marks where the image goes. Rows are read and checked by
``ecgvlm.instruct.reader`` (the one reader of the format); the chat layout, truncation and the
collator live in ``ecgvlm.model.chat`` (the same layout serves inference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecgvlm.errors import ECGVLMError
from ecgvlm.instruct.reader import Row, read_rows
from ecgvlm.io import load_image
from ecgvlm.model.chat import encode_messages, truncate


def select_sources(rows: list[Row], sources: str = "all") -> list[Row]:
    """Filter rows by ``metadata.source``: "all", "ptbxl+synth" (only these), "-ptbxl" (all but)."""
    if not sources or sources == "all":
        return rows
    items = [s.strip() for s in str(sources).replace(",", "+").split("+") if s.strip()]
    drop = {s[1:] for s in items if s.startswith("-")}
    keep = {s for s in items if not s.startswith("-")}

    def ok(row: Row) -> bool:
        src = row.metadata.get("source")
        return (not keep or src in keep) and src not in drop

    return [r for r in rows if ok(r)]


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
            ids, labels = encode_messages(tokenizer, row.messages)
            ids, labels = truncate(ids, labels, max_len, image_id, where=f"{self.path} row {row.id!r}")
            self.items.append((ids, labels))

    def __len__(self) -> int:
        return len(self.rows)

    def lengths(self) -> list[int]:
        return [len(ids) for ids, _ in self.items]

    def tasks(self) -> list[str]:
        """Each row's ``metadata.subtask`` ("other" when a row names none)."""
        out = []
        for row in self.rows:
            task = row.task
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
            "image": load_image(self.root, row.image, self.path),
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
