"""Where a dataset build's records come from: one (key, payload) per record, in a fixed order.

A payload is what a worker needs to make the record itself: a synth index, a WFDB header path, or
(for the dataset folders only ``signals.readers`` knows how to walk) the record already read.
``ecgvlm.instruct.unit.load_record`` turns it into an ``ECGRecord``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ecgvlm.errors import ECGVLMError
from ecgvlm.instruct.config import BuildConfig, parse_source
from ecgvlm.io import read_csv_rows, resolve_inside


def safe_name(key: str) -> str:
    """A file name for a record key (paths inside a WFDB tree become a__b); stable and unique."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", key.replace("/", "__")).strip("._") or "record"
    if name != key.replace("/", "__"):
        name += "-" + hashlib.sha1(key.encode()).hexdigest()[:6]
    return name


def _wfdb_keys(root: Path) -> list[str]:
    keys = sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.hea"))
    if not keys:
        raise ECGVLMError("no WFDB/CinC records (*.hea) found", root)
    return keys


def source_items(cfg: BuildConfig) -> Iterator[tuple[str, Any]]:
    """(key, payload) per record in a fixed order. Payload: synth index, header path, or a record."""
    kind, arg = parse_source(cfg.source)
    if kind == "synth":
        for i in range(int(arg)):
            yield f"synth-{cfg.seed}-{i:06d}", i
    elif kind == "wfdb":
        root = Path(arg)
        for key in _wfdb_keys(root):
            yield key, str(root / key) + ".hea"
    elif (Path(arg) / "ptbxl_database.csv").is_file():
        yield from _ptbxl_items(Path(arg))
    else:
        # Other dataset folders the readers know (MIMIC-IV-ECG, CODE-15): records are read here
        # and shipped to the workers.
        from ecgvlm.signals.readers import iter_records

        for rec in iter_records(arg, on_error=cfg.on_error):
            yield rec.id, rec


def _ptbxl_items(root: Path) -> Iterator[tuple[str, Any]]:
    """One item per row of ptbxl_database.csv; workers read the record file themselves
    (read_record finds the row again and attaches labels, strat_fold and report)."""
    table = root / "ptbxl_database.csv"
    rows = read_csv_rows(table)
    for line, row in enumerate(rows, start=2):
        rel = (row.get("filename_hr") or row.get("filename_lr") or "").strip()
        if not rel:
            raise ECGVLMError(f"line {line}: no filename_hr or filename_lr", table)
        ecg_id = (row.get("ecg_id") or "").strip()
        key = (
            f"ptbxl-{int(float(ecg_id)):05d}"
            if ecg_id.replace(".", "", 1).isdigit()
            else f"ptbxl-{ecg_id or line}"
        )
        yield key, str(resolve_inside(root, rel)) + ".hea"


def count_items(cfg: BuildConfig) -> int | None:
    kind, arg = parse_source(cfg.source)
    if kind == "synth":
        return int(arg)
    if kind == "wfdb":
        return len(_wfdb_keys(Path(arg)))
    if (Path(arg) / "ptbxl_database.csv").is_file():
        return sum(1 for _ in _ptbxl_items(Path(arg)))
    return None  # MIMIC / CODE-15: counting would mean reading the source twice
