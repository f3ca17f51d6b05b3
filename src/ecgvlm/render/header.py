"""Header text: made-up patient ids and demographics (seeded), measurements, recording settings.

Nothing diagnostic is printed (no statements, no report): the page must not give away its labels.
"""

from __future__ import annotations

import numpy as np

from ecgvlm.signals.record import ECGRecord

_ONSETS = ("B", "D", "F", "G", "H", "K", "L", "M", "N", "P", "R", "S", "T", "V", "W", "Z", "Br", "Ch", "St")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou")
_CODAS = ("", "n", "r", "l", "s", "m", "rt", "nd", "ck", "ss")
_SITES = ("ED", "CCU", "Cardiology", "Ward 4", "Clinic B", "ICU", "OPD")


def _name(rng: np.random.Generator, syllables: int) -> str:
    parts = [str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS)) + str(rng.choice(_CODAS))]
    parts += [str(rng.choice(_ONSETS)).lower() + str(rng.choice(_VOWELS)) for _ in range(syllables - 1)]
    return "".join(parts)


def header_lines(record: ECGRecord, rng: np.random.Generator, measurements: bool) -> list[str]:
    """Three to four lines for the top of the page; ids, names and dates are drawn from ``rng``."""
    meta = record.meta
    last, first = _name(rng, int(rng.integers(1, 4))).upper(), _name(rng, int(rng.integers(1, 3)))
    pid = f"{int(rng.integers(10**7, 10**8))}"
    year, month, day = int(rng.integers(2008, 2025)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    hh, mm = int(rng.integers(0, 24)), int(rng.integers(0, 60))
    age = meta.get("age")
    age = int(rng.integers(18, 90)) if age is None or not np.isfinite(float(age)) else int(float(age))
    sex = meta.get("sex") if meta.get("sex") in ("M", "F") else str(rng.choice(["M", "F"]))
    lines = [
        f"{last}, {first}        ID: {pid}        {day:02d}-{month:02d}-{year} {hh:02d}:{mm:02d}",
        f"{age} yr   {'Male' if sex == 'M' else 'Female'}   Loc: {rng.choice(_SITES)}   "
        f"Room: {int(rng.integers(1, 40))}",
    ]
    if measurements and record.measurements:
        m = record.measurements
        parts = []
        if "hr" in m:
            parts.append(f"Vent. rate {m['hr']:.0f} bpm")
        if "pr" in m:
            parts.append(f"PR int {m['pr']:.0f} ms")
        if "qrs" in m:
            parts.append(f"QRS dur {m['qrs']:.0f} ms")
        if "qt" in m or "qtc" in m:
            qt = f"{m['qt']:.0f}" if "qt" in m else "--"
            qtc = f"{m['qtc']:.0f}" if "qtc" in m else "--"
            parts.append(f"QT/QTc {qt}/{qtc} ms")
        if "axis" in m:
            parts.append(f"QRS axis {m['axis']:.0f}")
        lines.append("   ".join(parts))
    return lines


def settings_line(speed: float, gain: float, filter_text: str, mains_hz: int) -> str:
    return f"{speed:g} mm/s   {gain:g} mm/mV   {filter_text}   {mains_hz} Hz"
