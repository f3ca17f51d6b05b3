"""Start-up cost of the CLI: `ecgvlm --help` and one page with `ecgvlm render`, each a fresh process.

Prints, per command, the best and median wall time over the runs and the CPU time of the best run,
then the slowest imports of the render command (``python -X importtime``, cumulative).

    python benchmarks/startup.py                 # 5 runs each
    python benchmarks/startup.py --runs 9

Aims (issue 20): `ecgvlm --help` <= 0.5 s and one rendered page <= 1.5 s wall on an idle core.
On a shared machine the best of several runs is the figure closest to an idle core.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECORD = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real" / "torch_ecg_cinc2021" / "E07500"


def run(args: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one fresh `python -m ecgvlm ARGS` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ecgvlm", *args], check=True, capture_output=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--top", type=int, default=8, help="slowest imports to list")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        render = ["render", str(RECORD), "--out"]
        aims = {"ecgvlm --help": 0.5, "ecgvlm render REC --out X.png": 1.5}
        for name in aims:
            times = []
            for k in range(args.runs):
                argv = ["--help"] if name == "ecgvlm --help" else [*render, f"{tmp}/p{k}.png"]
                times.append(run(argv))
            best = min(times)
            median = statistics.median(t[0] for t in times)
            verdict = "ok" if best[0] <= aims[name] else "ABOVE"
            print(
                f"{name:32s} best {best[0]:.2f} s wall ({best[1]:.2f} s CPU), median {median:.2f} s "
                f"over {args.runs} runs; aim <= {aims[name]} s: {verdict}"
            )
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "ecgvlm", *render, f"{tmp}/imports.png"],
            capture_output=True,
            text=True,
            check=True,
        )
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, module = line.split("|")
            if cumulative.strip().isdigit():
                rows.append((int(cumulative), module.rstrip()))
    print(f"slowest imports of `ecgvlm render` (cumulative ms, -X importtime), top {args.top}:")
    for us, module in sorted(rows, reverse=True)[: args.top]:
        print(f"  {us / 1000:7.1f}  {module}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
