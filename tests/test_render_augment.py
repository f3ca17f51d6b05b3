"""Degradations: seeded bytes, every op runs, and geometric ones carry the sidecar pixels along."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ecgvlm.errors import ECGVLMError
from ecgvlm.render import PRESETS, Degradation, RenderStyle, render
from ecgvlm.render.augment import NAMES
from ecgvlm.render.draw import warp_points
from test_render_page import BLUE, beat_record


@pytest.fixture(scope="module")
def rec():
    return beat_record(seed=2)


@pytest.mark.parametrize("preset", ["none", "light", "heavy"])
def test_same_seed_same_bytes(rec, preset):
    a = render(rec, augment=preset, seed=11)
    b = render(rec, augment=preset, seed=11)
    assert a.encode("png") == b.encode("png")
    assert a.sidecar == b.sidecar
    if preset != "none":
        c = render(rec, augment=preset, seed=12)
        assert not np.array_equal(a.array, c.array)


def _blue_near(img: np.ndarray, radius: int) -> np.ndarray:
    a = img.astype(np.int16)
    ink = ((a[..., 2] - a[..., 0]) > 40).astype(np.uint8)
    return cv2.dilate(ink, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)) > 0


def _fraction_on_ink(page, radius: int) -> float:
    near = _blue_near(page.array, radius)
    H, W = near.shape
    hits = total = 0
    for lead in page.sidecar["leads"]:
        x, y = np.round(lead["x"]).astype(int), np.round(lead["y"]).astype(int)
        inside = (x >= 0) & (y >= 0) & (x < W) & (y < H)
        hits += int(near[y[inside], x[inside]].sum())
        total += int(inside.sum())
    return hits / total


def test_rotation_moves_sidecar_pixels_with_the_ink(rec):
    style = RenderStyle(trace_color=BLUE)
    clean = render(rec, style=style)
    page = render(rec, augment=[Degradation("rotate", 1.0, 3.0, 3.0)], seed=5, style=style)
    M = np.array(page.sidecar["augment"]["homography"])
    assert not np.allclose(M, np.eye(3))
    # the points really moved (by up to tens of px at the page corners) ...
    moved = np.hypot(
        np.array(page.sidecar["leads"][0]["x"]) - clean.sidecar["leads"][0]["x"],
        np.array(page.sidecar["leads"][0]["y"]) - clean.sidecar["leads"][0]["y"],
    )
    assert moved.max() > 20
    # ... and the ink moved with them: every sample lies on ink (the page is drawn through the pose)
    assert _fraction_on_ink(page, 1) == 1.0
    # the grid went through the same homography: major-line crossings land on major-grid ink
    gx0, gy0, gx1, gy1 = page.sidecar["grid"]["bbox_page"]
    step = page.sidecar["grid"]["major_px"]
    px, py = np.meshgrid(np.arange(gx0, gx1, step), np.arange(gy0, gy1, step))
    qx, qy = warp_points(M, np.round(px.ravel()) + 0.5, np.round(py.ravel()) + 0.5)  # 2-px lines: centre
    a = page.array.astype(np.int16)
    major = cv2.dilate(((a[..., 0] - a[..., 1]) > 80).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    covered = cv2.dilate(((a[..., 2] - a[..., 0]) > 40).astype(np.uint8) | (a.max(-1) < 120), np.ones((5, 5)))
    iy, ix = np.round(qy).astype(int), np.round(qx).astype(int)
    free = covered[iy, ix] == 0  # crossings under a trace or a label cannot show grid ink
    assert free.mean() > 0.8 and major[iy[free], ix[free]].all()
    # the old positions are off the ink for a good part of the trace
    stale = render(rec, style=style)
    stale.array = page.array
    assert _fraction_on_ink(stale, 1) < 0.5


def test_combined_geometry_is_one_homography(rec):
    ops = [Degradation(n, 1.0, lo, hi) for n, lo, hi in
           (("rotate", 2, 2), ("shear", 0.02, 0.02), ("perspective", 0.04, 0.04), ("crop_pad", 0.03, 0.03))]  # fmt: skip
    page = render(rec, augment=ops, seed=3, style=RenderStyle(trace_color=BLUE))
    names = [a["name"] for a in page.sidecar["augment"]["applied"]]
    assert names == ["rotate", "shear", "crop_pad", "perspective", "homography"]
    assert _fraction_on_ink(page, 1) == 1.0
    for box in (d["bbox"] for d in page.sidecar["leads"]):
        assert box[0] < box[2] and box[1] < box[3]


@pytest.mark.parametrize("name", NAMES)
def test_each_degradation_runs_and_is_recorded(rec, name):
    clean = render(rec, style=RenderStyle(dpi=60))
    lo, hi = {"jpeg": (40, 40), "greyscale": (0, 0)}.get(name, (0.0, 0.0))
    hi = hi or max(d.hi for p in PRESETS.values() for d in p if d.name == name)
    page = render(rec, augment=[Degradation(name, 1.0, lo or hi, hi)], seed=1, style=RenderStyle(dpi=60))
    applied = [a["name"] for a in page.sidecar["augment"]["applied"]]
    assert name in applied
    assert page.array.shape == clean.array.shape and page.array.dtype == np.uint8
    if name != "greyscale":  # a red grid page turned grey still differs, but test the rest strictly
        assert np.abs(page.array.astype(int) - clean.array).mean() > 0.05
    geometric = name in ("rotate", "shear", "perspective", "crop_pad")
    assert np.allclose(page.sidecar["augment"]["homography"], np.eye(3)) != geometric


def test_heavy_preset_varies_over_seeds(rec):
    seen = set()
    for seed in range(8):
        side = render(rec, augment="heavy", seed=seed, style=RenderStyle(dpi=50)).sidecar
        seen.update(a["name"] for a in side["augment"]["applied"])
    assert len(seen) >= 12


def test_bad_degradation_is_an_error(rec):
    with pytest.raises(ECGVLMError):
        render(rec, augment=[Degradation("melt", 1.0, 1, 1)])
