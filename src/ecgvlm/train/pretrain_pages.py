"""What every pretraining task family draws on: the page size, the seeded pick, and the pooled ECG
pages (one synthetic record each, rendered in the "tiny" look once and memoised)."""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from ecgvlm.render.style import RenderStyle

PAGE_W, PAGE_H = 440, 340  # an A4/letter page at 40 dpi, as `ecgvlm dataset build` renders by default

_PAGES: OrderedDict = OrderedDict()  # (stream seed, record index) -> (PNG bytes, measured features)
_PAGES_MAX = 8000


def pick(rng: np.random.Generator, items):
    """One of ``items``, drawn with a single ``rng.integers`` call (the streams depend on that draw)."""
    return items[int(rng.integers(len(items)))]


def ecg_page(seed: int, rec_index: int) -> tuple[Image.Image, dict, RenderStyle]:
    """Page (the "tiny" look), delineated features and style of one pooled record; memoised."""
    key = (seed, rec_index)
    hit = _PAGES.get(key)
    if hit is None:
        hit = _draw_page(seed, rec_index)
        _PAGES[key] = hit
        if len(_PAGES) > _PAGES_MAX:
            _PAGES.popitem(last=False)
    png, feats, style = hit
    return Image.open(io.BytesIO(png)).convert("RGB"), feats, style


def _draw_page(seed: int, rec_index: int) -> tuple[bytes, dict, RenderStyle]:
    """(PNG bytes, delineated features, style) of pooled record ``rec_index`` of stream ``seed``."""
    from ecgvlm.render import RenderStyle, render
    from ecgvlm.signals.delineate import delineate
    from ecgvlm.signals.synth import synthesize_record
    from ecgvlm.signals.synth_conditions import CONDITIONS

    # Morphologies must vary widely or most answers would be "0": 60% of the records carry one
    # statement drawn uniformly from the generator's 31, the rest follow its full prior.
    # Nothing about them is ever named; only what the signal measures is asked.
    prng = np.random.default_rng([seed, rec_index, 7])
    conditions = [pick(prng, tuple(CONDITIONS))] if prng.random() < 0.6 else None
    record = synthesize_record(10_000 + seed, rec_index, conditions=conditions)
    style = RenderStyle.preset("tiny")
    page = render(record, layout="3x4+1", augment="none", seed=rec_index, style=style)
    buf = io.BytesIO()
    page.image.save(buf, format="PNG")
    feats = delineate(record.signal, record.fs)
    strip_end = page.sidecar["leads"][-1]["t_end"]  # the rhythm strip shows 0..t_end s
    feats["strip_beats"] = sum(t < strip_end for t in feats.get("beats_s", ()))
    return buf.getvalue(), feats, style


def measurable(feats: dict) -> bool:
    """Whether the delineator measured the beats of a record (rate, QRS and per-lead ST)."""
    return "hr" in feats and "qrs" in feats and "st" in feats
