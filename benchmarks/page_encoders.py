"""Which encoder writes a 2200x1700 printout fastest, and at what size (issue 20, scope 1).

Real CinC records, plain and heavy pages, one core; CPU time per page (best of the repeats) and
bytes. Lossless encoders are checked to decode to the same pixels; lossy ones report the largest
pixel error and how far the trace ink moves (the sidecar's pixels must still land on ink).

    python benchmarks/page_encoders.py
    python benchmarks/page_encoders.py --records 5 --repeats 3
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from ecgvlm.render import render  # noqa: E402
from ecgvlm.render.png import encode_png  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from render_speed import load_records  # noqa: E402


def _cv2(ext: str, params: list[int]) -> Callable[[np.ndarray], bytes]:
    def enc(rgb: np.ndarray) -> bytes:
        ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        assert ok
        return buf.tobytes()

    return enc


def _pil(fmt: str, **kw) -> Callable[[np.ndarray], bytes]:
    def enc(rgb: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buf, fmt, **kw)
        return buf.getvalue()

    return enc


UP = [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP] if hasattr(cv2, "IMWRITE_PNG_FILTER") else []
RLE = [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def _isal(level: int) -> Callable[[np.ndarray], bytes]:
    def enc(rgb: np.ndarray) -> bytes:
        from isal import isal_zlib

        from ecgvlm.render import png

        saved = isal_zlib.compress
        isal_zlib.compress = lambda data, _level: saved(data, level)
        try:
            return png.encode_png(rgb)
        finally:
            isal_zlib.compress = saved

    return enc


ENCODERS: dict[str, tuple[bool, Callable[[np.ndarray], bytes]]] = {
    "png ecgvlm: numpy up + isal level 2": (True, encode_png),
    "png numpy up + isal level 0": (True, _isal(0)),
    "png numpy up + isal level 1": (True, _isal(1)),
    "png cv2 level 1 up (before)": (True, _cv2(".png", [cv2.IMWRITE_PNG_COMPRESSION, 1, *UP])),
    "png cv2 level 0 (stored)": (True, _cv2(".png", [cv2.IMWRITE_PNG_COMPRESSION, 0])),
    "png cv2 level 1 up rle": (True, _cv2(".png", [cv2.IMWRITE_PNG_COMPRESSION, 1, *UP, *RLE])),
    "png cv2 level 3 up": (True, _cv2(".png", [cv2.IMWRITE_PNG_COMPRESSION, 3, *UP])),
    "png cv2 defaults": (True, _cv2(".png", [])),
    "png pillow level 1": (True, _pil("PNG", compress_level=1)),
    "png pillow level 6": (True, _pil("PNG", compress_level=6)),
    "webp lossless cv2 (q101)": (True, _cv2(".webp", [cv2.IMWRITE_WEBP_QUALITY, 101])),
    "webp lossless pillow m0": (True, _pil("WEBP", lossless=True, method=0, quality=0)),
    "webp lossless pillow m1 q25": (True, _pil("WEBP", lossless=True, method=1, quality=25)),
    "jpeg cv2 q95": (False, _cv2(".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])),
    "jpeg cv2 q90": (False, _cv2(".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])),
    "jpeg pillow q95": (False, _pil("JPEG", quality=95)),
    "webp lossy cv2 q90": (False, _cv2(".webp", [cv2.IMWRITE_WEBP_QUALITY, 90])),
}


def best_cpu_ms(fn: Callable[[np.ndarray], bytes], arrays: list[np.ndarray], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        c = time.process_time()
        for a in arrays:
            fn(a)
        best = min(best, (time.process_time() - c) / len(arrays) * 1000)
    return best


def decode(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    records, what = load_records(args.records)
    print(f"records: {what}; one core; CPU ms per page, best of {args.repeats}; machine may be shared")
    pages = {
        "plain": [render(r).array for r in records],
        "heavy": [render(r, augment="heavy", seed=i).array for i, r in enumerate(records)],
    }
    print(f"{'encoder':38s} {'plain ms':>9s} {'kB':>6s} {'heavy ms':>9s} {'kB':>6s}  pixels")
    for name, (lossless, enc) in ENCODERS.items():
        cells, check = [], ""
        for arrays in pages.values():
            ms = best_cpu_ms(enc, arrays, args.repeats)
            kb = np.mean([len(enc(a)) for a in arrays]) / 1e3
            cells.append(f"{ms:9.1f} {kb:6.0f}")
            diff = max(int(np.abs(decode(enc(a)).astype(int) - a).max()) for a in arrays)
            if lossless and diff:
                check = f"NOT LOSSLESS (max error {diff})"
            elif not lossless:
                check = (check + f" max error {diff}").strip()
        print(f"{name:38s} {'  '.join(cells)}  {check or 'identical'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
