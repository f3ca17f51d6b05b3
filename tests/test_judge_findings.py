"""The offline findings judge on the 500 real PTB-XL reports of ECGBench, and on hand-made pairs."""

from __future__ import annotations

import re
import statistics

import pytest

from ecgvlm.evaluate.judges import score_reports
from ecgvlm.evaluate.judges.findings import FindingsJudge, coverage, extract_findings, load_report_texts, main


@pytest.fixture(scope="module")
def reports(fixtures_dir) -> list[str]:
    texts = load_report_texts(str(fixtures_dir / "ptbxl_report_test500.json"))
    assert len(texts) == 500
    return texts


def test_every_report_scores_100_against_itself(reports):
    judge = FindingsJudge()
    totals = [judge.score(t, t).total for t in reports]
    assert totals == [100.0] * 500


def test_swapping_sinus_rhythm_for_af_loses_the_rhythm_points(reports):
    judge = FindingsJudge()
    pairs = [
        (re.sub(r"(?i)sinus rhythm", "atrial fibrillation", t), t)
        for t in reports
        if re.search(r"(?i)sinus rhythm", t)
    ]
    assert len(pairs) > 300
    scores = [judge.score(c, r) for c, r in pairs]
    assert all(s.rhythm is not None and s.rhythm < 10 for s in scores)
    assert all(s.total < 100 for s in scores)
    assert statistics.mean(s.rhythm for s in scores) < 2.0
    # the other aspects are untouched by the swap
    assert all(s.diagnosis in (None, 10.0) and s.waveform in (None, 10.0) for s in scores)


def test_extraction_coverage(reports, capsys):
    cov = coverage(reports)
    assert cov["aspects"]["rhythm"] >= 95.0
    assert cov["aspects"]["diagnosis"] >= 80.0
    assert cov["aspects"]["waveform"] >= 65.0
    assert (
        main(
            [
                "--coverage",
                str(__import__("pathlib").Path(__file__).parent / "fixtures" / "ptbxl_report_test500.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "500 reports" in out and "rhythm" in out


@pytest.mark.parametrize(
    "candidate, reference, expect",
    [
        # synonyms count in full
        (
            "AF. Complete LBBB.",
            "Atrial fibrillation. Left bundle branch block.",
            {"rhythm": 10, "diagnosis": 10},
        ),
        # right finding, wrong location: partial
        (
            "Sinus rhythm. Anterior myocardial infarction.",
            "Sinus rhythm. Inferior infarction.",
            {"diagnosis": 5, "rhythm": 10},
        ),
        # negated in the candidate: missing
        ("Sinus rhythm. No signs of infarction.", "Sinus rhythm. Inferior infarction.", {"diagnosis": 0}),
        # aspects absent from the reference are not judged
        (
            "Sinus rhythm, ST depression in V5.",
            "Sinus rhythm.",
            {"rhythm": 10, "diagnosis": None, "waveform": None},
        ),
        # contradicted verdict
        ("Sinus rhythm. Abnormal ECG.", "Sinus rhythm. Normal ECG.", {"diagnosis": 0}),
        # an invented infarction in a judged aspect costs points
        (
            "Sinus rhythm. Normal ECG. Old anteroseptal infarction.",
            "Sinus rhythm. Normal ECG.",
            {"diagnosis": 6.67},
        ),
    ],
)
def test_judge_pairs(candidate, reference, expect):
    s = FindingsJudge().score(candidate, reference)
    for aspect, value in expect.items():
        assert getattr(s, aspect) == (None if value is None else pytest.approx(value, abs=0.01)), s


def test_length_is_ignored_and_refusals_fall_back():
    ref = "Sinus bradycardia, left axis deviation, first-degree AV block."
    padded = ref + " The recording quality is good and the patient was at rest during acquisition."
    assert FindingsJudge().score(padded, ref).total == 100.0
    refusal = "Sure, please provide the ECG report that you would like translated."
    s = FindingsJudge().score("Sinus rhythm.", refusal)
    assert s.diagnosis is None and s.total < 20


def test_findings_structure_and_score_reports():
    f = extract_findings("Sinus tachycardia, rate 112, QT prolonged, inferior infarction, probably old.")
    assert {
        ("rhythm", "rhythm", "sinus"),
        ("rhythm", "rate", "tachy"),
        ("waveform", "qt", "long"),
        ("diagnosis", "infarction", "inferior"),
        ("diagnosis", "infarction_age", "old"),
    } <= f
    preds = [
        {"id": "a", "prediction": "Sinus rhythm.", "reference": "Sinus rhythm."},
        {"id": "b", "prediction": "Atrial fibrillation.", "reference": "Sinus rhythm."},
    ]
    out = score_reports(preds, FindingsJudge())
    assert out["score"] == 50.0 and out["rhythm"] == 5.0 and out["diagnosis"] is None and out["n"] == 2
