"""Render speed: whole pages and their parts, against a matplotlib printout renderer, one run, one core.

The whole page is what a dataset pays per image: read the record file, draw, encode the PNG, write
it and the (compact) sidecar. The parts are timed beside it. The matplotlib reference draws the page
the way ECG-Image-Kit does (a figure with 1-mm and 5-mm grid lines, 3x4 leads + a lead II rhythm
strip, calibration pulses, labels, then savefig), with line collections for the grid, which is
kinder to matplotlib than one artist per line.

ECG-Image-Kit itself is not run here: the ratios use its CPU time per page measured in issue 20
(2,310 ms plain, 6,832 ms with wrinkles and augmentation; ECG-Image-Kit at commit 27b90f5,
gen_ecg_images_from_data_batch.py, per page after start-up, on this 2-core machine class).

    python benchmarks/render_speed.py                 # real fixture records if present, else synthetic
    python benchmarks/render_speed.py --records 10 --repeats 3

Aims: issue 20: whole page <= 40 ms CPU plain and <= 120 ms heavy; issue 3: drawing <= 30 / 80 ms.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ecgvlm.render import render  # noqa: E402
from ecgvlm.render.layout import GRID_3X4  # noqa: E402
from ecgvlm.render.sidecar import compact  # noqa: E402
from ecgvlm.signals.record import LEADS, ECGRecord  # noqa: E402

# ECG-Image-Kit CPU ms per page as measured in issue 20 (commit 27b90f5), not in this run
EIK_PLAIN_MS, EIK_HEAVY_MS = 2310.0, 6832.0
REAL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real" / "torch_ecg_cinc2021"


def record_paths(n: int) -> list[Path]:
    return sorted(REAL.glob("*.hea"))[:n]


def load_records(n: int) -> tuple[list[ECGRecord], str]:
    try:
        from ecgvlm.signals.readers import read_record

        paths = record_paths(n)
        if paths:
            return [read_record(p) for p in paths], f"{len(paths)} real CinC records (500 Hz, 10 s)"
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    t = np.arange(5000) / 500.0
    recs = []
    for i in range(n):
        phase = t % (60 / rng.uniform(55, 100))
        beat = np.exp(-((phase - 0.25) ** 2) / 2e-4) - 0.2 * np.exp(-((phase - 0.27) ** 2) / 1e-4)
        beat += 0.25 * np.exp(-((phase - 0.5) ** 2) / 3e-3)
        sig = np.stack([beat * rng.uniform(-1, 1.5) for _ in LEADS]).astype(np.float32)
        recs.append(ECGRecord(sig, 500.0, meta={"id": f"synthetic-{i}"}))
    return recs, f"{n} synthetic records (500 Hz, 10 s)"


def matplotlib_page(record: ECGRecord) -> tuple[float, float, float, float]:
    """The reference: (draw s, draw + PNG s, draw CPU s, draw + PNG CPU s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_start, c_start = time.perf_counter(), time.process_time()
    w_mm, h_mm = 279.4, 215.9
    fig = plt.figure(figsize=(w_mm / 25.4, h_mm / 25.4), dpi=200)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, w_mm)
    ax.set_ylim(0, h_mm)
    ax.axis("off")
    x0, x1, y0, y1 = 6, 271, 6, 186
    minor = np.arange(x0, x1 + 0.1, 1.0)
    ax.vlines(minor, y0, y1, colors=(0.97, 0.7, 0.7), linewidth=0.3)
    ax.hlines(np.arange(y0, y1 + 0.1, 1.0), x0, x1, colors=(0.97, 0.7, 0.7), linewidth=0.3)
    ax.vlines(minor[::5], y0, y1, colors=(0.9, 0.35, 0.35), linewidth=0.8)
    ax.hlines(np.arange(y0, y1 + 0.1, 5.0), x0, x1, colors=(0.9, 0.35, 0.35), linewidth=0.8)
    fs = record.fs
    rows = [*GRID_3X4, ("II",)]
    for r, leads in enumerate(rows):
        base = 160 - r * 45
        ax.plot([11, 12, 12, 17, 17, 18], [base, base, base + 10, base + 10, base, base], "k", linewidth=0.6)
        win = 10.0 / len(leads)
        for c, lead in enumerate(leads):
            i0, i1 = int(c * win * fs), int((c + 1) * win * fs)
            v = record.lead(lead)[i0:i1]
            x = 21 + c * win * 25 + np.arange(len(v)) / fs * 25
            ax.plot(x, base + v * 10, "k", linewidth=0.6)
            ax.text(x[0] + 1, base + 12, lead, fontsize=9)
    ax.text(6, 205, f"ID: {record.id}   25 mm/s   10 mm/mV", fontsize=9)
    fig.canvas.draw()
    t_draw, c_draw = time.perf_counter() - t_start, time.process_time() - c_start
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=200)
    t_all, c_all = time.perf_counter() - t_start, time.process_time() - c_start
    plt.close(fig)
    return t_draw, t_all, c_draw, c_all


