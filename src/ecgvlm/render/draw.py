"""Drawing primitives on a uint8 RGB numpy page: grid, traces, text. OpenCV and numpy only for speed.

Coordinates are float pixels whose integer values are pixel centres, so a point at x = 10.0 inks
column 10. Polylines use OpenCV's fixed-point ``shift`` so sub-pixel positions are kept.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw

from ecgvlm.render.style import load_font

SHIFT = 4  # OpenCV fixed-point bits: 1/16 px


def blank_page(width: int, height: int, color: tuple[int, int, int]) -> np.ndarray:
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = color
    return img


def _tint(paper: tuple[int, int, int], ink: tuple[int, int, int], alpha: float = 1.0) -> np.ndarray:
    """The colour of a translucent grid ink on this paper: paper x ink (multiply), mixed by alpha."""
    p = np.asarray(paper, dtype=np.float32)
    full = p * np.asarray(ink, dtype=np.float32) / 255.0
    return np.round(p + alpha * (full - p)).astype(np.uint8)


def grid_lines(start_px: float, end_px: float, px_per_mm: float) -> np.ndarray:
    """Pixel positions of the 1-mm lines from start to end (inclusive), index 0 at ``start``."""
    n = int(np.floor((end_px - start_px) / px_per_mm + 1e-6)) + 1
    return np.round(start_px + np.arange(n) * px_per_mm).astype(np.int64)


def draw_grid(
    img: np.ndarray,
    box_px: tuple[float, float, float, float],
    px_per_mm: float,
    colors: tuple[tuple[int, int, int], tuple[int, int, int]],
    paper: tuple[int, int, int],
    minor: bool = True,
) -> None:
    """1-mm minor and 5-mm major lines over ``box``. Minor lines fade out when under ~3 px apart."""
    x0, y0, x1, y1 = box_px
    xs, ys = grid_lines(x0, x1, px_per_mm), grid_lines(y0, y1, px_per_mm)
    r0, r1, c0, c1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    major_w = max(1, round(px_per_mm * 0.2))
    if minor and px_per_mm >= 1.6:
        alpha = float(np.clip((px_per_mm - 1.6) / 2.4, 0.25, 1.0))
        c = _tint(paper, colors[0], alpha)
        img[r0:r1, xs] = c
        img[ys, c0:c1] = c
    c = _tint(paper, colors[1])
    for k in range(major_w):  # thicker major lines grow to the right/bottom
        mx, my = np.minimum(xs[::5] + k, c1 - 1), np.minimum(ys[::5] + k, r1 - 1)
        img[r0:r1, mx] = c
        img[my, c0:c1] = c


def draw_polyline(
    img: np.ndarray, xs: np.ndarray, ys: np.ndarray, color: tuple[int, int, int], width_px: float
) -> None:
    """Anti-aliased polyline of about ``width_px`` px.

    OpenCV's thick anti-aliased lines cost ~10x its 1-px ones, so pens up to 3 px are built from a
    few 1-px passes offset on a small disc: the same look at a fraction of the time.
    """
    if len(xs) == 0:
        return
    pts = np.stack([xs, ys], axis=1)
    if len(pts) == 1:
        pts = np.concatenate([pts, pts])
    if width_px >= 3.5:
        p = np.round(pts * (1 << SHIFT)).astype(np.int32)
        cv2.polylines(img, [p], False, color, round(width_px), cv2.LINE_AA, shift=SHIFT)
        return
    r = max(0.0, (width_px - 1.3) / 2)
    offsets = [(0.0, 0.0)]
    if r > 0.05:
        offsets += [(r, 0.0), (-r, 0.0), (0.0, r), (0.0, -r)]
    for dx, dy in offsets:
        p = np.round((pts + (dx, dy)) * (1 << SHIFT)).astype(np.int32)
        cv2.polylines(img, [p], False, color, 1, cv2.LINE_AA, shift=SHIFT)


@lru_cache(maxsize=512)
def _text_mask(text: str, font: str, size_px: int) -> tuple[np.ndarray, int, int]:
    """Alpha mask of ``text`` and its offset from the (left, ascender) anchor."""
    f = load_font(font, size_px)
    left, top, right, bottom = f.getbbox(text)
    w, h = max(1, right - left), max(1, bottom - top)
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=f, fill=255)
    return np.asarray(mask, dtype=np.uint16), left, top


def draw_text(
    img: np.ndarray, x: float, y: float, text: str, font: str, size_px: int, color: tuple[int, int, int]
) -> list[int] | None:
    """Draw text with its top-left (ascender line) at (x, y); returns its ink box [x0, y0, x1, y1]."""
    if not text.strip():
        return None
    mask, dx, dy = _text_mask(text, font, size_px)
    h, w = mask.shape
    X, Y = round(x) + dx, round(y) + dy
    H, W = img.shape[:2]
    xa, ya, xb, yb = max(X, 0), max(Y, 0), min(X + w, W), min(Y + h, H)
    if xa >= xb or ya >= yb:
        return None
    a = mask[ya - Y : yb - Y, xa - X : xb - X, None]
    region = img[ya:yb, xa:xb].astype(np.uint16)
    ink = np.asarray(color, dtype=np.uint16)
    img[ya:yb, xa:xb] = ((region * (255 - a) + ink * a + 127) // 255).astype(np.uint8)
    return [xa, ya, xb, yb]
