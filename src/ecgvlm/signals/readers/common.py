"""The last step every reader shares: standard leads, NaN check, resampling, the ECGRecord."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecgvlm.errors import ECGVLMError
from ecgvlm.signals.plausibility import check_signal
from ecgvlm.signals.readers.leads import to_standard_leads
from ecgvlm.signals.readers.resample import resample
from ecgvlm.signals.record import LEADS, ECGRecord
from ecgvlm.signals.vocab import statements


def build_record(
    signal: np.ndarray,
    names: Sequence[str],
    fs_in: float,
    where: str | Path,
    *,
    fs: float | None = None,
    labels: dict[str, float] | None = None,
    measurements: dict[str, float] | None = None,
    meta: dict[str, Any] | None = None,
) -> ECGRecord:
    """Turn a raw (channels, samples) array in mV into an ECGRecord with the 12 leads in order."""
    sig, derived = to_standard_leads(np.asarray(signal), names, where)
    bad = ~np.isfinite(sig)
    if bad.any():
        counts = bad.sum(axis=1)
        which = ", ".join(f"{LEADS[i]} ({int(counts[i])} samples)" for i in np.flatnonzero(counts))
        raise ECGVLMError(f"NaN or infinite samples in lead {which}", where)
    if sig.shape[1] == 0:
        raise ECGVLMError("the record holds no samples", where)
    if not (fs_in and fs_in > 0):
        raise ECGVLMError(f"invalid sampling frequency {fs_in!r}", where)
    check_signal(sig, fs_in, LEADS, where)  # before resampling: the limits are about the file
    meta = dict(meta or {})
    meta.setdefault("path", str(where))
    if derived:
        meta["derived_leads"] = derived
    if fs is not None and float(fs) != float(fs_in):
        if fs <= 0:
            raise ECGVLMError(f"invalid target sampling frequency {fs!r}", where)
        sig = resample(sig, float(fs_in), float(fs))
        meta["fs_original"] = float(fs_in)
        fs_in = float(fs)
    return ECGRecord(
        signal=sig.astype(np.float32),
        fs=float(fs_in),
        labels=dict(labels or {}),
        measurements=dict(measurements or {}),
        meta=meta,
    )


def clean_labels(raw: dict, where: str | Path) -> tuple[dict[str, float], list[str]]:
    """Keep the known SCP codes of a {code: likelihood} dict; returns (labels, unknown codes)."""
    known = statements()
    labels: dict[str, float] = {}
    unknown: list[str] = []
    for code, value in raw.items():
        try:
            likelihood = float(value)
        except (TypeError, ValueError):
            raise ECGVLMError(f"likelihood of {code!r} is not a number: {value!r}", where) from None
        if str(code) in known:
            labels[str(code)] = likelihood
        else:
            unknown.append(str(code))
    return labels, unknown


def parse_sex(value: Any) -> str | None:
    """'M'/'F' from the many spellings datasets use (PTB-XL: 0 male, 1 female)."""
    text = str(value).strip().lower()
    if text in ("m", "male", "0", "0.0", "man"):
        return "M"
    if text in ("f", "female", "1", "1.0", "woman"):
        return "F"
    return None


def parse_number(value: Any) -> float | None:
    try:
        out = float(str(value).strip())
    except ValueError:
        return None
    return out if np.isfinite(out) else None


def parse_age(value: Any) -> int | float | None:
    age = parse_number(value)
    if age is None or age < 0:
        return None
    return int(age) if age == int(age) else age
