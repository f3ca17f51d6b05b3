"""Scoring: ECGBench rules vs an independent sklearn computation, strict AUC/thresholds, negation, MCQ, measure."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from sklearn.metrics import f1_score, hamming_loss, roc_auc_score
from sklearn.preprocessing import MultiLabelBinarizer

from ecgvlm.cli import main as cli
from ecgvlm.evaluate.bootstrap import auc_per_class
from ecgvlm.evaluate.ecgbench import score_ecgbench
from ecgvlm.evaluate.labels import extract_labels
from ecgvlm.evaluate.mcq import extract_letter, score_mcq
from ecgvlm.evaluate.measure import extract_value, score_measure
from ecgvlm.evaluate.strict import best_thresholds, score_strict

SUPER = ["NORM", "MI", "STTC", "CD", "HYP"]


def published(preds: list[dict], labels: list[str]) -> dict:
    """ECGBench's intended rules, written out independently of the package."""
    gold = [[lab for lab in labels if lab in r["reference"]] for r in preds]
    pred = [[lab for lab in labels if lab in r["prediction"]] for r in preds]
    mlb = MultiLabelBinarizer()
    y_true = mlb.fit_transform(gold)
    known = set(mlb.classes_)
    y_pred = mlb.transform([[x for x in p if x in known] for p in pred])
    f1 = f1_score(y_true, y_pred, average=None, zero_division=0)
    aucs = []
    for i in range(y_true.shape[1]):
        try:
            aucs.append(roc_auc_score(y_true[:, i], y_pred[:, i]))
        except ValueError:
            aucs.append(float("nan"))
    return {
        "classes": list(mlb.classes_),
        "f1": round(100 * float(np.mean(f1)), 1),
        "hamming": round(100 * hamming_loss(y_true, y_pred), 1),
        "auc_plain": 100 * float(np.mean(aucs)),
        "auc_rest": round(100 * float(np.nanmean(aucs)), 1),
    }


def rows(pairs):
    return [
        {"id": str(i), "task": "superclass", "prediction": p, "reference": r}
        for i, (p, r) in enumerate(pairs)
    ]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_ecgbench_matches_published_rules_with_degenerate_class_and_lowercase():
    # CD is in every reference (degenerate); HYP in none (not a class); lower-case codes must not match;
    # "AMI" contains "MI" and counts, as the substring rule says.
    preds = rows(
        [
            ("NORM, CD", "NORM, CD"),
            ("mi, sttc, cd", "MI, STTC, CD"),  # lower case: no match
            ("AMI suspected. CD", "MI, CD"),
            ("STTC", "STTC, CD"),
            ("HYP, CD", "CD"),
            ("norm", "NORM, CD"),
            ("MI, STTC, CD", "MI, STTC, CD"),
            ("CD", "NORM, CD"),
        ]
    )
    got = score_ecgbench(preds, SUPER)
    want = published(preds, SUPER)
    assert got["classes"] == want["classes"] == ["CD", "MI", "NORM", "STTC"]
    assert got["f1"] == want["f1"]
    assert got["hamming"] == want["hamming"]
    assert math.isnan(want["auc_plain"]) and got["auc_plain_mean"] is None
    assert got["degenerate_classes"] == ["CD"]
    assert got["auc"] == want["auc_rest"]
    # the lower-case answers were read as empty
    assert got["per_class"]["MI"]["support"] == 3


def test_ecgbench_plain_mean_when_no_class_is_degenerate():
    preds = rows([("NORM", "NORM"), ("MI", "MI, CD"), ("CD", "CD"), ("NORM, STTC", "STTC"), ("", "NORM")])
    got, want = score_ecgbench(preds, SUPER), published(preds, SUPER)
    assert got["degenerate_classes"] == []
    assert got["auc"] == got["auc_plain_mean"] == round(want["auc_plain"], 1)
    assert (got["f1"], got["hamming"]) == (want["f1"], want["hamming"])


def test_ecgbench_cpsc_and_code15_codes():
    cpsc = ["NORM", "AF", "I-AVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE"]
    preds = rows(
        [("AF, PVC", "AF"), ("I-AVB", "I-AVB, RBBB"), ("af", "AF, STE"), ("STD", "STD"), ("NORM", "PAC")]
    )
    got, want = score_ecgbench(preds, cpsc), published(preds, cpsc)
    assert (got["f1"], got["hamming"], got["auc"]) == (want["f1"], want["hamming"], want["auc_rest"])