def best_ms(fn, items, repeats: int) -> tuple[float, float]:
    """Best over repeats of the mean (wall ms, CPU ms) per item. On a shared machine the CPU time of
    this process is the steadier figure; wall time includes waiting for a core."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        for it in items:
            fn(it)
        wall = min(wall, (time.perf_counter() - t) / len(items) * 1000)
        cpu = min(cpu, (time.process_time() - c) / len(items) * 1000)
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mpl-records", type=int, default=3, help="records for the (slow) matplotlib reference")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    records, what = load_records(args.records)
    paths = record_paths(args.records) if what.startswith(f"{len(records)} real") else []
    print(f"records: {what}; one core (cv2 threads 1, OMP 1); best of {args.repeats} runs")
    print("CPU ms is this process's CPU time (the steadier figure when the machine is shared)")

    render(records[0])  # warm caches (fonts, the gridded sheet)
    seeds = list(enumerate(records))
    clean = best_ms(lambda r: render(r), records, args.repeats)
    light = best_ms(lambda r: render(r, augment="light", seed=1), records, args.repeats)
    heavy = best_ms(lambda ir: render(ir[1], augment="heavy", seed=ir[0]), seeds, args.repeats)
    pages = [render(r) for r in records]
    heavy_pages = [render(r, augment="heavy", seed=i) for i, r in enumerate(records)]
    png = best_ms(lambda p: p.encode("png"), pages, args.repeats)
    png_heavy = best_ms(lambda p: p.encode("png"), heavy_pages, args.repeats)
    jpg = best_ms(lambda p: p.encode("jpg", 95), heavy_pages, args.repeats)
    side = best_ms(lambda p: json.dumps(compact(p.sidecar)), pages, args.repeats)
    side_full = best_ms(lambda p: json.dumps(p.sidecar), pages, args.repeats)
    png_kb = np.mean([len(p.encode("png")) for p in pages]) / 1e3
    png_heavy_kb = np.mean([len(p.encode("png")) for p in heavy_pages]) / 1e3
    jpg_kb = np.mean([len(p.encode("jpg", 95)) for p in heavy_pages]) / 1e3

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        sizes = {}
        for form in ("compact", "full"):
            pages[0].save(out / f"{form}.png", sidecar=form)
            sizes[form] = [
                len(p.save(out / f"{form}.png", sidecar=form).with_suffix(".json").read_bytes())
                for p in pages + heavy_pages
            ]
        if paths:
            from ecgvlm.signals.readers import read_record

            jobs = list(enumerate(paths))
            read = best_ms(lambda p: read_record(p), paths, args.repeats)
            whole = best_ms(lambda ip: render(read_record(ip[1])).save(out / "w.png"), jobs, args.repeats)
            whole_heavy = best_ms(
                lambda ip: render(read_record(ip[1]), augment="heavy", seed=ip[0]).save(out / "h.png"),
                jobs,
                args.repeats,
            )
            whole_jpg = best_ms(
                lambda ip: render(read_record(ip[1]), augment="heavy", seed=ip[0]).save(out / "h.jpg"),
                jobs,
                args.repeats,
            )
        else:  # synthetic records have no file to read
            read = (0.0, 0.0)
            whole = best_ms(lambda r: render(r).save(out / "w.png"), records, args.repeats)
            whole_heavy = best_ms(
                lambda ir: render(ir[1], augment="heavy", seed=ir[0]).save(out / "h.png"), seeds, args.repeats
            )
            whole_jpg = best_ms(
                lambda ir: render(ir[1], augment="heavy", seed=ir[0]).save(out / "h.jpg"), seeds, args.repeats
            )

    ref = records[: args.mpl_records]
    matplotlib_page(ref[0])  # import and font cache
    keys = ("draw", "all", "draw_cpu", "all_cpu")
    runs = [matplotlib_page(r) for _ in range(max(1, args.repeats - 1)) for r in ref]
    mpl = {k: float(np.median([run[i] for run in runs])) * 1000 for i, k in enumerate(keys)}

    print(f"{'':44s} {'wall ms':>8s} {'CPU ms':>8s}")
    rows = [
        ("WHOLE PAGE plain (read+draw+PNG+sidecar)", whole, "aim <= 40 CPU"),
        ("WHOLE PAGE heavy (read+draw+PNG+sidecar)", whole_heavy, "aim <= 120 CPU"),
        ("whole page heavy, JPEG q95 instead of PNG", whole_jpg, "lossy: not the default"),
        ("  read the record file", read, "" if paths else "synthetic: no file"),
        ("  draw plain (2200x1700)", clean, "issue 3 aim <= 30"),
        ("  draw light", light, ""),
        ("  draw heavy", heavy, "issue 3 aim <= 80"),
        ("  PNG encode, plain page", png, f"{png_kb:.0f} kB"),
        ("  PNG encode, heavy page", png_heavy, f"{png_heavy_kb:.0f} kB"),
        ("  JPEG q95 encode, heavy page", jpg, f"{jpg_kb:.0f} kB"),
        ("  sidecar, compact (build + JSON)", side, f"{np.mean(sizes['compact']) / 1e3:.0f} kB a page"),
        ("  sidecar, full JSON (--sidecar full)", side_full, f"{np.mean(sizes['full']) / 1e3:.0f} kB a page"),
        ("matplotlib reference: draw", (mpl["draw"], mpl["draw_cpu"]), f"median of {len(runs)}"),
        ("matplotlib reference: draw + PNG", (mpl["all"], mpl["all_cpu"]), ""),
    ]
    for name, (w, c), note in rows:
        print(f"{name:44s} {w:8.1f} {c:8.1f}   {note}")
    c_min, c_max = min(sizes["compact"]) / 1e3, max(sizes["compact"]) / 1e3
    print(
        f"sidecar bytes per page: compact {c_min:.0f}-{c_max:.0f} kB, full {np.mean(sizes['full']) / 1e3:.0f} kB"
    )
    print("ratios, CPU time (higher = ecgvlm cheaper)")
    ratios = [
        ("whole page plain vs matplotlib draw+PNG (this run)", mpl["all_cpu"], whole[1]),
        ("whole page plain vs ECG-Image-Kit 2,310 ms (issue 20)", EIK_PLAIN_MS, whole[1]),
        ("whole page heavy vs ECG-Image-Kit 6,832 ms (issue 20)", EIK_HEAVY_MS, whole_heavy[1]),
        ("draw only plain vs matplotlib draw (this run)", mpl["draw_cpu"], clean[1]),
    ]
    for name, theirs, ours in ratios:
        print(f"  {name:56s} {theirs / ours:6.1f}x")
    print(
        "  (ECG-Image-Kit figures: CPU ms per page measured in issue 20 at its commit 27b90f5, not this run)"
    )
    ok = whole[1] <= 40 and whole_heavy[1] <= 120
    print("whole-page aims met (CPU time)" if ok else "whole-page aims NOT met on this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
