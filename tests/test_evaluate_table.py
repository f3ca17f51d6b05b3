"""`ecgvlm table` on two hand-made scored runs, and on a hand-made sweep."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from ecgvlm.cli import main as cli

SUPER = ["NORM", "MI", "STTC", "CD", "HYP"]


def make_run(root, name: str, skill: float, seed: int):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(60):
        gold = [c for c in SUPER if rng.random() < 0.3] or ["NORM"]
        scores = {
            c: float(np.clip((0.3 + skill if c in gold else 0.3) + rng.normal(0, 0.2), 0, 1)) for c in SUPER
        }
        text = ", ".join(c for c in SUPER if scores[c] >= 0.5) or "NORM"
        rows.append(
            {
                "id": f"s{i}",
                "task": "superclass",
                "prompt": "Which superclasses?",
                "prediction": text,
                "reference": ", ".join(gold),
                "gold": {"superclasses": gold},
                "scores": scores,
            }
        )
    for i, (pred, ref) in enumerate(
        [
            ("Sinus rhythm. Normal ECG.", "Sinus rhythm, normal ECG."),
            (
                "Atrial fibrillation." if skill < 0.3 else "Sinus rhythm, inferior infarction.",
                "Sinus rhythm. Inferior infarction, probably old.",
            ),
        ]
    ):
        rows.append(
            {
                "id": f"r{i}",
                "task": "report",
                "prediction": pred,
                "reference": ref,
                "gold": {},
                "scores": None,
            }
        )
    for i, letter in enumerate("ABCD"):
        rows.append(
            {
                "id": f"m{i}",
                "task": "mcq",
                "prediction": letter if skill > 0.3 or i % 2 else "A",
                "reference": letter,
                "gold": {"answer": letter},
                "scores": None,
            }
        )
    run = root / name
    run.mkdir(parents=True)
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = str(run / "predictions.jsonl")
    for extra in (
        ["--benchmark", "ptbxl-super", "--mode", "ecgbench"],
        ["--benchmark", "ptbxl-super", "--mode", "strict", "--bootstrap", "100"],
        ["--benchmark", "report", "--judge", "findings"],
        ["--benchmark", "mcq", "--mode", "ecgbench"],
    ):
        assert cli(["score", "--predictions", p, *extra]) == 0
    return run


def test_table_two_runs(tmp_path, capsys):
    a = make_run(tmp_path, "run_a", 0.15, 1)
    b = make_run(tmp_path, "run_b", 0.45, 2)
    out = tmp_path / "table"
    assert cli(["table", str(a), str(b), "--names", "base,finetuned", "--out", str(out)]) == 0
    md = (out / "table.md").read_text()
    assert "| Task | Mode | Metric | base | finetuned |" in md
    assert "ptbxl-super | strict | AUC" in md and "report | findings | report score" in md and "**" in md
    t = json.loads((out / "table.json").read_text())
    auc_row = next(
        r for r in t["rows"] if (r["benchmark"], r["mode"], r["metric"]) == ("ptbxl-super", "strict", "auc")
    )
    assert auc_row["best"] == [1] and auc_row["values"][1] > auc_row["values"][0]
    ham = next(r for r in t["rows"] if r["metric"] == "hamming" and r["mode"] == "strict")
    assert ham["better"] == "lower" and ham["best"] == [int(np.argmin(ham["values"]))]
    for name in ("roc.png", "per_class.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.width > 400 and im.height > 200
    first = (out / "table.md").read_bytes(), (out / "roc.png").read_bytes()
    assert cli(["table", str(a), str(b), "--names", "base,finetuned", "--out", str(out)]) == 0
    assert ((out / "table.md").read_bytes(), (out / "roc.png").read_bytes()) == first  # deterministic
    capsys.readouterr()
    assert cli(["table", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "no metrics.json" in capsys.readouterr().err


def test_sweep_table_and_plots(tmp_path):
    sweep = tmp_path / "sweep"
    for r, lr, auc, wall in [
        (4, 1e-4, 70.0, 60.0),
        (8, 1e-4, 74.0, 70.0),
        (16, 1e-4, 73.0, 90.0),
        (8, 3e-4, 76.5, 71.0),
    ]:
        p = sweep / "points" / f"r{r}_lr{lr:g}"
        p.mkdir(parents=True)
        (p / "metrics.json").write_text(
            json.dumps(
                {
                    "schema": "ecgvlm.metrics/1",
                    "benchmarks": {
                        "ptbxl-super": {"strict": {"auc": auc, "f1": auc - 20, "hamming": 100 - auc}}
                    },
                }
            )
        )
        (p / "point.json").write_text(
            json.dumps(
                {"values": {"lora_r": r, "lr": lr}, "cost": {"trainable_params": r * 1000, "wall_s": wall}}
            )
        )
    out = tmp_path / "out"
    assert cli(["table", "--sweep", str(sweep), "--out", str(out)]) == 0
    t = json.loads((out / "sweep.json").read_text())
    assert len(t["rows"]) == 4
    best_auc = t["best"]["ptbxl-super/strict/auc"]
    assert [t["rows"][i]["point"] for i in best_auc] == ["r8_lr0.0003"]
    assert [t["rows"][i]["point"] for i in t["best"]["wall_s"]] == ["r4_lr0.0001"]
    assert "**76.5**" in (out / "sweep.md").read_text()
    for key in ("lora_r", "lr"):
        with Image.open(out / f"sweep_{key}.png") as im:
            assert im.format == "PNG"
