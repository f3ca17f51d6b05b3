"""Clinical report text from a record's SCP labels and measurements.

The register follows the English PTB-XL reports ("Sinus rhythm. Left axis deviation. Incomplete
right bundle branch block. Otherwise normal ECG."): short statements, rhythm first, then
conduction, axis, hypertrophy, infarction, ischaemia and ST-T, then a conclusion. Every statement
comes from a label or a measurement; nothing is added that the record does not hold. The wording
(phrase variant, sentence or comma style, whether numbers are quoted) is drawn from ``rng`` so a
dataset sees many phrasings of the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Each code's phrase variants. Phrases of different codes never equal each other, and a phrase
# that contains another code's phrase ("incomplete right bundle branch block" contains "right
# bundle branch block") is matched longest-first by parse_codes(), so text can be read back.
PHRASES: dict[str, tuple[str, ...]] = {
    # rhythm
    "SR": ("sinus rhythm", "regular sinus rhythm"),
    "SBRAD": ("sinus bradycardia",),
    "STACH": ("sinus tachycardia",),
    "SARRH": ("sinus arrhythmia",),
    "AFIB": ("atrial fibrillation",),
    "AFLT": ("atrial flutter",),
    "SVTAC": ("supraventricular tachycardia",),
    "PSVT": ("paroxysmal supraventricular tachycardia",),
    "SVARR": ("supraventricular arrhythmia",),
    "PACE": ("paced rhythm, normally functioning pacemaker", "artificial pacemaker rhythm"),
    "BIGU": ("bigeminal pattern", "bigeminy"),
    "TRIGU": ("trigeminal pattern", "trigeminy"),
    # ectopy
    "PVC": ("premature ventricular contraction(s)", "ventricular extrasystole(s)"),
    "PAC": ("atrial premature complex(es)", "supraventricular extrasystole(s)"),
    "PRC(S)": ("premature complex(es)",),
    # AV conduction
    "1AVB": ("first degree AV block", "A-V block I"),
    "LPR": ("prolonged PR interval",),
    "2AVB": ("second degree AV block",),
    "3AVB": ("third degree AV block", "complete heart block"),
    # atria
    "LAO/LAE": ("left atrial enlargement", "left atrial overload"),
    "RAO/RAE": ("right atrial enlargement", "right atrial overload"),
    # ventricular conduction
    "LAFB": ("left anterior fascicular block", "left anterior hemiblock"),
    "LPFB": ("left posterior fascicular block", "left posterior hemiblock"),
    "CRBBB": ("complete right bundle branch block", "right bundle branch block"),
    "IRBBB": ("incomplete right bundle branch block",),
    "CLBBB": ("complete left bundle branch block", "left bundle branch block"),
    "ILBBB": ("incomplete left bundle branch block",),
    "IVCD": ("non-specific intraventricular conduction delay", "nonspecific intraventricular block"),
    "WPW": ("Wolff-Parkinson-White pattern", "pre-excitation (WPW)"),
    # voltage and hypertrophy
    "LVH": ("left ventricular hypertrophy",),
    "VCLVH": ("voltage criteria for left ventricular hypertrophy", "high voltages suggesting LVH"),
    "HVOLT": ("high QRS voltage",),
    "LVOLT": ("low QRS voltage", "peripheral low voltage"),
    "RVH": ("right ventricular hypertrophy",),
    "SEHYP": ("septal hypertrophy",),
    # QRS form
    "QWAVE": ("Q waves present", "pathological Q waves"),
    "ABQRS": ("abnormal QRS(T)", "QRS(T) abnormal"),
    # infarction
    "IMI": ("inferior myocardial infarction", "inferior infarction, likely old"),
    "ILMI": ("inferolateral myocardial infarction", "inferolateral infarction"),
    "IPMI": ("inferoposterior myocardial infarction", "inferoposterior infarction"),
    "IPLMI": ("inferoposterolateral myocardial infarction", "inferoposterolateral infarction"),
    "ASMI": ("anteroseptal myocardial infarction", "anteroseptal infarction of undetermined age"),
    "AMI": ("anterior myocardial infarction", "anterior infarction"),
    "ALMI": ("anterolateral myocardial infarction", "anterolateral infarction"),
    "LMI": ("lateral myocardial infarction", "high lateral infarction"),
    "PMI": ("posterior myocardial infarction", "posterior infarction"),
    # subendocardial injury
    "INJAS": ("subendocardial injury in anteroseptal leads",),
    "INJAL": ("subendocardial injury in anterolateral leads",),
    "INJIN": ("subendocardial injury in inferior leads",),
    "INJLA": ("subendocardial injury in lateral leads",),
    "INJIL": ("subendocardial injury in inferolateral leads",),
    # ischaemia
    "ISC_": ("non-specific ischemic ST-T changes", "ST-T changes, ischemia possible"),
    "ISCAL": ("ischemic ST-T changes in anterolateral leads", "anterolateral ischemia"),
    "ISCIN": ("ischemic ST-T changes in inferior leads", "inferior ischemia"),
    "ISCIL": ("ischemic ST-T changes in inferolateral leads", "inferolateral ischemia"),
    "ISCAS": ("ischemic ST-T changes in anteroseptal leads", "anteroseptal ischemia"),
    "ISCLA": ("ischemic ST-T changes in lateral leads", "lateral ischemia"),
    "ISCAN": ("ischemic ST-T changes in anterior leads", "anterior ischemia"),
    # ST-T
    "STD_": ("non-specific ST depression", "ST segment depression"),
    "STE_": ("non-specific ST elevation", "ST segment elevation"),
    "NST_": ("non-specific ST changes", "minor non-specific ST changes"),
    "NDT": ("non-diagnostic T wave abnormalities", "non-specific T wave flattening"),
    "NT_": ("non-specific T wave changes", "nonspecific T-wave change"),
    "INVT": ("inverted T waves", "T wave inversion"),
    "LOWT": ("low amplitude T waves", "T waves are low"),
    "TAB_": ("T wave abnormality", "abnormal T waves"),
    "DIG": ("ST-T changes compatible with digitalis effect", "digitalis effect"),
    "LNGQT": ("prolonged QT interval", "QT prolonged"),
    "EL": ("ST-T changes suggesting electrolyte disturbance or drug effect",),
    "ANEUR": ("ST-T changes compatible with ventricular aneurysm",),
    # normal
    "NORM": ("normal ECG",),
}

# The order statements appear in, as in clinical reports.
RHYTHM = ("SR", "SBRAD", "STACH", "SARRH", "AFIB", "AFLT", "SVTAC", "PSVT", "SVARR", "PACE", "BIGU", "TRIGU")
ECTOPY = ("PVC", "PAC", "PRC(S)")
AV = ("1AVB", "LPR", "2AVB", "3AVB")
ATRIA = ("LAO/LAE", "RAO/RAE")
CONDUCTION = ("LAFB", "LPFB", "CRBBB", "IRBBB", "CLBBB", "ILBBB", "IVCD", "WPW")
VOLTAGE = ("LVH", "VCLVH", "HVOLT", "LVOLT", "RVH", "SEHYP")
QRS_FORM = ("QWAVE", "ABQRS")
INFARCT = ("IMI", "ILMI", "IPMI", "IPLMI", "ASMI", "AMI", "ALMI", "LMI", "PMI")
INJURY = ("INJAS", "INJAL", "INJIN", "INJLA", "INJIL")
ISCHEMIA = ("ISC_", "ISCAL", "ISCIN", "ISCIL", "ISCAS", "ISCLA", "ISCAN")
STT = ("STD_", "STE_", "NST_", "NDT", "NT_", "INVT", "LOWT", "TAB_", "DIG", "LNGQT", "EL", "ANEUR")
ORDER = AV + ATRIA + CONDUCTION + VOLTAGE + QRS_FORM + INFARCT + INJURY + ISCHEMIA + STT

# Where a report starts: the rhythm (PTB-XL's order) or the diagnostic statements and conclusion.
REPORT_LEADS = ("rhythm", "diagnosis")

# Axis bands (degrees) and their words; the band is read from the measured axis.
AXIS_PHRASES: dict[str, tuple[str, ...]] = {
    "normal": ("normal axis", "normal axis type", "normal QRS axis"),
    "left": ("left axis deviation", "axis deviated to the left"),
    "right": ("right axis deviation", "axis deviated to the right"),
    "extreme": ("extreme axis deviation", "northwest axis"),
}


def axis_band(axis: float) -> str:
    """'normal' (-30..+90), 'left' (-90..-30), 'right' (+90..+180), 'extreme' (-180..-90)."""
    a = (float(axis) + 180.0) % 360.0 - 180.0
    if -30.0 <= a <= 90.0:
        return "normal"
    if -90.0 <= a < -30.0:
        return "left"
    if 90.0 < a <= 180.0:
        return "right"
    return "extreme"


@dataclass
class Report:
    text: str
    codes: list[str] = field(default_factory=list)  # the SCP codes the text states, in text order
    axis: str | None = None  # axis band stated, if any
    numbers: dict[str, int] = field(default_factory=dict)  # measurement -> value quoted in the text


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _signed(v: int) -> str:
    return f"+{v}" if v > 0 else str(v)


@dataclass
class _Draft:
    """A report being written: its parts in order, the codes stated and the part each is in."""

    rng: np.random.Generator
    labels: dict[str, float]
    parts: list[str] = field(default_factory=list)
    stated: list[str] = field(default_factory=list)
    stated_part: list[int] = field(default_factory=list)  # keeps ``codes`` in text order
    numbers: dict[str, int] = field(default_factory=dict)

    def add(self, code: str) -> None:
        phrase = _pick(self.rng, PHRASES[code])
        # PTB-XL's likelihoods for diagnostic statements (15, 35, 50, 80, 100) become the
        # hedges its cardiologists wrote: "possible ...", "probable ...". 0 means not given.
        lik = float(self.labels.get(code, 100) or 0)
        if code not in RHYTHM and 0 < lik <= 35:
            phrase = "possible " + phrase
        elif code not in RHYTHM and 35 < lik < 80:
            phrase = _pick(self.rng, ("probable ", "likely ")) + phrase
        self.parts.append(phrase)
        self.stated.append(code)
        self.stated_part.append(len(self.parts) - 1)


def _rhythm(d: _Draft, present: set[str], measurements: dict[str, float]) -> None:
    """Ectopy before or after the rhythm statements, the rate with the main one (sometimes)."""
    ectopy = [c for c in ECTOPY if c in present]
    ectopy_first = bool(d.rng.random() < 0.5)
    if ectopy_first:
        for c in ectopy:
            d.add(c)
    rhythm = [c for c in RHYTHM if c in present]
    for i, c in enumerate(rhythm):
        d.add(c)
        if i == 0 and "hr" in measurements and d.rng.random() < 0.4:
            hr = int(round(measurements["hr"]))
            d.numbers["hr"] = hr
            word = "ventricular rate" if c in ("AFIB", "AFLT") else "heart rate"
            d.parts[-1] += _pick(d.rng, (f" at {hr} bpm", f", {word} {hr}/min", f" ({word} {hr} bpm)"))
    if not ectopy_first:
        for c in ectopy:
            d.add(c)
    if not rhythm and "hr" in measurements and d.rng.random() < 0.5:
        hr = int(round(measurements["hr"]))
        d.numbers["hr"] = hr
        d.parts.append(f"heart rate {hr} bpm")


def _axis(d: _Draft, measurements: dict[str, float]) -> str | None:
    """The axis band (usually), with its degrees sometimes; returns the band stated."""
    if "axis" not in measurements or d.rng.random() >= 0.85:
        return None
    axis = axis_band(measurements["axis"])
    text = _pick(d.rng, AXIS_PHRASES[axis])
    if d.rng.random() < 0.3:
        deg = int(round(measurements["axis"]))
        d.numbers["axis"] = deg
        text += f" ({_signed(deg)} degrees)"
    d.parts.append(text)
    return axis


def _intervals(d: _Draft, measurements: dict[str, float]) -> None:
    if d.rng.random() >= 0.35:
        return
    iv = []
    for key, name in (("pr", "PR"), ("qrs", "QRS"), ("qt", "QT"), ("qtc", "QTc")):
        if key in measurements:
            v = int(round(measurements[key]))
            d.numbers[key] = v
            iv.append(f"{name} {v} ms")
    if iv:
        d.parts.append(("intervals: " if d.rng.random() < 0.5 else "") + ", ".join(iv))


def _conclusion(d: _Draft, present: set[str], lead: str) -> None:
    abnormal = [c for c in present if c in PHRASES and c not in RHYTHM and c != "NORM"]
    abnormal += [c for c in present if c in ("SBRAD", "STACH", "AFIB", "AFLT", "SVTAC", "PSVT", "SVARR")]
    if "NORM" in present:
        d.stated.append("NORM")
        d.stated_part.append(len(d.parts))
        d.parts.append("otherwise normal ECG" if abnormal else "normal ECG")
    elif abnormal and (d.rng.random() < 0.5 or lead == "diagnosis"):
        # A conclusion-first report always classifies the ECG, as machine reads do.
        d.parts.append(_pick(d.rng, ("abnormal ECG", "pathological ECG")))


def _diagnosis_first(d: _Draft, dx: tuple[int, int], end: int, diagnosis_only: bool) -> None:
    """Move parts dx[0]:dx[1] (diagnostic statements) and end: (the conclusion) to the front;
    ``diagnosis_only`` drops the rest (rhythm, axis, intervals) with their numbers."""
    order = [*range(*dx), *range(end, len(d.parts))]
    if not diagnosis_only:
        order += [*range(dx[0]), *range(dx[1], end)]
    else:
        d.numbers = {}
    d.parts = [d.parts[i] for i in order]
    new_place = {old: new for new, old in enumerate(order)}
    kept = [(new_place[i], c) for i, c in zip(d.stated_part, d.stated) if i in new_place]
    d.stated = [c for _, c in sorted(kept)]


def make_report(
    labels: dict[str, float],
    measurements: dict[str, float],
    rng: np.random.Generator,
    lead: str = "rhythm",
    diagnosis_only: bool = False,
) -> Report:
    """A clinical report stating exactly the record's SCP statements (and chosen measurements).

    ``lead="diagnosis"`` puts the diagnostic statements and the conclusion first, then rhythm,
    axis and intervals, and always states the conclusion (normal / abnormal ECG); the phrasing is
    drawn as in the default order. ``diagnosis_only`` (with that lead) stops after the conclusion:
    the report's opening words alone, empty text when the record has neither.
    """
    if lead not in REPORT_LEADS:
        raise ValueError(f"report lead must be one of {REPORT_LEADS}, got {lead!r}")
    if diagnosis_only and lead != "diagnosis":
        raise ValueError("diagnosis_only needs lead='diagnosis'")
    # The draws happen in text order (rhythm, conduction, axis, diagnoses, intervals, conclusion)
    # whatever the lead, so both leads phrase the same record alike.
    present = set(labels)
    d = _Draft(rng, labels)
    _rhythm(d, present, measurements)
    for c in AV + ATRIA:
        if c in present:
            d.add(c)
    axis = _axis(d, measurements)
    first_dx = len(d.parts)
    for c in ORDER[len(AV + ATRIA) :]:
        if c in present:
            d.add(c)
    last_dx = len(d.parts)
    _intervals(d, measurements)
    before_end = len(d.parts)
    _conclusion(d, present, lead)
    if lead == "diagnosis":
        _diagnosis_first(d, (first_dx, last_dx), before_end, diagnosis_only)
        axis = None if diagnosis_only else axis
    if not d.parts and diagnosis_only:
        return Report(text="")
    parts = d.parts or ["no SCP statement coded for this ECG"]
    if rng.random() < 0.5:
        text = ". ".join(p[0].upper() + p[1:] for p in parts) + "."
    else:
        text = ", ".join(parts)
        text = text[0].upper() + text[1:] + "."
    return Report(text=text, codes=d.stated, axis=axis, numbers=d.numbers)


def parse_codes(text: str) -> set[str]:
    """The SCP codes a report states, read back from its words (longest phrase first).

    The inverse of make_report's phrasing, used by tests and by anyone auditing a dataset.
    """
    low = text.lower()
    table = sorted(((p.lower(), c) for c, ps in PHRASES.items() for p in ps), key=lambda x: -len(x[0]))
    found: set[str] = set()
    for phrase, code in table:
        while phrase in low:
            i = low.index(phrase)
            # "otherwise normal ECG" and "normal ECG" both state NORM; "abnormal ECG" must not.
            if code == "NORM" and low[max(0, i - 2) : i] == "ab":
                low = low[:i] + "#" * len(phrase) + low[i + len(phrase) :]
                continue
            found.add(code)
            low = low[:i] + "#" * len(phrase) + low[i + len(phrase) :]
    return found
