"""Read real ECG records into ``ECGRecord``: one entry point, format detected from the path.

    >>> rec = read_record("tests/fixtures/real/torch_ecg_cinc2021/E07500.hea")
    >>> rec.fs, rec.duration, rec.labels
    (500.0, 10.0, {'LAO/LAE': 100.0, 'SBRAD': 100.0})
    >>> for rec in iter_records("/data/ptb-xl", fs=100, on_error="skip"):
    ...     rec.meta["strat_fold"]

Single records: WFDB .hea/.dat, CinC 2021 .hea/.mat (``# Dx:`` SNOMED codes -> SCP codes), PTB
Diagnostic (lower-case names, Frank leads dropped). A record inside a PTB-XL folder also gets
its row of ptbxl_database.csv. Folders: PTB-XL (ptbxl_database.csv, also ``ecgvlm synth``
output), MIMIC-IV-ECG (record_list.csv), CODE-15 (exams.csv + exams_part*.hdf5), or any folder
of WFDB records (searched recursively).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ecgvlm.errors import ECGVLMError
from ecgvlm.signals.readers.code15 import is_code15_folder, iter_code15
from ecgvlm.signals.readers.mimic import is_mimic_folder, iter_mimic
from ecgvlm.signals.readers.ptbxl import find_ptbxl_row, is_ptbxl_folder, iter_ptbxl, record_from_row
from ecgvlm.signals.readers.wfdb_files import (
    SIGNAL_SUFFIXES,
    header_kind,
    read_header,
    read_wfdb,
    record_base,
)
from ecgvlm.signals.record import ECGRecord

__all__ = ["detect_format", "iter_records", "read_record", "SkipLog"]

log = logging.getLogger(__name__)


def detect_format(path: str | Path) -> str:
    """One of: ptbxl, mimic-iv-ecg, code15, wfdb-folder (folders); cinc-mat, ptbdb, wfdb (records)."""
    return _detect(Path(path))[0]


def _detect(p: Path) -> tuple[str, Any]:
    """The format, and for a record its parsed WFDB header (so it is read once)."""
    if p.is_dir():
        if is_ptbxl_folder(p):
            return "ptbxl", None
        if is_mimic_folder(p):
            return "mimic-iv-ecg", None
        if is_code15_folder(p):
            return "code15", None
        if next(p.rglob("*.hea"), None) is not None:
            return "wfdb-folder", None
        raise ECGVLMError(
            "unknown format: a folder with no ptbxl_database.csv, record_list.csv, exams.csv or .hea files", p
        )
    base = record_base(p)
    hea = base.with_name(base.name + ".hea")
    if not p.exists() and not hea.is_file():
        raise ECGVLMError("no such file or folder", p)
    if p.suffix.lower() in SIGNAL_SUFFIXES or (not p.exists() and hea.is_file()):
        header = read_header(hea)
        return header_kind(header), header
    if not p.exists():
        raise ECGVLMError("no such file or folder", p)
    if p.suffix.lower() in (".hdf5", ".h5"):
        raise ECGVLMError("a CODE-15 HDF5 part holds many exams: pass its folder to iter_records", p)
    raise ECGVLMError(
        f"unknown format (suffix {p.suffix or 'none'!r}): expected a WFDB .hea/.dat/.mat record or a dataset folder",
        p,
    )


def read_record(path: str | Path, fs: float | None = None) -> ECGRecord:
    """One record, format auto-detected, labels mapped to SCP codes, resampled to ``fs`` if given."""
    p = Path(path)
    if p.is_dir():
        raise ECGVLMError("is a folder: use iter_records (or `ecgvlm info`) for dataset folders", p)
    _, header = _detect(p)  # raises the one-line error for unknown/missing files
    base = record_base(p)
    hit = find_ptbxl_row(base.with_name(base.name + ".hea"))
    if hit is not None:
        root, line, row = hit
        rel = base.resolve().relative_to(root).as_posix()
        return record_from_row(root, {**row, "filename_hr": rel, "filename_lr": ""}, fs, line)
    return read_wfdb(p, fs=fs, header=header)


class SkipLog:
    """Collects what ``iter_records(on_error="skip")`` skipped: ``skipped`` is a list of (name, message)."""

    def __init__(self) -> None:
        self.read = 0
        self.skipped: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.skipped)


def _loaders(p: Path, fs: float | None) -> Iterator[tuple[str, Callable[[], ECGRecord]]]:
    kind = detect_format(p) if p.is_dir() else "file"
    if kind == "ptbxl":
        yield from iter_ptbxl(p, fs)
    elif kind == "mimic-iv-ecg":
        yield from iter_mimic(p, fs)
    elif kind == "code15":
        yield from iter_code15(p, fs)
    elif kind == "wfdb-folder":
        for hea in sorted(p.rglob("*.hea")):
            yield str(hea), (lambda hea=hea: read_record(hea, fs))
    else:
        yield str(p), (lambda: read_record(p, fs))


def iter_records(
    path: str | Path, fs: float | None = None, on_error: str = "raise", log_to: SkipLog | None = None
) -> Iterator[ECGRecord]:
    """Every record of a folder or dataset (or the one record of a file path).

    ``on_error="skip"``: a record that fails with ECGVLMError is logged, counted in ``log_to``
    (a SkipLog) and skipped; dataset-level problems (no table, unreadable table) still raise.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    stats = log_to if log_to is not None else SkipLog()
    for name, load in _loaders(Path(path), fs):
        try:
            record = load()
        except ECGVLMError as e:
            if on_error == "raise":
                raise
            stats.skipped.append((name, str(e)))
            log.warning("skipped %s", e)
            continue
        stats.read += 1
        yield record
    if stats.skipped:
        log.warning("%s: skipped %d of %d records", path, len(stats.skipped), stats.read + len(stats.skipped))
