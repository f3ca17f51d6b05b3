"""Renderer: the sidecar matches the ink, the pulse and grid measure right, every layout and record works."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest

from ecgvlm.errors import ECGVLMError
from ecgvlm.render import LAYOUTS, RenderStyle, load_sidecar, render
from ecgvlm.signals.record import LEADS, ECGRecord

BLUE = (0, 0, 255)


def beat_record(fs: float = 500.0, seconds: float = 10.0, hr: float = 72.0, seed: int = 0) -> ECGRecord:
    """Sum-of-Gaussians beats; limb leads from two frontal components so Einthoven's law holds."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(fs * seconds))) / fs
    phase = t % (60.0 / hr)

    def wave(parts):
        return sum(a * np.exp(-((phase - mu) ** 2) / (2 * s**2)) for mu, s, a in parts)

    lead_i = wave([(0.10, 0.02, 0.10), (0.25, 0.010, 0.8), (0.27, 0.008, -0.15), (0.50, 0.04, 0.25)])
    lead_ii = wave([(0.10, 0.02, 0.15), (0.24, 0.010, -0.1), (0.25, 0.010, 1.1), (0.52, 0.045, 0.3)])
    limb = {
        "I": lead_i,
        "II": lead_ii,
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2,
        "aVL": lead_i - lead_ii / 2,
        "aVF": lead_ii - lead_i / 2,
    }
    chest = {}
    for k, name in enumerate(("V1", "V2", "V3", "V4", "V5", "V6")):
        r = 0.2 + 0.25 * k
        s = -1.0 + 0.17 * k
        chest[name] = wave(
            [(0.10, 0.02, 0.1), (0.245, 0.009, r), (0.265, 0.01, s), (0.5, 0.045, 0.1 + 0.04 * k)]
        )
    sig = np.stack([{**limb, **chest}[n] for n in LEADS]).astype(np.float32)
    sig += rng.normal(0, 0.01, sig.shape).astype(np.float32)
    return ECGRecord(
        sig,
        fs,
        labels={"NORM": 100.0},
        measurements={"hr": hr, "pr": 150.0, "qrs": 90.0, "qt": 380.0, "qtc": 410.0, "axis": 50.0},
        meta={"id": f"beats-{seed}", "source": "test"},
    )


def blue_ink(img: np.ndarray) -> np.ndarray:
    """Trace pixels of a blue-ink page: blue well above red (the grid is red, text black, paper white)."""
    a = img.astype(np.int16)
    return (a[..., 2] - a[..., 0]) > 60


