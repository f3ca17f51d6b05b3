"""A tiny learnable dataset in the instruction-row format (docs/schemas.md), shared by the CNN and
generation tests: each superclass present draws a dark block in its own column of the page, over
random trace-like lines, so a CNN can learn it from a few dozen images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ecgvlm.evaluate.cnn_data import label_names, load_imageset
from ecgvlm.signals.vocab import SUPERCLASSES

SCP_OF = {"NORM": "NORM", "MI": "IMI", "STTC": "NDT", "CD": "CLBBB", "HYP": "LVH"}


def draw_page(classes: list[str], rng: np.random.Generator, size: int = 64) -> Image.Image:
    im = Image.new("RGB", (size, size), (255, 250, 250))
    d = ImageDraw.Draw(im)
    for _ in range(4):  # distracting "traces"
        y = int(rng.integers(0, size))
        pts = [(x, y + int(rng.integers(-3, 4))) for x in range(0, size, 4)]
        d.line(pts, fill=(40, 40, 40), width=1)
    col = size // len(SUPERCLASSES)
    for j, code in enumerate(SUPERCLASSES):
        if code in classes:
            x0 = j * col + int(rng.integers(0, 3))
            y0 = int(rng.integers(size // 4, size // 2))
            d.rectangle([x0, y0, x0 + col - 4, y0 + size // 5], fill=(0, 0, 0))
    return im


def make_toy_dataset(root: Path, n: dict[str, int] | None = None, seed: int = 0, size: int = 64) -> Path:
    """Write train/val/test.json and images/ under ``root``; three rows per image."""
    n = n or {"train": 80, "val": 24, "test": 40}
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    k = 0
    for split, count in n.items():
        rows = []
        for _ in range(count):
            rid = f"toy-{k:04d}"
            k += 1
            classes = [c for c in SUPERCLASSES if rng.random() < 0.4] or ["NORM"]
            image = f"images/{rid}.png"
            draw_page(classes, rng, size).save(root / image)
            gold = {
                "scp": {SCP_OF[c]: 100 for c in classes},
                "superclasses": classes,
                "answer": ", ".join(classes),
            }
            rows.append(
                _row(rid, "superclass", image, "Which diagnostic superclasses does this ECG show?", gold)
            )
            yes = "yes" if "MI" in classes else "no"
            yn_gold = {"scp": gold["scp"], "superclasses": classes, "condition": "IMI", "answer": yes}
            rows.append(
                _row(rid, "yesno", image, "Does this ECG show inferior myocardial infarction?", yn_gold)
            )
            rows.append(_row(rid, "report", image, "Write the report.", {"answer": "sinus rhythm."}))
        (root / f"{split}.json").write_text(json.dumps(rows, indent=1))
    return root


def _row(rid: str, task: str, image: str, question: str, gold: dict) -> dict:
    return {
        "id": f"{rid}-{task}-0",
        "image": image,
        "conversations": [
            {"from": "human", "value": f"<image>\n{question}"},
            {"from": "gpt", "value": gold["answer"]},
        ],
        "metadata": {"subtask": task, "type": "close", "source": "toy", "record_id": rid, "gold": gold},
    }


def test_toy_dataset_dedupes_images_and_reads_labels(tmp_path: Path) -> None:
    make_toy_dataset(tmp_path, {"train": 6})
    rows = json.loads((tmp_path / "train.json").read_text())
    assert len(rows) == 18
    s = load_imageset(tmp_path / "train.json", label_names("scp"))
    assert len(s.images) == 6 and s.targets.shape == (6, 76)
    for i, name in enumerate(s.images):
        gold = next(r for r in rows if r["image"] == name and r["metadata"]["subtask"] == "superclass")
        want = gold["metadata"]["gold"]["superclasses"]
        assert [c for j, c in enumerate(SUPERCLASSES) if s.targets[i, j]] == want
        assert s.targets[i, 5:].sum() == len(want)  # one SCP code per superclass drawn
