"""One record of a dataset build -> its *unit*: the rendered page and the rows asking about it.

Everything random about a record (split, page style, augmentation, questions) is drawn from a
generator seeded by (seed, record id), never from shared state, so a unit does not depend on which
worker made it or in what order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ecgvlm.instruct.config import BuildConfig, parse_source
from ecgvlm.instruct.sources import safe_name
from ecgvlm.instruct.tasks import QA, make_questions
from ecgvlm.io import atomic_write_bytes
from ecgvlm.signals.record import ECGRecord
from ecgvlm.signals.vocab import superclasses_of

# "mixed" draws per record with these weights.
MIXED_AUGMENT = {"none": 0.4, "light": 0.4, "heavy": 0.2}


def _hash_unit(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little")


def record_rng(seed: int, record_id: str, stream: str = "page") -> np.random.Generator:
    return np.random.default_rng([seed, _hash_unit(stream, record_id)])


def load_record(cfg: BuildConfig, key: str, payload: Any) -> ECGRecord:
    if isinstance(payload, ECGRecord):
        return payload
    if isinstance(payload, int):
        from ecgvlm.signals.synth import synthesize_record

        conditions = None
        if cfg.conditions:
            conditions = [cfg.conditions[_hash_unit(cfg.seed, payload, "condition") % len(cfg.conditions)]]
        return synthesize_record(cfg.seed, payload, conditions=conditions)
    from ecgvlm.signals.readers import read_record

    return read_record(payload)


def assign_split(record: ECGRecord, cfg: BuildConfig) -> str:
    """PTB-XL folds 1-8 / 9 / 10 when the record has one; otherwise a hash of (seed, record id)."""
    fold = record.meta.get("strat_fold")
    if fold is not None and parse_source(cfg.source)[0] == "ptbxl":
        fold = int(fold)
        return "test" if fold == 10 else "val" if fold == 9 else "train"
    u = _hash_unit("split", cfg.seed, record.id) / 2.0**64
    train, val, _ = cfg.split
    return "train" if u < train else "val" if u < train + val else "test"


def _choose(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _clean_labels(labels: dict[str, float]) -> dict[str, int]:
    return {str(c): int(round(float(v))) for c, v in labels.items()}


def _clean_measurements(m: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 1) for k, v in m.items() if v is not None and np.isfinite(v)}


def make_unit(cfg: BuildConfig, out: Path, key: str, record: ECGRecord) -> dict[str, Any]:
    """Render one record, write its image, and return its rows and facts (the unit)."""
    name = safe_name(key)
    rid = record.id or key
    split = assign_split(record, cfg)
    labels = _clean_labels(record.labels)
    measurements = _clean_measurements(record.measurements)
    n = None if (split == "test" and cfg.test_all_tasks) else cfg.questions_per_record
    # Separate streams for questions and looks, so changing one option does not reshuffle the other.
    qas = make_questions(
        labels,
        measurements,
        cfg.tasks,
        n,
        record_rng(cfg.seed, rid, "questions"),
        cfg.step_by_step,
        cfg.report_lead,
    )
    if not qas:
        # An unlabelled record without measurements: any answer would be invented. Not rendered.
        return {"key": key, "skipped": "no SCP label or measurement to ask about"}

    image_rel = f"images/{name}.{cfg.image_format}"
    style_facts = render_page(cfg, record, rid, out / image_rel)
    shared = {
        "source": str(record.meta.get("source") or parse_source(cfg.source)[0]),
        "record_id": rid,
        "split": split,
    }
    common = {"scp": labels, "superclasses": superclasses_of(labels), "measurements": measurements}
    return {
        "key": key,
        "record_id": rid,
        "image": image_rel,
        "split": split,
        "labels": labels,
        "style": style_facts,
        "rows": question_rows(qas, name, image_rel, shared, common, record.meta.get("report")),
    }


def render_page(cfg: BuildConfig, record: ECGRecord, rid: str, path: Path) -> dict[str, Any]:
    """Draw the record's page in its own seeded look, write it to ``path``; returns the look's facts."""
    from ecgvlm.render import RenderStyle, render
    from ecgvlm.render.style import STYLE_PRESETS

    rng = record_rng(cfg.seed, rid, "page")
    layout = _choose(rng, cfg.layouts())
    augment = _choose(rng, MIXED_AUGMENT) if cfg.augment == "mixed" else cfg.augment
    # --dpi applies unless a preset fixes the resolution it was designed for
    fixed = {} if "dpi" in STYLE_PRESETS.get(cfg.style, {}) else {"dpi": cfg.dpi}
    style = RenderStyle.preset(cfg.style, rng, **fixed)
    render_seed = int(rng.integers(2**31))
    page = render(record, layout=layout, augment=augment, seed=render_seed, style=style)
    if cfg.sidecars != "none":
        page.save(path, sidecar=cfg.sidecars)
    else:
        atomic_write_bytes(path, page.encode(cfg.image_format))
    height, width = page.array.shape[:2]
    return {
        "layout": layout,
        "augment": augment,
        "paper": style.paper,
        "grid": style.grid_color,
        "speed": style.speed,
        "gain": style.gain,
        "header_measurements": bool(style.header and style.header_measurements),
        "size": [width, height],
    }


def question_rows(
    qas: list[QA], name: str, image_rel: str, shared: dict[str, str], common: dict[str, Any], clinician: Any
) -> list[dict[str, Any]]:
    """One ECGInstruct row per question. ``shared``: the metadata all the record's rows carry
    (source, record_id, split); ``common``: the gold facts they share (labels, measurements)."""
    rows = []
    for k, qa in enumerate(qas):
        gold = {**common, **qa.gold}
        if qa.subtask == "report" and isinstance(clinician, str) and clinician.strip():
            gold["clinician_report"] = clinician.strip()  # PTB-XL's own text (often German), for reference
        rows.append(
            {
                "id": f"{name}-{qa.subtask}-{k}",
                "image": image_rel,
                "conversations": [
                    {"from": "human", "value": "<image>\n" + qa.question},
                    {"from": "gpt", "value": qa.answer},
                ],
                "metadata": {"subtask": qa.subtask, "type": qa.type, **shared, "gold": gold},
            }
        )
    return rows
