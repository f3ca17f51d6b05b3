"""``render()``: one ECGRecord -> one printout image plus a sidecar giving the pixel of every sample."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from PIL import Image

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import atomic_write_bytes, atomic_write_json
from ecgvlm.render import augment as aug
from ecgvlm.render.draw import (
    blank_page,
    draw_grid,
    draw_polyline,
    draw_text,
    grid_palette,
    warp_points,
)
from ecgvlm.render.header import header_lines, settings_line
from ecgvlm.render.layout import PULSE_MM, Layout, Panel, make_layout
from ecgvlm.render.png import encode_png
from ecgvlm.render.sidecar import SIDECAR_FORMS, compact
from ecgvlm.render.style import GRID_COLORS, RenderStyle
from ecgvlm.signals.record import LEADS, ECGRecord

SIDECAR_VERSION = 1


@dataclass
class Page:
    """A rendered printout: ``image`` (RGB PIL image) and ``sidecar`` (JSON-able ground truth)."""

    array: np.ndarray  # uint8 (H, W, 3) RGB; ``image`` views it
    sidecar: dict[str, Any]

    @property
    def image(self) -> Image.Image:
        return Image.fromarray(self.array, "RGB")

    def encode(self, fmt: str = "png", quality: int = 95) -> bytes:
        """PNG (lossless; see ``render.png``) or JPEG bytes; deterministic for a given array."""
        if fmt == "png":
            return encode_png(self.array)
        if fmt not in ("jpg", "jpeg"):
            raise ECGVLMError(f"unknown image format {fmt!r}; use png or jpg")
        bgr = cv2.cvtColor(self.array, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ECGVLMError(f"could not encode the page as {fmt}")
        return buf.tobytes()

    def save(self, path: str | Path, quality: int = 95, sidecar: str = "compact") -> Path:
        """Write the image (format from the suffix) and ``path.with_suffix('.json')``, both atomically.

        ``sidecar``: "compact" (default; sample pixels packed, read back by ``load_sidecar``),
        "full" (every sample pixel as JSON numbers) or "none".
        """
        path = Path(path)
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in ("png", "jpg", "jpeg"):
            raise ECGVLMError("image path must end in .png, .jpg or .jpeg", path)
        if sidecar not in (*SIDECAR_FORMS, "none"):
            raise ECGVLMError(f"sidecar must be compact, full or none, got {sidecar!r}")
        data = self.encode(fmt, quality)
        if sidecar != "none":
            side = dict(self.sidecar, image=path.name)
            side = compact(side) if sidecar == "compact" else side
            atomic_write_json(path.with_suffix(".json"), side, indent=None)
        atomic_write_bytes(path, data)
        return path

    def to_json(self) -> str:
        return json.dumps(self.sidecar)


def _round1(a: np.ndarray) -> list[float]:
    return np.round(np.asarray(a, dtype=np.float64), 1).tolist()


Color = tuple[int, int, int]


@lru_cache(maxsize=8)
def _sheet(
    W: int,
    H: int,
    box: tuple[float, float, float, float],
    ppmm: float,
    paper: Color,
    minor: Color | None,
    major: Color | None,
) -> np.ndarray:
    """The blank gridded sheet, unwarped; cached because a dataset renders thousands of pages per style."""
    img = blank_page(W, H, paper)
    if major is not None:
        draw_grid(img, box, ppmm, minor, major)
    img.flags.writeable = False
    return img


# Index values of the single-channel sheet that the pose warps: off the sheet, paper, minor, major.
_OFF, _PAPER, _MINOR, _MAJOR = 0, 40, 128, 255


@lru_cache(maxsize=8)
def _sheet_index(
    W: int, H: int, box: tuple[float, float, float, float], ppmm: float, minor: bool, major: bool
) -> np.ndarray:
    idx = np.full((H, W), _PAPER, np.uint8)
    if major:
        draw_grid(idx, box, ppmm, _MINOR if minor else None, _MAJOR)
    idx.flags.writeable = False
    return idx


def _warped_sheet(
    W: int,
    H: int,
    box: tuple[float, float, float, float],
    ppmm: float,
    M: np.ndarray,
    border: Color | None,
    paper: Color,
    minor: Color | None,
    major: Color | None,
) -> np.ndarray:
    """The gridded sheet seen through the pose ``M``.

    One single-channel warp of a cached index image, then a colour lookup: several times cheaper
    than warping an RGB page, and the traces and text are later drawn straight through ``M``.
    Interpolated index values blend neighbouring colours, which is what bilinear warping does.
    """
    idx = _sheet_index(W, H, box, ppmm, minor is not None, major is not None)
    warped = cv2.warpPerspective(idx, M, (W, H), flags=cv2.INTER_LINEAR, borderValue=_OFF)
    p = np.asarray(paper, np.float64)
    mj = np.asarray(major if major is not None else paper, np.float64)
    mn = np.asarray(minor, np.float64) if minor is not None else (p + mj) / 2
    knots = np.array([_OFF, _PAPER, _MINOR, _MAJOR], np.float64)
    colors = np.stack([np.asarray(border or paper, np.float64), p, mn, mj])
    v = np.arange(256)
    lut = np.stack([np.interp(v, knots, colors[:, c]) for c in range(3)], 1)
    lut = np.round(lut).astype(np.uint8).reshape(256, 1, 3)
    return cv2.applyColorMap(warped, lut)  # a per-channel lookup of a grey image, despite its name


@dataclass
class _Canvas:
    """The page being drawn: its pixels, the pose ``M`` they are drawn through, the ink, and
    where each mark landed in final image pixels (the sidecar's lists, filled in drawing order)."""

    img: np.ndarray
    M: np.ndarray | None
    W: int
    H: int
    ppmm: float
    style: RenderStyle
    trace: Color
    thick: float
    text_color: Color
    font_px: int
    grid_box: tuple[float, ...]  # the gridded area, page pixels
    leads: list[dict] = field(default_factory=list)
    calibration: list[dict] = field(default_factory=list)
    separators: list[dict] = field(default_factory=list)
    text: list[dict] = field(default_factory=list)

    def to_image(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (xs, ys) if self.M is None else warp_points(self.M, xs, ys)

    def box_to_image(self, b: Sequence[float]) -> list[float]:
        bx, by = self.to_image(
            np.array([b[0], b[2], b[2], b[0]], float), np.array([b[1], b[1], b[3], b[3]], float)
        )
        return [round(float(v), 1) for v in (bx.min(), by.min(), bx.max(), by.max())]

    def line(self, xs: np.ndarray, ys: np.ndarray) -> None:
        """A trace-ink polyline given in page pixels."""
        draw_polyline(self.img, *self.to_image(xs, ys), self.trace, self.thick)

    def write(self, x: float, y: float, s: str, kind: str) -> None:
        box = draw_text(self.img, x, y, s, self.style.font, self.font_px, self.text_color, self.M)
        if box:
            self.text.append({"kind": kind, "text": s, "bbox": self.box_to_image(box)})


def _grid_inks(style: RenderStyle, plan: aug.Plan, ppmm: float) -> tuple[Color | None, Color | None]:
    """(minor, major) grid line colours as the page shows them; None where a line is not drawn."""
    inks = GRID_COLORS[style.grid_color]
    if inks is None:
        return None, None
    minor, major = grid_palette(style.paper_color, inks, ppmm)
    minor = plan.ink(minor) if (minor is not None and style.minor_grid) else None
    return minor, plan.ink(major)


def _canvas(style: RenderStyle, plan: aug.Plan, W: int, H: int, grid_box: tuple[float, ...]) -> _Canvas:
    """The gridded sheet in the (possibly faded or photocopied) palette, seen through the pose."""
    ppmm = style.px_per_mm
    M = plan.homography if plan.geometric else None
    paper = plan.ink(style.paper_color)
    trace = plan.ink(style.trace_color)
    text_color = plan.ink(style.text_color)
    minor, major = _grid_inks(style, plan, ppmm)
    if M is None:
        img = _sheet(W, H, grid_box, ppmm, paper, minor, major).copy()
    else:
        img = _warped_sheet(W, H, grid_box, ppmm, M, plan.border, paper, minor, major)
    thick = max(1.0, style.trace_width_mm * ppmm)
    font_px = max(6, round(style.font_size_mm * ppmm))
    return _Canvas(img, M, W, H, ppmm, style, trace, thick, text_color, font_px, grid_box)


class _Window(NamedTuple):
    start: float  # s into the record where the printout starts
    shift: float  # s from the asked start
    notes: list[str]


def _window(record: ECGRecord, lay: Layout, style: RenderStyle) -> _Window:
    """Start where asked unless that runs past the end; a short record leaves panels short."""
    notes: list[str] = []
    duration = record.duration
    start = min(style.start_s, max(0.0, duration - lay.seconds))
    shift = start - style.start_s
    if shift:
        notes.append(f"start moved from {style.start_s:g} s to {start:g} s to fit the record")
    if duration < start + lay.seconds - 1e-9:
        notes.append(
            f"record is {duration:g} s, shorter than the {lay.seconds:g} s printed; panels end early"
        )
    return _Window(start, shift, notes)


def _draw_trace(cv: _Canvas, record: ECGRecord, p: Panel, shift: float) -> dict:
    """Draw one panel's samples; return its sidecar entry (every plotted sample's pixel)."""
    ppmm, W, H, fs, n = cv.ppmm, cv.W, cv.H, record.fs, record.n_samples
    t0, t1 = p.t0 + shift, p.t1 + shift
    i0 = min(n, max(0, math.ceil(t0 * fs - 1e-6)))
    i1 = max(i0, min(n, math.ceil(t1 * fs - 1e-6)))  # samples with t in [t0, t1)
    v = record.signal[LEADS.index(p.lead), i0:i1].astype(np.float64)
    xs = (p.x0 + (np.arange(i0, i1) / fs - t0) * cv.style.speed) * ppmm
    ys = (p.baseline - v * cv.style.gain) * ppmm
    ys_c = np.clip(ys, 0, H - 1)  # a huge deflection is cut at the page edge, as a printer would
    xi, yi = cv.to_image(xs, ys_c)
    draw_polyline(cv.img, xi, yi, cv.trace, cv.thick)
    return {
        "lead": p.lead,
        "row": p.row,
        "col": p.col,
        "bbox": cv.box_to_image([p.x0 * ppmm, p.top * ppmm, p.x1 * ppmm, p.bottom * ppmm]),
        "baseline_y_page": round(p.baseline * ppmm, 2),
        "t_start": round(t0, 6),
        "t_end": round(t1, 6),
        "sample_start": i0,
        "sample_end": i1,
        "n_samples": i1 - i0,
        "truncated": bool(i1 < math.ceil(t1 * fs - 1e-6)),
        "n_clipped": int(np.count_nonzero(ys_c != ys)),
        "ink_bbox": _round1([xi.min(), yi.min(), xi.max(), yi.max()]) if len(xi) else None,
        "n_outside": int(np.count_nonzero((xi < 0) | (yi < 0) | (xi > W - 1) | (yi > H - 1))),
        "x": _round1(xi),
        "y": _round1(yi),
    }


def _draw_panels(cv: _Canvas, record: ECGRecord, lay: Layout, shift: float) -> None:
    """Each panel's trace, then the tick where its column begins and its lead label."""
    ppmm = cv.ppmm
    for p in lay.panels:
        cv.leads.append(_draw_trace(cv, record, p, shift))
        if cv.style.separators and p.col > 0:
            x, sy, half = p.x0 * ppmm, p.baseline * ppmm, 1.5 * ppmm
            cv.line(np.array([x, x]), np.array([sy - half, sy + half]))
            cv.separators.append({"row": p.row, "bbox": cv.box_to_image([x, sy - half, x, sy + half])})
        if cv.style.lead_labels:
            cv.write(p.x0 * ppmm + 0.8 * ppmm, p.top * ppmm + 1.0 * ppmm, p.lead, "lead_label")


def _draw_calibration(cv: _Canvas, lay: Layout) -> None:
    """A 1 mV pulse at the start of every row."""
    ppmm = cv.ppmm
    for r, base in enumerate(lay.row_baselines):
        x0, g = lay.row_x0, cv.style.gain
        xm = np.array([x0, x0 + 1, x0 + 1, x0 + 6, x0 + 6, x0 + PULSE_MM]) * ppmm
        ym = np.array([base, base, base - g, base - g, base, base]) * ppmm
        cv.line(xm, ym)
        cv.calibration.append({"row": r, "mv": 1.0, "bbox": cv.box_to_image([xm[1], ym[2], xm[3], ym[0]])})


def _draw_header(cv: _Canvas, record: ECGRecord, lay: Layout, rng: np.random.Generator) -> None:
    """The header lines above the grid and the settings line below it."""
    style, ppmm = cv.style, cv.ppmm
    hx, hy = lay.header_mm[0] * ppmm, 3.0 * ppmm
    for k, line in enumerate(header_lines(record, rng, style.header_measurements)):
        cv.write(hx, hy + k * cv.font_px * 1.45, line, "header")
    line = settings_line(style.speed, style.gain, style.filter_text, style.mains_hz)
    cv.write(hx, cv.grid_box[3] + 0.8 * ppmm, line, "settings")


def _sidecar(
    record: ECGRecord,
    layout: str,
    seed: int,
    preset: str,
    lay: Layout,
    cv: _Canvas,
    win: _Window,
    plan: aug.Plan,
) -> dict[str, Any]:
    """The page's ground truth, in final image pixels."""
    style, ppmm = cv.style, cv.ppmm
    return {
        "version": SIDECAR_VERSION,
        "record_id": record.id,
        "source": record.meta.get("source"),
        "fs": record.fs,
        "record_seconds": round(record.duration, 6),
        "layout": layout,
        "seed": seed,
        "width": cv.W,
        "height": cv.H,
        "paper": style.paper,
        "paper_mm": [round(v, 2) for v in lay.page_mm],
        "dpi": style.dpi,
        "px_per_mm": round(ppmm, 6),
        "speed_mm_s": style.speed,
        "gain_mm_mv": style.gain,
        "seconds": lay.seconds,
        "start_s": round(win.start, 6),
        "grid": {
            "color": style.grid_color,
            "bbox_page": [round(v, 1) for v in cv.grid_box],
            "minor_px": round(ppmm, 6),
            "major_px": round(5 * ppmm, 6),
        },
        "trace_px": round(cv.thick, 3),
        "style": {k: (list(v) if isinstance(v, tuple) else v) for k, v in style.__dict__.items()},
        "augment": {
            "preset": preset,
            "applied": plan.applied,
            "homography": np.round(plan.homography, 10).tolist(),
        },
        "notes": win.notes,
        "coordinates": "final image pixels (pixel centres at integers); keys ending in _page are before the homography",
        "calibration": cv.calibration,
        "separators": cv.separators,
        "text": cv.text,
        "leads": cv.leads,
    }


def render(
    record: ECGRecord,
    layout: str = "3x4+1",
    augment: str | Sequence[aug.Degradation] = "none",
    seed: int = 0,
    style: RenderStyle | None = None,
) -> Page:
    """Draw ``record`` as a paper printout and degrade it; the same arguments give the same pixels.

    ``augment`` is a preset name ("none", "light", "heavy") or a sequence of ``Degradation``.
    The sidecar gives, in final image pixels, every plotted sample, each lead's box and window,
    the calibration pulses and text boxes, and the homography of the geometric degradations.
    """
    if not isinstance(record, ECGRecord):
        raise ECGVLMError(f"render() needs an ECGRecord, got {type(record).__name__}")
    style = style or RenderStyle()
    preset, ops = aug.resolve(augment)
    lay = make_layout(layout, style)
    ppmm = style.px_per_mm
    W, H = round(lay.page_mm[0] * ppmm), round(lay.page_mm[1] * ppmm)
    header_rng, aug_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    plan = aug.plan(ops, aug_rng, W, H)
    cv = _canvas(style, plan, W, H, tuple(v * ppmm for v in lay.grid_mm))
    win = _window(record, lay, style)
    _draw_panels(cv, record, lay, win.shift)
    if style.calibration:
        _draw_calibration(cv, lay)
    if style.header:
        _draw_header(cv, record, lay, header_rng)
    final = aug.finish(cv.img, plan, style.dpi) if ops else cv.img
    return Page(array=final, sidecar=_sidecar(record, layout, seed, preset, lay, cv, win, plan))
