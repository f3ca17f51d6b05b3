"""Pretraining examples for the tiny base: trace-reading on paper-like grids, never a diagnosis.

Two families, both drawn on pages the size of an ``ecgvlm dataset build`` page (440x340 px at the
default 40 dpi), so the base sees what the instruction datasets show it later:

- generic pages (``g_*`` tasks): synthetic traces on a grid — count peaks, period and amplitude in
  large squares, which of two traces is taller or faster, spike direction and width, the shape of a
  wave, printed labels and numbers to read back, which panel carries a label;
- ECG pages (``e_*`` tasks) drawn by ``ecgvlm.render`` from ``synthesize_record`` with questions
  whose answers are measured on the signal: the lead in a panel, beats in the rhythm strip, heart
  rate, QRS/PR/QT in ms, R height and S depth in mm, QRS polarity, T direction, ST level, regularity.
- balanced yes/no questions about ECG pages (``y_*`` tasks): one measured quantity against a fixed
  threshold (rate above 80 bpm, QRS wider than 110 ms, T negative in lead V2, ...), the answer drawn
  first so "yes" and "no" are equally likely and only the page can tell them apart.

No question asks for a diagnosis, a superclass or an SCP statement (``FORBIDDEN_WORDS`` is checked
by the tests), so the base stays at chance on ECG classification. Every token the later ECG
tasks answer with is an answer here too: the printed labels include NORM, MI, STTC, CD and HYP,
yes/no questions are frequent and numbers are answered digit by digit, so the rows of ``lm_head``
(frozen under LoRA) for those tokens are trained.

``make_example(seed, index)`` is a pure function of its arguments.
"""

from __future__ import annotations

import io
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from ecgvlm.signals.record import LEADS
from ecgvlm.signals.vocab import SUPERCLASSES

if TYPE_CHECKING:
    from ecgvlm.render.style import RenderStyle

PAGE_W, PAGE_H = 440, 340  # an A4/letter page at 40 dpi, as `ecgvlm dataset build` renders by default
CODES = tuple(SUPERCLASSES)
# Words a pretraining question must never contain: diagnoses and class names. The five codes may
# appear only as printed labels on generic pages (never on an ECG page, never as an ECG's answer).
FORBIDDEN_WORDS = (
    "diagnos", "superclass", "infarct", "hypertroph", "ischem", "ischaem", "bundle branch", "block",
    "fibrillation", "flutter", "normal", "abnormal", "scp", "ptb", "condition", "disease", "class",
)  # fmt: skip
LABEL_POOL = CODES * 3 + LEADS + ("A", "B", "C", "D", "X", "Y", "P", "Q", "R", "S", "T", "OK", "ST", "QRS")

GENERIC_TASKS = (
    "g_count", "g_taller", "g_faster", "g_period", "g_amplitude", "g_direction", "g_width", "g_shape",
    "g_label", "g_where", "g_has_label", "g_number",
)  # fmt: skip
# Draw weights: label reading is the task that answers with NORM/MI/STTC/CD/HYP, so it is drawn more.
_GENERIC_DRAW = GENERIC_TASKS + ("g_label", "g_label", "g_label", "g_has_label")


@dataclass
class Example:
    image: Image.Image
    question: str
    answer: str
    task: str


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


# ------------------------------------------------------------------ generic pages


@dataclass
class _Canvas:
    img: Image.Image
    draw: ImageDraw.ImageDraw
    sq: float  # px per large square
    ink: tuple[int, int, int]


def _canvas(rng: np.random.Generator) -> _Canvas:
    from ecgvlm.render.style import GRID_COLORS

    paper = tuple(int(v) for v in rng.integers(236, 256, 3))
    img = Image.new("RGB", (PAGE_W, PAGE_H), paper)
    d = ImageDraw.Draw(img)
    colors = [c for c in GRID_COLORS.values() if c]
    minor, major = colors[int(rng.integers(len(colors)))]
    sq = float(rng.uniform(6.0, 11.0))  # px per large square (5 mm at 32-56 dpi)
    if rng.random() < 0.6:
        step = sq / 5
        x = 0.0
        while x < PAGE_W:
            d.line([(x, 0), (x, PAGE_H)], fill=minor)
            x += step
        y = 0.0
        while y < PAGE_H:
            d.line([(0, y), (PAGE_W, y)], fill=minor)
            y += step
    x = 0.0
    while x < PAGE_W:
        d.line([(x, 0), (x, PAGE_H)], fill=major)
        x += sq
    y = 0.0
    while y < PAGE_H:
        d.line([(0, y), (PAGE_W, y)], fill=major)
        y += sq
    dark = int(rng.integers(0, 60))
    return _Canvas(img, d, sq, (dark, dark, dark))


