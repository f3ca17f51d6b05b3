"""MIMIC-IV-ECG folders: record_list.csv + machine_measurements.csv + files/pNNNN/pNNNNNNNN/sNNNNNNNN/NNNNNNNN.hea.

The report is the machine statements report_0 .. report_17 joined with "; ". Measurements come
from the machine's fiducial points (ms from the start of the median beat): hr from rr_interval,
pr = qrs_onset - p_onset, qrs = qrs_end - qrs_onset, qt = t_end - qrs_onset, qtc by Bazett,
axis = qrs_axis. MIMIC writes 29999 (and similar) where a point was not found; such values are
dropped. Labels are derived from the report statements (see ``mappings.report_to_scp``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import read_csv_rows, resolve_inside
from ecgvlm.signals.mappings import report_to_scp
from ecgvlm.signals.readers.common import parse_number
from ecgvlm.signals.readers.wfdb_files import read_wfdb
from ecgvlm.signals.record import ECGRecord

RECORD_LIST = "record_list.csv"
MEASUREMENTS = "machine_measurements.csv"
_MISSING_FROM = 29999  # MIMIC's "not measured" sentinel (and anything larger)


def is_mimic_folder(path: Path) -> bool:
    return (path / RECORD_LIST).is_file()


def _value(row: dict[str, str], key: str) -> float | None:
    v = parse_number(row.get(key, ""))
    return None if v is None or abs(v) >= _MISSING_FROM else v


def measurements_from_row(row: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    rr = _value(row, "rr_interval")
    if rr and rr > 0:
        out["hr"] = round(60000.0 / rr, 1)
    p_on, qrs_on, qrs_end, t_end = (_value(row, k) for k in ("p_onset", "qrs_onset", "qrs_end", "t_end"))
    if p_on is not None and qrs_on is not None and qrs_on > p_on:
        out["pr"] = qrs_on - p_on
    if qrs_on is not None and qrs_end is not None and qrs_end > qrs_on:
        out["qrs"] = qrs_end - qrs_on
    if qrs_on is not None and t_end is not None and t_end > qrs_on:
        out["qt"] = t_end - qrs_on
        if rr and rr > 0:
            out["qtc"] = round(out["qt"] / math.sqrt(rr / 1000.0), 1)
    axis = _value(row, "qrs_axis")
    if axis is not None:
        out["axis"] = axis
    return out


def report_from_row(row: dict[str, str]) -> str:
    parts = [(row.get(f"report_{i}") or "").strip() for i in range(18)]
    return "; ".join(p for p in parts if p)


def record_from_rows(root: Path, rec: dict[str, str], mm: dict[str, str] | None, fs: float | None, line: int):
    where = f"{root / RECORD_LIST}:{line}"
    rel = (rec.get("path") or "").strip()
    if not rel:
        raise ECGVLMError("row has no path", where)
    record = read_wfdb(resolve_inside(root, rel), fs=fs)
    meta = record.meta
    meta.update(source="mimic-iv-ecg", format="mimic-iv-ecg")
    for key in ("study_id", "subject_id", "ecg_time"):
        if (rec.get(key) or "").strip():
            meta[key] = rec[key].strip()
    if meta.get("study_id"):
        meta["id"] = meta["study_id"]
    if mm is not None:
        report = report_from_row(mm)
        if report:
            meta["report"] = report
            record.labels = report_to_scp(report)
            meta["labels_from"] = "machine report"
        record.measurements.update(measurements_from_row(mm))
        for key in ("p_axis", "t_axis", "cart_id", "bandwidth", "filtering"):
            v = (mm.get(key) or "").strip()
            if v and not (key.endswith("axis") and (_value(mm, key) is None)):
                meta[key] = v
    return record


def iter_mimic(root: Path, fs: float | None = None) -> Iterator[tuple[str, Callable[[], ECGRecord]]]:
    records = read_csv_rows(root / RECORD_LIST)
    by_study: dict[str, dict[str, str]] = {}
    if (root / MEASUREMENTS).is_file():
        by_study = {r.get("study_id", "").strip(): r for r in read_csv_rows(root / MEASUREMENTS)}
    for line, rec in enumerate(records, start=2):
        mm = by_study.get((rec.get("study_id") or "").strip())
        yield (
            f"{root / RECORD_LIST}:{line}",
            (lambda rec=rec, mm=mm, line=line: record_from_rows(root, rec, mm, fs, line)),
        )
