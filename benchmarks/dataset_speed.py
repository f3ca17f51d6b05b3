"""How fast `ecgvlm dataset build` makes samples (rows) at its default settings.

Everything a real build does is timed: make the record, render the page, encode and write the
PNG and its sidecar, make the questions, write the unit, assemble the splits and the card.
Printed: a per-stage CPU breakdown for one core with the whole page (read + draw + encode + write)
beside its parts and the compact sidecar's extra cost, next to matplotlib drawing a page in the
same run and ECG-Image-Kit as measured in issue 20 (not rerun); then, for 1 and 2 workers, samples/s (wall)
and samples per CPU second (this process and its workers), the 1 -> 2 scaling, and the projection
for 1M samples on 16 cores from the CPU rate. Target (issue 20): >= 9 samples per CPU second
(1M samples in under 2 hours on 16 cores).

    python benchmarks/dataset_speed.py                 # synth:120, default options
    python benchmarks/dataset_speed.py --records 300 --dpi 200
    python benchmarks/dataset_speed.py --source wfdb:tests/fixtures/real

On a shared machine, run it 2-3 times and keep the best figures.
"""

from __future__ import annotations

import argparse
import os
import resource
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

    from ecgvlm.instruct.build import build
    from ecgvlm.instruct.config import BuildConfig
    from ecgvlm.instruct.sources import source_items
    from ecgvlm.instruct.unit import load_record, make_unit

    source = args.source or f"synth:{args.records}"
    cfg = BuildConfig(source=source, seed=7, dpi=args.dpi, augment=args.augment)
    print(
        f"source {source}, dpi {args.dpi}, augment {args.augment}, layout {cfg.layout}, "
        f"{cfg.questions_per_record} questions per train/val record; cpus {os.cpu_count()}"
    )

    # Per-stage breakdown on one core (CPU time of this process), the whole page beside its parts.
    from ecgvlm.instruct.unit import record_rng
    from ecgvlm.io import atomic_write_bytes, atomic_write_json
    from ecgvlm.render import RenderStyle, render
    from ecgvlm.render.sidecar import compact

    items = list(source_items(cfg))[:30]
    load_record(cfg, *items[0])  # imports (wfdb, scipy.io) are start-up, not per record
    parts = dict.fromkeys(("read", "draw", "encode", "write", "sidecar", "unit"), 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        for key, payload in items:
            t0 = time.process_time()
            rec = load_record(cfg, key, payload)
            t1 = time.process_time()
            rng = record_rng(cfg.seed, rec.id)
            page = render(
                rec, layout="3x4+1", augment="light", seed=1, style=RenderStyle.sample(rng, dpi=args.dpi)
            )
            t2 = time.process_time()
            data = page.encode("png")
            t3 = time.process_time()
            atomic_write_bytes(Path(tmp) / "page.png", data)
            t4 = time.process_time()
            atomic_write_json(Path(tmp) / "page.json", compact(page.sidecar), indent=None)
            t5 = time.process_time()
            make_unit(cfg, Path(tmp), key, rec)
            t6 = time.process_time()
            for k, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                parts[k] += dt
    n = len(items)
    ms = {k: 1000 * v / n for k, v in parts.items()}
    whole = ms["read"] + ms["draw"] + ms["encode"] + ms["write"]
    print(
        f"per record, CPU ms on 1 core (mean of {n}; light preset, sampled style): "
        f"WHOLE PAGE {whole:.1f} (read {ms['read']:.1f} + draw {ms['draw']:.1f} + PNG encode "
        f"{ms['encode']:.1f} + write {ms['write']:.1f}); compact sidecar {ms['sidecar']:.1f} more "
        f"(only with --sidecars); a whole dataset unit (its own page + questions) {ms['unit']:.1f}"
    )
    # The references: matplotlib drawing a 200-dpi page in this run, ECG-Image-Kit as issue 20 measured it.
    from render_speed import EIK_HEAVY_MS, EIK_PLAIN_MS, matplotlib_page

    matplotlib_page(rec)  # import and font cache
    mpl = 1000 * min(matplotlib_page(rec)[3] for _ in range(2))
    print(
        f"references, CPU ms per page: matplotlib draw + PNG (this run, 200 dpi) {mpl:.0f} "
        f"({mpl / whole:.1f}x the whole page above); ECG-Image-Kit {EIK_PLAIN_MS:,.0f} plain / "
        f"{EIK_HEAVY_MS:,.0f} heavy as measured in issue 20 at its commit 27b90f5, not this run "
        f"(its plain page costs {EIK_PLAIN_MS / whole:.0f}x the light page above)"
    )

    rates, cpu_rates = {}, {}
    for w in [int(x) for x in args.workers.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            t0, c0 = time.perf_counter(), cpu_seconds()
            res = build(cfg, Path(tmp) / "ds", workers=w, progress=False)
            dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        recs = sum(res.counts["records"].values())
        rows = sum(res.counts["rows"].values())
        rates[w], cpu_rates[w] = rows / dt, rows / cpu
        print(
            f"workers {w}: {recs} records, {rows} samples in {dt:.1f} s wall, {cpu:.1f} s CPU -> "
            f"{rows / dt:.1f} samples/s, {rows / dt / w:.1f} samples/s per worker (wall), "
            f"{rows / cpu:.1f} samples per CPU second "
            f"(target >= 9/core: {'ok' if rows / cpu >= 9 else 'BELOW'})"
        )
    if 1 in rates and 2 in rates:
        print(
            f"scaling 1 -> 2 workers: x{rates[2] / rates[1]:.2f} (ideal x2.00; this machine's cores are shared)"
        )
    best = max(cpu_rates.values())
    print(
        f"projection: 1M samples at {best:.1f} samples per CPU second, 16 cores: "
        f"{1e6 / (best * 16) / 3600:.2f} h (CPU time: the figure a dedicated core gives; "
        f"wall-clock per worker here: {max(r / w for w, r in rates.items()):.1f}/s on a shared machine)"
    )


def cpu_seconds() -> float:
    """CPU time of this process and of its finished worker processes."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


if __name__ == "__main__":
    main()
