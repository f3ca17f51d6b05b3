"""How fast `ecgvlm dataset build` makes samples (rows) at its default settings.

Everything a real build does is timed: make the record, render the page, encode and write the
PNG and its sidecar, make the questions, write the unit, assemble the splits and the card.
Printed: records/s and samples/s for 1 and 2 workers, samples/s per worker, the 1 -> 2 scaling,
and a per-stage breakdown for one worker. Target: >= 10 samples/s per core (1M samples in under
2 hours on 16 cores). The baseline in the same run is the render-only rate (render + encode of
the same pages): the gap between it and the build rate is the dataset machinery's overhead.

    python benchmarks/dataset_speed.py                 # synth:120, default options
    python benchmarks/dataset_speed.py --records 300 --dpi 200
    python benchmarks/dataset_speed.py --source wfdb:tests/fixtures/real

On a shared machine, run it 2-3 times and keep the best figures.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=120)
    p.add_argument("--source", default=None, help="default: synth:RECORDS")
    p.add_argument("--dpi", type=float, default=40.0)
    p.add_argument("--augment", default="mixed")
    p.add_argument("--workers", default="1,2")
    args = p.parse_args()

    from ecgvlm.instruct.build import BuildConfig, build, load_record, make_unit, source_items

    source = args.source or f"synth:{args.records}"
    cfg = BuildConfig(source=source, seed=7, dpi=args.dpi, augment=args.augment)
    print(
        f"source {source}, dpi {args.dpi}, augment {args.augment}, layout {cfg.layout}, "
        f"{cfg.questions_per_record} questions per train/val record; cpus {os.cpu_count()}"
    )

    # Per-stage breakdown on one core, and the render-only baseline.
    from ecgvlm.instruct.build import record_rng
    from ecgvlm.render import RenderStyle, render

    items = list(source_items(cfg))[:30]
    t_load = t_render = t_unit = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for key, payload in items:
            t0 = time.perf_counter()
            rec = load_record(cfg, key, payload)
            t1 = time.perf_counter()
            rng = record_rng(cfg.seed, rec.id)
            page = render(
                rec, layout="3x4+1", augment="light", seed=1, style=RenderStyle.sample(rng, dpi=args.dpi)
            )
            page.encode("png")
            t2 = time.perf_counter()
            make_unit(cfg, Path(tmp), key, rec)
            t3 = time.perf_counter()
            t_load, t_render, t_unit = t_load + t1 - t0, t_render + t2 - t1, t_unit + t3 - t2
    n = len(items)
    print(
        f"per record (1 core, mean of {n}): read/synthesize {1000 * t_load / n:.1f} ms, "
        f"render+encode only {1000 * t_render / n:.1f} ms (baseline: {n / t_render:.1f} pages/s), "
        f"full unit (render+encode+write+questions) {1000 * t_unit / n:.1f} ms"
    )

    rates = {}
    for w in [int(x) for x in args.workers.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = build(cfg, Path(tmp) / "ds", workers=w, progress=False)
            dt = time.perf_counter() - t0
        recs = sum(res.counts["records"].values())
        rows = sum(res.counts["rows"].values())
        rates[w] = rows / dt
        print(
            f"workers {w}: {recs} records, {rows} samples in {dt:.1f} s -> {recs / dt:.1f} records/s, "
            f"{rows / dt:.1f} samples/s, {rows / dt / w:.1f} samples/s per worker "
            f"(target >= 10/core: {'ok' if rows / dt / w >= 10 else 'BELOW'})"
        )
    if 1 in rates and 2 in rates:
        print(
            f"scaling 1 -> 2 workers: x{rates[2] / rates[1]:.2f} (ideal x2.00; this machine's cores are shared)"
        )
    best = max(r / w for w, r in rates.items())
    print(f"1M samples at {best:.1f} samples/s per core on 16 cores: {1e6 / (best * 16) / 3600:.2f} h")


if __name__ == "__main__":
    main()