def test_every_sample_pixel_has_ink_and_inverts_to_the_signal(tmp_path):
    rec = beat_record()
    for layout in LAYOUTS:
        style = RenderStyle(trace_color=BLUE)
        page = render(rec, layout=layout, style=style)
        # what a consumer of the default (compact) sidecar file reads
        side = load_sidecar(page.save(tmp_path / f"{layout}.png").with_suffix(".json"))
        assert "samples" in json.loads((tmp_path / f"{layout}.json").read_text())
        ink = cv2.dilate(blue_ink(page.array).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # within 1 px
        ppmm, gain = side["px_per_mm"], side["gain_mm_mv"]
        assert abs(ppmm - 200 / 25.4) < 1e-6
        for lead in side["leads"]:
            x, y = np.array(lead["x"]), np.array(lead["y"])
            assert len(x) == lead["n_samples"] > 0
            hit = ink[np.round(y).astype(int), np.round(x).astype(int)]
            assert hit.all(), (layout, lead["lead"], int((~hit).sum()))
            v = rec.lead(lead["lead"])[lead["sample_start"] : lead["sample_end"]]
            recovered = (lead["baseline_y_page"] - y) / (gain * ppmm)
            assert np.abs(recovered - v).max() <= 1.0 / (gain * ppmm), (layout, lead["lead"])
            # x advances at paper speed from the window start
            t = np.arange(lead["sample_start"], lead["sample_end"]) / rec.fs - lead["t_start"]
            dx = np.diff(x) if len(x) > 1 else np.array([])
            assert np.allclose(dx, side["speed_mm_s"] * ppmm / rec.fs, atol=0.11)
            assert t[0] >= -1e-9


def test_no_ink_where_the_sidecar_says_nothing_is_drawn():
    rec = beat_record(seed=1)
    page = render(rec, style=RenderStyle(trace_color=BLUE))
    side = page.sidecar
    H, W = page.array.shape[:2]
    expected = np.zeros((H, W), np.uint8)
    for lead in side["leads"]:
        pts = np.round(np.stack([lead["x"], lead["y"]], 1)).astype(np.int32)
        cv2.polylines(expected, [pts], False, 1, 1, cv2.LINE_8)
    mm = side["px_per_mm"]
    for item in side["calibration"] + side["separators"]:
        x0, y0, x1, y1 = item["bbox"]  # a pulse: 1-mm foot, up, plateau, down, 1-mm foot
        shape = [(x0 - mm, y1), (x0, y1), (x0, y0), (x1, y0), (x1, y1), (x1 + mm, y1)]
        cv2.polylines(expected, [np.round(shape).astype(np.int32)], False, 1, 1, cv2.LINE_8)
    near = cv2.dilate(expected, np.ones((5, 5), np.uint8)) > 0  # within 2 px of a drawn segment
    stray = blue_ink(page.array) & ~near
    assert stray.sum() == 0, int(stray.sum())


@pytest.mark.parametrize("gain,dpi", [(10.0, 200.0), (5.0, 150.0), (20.0, 100.0)])
def test_calibration_pulse_is_gain_mm_tall(gain, dpi):
    page = render(beat_record(), style=RenderStyle(gain=gain, dpi=dpi, trace_color=BLUE))
    ink = blue_ink(page.array)
    ppmm = dpi / 25.4
    for pulse in page.sidecar["calibration"]:
        x0, y0, x1, y1 = pulse["bbox"]
        # the plateau: ink rows in the pulse's middle columns; the foot: ink rows in the 1-mm lead-in
        mid = ink[:, int(x0 + 0.3 * (x1 - x0)) : int(x0 + 0.7 * (x1 - x0))]
        foot = ink[:, int(x0 - 0.9 * ppmm) : int(x0 - 0.2 * ppmm)]
        rows = np.arange(ink.shape[0])
        band = (rows > y0 - 2 * ppmm) & (rows < y1 + 2 * ppmm)
        top = np.average(rows[band], weights=mid[band].sum(1))
        bottom = np.average(rows[band], weights=foot[band].sum(1))
        assert abs((bottom - top) - gain * ppmm) <= 1.0, (bottom - top, gain * ppmm)


def _line_centres(flags: np.ndarray) -> np.ndarray:
    """Centres of runs of True."""
    idx = np.flatnonzero(flags)
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    return np.array([r.mean() for r in runs if len(r)])


@pytest.mark.parametrize("dpi", [96.0, 200.0, 300.0])
def test_grid_pitch_is_dpi_over_25_4(dpi):
    style = RenderStyle(dpi=dpi, grid_color="red", header=False)
    page = render(beat_record(), style=style)
    a = page.array.astype(np.int16)
    gx0, gy0, gx1, gy1 = (int(round(v)) for v in page.sidecar["grid"]["bbox_page"])
    # grid ink, or black trace ink lying on a line (the baselines sit on major lines)
    red = ((a[..., 0] - a[..., 1]) > 30) | (a.max(-1) < 120)
    ppmm = dpi / 25.4
    for axis, (lo, hi) in ((0, (gx0, gx1)), (1, (gy0, gy1))):  # axis 0: columns
        sub = red[gy0 : gy1 + 1, gx0 : gx1 + 1]
        frac = sub.mean(axis=axis)  # a line column/row is red along most of the grid
        centres = _line_centres(frac > 0.6) + lo
        k = np.round((centres - centres[0]) / ppmm)
        assert len(centres) >= (hi - lo) / ppmm * 0.9  # nearly every 1-mm line found
        slope, icpt = np.polyfit(k, centres, 1)
        assert abs(slope - ppmm) < 0.01, (slope, ppmm)
        assert np.abs(centres - (slope * k + icpt)).max() < 1.0
        # major lines: darker (less green) every 5 mm
        g = a[..., 1][gy0 : gy1 + 1, gx0 : gx1 + 1]
        line = np.round(centres - lo).astype(int)
        green = np.median(g[:, line] if axis == 0 else g[line, :], axis=axis)  # median: ignores traces
        grid_only = green[green > 50]  # rows under a baseline trace are black: leave them out of the scale
        major = k[green < (grid_only.min() + grid_only.max()) / 2]
        assert len(major) > 5 and np.all(major % 5 == 0) and np.all(np.diff(major) == 5), major


def test_small_dpi_keeps_lines_visible():
    rec = beat_record()
    page = render(rec, style=RenderStyle(dpi=40, trace_color=BLUE))
    assert page.array.shape == (340, 440, 3)
    ink = cv2.dilate(blue_ink(page.array).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    for lead in page.sidecar["leads"]:
        x, y = np.round(lead["x"]).astype(int), np.round(lead["y"]).astype(int)
        assert ink[y, x].mean() > 0.99
    # major grid lines are still drawn
    a = page.array.astype(np.int16)
    assert ((a[..., 0] - a[..., 1]) > 60).mean() > 0.05


def test_layout_windows_follow_a_printout():
    rec = beat_record()
    side = render(rec).sidecar
    by = {(d["row"], d["col"]): d for d in side["leads"]}
    assert [by[(0, c)]["lead"] for c in range(4)] == ["I", "aVR", "V1", "V4"]
    assert [by[(0, c)]["t_start"] for c in range(4)] == [0.0, 2.5, 5.0, 7.5]
    assert by[(3, 0)]["lead"] == "II" and by[(3, 0)]["t_end"] == 10.0
    assert by[(2, 3)]["sample_start"] == 3750 and by[(2, 3)]["sample_end"] == 5000
    counts = {lay: len(render(rec, layout=lay).sidecar["leads"]) for lay in LAYOUTS}
    assert counts == {"3x4+1": 13, "3x4+3": 15, "6x2": 12, "12x1": 12, "1x1": 1}
    side = render(rec, layout="3x4+3").sidecar
    assert [d["lead"] for d in side["leads"][-3:]] == ["V1", "II", "V5"]
    side = render(rec, layout="1x1", style=RenderStyle(single_lead="V2")).sidecar
    assert side["leads"][0]["lead"] == "V2" and side["height"] < side["width"] / 2
    fast = render(rec, style=RenderStyle(speed=50.0)).sidecar  # 5 s fit on the paper at 50 mm/s
    assert fast["seconds"] == 5.0 and fast["leads"][1]["t_start"] == 1.25


def test_short_long_and_odd_rate_records_render():
    short = beat_record(fs=100.0, seconds=3.3)
    side = render(short).sidecar
    assert side["notes"] and any(d["truncated"] for d in side["leads"])
    empty = [d for d in side["leads"] if d["n_samples"] == 0]
    assert empty and all(d["x"] == [] for d in empty)  # windows past the end exist but hold nothing
    long = beat_record(fs=1000.0, seconds=38.4)
    side = render(long, style=RenderStyle(start_s=30.0)).sidecar
    assert side["start_s"] == pytest.approx(28.4)  # moved back so the 10 s fit
    assert side["leads"][0]["sample_start"] == 28400
    tiny = beat_record(fs=257.0, seconds=0.01)  # 3 samples
    assert render(tiny, layout="12x1").sidecar["leads"][0]["n_samples"] == 3


def test_header_has_measurements_but_no_labels():
    rec = beat_record()
    texts = [t["text"] for t in render(rec).sidecar["text"] if t["kind"] != "lead_label"]
    joined = " ".join(texts)
    assert "Vent. rate 72 bpm" in joined and "QT/QTc 380/410 ms" in joined
    assert "25 mm/s" in joined and "10 mm/mV" in joined
    assert "NORM" not in joined
    other = " ".join(t["text"] for t in render(rec, seed=1).sidecar["text"])
    assert other != " ".join(t["text"] for t in render(rec, seed=0).sidecar["text"])  # made-up ids vary


def test_save_writes_image_and_sidecar(tmp_path):
    page = render(beat_record())
    out = page.save(tmp_path / "p.png")
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["image"] == "p.png" and side["width"] == 2200 and side["height"] == 1700
    assert out.with_suffix(".json").stat().st_size < 60_000  # compact: ~40 kB
    assert "x" not in side["leads"][0]
    img = cv2.imread(str(out))[..., ::-1]
    assert np.array_equal(img, page.array)
    page.save(tmp_path / "p.jpg")
    assert (tmp_path / "p.jpg").read_bytes()[:2] == b"\xff\xd8"
    with pytest.raises(ECGVLMError):
        page.save(tmp_path / "p.gif")
    assert not list(tmp_path.glob(".*tmp"))


def test_compact_and_full_sidecars_read_back_the_same(tmp_path):
    page = render(beat_record(seed=2), augment="heavy", seed=4)  # warped: negative and off-page pixels
    compact = page.save(tmp_path / "c.png").with_suffix(".json")
    full = page.save(tmp_path / "f.png", sidecar="full").with_suffix(".json")
    expected = json.loads(json.dumps(page.sidecar))
    assert load_sidecar(compact) == {**expected, "image": "c.png"}
    assert load_sidecar(full) == {**expected, "image": "f.png"}
    assert compact.stat().st_size * 5 < full.stat().st_size
    assert compact.read_bytes() == page.save(tmp_path / "c.png").with_suffix(".json").read_bytes()
    page.save(tmp_path / "n.png", sidecar="none")
    assert not (tmp_path / "n.json").exists()
    doc = json.loads(compact.read_text())
    doc["samples"]["data"] = doc["samples"]["data"][:-8]
    compact.write_text(json.dumps(doc))
    with pytest.raises(ECGVLMError, match="c.json"):
        load_sidecar(compact)
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(ECGVLMError, match="not a page sidecar"):
        load_sidecar(tmp_path / "x.json")


def test_bad_inputs_are_one_line_errors():
    rec = beat_record()
    with pytest.raises(ECGVLMError, match="layout"):
        render(rec, layout="4x3")
    with pytest.raises(ECGVLMError, match="preset"):
        render(rec, augment="medium")
    with pytest.raises(ECGVLMError, match="grid"):
        RenderStyle(grid_color="purple")
    with pytest.raises(ECGVLMError, match="lead"):
        RenderStyle(single_lead="v1")


def test_sampled_styles_render():
    assert RenderStyle.sample(np.random.default_rng(5)) == RenderStyle.sample(np.random.default_rng(5))
    assert RenderStyle.sample(np.random.default_rng(5), dpi=50).dpi == 50
    rng = np.random.default_rng(0)
    rec = beat_record()
    for _ in range(6):
        style = RenderStyle.sample(rng, dpi=60)
        page = render(rec, style=style, layout=str(rng.choice(LAYOUTS)))
        assert page.image.mode == "RGB" and page.image.size == (page.sidecar["width"], page.sidecar["height"])


def test_png_writer_is_lossless_with_and_without_isal(monkeypatch):
    from ecgvlm.render import png

    rng = np.random.default_rng(0)
    arrays = [
        render(beat_record(), augment="heavy", seed=3, style=RenderStyle(dpi=60)).array,
        rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),  # every byte value, odd sizes
        np.zeros((1, 1, 3), np.uint8),
    ]
    for a in arrays:
        data = png.encode_png(a)
        assert data == png.encode_png(a)  # deterministic
        assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1], a)
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            assert np.array_equal(np.asarray(im.convert("RGB")), a)
    monkeypatch.setattr(png, "isal_zlib", None)
    data = png.encode_png(arrays[0])
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1], arrays[0])
