"""Shared helpers for the model/train tests: a tiny model and a tiny ECGInstruct-format dataset."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

ANSWERS = ["NORM", "MI"]


def make_dataset(root: Path, n: int = 16, size: int = 224, seed: int = 0, multi_turn: bool = False) -> Path:
    """``n`` rows: a page with a flat (NORM) or a spiky (MI) trace; the answer is the class code."""
    import random

    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        label = ANSWERS[i % 2]
        img = Image.new("RGB", (size, size), (255, 240, 240))
        d = ImageDraw.Draw(img)
        y0 = size // 2
        pts = []
        for x in range(0, size, 4):
            spike = label == "MI" and (x // 4) % 10 == 0
            pts.append((x, y0 - (size // 3 if spike else rng.randint(-2, 2))))
        d.line(pts, fill=(0, 0, 0), width=2)
        rel = f"images/p{i:03d}.png"
        img.save(root / rel)
        conv = [
            {"from": "human", "value": "<image>\nWhich diagnostic superclass does this ECG show?"},
            {"from": "gpt", "value": label},
        ]
        if multi_turn:
            conv += [
                {"from": "human", "value": "Is it normal?"},
                {"from": "gpt", "value": "yes" if label == "NORM" else "no"},
            ]
        rows.append(
            {
                "id": f"toy-{i}",
                "image": rel,
                "conversations": conv,
                "metadata": {
                    "subtask": "superclass",
                    "type": "close",
                    "source": "synth" if i % 4 else "ptbxl",
                    "gold": {"answer": label},
                },
            }
        )
    (root / "train.json").write_text(json.dumps(rows))
    return root / "train.json"
