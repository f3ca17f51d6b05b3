"""The offline findings judge: structured findings from both reports, agreement on three aspects.

Findings are (slot, value) pairs read with the strict phrase reader of ``labels.py`` (negation and
hedges included) plus a few extra phrases (axis, rate, MI age, wide QRS, short PR, R progression):

* rhythm:    rhythm (sinus / af / flutter / svt / junctional / paced), rate (brady / tachy / normal),
             sinus arrhythmia, ectopy (ventricular / atrial / unspecified), bigeminy / trigeminy;
* diagnosis: verdict (normal / abnormal), infarction, injury and ischaemia (with location), MI age,
             bundle branch blocks (complete / incomplete), fascicular blocks, AV block degree, WPW,
             IVCD, LVH / RVH / atrial enlargement, digitalis / electrolyte, aneurysm;
* waveform:  axis, PR, QRS width and shape, QT, voltage, Q waves, R progression, ST, T, P, U.

Scoring, per aspect the REFERENCE has findings in: each reference finding earns 1 when the
candidate has the same (slot, value), 0.5 when the candidate has the slot with another value
(an infarction in the wrong place, incomplete for complete RBBB), 0 when missing or — for the
exclusive slots rhythm, rate, verdict, axis — contradicted. Abnormal candidate findings in slots
the reference does not have count as half an error each (a hallucinated infarction costs points;
saying "normal axis" does not). Aspect = 10 x credit / (n_reference + 0.5 x n_extra). An aspect
absent from the reference is ``None`` (not judged). A reference with no findings at all (e.g. a
refusal) falls back to word-overlap F1 x 100 on the total.

Coverage over a report file: ``python -m ecgvlm.evaluate.judges.findings --coverage reports.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter

from ecgvlm.evaluate.judges.base import ASPECTS, JudgeScore, total_of
from ecgvlm.evaluate.labels import SCOPE_CHARS, ClauseIndex, capped, compile_lexicon, find_mentions

_MI_LOC = {
    "IMI": "inferior",
    "ASMI": "anteroseptal",
    "ILMI": "inferolateral",
    "AMI": "anterior",
    "ALMI": "anterolateral",
    "LMI": "lateral",
    "IPLMI": "inferoposterolateral",
    "IPMI": "inferoposterior",
    "PMI": "posterior",
    "MI": "unspecified",
}
_ISC_LOC = {
    "ISCIL": "inferolateral",
    "ISCAS": "anteroseptal",
    "ISCAL": "anterolateral",
    "ISCLA": "lateral",
    "ISCAN": "anterior",
    "ISCIN": "inferior",
    "ISC_": "unspecified",
}
_INJ_LOC = {
    "INJIL": "inferolateral",
    "INJAS": "anteroseptal",
    "INJAL": "anterolateral",
    "INJLA": "lateral",
    "INJIN": "inferior",
}

# concept -> findings (aspect, slot, value)
CONCEPT_FINDINGS: dict[str, list[tuple[str, str, str]]] = {
    "SR": [("rhythm", "rhythm", "sinus")],
    "STACH": [("rhythm", "rhythm", "sinus"), ("rhythm", "rate", "tachy")],
    "SBRAD": [("rhythm", "rhythm", "sinus"), ("rhythm", "rate", "brady")],
    "SARRH": [("rhythm", "rhythm", "sinus"), ("rhythm", "sinus_arrhythmia", "yes")],
    "AFIB": [("rhythm", "rhythm", "af")],
    "AFLT": [("rhythm", "rhythm", "flutter")],
    "SVTAC": [("rhythm", "rhythm", "svt"), ("rhythm", "rate", "tachy")],
    "PSVT": [("rhythm", "rhythm", "svt"), ("rhythm", "rate", "tachy")],
    "PACE": [("rhythm", "rhythm", "paced")],
    "SVARR": [("rhythm", "ectopy", "atrial")],
    "BIGU": [("rhythm", "pattern", "bigeminy")],
    "TRIGU": [("rhythm", "pattern", "trigeminy")],
    "PVC": [("rhythm", "ectopy", "ventricular")],
    "PAC": [("rhythm", "ectopy", "atrial")],
    "PRC(S)": [("rhythm", "ectopy", "unspecified")],
    "NORM": [("diagnosis", "verdict", "normal")],
    "IRBBB": [("diagnosis", "rbbb", "incomplete")],
    "CRBBB": [("diagnosis", "rbbb", "complete")],
    "ILBBB": [("diagnosis", "lbbb", "incomplete")],
    "CLBBB": [("diagnosis", "lbbb", "complete")],
    "LAFB": [("diagnosis", "fascicular", "anterior")],
    "LPFB": [("diagnosis", "fascicular", "posterior")],
    "1AVB": [("diagnosis", "av_block", "1"), ("waveform", "pr", "long")],
    "2AVB": [("diagnosis", "av_block", "2")],
    "3AVB": [("diagnosis", "av_block", "3")],
    "WPW": [("diagnosis", "wpw", "yes")],
    "IVCD": [("diagnosis", "ivcd", "yes")],
    "CD": [("diagnosis", "conduction", "unspecified")],
    "LVH": [("diagnosis", "lvh", "yes")],
    "VCLVH": [("diagnosis", "lvh", "yes"), ("waveform", "voltage", "high")],
    "RVH": [("diagnosis", "rvh", "yes")],
    "SEHYP": [("diagnosis", "septal_hypertrophy", "yes")],
    "LAO/LAE": [("diagnosis", "atrial_enlargement", "left")],
    "RAO/RAE": [("diagnosis", "atrial_enlargement", "right")],
    "HYP": [("diagnosis", "hypertrophy", "unspecified")],
    "DIG": [("diagnosis", "drug_electrolyte", "digitalis")],
    "EL": [("diagnosis", "drug_electrolyte", "electrolyte")],
    "ANEUR": [("diagnosis", "aneurysm", "yes")],
    "LNGQT": [("waveform", "qt", "long")],
    "LVOLT": [("waveform", "voltage", "low")],
    "HVOLT": [("waveform", "voltage", "high")],
    "QWAVE": [("waveform", "q_waves", "yes")],
    "ABQRS": [("waveform", "qrs", "abnormal")],
    "STE_": [("waveform", "st", "elevation")],
    "STD_": [("waveform", "st", "depression")],
    "NST_": [("waveform", "st", "nonspecific")],
    "INVT": [("waveform", "t", "inverted")],
    "LOWT": [("waveform", "t", "low")],
    "NT_": [("waveform", "t", "nonspecific")],
    "NDT": [("waveform", "st", "nonspecific"), ("waveform", "t", "nonspecific")],
    "TAB_": [("waveform", "t", "abnormal")],
    "STTC": [("waveform", "st", "abnormal"), ("waveform", "t", "abnormal")],
}
for _code, _loc in _MI_LOC.items():
    CONCEPT_FINDINGS[_code] = [("diagnosis", "infarction", _loc)]
for _code, _loc in _ISC_LOC.items():
    CONCEPT_FINDINGS[_code] = [("diagnosis", "ischemia", _loc)]
for _code, _loc in _INJ_LOC.items():
    CONCEPT_FINDINGS[_code] = [("diagnosis", "injury", _loc)]

# Phrases the SCP vocabulary has no code for. Concepts here are "aspect|slot|value" strings.
_EXTRA = compile_lexicon(
    [
        (
            r"\bextreme\s+(?:left\s+)?(?:electrical\s+)?axis(?:\s+deviation)?\b|\bextreme\s+left\b",
            "waveform|axis|left",
        ),
        (
            r"\bextreme\s+right\s+(?:electrical\s+)?axis\b|\bright\s+superior\s+axis\b|\bnorthwest\s+axis\b",
            "waveform|axis|superior",
        ),
        (
            r"\b(?:borderline\s+)?left(?:ward)?\s+(?:electrical\s+|qrs\s+)?(?:axis|type)\b|\baxis\s+(?:deviation\s+)?to\s+the\s+left\b|\blad\b|\bsagittal\s+type\b",
            "waveform|axis|left",
        ),
        (
            r"\bright(?:ward)?\s+(?:electrical\s+|qrs\s+)?(?:axis|type)\b|\baxis\s+(?:deviation\s+)?to\s+the\s+right\b|\brad\b",
            "waveform|axis|right",
        ),
        (
            r"\bnormal\s+(?:qrs\s+|electrical\s+)?(?:axis|type)\b|\bvertical\s+(?:axis|type)\b|\bhorizontal\s+(?:axis|type)\b|\bsteep\s+type\b|\bintermediate\s+type\b",
            "waveform|axis|normal",
        ),
        (r"\bjunctional\s+rhythm\b|\bnodal\s+rhythm\b", "rhythm|rhythm|junctional"),
        (r"\bventricular\s+tachycardia\b", "rhythm|rhythm|vt"),
        (
            r"\btachycardic\b|\b(?:rapid|fast)\s+ventricular\s+(?:response|rate)\b|\b(?<!sinus\s)tachycardia\b",
            "rhythm|rate|tachy",
        ),
        (
            r"\bbradycardic\b|\bslow\s+ventricular\s+response\b|\b(?<!sinus\s)bradycardia\b",
            "rhythm|rate|brady",
        ),
        (
            r"\bnormal\s+(?:heart\s+|ventricular\s+)?rate\b|\bmoderate\s+ventricular\s+response\b",
            "rhythm|rate|normal",
        ),
        (
            r"\b(?:wide|broad|widened|prolonged)\s+qrs\b|\bqrs\s+(?:complex(?:es)?\s+)?(?:is\s+|are\s+)?(?:wide|broad|widened|prolonged)\b",
            "waveform|qrs|wide",
        ),
        (r"\bshort\s+(?:pr|pq)\b|\b(?:pr|pq)\s+(?:interval\s+)?(?:is\s+)?short\b", "waveform|pr|short"),
        (
            r"\b(?:poor|delayed|absent|missing|reduced)\s+r[\s-]*(?:wave\s+)?progression\b|\br[\s-]*(?:wave\s+)?progression\b|\br[\s-]*wave\s+loss\b|\b(?:missing|absent)\s+r[\s-]*wave\b",
            "waveform|r_progression|poor",
        ),
        (r"\b(?:r-s|rs|r/s)\s+transition\b|\btransition\s+zone\b", "waveform|transition|shifted"),
        (
            r"\bp[\s-]*waves?\s+(?:broadening|widening)\b|\bbiphasic\s+p\b|\bp[\s-]*waves?\s+(?:are\s+)?(?:broad|wide|peaked|notched)\b",
            "waveform|p|abnormal",
        ),
        (r"\bu[\s-]*waves?\b", "waveform|u|present"),
        (r"\bpeaked\s+t[\s-]*waves?\b|\btall\s+t[\s-]*waves?\b", "waveform|t|peaked"),
        (
            r"\b(?:pathological|abnormal)\s+(?:ecg|ekg|tracing)\b|\b(?:ecg|ekg)\s+(?:is\s+)?(?:definitely\s+)?pathological\b|\bpathological\b",
            "diagnosis|verdict|abnormal",
        ),
    ]
)
_RATE = re.compile(
    r"\b(?:heart\s+rate|ventricular\s+rate|rate|hr)\s*(?:of|is|was|:|=|at)?\s*(?:about\s+)?(\d{2,3})\b", re.I
)
_MI_AGE = re.compile(
    r"\b(?:(old|older|chronic|prior|previous|status\s+post|healed)|(acute|recent|subacute|new|fresh|evolving|hyperacute)|"
    r"(age\s+undetermined|undetermined\s+age|uncertain\s+age|age\s+undeterminable|of\s+unknown\s+age))\b",
    re.I,
)
_DETAIL = {"infarction_age"}  # a detail of another finding, never an extra finding of its own
_EXCLUSIVE = {"rhythm", "rate", "verdict", "axis"}
_NEUTRAL = {
    ("verdict", "normal"),
    ("verdict", "abnormal"),
    ("rhythm", "sinus"),
    ("rate", "normal"),
    ("axis", "normal"),
}

Finding = tuple[str, str, str]  # aspect, slot, value


def extract_findings(text: str) -> set[Finding]:
    """The (aspect, slot, value) findings a report asserts; negated mentions are left out."""
    text = capped(text)
    clauses = ClauseIndex(text)
    out: set[Finding] = set()
    for m in find_mentions(text):
        if m.negated:
            continue
        for f in CONCEPT_FINDINGS.get(m.concept, []):
            out.add(f)
        if m.concept in _MI_LOC or m.concept in _INJ_LOC:
            c0, c1 = clauses.bounds(m.start)
            # the age usually follows in the next comma-clause ("inferior infarction, probably old")
            # (bounded like negation scope, so a long unpunctuated clause costs no more per mention)
            window = text[max(c0, m.start - SCOPE_CHARS) : min(c1, m.end + SCOPE_CHARS) + 40]
            age = _MI_AGE.search(window)
            if age:
                out.add(
                    (
                        "diagnosis",
                        "infarction_age",
                        "old" if age.group(1) else "acute" if age.group(2) else "undetermined",
                    )
                )
    for m in find_mentions(text, _EXTRA):
        if not m.negated:
            aspect, slot, value = m.concept.split("|")
            out.add((aspect, slot, value))
    for m in _RATE.finditer(text):
        bpm = int(m.group(1))
        if 20 <= bpm <= 300:
            out.add(("rhythm", "rate", "brady" if bpm < 60 else "tachy" if bpm > 100 else "normal"))
    # a tachy/brady rhythm name wins over a generic "normal rate" phrase elsewhere
    rates = {v for a, s, v in out if s == "rate"}
    if len(rates) > 1 and "normal" in rates:
        out.discard(("rhythm", "rate", "normal"))
    return out


def _aspect_score(ref: set[tuple[str, str]], cand: set[tuple[str, str]]) -> tuple[float, list[str]]:
    cand_slots: dict[str, set[str]] = {}
    for s, v in cand:
        cand_slots.setdefault(s, set()).add(v)
    ref_slots = {s for s, _ in ref}
    credit, notes = 0.0, []
    for s, v in sorted(ref):
        have = cand_slots.get(s, set())
        ref_values = {rv for rs, rv in ref if rs == s}
        if s in _EXCLUSIVE and v in have and not have <= ref_values:
            credit += 0.5  # e.g. "sinus rhythm" and "atrial fibrillation" both claimed
            notes.append(f"{s}: {v} and also {'/'.join(sorted(have - ref_values))}")
        elif v in have or (v == "unspecified" and have):
            credit += 1.0
        elif have and s not in _EXCLUSIVE:
            credit += 0.5
            notes.append(f"{s}: {v} vs {'/'.join(sorted(have))} (partial)")
        elif have:
            notes.append(f"{s}: {v} contradicted by {'/'.join(sorted(have))}")
        else:
            notes.append(f"{s}: {v} missing")
    extra = [(s, v) for s, v in cand if s not in ref_slots and (s, v) not in _NEUTRAL and s not in _DETAIL]
    notes += [f"extra {s}: {v}" for s, v in sorted(extra)]
    return 10.0 * credit / (len(ref) + 0.5 * len(extra)), notes


def _words(text: str) -> Counter:
    return Counter(re.findall(r"[a-z0-9]+", (text or "").lower()))


def _word_f1(a: str, b: str) -> float:
    wa, wb = _words(a), _words(b)
    common = sum((wa & wb).values())
    if not wa and not wb:
        return 1.0
    if not common:
        return 0.0
    p, r = common / sum(wa.values()), common / sum(wb.values())
    return 2 * p * r / (p + r)


class FindingsJudge:
    """Offline report judge; deterministic; see the module docstring for the rules."""

    name = "findings"

    def score(self, candidate: str, reference: str) -> JudgeScore:
        ref, cand = extract_findings(reference), extract_findings(candidate)
        if not ref:
            total = round(100.0 * _word_f1(candidate, reference), 2)
            return JudgeScore(None, None, None, total, "no findings in the reference; word-overlap F1")
        aspects: dict[str, float | None] = {}
        notes: list[str] = []
        for a in ASPECTS:
            r = {(s, v) for asp, s, v in ref if asp == a}
            if not r:
                aspects[a] = None
                continue
            c = {(s, v) for asp, s, v in cand if asp == a}
            aspects[a], n = _aspect_score(r, c)
            aspects[a] = round(aspects[a], 2)
            notes += [f"{a}: {x}" for x in n]
        return JudgeScore(
            **aspects, total=total_of(aspects), rationale="; ".join(notes) or "all reference findings matched"
        )


def coverage(reports: list[str]) -> dict:
    """Share of reports in which each aspect (and each slot) was found."""
    n = len(reports)
    per_aspect, per_slot, none = Counter(), Counter(), 0
    for text in reports:
        found = extract_findings(text)
        for a in {a for a, _, _ in found}:
            per_aspect[a] += 1
        for s in {s for _, s, _ in found}:
            per_slot[s] += 1
        none += not found
    return {
        "n": n,
        "aspects": {a: round(100.0 * per_aspect[a] / n, 1) for a in ASPECTS},
        "any_finding": round(100.0 * (n - none) / n, 1),
        "slots": {s: round(100.0 * c / n, 1) for s, c in per_slot.most_common()},
    }


def load_report_texts(path: str) -> list[str]:
    """Reference texts from an ECGBench report file (list of {conversation|conversations}) or predictions.jsonl."""
    from ecgvlm.errors import ECGVLMError
    from ecgvlm.io import read_jsonl

    if path.endswith(".jsonl"):
        return [r.get("reference") or "" for r in read_jsonl(path)]
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ECGVLMError(f"cannot read report file: {e}", path) from None
    texts = []
    for row in data if isinstance(data, list) else []:
        conv = row.get("conversation") or row.get("conversations") or []
        replies = [t.get("value", "") for t in conv if t.get("from") in ("assistant", "gpt")]
        if replies:
            texts.append(replies[-1])
    if not texts:
        raise ECGVLMError("no reports found (expected a list of rows with an assistant turn)", path)
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ecgvlm.evaluate.judges.findings",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--coverage", metavar="PATH", required=True, help="report file (.json list or predictions .jsonl)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    cov = coverage(load_report_texts(args.coverage))
    if args.json:
        print(json.dumps(cov, indent=2))
        return 0
    print(f"{cov['n']} reports; any finding: {cov['any_finding']}%")
    for a, v in cov["aspects"].items():
        print(f"  {a:<10} {v:5.1f}%")
    print("slots:")
    for s, v in cov["slots"].items():
        print(f"  {s:<20} {v:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
