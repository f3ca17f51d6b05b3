"""WFDB records: plain .hea/.dat, PhysioNet/CinC 2021 .hea/.mat with ``# Dx:``, PTB Diagnostic.

Headers are parsed by ``wfdb.rdheader``. Signal files are checked against the header before they
are read (present, long enough), so a bad file gives one line naming it instead of a reshape error
deep inside wfdb. CinC .mat files are MATLAB v4 files read with ``scipy.io.loadmat`` and converted
to float before scaling (some hold values that would overflow a 16-bit re-write).
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ecgvlm.errors import ECGVLMError
from ecgvlm.signals.mappings import snomed_codes_to_labels
from ecgvlm.signals.plausibility import check_sampling_rate
from ecgvlm.signals.readers.common import build_record, clean_labels, parse_age, parse_sex
from ecgvlm.signals.readers.leads import check_leads, normalize_lead_name
from ecgvlm.signals.record import ECGRecord

SIGNAL_SUFFIXES = (".hea", ".dat", ".mat", ".xyz")

# Bytes per sample of the WFDB storage formats (212: two samples in three bytes; 310/311: three in four).
_BYTES_PER_SAMPLE = {
    "8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2,
    "212": 1.5, "310": 4 / 3, "311": 4 / 3,
}  # fmt: skip

# CinC 2021 record-name prefixes -> the database they came from.
_CINC_DATABASES = {
    "JS": "Chapman-Shaoxing/Ningbo", "HR": "PTB-XL", "E": "Georgia", "S": "PTB",
    "I": "St Petersburg INCART", "Q": "CPSC 2018 extra", "A": "CPSC 2018",
}  # fmt: skip

# PTB Diagnostic "infarction (localization)" values -> PTB-XL MI statements. Values are matched
# with hyphens and spaces removed, and may be cut short in the header ("infero-latera").
_PTB_MI_SITES = {
    "inferoposterolateral": ["IPLMI"],
    "inferoposterior": ["IPMI"],
    "inferolateral": ["ILMI"],
    "inferior": ["IMI"],
    "anteroseptal": ["ASMI"],
    "anterolateral": ["ALMI"],
    "anterior": ["AMI"],
    "lateral": ["LMI"],
    "posterior": ["PMI"],
    "posterolateral": ["PMI", "LMI"],
}


def record_base(path: Path) -> Path:
    """The record path without extension (what wfdb calls the record name)."""
    return path.with_suffix("") if path.suffix.lower() in SIGNAL_SUFFIXES else path


def _check_header_rate(hea: Path) -> None:
    """The sampling rate as the header writes it (the record line's third field, before any
    "/counter" or "(base)"), checked before wfdb parses it: wfdb replaces a negative or missing rate
    with its default 250 Hz, and garbage there shifts the fields after it ("no signal length")."""
    try:
        text = hea.read_text("utf-8", errors="replace")
    except OSError as e:
        raise ECGVLMError(f"cannot read the header: {e.strerror}", hea) from None
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) >= 3:
            check_sampling_rate(
                re.split(r"[/(]", fields[2], maxsplit=1)[0], hea, "the header's sampling rate"
            )
        return


def read_header(hea: Path):
    import wfdb

    if not hea.is_file():
        raise ECGVLMError("WFDB header not found", hea)
    _check_header_rate(hea)
    try:
        header = wfdb.rdheader(str(record_base(hea)))
    except Exception as e:  # wfdb raises bare ValueError/IndexError etc. on junk
        raise ECGVLMError(f"unparseable WFDB header ({type(e).__name__}: {e})", hea) from None
    if getattr(header, "seg_name", None):
        raise ECGVLMError("multi-segment WFDB records are not supported", hea)
    if not header.n_sig or not header.sig_name or not header.file_name:
        raise ECGVLMError("WFDB header describes no signals", hea)
    if not header.sig_len:
        raise ECGVLMError("WFDB header gives no signal length (samples per signal)", hea)
    if not (header.fs and header.fs > 0):
        raise ECGVLMError(f"WFDB header gives an invalid sampling frequency {header.fs!r}", hea)
    return header


def header_kind(header) -> str:
    """'cinc-mat' (.mat signals), 'ptbdb' (PTB Diagnostic lower-case names) or 'wfdb'."""
    if all(str(f).lower().endswith(".mat") for f in header.file_name):
        return "cinc-mat"
    names = [str(n) for n in header.sig_name]
    if "vx" in names and "i" in names:
        return "ptbdb"
    return "wfdb"


def _check_signal_files(header, hea: Path) -> None:
    folder = hea.parent
    for fname in dict.fromkeys(header.file_name):
        target = folder / fname
        if not target.is_file():
            raise ECGVLMError(f"header names signal file {fname!r}, which does not exist", hea)
        if str(fname).lower().endswith(".mat"):
            continue  # checked after loading: the MATLAB container has its own layout
        channels = [i for i, f in enumerate(header.file_name) if f == fname]
        sizes = [_BYTES_PER_SAMPLE.get(str(header.fmt[i])) for i in channels]
        if None in sizes:
            continue  # unusual format: wfdb decides, and lengths are checked after reading
        spf = [(header.samps_per_frame[i] if header.samps_per_frame else 1) or 1 for i in channels]
        frame = sum(b * n for b, n in zip(sizes, spf))
        offset = (header.byte_offset[channels[0]] if header.byte_offset else 0) or 0
        need = offset + math.ceil(frame * header.sig_len)
        have = target.stat().st_size
        if have < need:
            raise ECGVLMError(
                f"truncated: {have} bytes but the header {hea.name} implies {need} "
                f"({header.sig_len} samples x {len(channels)} channels)",
                target,
            )


def _units_to_mv(unit: str | None) -> float:
    u = (unit or "mV").strip()
    if u.lower() in ("mv", "", "nu"):
        return 1.0
    if u.lower() in ("uv", "µv", "microvolt"):
        return 1e-3
    if u == "V" or u.lower() == "volt":
        return 1e3
    return 1.0


def _read_mat(header, hea: Path) -> np.ndarray:
    from scipy.io import loadmat

    mat_path = hea.parent / header.file_name[0]
    try:
        val = loadmat(str(mat_path))["val"]
    except Exception as e:
        raise ECGVLMError(f"cannot read the MATLAB signal file ({type(e).__name__}: {e})", mat_path) from None
    val = np.asarray(val, dtype=np.float64)  # float first: scaling int16 in place could overflow
    if val.ndim != 2 or val.shape[0] != header.n_sig:
        raise ECGVLMError(f"'val' has shape {val.shape}, the header says {header.n_sig} signals", mat_path)
    if val.shape[1] < header.sig_len:
        raise ECGVLMError(
            f"truncated: {val.shape[1]} samples per signal but the header says {header.sig_len}", mat_path
        )
    val = val[:, : header.sig_len]
    out = np.empty_like(val)
    for i in range(header.n_sig):
        gain = header.adc_gain[i] or 200.0  # WFDB: a zero gain means uncalibrated, default 200
        base = header.baseline[i] if header.baseline is not None else 0
        out[i] = (val[i] - base) / gain * _units_to_mv(header.units[i] if header.units else None)
    return out


def _read_dat(header, hea: Path, channels: list[int]) -> np.ndarray:
    import wfdb

    try:
        rec = wfdb.rdrecord(str(record_base(hea)), channels=channels, physical=True)
    except Exception as e:
        raise ECGVLMError(f"cannot read the signal file(s) ({type(e).__name__}: {e})", hea) from None
    sig = np.asarray(rec.p_signal, dtype=np.float64).T
    if sig.shape[1] < header.sig_len:
        raise ECGVLMError(f"truncated: {sig.shape[1]} samples but the header says {header.sig_len}", hea)
    for k, i in enumerate(channels):
        sig[k] *= _units_to_mv(header.units[i] if header.units else None)
    return sig


def _comments(header) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in header.comments or []:
        if ":" in line:
            key, _, value = line.partition(":")
            out.setdefault(key.strip().lower(), value.strip())
    return out


def _ptb_mi_codes(value: str) -> list[str]:
    key = re.sub(r"[^a-z]", "", value.lower())
    if len(key) < 5:
        return []  # "no", "n/a", or too short to tell
    if key in _PTB_MI_SITES:
        return _PTB_MI_SITES[key]
    # cut short in the header: the shortest site name that starts with the text
    candidates = sorted((k for k in _PTB_MI_SITES if k.startswith(key)), key=len)
    return _PTB_MI_SITES[candidates[0]] if candidates else []


def _labels_from_comments(kind: str, comments: dict[str, str], hea: Path) -> tuple[dict, dict[str, Any]]:
    labels: dict[str, float] = {}
    meta: dict[str, Any] = {}
    if "scp_codes" in comments:  # a PTB-XL-style dict written into the header
        try:
            raw = ast.literal_eval(comments["scp_codes"])
        except (ValueError, SyntaxError):
            raise ECGVLMError("header comment scp_codes is not a dict literal", hea) from None
        if not isinstance(raw, dict):
            raise ECGVLMError("header comment scp_codes is not a dict literal", hea)
        labels, unknown = clean_labels(raw, hea)
        if unknown:
            meta["unknown_codes"] = unknown
    if "dx" in comments:
        codes = [c for c in re.split(r"[,\s]+", comments["dx"]) if c]
        mapped, unmapped = snomed_codes_to_labels(codes)
        labels.update(mapped)
        meta["snomed"] = codes
        if unmapped:
            meta["snomed_unmapped"] = unmapped
    if kind == "ptbdb":
        reason = comments.get("reason for admission", "")
        if reason:
            meta["diagnosis"] = reason
        if reason.lower().startswith("healthy control"):
            labels["NORM"] = 100.0
        for key in ("acute infarction (localization)", "former infarction (localization)"):
            for code in _ptb_mi_codes(comments.get(key, "")):
                labels[code] = 100.0
    return labels, meta


def read_wfdb(path: str | Path, fs: float | None = None, header: Any = None) -> ECGRecord:
    """Read one WFDB record (path to the .hea, a signal file, or the name without extension).
    ``header``: the record's header as ``read_header`` returned it, when the caller has it."""
    base = record_base(Path(path))
    hea = base.with_name(base.name + ".hea")
    header = header if header is not None else read_header(hea)
    kind = header_kind(header)
    _check_signal_files(header, hea)
    names = [str(n) for n in header.sig_name]
    check_leads(names, hea)  # before reading any samples
    if kind == "cinc-mat":
        raw = _read_mat(header, hea)
    else:
        # only read the channels that can be standard leads (skips PTB's Frank .xyz file)
        wanted = [i for i, n in enumerate(names) if normalize_lead_name(n)] or list(range(len(names)))
        raw = _read_dat(header, hea, wanted)
        names = [names[i] for i in wanted]
    comments = _comments(header)
    labels, extra = _labels_from_comments(kind, comments, hea)
    meta: dict[str, Any] = {"id": base.name, "format": kind, **extra}
    if kind == "cinc-mat":
        meta["source"] = "cinc2021"
        prefix = re.match(r"[A-Z]+", base.name)
        if prefix and prefix.group(0) in _CINC_DATABASES:
            meta["database"] = _CINC_DATABASES[prefix.group(0)]
    elif kind == "ptbdb":
        meta["source"] = "ptbdb"
    else:
        meta["source"] = "wfdb"
    age = parse_age(comments.get("age", ""))
    if age is not None:
        meta["age"] = age
    sex = parse_sex(comments.get("sex", ""))
    if sex:
        meta["sex"] = sex
    return build_record(raw, names, float(header.fs), hea, fs=fs, labels=labels, meta=meta)
