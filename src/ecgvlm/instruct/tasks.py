"""Question/answer pairs for one ECG record, one function per task, many phrasings each.

Every answer is computed from the record's labels (SCP code -> likelihood) and measurements; a
task that the record cannot answer (no superclass, no measurement) returns None and the builder
asks another. ``gold`` holds the machine-readable answer so evaluation never parses gold text.

Measurement tolerances (stored in each row's gold.tolerance, in the quantity's unit):
heart rate +-max(5 bpm, 10 %), PR and QRS +-20 ms, QT and QTc +-30 ms, axis +-20 degrees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ecgvlm.instruct.report import axis_band, make_report
from ecgvlm.signals.record import MEASUREMENT_UNITS
from ecgvlm.signals.vocab import SUPERCLASSES, statements, superclasses_of

TASKS: tuple[str, ...] = ("report", "superclass", "scp", "mcq", "yesno", "measure", "diagnosis")
# What `dataset build` makes unless told: ECGInstruct's task families. "diagnosis" (the report's
# opening statement alone) is asked for by name, as the demo does.
DEFAULT_TASKS: tuple[str, ...] = TASKS[:6]
TASK_TYPE: dict[str, str] = {
    "report": "open",
    "diagnosis": "open",
    "superclass": "close",
    "scp": "close",
    "mcq": "close",
    "yesno": "close",
    "measure": "close",
}
SUPERCLASS_NAMES: dict[str, str] = {
    "NORM": "normal ECG",
    "MI": "myocardial infarction",
    "STTC": "ST/T change",
    "CD": "conduction disturbance",
    "HYP": "hypertrophy",
}
QUANTITIES: dict[str, str] = {
    "hr": "heart rate",
    "pr": "PR interval",
    "qrs": "QRS duration",
    "qt": "QT interval",
    "qtc": "corrected QT interval (QTc)",
    "axis": "QRS axis",
}


def tolerance(quantity: str, value: float) -> float:
    """The +- band within which a predicted measurement counts as correct."""
    if quantity == "hr":
        return round(max(5.0, 0.1 * abs(value)), 1)
    return {"pr": 20.0, "qrs": 20.0, "qt": 30.0, "qtc": 30.0, "axis": 20.0}[quantity]


@dataclass
class QA:
    subtask: str
    question: str
    answer: str
    gold: dict[str, Any] = field(default_factory=dict)  # task fields; gold["answer"] is always a str

    @property
    def type(self) -> str:
        return TASK_TYPE[self.subtask]


def known_codes(labels: dict[str, float]) -> list[str]:
    """The record's codes that are PTB-XL statements, in vocabulary order."""
    return [c for c in statements() if c in labels]


