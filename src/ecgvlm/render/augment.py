"""Seeded degradations of a rendered page: paper, geometry (one homography), light, camera, file.

Each ``Degradation`` has a probability and a strength range; a preset is a tuple of them. Stages run
in a fixed physical order: the paper (texture, creases, faded or photocopied ink), then the page's
pose in the photo or scan (rotation, shear, perspective, crop/padding composed into ONE homography
so the pixels are resampled once), then light (gradient, shadow, colour cast), the camera (blur,
noise, salt-and-pepper), and the file (greyscale, JPEG). Shading fields are computed at low
resolution and multiplied in as uint8, which keeps the heavy preset at a few tens of ms per page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ecgvlm.errors import ECGVLMError


@dataclass(frozen=True)
class Degradation:
    """Apply ``name`` with probability ``p`` at a strength drawn uniformly from [lo, hi]."""

    name: str
    p: float
    lo: float
    hi: float


# Strength units: texture/lighting/shadow/crease/fade/colour_cast: fraction of brightness;
# rotate: degrees; shear: tan of the angle; perspective and crop_pad: fraction of the page size;
# blur: Gaussian sigma in px at 200 dpi (scaled with dpi); noise: sigma in grey levels;
# salt_pepper: fraction of pixels; photocopy: contrast (0-1); jpeg: quality; greyscale: unused.
NAMES = (
    "texture", "crease", "fade", "photocopy",
    "rotate", "shear", "perspective", "crop_pad",
    "lighting", "shadow", "color_cast",
    "blur", "noise", "salt_pepper", "greyscale", "jpeg",
)  # fmt: skip

D = Degradation
PRESETS: dict[str, tuple[Degradation, ...]] = {
    "none": (),
    "light": (
        D("texture", 0.5, 0.02, 0.06),
        D("crease", 0.15, 0.05, 0.12),
        D("fade", 0.15, 0.1, 0.3),
        D("rotate", 0.6, 0.2, 1.5),
        D("shear", 0.2, 0.002, 0.01),
        D("perspective", 0.15, 0.005, 0.02),
        D("crop_pad", 0.3, 0.005, 0.03),
        D("lighting", 0.4, 0.03, 0.12),
        D("color_cast", 0.3, 0.02, 0.05),
        D("blur", 0.3, 0.3, 0.7),
        D("noise", 0.4, 2.0, 5.0),
        D("salt_pepper", 0.1, 0.0002, 0.001),
        D("greyscale", 0.1, 0, 0),
        D("jpeg", 0.4, 75, 95),
    ),
    "heavy": (
        D("texture", 0.9, 0.05, 0.15),
        D("crease", 0.7, 0.1, 0.3),
        D("fade", 0.35, 0.2, 0.5),
        D("photocopy", 0.2, 0.4, 0.9),
        D("rotate", 0.9, 1.0, 5.0),
        D("shear", 0.5, 0.005, 0.03),
        D("perspective", 0.6, 0.02, 0.06),
        D("crop_pad", 0.6, 0.01, 0.06),
        D("lighting", 0.8, 0.1, 0.3),
        D("shadow", 0.5, 0.15, 0.4),
        D("color_cast", 0.6, 0.04, 0.12),
        D("blur", 0.6, 0.5, 1.5),
        D("noise", 0.8, 4.0, 12.0),
        D("salt_pepper", 0.4, 0.0005, 0.004),
        D("greyscale", 0.2, 0, 0),
        D("jpeg", 0.8, 30, 80),
    ),
}


def resolve(augment: str | Sequence[Degradation]) -> tuple[str, tuple[Degradation, ...]]:
    if isinstance(augment, str):
        if augment not in PRESETS:
            raise ECGVLMError(f"unknown augment preset {augment!r}; known: {', '.join(PRESETS)}")
        return augment, PRESETS[augment]
    ops = tuple(augment)
    for op in ops:
        if not isinstance(op, Degradation) or op.name not in NAMES:
            raise ECGVLMError(f"unknown degradation {op!r}; known: {', '.join(NAMES)}")
    return "custom", ops


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-ish smooth noise of shape (h, w) from a coarse random lattice."""
    ch, cw = max(2, h * cells // max(h, w)), max(2, w * cells // max(h, w))
    lattice = rng.standard_normal((ch, cw)).astype(np.float32)
    return cv2.resize(lattice, (w, h), interpolation=cv2.INTER_CUBIC)


def _multiply(img: np.ndarray, field: np.ndarray) -> np.ndarray:
    """img * field where field is float (h', w'[, 3]) at any resolution, 1.0 = unchanged (max 1.27)."""
    H, W = img.shape[:2]
    f = np.clip(np.round(field * 200.0), 0, 255).astype(np.uint8)
    if f.ndim == 2:
        f = cv2.merge([f, f, f])
    f = cv2.resize(f, (W, H), interpolation=cv2.INTER_LINEAR)
    return cv2.multiply(img, f, scale=1 / 200.0)


def _lut(img: np.ndarray, table: np.ndarray) -> np.ndarray:
    return cv2.LUT(img, np.clip(np.round(table), 0, 255).astype(np.uint8))


@dataclass
class Augmented:
    image: np.ndarray
    homography: np.ndarray  # 3x3, page pixel -> image pixel
    applied: list[dict]


def apply(img: np.ndarray, ops: Sequence[Degradation], rng: np.random.Generator, dpi: float) -> Augmented:
    """Degrade ``img`` (uint8 RGB, not modified) with every op whose coin comes up; fully seeded."""
    # Draw every coin and strength up front, in a fixed order, so adding an op later in the list
    # never changes the draws of the ones before it.
    chosen: dict[str, float] = {}
    for op in ops:
        hit = rng.random() < op.p
        s = float(rng.uniform(op.lo, op.hi))
        if hit:
            chosen[op.name] = s
    H, W = img.shape[:2]
    applied: list[dict] = []
    out = img
    scale = dpi / 200.0

    # --- the paper ---
    if "texture" in chosen or "crease" in chosen:
        lh, lw = max(8, H // 4), max(8, W // 4)
        field = np.ones((lh, lw), np.float32)
        if "texture" in chosen:
            a = chosen["texture"]
            wrinkles = _smooth_noise(rng, lh, lw, 12) * 0.6 + _smooth_noise(rng, lh, lw, 40) * 0.4
            grain = rng.standard_normal((lh, lw)).astype(np.float32) * 0.15
            field -= a * np.abs(wrinkles + grain)
            applied.append({"name": "texture", "strength": round(a, 4)})
        if "crease" in chosen:
            a = chosen["crease"]
            creases = []
            yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
            for _ in range(int(rng.integers(1, 4))):
                vertical = bool(rng.random() < 0.6)
                frac = float(rng.choice([1 / 3, 1 / 2, 2 / 3]) + rng.uniform(-0.03, 0.03))
                tilt = float(rng.uniform(-0.02, 0.02))
                if vertical:
                    d = xx - (frac * lw + tilt * (yy - lh / 2))
                else:
                    d = yy - (frac * lh + tilt * (xx - lw / 2))
                width = float(rng.uniform(3, 12))
                # a dark fold line, a shaded slope on one side and a lit slope on the other
                side = np.tanh(d / width) * np.exp(-np.abs(d) / (4 * width))
                field *= 1 - a * (np.exp(-(d**2) / 1.2) + 0.5 * side)
                creases.append({"vertical": vertical, "at": round(frac, 4), "tilt": round(tilt, 4)})
            applied.append({"name": "crease", "strength": round(a, 4), "creases": creases})
        out = _multiply(out, field)
    if "fade" in chosen:
        a = chosen["fade"]
        v = np.arange(256, dtype=np.float32)
        out = _lut(out, 255 - (255 - v) * (1 - a))
        applied.append({"name": "fade", "strength": round(a, 4)})
    if "photocopy" in chosen:
        a = chosen["photocopy"]
        g = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
        v = np.arange(256, dtype=np.float32)
        mid = 200 - 40 * a
        g = _lut(g, 255 / (1 + np.exp(-(v - mid) / (30 - 20 * a))))
        n_dots = int(H * W * 0.0003 * a)
        g[rng.integers(0, H, n_dots), rng.integers(0, W, n_dots)] = int(rng.integers(0, 80))
        out = cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)
        applied.append({"name": "photocopy", "strength": round(a, 4)})

    # --- the pose: one homography, one resampling ---
    cx, cy = (W - 1) / 2, (H - 1) / 2
    M = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
    geometric = False
    if "rotate" in chosen:
        deg = chosen["rotate"] * float(rng.choice([-1, 1]))
        t = np.deg2rad(deg)
        M = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]]) @ M
        applied.append({"name": "rotate", "degrees": round(deg, 4)})
        geometric = True
    if "shear" in chosen:
        sx, sy = (chosen["shear"] * float(rng.choice([-1, 1])) * float(rng.uniform(0.3, 1)) for _ in range(2))
        M = np.array([[1, sx, 0], [sy, 1, 0], [0, 0, 1]]) @ M
        applied.append({"name": "shear", "sx": round(sx, 5), "sy": round(sy, 5)})
        geometric = True
    if "crop_pad" in chosen:
        s = chosen["crop_pad"]
        zoom = 1 + s * float(rng.choice([-1, 1]))  # > 1 crops the edges off, < 1 pads
        dx, dy = (float(rng.uniform(-s, s)) * n for n in (W, H))
        M = np.array([[zoom, 0, dx], [0, zoom, dy], [0, 0, 1]]) @ M
        applied.append({"name": "crop_pad", "zoom": round(zoom, 5), "dx": round(dx, 2), "dy": round(dy, 2)})
        geometric = True
    M = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]]) @ M
    if "perspective" in chosen:
        s = chosen["perspective"]
        src = np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]], np.float32)
        dst = src + rng.uniform(-s, s, (4, 2)).astype(np.float32) * np.array([W, H], np.float32)
        P = cv2.getPerspectiveTransform(src, dst).astype(np.float64)
        M = P @ M
        applied.append({"name": "perspective", "strength": round(s, 4), "corners": np.round(dst, 2).tolist()})
        geometric = True
    if geometric:
        M = M / M[2, 2]
        photo = "perspective" in chosen
        bg = rng.integers(40, 140, 3) if photo else rng.integers(225, 256, 3)
        border = tuple(int(c) for c in bg)
        out = cv2.warpPerspective(
            out, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border
        )
        applied.append({"name": "homography", "matrix": np.round(M, 8).tolist(), "border_rgb": list(border)})
    else:
        M = np.eye(3)

    # --- the light ---
    if {"lighting", "shadow", "color_cast"} & chosen.keys():
        lh, lw = max(8, H // 8), max(8, W // 8)
        field = np.ones((lh, lw, 3), np.float32)
        yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
        if "lighting" in chosen:
            a = chosen["lighting"]
            ang = float(rng.uniform(0, 2 * np.pi))
            ramp = (np.cos(ang) * (xx / lw - 0.5) + np.sin(ang) * (yy / lh - 0.5)) * 2  # -1..1-ish
            r2 = ((xx / lw - 0.5) ** 2 + (yy / lh - 0.5) ** 2) * 2  # vignette 0..1
            field *= (1 - a * (0.5 + 0.5 * ramp) * 0.8 - a * 0.4 * r2)[..., None]
            applied.append({"name": "lighting", "strength": round(a, 4), "angle": round(ang, 4)})
        if "shadow" in chosen:
            a = chosen["shadow"]
            mask = np.zeros((lh, lw), np.float32)
            corner = rng.uniform([0, 0], [lw, lh])
            pts = corner + rng.normal(0, 1, (5, 2)) * np.array([lw, lh]) * 0.4
            cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1.0)
            mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, lw / 40))
            field *= (1 - a * mask)[..., None]
            applied.append({"name": "shadow", "strength": round(a, 4)})
        if "color_cast" in chosen:
            a = chosen["color_cast"]
            gains = 1 + rng.uniform(-a, a, 3)
            field *= gains.astype(np.float32)
            applied.append({"name": "color_cast", "rgb_gain": np.round(gains, 4).tolist()})
        out = _multiply(out, field)

    # --- the camera ---
    if "blur" in chosen:
        sigma = chosen["blur"] * scale
        if sigma >= 0.2:
            out = cv2.GaussianBlur(out, (0, 0), sigma)
        applied.append({"name": "blur", "sigma_px": round(sigma, 4)})
    if "noise" in chosen:
        sigma = chosen["noise"]
        hh, hw = (H + 1) // 2, (W + 1) // 2  # sensor noise after demosaicing is not per-pixel white
        n = rng.standard_normal((hh, hw), dtype=np.float32) * sigma + 128
        n = cv2.resize(np.clip(n, 0, 255).astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST)
        out = cv2.addWeighted(out, 1.0, cv2.merge([n, n, n]), 1.0, -128.0)
        applied.append({"name": "noise", "sigma": round(sigma, 4)})
    if "salt_pepper" in chosen:
        frac = chosen["salt_pepper"]
        k = int(H * W * frac)
        ys, xs = rng.integers(0, H, k), rng.integers(0, W, k)
        out = out.copy() if out is img else out
        out[ys[: k // 2], xs[: k // 2]] = 0
        out[ys[k // 2 :], xs[k // 2 :]] = 255
        applied.append({"name": "salt_pepper", "fraction": round(frac, 6)})

    # --- the file ---
    if "greyscale" in chosen:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        applied.append({"name": "greyscale"})
    if "jpeg" in chosen:
        q = int(round(chosen["jpeg"]))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        applied.append({"name": "jpeg", "quality": q})
    return Augmented(image=np.ascontiguousarray(out), homography=M, applied=applied)


def transform_points(M: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map page pixels through the homography ``M``."""
    w = M[2, 0] * xs + M[2, 1] * ys + M[2, 2]
    return (M[0, 0] * xs + M[0, 1] * ys + M[0, 2]) / w, (M[1, 0] * xs + M[1, 1] * ys + M[1, 2]) / w