def test_mcq_letter_extraction_and_seeded_fallback():
    fallback = random.Random(42).choice(["A", "B", "C", "D"])
    preds = [
        {"id": "1", "prediction": "The answer is (B).", "gold": {"answer": "B"}},
        {"id": "2", "prediction": "C", "gold": {"answer": "C"}},
        {"id": "3", "prediction": "(D) Atrial flutter", "gold": {"answer": "A"}},
        {
            "id": "4",
            "prediction": "I cannot tell from this image.",
            "gold": {"answer": fallback, "options": ["x", "y", "z", "w"]},
        },
        {"id": "5", "prediction": "A. Sinus rhythm", "gold": {"answer": "A"}},
    ]
    assert [extract_letter(p["prediction"]) for p in preds] == ["B", "C", "D", None, "A"]
    assert extract_letter("A sinus rhythm is seen") is None
    bench = score_mcq(preds, "ecgbench")
    assert bench["accuracy"] == 80.0 and bench["unparsed"] == 1 and bench["rows"][3]["chosen"] == fallback
    strict = score_mcq(preds, "strict")
    assert strict["accuracy"] == 60.0


@pytest.mark.parametrize(
    "text, benchmark, expected",
    [
        ("No signs of infarction.", "ptbxl-super", set()),
        ("Sinus rhythm without ST elevation.", "cpsc", set()),
        ("MI ruled out. Normal ECG.", "ptbxl-super", {"NORM"}),
        ("normal ECG", "ptbxl-super", {"NORM"}),
        ("Left bundle branch block.", "ptbxl-super", {"CD"}),
        ("Left bundle branch block.", "ptbxl-71", {"CLBBB"}),
        ("Incomplete right bundle branch block.", "ptbxl-71", {"IRBBB"}),
        ("Anterior infarction, probably old.", "ptbxl-71", {"AMI"}),
        ("Anterior infarction, probably old.", "ptbxl-super", {"MI"}),
        ("Inferior myocardial damage cannot be ruled out.", "ptbxl-super", {"MI"}),
        ("Atrial fibrillation with rapid ventricular response.", "cpsc", {"AF"}),
        ("Atrial fibrillation.", "code15", {"AF"}),
        ("No ECG evidence of ventricular hypertrophy or ischemia.", "ptbxl-super", set()),
        ("MI, STTC", "ptbxl-super", {"MI", "STTC"}),
        ("mi, sttc", "ptbxl-super", set()),
        ("Sinus tachycardia, first degree AV block.", "code15", {"ST", "1dAVb"}),
        ("ST depression in V5-V6.", "code15", set()),
        ("ST depression in V5-V6.", "cpsc", {"STD"}),
        ("Abnormal ECG, left ventricular hypertrophy.", "ptbxl-super", {"HYP"}),
        ("Sinus rhythm. No AF.", "code15", set()),
    ],
)
def test_strict_reader_synonyms_and_negation(text, benchmark, expected):
    assert extract_labels(text, benchmark) == expected


def _strict_rows(n: int, seed: int, tie: bool = False) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gold = [c for c in SUPER if rng.random() < 0.35] or ["NORM"]
        scores = {c: float(np.clip((0.6 if c in gold else 0.3) + rng.normal(0, 0.25), 0, 1)) for c in SUPER}
        if tie:
            scores = {c: round(v, 1) for c, v in scores.items()}  # many ties
        text = ", ".join(c for c in SUPER if scores[c] >= 0.5) or "normal ECG"
        out.append(
            {
                "id": f"r{i}",
                "task": "superclass",
                "prediction": text,
                "reference": ", ".join(gold),
                "gold": {"superclasses": gold},
                "scores": scores,
            }
        )
    return out


def test_strict_auc_equals_sklearn_on_stored_scores():
    preds = _strict_rows(80, seed=1, tie=True)
    val = _strict_rows(60, seed=2)
    m = score_strict(preds, "ptbxl-super", val_preds=val, n_boot=200)
    y = np.array([[c in r["gold"]["superclasses"] for c in SUPER] for r in preds])
    s = np.array([[r["scores"][c] for c in SUPER] for r in preds])
    ref = [roc_auc_score(y[:, j], s[:, j]) for j in range(5)]
    for j, c in enumerate(SUPER):
        assert m["per_class"][c]["auc"] == round(100 * ref[j], 1)
    assert m["auc"] == round(100 * float(np.mean(ref)), 1)
    np.testing.assert_allclose(auc_per_class(y, s), ref, rtol=0, atol=1e-12)
    assert m["thresholds_from"].startswith("max F1 on 60")
    lo, hi = m["ci95"]["auc"]
    assert lo <= m["auc"] <= hi and hi - lo > 0
    # F1 at the chosen thresholds equals sklearn's
    th = np.array([m["per_class"][c]["threshold"] for c in SUPER])
    f1 = f1_score(y, s >= th, average=None, zero_division=0)
    assert m["f1"] == round(100 * float(np.mean(f1)), 1)


