"""Panel geometry of each layout, in mm on the page. Pixels come later (``mm * px_per_mm``).

Rows sit on major (5-mm) grid lines and traces start on one, as on a machine printout. The printed
duration is the paper width divided by the speed, capped at 10 s: 10 s at 25 mm/s, 5 s at 50 mm/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ecgvlm.errors import ECGVLMError
from ecgvlm.render.style import LAYOUTS, PAPER_MM, RenderStyle

MARGIN_MM = 6.0
HEADER_MM = 30.0  # room above the grid for the header text
PULSE_MM = 7.0  # 1 mm lead-in, 5 mm at 1 mV, 1 mm lead-out
TRACE_OFFSET_MM = 10.0  # from the row start to the first sample (the pulse sits in between)
MAX_SECONDS = 10.0
STRIP_ROW_MM = 45.0  # row height of the single-lead strip

# The 3x4 grid every 12-lead machine prints: columns are consecutive time windows.
GRID_3X4 = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
GRID_6X2 = (("I", "V1"), ("II", "V2"), ("III", "V3"), ("aVR", "V4"), ("aVL", "V5"), ("aVF", "V6"))
ORDER_12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


@dataclass(frozen=True)
class Panel:
    """One lead drawn over one time window."""

    lead: str
    row: int
    col: int
    x0: float  # mm, first sample
    x1: float  # mm, end of the window
    baseline: float  # mm, 0 mV
    top: float  # mm, the row band this panel owns
    bottom: float
    t0: float  # s from the record start (requested window; the record may be shorter)
    t1: float


@dataclass(frozen=True)
class Layout:
    name: str
    page_mm: tuple[float, float]
    grid_mm: tuple[float, float, float, float]  # x0, y0, x1, y1: the gridded area
    header_mm: tuple[float, float, float, float]
    row_baselines: tuple[float, ...]
    row_x0: float  # mm where each row (and its calibration pulse) starts
    panels: tuple[Panel, ...]
    seconds: float  # printed duration of a full-width row


def _floor5(x: float) -> float:
    return 5.0 * math.floor(x / 5.0 + 1e-9)


def _round5(x: float) -> float:
    return 5.0 * round(x / 5.0)


def make_layout(name: str, style: RenderStyle) -> Layout:
    if name not in LAYOUTS:
        raise ECGVLMError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}")
    if name == "3x4+1":
        grid, rhythm = GRID_3X4, style.rhythm_leads[:1] or ("II",)
    elif name == "3x4+3":
        grid, rhythm = GRID_3X4, style.rhythm_leads or ("V1", "II", "V5")
    elif name == "6x2":
        grid, rhythm = GRID_6X2, style.rhythm_leads
    elif name == "12x1":
        grid, rhythm = tuple((lead,) for lead in ORDER_12), ()
    else:  # 1x1: one lead as a strip the width of the paper
        grid, rhythm = (), (style.single_lead,)

    n_rows = len(grid) + len(rhythm)
    header = HEADER_MM if style.header else MARGIN_MM
    page_w, page_h = PAPER_MM[style.paper]
    if name == "1x1":
        page_h = header + STRIP_ROW_MM + 2 * MARGIN_MM
    gx0, gy0 = MARGIN_MM, header
    gx1 = gx0 + _floor5(page_w - 2 * MARGIN_MM)
    gy1 = gy0 + _floor5(page_h - header - MARGIN_MM)
    pitch = _floor5((gy1 - gy0) / n_rows)
    if pitch < 5:
        raise ECGVLMError(f"layout {name} does not fit on {style.paper} paper")
    top0 = gy0 + _floor5((gy1 - gy0 - n_rows * pitch) / 2)
    below_top = max(5.0, _round5(pitch * 0.55))  # baselines sit a little low: QRS mostly points up

    row_x0 = gx0 + 5.0
    trace_x0 = row_x0 + TRACE_OFFSET_MM
    seconds = min(MAX_SECONDS, math.floor((gx1 - trace_x0) / style.speed * 2 + 1e-9) / 2)
    if seconds <= 0:
        raise ECGVLMError(f"speed {style.speed} mm/s leaves no room for a trace on {style.paper} paper")

    panels: list[Panel] = []
    baselines: list[float] = []
    for r, leads in enumerate((*grid, *((lead,) for lead in rhythm))):
        top = top0 + r * pitch
        base = top + below_top
        baselines.append(base)
        window = seconds / len(leads)
        for c, lead in enumerate(leads):
            t0 = style.start_s + c * window
            x0 = trace_x0 + c * window * style.speed
            panels.append(
                Panel(lead, r, c, x0, x0 + window * style.speed, base, top, top + pitch, t0, t0 + window)
            )
    return Layout(
        name=name,
        page_mm=(page_w, page_h),
        grid_mm=(gx0, gy0, gx1, gy1),
        header_mm=(MARGIN_MM, 0.0, page_w - MARGIN_MM, header),
        row_baselines=tuple(baselines),
        row_x0=row_x0,
        panels=tuple(panels),
        seconds=seconds,
    )
