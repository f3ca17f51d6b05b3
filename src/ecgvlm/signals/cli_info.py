"""Print what an ECG record or dataset folder holds.

For a record: format, id, sampling frequency, duration, leads, labels (SCP code, description,
superclass), measurements and meta. For a folder (PTB-XL, MIMIC-IV-ECG, CODE-15, or any folder of
WFDB records): counts per format, source, sampling frequency, label and superclass; unreadable
records are counted and listed, not fatal.

examples:
  ecgvlm info tests/fixtures/real/torch_ecg_cinc2021/E07500.hea
  ecgvlm info tests/fixtures/real/wfdb_python_ptbdb/s0010_re --fs 500
  ecgvlm info /data/ptb-xl --limit 1000 --json > ptbxl_summary.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ecgvlm.signals.record import LEADS, MEASUREMENT_UNITS, ECGRecord


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path", help="a record (.hea, .dat, .mat or name without extension) or a dataset folder"
    )
    parser.add_argument("--fs", type=float, default=None, help="resample to this frequency (Hz) first")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument(
        "--limit", type=int, default=None, help="folders: look at no more than this many records"
    )


def record_summary(record: ECGRecord) -> dict[str, Any]:
    from ecgvlm.signals.vocab import statements, superclasses_of

    table = statements()
    labels = [
        {
            "code": code,
            "likelihood": likelihood,
            "description": table[code].description if code in table else "",
            "superclass": table[code].superclass if code in table else None,
        }
        for code, likelihood in record.labels.items()
    ]
    return {
        "format": record.meta.get("format"),
        "id": record.id,
        "fs": record.fs,
        "duration_s": round(record.duration, 3),
        "n_samples": record.n_samples,
        "leads": list(LEADS),
        "labels": labels,
        "superclasses": superclasses_of(record.labels),
        "measurements": dict(record.measurements),
        "meta": {k: v for k, v in record.meta.items() if k not in ("id", "format")},
    }


def folder_summary(path: Path, fs: float | None, limit: int | None) -> dict[str, Any]:
    from tqdm import tqdm

    from ecgvlm.signals.readers import SkipLog, detect_format, iter_records
    from ecgvlm.signals.vocab import superclasses_of

    counts: dict[str, Counter] = {k: Counter() for k in ("format", "source", "fs", "label", "superclass")}
    durations: list[float] = []
    log = SkipLog()
    records = iter_records(path, fs=fs, on_error="skip", log_to=log)
    for i, record in enumerate(tqdm(records, desc="reading", unit="rec", disable=not sys.stderr.isatty())):
        if limit is not None and i >= limit:
            break
        counts["format"][str(record.meta.get("format"))] += 1
        counts["source"][str(record.meta.get("source"))] += 1
        counts["fs"][f"{record.fs:g}"] += 1
        counts["label"].update(list(record.labels))
        counts["superclass"].update(superclasses_of(record.labels) or ["(none)"])
        durations.append(record.duration)
    return {
        "path": str(path),
        "dataset_format": detect_format(path),
        "records": len(durations),
        "skipped": len(log.skipped),
        "skipped_examples": [msg for _, msg in log.skipped[:10]],
        "duration_s": {"min": min(durations), "max": max(durations)} if durations else {},
        **{f"per_{k}": dict(v.most_common()) for k, v in counts.items()},
    }


def _print_record(s: dict[str, Any]) -> None:
    print(f"format:       {s['format']}")
    print(f"id:           {s['id']}")
    print(f"fs:           {s['fs']:g} Hz")
    print(f"duration:     {s['duration_s']:g} s ({s['n_samples']} samples)")
    print(f"leads:        {', '.join(s['leads'])}")
    print(f"superclasses: {', '.join(s['superclasses']) or '-'}")
    print("labels:" + ("" if s["labels"] else "       -"))
    for lab in s["labels"]:
        sup = lab["superclass"] or "-"
        print(f"  {lab['code']:<8} {lab['likelihood']:>5g}  {lab['description']}  [{sup}]")
    print("measurements:" + ("" if s["measurements"] else " -"))
    for key, value in s["measurements"].items():
        print(f"  {key:<5} {value:g} {MEASUREMENT_UNITS[key]}")
    print("meta:")
    for key, value in s["meta"].items():
        print(f"  {key}: {value}")


def _print_folder(s: dict[str, Any]) -> None:
    print(f"folder:   {s['path']}")
    print(f"format:   {s['dataset_format']}")
    print(f"records:  {s['records']} read, {s['skipped']} skipped")
    if s["duration_s"]:
        print(f"duration: {s['duration_s']['min']:g}-{s['duration_s']['max']:g} s")
    for key in ("format", "source", "fs", "superclass", "label"):
        items = ", ".join(f"{k}: {v}" for k, v in s[f"per_{key}"].items())
        print(f"per {key}: {items or '-'}")
    for msg in s["skipped_examples"]:
        print(f"skipped: {msg}")


def main(args: argparse.Namespace) -> int:
    from ecgvlm.signals.readers import read_record

    path = Path(args.path)
    if path.is_dir():
        summary = folder_summary(path, args.fs, args.limit)
        printer = _print_folder
    else:
        summary = record_summary(read_record(path, fs=args.fs))
        printer = _print_record
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        printer(summary)
    return 0
