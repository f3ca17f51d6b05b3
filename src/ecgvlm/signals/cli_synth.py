"""Generate labelled synthetic 12-lead ECG records (WFDB .hea/.dat) in a PTB-XL-like folder.

Each record comes from a 3-D cardiac dipole model projected on the 12 leads (Einthoven and
Goldberger identities hold exactly), with rhythm, morphology and noise drawn per record from
(seed, index) alone, so any record can be made again on its own and --workers does not change
a byte. Labels are PTB-XL SCP codes (likelihood 100); the true HR/PR/QRS/QT/QTc/axis go in
ptbxl_database.csv next to them.

examples:
  ecgvlm synth --n 200 --out data/synth --seed 1
  ecgvlm synth --n 50 --out data/afib --seed 2 --conditions AFIB,CLBBB --workers 2
  ecgvlm synth --n 1000 --out data/synth100 --seed 1 --fs 100      # records100/, filename_lr

Rerunning the same command resumes: records whose .hea already exists are kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, required=True, help="number of records (index 0..n-1)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed; a record depends on (seed, index) only")
    parser.add_argument(
        "--conditions",
        default=None,
        help="comma-separated SCP codes every record gets, e.g. AFIB,CLBBB (default: drawn per record "
        "from a prior, about a third NORM). Supported: see `python -c 'from ecgvlm.signals.synth import "
        "CONDITIONS; print(list(CONDITIONS))'`",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes (output is identical for any value)"
    )
    parser.add_argument("--fs", type=float, default=500.0, help="sampling frequency in Hz (default 500)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per record (default 10)")


def _one(job: tuple) -> dict:
    from ecgvlm.signals.synth import synthesize_record
    from ecgvlm.signals.wfdb_write import database_row, read_row, relative_name, write_record

    seed, index, conditions, fs, duration, out = job
    rel = relative_name(f"synth-{seed}-{index:06d}", index, fs)
    hea = Path(out) / f"{rel}.hea"
    if hea.exists() and hea.with_suffix(".dat").exists():
        row = read_row(hea)
        if row is not None:
            return row
    rec = synthesize_record(seed, index, conditions, fs=fs, duration=duration)
    row = database_row(rec, index, rel)
    write_record(rec, out, rel, row)
    return row


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ecgvlm.errors import ECGVLMError
    from ecgvlm.signals.synth_conditions import complete_labels
    from ecgvlm.signals.wfdb_write import write_database

    if args.n < 1:
        raise ECGVLMError(f"--n must be at least 1, got {args.n}")
    if args.workers < 1:
        raise ECGVLMError(f"--workers must be at least 1, got {args.workers}")
    conditions = None
    if args.conditions:
        conditions = complete_labels(args.conditions.split(","))  # fails early on unknown/incompatible
    if not (50 <= args.fs <= 2000) or not (2 <= args.duration <= 120):
        raise ECGVLMError("--fs must be 50-2000 Hz and --duration 2-120 s")
    from ecgvlm.outputs import claim_output_dir

    out = claim_output_dir(args.out, "synth")
    jobs = [(args.seed, i, conditions, args.fs, args.duration, str(out)) for i in range(args.n)]
    bar = dict(total=args.n, desc="synth", unit="rec")
    if args.workers == 1:
        rows = [_one(j) for j in tqdm(jobs, **bar)]
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.workers) as pool:
            rows = list(tqdm(pool.imap(_one, jobs, chunksize=8), **bar))
    write_database(out, rows)
    print(f"wrote {len(rows)} records to {out} (ptbxl_database.csv, scp_statements.csv)")
    return 0
