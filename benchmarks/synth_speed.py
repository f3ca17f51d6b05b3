"""Synthetic ECG speed: records/s for 10-s, 500-Hz, 12-lead records on one core.

Compares, in the same run (so machine load affects both alike):
  * vectorised  - ecgvlm.signals.synth.synthesize_record (the generator);
  * naive loop  - the same kind of record (dipole lobes, noise, derived leads) computed sample by
                  sample in pure Python, as a straightforward port of a beat model would;
  * with WFDB   - the generator plus writing the .hea/.dat pair (what `ecgvlm synth` does per
                  record), with the direct writer and with wfdb.wrsamp (same bytes).
Target: >= 200 records/s for the vectorised generator.

    OMP_NUM_THREADS=1 python benchmarks/synth_speed.py [--n 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from ecgvlm.signals.synth import synthesize_record  # noqa: E402
from ecgvlm.signals.synth_beats import ventricular_morph  # noqa: E402
from ecgvlm.signals.synth_model import PROJ8, p_wave  # noqa: E402
from ecgvlm.signals.wfdb_write import database_row, relative_name, write_record  # noqa: E402

TARGET = 200.0


def naive_record(index: int, fs: float = 500.0, duration: float = 10.0) -> np.ndarray:
    """Baseline: the same kind of record (QRS-T and P lobes on a sinus rhythm, wander, hum and
    muscle noise, derived limb leads), computed sample by sample in pure Python."""
    rng = np.random.default_rng(index)
    vm = ventricular_morph({"SR"}, rng, 0.8, 1.2, fs)
    p_lobes, _ = p_wave(rng, lae=False)
    n = int(duration * fs)
    out = [[0.0] * n for _ in range(8)]
    lobes = [(0.0, lb) for lb in vm.lobes] + [(-0.16, lb) for lb in p_lobes]
    for b in np.arange(-0.5, duration, 0.8):
        for shift, lb in lobes:
            proj = PROJ8 @ lb.vec
            k0 = max(0, int((b + shift + (lb.c - lb.h - 6 * lb.sl) / 1000.0) * fs))
            k1 = min(n, int((b + shift + (lb.c + lb.h + 6 * lb.sr) / 1000.0) * fs) + 1)
            for k in range(k0, k1):
                u = (k / fs - b - shift) * 1000.0 - lb.c
                v = min(u + lb.h, 0.0) / lb.sl + max(u - lb.h, 0.0) / lb.sr
                g = math.exp(-0.5 * v * v)
                for lead in range(8):
                    out[lead][k] += g * proj[lead]
    gauss = random.Random(index).gauss
    for k in range(n):
        t = k / fs
        common = 0.05 * math.sin(2 * math.pi * 0.25 * t) + 0.01 * math.sin(2 * math.pi * 50.0 * t)
        for lead in range(8):
            out[lead][k] += common + gauss(0.0, 0.005)
    rows = [out[0], out[1], *([b - a for a, b in zip(out[0], out[1])],)]
    rows += [[-(a + b) / 2 for a, b in zip(out[0], out[1])], [a - b / 2 for a, b in zip(out[0], out[1])]]
    rows += [[b - a / 2 for a, b in zip(out[0], out[1])], *out[2:]]
    return np.asarray(rows, dtype=np.float32)


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
    written = {}
    for engine, count in (("fast", max(50, args.n // 2)), ("wfdb", 20)):
        with tempfile.TemporaryDirectory() as tmp:

            def synth_and_write(i: int, engine: str = engine, tmp: str = tmp) -> None:
                rec = synthesize_record(1, i)
                rel = relative_name(rec.id, i, rec.fs)
                write_record(rec, tmp, rel, database_row(rec, i, rel), engine=engine)

            written[engine] = max(rate(synth_and_write, count) for _ in range(args.repeats))
    print(f"load average: {os.getloadavg()[0]:.1f} (other processes slow every variant alike)")
    print(f"vectorised generator : {fast:8.1f} records/s")
    print(f"naive per-sample loop: {naive:8.2f} records/s  (vectorised is {fast / naive:,.0f}x faster)")
    print(f"generator + WFDB file: {written['fast']:8.1f} records/s (direct writer)")
    print(f"generator + wrsamp   : {written['wfdb']:8.1f} records/s (wfdb.wrsamp, same bytes)")
    verdict = "meets" if fast >= TARGET else "BELOW"
    print(f"target {TARGET:.0f} records/s: {verdict} ({fast / TARGET:.2f}x)")


if __name__ == "__main__":
    main()
