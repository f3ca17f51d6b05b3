"""Pretraining examples for the tiny base: trace-reading on paper-like grids, never a diagnosis.

Two families, both drawn on pages the size of an ``ecgvlm dataset build`` page (440x340 px at the
default 40 dpi), so the base sees what the instruction datasets show it later:

- generic pages (``g_*`` tasks): synthetic traces on a grid — count peaks, period and amplitude in
  large squares, which of two traces is taller or faster, spike direction and width, the shape of a
  wave, printed labels and numbers to read back, which panel carries a label;
- ECG pages (``e_*`` tasks) drawn by ``ecgvlm.render`` from ``synthesize_record`` with questions
  whose answers are measured on the signal: the lead in a panel, beats in the rhythm strip, heart
  rate, QRS/PR/QT in ms, R height and S depth in mm, QRS polarity, T direction, ST level, regularity.

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

import numpy as np
from PIL import Image, ImageDraw

from ecgvlm.signals.record import LEADS
from ecgvlm.signals.vocab import SUPERCLASSES

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
ECG_TASKS = (
    "e_lead", "e_beats", "e_rate", "e_qrs", "e_pr", "e_qt", "e_r_height", "e_s_depth", "e_polarity",
    "e_t_wave", "e_st", "e_q_depth", "e_regular",
)  # fmt: skip
TASKS = GENERIC_TASKS + ECG_TASKS
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


def _beats(record) -> np.ndarray:
    """Sample indices of the QRS centres (all-lead slope energy peaks)."""
    sig = record.signal.astype(np.float64)
    fs = record.fs
    e = np.abs(np.diff(sig, axis=1)).sum(0)
    k = max(1, int(0.03 * fs))
    e = np.convolve(e, np.ones(k) / k, mode="same")
    thr = 0.35 * np.percentile(e, 99.5)
    gap = int(0.25 * fs)
    peaks: list[int] = []
    for i in np.argsort(-e):
        if e[i] < thr:
            break
        if all(abs(int(i) - p) > gap for p in peaks):
            peaks.append(int(i))
    return np.array(sorted(peaks))


def _lead_features(record, lead: str, beats: np.ndarray) -> dict[str, float] | None:
    """Median R height, S depth, ST level (J+60 ms), T deflection and Q depth of one lead, in mV."""
    fs = record.fs
    qrs = record.measurements.get("qrs", 100.0) / 1000
    qt = record.measurements.get("qt", 400.0) / 1000
    x = record.signal[LEADS.index(lead)].astype(np.float64)
    rows = []
    for b in beats:
        on = int(b - (qrs / 2 + 0.02) * fs)
        lo, hi = on - int(0.04 * fs), on - int(0.005 * fs)
        t_lo, t_hi = int(b + (qt * 0.55) * fs), int(b + (qt * 0.8) * fs)
        if lo < 0 or t_hi >= x.size:
            continue
        base = float(np.median(x[lo:hi]))
        seg = x[int(b - qrs * 0.8 * fs) : int(b + qrs * 0.8 * fs)] - base
        j = int(b + (qrs / 2 + 0.06) * fs)
        # Q: the negative dip before the largest positive deflection, within the first half of the QRS
        start = int((0.8 * qrs - qrs / 2) * fs)
        r_at = start + int(np.argmax(seg[start : start + max(2, int(qrs * fs))]))
        q = max(0.0, -float(seg[start : max(start + 1, r_at)].min())) if r_at > start else 0.0
        rows.append((seg.max(), -seg.min(), x[j] - base, float(np.mean(x[t_lo:t_hi]) - base), q))
    if len(rows) < 2:
        return None
    r, s, st, t, q = np.median(np.array(rows), axis=0)
    return {"r": float(r), "s": float(s), "st": float(st), "t": float(t), "q": float(q)}


_LEAD_Q = {
    "e_r_height": ("How tall is the R wave in lead {l}, in mm?", "R wave height in {l} in millimetres?"),
    "e_s_depth": ("How deep is the S wave in lead {l}, in mm?", "Depth of the S wave in {l} in mm?"),
    "e_polarity": (
        "Is the QRS complex in lead {l} mainly positive?",
        "Does the QRS in {l} point mostly upward?",
    ),
    "e_t_wave": (
        "Is the T wave in lead {l} upright or inverted?",
        "Is the T wave in {l} upright or inverted?",
    ),
    "e_q_depth": (
        "How deep is the Q wave in lead {l}, in mm?",
        "Depth of the initial negative wave in {l} in mm?",
    ),
    "e_st": (
        "What is the ST level in lead {l}, in mm?",
        "How many mm is the ST segment in {l} above the baseline?",
    ),
}


_PAGES: OrderedDict = OrderedDict()  # (stream seed, record index) -> (PNG bytes, lead names, features)
_PAGES_MAX = 8000


def _page(seed: int, rec_index: int) -> tuple:
    """Record, page and measured features of one pooled ECG; memoised (a pure function of its key)."""
    from ecgvlm.render import RenderStyle, render
    from ecgvlm.signals.synth import synthesize_record

    key = (seed, rec_index)
    hit = _PAGES.get(key)
    if hit is None:
        record = synthesize_record(10_000 + seed, rec_index)
        prng = np.random.default_rng([seed, rec_index, 7])
        style = RenderStyle.sample(prng, dpi=40.0, speed=25.0)
        augment = ("none", "none", "light")[int(prng.integers(3))]
        page = render(record, layout="3x4+1", augment=augment, seed=rec_index, style=style)
        buf = io.BytesIO()
        page.image.save(buf, format="PNG")
        panels = [(ld["row"], ld["col"], ld["lead"]) for ld in page.sidecar["leads"] if ld["row"] < 3]
        beats = _beats(record)
        feats = {lead: _lead_features(record, lead, beats) for lead in LEADS}
        rr = np.diff(beats)
        hit = (buf.getvalue(), panels, feats, len(beats), float(rr.std() / rr.mean()) if len(rr) >= 3 else None,
               dict(record.measurements), style.gain)  # fmt: skip
        _PAGES[key] = hit
        if len(_PAGES) > _PAGES_MAX:
            _PAGES.popitem(last=False)
    png, panels, feats, n_beats, rr_cv, m, gain = hit
    return Image.open(io.BytesIO(png)).convert("RGB"), panels, feats, n_beats, rr_cv, m, gain


def _ecg(task: str, seed: int, rng: np.random.Generator, record_pool: int) -> tuple | None:
    image, panels, feats, n_beats, rr_cv, m, gain = _page(seed, int(rng.integers(record_pool)))
    if task == "e_lead":
        row, col, lead = _pick(rng, panels)
        q = _pick(
            rng, ("Which lead is shown in row {r}, column {c}?", "Name the lead in row {r}, column {c}.")
        )
        return image, q.format(r=row + 1, c=col + 1), lead
    if task == "e_beats":
        return (
            image,
            _pick(
                rng,
                (
                    "How many beats are in the rhythm strip?",
                    "Count the QRS complexes in the long strip at the bottom.",
                ),
            ),
            str(n_beats),
        )
    if task == "e_rate":
        return (
            image,
            _pick(
                rng, ("What is the heart rate in bpm?", "Estimate the ventricular rate (beats per minute).")
            ),
            str(int(round(m["hr"] / 5) * 5)),
        )
    if task in ("e_qrs", "e_pr", "e_qt"):
        key = task[2:]
        if key not in m:
            return None
        name = {"qrs": "QRS duration", "pr": "PR interval", "qt": "QT interval"}[key]
        if rng.random() < 0.5:
            return image, f"What is the {name} in ms?", str(int(round(m[key] / 20) * 20))
        return image, f"How many small squares long is the {name}?", str(int(round(m[key] / 40)))
    if task == "e_regular":
        cv = rr_cv
        if cv is None or 0.04 < cv < 0.1:
            return None  # ambiguous: ask only clear cases
        return (
            image,
            _pick(rng, ("Is the rhythm regular?", "Are the beats evenly spaced?")),
            "yes" if cv <= 0.04 else "no",
        )
    lead = _pick(rng, LEADS)
    f = feats[lead]
    if f is None:
        return None
    q = _pick(rng, _LEAD_Q[task]).format(l=lead)
    if task == "e_r_height":
        return image, q, str(int(round(f["r"] * gain)))
    if task == "e_s_depth":
        return image, q, str(int(round(f["s"] * gain)))
    if task == "e_polarity":
        return image, q, "yes" if f["r"] > f["s"] else "no"
    if task == "e_t_wave":
        if abs(f["t"]) < 0.05:
            return None
        return image, q, "upright" if f["t"] > 0 else "inverted"
    if task == "e_q_depth":
        return image, q, str(int(round(f["q"] * gain)))
    if task == "e_st":
        return image, q, str(int(round(f["st"] * gain)))
    raise ValueError(task)


def make_example(seed: int, index: int, ecg_fraction: float = 0.6, record_pool: int = 6000) -> Example:
    """Example ``index`` of the stream ``seed``: a pure function of (seed, index, options)."""
    rng = np.random.default_rng([int(seed), int(index), 1])
    for _attempt in range(20):
        if rng.random() < ecg_fraction:
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
