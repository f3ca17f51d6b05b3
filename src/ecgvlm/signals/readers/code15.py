"""CODE-15% folders: exams.csv + exams_part*.hdf5 (datasets ``tracings`` (N, 4096, 12), ``exam_id``).

400 Hz; leads in the order DI, DII, DIII, aVR, aVL, aVF, V1-V6. Exams shorter than 4096 samples
are zero-padded on both sides in the files: the padding is trimmed. The last row of each part is
an all-zero filler with exam_id 0 and is skipped. Labels: the 1dAVb, RBBB, LBBB, SB, ST, AF
columns (and normal_ecg) -> SCP codes with likelihood 100.

Amplitude: the dataset's own documentation is ambiguous about the unit ("scale 1e-4 V" vs
"multiply by 1000 to get V"); values are taken as millivolts, and ``CODE15_SCALE`` is the one
place to change that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import read_csv_rows
from ecgvlm.signals.mappings import benchmark_to_scp
from ecgvlm.signals.readers.common import build_record, parse_age
from ecgvlm.signals.record import ECGRecord

EXAMS = "exams.csv"
FS = 400.0
CODE15_SCALE = 1.0  # stored value * scale = mV
CODE15_LEADS = ("DI", "DII", "DIII", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")
LABEL_COLUMNS = ("1dAVb", "RBBB", "LBBB", "SB", "ST", "AF")


def is_code15_folder(path: Path) -> bool:
    return (path / EXAMS).is_file() or any(path.glob("exams_part*.hdf5"))


def _true(value: str | None) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0", "yes")


def _read_exams(root: Path) -> dict[str, dict[str, str]]:
    table = root / EXAMS
    if not table.is_file():
        return {}
    rows = read_csv_rows(table)
    if rows and "exam_id" not in rows[0]:
        raise ECGVLMError("no exam_id column: not a CODE-15 exams table", table)
    return {str(int(float(r["exam_id"]))): r for r in rows if (r.get("exam_id") or "").strip()}


def _trim_padding(x: np.ndarray) -> np.ndarray:
    nonzero = np.flatnonzero(np.any(x != 0, axis=0))
    return x[:, nonzero[0] : nonzero[-1] + 1] if nonzero.size else x


def exam_record(tracing: np.ndarray, exam_id: str, row: dict[str, str] | None, where: str, fs: float | None):
    x = np.asarray(tracing, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 12:
        raise ECGVLMError(f"exam {exam_id}: tracing has shape {x.shape}, expected (samples, 12)", where)
    x = _trim_padding(x.T) * CODE15_SCALE
    labels: dict[str, float] = {}
    meta: dict = {"id": exam_id, "source": "code15", "format": "code15", "exam_id": exam_id}
    if row is not None:
        for col in LABEL_COLUMNS:
            if _true(row.get(col)):
                labels[benchmark_to_scp(col, "code15")[0]] = 100.0
        if _true(row.get("normal_ecg")):
            labels["NORM"] = 100.0
        age = parse_age(row.get("age", ""))
        if age is not None:
            meta["age"] = age
        if (row.get("is_male") or "").strip():
            meta["sex"] = "M" if _true(row["is_male"]) else "F"
        for key in ("patient_id", "nn_predicted_age", "death", "timey"):
            if (row.get(key) or "").strip():
                meta[key] = row[key].strip()
    else:
        meta["unlabelled"] = True  # a tracing with no row in exams.csv
    return build_record(x, CODE15_LEADS, FS, where, fs=fs, labels=labels, meta=meta)


def iter_code15(root: Path, fs: float | None = None) -> Iterator[tuple[str, Callable[[], ECGRecord]]]:
    import h5py

    exams = _read_exams(root)
    parts = sorted(root.glob("exams_part*.hdf5")) + sorted(root.glob("exams_part*.h5"))
    if not parts:
        raise ECGVLMError("no exams_part*.hdf5 files beside exams.csv", root)
    for part in parts:
        try:
            f = h5py.File(part, "r")
        except OSError as e:
            raise ECGVLMError(f"cannot open HDF5 file ({e})", part) from None
        with f:
            if "tracings" not in f or "exam_id" not in f:
                raise ECGVLMError("HDF5 file lacks the 'tracings' or 'exam_id' dataset", part)
            ids = np.asarray(f["exam_id"][:]).astype(np.int64)
            tracings = f["tracings"]
            if tracings.shape[0] != ids.shape[0]:
                raise ECGVLMError(f"{tracings.shape[0]} tracings but {ids.shape[0]} exam ids", part)
            for i, eid in enumerate(ids):
                if eid == 0:
                    continue  # the zero filler row at the end of each part
                name = f"{part}[{i}]"
                exam = str(int(eid))
                yield (
                    name,
                    (lambda t=tracings, i=i, e=exam, n=name: exam_record(t[i], e, exams.get(e), n, fs)),
                )
