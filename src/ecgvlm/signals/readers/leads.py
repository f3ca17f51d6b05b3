"""Lead-name normalisation: map whatever a file calls its leads onto ``LEADS``.

Handles case ("AVR", "avr", "aVR"), the PTB Diagnostic lower-case names ("i", "v6"), Brazilian /
European "DI", "DII", "DIII" (CODE-15), and "lead II" / "LEAD_II" prefixes. Deliberately NOT
mapped: "MLII" / "MLI" / "MLIII" (Holter modified limb leads, placed on the torso, so their waves
differ from the true limb leads) and the Frank leads vx/vy/vz: a record holding only those is
reported as missing leads rather than silently mislabelled.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecgvlm.errors import ECGVLMError
from ecgvlm.signals.record import LEADS

_ALIASES: dict[str, str] = {name.lower(): name for name in LEADS}
_ALIASES.update({"di": "I", "dii": "II", "diii": "III", "d1": "I", "d2": "II", "d3": "III"})


def normalize_lead_name(name: str) -> str | None:
    """The standard name for a lead label, or None when it is not one of the 12 standard leads."""
    key = re.sub(r"^(lead|ecg)[\s_\-]*", "", str(name).strip().lower())
    key = key.replace(" ", "").replace("_", "")
    return _ALIASES.get(key)


def derive_limb_leads(leads: dict[str, np.ndarray]) -> list[str]:
    """Fill III, aVR, aVL, aVF from I and II (Einthoven/Goldberger) where missing; returns what was derived.

    Some datasets store only the 8 independent leads (I, II, V1-V6).
    """
    if "I" not in leads or "II" not in leads:
        return []
    one, two = leads["I"], leads["II"]
    formulas = {"III": two - one, "aVR": -(one + two) / 2, "aVL": one - two / 2, "aVF": two - one / 2}
    derived = [name for name in formulas if name not in leads]
    for name in derived:
        leads[name] = formulas[name]
    return derived


def missing_leads(names: Sequence[str]) -> list[str]:
    """Standard leads that ``names`` cannot provide (III/aVR/aVL/aVF count as present given I and II)."""
    have = {normalize_lead_name(n) for n in names} - {None}
    if {"I", "II"} <= have:
        have |= {"III", "aVR", "aVL", "aVF"}
    return [name for name in LEADS if name not in have]


def check_leads(names: Sequence[str], where: str | Path | None) -> None:
    """Raise the one-line 'missing leads' error when ``names`` cannot give a 12-lead record."""
    missing = missing_leads(names)
    if missing:
        raise ECGVLMError(
            f"missing leads {', '.join(missing)}: the file has {len(names)} channel(s) "
            f"({', '.join(map(str, names))}) and a 12-lead record is needed",
            where,
        )


def to_standard_leads(
    signal: np.ndarray, names: Sequence[str], where: str | Path | None
) -> tuple[np.ndarray, list[str]]:
    """Pick and reorder the 12 standard leads from (channels, samples) ``signal``.

    Returns (signal (12, n) in LEADS order, names of leads derived from I and II). Extra channels
    (Frank leads, respiration) are dropped. Raises ECGVLMError naming the missing leads.
    """
    if signal.ndim != 2 or signal.shape[0] != len(names):
        raise ECGVLMError(f"{signal.shape[0]} signal channels but {len(names)} lead names", where)
    found: dict[str, np.ndarray] = {}
    for i, raw in enumerate(names):
        std = normalize_lead_name(raw)
        if std is None:
            continue
        if std in found:
            raise ECGVLMError(f"lead {std} appears twice (as {raw!r} and an earlier channel)", where)
        found[std] = signal[i]
    check_leads(names, where)
    derived = derive_limb_leads(found)
    return np.stack([found[name] for name in LEADS]), derived