def _wave(kind: str, t: np.ndarray, period: float, width: float = 0.08) -> np.ndarray:
    """A periodic shape with peak 1 at phase 0 (t and period in the same unit)."""
    ph = np.mod(t / period, 1.0)
    if kind == "sine":
        return np.cos(2 * math.pi * ph)
    if kind == "square":
        return np.where(ph < 0.5, 1.0, -1.0)
    if kind == "triangle":
        return 4 * np.abs(ph - 0.5) - 1
    if kind == "sawtooth":
        return 2 * ph - 1
    if kind == "spikes":
        d = np.minimum(ph, 1 - ph) * period
        return np.exp(-0.5 * (d / (width * period / 2.5)) ** 2)
    return np.zeros_like(t)


def _trace(
    c: _Canvas, x0: float, x1: float, y0: float, values: np.ndarray, amp_px: float, width: int = 1
) -> None:
    xs = np.linspace(x0, x1, len(values))
    ys = y0 - values * amp_px
    c.draw.line(list(zip(xs.tolist(), ys.tolist())), fill=c.ink, width=width)


def _spike_train(n: int, length: int, rng: np.random.Generator, width: float, phase: float | None = None):
    """``n`` evenly spaced gaussian spikes on ``length`` samples (peak 1)."""
    t = np.arange(length, dtype=float)
    period = length / n
    start = period * (phase if phase is not None else rng.uniform(0.2, 0.8))
    centers = start + period * np.arange(n)
    out = np.zeros(length)
    sigma = max(1.0, width * period / 2.5)
    for cx in centers:
        out += np.exp(-0.5 * ((t - cx) / sigma) ** 2)
    return out


def _font(size: int):
    from ecgvlm.render.style import load_font

    return load_font("sans-bold", size)


def _text(c: _Canvas, xy: tuple[float, float], text: str, size: int) -> None:
    c.draw.text(xy, text, fill=c.ink, font=_font(size))