def _pick(rng: np.random.Generator, options: list[str] | tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


# ---------------------------------------------------------------- report
REPORT_Q = (
    "Please write a clinical report based on this ECG image.",
    "Write the clinical interpretation of this 12-lead ECG.",
    "Interpret this ECG as a cardiologist would in a report.",
    "What is your reading of this electrocardiogram? Give a short clinical report.",
    "Provide a structured ECG report: rhythm, axis, conduction, hypertrophy, ischemia and ST-T findings.",
    "Describe the findings of this ECG in the style of a clinical ECG report.",
    "Generate the diagnostic report for this ECG printout.",
    "Read this 12-lead ECG and summarise the findings.",
    "You are reviewing this ECG. Write your interpretation.",
    "Give a concise report of this electrocardiogram.",
)


def report_task(
    labels: dict[str, float], measurements: dict[str, float], rng: np.random.Generator, lead: str = "rhythm"
) -> QA | None:
    if not known_codes(labels):
        return None  # a report of an unlabelled record would have to invent its findings
    rep = make_report(labels, measurements, rng, lead=lead)
    gold = {"answer": rep.text, "stated_codes": rep.codes, "axis_band": rep.axis, "numbers": rep.numbers}
    return QA("report", _pick(rng, REPORT_Q), rep.text, gold)


# ---------------------------------------------------------------- diagnosis
DIAGNOSIS_Q = (
    "What is the diagnosis of this ECG?",
    "State the main diagnostic finding of this 12-lead ECG in words.",
    "Which diagnosis does this electrocardiogram show?",
    "Give the diagnostic statement and conclusion for this ECG.",
    "In one line, what does this ECG show?",
    "What is your diagnostic impression of this tracing?",
)


def diagnosis_task(
    labels: dict[str, float], measurements: dict[str, float], rng: np.random.Generator
) -> QA | None:
    """The diagnostic statements and conclusion in a report's words, without rhythm or numbers.

    The same words a diagnosis-first report opens with, so a model taught this short answer has
    learnt the choice that report's first words make.
    """
    if not known_codes(labels):
        return None
    rep = make_report(labels, measurements, rng, lead="diagnosis", diagnosis_only=True)
    if not rep.text:
        return None  # a rhythm-only record has no diagnosis to state
    return QA("diagnosis", _pick(rng, DIAGNOSIS_Q), rep.text, {"answer": rep.text, "stated_codes": rep.codes})


# ---------------------------------------------------------------- superclass
SUPERCLASS_Q = (
    "Which diagnostic superclasses does this ECG show? Choose among NORM, MI, STTC, CD and HYP.",
    "Classify this ECG into the PTB-XL diagnostic superclasses (NORM, MI, STTC, CD, HYP). List every one that applies.",
    "Which of these apply to the ECG: NORM (normal), MI (myocardial infarction), STTC (ST/T change), "
    "CD (conduction disturbance), HYP (hypertrophy)? Answer with the codes.",
    "Give the superclass labels of this ECG from NORM, MI, STTC, CD, HYP.",
    "What diagnostic categories (NORM, MI, STTC, CD, HYP) are present in this ECG image?",
    "Label this electrocardiogram with all matching superclasses: NORM, MI, STTC, CD, HYP.",
    "Multi-label question: which of NORM, MI, STTC, CD and HYP describe this ECG?",
    "Identify the diagnostic superclasses of this 12-lead ECG (codes: NORM, MI, STTC, CD, HYP).",
    "Which PTB-XL superclasses would you assign to this tracing? Options: NORM, MI, STTC, CD, HYP.",
)


def superclass_task(
    labels: dict[str, float], measurements: dict[str, float], rng: np.random.Generator
) -> QA | None:
    sup = superclasses_of(labels)
    if not sup:
        return None
    answer = ", ".join(sup)
    return QA("superclass", _pick(rng, SUPERCLASS_Q), answer, {"answer": answer, "labels": sup})


# ---------------------------------------------------------------- scp
SCP_Q = (
    "List the SCP-ECG statements (PTB-XL codes) that apply to this ECG.",
    "Which PTB-XL SCP codes describe this ECG? Give the codes separated by commas.",
    "Detect all SCP-ECG statements present in this 12-lead ECG: diagnostic, form and rhythm.",
    "Give the complete set of SCP codes for this electrocardiogram.",
    "What are the PTB-XL statement codes (for example SR, IMI, LVH) of this ECG?",
    "Annotate this ECG with its SCP-ECG codes.",
    "Which of the 71 PTB-XL statements are present on this ECG? Answer with codes.",
    "Name the rhythm, form and diagnostic statements of this ECG as SCP codes.",
    "Code this ECG using the SCP-ECG vocabulary of PTB-XL.",
)


def scp_task(labels: dict[str, float], measurements: dict[str, float], rng: np.random.Generator) -> QA | None:
    codes = known_codes(labels)
    if not codes:
        return None
    answer = ", ".join(codes)
    return QA("scp", _pick(rng, SCP_Q), answer, {"answer": answer, "labels": codes})


# ---------------------------------------------------------------- mcq
MCQ_Q = (
    "Which of the following findings is present on this ECG?",
    "Which one of these statements applies to this ECG?",
    "Select the finding shown by this electrocardiogram.",
    "Looking at this 12-lead ECG, which option is correct?",
    "Which diagnosis or finding does this ECG support?",
    "One of the following is seen on this tracing. Which one?",
    "Choose the statement that describes this ECG.",
    "Which of these is a feature of this ECG?",
)
MCQ_TAIL = (
    "Answer with the letter.",
    "Reply with A, B, C or D.",
    "Give the letter of the correct option.",
    "Answer with a single letter.",
)


def _group(code: str) -> str:
    st = statements()[code]
    if st.superclass:
        return st.superclass
    return "rhythm" if st.rhythm else "form"


def mcq_task(labels: dict[str, float], measurements: dict[str, float], rng: np.random.Generator) -> QA | None:
    codes = known_codes(labels)
    if not codes:
        return None
    correct = _pick(rng, codes)
    table = statements()
    absent = [c for c in table if c not in labels]
    same = [c for c in absent if _group(c) == _group(correct)]
    # Plausible distractors: same category first, then any statement the record lacks.
    pool = list(rng.permutation(same)) if same else []
    rest = [c for c in absent if c not in pool]
    pool = pool[:3] + list(rng.permutation(rest))[: max(0, 3 - len(pool[:3]))]
    options = [correct] + [str(c) for c in pool[:3]]
    order = rng.permutation(4)
    options = [options[i] for i in order]
    letters = "ABCD"
    letter = letters[options.index(correct)]
    texts = [table[c].description[0].upper() + table[c].description[1:] for c in options]
    lines = "\n".join(f"{letters[i]}. {t}" for i, t in enumerate(texts))
    question = f"{_pick(rng, MCQ_Q)}\n{lines}\n{_pick(rng, MCQ_TAIL)}"
    gold = {"answer": letter, "options": texts, "option_codes": options, "correct_code": correct}
    return QA("mcq", question, letter, gold)


# ---------------------------------------------------------------- yes/no
YESNO_Q = (
    "Does this ECG show {d}?",
    "Is there {d} on this ECG?",
    "Is {d} present in this 12-lead ECG? Answer yes or no.",
    "Can {d} be seen on this tracing?",
    "Yes or no: this electrocardiogram shows {d}.",
    "Does this tracing fit {d}?",
    "Would you report {d} for this ECG?",
    "Is this ECG consistent with {d} ({c})?",
    "Check this ECG for {d}. Is it present?",
)


def yesno_task(
    labels: dict[str, float], measurements: dict[str, float], rng: np.random.Generator
) -> QA | None:
    """Half the questions name an SCP statement, half a diagnostic superclass.

    The superclass half is the question that evaluation (ranking AUC from P(yes)) and the
    interpreter ask, so a model trained on these rows has seen the exact probe.
    """
    codes = known_codes(labels)
    if not codes:
        return None  # "no" would mean "not labelled", not "absent"
    if rng.random() < 0.5:
        return _superclass_yesno(labels, rng)
    table = statements()
    positive = bool(codes) and rng.random() < 0.5
    if positive:
        code = _pick(rng, codes)
    else:
        groups = {_group(c) for c in codes}
        absent = [c for c in table if c not in labels]
        near = [c for c in absent if _group(c) in groups]
        code = _pick(rng, near if near and rng.random() < 0.7 else absent)
    answer = "yes" if positive else "no"
    question = _pick(rng, YESNO_Q).format(d=table[code].description, c=code)
    return QA("yesno", question, answer, {"answer": answer, "condition": code, "level": "scp"})


def _superclass_yesno(labels: dict[str, float], rng: np.random.Generator) -> QA:
    present = superclasses_of(known_codes(labels))
    absent = [s for s in SUPERCLASSES if s not in present]
    positive = bool(present) and (not absent or rng.random() < 0.5)
    code = _pick(rng, present if positive else absent)
    answer = "yes" if positive else "no"
    question = _pick(rng, YESNO_Q).format(d=SUPERCLASS_NAMES[code], c=code)
    return QA("yesno", question, answer, {"answer": answer, "condition": code, "level": "superclass"})


# ---------------------------------------------------------------- measure
MEASURE_Q = (
    "What is the {q} on this ECG?",
    "Estimate the {q} from this ECG image.",
    "Measure the {q} of this 12-lead ECG.",
    "What {q} do you read on this tracing?",
    "Report the {q} of this electrocardiogram, with its unit.",
    "From the printout, how much is the {q}?",
    "Give the {q} of this ECG.",
    "Read the {q} off this ECG.",
)


def format_measure(quantity: str, value: float) -> str:
    v = int(round(value))
    if quantity == "hr":
        return f"{v} bpm"
    if quantity == "axis":
        return f"{'+' if v > 0 else ''}{v} degrees ({axis_band(value)} axis)"
    return f"{v} ms"


def measure_task(
    labels: dict[str, float], measurements: dict[str, float], rng: np.random.Generator
) -> QA | None:
    have = [k for k in QUANTITIES if k in measurements]
    if not have:
        return None
    q = _pick(rng, have)
    value = float(measurements[q])
    answer = format_measure(q, value)
    gold = {
        "answer": answer,
        "quantity": q,
        "value": round(value, 1),
        "tolerance": tolerance(q, value),
        "unit": MEASUREMENT_UNITS[q],
    }
    return QA("measure", _pick(rng, MEASURE_Q).format(q=QUANTITIES[q]), answer, gold)


TASK_FUNCS: dict[str, Callable[..., QA | None]] = {
    "report": report_task,
    "superclass": superclass_task,
    "scp": scp_task,
    "mcq": mcq_task,
    "yesno": yesno_task,
    "measure": measure_task,
    "diagnosis": diagnosis_task,
}


# ---------------------------------------------------------------- step by step
def reasoning(labels: dict[str, float], measurements: dict[str, float]) -> list[str]:
    """Reasoning steps grounded in the measurements and labels, in reading order."""
    table = statements()
    codes = known_codes(labels)
    rhythm = [table[c].description for c in codes if table[c].rhythm]
    m = {k: int(round(v)) for k, v in measurements.items()}
    steps = []
    line = "Rhythm: " + (", ".join(rhythm) if rhythm else "no rhythm statement coded")
    if "hr" in m:
        line += f"; heart rate {m['hr']} bpm (RR about {int(round(60000 / max(measurements['hr'], 1)))} ms)"
    steps.append(line + ".")
    iv = [f"{n} {m[k]} ms" for k, n in (("pr", "PR"), ("qrs", "QRS"), ("qt", "QT"), ("qtc", "QTc")) if k in m]
    if iv:
        steps.append("Intervals: " + ", ".join(iv) + ".")
    if "axis" in m:
        steps.append(f"Axis: {m['axis']} degrees, {axis_band(measurements['axis'])} axis.")
    findings = [f"{table[c].description} ({c})" for c in codes if not table[c].rhythm]
    steps.append("Findings: " + ("; ".join(findings) if findings else "none beyond the rhythm") + ".")
    sup = superclasses_of(codes)
    if sup:
        steps.append("Superclasses: " + ", ".join(f"{s} ({SUPERCLASS_NAMES[s]})" for s in sup) + ".")
    return steps


def step_by_step(qa: QA, labels: dict[str, float], measurements: dict[str, float]) -> QA:
    """The same question with an answer that reasons step by step before the final answer."""
    steps = reasoning(labels, measurements)
    body = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1))
    text = f"{body}\nAnswer: {qa.answer}"
    gold = dict(qa.gold, step_by_step=True)
    return QA(qa.subtask, qa.question + " Think step by step.", text, gold)


