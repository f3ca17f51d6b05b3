"""PTB-XL dataset folders: ptbxl_database.csv + records100/ + records500/ (+ scp_statements.csv).

Also reads the synthetic datasets of ``ecgvlm synth``, which use the same layout. Tolerant of
extra columns (kept in meta), of tables with only filename_hr or only filename_lr, and of a
missing scp_statements.csv (the vocabulary is part of the package).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import read_csv_rows, resolve_inside
from ecgvlm.signals.readers.common import clean_labels, parse_age, parse_number, parse_sex
from ecgvlm.signals.readers.wfdb_files import read_wfdb
from ecgvlm.signals.record import MEASUREMENT_UNITS, ECGRecord

DATABASE = "ptbxl_database.csv"

# Columns turned into typed fields; every other non-empty column is kept in meta as text.
_HANDLED = {"ecg_id", "scp_codes", "filename_lr", "filename_hr", "age", "sex", "strat_fold", "report"}
_HANDLED |= set(MEASUREMENT_UNITS)


def is_ptbxl_folder(path: Path) -> bool:
    return (path / DATABASE).is_file()


def _read_table(root: Path) -> list[dict[str, str]]:
    table = root / DATABASE
    rows = read_csv_rows(table)
    if rows and "scp_codes" not in rows[0]:
        raise ECGVLMError("no scp_codes column: not a PTB-XL database table", table)
    if rows and not ({"filename_lr", "filename_hr"} & set(rows[0])):
        raise ECGVLMError("neither filename_lr nor filename_hr column", table)
    return rows


def _choose_file(row: dict[str, str], fs: float | None) -> str:
    lr, hr = (row.get("filename_lr") or "").strip(), (row.get("filename_hr") or "").strip()
    if fs is not None and fs <= 100 and lr:
        return lr  # records100 already holds what was asked for; no need to decimate 500 Hz
    return hr or lr


def record_from_row(root: Path, row: dict[str, str], fs: float | None, line: int) -> ECGRecord:
    where = f"{root / DATABASE}:{line}"
    rel = _choose_file(row, fs)
    if not rel:
        raise ECGVLMError("row has no filename_hr or filename_lr", where)
    text = row.get("scp_codes") or "{}"
    if len(text) > 10_000:  # literal_eval of a huge nested literal can exhaust the stack
        raise ECGVLMError(f"scp_codes is {len(text)} characters long; not a PTB-XL label dict", where)
    try:
        raw = ast.literal_eval(text)  # literal_eval: data, never code
    except (ValueError, SyntaxError):
        raise ECGVLMError(f"scp_codes is not a dict literal: {row.get('scp_codes')!r}", where) from None
    if not isinstance(raw, dict):
        raise ECGVLMError(f"scp_codes is not a dict literal: {row.get('scp_codes')!r}", where)
    labels, unknown = clean_labels(raw, where)
    record = read_wfdb(resolve_inside(root, rel), fs=fs)
    record.labels = labels
    meta: dict[str, Any] = record.meta
    ecg_id = (row.get("ecg_id") or "").strip()
    if ecg_id:
        meta["id"] = str(int(float(ecg_id))) if ecg_id.replace(".", "", 1).isdigit() else ecg_id
    meta["source"] = (row.get("source") or "").strip() or "ptbxl"
    meta["format"] = "ptbxl"
    if unknown:
        meta["unknown_codes"] = unknown
    age = parse_age(row.get("age", ""))
    if age is not None:
        meta["age"] = age
        if age == 300:  # PTB-XL's anonymisation: 300 stands for "older than 89"
            meta.update(age=90, age_note="over 89")
    sex = parse_sex(row.get("sex", ""))
    if sex:
        meta["sex"] = sex
    fold = parse_number(row.get("strat_fold", ""))
    if fold is not None:
        meta["strat_fold"] = int(fold)
    if (row.get("report") or "").strip():
        meta["report"] = row["report"].strip()
    for key, value in row.items():
        if key and key not in _HANDLED and key not in meta and value not in (None, "", "nan"):
            meta[key] = value
    for key in MEASUREMENT_UNITS:
        value = parse_number(row.get(key, ""))
        if value is not None:
            record.measurements[key] = value
    return record


def iter_ptbxl(root: Path, fs: float | None = None) -> Iterator[tuple[str, Callable[[], ECGRecord]]]:
    """(name, loader) per table row; the loader reads the record (so a caller can skip bad rows)."""
    for line, row in enumerate(_read_table(root), start=2):
        name = f"{root / DATABASE}:{line}"
        yield name, (lambda row=row, line=line: record_from_row(root, row, fs, line))


@cache
def _index(root: Path, mtime: float) -> dict[str, tuple[int, dict[str, str]]]:
    index: dict[str, tuple[int, dict[str, str]]] = {}
    for line, row in enumerate(_read_table(root), start=2):
        for col in ("filename_lr", "filename_hr"):
            if row.get(col):
                index[row[col].strip()] = (line, row)
    return index


def find_ptbxl_row(path: Path) -> tuple[Path, int, dict[str, str]] | None:
    """If ``path`` (a record inside records100/ or records500/) belongs to a PTB-XL folder, its row."""
    base = path.resolve().with_suffix("") if path.suffix == ".hea" else path.resolve()
    for root in list(base.parents)[:4]:
        if is_ptbxl_folder(root):
            rel = base.relative_to(root).as_posix()
            hit = _index(root, (root / DATABASE).stat().st_mtime).get(rel)
            return (root, hit[0], hit[1]) if hit else None
    return None
