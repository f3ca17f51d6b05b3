"""Balanced yes/no pretraining tasks (``y_*``): one quantity an ECG page shows against a fixed
threshold (rate above 80 bpm, QRS wider than 110 ms, T negative in lead V2, ...).

The answer is drawn first and a pooled record that fits is looked up, so for every question "yes"
and "no" are equally likely and only the image tells them apart. Why: a stage 2 of counts and
numbers alone learned the answers' prior and never used the image (the same answers on a blank
page); with these it does, and LoRA on the base then learns ECG classes (MODEL_CARD.md has the
measurements).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ecgvlm.train.pretrain_ecg import LEAD_GROUPS, NOT_AVR
from ecgvlm.train.pretrain_pages import ecg_page, measurable, pick

if TYPE_CHECKING:
    from ecgvlm.render.style import RenderStyle

_YN_Q = {
    "y_rate": ("Is the heart rate above 80 bpm?", "Is the rate faster than 80 beats per minute?"),
    "y_qrs": ("Is the QRS complex wider than 110 ms?", "Does the QRS last longer than 110 ms?"),
    "y_pr": ("Is the PR interval longer than 160 ms?", "Does the PR interval exceed 160 ms?"),
    "y_qt": ("Is the QT interval longer than 400 ms?", "Does the QT interval exceed 400 ms?"),
    "y_irregular": ("Is the rhythm irregular?", "Do the R-R intervals vary from beat to beat?"),
    "y_p": ("Is a P wave visible before the QRS complexes?", "Can you see P waves ahead of each QRS?"),
    "y_t_down": (
        "Is the T wave negative in two or more leads (aVR excluded)?",
        "Do at least two leads other than aVR show a downward T wave?",
    ),
    "y_st_low": (
        "Does the ST segment sit 0.1 mV or more below the baseline in any lead (aVR excluded)?",
        "Is the ST segment 2 mm or more under the baseline in some lead other than aVR?",
    ),
    "y_st_up": (
        "Does the ST segment rise 0.1 mV or more above the baseline in any lead (aVR excluded)?",
        "Is the ST segment 2 mm or more above the baseline in some lead other than aVR?",
    ),
    "y_r_tall": ("Is the tallest R wave on the page more than 25 mm high?", "Does any R wave exceed 25 mm?"),
    "y_s_deep": ("Is the deepest S wave on the page more than 25 mm deep?", "Does any S wave reach below 25 mm?"),
    "y_beats": (
        "Are there more than 6 beats in the rhythm strip?",
        "Does the long strip show more than 6 QRS complexes?",
    ),
    "y_t_lead": ("Is the T wave in lead {lead} upside down?", "Does lead {lead} show a negative T wave?"),
    "y_neg_lead": ("Is the QRS in lead {lead} mainly negative?", "Does the QRS in lead {lead} point mostly down?"),
    "y_q_group": (
        "Do two or more of leads {g} begin the QRS with a wide negative wave?",
        "Is there a wide initial negative QRS wave in at least two of leads {g}?",
    ),
}  # fmt: skip
YESNO_TASKS = tuple(_YN_Q)
YESNO_FRACTION = 0.8  # share of the stage-2 stream (PretrainConfig.yesno_fraction)
_YN_LEADS = ("I", "II", "III", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def yesno_truth(task: str, d: dict, style: RenderStyle, subject: str | None) -> bool | None:
    """The true answer of yes/no ``task`` on a page's features (``subject``: the lead or lead group
    the question names), or None if not measured."""
    lead_groups = LEAD_GROUPS.get(subject or "", ())
    truth = {
        "y_rate": lambda: d["hr"] > 80,
        "y_qrs": lambda: d["qrs"] > 110,
        "y_pr": lambda: d["pr"] > 160 if "pr" in d else None,
        "y_qt": lambda: d["qt"] > 400 if "qt" in d else None,
        "y_irregular": lambda: d["rr_cv"] > 0.08,
        "y_p": lambda: bool(d["p_present"]),
        "y_t_down": lambda: sum(d["t_amp"][ld] < -0.1 for ld in NOT_AVR) >= 2,
        "y_st_low": lambda: any(d["st"][ld] <= -0.1 for ld in NOT_AVR),
        "y_st_up": lambda: any(d["st"][ld] >= 0.1 for ld in NOT_AVR),
        "y_r_tall": lambda: max(d["r_amp"].values()) * style.gain > 25,
        "y_s_deep": lambda: max(d["s_amp"].values()) * style.gain > 25,
        "y_beats": lambda: d["strip_beats"] > 6,
        "y_t_lead": lambda: d["t_amp"][subject] < -0.1,
        "y_neg_lead": lambda: d["s_amp"][subject] > d["r_amp"][subject],
        "y_q_group": lambda: sum(d["q"][ld][0] >= 30 and d["q"][ld][1] >= 0.1 for ld in lead_groups) >= 2,
    }[task]()
    return None if truth is None else bool(truth)


def yesno_example(task: str, seed: int, rng: np.random.Generator, record_pool: int) -> tuple | None:
    """(page, question, answer) with the answer drawn first; None if no pooled record fits soon."""
    subject = None  # the lead or lead group the question names, if any
    if task in ("y_t_lead", "y_neg_lead"):
        subject = pick(rng, _YN_LEADS)
    elif task == "y_q_group":
        subject = pick(rng, tuple(LEAD_GROUPS))
    want = bool(rng.random() < 0.5)
    question = pick(rng, _YN_Q[task]).format(lead=subject, g=subject)
    for _try in range(40):
        image, feats, style = ecg_page(seed, int(rng.integers(record_pool)))
        if measurable(feats) and yesno_truth(task, feats, style, subject) is want:
            return image, question, "yes" if want else "no"
    return None