def make_questions(
    labels: dict[str, float],
    measurements: dict[str, float],
    tasks: list[str] | tuple[str, ...],
    n: int | None,
    rng: np.random.Generator,
    step_fraction: float = 0.0,
    report_lead: str = "rhythm",
) -> list[QA]:
    """``n`` questions drawn over ``tasks`` (each task once before any repeats); ``n=None``: one per task.

    Tasks the record cannot answer are skipped. A fraction ``step_fraction`` of answers get the
    step-by-step form; reports start as ``report_lead`` says (see ``make_report``).
    """
    if n is None:
        plan = list(tasks)
    else:
        # Each task once (in a random order) before any repeats, so the mix stays balanced.
        plan = []
        while len(plan) < 3 * n + len(tasks):
            plan += [tasks[i] for i in rng.permutation(len(tasks))]
    want = len(plan) if n is None else n
    funcs = {**TASK_FUNCS, "report": partial(report_task, lead=report_lead)}
    out: list[QA] = []
    for task in plan:
        if len(out) >= want:
            break
        qa = funcs[task](labels, measurements, rng)
        if qa is None or any(q.question == qa.question and q.answer == qa.answer for q in out):
            continue
        if step_fraction > 0 and TASK_TYPE[task] == "close" and rng.random() < step_fraction:
            qa = step_by_step(qa, labels, measurements)
        out.append(qa)
    return out


def superclass_names() -> dict[str, str]:
    return {s: SUPERCLASS_NAMES[s] for s in SUPERCLASSES}
