"""Synthetic ECG speed: records/s for 10-s, 500-Hz, 12-lead records on one core.

Compares, in the same run (so machine load affects both alike):
  * vectorised  - ecgvlm.signals.synth.synthesize_record (the generator);
  * naive loop  - the same dipole lobes evaluated sample by sample in pure Python, the way a
                  straightforward port of a beat-by-beat ECG model would do it;
  * with WFDB   - the generator plus writing the .hea/.dat pair (what `ecgvlm synth` does per record).
Target: >= 200 records/s for the vectorised generator.

    OMP_NUM_THREADS=1 python benchmarks/synth_speed.py [--n 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from ecgvlm.signals.synth import synthesize_record  # noqa: E402
from ecgvlm.signals.synth_beats import ventricular_morph  # noqa: E402
from ecgvlm.signals.synth_model import PROJ8  # noqa: E402
from ecgvlm.signals.wfdb_write import database_row, relative_name, write_record  # noqa: E402

TARGET = 200.0


def naive_record(index: int, fs: float = 500.0, duration: float = 10.0) -> np.ndarray:
    """Baseline: sinus rhythm from the same lobes, every sample and lobe in a Python loop."""
    rng = np.random.default_rng(index)
    vm = ventricular_morph({"SR"}, rng, 0.8, 1.2, fs)
    n = int(duration * fs)
    out = [[0.0] * n for _ in range(8)]
    beats = np.arange(-0.5, duration, 0.8)
    lobes = [(lb.c, lb.h, lb.sl, lb.sr, PROJ8 @ lb.vec) for lb in vm.lobes]
    for b in beats:
        for c, h, sl, sr, proj in lobes:
            k0 = max(0, int((b + (c - h - 6 * sl) / 1000.0) * fs))
            k1 = min(n, int((b + (c + h + 6 * sr) / 1000.0) * fs) + 1)
            for k in range(k0, k1):
                u = (k / fs - b) * 1000.0 - c
                v = min(u + h, 0.0) / sl + max(u - h, 0.0) / sr
                if v * v > 40.0:
                    continue
                g = math.exp(-0.5 * v * v)
                for lead in range(8):
                    out[lead][k] += g * proj[lead]
    return np.asarray(out)


def rate(fn, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400, help="records per timing of the vectorised generator")
    ap.add_argument("--repeats", type=int, default=3, help="timings per variant; the best is reported")
    args = ap.parse_args()
    synthesize_record(0, 0)  # warm-up (imports, caches)
    fast = max(rate(lambda i: synthesize_record(1, i), args.n) for _ in range(args.repeats))
    naive = max(rate(naive_record, 2) for _ in range(args.repeats))
    with tempfile.TemporaryDirectory() as tmp:

        def synth_and_write(i: int) -> None:
            rec = synthesize_record(1, i)
            rel = relative_name(rec.id, i, rec.fs)
            write_record(rec, tmp, rel, database_row(rec, i, rel))

        written = max(rate(synth_and_write, max(50, args.n // 4)) for _ in range(args.repeats))
    print(f"load average: {os.getloadavg()[0]:.1f} (other processes slow every variant alike)")
    print(f"vectorised generator : {fast:8.1f} records/s")
    print(f"naive per-sample loop: {naive:8.2f} records/s  (vectorised is {fast / naive:,.0f}x faster)")
    print(f"generator + WFDB     : {written:8.1f} records/s")
    verdict = "meets" if fast >= TARGET else "BELOW"
    print(f"target {TARGET:.0f} records/s: {verdict} ({fast / TARGET:.2f}x)")


if __name__ == "__main__":
    main()
