"""ECG measurement pretraining tasks (``e_*``): questions about a pooled ECG page whose answers are
measured on the record's signal: the beats in the rhythm strip, heart rate, QRS and PR in small
squares or ms, R height and S depth in mm, QRS polarity, T direction, ST level, Q waves per group."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ecgvlm.signals.record import LEADS
from ecgvlm.train.pretrain_pages import ecg_page, measurable, pick

if TYPE_CHECKING:
    from ecgvlm.render.style import RenderStyle

# Lead groups the questions name (anatomical neighbours; asking per group, not per lead, keeps the
# answer a count the page shows at the tiny model's resolution).
LEAD_GROUPS = {
    "II, III and aVF": ("II", "III", "aVF"),
    "V1 to V4": ("V1", "V2", "V3", "V4"),
    "I, aVL, V5 and V6": ("I", "aVL", "V5", "V6"),
}
NOT_AVR = tuple(lead for lead in LEADS if lead != "aVR")
_ECG_Q = {
    "e_rate": ("What is the heart rate in bpm?", "Estimate the ventricular rate in beats per minute."),
    "e_beats": ("How many beats are in the rhythm strip?", "Count the QRS complexes in the long strip."),
    "e_qrs": ("How many small squares wide is the QRS complex?", "QRS duration in small squares?"),
    "e_qrs_ms": ("What is the QRS duration in ms?", "How long is the QRS complex, in milliseconds?"),
    "e_pr": ("How many small squares long is the PR interval?", "PR interval in small squares?"),
    "e_t_down": (
        "In how many leads does the T wave point downward?",
        "Count the leads with a negative T wave (aVR excluded).",
    ),
    "e_st_low": (
        "In how many leads does the ST segment sit at least 0.1 mV below the baseline?",
        "Count the leads whose ST segment is 2 mm or more under the baseline (aVR excluded).",
    ),
    "e_q_group": (
        "In how many of leads {g} does the QRS begin with a negative wave of at least 30 ms?",
        "Count the leads among {g} whose first QRS deflection is a wide negative wave.",
    ),
    "e_r_max": ("How tall is the tallest R wave on the page, in mm?", "Height of the tallest R wave in mm?"),
    "e_s_max": ("How deep is the deepest S wave on the page, in mm?", "Depth of the deepest S wave in mm?"),
    "e_negative": (
        "In how many leads is the QRS mainly negative?",
        "Count the leads whose QRS points mostly downward (aVR excluded).",
    ),
    "e_rate_yn": ("Is the heart rate above {k} bpm?", "Is the rate faster than {k} beats per minute?"),
    "e_beats_yn": (
        "Are there more than {k} beats in the rhythm strip?",
        "Does the long strip show more than {k} QRS complexes?",
    ),
}
ECG_TASKS = tuple(_ECG_Q)


def ecg_answer(task: str, d: dict, style: RenderStyle, rng: np.random.Generator) -> tuple[dict, str] | None:
    """(format fields of the question, answer) measured on the signal, or None if not measurable."""
    if not measurable(d):
        return None
    small = 1000.0 / style.speed  # ms per 1-mm square
    gain = style.gain  # mm per mV
    if task == "e_rate":
        return {}, str(int(round(d["hr"] / 5) * 5))
    if task == "e_beats":
        return {}, str(d["strip_beats"])
    if task == "e_qrs":
        return {}, str(int(round(d["qrs"] / small)))
    if task == "e_qrs_ms":
        return {}, str(int(round(d["qrs"] / 20) * 20))
    if task == "e_pr":
        return ({}, str(int(round(d["pr"] / small)))) if "pr" in d else None
    if task == "e_t_down":
        return {}, str(sum(d["t_amp"][ld] < -0.1 for ld in NOT_AVR))
    if task == "e_st_low":
        return {}, str(sum(d["st"][ld] <= -0.1 for ld in NOT_AVR))
    if task == "e_q_group":
        g = pick(rng, tuple(LEAD_GROUPS))
        return {"g": g}, str(sum(d["q"][ld][0] >= 30 and d["q"][ld][1] >= 0.1 for ld in LEAD_GROUPS[g]))
    if task == "e_r_max":
        return {}, str(int(round(max(d["r_amp"].values()) * gain / 5) * 5))
    if task == "e_s_max":
        return {}, str(int(round(max(d["s_amp"].values()) * gain / 5) * 5))
    if task == "e_negative":
        return {}, str(sum(d["s_amp"][ld] > d["r_amp"][ld] for ld in NOT_AVR))
    if task == "e_rate_yn":
        k = int(rng.integers(11, 21)) * 5  # 55-100 bpm
        if abs(d["hr"] - k) < 3:
            return None  # too close to call from the page
        return {"k": k}, "yes" if d["hr"] > k else "no"
    if task == "e_beats_yn":
        k = int(rng.integers(3, 9))
        if d["strip_beats"] == k:
            return None
        return {"k": k}, "yes" if d["strip_beats"] > k else "no"
    raise ValueError(task)


def ecg_example(task: str, seed: int, rng: np.random.Generator, record_pool: int) -> tuple | None:
    """(page, question, answer) of ECG ``task`` on a pooled record; None if it is not measurable."""
    image, feats, style = ecg_page(seed, int(rng.integers(record_pool)))
    out = ecg_answer(task, feats, style, rng)
    if out is None:
        return None
    fields, answer = out
    return image, pick(rng, _ECG_Q[task]).format(**fields), answer
