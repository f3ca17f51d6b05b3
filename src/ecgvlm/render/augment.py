"""Seeded degradations of a page: paper, pose (one homography), light, camera, file.

Each ``Degradation`` has a probability and a strength range; a preset is a tuple of them. ``plan``
draws every coin and parameter up front. Stages follow the physics: the ink (faded or photocopied:
a change of the palette the page is drawn with), the pose of the sheet in the photo or scan
(rotation, shear, perspective, crop/padding composed into ONE homography that the page is *drawn
through*: lines stay lines, so nothing is resampled and the sidecar is exact), then ``finish``:
the paper (texture, creases: a low-resolution shading field warped with the sheet), the light
(gradient, shadow, colour cast: one field with the paper's, multiplied in once as uint8), the
camera (blur, noise, salt-and-pepper) and the file (greyscale, JPEG).
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

PRESETS: dict[str, tuple[Degradation, ...]] = {
    "none": (),
    "light": (
        Degradation("texture", 0.5, 0.02, 0.06),
        Degradation("crease", 0.15, 0.05, 0.12),
        Degradation("fade", 0.15, 0.1, 0.3),
        Degradation("rotate", 0.6, 0.2, 1.5),
        Degradation("shear", 0.2, 0.002, 0.01),
        Degradation("perspective", 0.15, 0.005, 0.02),
        Degradation("crop_pad", 0.3, 0.005, 0.03),
        Degradation("lighting", 0.4, 0.03, 0.12),
        Degradation("color_cast", 0.3, 0.02, 0.05),
        Degradation("blur", 0.3, 0.3, 0.7),
        Degradation("noise", 0.4, 2.0, 5.0),
        Degradation("salt_pepper", 0.1, 0.0002, 0.001),
        Degradation("greyscale", 0.1, 0, 0),
        Degradation("jpeg", 0.4, 75, 95),
    ),
    "heavy": (
        Degradation("texture", 0.9, 0.05, 0.15),
        Degradation("crease", 0.7, 0.1, 0.3),
        Degradation("fade", 0.35, 0.2, 0.5),
        Degradation("photocopy", 0.2, 0.4, 0.9),
        Degradation("rotate", 0.9, 1.0, 5.0),
        Degradation("shear", 0.5, 0.005, 0.03),
        Degradation("perspective", 0.6, 0.02, 0.06),
        Degradation("crop_pad", 0.6, 0.01, 0.06),
        Degradation("lighting", 0.8, 0.1, 0.3),
        Degradation("shadow", 0.5, 0.15, 0.4),
        Degradation("color_cast", 0.6, 0.04, 0.12),
        Degradation("blur", 0.6, 0.5, 1.5),
        Degradation("noise", 0.8, 4.0, 12.0),
        Degradation("salt_pepper", 0.4, 0.0005, 0.004),
        Degradation("greyscale", 0.2, 0, 0),
        Degradation("jpeg", 0.8, 30, 80),
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


def _gauss_lut(sigma: float) -> np.ndarray:
    """Uniform byte -> Gaussian offset around 128: fast Gaussian noise from random bytes."""
    from scipy.special import ndtri

    u = (np.arange(256) + 0.5) / 256
    return np.clip(np.round(128 + sigma * ndtri(u)), 0, 255).astype(np.uint8)


@dataclass
class Plan:
    """Every random choice for one page, drawn before anything is drawn."""

    chosen: dict[str, float]
    homography: np.ndarray  # 3x3, page pixel -> image pixel
    applied: list[dict]
    border: tuple[int, int, int] | None  # what shows around the sheet when it is moved
    rng: np.random.Generator  # continues to draw the stochastic fields, in a fixed order

    @property
    def geometric(self) -> bool:
        return not np.allclose(self.homography, np.eye(3))

    def ink(self, color: tuple[int, int, int]) -> tuple[int, int, int]:
        """A colour as the faded or photocopied page shows it."""
        c = np.asarray(color, dtype=np.float64)
        if "photocopy" in self.chosen:
            a = self.chosen["photocopy"]
            g = float(c @ (0.299, 0.587, 0.114))
            g = 255 / (1 + np.exp(-(g - (200 - 40 * a)) / (30 - 20 * a)))
            c = np.full(3, g)
        if "fade" in self.chosen:
            c = 255 - (255 - c) * (1 - self.chosen["fade"])
        return tuple(int(v) for v in np.clip(np.round(c), 0, 255))


def plan(ops: Sequence[Degradation], rng: np.random.Generator, width: int, height: int) -> Plan:
    """Draw coins, strengths and the pose; the same rng state gives the same plan."""
    # Every op draws its coin and strength whether or not it fires, in list order, so turning one
    # op on or off never changes the draws of the others.
    chosen: dict[str, float] = {}
    for op in ops:
        hit = rng.random() < op.p
        s = float(rng.uniform(op.lo, op.hi))
        if hit:
            chosen[op.name] = s
    W, H = width, height
    applied: list[dict] = []
    for name in ("fade", "photocopy"):
        if name in chosen:
            applied.append({"name": name, "strength": round(chosen[name], 4)})

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
        M = cv2.getPerspectiveTransform(src, dst).astype(np.float64) @ M
        applied.append({"name": "perspective", "strength": round(s, 4), "corners": np.round(dst, 2).tolist()})
        geometric = True
    border = None
    if geometric:
        M = M / M[2, 2]
        # a photo shows a desk around the sheet; a scan shows the scanner lid
        bg = rng.integers(40, 140, 3) if "perspective" in chosen else rng.integers(225, 256, 3)
        border = tuple(int(c) for c in bg)
        applied.append({"name": "homography", "matrix": np.round(M, 8).tolist(), "border_rgb": list(border)})
    else:
        M = np.eye(3)
    return Plan(chosen=chosen, homography=M, applied=applied, border=border, rng=rng)


def _paper_field(p: Plan, W: int, H: int) -> np.ndarray | None:
    """Texture and creases as a brightness field in page coordinates, at 1/4 resolution."""
    if not {"texture", "crease"} & p.chosen.keys():
        return None
    rng = p.rng
    lh, lw = max(8, H // 4), max(8, W // 4)
    field = np.ones((lh, lw), np.float32)
    if "texture" in p.chosen:
        a = p.chosen["texture"]
        wrinkles = _smooth_noise(rng, lh, lw, 10) * 0.7 + _smooth_noise(rng, lh, lw, 50) * 0.3
        grain = rng.standard_normal((lh, lw)).astype(np.float32) * 0.25
        field -= a * np.clip(0.5 + 0.5 * wrinkles + grain, 0, None)
        p.applied.append({"name": "texture", "strength": round(a, 4)})
    if "crease" in p.chosen:
        a = p.chosen["crease"]
        creases = []
        for _ in range(int(rng.integers(1, 4))):
            # folds run along the sheet's axes (the pose then tilts them like everything else)
            vertical = bool(rng.random() < 0.6)
            n = lw if vertical else lh
            frac = float(rng.choice([1 / 3, 1 / 2, 2 / 3]) + rng.uniform(-0.03, 0.03))
            width = float(rng.uniform(2, 8))
            d = np.arange(n, dtype=np.float32) - frac * n
            # a dark fold line, a shaded slope on one side and a lit slope on the other
            side = np.tanh(d / width) * np.exp(-np.abs(d) / (4 * width))
            profile = 1 - a * (np.exp(-(d**2) / 1.2) + 0.5 * side)
            field *= profile[None, :] if vertical else profile[:, None]
            creases.append({"vertical": vertical, "at": round(frac, 4)})
        p.applied.append({"name": "crease", "strength": round(a, 4), "creases": creases})
    if p.geometric:  # the field moves with the sheet; off the sheet it is 1
        S = np.diag([lw / W, lh / H, 1.0])
        Ml = S @ p.homography @ np.linalg.inv(S)
        field = cv2.warpPerspective(field, Ml, (lw, lh), flags=cv2.INTER_LINEAR, borderValue=1.0)
    return field


def _light_field(p: Plan, W: int, H: int) -> np.ndarray | None:
    if not {"lighting", "shadow", "color_cast"} & p.chosen.keys():
        return None
    rng = p.rng
    lh, lw = max(8, H // 8), max(8, W // 8)
    field = np.ones((lh, lw, 3), np.float32)
    yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
    if "lighting" in p.chosen:
        a = p.chosen["lighting"]
        ang = float(rng.uniform(0, 2 * np.pi))
        ramp = (np.cos(ang) * (xx / lw - 0.5) + np.sin(ang) * (yy / lh - 0.5)) * 2  # about -1..1
        r2 = ((xx / lw - 0.5) ** 2 + (yy / lh - 0.5) ** 2) * 2  # vignette 0..1
        field *= (1 - a * (0.5 + 0.5 * ramp) * 0.8 - a * 0.4 * r2)[..., None]
        p.applied.append({"name": "lighting", "strength": round(a, 4), "angle": round(ang, 4)})
    if "shadow" in p.chosen:
        a = p.chosen["shadow"]
        mask = np.zeros((lh, lw), np.float32)
        corner = rng.uniform([0, 0], [lw, lh])
        pts = corner + rng.normal(0, 1, (5, 2)) * np.array([lw, lh]) * 0.4
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1.0)
        mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, lw / 40))
        field *= (1 - a * mask)[..., None]
        p.applied.append({"name": "shadow", "strength": round(a, 4)})
    if "color_cast" in p.chosen:
        a = p.chosen["color_cast"]
        gains = 1 + rng.uniform(-a, a, 3)
        field *= gains.astype(np.float32)
        p.applied.append({"name": "color_cast", "rgb_gain": np.round(gains, 4).tolist()})
    return field


def finish(img: np.ndarray, p: Plan, dpi: float) -> np.ndarray:
    """Paper shading, light, camera and file degradations of a page already drawn through the pose.

    ``img`` may be modified in place; the result is returned.
    """
    H, W = img.shape[:2]
    rng = p.rng
    paper = _paper_field(p, W, H)
    light = _light_field(p, W, H)
    if paper is not None or light is not None:
        lh, lw = max(8, H // 4), max(8, W // 4)
        field = np.ones((lh, lw, 3), np.float32)
        if paper is not None:
            field *= paper[..., None]
        if light is not None:
            field *= cv2.resize(light, (lw, lh), interpolation=cv2.INTER_LINEAR)
        f = np.clip(np.round(field * 200.0), 0, 255).astype(np.uint8)  # 200 = x1.0, up to x1.27
        img = cv2.multiply(img, cv2.resize(f, (W, H), interpolation=cv2.INTER_LINEAR), scale=1 / 200.0)
    if "photocopy" in p.chosen:  # toner specks
        n_dots = int(H * W * 0.0003 * p.chosen["photocopy"])
        img[rng.integers(0, H, n_dots), rng.integers(0, W, n_dots)] = int(rng.integers(0, 80))
    if "blur" in p.chosen:
        sigma = p.chosen["blur"] * dpi / 200.0
        if sigma >= 0.2:
            k = 2 * int(np.ceil(2 * sigma)) + 1  # +-2 sigma: 95% of the kernel at half the cost of 3
            img = cv2.GaussianBlur(img, (k, k), sigma)
        p.applied.append({"name": "blur", "sigma_px": round(sigma, 4)})
    if "noise" in p.chosen:
        sigma = p.chosen["noise"]
        hh, hw = (H + 1) // 2, (W + 1) // 2  # sensor noise after demosaicing is not per-pixel white
        n = cv2.LUT(rng.integers(0, 256, (hh, hw), dtype=np.uint8), _gauss_lut(sigma))
        n = cv2.resize(n, (W, H), interpolation=cv2.INTER_NEAREST)
        img = cv2.addWeighted(img, 1.0, cv2.merge([n, n, n]), 1.0, -128.0)
        p.applied.append({"name": "noise", "sigma": round(sigma, 4)})
    if "salt_pepper" in p.chosen:
        frac = p.chosen["salt_pepper"]
        k = int(H * W * frac)
        ys, xs = rng.integers(0, H, k), rng.integers(0, W, k)
        img[ys[: k // 2], xs[: k // 2]] = 0
        img[ys[k // 2 :], xs[k // 2 :]] = 255
        p.applied.append({"name": "salt_pepper", "fraction": round(frac, 6)})
    if "greyscale" in p.chosen:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        p.applied.append({"name": "greyscale"})
    if "jpeg" in p.chosen:
        q = int(round(p.chosen["jpeg"]))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        p.applied.append({"name": "jpeg", "quality": q})
    return np.ascontiguousarray(img)
