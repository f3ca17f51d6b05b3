"""The SCP statements the synthetic generator supports, which of them may occur together, and the
prior that ``conditions=None`` draws a label set from.

The rule table is deliberately small: a label set is accepted when no pair in it is excluded and
it names at most one statement from each exclusive group.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from ecgvlm.errors import ECGVLMError

# code -> how the dipole model renders it (the facts a reader of a generated record can rely on).
CONDITIONS: dict[str, str] = {
    "NORM": "normal ECG: sinus 62-95 bpm, PR 130-190 ms, QRS 80-104 ms, axis -20..+85 deg, QTc 385-430 ms",
    "SR": "sinus rhythm 62-95 bpm, P before every QRS, small respiratory RR variation",
    "SBRAD": "sinus bradycardia 40-55 bpm",
    "STACH": "sinus tachycardia 105-130 bpm, PR 120-150 ms",
    "SARRH": "sinus arrhythmia: respiratory RR modulation of 10-18 %",
    "AFIB": "atrial fibrillation: no P waves, 4-8 Hz fibrillatory baseline, irregular RR (CV 0.15-0.3)",
    "AFLT": "atrial flutter: 250-330/min sawtooth waves, 3:1 / 4:1 / variable conduction",
    "PAC": "1-2 premature atrial beats: early ectopic P, narrow QRS, non-compensatory pause",
    "PVC": "1-2 premature ventricular beats: no P, QRS 140-175 ms, discordant T, compensatory pause",
    "1AVB": "first-degree AV block: PR 225-300 ms (sinus rate <= 85 bpm)",
    "2AVB": "second-degree AV block: Mobitz I (Wenckebach) or Mobitz II (2:1, 3:2, 4:3)",
    "3AVB": "complete AV block: regular P waves 60-95/min (>= 1.35x the escape rate) dissociated from a junctional (40-55) or ventricular (30-40/min) escape",
    "CLBBB": "complete LBBB: QRS 132-170 ms, broad notched R in I/aVL/V5-V6, QS in V1, discordant ST-T",
    "CRBBB": "complete RBBB: QRS 128-150 ms, terminal rightward-anterior forces (rsR' in V1, wide S in I/V6)",
    "IRBBB": "incomplete RBBB: QRS 105-113 ms with a terminal r' in V1",
    "LAFB": "left anterior fascicular block: axis -50..-75 deg, qR in aVL, rS in II/III/aVF",
    "WPW": "pre-excitation: PR 92-112 ms, short P, delta wave, QRS 125-150 ms",
    "LVH": "left ventricular hypertrophy: Sokolow-Lyon SV1 + max(RV5, RV6) 3.8-5.2 mV, strain in some",
    "RVH": "right ventricular hypertrophy: axis +100..+150 deg, dominant R in V1, deep S in V5-V6",
    "LAO/LAE": "left atrial overload: P 120-145 ms, notched in II, deep terminal negative P in V1",
    "IMI": "old inferior MI: Q waves >= 40 ms in II, III, aVF",
    "ILMI": "old inferolateral MI: Q waves in II, III, aVF and I, aVL, V5-V6",
    "ASMI": "old anteroseptal MI: QS complexes in V1-V3",
    "AMI": "old anterior MI: Q waves in V2-V4",
    "INJAS": "anteroseptal injury: ST elevation 0.2-0.45 mV at J+60 ms in V1-V4",
    "INJIN": "inferior injury: ST elevation 0.15-0.35 mV in II, III, aVF, reciprocal depression in aVL",
    "ISC_": "ischaemic ST depression 0.12-0.25 mV with flat or inverted T, inferolateral leads",
    "ISCAL": "anterolateral ischaemia: inverted T waves in I, aVL, V2-V6",
    "NST_": "non-specific ST changes: ST depression 0.04-0.09 mV, flattened T waves",
    "LNGQT": "long QT: QTc (Bazett) 480-530 ms",
    "LVOLT": "low voltage: QRS peak-to-peak < 0.45 mV in every limb lead",
}

RHYTHMS: tuple[str, ...] = ("SR", "SBRAD", "STACH", "SARRH", "AFIB", "AFLT")

# At most one code of each group.
EXCLUSIVE_GROUPS: tuple[tuple[str, ...], ...] = (
    RHYTHMS,
    ("1AVB", "2AVB", "3AVB", "WPW"),
    ("CLBBB", "CRBBB", "IRBBB", "WPW"),
    ("IMI", "ILMI"),
    ("ASMI", "AMI"),
    ("INJAS", "INJIN", "ISC_", "ISCAL", "NST_"),
    ("LVH", "RVH", "LVOLT"),
    ("PAC", "PVC", "SARRH"),
)

_MI = ("IMI", "ILMI", "ASMI", "AMI")
_ST = ("INJAS", "INJIN", "ISC_", "ISCAL", "NST_")
_AV = ("1AVB", "2AVB", "3AVB")

# code -> codes it never occurs with (made symmetric below). Some exclusions are physiology
# (AFIB has no PR interval, so no AV block), others keep each statement's defining criterion
# measurable (LVH voltage criteria are void in LBBB).
_EXCLUDES: dict[str, tuple[str, ...]] = {
    "AFIB": (*_AV, "PAC", "LAO/LAE", "WPW"),
    "AFLT": (*_AV, "PAC", "PVC", "LAO/LAE", "WPW"),
    "STACH": ("1AVB", "LNGQT"),  # at a fast rate a long PR or QT buries the P wave in the T wave
    "2AVB": ("SBRAD", "STACH", "SARRH", "PAC", "PVC", "LAO/LAE"),
    "3AVB": ("SBRAD", "STACH", "SARRH", "PAC", "PVC", "LAO/LAE", "CLBBB", "CRBBB", "IRBBB", "LAFB"),
    "CLBBB": ("LAFB", "LVH", "RVH", "LVOLT", "LNGQT", *_MI, *_ST),
    "CRBBB": ("RVH", "ASMI", "AMI"),
    "IRBBB": ("RVH", "ASMI", "AMI"),
    "WPW": ("LAFB", "LVH", "RVH", "LVOLT", *_MI, *_ST),
    "LAFB": ("RVH", "IMI", "ILMI"),
    "RVH": _MI,
    # a scaled-down QRS would hide the terminal R', and be dwarfed by ST shifts and T waves
    "LVOLT": (*_MI, *_ST, "CRBBB", "IRBBB", "2AVB", "3AVB"),  # blocked P waves would rival the tiny QRS
}


def _exclusion_pairs() -> frozenset[frozenset[str]]:
    pairs = set()
    for group in EXCLUSIVE_GROUPS:
        pairs.update(frozenset(p) for p in combinations(group, 2))
    for code, others in _EXCLUDES.items():
        pairs.update(frozenset((code, o)) for o in others if o != code)
    return frozenset(pairs)


EXCLUDED_PAIRS = _exclusion_pairs()


def conflicts(codes: list[str] | set[str]) -> list[tuple[str, str]]:
    """The excluded pairs inside ``codes`` (empty when the set is compatible)."""
    codes = sorted(set(codes))
    out = [(a, b) for a, b in combinations(codes, 2) if frozenset((a, b)) in EXCLUDED_PAIRS]
    if "NORM" in codes and set(codes) - {"NORM", "SR"}:
        out.append(("NORM", ",".join(c for c in codes if c not in ("NORM", "SR"))))
    return out


def compatible(codes: set[str], code: str) -> bool:
    return not conflicts(set(codes) | {code})


def complete_labels(codes: list[str] | tuple[str, ...]) -> list[str]:
    """Check a requested label set and add the rhythm it implies (SR when none is named)."""
    codes = list(dict.fromkeys(c.strip() for c in codes if c.strip()))
    unknown = [c for c in codes if c not in CONDITIONS]
    if unknown:
        raise ECGVLMError(
            f"unsupported condition(s) {', '.join(unknown)}; supported: {', '.join(CONDITIONS)}"
        )
    if not any(c in RHYTHMS for c in codes):
        codes.append("SR")
    bad = conflicts(codes)
    if bad:
        text = "; ".join(f"{a} with {b}" for a, b in bad)
        raise ECGVLMError(f"incompatible conditions: {text}")
    return sorted(codes, key=list(CONDITIONS).index)


# Relative weights of the abnormal statements in the prior (roughly PTB-XL's ordering).
_RHYTHM_PRIOR = {"SR": 0.62, "SBRAD": 0.09, "STACH": 0.09, "SARRH": 0.06, "AFIB": 0.11, "AFLT": 0.03}
_FINDING_PRIOR = {
    "1AVB": 4, "2AVB": 1.5, "3AVB": 1.5, "CLBBB": 4, "CRBBB": 4, "IRBBB": 4, "LAFB": 5, "WPW": 1,
    "LVH": 6, "RVH": 1.5, "LAO/LAE": 3, "IMI": 6, "ASMI": 5, "AMI": 2, "ILMI": 2, "INJAS": 2,
    "INJIN": 1.5, "ISC_": 4, "ISCAL": 3, "NST_": 4, "LNGQT": 2, "LVOLT": 2, "PAC": 3, "PVC": 3,
}  # fmt: skip


def draw_labels(rng: np.random.Generator) -> list[str]:
    """A plausible label set: about a third NORM, otherwise a rhythm plus 1-3 compatible findings."""
    if rng.random() < 0.34:
        return ["NORM", "SR"]
    rhythms = list(_RHYTHM_PRIOR)
    p = np.array([_RHYTHM_PRIOR[r] for r in rhythms])
    chosen = {rhythms[rng.choice(len(rhythms), p=p / p.sum())]}
    findings = list(_FINDING_PRIOR)
    w = np.array([_FINDING_PRIOR[f] for f in findings], dtype=float)
    want = 1 + min(2, int(rng.poisson(0.6)))
    if chosen & {"AFIB", "AFLT", "SBRAD", "STACH", "SARRH"} and rng.random() < 0.4:
        want -= 1  # the rhythm alone is already an abnormal finding
    order = rng.choice(len(findings), size=len(findings), replace=False, p=w / w.sum())
    for i in order:
        if want <= 0:
            break
        if compatible(chosen, findings[i]):
            chosen.add(findings[i])
            want -= 1
    return sorted(chosen, key=list(CONDITIONS).index)
