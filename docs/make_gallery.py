"""Make docs/gallery.png: one page per layout and per degradation preset, downscaled into a grid.

python docs/make_gallery.py [--record tests/fixtures/real/torch_ecg_cinc2021/E07500] [--out docs/gallery.png]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from ecgvlm.io import atomic_write_bytes
from ecgvlm.render import RenderStyle, render
from ecgvlm.render.style import load_font
from ecgvlm.signals.readers import read_record

ROOT = Path(__file__).resolve().parents[1]
TILE_W = 660
GAP = 12
CAPTION = 26

# (caption, layout, augment, seed, style changes)
TILES = [
    ("3x4+1, clean: red grid, 25 mm/s, 10 mm/mV", "3x4+1", "none", 0, {}),
    ("3x4+3, clean: pink grid, A4", "3x4+3", "none", 1, {"grid_color": "pink", "paper": "a4"}),
    ("6x2, clean: green grid, serif font", "6x2", "none", 2, {"grid_color": "green", "font": "serif"}),
    ("12x1, clean: 5 mm/mV, grey grid", "12x1", "none", 3, {"gain": 5.0, "grid_color": "grey"}),
    ("3x4+1, light preset", "3x4+1", "light", 4, {}),
    (
        "3x4+1, light preset, 50 mm/s, blue ink",
        "3x4+1",
        "light",
        5,
        {"speed": 50.0, "trace_color": (0, 0, 110)},
    ),
    ("3x4+1, heavy preset", "3x4+1", "heavy", 6, {}),
    ("3x4+3, heavy preset", "3x4+3", "heavy", 7, {}),
    ("6x2, heavy preset, sampled style", "6x2", "heavy", 8, None),
    ("1x1 strip, lead II, clean", "1x1", "none", 9, {}),
    ("1x1 strip, lead V1, 20 mm/mV, heavy", "1x1", "heavy", 10, {"single_lead": "V1", "gain": 20.0}),
    ("3x4+1 at 50 dpi (tiny models), light", "3x4+1", "light", 11, {"dpi": 50.0}),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", default=str(ROOT / "tests/fixtures/real/torch_ecg_cinc2021/E07500"))
    ap.add_argument("--out", default=str(ROOT / "docs/gallery.png"))
    ap.add_argument("--cols", type=int, default=3)
    args = ap.parse_args()
    record = read_record(args.record)
    record.measurements.update({"hr": 56.0, "qrs": 92.0, "qt": 430.0, "qtc": 425.0})  # shown in the header

    tiles = []
    for caption, layout, augment, seed, changes in TILES:
        if changes is None:
            style = RenderStyle.sample(np.random.default_rng(seed))
        else:
            style = RenderStyle(**changes)
        page = render(record, layout=layout, augment=augment, seed=seed, style=style)
        h, w = page.array.shape[:2]
        interp = cv2.INTER_AREA if w > TILE_W else cv2.INTER_CUBIC
        small = cv2.resize(page.array, (TILE_W, round(h * TILE_W / w)), interpolation=interp)
        tiles.append((caption, small))

    cols = args.cols
    rows = [tiles[i : i + cols] for i in range(0, len(tiles), cols)]
    heights = [max(t.shape[0] for _, t in row) + CAPTION for row in rows]
    W = cols * TILE_W + (cols + 1) * GAP
    H = sum(heights) + (len(rows) + 1) * GAP
    sheet = Image.new("RGB", (W, H), (236, 236, 236))
    draw = ImageDraw.Draw(sheet)
    font = load_font("sans-bold", 17)
    y = GAP
    for row, rh in zip(rows, heights):
        for c, (caption, tile) in enumerate(row):
            x = GAP + c * (TILE_W + GAP)
            draw.text((x, y + 3), caption, font=font, fill=(30, 30, 30))
            sheet.paste(Image.fromarray(tile), (x, y + CAPTION))
        y += rh + GAP
    # 256 colours keep the file under 2 MB; the pages' few inks survive quantisation unharmed
    buf = io.BytesIO()
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.out}: {W}x{H}, {len(buf.getvalue()) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
