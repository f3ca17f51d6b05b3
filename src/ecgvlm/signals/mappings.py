"""Label mappings into the 71 PTB-XL SCP statements, and from SCP codes to benchmark label sets.

- CinC-2021 SNOMED-CT codes -> SCP codes: the table ``snomed_to_scp.tsv`` beside this module
  (one row per code; an empty ``scp`` column means "no SCP equivalent", with the reason in
  ``note``). Covers the 30 scored CinC-2021 codes and every code in the project's real records.
- SCP codes <-> benchmark labels: ``BENCHMARK_LABELS`` and ``BENCHMARK_TO_SCP``.

    >>> snomed_to_scp("426177001")
    ['SBRAD']
    >>> scp_to_benchmark({"CLBBB": 100, "SR": 0}, "cpsc")
    ['LBBB']
    >>> benchmark_to_scp("ST", "code15")
    ['STACH']
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from ecgvlm.errors import ECGVLMError
from ecgvlm.signals.vocab import SUPERCLASSES, statements


@dataclass(frozen=True)
class SnomedEntry:
    snomed: str
    abbr: str
    name: str
    scp: tuple[str, ...]  # empty: no SCP equivalent (see note)
    scored: bool  # one of the CinC-2021 scored diagnoses
    note: str


@cache
def snomed_table() -> dict[str, SnomedEntry]:
    """All rows of snomed_to_scp.tsv keyed by SNOMED-CT code (as a string)."""
    text = resources.files("ecgvlm.signals").joinpath("snomed_to_scp.tsv").read_text("utf-8")
    known = statements()
    table: dict[str, SnomedEntry] = {}
    for row in csv.DictReader(text.splitlines(), delimiter="\t"):
        scp = tuple(c for c in row["scp"].split(",") if c)
        bad = [c for c in scp if c not in known]
        if bad:  # a typo in the data file is a bug, not user input
            raise ValueError(f"snomed_to_scp.tsv: {row['snomed']} maps to unknown SCP codes {bad}")
        table[row["snomed"]] = SnomedEntry(
            snomed=row["snomed"],
            abbr=row["abbr"],
            name=row["name"],
            scp=scp,
            scored=row["scored"] == "yes",
            note=row["note"],
        )
    return table


def snomed_to_scp(code: str | int) -> list[str]:
    """SCP codes for one SNOMED-CT code; [] when it has no SCP equivalent or is not in the table."""
    entry = snomed_table().get(str(code).strip())
    return list(entry.scp) if entry else []


def snomed_codes_to_labels(codes: Iterable[str | int]) -> tuple[dict[str, float], list[str]]:
    """Map a record's SNOMED codes to PTB-XL-style labels (likelihood 100).

    Returns (labels, unmapped) where ``unmapped`` lists the codes that gave no SCP code, so a
    caller can keep them in meta rather than silently dropping them.
    """
    labels: dict[str, float] = {}
    unmapped: list[str] = []
    for code in codes:
        scp = snomed_to_scp(code)
        if not scp:
            unmapped.append(str(code).strip())
        for c in scp:
            labels[c] = 100.0
    return labels, unmapped


# Benchmark label sets, in the benchmarks' own order.
BENCHMARK_LABELS: dict[str, list[str]] = {
    "ptbxl-super": list(SUPERCLASSES),
    "cpsc": ["NORM", "AF", "I-AVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE"],
    "code15": ["1dAVb", "RBBB", "LBBB", "SB", "ST", "AF"],
}

# Benchmark label -> the SCP codes that imply it. The first code is the canonical one (what a
# generator should emit to produce the label). ptbxl-super is derived from the vocabulary.
_EXPLICIT: dict[str, dict[str, list[str]]] = {
    "cpsc": {
        "NORM": ["NORM"],
        "AF": ["AFIB"],
        "I-AVB": ["1AVB", "LPR"],  # a prolonged PR interval is the definition of first-degree block
        "LBBB": ["CLBBB"],  # CPSC's LBBB/RBBB are the complete blocks
        "RBBB": ["CRBBB"],
        "PAC": ["PAC"],
        "PVC": ["PVC"],
        "STD": ["STD_"],
        "STE": ["STE_"],
    },
    "code15": {
        "1dAVb": ["1AVB", "LPR"],
        "RBBB": ["CRBBB"],
        "LBBB": ["CLBBB"],
        "SB": ["SBRAD"],
        "ST": ["STACH"],
        "AF": ["AFIB"],
    },
}


def _superclass_table() -> dict[str, list[str]]:
    table: dict[str, list[str]] = {s: [] for s in SUPERCLASSES}
    for st in statements().values():
        if st.superclass:
            table[st.superclass].append(st.code)
    return table


BENCHMARK_TO_SCP: dict[str, dict[str, list[str]]] = {"ptbxl-super": _superclass_table(), **_EXPLICIT}


def _check_benchmark(benchmark: str) -> None:
    if benchmark not in BENCHMARK_LABELS:
        raise ECGVLMError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARK_LABELS)}")


def scp_to_benchmark(
    codes: Iterable[str] | Mapping[str, float], benchmark: str, min_likelihood: float = 0.0
) -> list[str]:
    """The benchmark labels implied by SCP codes (a list, or a labels dict filtered by likelihood).

    Returned in the benchmark's own label order.
    """
    _check_benchmark(benchmark)
    if isinstance(codes, Mapping):
        present = {c for c, p in codes.items() if p >= min_likelihood}
    else:
        present = set(codes)
    table = BENCHMARK_TO_SCP[benchmark]
    return [label for label in BENCHMARK_LABELS[benchmark] if present & set(table[label])]


def benchmark_to_scp(label: str, benchmark: str) -> list[str]:
    """SCP codes that imply a benchmark label; the first one is canonical."""
    _check_benchmark(benchmark)
    table = BENCHMARK_TO_SCP[benchmark]
    if label not in table:
        raise ECGVLMError(
            f"unknown {benchmark} label {label!r}; known: {', '.join(BENCHMARK_LABELS[benchmark])}"
        )
    return list(table[label])


# Machine-report statements (MIMIC-IV-ECG, GE/Philips wording) -> SCP codes. Conservative: only
# phrases whose meaning is unambiguous; longer phrases are tried first so "incomplete right bundle
# branch block" never also yields CRBBB. Hedged statements ("possible", "probable", "consider",
# "cannot rule out", "borderline") get likelihood 50, as PTB-XL scores uncertain statements lower.
_REPORT_PHRASES: list[tuple[str, list[str]]] = [
    ("incomplete right bundle branch block", ["IRBBB"]),
    ("incomplete left bundle branch block", ["ILBBB"]),
    ("right bundle branch block", ["CRBBB"]),
    ("left bundle branch block", ["CLBBB"]),
    ("left anterior fascicular block", ["LAFB"]),
    ("left posterior fascicular block", ["LPFB"]),
    ("1st degree a-v block", ["1AVB"]),
    ("first degree av block", ["1AVB"]),
    ("first degree a-v block", ["1AVB"]),
    ("2nd degree a-v block", ["2AVB"]),
    ("second degree av block", ["2AVB"]),
    ("complete heart block", ["3AVB"]),
    ("3rd degree a-v block", ["3AVB"]),
    ("atrial fibrillation", ["AFIB"]),
    ("atrial flutter", ["AFLT"]),
    ("sinus bradycardia", ["SBRAD"]),
    ("sinus tachycardia", ["STACH"]),
    ("sinus arrhythmia", ["SARRH"]),
    ("sinus rhythm", ["SR"]),
    ("supraventricular tachycardia", ["SVTAC"]),
    ("left ventricular hypertrophy", ["LVH"]),
    ("right ventricular hypertrophy", ["RVH"]),
    ("left atrial enlargement", ["LAO/LAE"]),
    ("right atrial enlargement", ["RAO/RAE"]),
    ("low qrs voltages", ["LVOLT"]),
    ("prolonged qt", ["LNGQT"]),
    ("ventricular premature complex", ["PVC"]),
    ("pvc(s)", ["PVC"]),
    ("atrial premature complex", ["PAC"]),
    ("pac(s)", ["PAC"]),
    ("inferior infarct", ["IMI"]),
    ("anteroseptal infarct", ["ASMI"]),
    ("anterior infarct", ["AMI"]),
    ("lateral infarct", ["LMI"]),
    ("wolff-parkinson-white", ["WPW"]),
    ("paced rhythm", ["PACE"]),
    ("normal ecg", ["NORM"]),
]
_HEDGES = ("possible", "probable", "consider", "cannot rule out", "borderline", "suggests", "?")


def report_to_scp(report: str) -> dict[str, float]:
    """SCP labels (likelihood 100, or 50 when hedged) from machine report statements.

    Statements are split on ';', '.' and newlines; each statement contributes its longest
    matching phrases.
    """
    labels: dict[str, float] = {}
    for statement in re.split(r"[;.\n]+", report.lower()):
        text = " ".join(statement.split())
        if not text or text.startswith(("no ", "not ")) or text == "abnormal ecg":
            continue
        likelihood = 50.0 if any(h in text for h in _HEDGES) else 100.0
        taken: list[tuple[int, int]] = []
        for phrase, codes in sorted(_REPORT_PHRASES, key=lambda pc: -len(pc[0])):
            start = text.find(phrase)
            if start < 0:
                continue
            end = start + len(phrase)
            if any(s < end and start < e for s, e in taken):
                continue  # inside a longer phrase already matched
            taken.append((start, end))
            for code in codes:
                labels[code] = max(labels.get(code, 0.0), likelihood)
    return labels