def _generic(task: str, rng: np.random.Generator) -> tuple[Image.Image, str, str]:
    c = _canvas(rng)
    mid_y, top_y, bot_y = PAGE_H / 2, PAGE_H * 0.3, PAGE_H * 0.72
    x0, x1 = 20.0, PAGE_W - 20.0
    n_pts = 400
    lw = int(rng.integers(1, 3))
    if task == "g_count":
        n = int(rng.integers(1, 10))
        _trace(
            c,
            x0,
            x1,
            mid_y + 30,
            _spike_train(n, n_pts, rng, rng.uniform(0.05, 0.2)),
            rng.uniform(40, 110),
            lw,
        )
        q = _pick(rng, ("How many peaks does the trace have?", "Count the spikes on this strip.",
                        "How many peaks are there?", "Count the peaks. Answer with a number."))  # fmt: skip
        return c.img, q, str(n)
    if task in ("g_taller", "g_faster"):
        amps = rng.uniform(15, 60, 2)
        ns = rng.integers(2, 10, 2)
        if task == "g_taller":
            while abs(amps[0] - amps[1]) < 10:
                amps = rng.uniform(15, 60, 2)
        else:
            while ns[0] == ns[1]:
                ns = rng.integers(2, 10, 2)
        for y, a, n in zip((top_y, bot_y), amps, ns):
            _trace(c, x0, x1, y + 20, _spike_train(int(n), n_pts, rng, 0.1), float(a), lw)
        if task == "g_taller":
            if rng.random() < 0.5:
                q = _pick(
                    rng,
                    (
                        "Which trace is taller, top or bottom?",
                        "Which strip has the higher peaks: top or bottom?",
                    ),
                )
                return c.img, q, "top" if amps[0] > amps[1] else "bottom"
            q = _pick(
                rng,
                (
                    "Is the top trace taller than the bottom trace?",
                    "Are the top peaks higher than the bottom ones?",
                ),
            )
            return c.img, q, "yes" if amps[0] > amps[1] else "no"
        if rng.random() < 0.5:
            q = _pick(
                rng, ("Which trace is faster, top or bottom?", "Which strip has more peaks: top or bottom?")
            )
            return c.img, q, "top" if ns[0] > ns[1] else "bottom"
        q = _pick(
            rng, ("Does the top trace have more peaks than the bottom one?", "Is the top trace faster?")
        )
        return c.img, q, "yes" if ns[0] > ns[1] else "no"
    if task == "g_period":
        k = int(rng.integers(1, 7))
        length = int((x1 - x0) / c.sq * 20)
        t = np.arange(length) / 20.0  # in large squares
        vals = _wave("spikes", t - rng.uniform(0, k), float(k), 0.12)
        _trace(c, x0, x1, mid_y + 25, vals, 50, lw)
        q = _pick(
            rng, ("How many large squares apart are the peaks?", "What is the period in large squares?")
        )
        return c.img, q, str(k)
    if task == "g_amplitude":
        k = int(rng.integers(1, 7))
        vals = _spike_train(int(rng.integers(3, 7)), n_pts, rng, 0.12)
        base = mid_y + 3 * c.sq
        _trace(c, x0, x1, base, vals, k * c.sq, lw)
        q = _pick(
            rng, ("How many large squares tall are the peaks?", "What is the peak height in large squares?")
        )
        return c.img, q, str(k)
    if task in ("g_direction", "g_width"):
        sign = 1.0 if rng.random() < 0.5 else -1.0
        wide = rng.random() < 0.5
        vals = sign * _spike_train(int(rng.integers(3, 8)), n_pts, rng, 0.35 if wide else 0.05)
        _trace(c, x0, x1, mid_y, vals, rng.uniform(30, 80), lw)
        if task == "g_direction":
            if rng.random() < 0.5:
                return (
                    c.img,
                    _pick(rng, ("Do the spikes point up or down?", "Are the peaks upward or downward?")),
                    ("up" if sign > 0 else "down"),
                )
            return c.img, "Do the spikes point downward?", "yes" if sign < 0 else "no"
        if rng.random() < 0.5:
            return (
                c.img,
                _pick(rng, ("Are the spikes narrow or wide?", "Is each peak narrow or wide?")),
                ("wide" if wide else "narrow"),
            )
        return c.img, "Are the spikes wide?", "yes" if wide else "no"
    if task == "g_shape":
        kind = _pick(rng, ("sine", "square", "triangle", "sawtooth", "spikes", "flat"))
        length = n_pts
        t = np.arange(length) / length
        vals = _wave(kind, t - rng.uniform(0, 1), 1.0 / int(rng.integers(2, 6)), 0.1)
        _trace(c, x0, x1, mid_y, vals, rng.uniform(25, 60), lw)
        return (
            c.img,
            _pick(rng, ("What shape is the wave?", "Describe the shape of this trace in one word.")),
            kind,
        )
    if task in ("g_label", "g_where", "g_has_label"):
        rows, cols = _pick(rng, ((2, 2), (3, 2), (2, 3), (1, 2), (3, 3)))
        idx = rng.choice(len(LABEL_POOL), rows * cols, replace=False)
        labels = [LABEL_POOL[int(i)] for i in idx]
        while len(set(labels)) < len(labels):
            idx = rng.choice(len(LABEL_POOL), rows * cols, replace=False)
            labels = [LABEL_POOL[int(i)] for i in idx]
        size = int(rng.integers(20, 34))
        pw, ph = (PAGE_W - 20) / cols, (PAGE_H - 20) / rows
        for k, lab in enumerate(labels):
            r, col = divmod(k, cols)
            px, py = 10 + col * pw, 10 + r * ph
            _text(c, (px + 6, py + 4), lab, size)
            vals = _spike_train(int(rng.integers(2, 6)), 120, rng, 0.1)
            _trace(c, px + 4, px + pw - 6, py + ph * 0.85, vals, ph * 0.35, 1)
        names_r = {1: ["top"], 2: ["top", "bottom"], 3: ["top", "middle", "bottom"]}[rows]
        names_c = {2: ["left", "right"], 3: ["left", "centre", "right"]}[cols]
        k = int(rng.integers(len(labels)))
        r, col = divmod(k, cols)
        where = f"{names_r[r]}-{names_c[col]}" if rows > 1 else names_c[col]
        if task == "g_label":
            q = _pick(rng, ("What label is printed in the {w} panel?", "Read the label of the {w} panel.",
                            "Which text is written in the {w} panel?"))  # fmt: skip
            return c.img, q.format(w=where), labels[k]
        if task == "g_where":
            q = _pick(rng, ("Which panel is labelled {l}?", "Where is the panel marked {l}?"))
            return c.img, q.format(l=labels[k]), where
        present = rng.random() < 0.5
        lab = labels[k] if present else _pick(rng, [x for x in LABEL_POOL if x not in labels])
        q = _pick(rng, ("Is the label {l} printed on this page?", "Does any panel say {l}?"))
        return c.img, q.format(l=lab), "yes" if present else "no"
    if task == "g_number":
        n = int(rng.integers(0, 200))
        size = int(rng.integers(22, 40))
        _text(c, (rng.uniform(20, PAGE_W - 120), rng.uniform(20, PAGE_H - 60)), str(n), size)
        _trace(c, x0, x1, PAGE_H - 40, _spike_train(int(rng.integers(3, 8)), n_pts, rng, 0.1), 25, 1)
        return c.img, _pick(rng, ("What number is printed on the page?", "Read the number.")), str(n)
    raise ValueError(task)


