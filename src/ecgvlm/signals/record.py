"""The one record type every stage passes around."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecgvlm.errors import ECGVLMError

# The standard 12-lead order. Every ECGRecord stores its leads in exactly this order.
LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

# Measurement keys and their units. A missing measurement is simply absent from the dict
# (an AFIB record has no PR interval), never NaN.
MEASUREMENT_UNITS: dict[str, str] = {
    "hr": "bpm",
    "pr": "ms",
    "qrs": "ms",
    "qt": "ms",
    "qtc": "ms",
    "axis": "deg",
}


@dataclass
class ECGRecord:
    """A 12-lead ECG with its labels.

    signal: float32 array (12, n_samples) in millivolts, leads in ``LEADS`` order.
    fs: sampling frequency in Hz.
    labels: SCP-ECG statement code -> likelihood 0-100, as PTB-XL's ``scp_codes`` column.
    measurements: keys of ``MEASUREMENT_UNITS`` -> value.
    meta: free-form facts: ``id`` (required, unique within a source), ``source``, ``age``,
        ``sex`` ("M"/"F"), ``report`` (clinician text), ``strat_fold``, ...
    """

    signal: np.ndarray
    fs: float
    labels: dict[str, float] = field(default_factory=dict)
    measurements: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sig = np.asarray(self.signal, dtype=np.float32)
        where = self.meta.get("id")
        if sig.ndim != 2 or sig.shape[0] != len(LEADS):
            raise ECGVLMError(f"signal must have shape (12, n), got {sig.shape}", where)
        if sig.shape[1] == 0:
            raise ECGVLMError("signal is empty", where)
        if not np.isfinite(sig).all():
            raise ECGVLMError("signal contains NaN or infinite samples", where)
        if not (self.fs > 0 and math.isfinite(self.fs)):
            raise ECGVLMError(f"invalid sampling frequency {self.fs!r}", where)
        for key in self.measurements:
            if key not in MEASUREMENT_UNITS:
                raise ECGVLMError(
                    f"unknown measurement {key!r}; known: {', '.join(MEASUREMENT_UNITS)}", where
                )
        self.signal = sig
        self.fs = float(self.fs)

    @property
    def id(self) -> str:
        return str(self.meta.get("id", ""))

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.fs

    def lead(self, name: str) -> np.ndarray:
        return self.signal[LEADS.index(name)]

    def codes(self, min_likelihood: float = 0.0) -> list[str]:
        """SCP codes whose likelihood is at least ``min_likelihood`` (PTB-XL stores 0 for 'possible')."""
        return [c for c, p in self.labels.items() if p >= min_likelihood]
