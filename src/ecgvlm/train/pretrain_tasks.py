"""Pretraining examples for the tiny base: trace-reading on paper-like grids, never a diagnosis.

Three families, all drawn on pages the size of an ``ecgvlm dataset build`` page (440x340 px at the
default 40 dpi), so the base sees what the instruction datasets show it later:

- generic pages (``g_*`` tasks, ``pretrain_generic``): synthetic traces on a grid — count peaks,
  period and amplitude in large squares, which of two traces is taller or faster, spike direction
  and width, the shape of a wave, printed labels and numbers to read back, which panel carries a label;
- ECG pages (``e_*`` tasks, ``pretrain_ecg``) drawn by ``ecgvlm.render`` from ``synthesize_record``
  with questions whose answers are measured on the signal: the lead in a panel, beats in the rhythm
  strip, heart rate, QRS/PR/QT in ms, R height and S depth in mm, QRS polarity, T direction, ST
  level, regularity.
- balanced yes/no questions about ECG pages (``y_*`` tasks, ``pretrain_yesno``): one measured
  quantity against a fixed threshold (rate above 80 bpm, QRS wider than 110 ms, T negative in lead
  V2, ...), the answer drawn first so "yes" and "no" are equally likely and only the page can tell
  them apart.

The ECG pages come from one memoised pool (``pretrain_pages``). No question asks for a diagnosis, a
superclass or an SCP statement (``FORBIDDEN_WORDS`` is checked by the tests), so the base stays at
chance on ECG classification. Every token the later ECG tasks answer with is an answer here too: the
printed labels include NORM, MI, STTC, CD and HYP, yes/no questions are frequent and numbers are
answered digit by digit, so the rows of ``lm_head`` (frozen under LoRA) for those tokens are trained.

``make_example(seed, index)`` is a pure function of its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ecgvlm.train.pretrain_ecg import ECG_TASKS, ecg_example
from ecgvlm.train.pretrain_generic import GENERIC_DRAW, GENERIC_TASKS, generic_example
from ecgvlm.train.pretrain_pages import pick
from ecgvlm.train.pretrain_yesno import YESNO_FRACTION, YESNO_TASKS, yesno_example

# Words a pretraining question must never contain: diagnoses and class names. The five codes may
# appear only as printed labels on generic pages (never on an ECG page, never as an ECG's answer).
FORBIDDEN_WORDS = (
    "diagnos", "superclass", "infarct", "hypertroph", "ischem", "ischaem", "bundle branch", "block",
    "fibrillation", "flutter", "normal", "abnormal", "scp", "ptb", "condition", "disease", "class",
)  # fmt: skip
TASKS = GENERIC_TASKS + ECG_TASKS + YESNO_TASKS


@dataclass
class Example:
    image: Image.Image
    question: str
    answer: str
    task: str


def make_example(
    seed: int,
    index: int,
    ecg_fraction: float = 0.75,
    record_pool: int = 6000,
    yesno_fraction: float = YESNO_FRACTION,
    yesno_task: str | None = None,
) -> Example:
    """Example ``index`` of the stream ``seed``: a pure function of (seed, index, options).

    A share ``yesno_fraction`` of the stream are balanced yes/no questions about ECG pages; of the
    rest, ``ecg_fraction`` are measurement questions about ECG pages and the others generic pages.
    ``yesno_task`` makes every example that one yes/no question (stage 2's first steps).
    """
    if yesno_task is not None and yesno_task not in YESNO_TASKS:
        raise ValueError(f"unknown yes/no task {yesno_task!r}; one of {', '.join(YESNO_TASKS)}")
    rng = np.random.default_rng([int(seed), int(index), 1])
    for _attempt in range(20):
        if yesno_task is not None or rng.random() < yesno_fraction:
            task = yesno_task or pick(rng, YESNO_TASKS)
            out = yesno_example(task, seed, rng, record_pool)
            if out is None:
                continue
        elif rng.random() < ecg_fraction:
            task = pick(rng, ECG_TASKS)
            out = ecg_example(task, seed, rng, record_pool)
            if out is None:
                continue
        else:
            task = pick(rng, GENERIC_DRAW)
            out = generic_example(task, rng)
        image, question, answer = out
        return Example(image=image, question=question, answer=answer, task=task)
    raise RuntimeError(f"no example for seed {seed} index {index}")
