"""How a printout looks: paper, speed, gain, grid, ink, fonts, header. ``RenderStyle.sample`` varies it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import ImageFont

from ecgvlm.errors import ECGVLMError
from ecgvlm.signals.record import LEADS

# Landscape page sizes in mm (width, height).
PAPER_MM: dict[str, tuple[float, float]] = {"letter": (279.4, 215.9), "a4": (297.0, 210.0)}

# Grid colours as (minor line RGB, major line RGB) on white paper. "none" draws no grid.
GRID_COLORS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]] | None] = {
    "red": ((246, 178, 178), (226, 90, 90)),
    "pink": ((250, 206, 216), (238, 140, 165)),
    "green": ((188, 228, 188), (105, 180, 110)),
    "blue": ((190, 212, 240), (110, 150, 215)),
    "grey": ((212, 212, 212), (150, 150, 150)),
    "none": None,
}

# Font name -> TrueType file shipped with matplotlib (a project dependency), so every install has them.
FONTS: dict[str, str] = {
    "sans": "DejaVuSans.ttf",
    "sans-bold": "DejaVuSans-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
    "serif": "DejaVuSerif.ttf",
    "stix": "STIXGeneral.ttf",
}

LAYOUTS: tuple[str, ...] = ("3x4+1", "3x4+3", "6x2", "12x1", "1x1")
SPEEDS: tuple[float, ...] = (25.0, 50.0)
GAINS: tuple[float, ...] = (5.0, 10.0, 20.0)

# Named looks for whole datasets. "tiny" is the page the embedded 224-px model can read: a letter
# page shrinks to about 0.8 px per mm there, so at 25 mm/s and 10 mm/mV a 0.1 mV ST shift or a
# 40 ms wider QRS is under one pixel. At 50 mm/s and 20 mm/mV (settings real carts offer) they
# are 2-3 px; the header text, which the model cannot read at that size anyway, is left off, and
# one fixed look removes the style variation a 10M-parameter ViT cannot learn to ignore in minutes
# (measured in tiny_base/MODEL_CARD.md). "sampled" varies everything (RenderStyle.sample).
STYLE_PRESETS: dict[str, dict] = {
    "default": {},
    "tiny": {"dpi": 40.0, "speed": 50.0, "gain": 20.0, "header": False, "trace_width_mm": 0.5},
}


@dataclass(frozen=True)
class RenderStyle:
    """Everything about a page except the record, the layout and the degradations.

    Lengths are in mm on paper; ``dpi`` turns them into pixels (200 dpi letter = 2200x1700 px).
    """

    dpi: float = 200.0
    paper: str = "letter"  # "letter" | "a4", landscape
    speed: float = 25.0  # mm/s
    gain: float = 10.0  # mm/mV
    grid_color: str = "red"
    minor_grid: bool = True  # 1-mm lines (thinned out automatically when they would fill the page)
    paper_color: tuple[int, int, int] = (255, 255, 255)
    trace_color: tuple[int, int, int] = (0, 0, 0)
    trace_width_mm: float = 0.2  # never thinner than 1 px
    text_color: tuple[int, int, int] = (0, 0, 0)
    font: str = "sans"
    font_size_mm: float = 3.0
    header: bool = True  # speed/gain/filter line, ids and demographics
    header_measurements: bool = True  # print record.measurements (hr, pr, qrs, qt/qtc, axis)
    filter_text: str = "0.05-150 Hz"
    mains_hz: int = 50
    calibration: bool = True
    lead_labels: bool = True
    separators: bool = True  # short ticks where one column's window ends and the next begins
    rhythm_leads: tuple[str, ...] = ()  # override the layout's rhythm strip lead(s)
    single_lead: str = "II"  # the lead of the "1x1" layout
    start_s: float = 0.0  # where in the record the printout starts

    def __post_init__(self) -> None:
        if self.paper not in PAPER_MM:
            raise ECGVLMError(f"unknown paper {self.paper!r}; known: {', '.join(PAPER_MM)}")
        if self.grid_color not in GRID_COLORS:
            raise ECGVLMError(f"unknown grid colour {self.grid_color!r}; known: {', '.join(GRID_COLORS)}")
        if self.font not in FONTS:
            raise ECGVLMError(f"unknown font {self.font!r}; known: {', '.join(FONTS)}")
        if not 10 <= self.dpi <= 1200:
            raise ECGVLMError(f"dpi must be in 10..1200, got {self.dpi}")
        if not (0 < self.speed <= 200 and 0 < self.gain <= 100):
            raise ECGVLMError(f"speed {self.speed} mm/s or gain {self.gain} mm/mV out of range")
        for lead in (*self.rhythm_leads, self.single_lead):
            if lead not in LEADS:
                raise ECGVLMError(f"unknown lead {lead!r}; known: {', '.join(LEADS)}")
        if self.start_s < 0:
            raise ECGVLMError(f"start_s must be >= 0, got {self.start_s}")

    @property
    def px_per_mm(self) -> float:
        return self.dpi / 25.4

    @property
    def page_px(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        w_mm, h_mm = PAPER_MM[self.paper]
        return round(w_mm * self.px_per_mm), round(h_mm * self.px_per_mm)

    def replace(self, **changes) -> RenderStyle:
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, rng: np.random.Generator | None = None, **fixed) -> RenderStyle:
        """A named look (``STYLE_PRESETS``), or "sampled": a varied one drawn from ``rng``."""
        if name == "sampled":
            return cls.sample(rng if rng is not None else np.random.default_rng(0), **fixed)
        if name not in STYLE_PRESETS:
            raise ECGVLMError(f"unknown style {name!r}; known: sampled, {', '.join(STYLE_PRESETS)}")
        return cls(**{**STYLE_PRESETS[name], **fixed})

    @classmethod
    def sample(cls, rng: np.random.Generator, **fixed) -> RenderStyle:
        """A varied but plausible style for datasets; ``fixed`` pins fields (e.g. ``dpi=50``)."""
        dark = int(rng.integers(0, 50))
        trace = [(dark, dark, dark), (0, 0, 90), (20, 20, 60), (60, 0, 0)][
            int(rng.choice(4, p=[0.7, 0.1, 0.1, 0.1]))
        ]
        paper = (int(rng.integers(240, 256)), int(rng.integers(238, 256)), int(rng.integers(232, 256)))
        s = dict(
            paper=str(rng.choice(["letter", "a4"], p=[0.6, 0.4])),
            speed=float(rng.choice(SPEEDS, p=[0.85, 0.15])),
            gain=float(rng.choice(GAINS, p=[0.15, 0.75, 0.10])),
            grid_color=str(rng.choice(list(GRID_COLORS), p=[0.45, 0.2, 0.1, 0.05, 0.15, 0.05])),
            minor_grid=bool(rng.random() < 0.9),
            paper_color=paper,
            trace_color=trace,
            trace_width_mm=float(rng.uniform(0.12, 0.35)),
            font=str(rng.choice(list(FONTS))),
            font_size_mm=float(rng.uniform(2.5, 3.6)),
            header=bool(rng.random() < 0.9),
            header_measurements=bool(rng.random() < 0.6),
            filter_text=str(rng.choice(["0.05-150 Hz", "0.5-40 Hz", "0.05-100 Hz", "0.15-150 Hz"])),
            mains_hz=int(rng.choice([50, 60])),
            calibration=bool(rng.random() < 0.95),
            separators=bool(rng.random() < 0.7),
        )
        s.update(fixed)
        return cls(**s)


@lru_cache(maxsize=64)
def load_font(name: str, size_px: int) -> ImageFont.FreeTypeFont:
    path = _mpl_data() / "fonts" / "ttf" / FONTS[name]
    return ImageFont.truetype(str(path), max(6, size_px))


@lru_cache(maxsize=1)
def _mpl_data() -> Path:
    """matplotlib's mpl-data folder (the DejaVu fonts), found without importing matplotlib, which is slow to import."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ECGVLMError("the page fonts come from matplotlib, which is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "mpl-data"