def test_thresholds_maximise_validation_f1():
    val = _strict_rows(50, seed=3, tie=True)
    y = np.array([[c in r["gold"]["superclasses"] for c in SUPER] for r in val])
    s = np.array([[r["scores"][c] for c in SUPER] for r in val])
    th = best_thresholds(y, s)
    for j in range(5):
        best = max(f1_score(y[:, j], s[:, j] >= t, zero_division=0) for t in np.unique(s[:, j]))
        assert f1_score(y[:, j], s[:, j] >= th[j], zero_division=0) == pytest.approx(best)


def test_strict_without_val_or_scores_says_so():
    preds = _strict_rows(30, seed=4)
    m = score_strict(preds, "ptbxl-super", n_boot=50)
    assert "default 0.5" in m["thresholds_from"]
    no_scores = [dict(r, scores=None) for r in preds]
    m2 = score_strict(no_scores, "ptbxl-super", n_boot=50)
    assert m2["auc"] is None and m2["predictions_from"].startswith("labels read")
    assert m2["f1"] == m2["text"]["f1"]


def test_measure_within_tolerance():
    assert extract_value("QRS duration is 0.12 s", "ms") == pytest.approx(120)
    assert extract_value("Heart rate: about 72 bpm, PR 160 ms", "bpm") == 72
    preds = [
        {
            "prediction": "The heart rate is 72 bpm.",
            "gold": {"quantity": "hr", "value": 70, "tolerance": 5, "unit": "bpm"},
        },
        {
            "prediction": "QRS 0.12 s",
            "gold": {"quantity": "qrs", "value": 100, "tolerance": 10, "unit": "ms"},
        },
        {
            "prediction": "Cannot measure.",
            "gold": {"quantity": "qrs", "value": 90, "tolerance": 10, "unit": "ms"},
        },
        {"prediction": "98 ms", "gold": {"quantity": "qrs", "value": 96, "tolerance": 10, "unit": "ms"}},
    ]
    m = score_measure(preds)
    assert m["accuracy"] == 50.0 and m["no_number"] == 1
    assert m["per_quantity"]["hr"] == {"n": 1, "accuracy": 100.0, "mae": 2.0, "no_number": 0}
    assert m["per_quantity"]["qrs"]["mae"] == 11.0


def test_cli_score_merges_modes_and_rejects_bad_input(tmp_path, capsys):
    p = tmp_path / "run" / "predictions.jsonl"
    p.parent.mkdir()
    p.write_text("".join(json.dumps(r) + "\n" for r in _strict_rows(40, seed=5)))
    base = ["score", "--predictions", str(p), "--benchmark", "ptbxl-super", "--bootstrap", "50"]
    assert cli(base + ["--mode", "ecgbench"]) == 0
    assert cli(base + ["--mode", "strict"]) == 0
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(doc["benchmarks"]["ptbxl-super"]) == {"ecgbench", "strict"}
    first = (tmp_path / "run" / "metrics.json").read_bytes()
    assert cli(base + ["--mode", "strict"]) == 0
    assert (tmp_path / "run" / "metrics.json").read_bytes() == first  # deterministic
    # --out naming the run folder means its metrics.json
    assert cli(base + ["--mode", "strict", "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "metrics.json").read_bytes() == first
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "task": "superclass"}\nnot json\n')
    capsys.readouterr()
    assert cli(["score", "--predictions", str(bad), "--benchmark", "ptbxl-super"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "line 2" in err and len(err.strip().splitlines()) == 1
    assert cli(["score", "--predictions", str(p), "--benchmark", "mcq"]) == 2
    assert "no rows with task 'mcq'" in capsys.readouterr().err


def test_weighted_auc_equals_sklearn_on_bootstrap_resamples():
    from ecgvlm.evaluate.bootstrap import WeightedAUC

    rng = np.random.default_rng(7)
    y = rng.random((60, 4)) < 0.4
    s = np.round(rng.random((60, 4)), 1)  # ties
    wauc = WeightedAUC(y, s)
    for _ in range(5):
        idx = rng.integers(0, 60, 60)
        want = [roc_auc_score(y[idx, j], s[idx, j]) for j in range(4)]
        np.testing.assert_allclose(wauc(np.bincount(idx, minlength=60)), want, atol=1e-12)


def test_strict_bad_rows_are_one_line_errors(tmp_path, capsys):
    rows = _strict_rows(5, seed=9)
    rows[2]["scores"]["MI"] = "high"
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli(["score", "--predictions", str(p), "--benchmark", "ptbxl-super", "--mode", "strict"]) == 2
    err = capsys.readouterr().err
    assert str(p) in err and "'r2'" in err and "numbers" in err
    rows = _strict_rows(5, seed=9)
    del rows[1]["gold"]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli(["score", "--predictions", str(p), "--benchmark", "ptbxl-super", "--mode", "strict"]) == 2
    assert "no 'gold' block" in capsys.readouterr().err
