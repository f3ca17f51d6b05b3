"""Measurement answers (heart rate, PR, QRS, QT, QTc, axis): read the number, compare within tolerance.

The number read is the first one carrying the gold unit ("72 bpm", "96 ms"), else the first number.
A value given in seconds for a millisecond quantity ("QRS 0.10 s") is converted. Correct when
``|value - gold.value| <= gold.tolerance``. Reported per quantity: accuracy (%), MAE (in the gold
unit, over readable answers) and how many answers had no number. Same rule in both modes.
"""

from __future__ import annotations

import re
from collections import defaultdict

_NUM = r"[-+\u2212]?\d+(?:[.,]\d+)?"
_WITH_UNIT = re.compile(
    rf"({_NUM})\s*(bpm|beats?\s*(?:per|/)\s*min(?:ute)?|/min|ms|msec|milliseconds?|s|sec|seconds?|°|deg(?:rees?)?)\b",
    re.I,
)
_ANY = re.compile(_NUM)


def _to_float(s: str) -> float:
    return float(s.replace(",", ".").replace("\u2212", "-"))


def _unit_kind(u: str) -> str:
    u = u.lower()
    if u.startswith(("bpm", "beat", "/min")):
        return "bpm"
    if u.startswith(("ms", "msec", "milli")):
        return "ms"
    if u in ("s", "sec") or u.startswith("second"):
        return "s"
    return "deg"


def extract_value(text: str, unit: str | None = None) -> float | None:
    """The measured value an answer gives, in ``unit`` when it can tell; None if there is no number."""
    text = text or ""
    want = _unit_kind(unit) if unit else None
    for m in _WITH_UNIT.finditer(text):
        kind = _unit_kind(m.group(2))
        value = _to_float(m.group(1))
        if want is None or kind == want:
            return value
        if want == "ms" and kind == "s":
            return value * 1000.0
    m = _ANY.search(text)
    return _to_float(m.group(0)) if m else None


def score_measure(preds: list[dict]) -> dict:
    """Accuracy within tolerance and MAE, overall and per ``gold.quantity``."""
    groups: dict[str, list[tuple[bool, float | None]]] = defaultdict(list)
    for r in preds:
        gold = r.get("gold") or {}
        if "value" not in gold:
            continue
        q = str(gold.get("quantity", "value"))
        value = extract_value(r.get("prediction") or "", gold.get("unit"))
        if value is None:
            groups[q].append((False, None))
            continue
        err = abs(value - float(gold["value"]))
        groups[q].append((err <= float(gold.get("tolerance", 0.0)), err))

    def summary(items: list[tuple[bool, float | None]]) -> dict:
        errs = [e for _, e in items if e is not None]
        return {
            "n": len(items),
            "accuracy": round(100.0 * sum(ok for ok, _ in items) / len(items), 1) if items else None,
            "mae": round(sum(errs) / len(errs), 2) if errs else None,
            "no_number": sum(e is None for _, e in items),
        }

    every = [x for items in groups.values() for x in items]
    out = summary(every)
    out["per_quantity"] = {q: summary(items) for q, items in sorted(groups.items())}
    return out