# ------------------------------------------------------------------ ECG pages

# Lead groups the questions name (anatomical neighbours; asking per group, not per lead, keeps the
# answer a count the page shows at the tiny model's resolution).
_GROUPS = {
    "II, III and aVF": ("II", "III", "aVF"),
    "V1 to V4": ("V1", "V2", "V3", "V4"),
    "I, aVL, V5 and V6": ("I", "aVL", "V5", "V6"),
}
_NOT_AVR = tuple(lead for lead in LEADS if lead != "aVR")
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

# Balanced yes/no questions about one quantity an ECG page shows. The answer is drawn first and a
# pooled record that fits is looked up, so for every question "yes" and "no" are equally likely and
# only the image tells them apart. Why: a stage 2 of counts and numbers alone learned the answers'
# prior and never used the image (the same answers on a blank page); with these it does, and LoRA
# on the base then learns ECG classes (MODEL_CARD.md has the measurements).
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
TASKS = GENERIC_TASKS + ECG_TASKS + YESNO_TASKS


_PAGES: OrderedDict = OrderedDict()  # (stream seed, record index) -> (PNG bytes, measured features)
_PAGES_MAX = 8000


def ecg_page(seed: int, rec_index: int) -> tuple[Image.Image, dict, RenderStyle]:
    """Page (the "tiny" look), delineated features and style of one pooled record; memoised."""
    from ecgvlm.render import RenderStyle, render
    from ecgvlm.signals.delineate import delineate
    from ecgvlm.signals.synth import synthesize_record
    from ecgvlm.signals.synth_conditions import CONDITIONS

    key = (seed, rec_index)
    hit = _PAGES.get(key)
    if hit is None:
        # Morphologies must vary widely or most answers would be "0": 60% of the records carry one
        # statement drawn uniformly from the generator's 31, the rest follow its full prior.
        # Nothing about them is ever named; only what the signal measures is asked.
        prng = np.random.default_rng([seed, rec_index, 7])
        conditions = [_pick(prng, tuple(CONDITIONS))] if prng.random() < 0.6 else None
        record = synthesize_record(10_000 + seed, rec_index, conditions=conditions)
        style = RenderStyle.preset("tiny")
        page = render(record, layout="3x4+1", augment="none", seed=rec_index, style=style)
        buf = io.BytesIO()
        page.image.save(buf, format="PNG")
        feats = delineate(record.signal, record.fs)
        strip_end = page.sidecar["leads"][-1]["t_end"]  # the rhythm strip shows 0..t_end s
        feats["strip_beats"] = sum(t < strip_end for t in feats.get("beats_s", ()))
        hit = (buf.getvalue(), feats, style)
        _PAGES[key] = hit
        if len(_PAGES) > _PAGES_MAX:
            _PAGES.popitem(last=False)
    png, feats, style = hit
    return Image.open(io.BytesIO(png)).convert("RGB"), feats, style


def measurable(feats: dict) -> bool:
    """Whether the delineator measured the beats of a record (rate, QRS and per-lead ST)."""
    return "hr" in feats and "qrs" in feats and "st" in feats


