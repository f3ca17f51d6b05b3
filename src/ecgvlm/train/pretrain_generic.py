"""Generic pretraining pages (``g_*`` tasks): synthetic traces on a paper-like grid, not ECGs.

Count peaks, period and amplitude in large squares, which of two traces is taller or faster, spike
direction and width, the shape of a wave, printed labels and numbers to read back, which panel
carries a label. The printed labels include NORM, MI, STTC, CD and HYP, so the rows of ``lm_head``
for those answer tokens are trained (on generic pages only, never as an ECG's answer).

The grid is drawn here, not by ``ecgvlm.render``: render's grid snaps lines to whole pixels and mixes
the ink with the paper, this one steps in floats with the raw ink; the shipped base was trained on
these pixels, so a rebuild must draw them the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ecgvlm.signals.record import LEADS
from ecgvlm.signals.vocab import SUPERCLASSES
from ecgvlm.train.pretrain_pages import PAGE_H, PAGE_W, pick

CODES = tuple(SUPERCLASSES)
LABEL_POOL = CODES * 3 + LEADS + ("A", "B", "C", "D", "X", "Y", "P", "Q", "R", "S", "T", "OK", "ST", "QRS")

GENERIC_TASKS = (
    "g_count", "g_taller", "g_faster", "g_period", "g_amplitude", "g_direction", "g_width", "g_shape",
    "g_label", "g_where", "g_has_label", "g_number",
)  # fmt: skip
# Draw weights: label reading is the task that answers with NORM/MI/STTC/CD/HYP, so it is drawn more.
GENERIC_DRAW = GENERIC_TASKS + ("g_label", "g_label", "g_label", "g_has_label")

# Where the traces go on every generic page (px).
_MID_Y, _TOP_Y, _BOT_Y = PAGE_H / 2, PAGE_H * 0.3, PAGE_H * 0.72
_X0, _X1 = 20.0, PAGE_W - 20.0
_N_PTS = 400  # samples of a full-width trace


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
        _rule(d, sq / 5, minor)
    _rule(d, sq, major)
    dark = int(rng.integers(0, 60))
    return _Canvas(img, d, sq, (dark, dark, dark))


def _rule(d: ImageDraw.ImageDraw, step: float, color: tuple[int, int, int]) -> None:
    """Full-page vertical, then horizontal lines every ``step`` px. The positions are running float
    sums, as on the pages the shipped base was trained on; keep them so a rebuild draws the same."""
    x = 0.0
    while x < PAGE_W:
        d.line([(x, 0), (x, PAGE_H)], fill=color)
        x += step
    y = 0.0
    while y < PAGE_H:
        d.line([(0, y), (PAGE_W, y)], fill=color)
        y += step


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


# Each task draws its traces on the canvas and returns (question, answer). The rng draws, in their
# order, are part of the stream: the shipped base was trained on exactly these pages.


def _count(task: str, c: _Canvas, rng: np.random.Generator, lw: int) -> tuple[str, str]:
    n = int(rng.integers(1, 10))
    _trace(
        c,
        _X0,
        _X1,
        _MID_Y + 30,
        _spike_train(n, _N_PTS, rng, rng.uniform(0.05, 0.2)),
        rng.uniform(40, 110),
        lw,
    )
    q = pick(rng, ("How many peaks does the trace have?", "Count the spikes on this strip.",
                   "How many peaks are there?", "Count the peaks. Answer with a number."))  # fmt: skip
    return q, str(n)


def _compare(task: str, c: _Canvas, rng: np.random.Generator, lw: int) -> tuple[str, str]:
    """g_taller / g_faster: two traces, one above the other."""
    amps = rng.uniform(15, 60, 2)
    ns = rng.integers(2, 10, 2)
    if task == "g_taller":
        while abs(amps[0] - amps[1]) < 10:
            amps = rng.uniform(15, 60, 2)
    else:
        while ns[0] == ns[1]:
            ns = rng.integers(2, 10, 2)
    for y, a, n in zip((_TOP_Y, _BOT_Y), amps, ns):
        _trace(c, _X0, _X1, y + 20, _spike_train(int(n), _N_PTS, rng, 0.1), float(a), lw)
    if task == "g_taller":
        if rng.random() < 0.5:
            q = pick(
                rng,
                (
                    "Which trace is taller, top or bottom?",
                    "Which strip has the higher peaks: top or bottom?",
                ),
            )
            return q, "top" if amps[0] > amps[1] else "bottom"
        q = pick(
            rng,
            (
                "Is the top trace taller than the bottom trace?",
                "Are the top peaks higher than the bottom ones?",
            ),
        )
        return q, "yes" if amps[0] > amps[1] else "no"
    if rng.random() < 0.5:
        q = pick(rng, ("Which trace is faster, top or bottom?", "Which strip has more peaks: top or bottom?"))
        return q, "top" if ns[0] > ns[1] else "bottom"
    q = pick(rng, ("Does the top trace have more peaks than the bottom one?", "Is the top trace faster?"))
    return q, "yes" if ns[0] > ns[1] else "no"


def _period(task: str, c: _Canvas, rng: np.random.Generator, lw: int) -> tuple[str, str]:
    k = int(rng.integers(1, 7))
    length = int((_X1 - _X0) / c.sq * 20)
    t = np.arange(length) / 20.0  # in large squares
    vals = _wave("spikes", t - rng.uniform(0, k), float(k), 0.12)
    _trace(c, _X0, _X1, _MID_Y + 25, vals, 50, lw)
    q = pick(rng, ("How many large squares apart are the peaks?", "What is the period in large squares?"))
    return q, str(k)


def _amplitude(task: str, c: _Canvas, rng: np.random.Generator, lw: int) -> tuple[str, str]:
    k = int(rng.integers(1, 7))
    vals = _spike_train(int(rng.integers(3, 7)), _N_PTS, rng, 0.12)
    base = _MID_Y + 3 * c.sq
    _trace(c, _X0, _X1, base, vals, k * c.sq, lw)
    q = pick(rng, ("How many large squares tall are the peaks?", "What is the peak height in large squares?"))
    return q, str(k)


def _spikes(task: str, c: _Canvas, rng: np.random.Generator, lw: int) -> tuple[str, str]:
    """g_direction / g_width: one train of up or down, narrow or wide spikes."""
    sign = 1.0 if rng.random() < 0.5 else -1.0
    wide = rng.random() < 0.5
    vals = sign * _spike_train(int(rng.integers(3, 8)), _N_PTS, rng, 0.35 if wide else 0.05)
    _trace(c, _X0, _X1, _MID_Y, vals, rng.uniform(30, 80), lw)
    if task == "g_direction":
        if rng.random() < 0.5:
            q = pick(rng, ("Do the spikes point up or down?", "Are the peaks upward or downward?"))
            return q, ("up" if sign > 0 else "down")
        return "Do the spikes point downward?", "yes" if sign < 0 else "no"
    if rng.random() < 0.5:
        q = pick(rng, ("Are the spikes narrow or wide?", "Is each peak narrow or wide?"))
        return q, ("wide" if wide else "narrow")
    return "Are the spikes wide?", "yes" if wide else "no"


def _shape(task: str, c: _Canvas, rng: np.random.Generator, lw: int) -> tuple[str, str]:
    kind = pick(rng, ("sine", "square", "triangle", "sawtooth", "spikes", "flat"))
    length = _N_PTS
    t = np.arange(length) / length
    vals = _wave(kind, t - rng.uniform(0, 1), 1.0 / int(rng.integers(2, 6)), 0.1)
    _trace(c, _X0, _X1, _MID_Y, vals, rng.uniform(25, 60), lw)
    return pick(rng, ("What shape is the wave?", "Describe the shape of this trace in one word.")), kind


def _labels(task: str, c: _Canvas, rng: np.random.Generator, lw: int) -> tuple[str, str]:
    """g_label / g_where / g_has_label: a grid of labelled panels, each with a short trace."""
    rows, cols = pick(rng, ((2, 2), (3, 2), (2, 3), (1, 2), (3, 3)))
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
        q = pick(rng, ("What label is printed in the {w} panel?", "Read the label of the {w} panel.",
                       "Which text is written in the {w} panel?"))  # fmt: skip
        return q.format(w=where), labels[k]
    if task == "g_where":
        q = pick(rng, ("Which panel is labelled {l}?", "Where is the panel marked {l}?"))
        return q.format(l=labels[k]), where
    present = rng.random() < 0.5
    lab = labels[k] if present else pick(rng, [x for x in LABEL_POOL if x not in labels])
    q = pick(rng, ("Is the label {l} printed on this page?", "Does any panel say {l}?"))
    return q.format(l=lab), "yes" if present else "no"


def _number(task: str, c: _Canvas, rng: np.random.Generator, lw: int) -> tuple[str, str]:
    n = int(rng.integers(0, 200))
    size = int(rng.integers(22, 40))
    _text(c, (rng.uniform(20, PAGE_W - 120), rng.uniform(20, PAGE_H - 60)), str(n), size)
    _trace(c, _X0, _X1, PAGE_H - 40, _spike_train(int(rng.integers(3, 8)), _N_PTS, rng, 0.1), 25, 1)
    return pick(rng, ("What number is printed on the page?", "Read the number.")), str(n)


_DRAWERS: dict[str, Callable[[str, _Canvas, np.random.Generator, int], tuple[str, str]]] = {
    "g_count": _count,
    "g_taller": _compare,
    "g_faster": _compare,
    "g_period": _period,
    "g_amplitude": _amplitude,
    "g_direction": _spikes,
    "g_width": _spikes,
    "g_shape": _shape,
    "g_label": _labels,
    "g_where": _labels,
    "g_has_label": _labels,
    "g_number": _number,
}


def generic_example(task: str, rng: np.random.Generator) -> tuple[Image.Image, str, str]:
    """(page, question, answer) of generic ``task``, every pixel and word drawn from ``rng``."""
    c = _canvas(rng)
    lw = int(rng.integers(1, 3))  # drawn for every task, used by most
    drawer = _DRAWERS.get(task)
    if drawer is None:
        raise ValueError(task)
    question, answer = drawer(task, c, rng, lw)
    return c.img, question, answer
