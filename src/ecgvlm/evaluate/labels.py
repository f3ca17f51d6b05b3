"""Labels from free text: the benchmarks' label sets, ECGBench's substring rule, and strict extraction.

Two ways to read a label set out of a generated answer:

* ``ecgbench_labels(text, labels)`` — the published rule: a label is present when its code occurs
  in the text as a case-sensitive substring ("MI" is found in "AMI", "norm" is not "NORM").
* ``extract_labels(text, benchmark)`` — the strict reader: whole-token codes plus clinical phrases
  ("left bundle branch block" -> CLBBB -> CD, "anterior infarction" -> AMI -> MI), with negation
  ("no signs of infarction", "MI ruled out", "without ST elevation") and hedges ("cannot be ruled
  out" stays positive, as in PTB-XL's own statements).

Phrases map to PTB-XL SCP codes first; a benchmark's labels are then derived from the codes
(superclasses via the SCP table; CPSC/CODE-15 codes via ``SCP_TO_BENCHMARK``).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from ecgvlm.signals import vocab

BENCHMARK_LABELS: dict[str, list[str]] = {
    "ptbxl-super": list(vocab.SUPERCLASSES),
    "ptbxl-71": vocab.codes(),
    "cpsc": ["NORM", "AF", "I-AVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE"],
    "code15": ["1dAVb", "RBBB", "LBBB", "SB", "ST", "AF"],
}
CLASSIFICATION_BENCHMARKS = tuple(BENCHMARK_LABELS)

# SCP code -> the CPSC / CODE-15 label it implies.
SCP_TO_BENCHMARK: dict[str, dict[str, str]] = {
    "cpsc": {
        "NORM": "NORM",
        "AFIB": "AF",
        "1AVB": "I-AVB",
        "CLBBB": "LBBB",
        "CRBBB": "RBBB",
        "PAC": "PAC",
        "PVC": "PVC",
        "STD_": "STD",
        "STE_": "STE",
    },
    "code15": {"1AVB": "1dAVb", "CRBBB": "RBBB", "CLBBB": "LBBB", "SBRAD": "SB", "STACH": "ST", "AFIB": "AF"},
}


def labels_of(benchmark: str) -> list[str]:
    if benchmark not in BENCHMARK_LABELS:
        raise KeyError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARK_LABELS)}")
    return BENCHMARK_LABELS[benchmark]


# --------------------------------------------------------------------------------------------
# ECGBench's rule
# --------------------------------------------------------------------------------------------


def ecgbench_labels(text: str, labels: Iterable[str]) -> list[str]:
    """Labels whose code is a case-sensitive substring of ``text`` (ECGBench's published rule)."""
    text = text or ""
    return [label for label in labels if label in text]


# --------------------------------------------------------------------------------------------
# Strict reader: mentions with negation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mention:
    concept: str
    negated: bool
    hedged: bool
    start: int
    end: int
    text: str


# How much of an answer is read: a looping model can emit megabytes, and the longest answer a
# benchmark question needs is a few hundred words. Scores state the cap and how many answers hit it.
ANSWER_CAP_CHARS = 32_768
# How far (characters) a negation or hedge cue is looked for on either side of a mention, within
# its clause: "no definite evidence of an old anterior" is 40; 120 leaves room for long fillers.
SCOPE_CHARS = 120


def capped(text: str | None) -> str:
    """The part of an answer that is read: its first ``ANSWER_CAP_CHARS`` characters."""
    return (text or "")[:ANSWER_CAP_CHARS]


# Clause boundaries: a negation never reaches over these.
_CLAUSE_SPLIT = re.compile(r"[.;:!?,()\n]|\b(?:but|however|although|though|except|whereas)\b", re.I)
_PRE_NEGATION = re.compile(
    r"\b(?:no|not|without|absence\s+of|absent|negative\s+for|free\s+of|rules?\s+out|ruled\s+out|"
    r"excludes?|excluded|denies|neither|nor)\b",
    re.I,
)
_POST_NEGATION = re.compile(
    r"^[\s\w/-]{0,40}?\b(?:(?:is|was|are|has\s+been|been)\s+)?(?:ruled\s+out|excluded|absent|"
    r"not\s+(?:seen|present|found|observed|detected|confirmed))\b",
    re.I,
)
# "cannot be ruled out", "not excluded": the finding is possible, i.e. positive.
_DOUBLE_NEGATION = re.compile(
    r"\b(?:can\s*not|cannot|can't|could\s+not|not\s+be|is\s+not|not)\s+(?:be\s+)?(?:ruled\s+out|excluded)\b",
    re.I,
)
_HEDGE = re.compile(
    r"\b(?:possible|possibly|probable|probably|suspect(?:ed)?|suspicion|likely|cannot\s+be\s+ruled\s+out|"
    r"not\s+excluded|cannot\s+be\s+excluded|consider(?:ed)?|query|borderline|questionable|may)\b",
    re.I,
)

_LOC = {
    "inferoposterolateral": "IPLMI",
    "inferoposterior": "IPMI",
    "inferolateral": "ILMI",
    "anteroseptal": "ASMI",
    "septal": "ASMI",
    "anterolateral": "ALMI",
    "highlateral": "LMI",
    "lateral": "LMI",
    "anterior": "AMI",
    "inferior": "IMI",
    "posterior": "PMI",
}
_ISC_LOC = {
    "inferolateral": "ISCIL",
    "anteroseptal": "ISCAS",
    "septal": "ISCAS",
    "anterolateral": "ISCAL",
    "highlateral": "ISCLA",
    "lateral": "ISCLA",
    "anterior": "ISCAN",
    "inferior": "ISCIN",
}
_INJ_LOC = {
    "inferolateral": "INJIL",
    "anteroseptal": "INJAS",
    "septal": "INJAS",
    "anterolateral": "INJAL",
    "highlateral": "INJLA",
    "lateral": "INJLA",
    "inferior": "INJIN",
}
LOCATION_RE = (
    r"(?P<loc>infero-?postero-?lateral|infero-?posterior|infero-?lateral|antero-?septal|antero-?lateral|"
    r"high[\s-]+lateral|septal|lateral|anterior|inferior|posterior)"
)


def _loc_key(raw: str) -> str:
    return re.sub(r"[\s-]+", "", raw.lower())


# (regex, concept). A concept is an SCP code, a superclass name, or a callable of the match.
# Order matters: specific phrases come first and mask their span, so "incomplete right bundle
# branch block" is not read again as a complete one.
_FILLER_WORDS = r"(?:[\w()/-]+\s+){0,3}?"  # up to three filler words ("old", "subendocardial", "myocardial")
LEXICON: list[tuple[str, object]] = [
    # normal ECG
    (r"\bnormal\s+(?:ecg|ekg|electrocardiogram|tracing|study|resting\s+ecg)\b", "NORM"),
    (r"\b(?:ecg|ekg|tracing)\s*:?\s+(?:is\s+)?(?:probably\s+|otherwise\s+|essentially\s+)?normal\b", "NORM"),
    (r"\bwithin\s+normal\s+limits\b", "NORM"),
    (r"\bno\s+(?:definite\s+)?(?:pathology|abnormalit(?:y|ies))\b", "NORM"),
    # infarction with a location; subendocardial injury; ischaemia with a location
    (
        rf"{LOCATION_RE}\s+{_FILLER_WORDS}(?:subendocardial\s+)?injury\b",
        lambda m: _INJ_LOC.get(_loc_key(m["loc"]), "MI"),
    ),
    (
        rf"{LOCATION_RE}\s+{_FILLER_WORDS}(?:infarct(?:ion)?s?|mi|myocardial\s+(?:damage|injury|infarction)|heart\s+attack)\b",
        lambda m: _LOC.get(_loc_key(m["loc"]), "MI"),
    ),
    (
        rf"\b(?:infarct(?:ion)?|mi)\s+(?:of\s+|in\s+)?(?:the\s+)?{LOCATION_RE}\b",
        lambda m: _LOC.get(_loc_key(m["loc"]), "MI"),
    ),
    (
        rf"{LOCATION_RE}\s+{_FILLER_WORDS}(?:ischemi[ac]|ischaemi[ac]|myocardial\s+(?:affection|involvement))",
        lambda m: _ISC_LOC.get(_loc_key(m["loc"]), "ISC_"),
    ),
    (
        rf"\b(?:ischemi[ac]|ischaemi[ac])\s+(?:changes\s+)?in\s+(?:the\s+)?{LOCATION_RE}",
        lambda m: _ISC_LOC.get(_loc_key(m["loc"]), "ISC_"),
    ),
    (r"\b(?:myocardial\s+)?infarct(?:ion)?s?\b|\bheart\s+attack\b|\bmyocardial\s+(?:damage|injury)\b", "MI"),
    (r"\b(?:myocardial\s+)?(?:ischemi[ac]|ischaemi[ac])\b|\bsubendocardial\s+damage\b", "ISC_"),
    (r"\baneurysm\b", "ANEUR"),
    (r"\bdigitalis\b|\bdigoxin\b", "DIG"),
    (
        r"\belectrolyte|\bhypo(?:kal|calc)aemia|\bhyper(?:kal|calc)aemia|\bhypo(?:kal|calc)emia|\bhyper(?:kal|calc)emia",
        "EL",
    ),
    # conduction
    (
        r"\bincomplete\s+right\s+bundle[\s-]+branch\s+block\b|\bpartial\s+right\s+bundle[\s-]+branch\s+block\b|\birbbb\b",
        "IRBBB",
    ),
    (r"\bincomplete\s+left\s+bundle[\s-]+branch\s+block\b|\bilbbb\b", "ILBBB"),
    (r"\b(?:complete\s+)?right\s+bundle[\s-]+branch\s+block\b|\b(?:c)?rbbb\b", "CRBBB"),
    (r"\b(?:complete\s+)?left\s+bundle[\s-]+branch\s+block\b|\b(?:c)?lbbb\b", "CLBBB"),
    (
        r"\bleft\s+anterior\s+(?:fascicular\s+block|hemiblock)\b|\banterior\s+hemiblock\b|\blafb\b|\blahb\b",
        "LAFB",
    ),
    (
        r"\bleft\s+posterior\s+(?:fascicular\s+block|hemiblock)\b|\bposterior\s+hemiblock\b|\blpfb\b|\blphb\b",
        "LPFB",
    ),
    (
        r"\b(?:first|1st)[\s-]+degree\s+(?:av|a-v|atrioventricular|heart)\s+block\b|\b(?:av|a-v)\s+block\s+(?:type\s+)?(?:i|1)\b(?!i)|\b1\s*avb\b|\bprolonged\s+(?:pr|pq)\b|\b(?:pr|pq)\s+(?:interval\s+)?(?:is\s+)?prolonged\b",
        "1AVB",
    ),
    (
        r"\b(?:second|2nd)[\s-]+degree\s+(?:av|a-v|atrioventricular|heart)\s+block\b|\b(?:av|a-v)\s+block\s+(?:type\s+)?(?:ii|2)\b(?!i)|\bmobitz\b|\bwenckebach\b|\b2\s*avb\b",
        "2AVB",
    ),
    (
        r"\b(?:third|3rd)[\s-]+degree\s+(?:av|a-v|atrioventricular|heart)\s+block\b|\bcomplete\s+(?:av|a-v|atrioventricular|heart)\s+block\b|\b(?:av|a-v)\s+block\s+(?:type\s+)?(?:iii|3)\b|\b3\s*avb\b",
        "3AVB",
    ),
    (r"\bwolff?[\s-]+parkinson[\s-]+white\b|\bwpw\b|\bpre-?excitation\b", "WPW"),
    (
        r"\b(?:non-?specific\s+)?intraventricular\s+(?:conduction\s+)?(?:disturbance|disorder|delay|block)\b|\bivcd\b|\bnon-?specific\s+(?:incomplete\s+)?bundle[\s-]+branch\s+block\b",
        "IVCD",
    ),
    (r"\bbundle[\s-]+branch\s+block\b|\bconduction\s+(?:disturbance|defect|abnormality)\b", "CD"),
    # hypertrophy
    (r"\bvoltage\s+criteria\s+for\s+left\s+ventricular\s+hypertrophy\b", "VCLVH"),
    (r"\bleft\s+ventricular\s+hypertrophy\b|\blvh\b", "LVH"),
    (r"\bright\s+ventricular\s+hypertrophy\b|\brvh\b", "RVH"),
    (r"\bseptal\s+hypertrophy\b", "SEHYP"),
    (
        r"\bleft\s+atri(?:al|um)\s+(?:enlargement|overload|abnormality|hypertrophy)\b|\bhypertrophy\s+of\s+the\s+left\s+atrium\b|\bp[\s-]+(?:mitrale|sinistrocardiale)\b|\blae\b",
        "LAO/LAE",
    ),
    (
        r"\bright\s+atri(?:al|um)\s+(?:enlargement|overload|abnormality|hypertrophy)\b|\bhypertrophy\s+of\s+the\s+right\s+atrium\b|\bp[\s-]+(?:pulmonale|dextrocardiale)\b|\brae\b",
        "RAO/RAE",
    ),
    (r"\bhypertroph(?:y|ic)\b", "HYP"),
    # rhythm
    (r"\batrial\s+fibrillation(?:\s*/\s*flutter)?\b|\bafib\b|\ba-?fib\b|\baf\b", "AFIB"),
    (r"\batrial\s+flutter\b|\baflt?\b", "AFLT"),
    (r"\bparoxysmal\s+supraventricular\s+tachycardia\b|\bpsvt\b", "PSVT"),
    (r"\bsupraventricular\s+tachycardia\b|\bsvt\b", "SVTAC"),
    (r"\bsinus\s+tachycardi[ac]\b|\btachycardic\s+sinus\b", "STACH"),
    (r"\bsinus\s+bradycardi[ac]\b|\bbradycardic\s+sinus\b", "SBRAD"),
    (r"\bsinus\s+arrhythmia\b|\brespiratory\s+arrhythmia\b", "SARRH"),
    (r"\b(?:normal\s+)?sinus\s+rhythm\b|\brhythm\s+originating\s+from\s+the\s+sinus\s+node\b|\bnsr\b", "SR"),
    (r"\bpace(?:d|maker)\b|\bpacing\b", "PACE"),
    (r"\bsupraventricular\s+arrhythmia\b", "SVARR"),
    (r"\bbigemin(?:y|al)\b", "BIGU"),
    (r"\btrigemin(?:y|al)\b", "TRIGU"),
    (
        r"\b(?:premature\s+ventricular\s+(?:contraction|complex|beat)s?(?:\(s\))?|ventricular\s+(?:premature\s+(?:beat|complex|contraction)|extrasystole)s?(?:\(s\))?|pvcs?|vpbs?)\b",
        "PVC",
    ),
    (
        r"\b(?:premature\s+atrial\s+(?:contraction|complex|beat)s?(?:\(s\))?|(?:supraventricular|atrial)\s+(?:premature\s+(?:beat|complex|contraction)|extrasystole)s?(?:\(s\))?|pacs?|apcs?|svpbs?)\b",
        "PAC",
    ),
    (
        r"\bextrasystole(?:s|\(s\))?\b|\bpremature\s+(?:beats?|complex(?:es)?)\b|\bectopic\s+beats?\b",
        "PRC(S)",
    ),
    # waveform
    (
        r"\bprolonged\s+qt(?:c)?\b|\bqt(?:c)?\s+(?:interval\s+)?(?:is\s+)?(?:prolongation|prolonged|long)\b|\blong\s+qt\b",
        "LNGQT",
    ),
    (r"\blow\s+(?:qrs\s+)?(?:limb\s+lead\s+)?voltages?\b|\bperipheral\s+low\s+voltage\b", "LVOLT"),
    (r"\b(?:high|increased)\s+(?:qrs\s+)?voltages?\b|\bvoltages?\s+(?:are\s+)?high\b", "HVOLT"),
    (r"\bq\s*waves?\b|\bqs\s+complex(?:es)?\b", "QWAVE"),
    (r"\babnormal\s+qrs\b|\bqrs\s*(?:\(t\))?\s+abnormal", "ABQRS"),
    (
        r"\bst(?:[\s-]+segments?)?\s+(?:are\s+|is\s+)?(?:slightly\s+)?elevat(?:ed|ion)\b|\bst\s+elevation\b|\bste\b",
        "STE_",
    ),
    (
        r"\bst(?:[\s-]+segments?)?\s+(?:are\s+|is\s+)?(?:slightly\s+)?depress(?:ed|ion)\b|\bst[\s-]+t\s+depression\b|\bstd\b",
        "STD_",
    ),
    (r"\bnon-?specific\s+(?:abnormal\s+)?st(?!\s*[-&]\s*t)(?:\s+(?:segment\s+)?changes?)?\b", "NST_"),
    (
        r"\bt[\s-]+waves?\s+(?:are\s+)?(?:\w+\s+){0,2}?inver(?:ted|sion)\b|\binverted\s+t[\s-]+waves?\b|\bnegative\s+t[\s-]+waves?\b|\bt[\s-]+waves?\s+(?:\w+\s+)?negative\b",
        "INVT",
    ),
    (
        r"\b(?:low|flat(?:tened)?)\s+t[\s-]+waves?\b|\bt[\s-]+waves?\s+(?:are\s+)?(?:low|flat(?:tened)?|flattening)\b|\bt[\s-]+wave\s+flattening\b",
        "LOWT",
    ),
    (r"\bnon-?specific\s+(?:abnormal\s+)?t(?:[\s-]+wave)?(?:\s+(?:changes?|abnormalit(?:y|ies)))?\b", "NT_"),
    # ST-T changes written out (STTC superclass)
    (
        r"\bst[\s/-]*t\s+(?:changes?|abnormalit(?:y|ies))\b|\bst\s*&\s*t\s+abnormal(?:ities)?\b|\babnormal\s+st\s*&\s*t\b",
        "STTC",
    ),
    (r"\bnon-?diagnostic\s+t\b|\bnon-?specific\s+st[\s-]*(?:&\s*)?t\b", "NDT"),
    (
        r"\bt[\s-]+wave\s+(?:abnormalit(?:y|ies)|changes?)\b|\babnormal\s+t(?:[\s-]+waves?)?\b|\bt\s+abnormal\b",
        "TAB_",
    ),
]
_COMPILED = [(re.compile(p, re.I), c) for p, c in LEXICON]


class ClauseIndex:
    """Clause boundaries of one text, found once, so each mention's clause is a binary search.

    Scanning the text from its start for every mention made the reader quadratic in the text's
    length (a 40 kB unpunctuated answer took 100 s).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        splits = [(m.start(), m.end()) for m in _CLAUSE_SPLIT.finditer(text)]
        self._starts = [a for a, _ in splits]
        self._ends = [b for _, b in splits]

    def bounds(self, pos: int) -> tuple[int, int]:
        """(start, end) of the clause holding ``pos``: after the last split ending at or before it,
        up to the first split starting at or after it."""
        i = bisect_right(self._ends, pos)
        j = bisect_left(self._starts, pos)
        return (self._ends[i - 1] if i else 0), (self._starts[j] if j < len(self._starts) else len(self.text))


def _classify(clauses: ClauseIndex, start: int, end: int) -> tuple[bool, bool]:
    """(negated, hedged) for the span [start, end) from the words around it in its clause.

    Only ``SCOPE_CHARS`` either side are read: every cue is a few words long, and an unbounded reach
    over an unpunctuated clause is what made each mention cost the whole clause.
    """
    text = clauses.text
    c0, c1 = clauses.bounds(start)
    before = text[max(c0, start - SCOPE_CHARS) : start]
    after = text[end : min(c1, end + SCOPE_CHARS)]
    hedged = bool(_HEDGE.search(before) or _HEDGE.search(after))
    if _DOUBLE_NEGATION.search(after) or _DOUBLE_NEGATION.search(before):
        return False, True
    negated = bool(_PRE_NEGATION.search(before) or _POST_NEGATION.search(after))
    return negated, hedged


def find_mentions(text: str, lexicon: list[tuple[re.Pattern, object]] | None = None) -> list[Mention]:
    """Every lexicon phrase in ``text``, in text order, each with its negation and hedge flags.

    A matched span is blanked before the next (less specific) pattern runs. Only the first
    ``ANSWER_CAP_CHARS`` characters are read.
    """
    text = capped(text)
    clauses = ClauseIndex(text)
    work = text
    out: list[Mention] = []
    for pattern, concept in lexicon if lexicon is not None else _COMPILED:
        for m in pattern.finditer(work):
            name = concept(m) if callable(concept) else concept
            negated, hedged = _classify(clauses, m.start(), m.end())
            out.append(Mention(name, negated, hedged, m.start(), m.end(), text[m.start() : m.end()]))
        work = pattern.sub(lambda m: " " * (m.end() - m.start()), work)
    return sorted(out, key=lambda x: x.start)


def compile_lexicon(entries: list[tuple[str, object]]) -> list[tuple[re.Pattern, object]]:
    return [(re.compile(p, re.I), c) for p, c in entries]


def extract_concepts(text: str) -> set[str]:
    """Positive (non-negated) concepts: SCP codes plus generic names (MI, CD, HYP, STTC)."""
    return {m.concept for m in find_mentions(text) if not m.negated}


def _code_tokens(text: str, labels: Iterable[str]) -> tuple[set[str], set[str]]:
    """Label codes written as whole tokens (case-sensitive): (positive, negated)."""
    text = capped(text)
    clauses = ClauseIndex(text)
    pos, neg = set(), set()
    for label in labels:
        pattern = rf"(?<![\w-]){re.escape(label)}(?![\w-])"
        if label == "ST":  # CODE-15's sinus tachycardia, not the ST segment
            pattern += r"(?!\s*(?:&|/|segment|elevation|depression|change|abnormal|wave|T\b))"
        for m in re.finditer(pattern, text):
            negated, _ = _classify(clauses, m.start(), m.end())
            (neg if negated else pos).add(label)
    return pos, neg


def concepts_to_labels(concepts: Iterable[str], benchmark: str) -> set[str]:
    """Map SCP codes / generic names to a benchmark's label set."""
    concepts = set(concepts)
    if benchmark == "ptbxl-super":
        out = set(vocab.superclasses_of(concepts))
        out |= concepts & set(vocab.SUPERCLASSES)
        return out
    if benchmark == "ptbxl-71":
        return concepts & set(vocab.codes())
    table = SCP_TO_BENCHMARK[benchmark]
    return {table[c] for c in concepts if c in table}


def extract_labels(text: str, benchmark: str) -> set[str]:
    """The strict reader: a benchmark's labels asserted (not negated) by ``text``."""
    labels = labels_of(benchmark)
    pos, neg = _code_tokens(text, labels)
    from_phrases = concepts_to_labels(extract_concepts(text), benchmark)
    return ((pos | from_phrases) - (neg - pos)) & set(labels)


def gold_labels(gold: dict | None, benchmark: str, path: str | None = None) -> set[str]:
    """Gold labels from a predictions row's ``gold`` block (never parsed from the reference text).

    Uses ``gold["labels"]`` when given (a list in the benchmark's codes), else ``superclasses`` for
    ptbxl-super, else the SCP codes of ``gold["scp"]`` mapped to the benchmark.
    """
    from ecgvlm.errors import ECGVLMError

    if not isinstance(gold, dict):
        raise ECGVLMError(f"a row has no 'gold' block; strict scoring of {benchmark} needs one", path)
    labels = set(labels_of(benchmark))
    if isinstance(gold.get("labels"), list):
        return set(gold["labels"]) & labels
    if benchmark == "ptbxl-super" and isinstance(gold.get("superclasses"), list):
        return set(gold["superclasses"]) & labels
    if isinstance(gold.get("scp"), dict):
        return concepts_to_labels(gold["scp"].keys(), benchmark)
    raise ECGVLMError(f"gold block has none of 'labels', 'superclasses', 'scp' for {benchmark}", path)