def _ecg_answer(task: str, d: dict, style: RenderStyle, rng: np.random.Generator) -> tuple[dict, str] | None:
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
        return {}, str(sum(d["t_amp"][ld] < -0.1 for ld in _NOT_AVR))
    if task == "e_st_low":
        return {}, str(sum(d["st"][ld] <= -0.1 for ld in _NOT_AVR))
    if task == "e_q_group":
        g = _pick(rng, tuple(_GROUPS))
        return {"g": g}, str(sum(d["q"][ld][0] >= 30 and d["q"][ld][1] >= 0.1 for ld in _GROUPS[g]))
    if task == "e_r_max":
        return {}, str(int(round(max(d["r_amp"].values()) * gain / 5) * 5))
    if task == "e_s_max":
        return {}, str(int(round(max(d["s_amp"].values()) * gain / 5) * 5))
    if task == "e_negative":
        return {}, str(sum(d["s_amp"][ld] > d["r_amp"][ld] for ld in _NOT_AVR))
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


def _ecg(task: str, seed: int, rng: np.random.Generator, record_pool: int) -> tuple | None:
    image, feats, style = ecg_page(seed, int(rng.integers(record_pool)))
    out = _ecg_answer(task, feats, style, rng)
    if out is None:
        return None
    fields, answer = out
    return image, _pick(rng, _ECG_Q[task]).format(**fields), answer


def _yn_truth(task: str, d: dict, style: RenderStyle, pick: str | None) -> bool | None:
    """The true answer of yes/no ``task`` on a page's features, or None if not measured."""
    lead_groups = _GROUPS.get(pick or "", ())
    truth = {
        "y_rate": lambda: d["hr"] > 80,
        "y_qrs": lambda: d["qrs"] > 110,
        "y_pr": lambda: d["pr"] > 160 if "pr" in d else None,
        "y_qt": lambda: d["qt"] > 400 if "qt" in d else None,
        "y_irregular": lambda: d["rr_cv"] > 0.08,
        "y_p": lambda: bool(d["p_present"]),
        "y_t_down": lambda: sum(d["t_amp"][ld] < -0.1 for ld in _NOT_AVR) >= 2,
        "y_st_low": lambda: any(d["st"][ld] <= -0.1 for ld in _NOT_AVR),
        "y_st_up": lambda: any(d["st"][ld] >= 0.1 for ld in _NOT_AVR),
        "y_r_tall": lambda: max(d["r_amp"].values()) * style.gain > 25,
        "y_s_deep": lambda: max(d["s_amp"].values()) * style.gain > 25,
        "y_beats": lambda: d["strip_beats"] > 6,
        "y_t_lead": lambda: d["t_amp"][pick] < -0.1,
        "y_neg_lead": lambda: d["s_amp"][pick] > d["r_amp"][pick],
        "y_q_group": lambda: sum(d["q"][ld][0] >= 30 and d["q"][ld][1] >= 0.1 for ld in lead_groups) >= 2,
    }[task]()
    return None if truth is None else bool(truth)


def _yesno(task: str, seed: int, rng: np.random.Generator, record_pool: int) -> tuple | None:
    """(page, question, answer) with the answer drawn first; None if no pooled record fits soon."""
    pick = None
    if task in ("y_t_lead", "y_neg_lead"):
        pick = _pick(rng, _YN_LEADS)
    elif task == "y_q_group":
        pick = _pick(rng, tuple(_GROUPS))
    want = bool(rng.random() < 0.5)
    question = _pick(rng, _YN_Q[task]).format(lead=pick, g=pick)
    for _try in range(40):
        image, feats, style = ecg_page(seed, int(rng.integers(record_pool)))
        if measurable(feats) and _yn_truth(task, feats, style, pick) is want:
            return image, question, "yes" if want else "no"
    return None


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
    if yesno_task is not None and yesno_task not in _YN_Q:
        raise ValueError(f"unknown yes/no task {yesno_task!r}; one of {', '.join(YESNO_TASKS)}")
    rng = np.random.default_rng([int(seed), int(index), 1])
    for _attempt in range(20):
        if yesno_task is not None or rng.random() < yesno_fraction:
            task = yesno_task or _pick(rng, YESNO_TASKS)
            out = _yesno(task, seed, rng, record_pool)
            if out is None:
                continue
        elif rng.random() < ecg_fraction:
            task = _pick(rng, ECG_TASKS)
            out = _ecg(task, seed, rng, record_pool)
            if out is None:
                continue
        else:
            task = _pick(rng, _GENERIC_DRAW)
            out = _generic(task, rng)
        image, question, answer = out
        return Example(image=image, question=question, answer=answer, task=task)
    raise RuntimeError(f"no example for seed {seed} index {index}")
