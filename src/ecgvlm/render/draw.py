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


Color = tuple[int, int, int]


def grid_palette(paper: Color, inks: tuple[Color, Color], px_per_mm: float) -> tuple[Color | None, Color]:
    """(minor, major) line colours: translucent ink on this paper (multiply). Minor lines fade out
    as they crowd together at low dpi and vanish under ~1.6 px apart (None)."""
    p = np.asarray(paper, dtype=np.float32)

    def mix(ink: Color, alpha: float) -> Color:
        full = p * np.asarray(ink, dtype=np.float32) / 255.0
        return tuple(int(v) for v in np.round(p + alpha * (full - p)))

    minor = mix(inks[0], float(np.clip((px_per_mm - 1.6) / 2.4, 0.25, 1.0))) if px_per_mm >= 1.6 else None
    return minor, mix(inks[1], 1.0)


def grid_lines(start_px: float, end_px: float, px_per_mm: float) -> np.ndarray:
    """Pixel positions of the 1-mm lines from start to end (inclusive), index 0 at ``start``."""
    n = int(np.floor((end_px - start_px) / px_per_mm + 1e-6)) + 1
    return np.round(start_px + np.arange(n) * px_per_mm).astype(np.int64)


def major_width(px_per_mm: float) -> int:
    return max(1, round(px_per_mm * 0.2))


def draw_grid(
    img: np.ndarray,
    box_px: tuple[float, float, float, float],
    px_per_mm: float,
    minor: Color | None,
    major: Color,
) -> None:
    """1-mm minor and 5-mm major lines over ``box``, pixel-aligned (the unwarped page)."""
    x0, y0, x1, y1 = box_px
    xs, ys = grid_lines(x0, x1, px_per_mm), grid_lines(y0, y1, px_per_mm)
    r0, r1, c0, c1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    if minor is not None:
        img[r0:r1, xs] = minor
        img[ys, c0:c1] = minor
    for k in range(major_width(px_per_mm)):  # thicker major lines grow to the right/bottom
        mx, my = np.minimum(xs[::5] + k, c1 - 1), np.minimum(ys[::5] + k, r1 - 1)
        img[r0:r1, mx] = major
        img[my, c0:c1] = major


def warp_points(M: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map page pixels through the homography ``M`` (3x3)."""
    w = M[2, 0] * xs + M[2, 1] * ys + M[2, 2]
    return (M[0, 0] * xs + M[0, 1] * ys + M[0, 2]) / w, (M[1, 0] * xs + M[1, 1] * ys + M[1, 2]) / w


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
    r = max(0.0, (width_px - 1.3) / 2)  # an anti-aliased 1-px line already inks about 1.3 px
    offsets = [(0.0, 0.0)]
    if r > 0.25:
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
    img: np.ndarray,
    x: float,
    y: float,
    text: str,
    font: str,
    size_px: int,
    color: Color,
    M: np.ndarray | None = None,
) -> list[float] | None:
    """Draw text with its top-left (ascender line) at page point (x, y), through ``M`` if given.

    Returns the page-coordinate ink box [x0, y0, x1, y1] (before ``M``), or None if off the page.
    """
    if not text.strip():
        return None
    mask, dx, dy = _text_mask(text, font, size_px)
    h, w = mask.shape
    X, Y = round(x) + dx, round(y) + dy
    H, W = img.shape[:2]
    page_box = [float(X), float(Y), float(X + w), float(Y + h)]
    if M is not None:
        # Warp just this word's mask into its bounding box on the output.
        qx, qy = warp_points(M, np.array([X, X + w, X + w, X], float), np.array([Y, Y, Y + h, Y + h], float))
        bx0, by0 = int(np.floor(qx.min())) - 1, int(np.floor(qy.min())) - 1
        bx1, by1 = int(np.ceil(qx.max())) + 2, int(np.ceil(qy.max())) + 2
        A = np.array([[1, 0, -bx0], [0, 1, -by0], [0, 0, 1]], float) @ M
        A = A @ np.array([[1, 0, X], [0, 1, Y], [0, 0, 1]], float)
        mask = cv2.warpPerspective(mask.astype(np.uint8), A, (bx1 - bx0, by1 - by0), flags=cv2.INTER_LINEAR)
        mask = mask.astype(np.uint16)
        X, Y, (h, w) = bx0, by0, mask.shape
    xa, ya, xb, yb = max(X, 0), max(Y, 0), min(X + w, W), min(Y + h, H)
    if xa >= xb or ya >= yb:
        return None
    a = mask[ya - Y : yb - Y, xa - X : xb - X, None]
    region = img[ya:yb, xa:xb].astype(np.uint16)
    ink = np.asarray(color, dtype=np.uint16)
    img[ya:yb, xa:xb] = ((region * (255 - a) + ink * a + 127) // 255).astype(np.uint8)
    return page_box
