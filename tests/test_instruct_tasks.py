"""Questions and answers re-derived from the labels and measurements they were made from."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ecgvlm.instruct.report import ATRIA, AV, AXIS_PHRASES, ORDER, axis_band, make_report, parse_codes
from ecgvlm.instruct.tasks import (
    MCQ_Q,
    MEASURE_Q,
    REPORT_Q,
    SCP_Q,
    SUPERCLASS_NAMES,
    SUPERCLASS_Q,
    TASKS,
    YESNO_Q,
    diagnosis_task,
    make_questions,
    tolerance,
)
from ecgvlm.signals.vocab import codes, statements, superclasses_of


def random_case(rng: np.random.Generator) -> tuple[dict[str, int], dict[str, float]]:
    """A label set drawn over all 71 statements and a random subset of measurements."""
    all_codes = codes()
    k = int(rng.integers(0, 6))
    labels = {
        str(c): int(rng.choice([0, 15, 50, 80, 100])) for c in rng.choice(all_codes, size=k, replace=False)
    }
    if rng.random() < 0.8:
        labels[str(rng.choice(["SR", "SBRAD", "STACH", "AFIB", "SARRH"]))] = 100
    m = {
        "hr": float(rng.uniform(35, 180)),
        "pr": float(rng.uniform(100, 320)),
        "qrs": float(rng.uniform(60, 180)),
        "qt": float(rng.uniform(280, 520)),
        "qtc": float(rng.uniform(340, 540)),
        "axis": float(rng.uniform(-179, 180)),
    }
    m = {k: v for k, v in m.items() if rng.random() < 0.8}
    return labels, m


def check_answer(qa, labels: dict[str, int], m: dict[str, float]) -> None:
    """Re-derive the answer of one question from the labels and measurements alone."""
    table = statements()
    present = [c for c in table if c in labels]
    answer = qa.answer.rsplit("Answer: ", 1)[-1] if qa.gold.get("step_by_step") else qa.answer
    assert answer == qa.gold["answer"]
    if qa.subtask == "superclass":
        assert answer.split(", ") == superclasses_of(labels) != []
    elif qa.subtask == "scp":
        assert set(answer.split(", ")) == set(present) and present
    elif qa.subtask == "mcq":
        letter = answer
        option_codes = qa.gold["option_codes"]
        assert len(set(option_codes)) == 4 and letter in "ABCD"
        assert option_codes["ABCD".index(letter)] in labels
        assert sum(c in labels for c in option_codes) == 1  # exactly one true option
        for i, c in enumerate(option_codes):
            assert f"{'ABCD'[i]}. {table[c].description[0].upper()}" in qa.question
    elif qa.subtask == "yesno" and qa.gold["level"] == "superclass":
        cond = qa.gold["condition"]
        assert answer == ("yes" if cond in superclasses_of(labels) else "no")
        assert SUPERCLASS_NAMES[cond] in qa.question
    elif qa.subtask == "yesno":
        assert qa.gold["level"] == "scp"
        assert answer == ("yes" if qa.gold["condition"] in labels else "no")
        assert table[qa.gold["condition"]].description in qa.question
    elif qa.subtask == "measure":
        q = qa.gold["quantity"]
        number = int(re.match(r"[+-]?\d+", answer).group())
        assert number == int(round(m[q]))
        assert abs(qa.gold["value"] - m[q]) <= 0.05
        assert qa.gold["tolerance"] == tolerance(q, m[q]) > 0
        if q == "axis":
            assert axis_band(m[q]) in answer
    elif qa.subtask == "diagnosis":
        # The diagnostic statements and the conclusion, nothing of rhythm, axis or intervals.
        dx = {c for c in ORDER[len(AV + ATRIA) :] if c in labels} | ({"NORM"} if "NORM" in labels else set())
        assert parse_codes(answer) == dx == set(qa.gold["stated_codes"])
        assert not re.search(r"\d", answer) and "rhythm" not in answer.lower()
        assert answer.lower().rstrip(".").endswith("ecg")  # the conclusion closes it
    elif qa.subtask == "report":
        # Every statement of the record is in the text and nothing else is.
        assert parse_codes(answer) == set(present) | ({"NORM"} if "NORM" in labels else set())
        for key, value in qa.gold["numbers"].items():
            assert value == int(round(m[key]))
            assert str(abs(value)) in answer
        if qa.gold["axis_band"]:
            band = axis_band(m["axis"])
            assert qa.gold["axis_band"] == band
            assert any(p.lower() in answer.lower() for p in AXIS_PHRASES[band])
        for band, phrases in AXIS_PHRASES.items():
            if band != qa.gold["axis_band"]:
                assert not any(re.search(rf"(^|[ ,.]){re.escape(p)}", answer.lower()) for p in phrases)


@pytest.mark.parametrize("step", [0.0, 1.0])
def test_every_answer_rederives_from_labels_and_measurements(step: float) -> None:
    rng = np.random.default_rng(11)
    seen = set()
    for _ in range(400):
        labels, m = random_case(rng)
        for qa in make_questions(labels, m, TASKS, None, rng, step_fraction=step):
            check_answer(qa, labels, m)
            seen.add(qa.subtask)
            if qa.gold.get("step_by_step"):
                assert qa.answer.startswith("Step 1: Rhythm")
                for key, name in (("pr", "PR"), ("qrs", "QRS")):
                    if key in m:
                        assert f"{name} {int(round(m[key]))} ms" in qa.answer
    assert seen == set(TASKS)


def test_every_statement_can_be_reported_and_read_back() -> None:
    rng = np.random.default_rng(0)
    for code in codes():
        for _ in range(6):
            rep = make_report({code: 100}, {}, rng)
            assert parse_codes(rep.text) == {code}, (code, rep.text)


def test_questions_per_record_and_balance() -> None:
    rng = np.random.default_rng(5)
    tasks_seen, yes = [], 0
    for _ in range(300):
        labels, m = random_case(rng)
        qas = make_questions(labels, m, TASKS, 4, rng)
        assert len(qas) == 4 if labels else len(qas) <= 4
        tasks_seen += [q.subtask for q in qas]
        yes += sum(q.gold["answer"] == "yes" for q in qas if q.subtask == "yesno")
    counts = {t: tasks_seen.count(t) for t in TASKS}
    assert min(counts.values()) > 100, counts  # all tasks used, none starved (~170 each if all apply)
    assert 0.35 < yes / counts["yesno"] < 0.6


def test_templates_are_many_and_distinct() -> None:
    for templates in (REPORT_Q, SUPERCLASS_Q, SCP_Q, MCQ_Q, YESNO_Q, MEASURE_Q):
        assert len(set(templates)) >= 8


def test_unanswerable_tasks_are_skipped_not_invented() -> None:
    rng = np.random.default_rng(1)
    # No label and no measurement: nothing can be asked without inventing the answer.
    assert make_questions({}, {}, TASKS, None, rng) == []
    assert make_questions({}, {}, TASKS, 4, rng) == []
    # Measurements only: measurement questions only.
    qas = make_questions({}, {"hr": 70.0}, TASKS, 4, rng)
    assert {q.subtask for q in qas} == {"measure"}
    # Few answerable tasks: fewer questions, never two identical rows.
    qas = make_questions({"SR": 0}, {}, TASKS, 8, rng)
    assert len({(q.question, q.answer) for q in qas}) == len(qas)


def test_report_register_matches_real_reports() -> None:
    rng = np.random.default_rng(2)
    text = make_report({"NORM": 100, "SR": 0}, {"axis": 40.0}, rng).text
    assert text.endswith("normal ECG.") and text[0].isupper()
    text = make_report({"IRBBB": 100, "SR": 0, "NORM": 100}, {"axis": -50.0}, np.random.default_rng(3)).text
    assert "otherwise normal ecg" in text.lower()


def test_likelihood_becomes_a_hedge() -> None:
    rng = np.random.default_rng(4)
    texts = [
        make_report({"SR": 0, "ASMI": 15, "LVH": 50, "IRBBB": 100}, {}, rng).text.lower() for _ in range(10)
    ]
    for t in texts:
        assert "possible anteroseptal" in t
        assert "probable left ventricular" in t or "likely left ventricular" in t
        assert "possible incomplete" not in t and "likely incomplete" not in t and "possible sinus" not in t


def test_diagnosis_lead_puts_the_statements_first_with_the_same_words():
    labels = {"SR": 100, "PVC": 100, "CRBBB": 100, "IMI": 50, "NORM": 100}
    meas = {"hr": 72, "axis": 30, "pr": 150, "qrs": 90, "qt": 380, "qtc": 410}
    for seed in range(20):
        plain = make_report(labels, meas, np.random.default_rng(seed))
        lead = make_report(labels, meas, np.random.default_rng(seed), lead="diagnosis")
        assert set(lead.codes) == set(plain.codes) == parse_codes(lead.text)
        assert lead.numbers == plain.numbers and lead.axis == plain.axis
        # the same words, reordered; the diagnostic statements first, codes listed in text order
        words = sorted(plain.text.lower().replace(".", ",").replace(",", " ").split())
        assert sorted(lead.text.lower().replace(".", ",").replace(",", " ").split()) == words
        assert lead.codes[:2] == ["CRBBB", "IMI"]
        low = lead.text.lower()
        assert [low.index(w) for w in ("right bundle", "infarction", "normal ecg", "sinus")] == sorted(
            low.index(w) for w in ("right bundle", "infarction", "normal ecg", "sinus")
        )
    # a conclusion-first report always classifies an abnormal ECG (the rhythm-first one at times)
    abnormal = {"SR": 100, "CLBBB": 100}
    verdicts = {
        lead: [
            any(
                w in make_report(abnormal, meas, np.random.default_rng(s), lead=lead).text.lower()
                for w in ("abnormal", "pathological")
            )
            for s in range(40)
        ]
        for lead in ("rhythm", "diagnosis")
    }
    assert all(verdicts["diagnosis"]) and 5 < sum(verdicts["rhythm"]) < 35
    with pytest.raises(ValueError, match="report lead"):
        make_report(labels, meas, np.random.default_rng(0), lead="axis")


def test_diagnosis_answer_is_the_opening_of_a_diagnosis_first_report():
    labels = {"SR": 100, "PVC": 100, "CLBBB": 100, "ISC_": 50}
    meas = {"hr": 72, "axis": 30, "pr": 150, "qrs": 150, "qt": 380, "qtc": 410}
    for seed in range(20):
        qa = diagnosis_task(labels, meas, np.random.default_rng(seed))
        # the question is drawn after the report, so the report's draws are the same
        report = make_report(labels, meas, np.random.default_rng(seed), lead="diagnosis")
        assert report.text.startswith(qa.answer[:-1]) and len(report.text) > len(qa.answer)
        assert qa.gold["stated_codes"] == ["CLBBB", "ISC_"] and qa.type == "open"
    assert diagnosis_task({"SR": 100}, meas, np.random.default_rng(0)) is None  # nothing to conclude
    atrial = diagnosis_task({"SR": 100, "AFIB": 100}, meas, np.random.default_rng(0))
    assert atrial.answer.lower() in ("abnormal ecg.", "pathological ecg.")  # the verdict alone
    with pytest.raises(ValueError, match="diagnosis_only"):
        make_report(labels, meas, np.random.default_rng(0), diagnosis_only=True)


def test_build_config_refuses_an_unknown_report_lead():
    from ecgvlm.errors import ECGVLMError
    from ecgvlm.instruct.config import BuildConfig

    assert BuildConfig(source="synth:4", report_lead="diagnosis").report_lead == "diagnosis"
    with pytest.raises(ECGVLMError, match="report lead must be one of rhythm, diagnosis"):
        BuildConfig(source="synth:4", report_lead="axis")
