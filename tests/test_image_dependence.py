"""The image-dependence check (evaluate/dependence.py): the loop detector, the rule on a collapsed
and a varied predictions file through `ecgvlm score` and `ecgvlm table`, and real models (the CNN,
the tiny Mllama) evaluated on real and on blank pages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ecgvlm.cli import main as cli
from ecgvlm.evaluate.dependence import MIN_ROWS, SCORE_STD_MAX, image_dependence, loops
from ecgvlm.signals.vocab import SUPERCLASSES
from test_cnn_toydata import make_toy_dataset

QUESTIONS = [f"Which superclasses does this ECG show? (wording {k})" for k in range(5)]


@pytest.mark.parametrize(
    "text",
    [
        "Sinus rhythm, normal axis, QTormal axis, QTormal axis, QTormal axis, QTormal ECG.",  # the issue's
        "Sinus rhythm. QTcccccc prolonged.",
        "normal normal normal ECG",
        "ST depression in leads ST depression in leads ST depression in leads V5",  # 4 words x 3
        "Sinus rhythm. Left axis. Left axis. LEFT AXIS.",  # case and punctuation do not hide it
    ],
)
def test_loop_detector_finds_loops(text: str) -> None:
    assert loops(text)


@pytest.mark.parametrize(
    "text",
    [
        "Sinus rhythm, normal axis, normal intervals. Normal ECG.",
        "Sinus rhythm. Left axis, left axis deviation.",  # a phrase twice is not a loop
        "QTccccc 470 ms",  # five letters in a row is not
        "Heart rate 1000000",  # digits are not letters
        "a b c d e a b c d e a b c d e",  # a five-word phrase is beyond the detector
        "",
    ],
)
def test_loop_detector_passes_normal_text(text: str) -> None:
    assert not loops(text)


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _collapsed_and_varied(root: Path, n: int = 125) -> tuple[Path, Path]:
    """Two predictions files on the same n pages: one like the issue's collapsed fine-tune (answer
    "MI" everywhere, per-class std 0.0002-0.010, most reports looping), one that reads the page."""
    rng = np.random.default_rng(0)
    mean = {"NORM": 0.06, "MI": 0.47, "STTC": 0.001, "CD": 0.31, "HYP": 0.16}
    jitter = {"NORM": 0.0002, "MI": 0.010, "STTC": 0.0002, "CD": 0.006, "HYP": 0.004}
    collapsed, varied = [], []
    for i in range(n):
        gold = [str(rng.choice(SUPERCLASSES))]
        q = QUESTIONS[i % len(QUESTIONS)]
        base = {"id": f"p{i}-s", "task": "superclass", "prompt": q, "reference": gold[0],
                "gold": {"superclasses": gold}}  # fmt: skip
        flat = {c: float(mean[c] + rng.normal(0, jitter[c])) for c in SUPERCLASSES}
        collapsed.append(base | {"prediction": "MI", "scores": flat})
        read = {
            c: float(np.clip((0.75 if c in gold else 0.15) + rng.normal(0, 0.1), 0, 1)) for c in SUPERCLASSES
        }
        varied.append(base | {"prediction": max(read, key=read.get), "scores": read})
        rep = {"id": f"p{i}-r", "task": "report", "prompt": "Write the report.", "gold": {},
               "reference": "Sinus rhythm. Inferior myocardial infarction.", "scores": None}  # fmt: skip
        loop = "Sinus rhythm, normal axis, QTormal axis, QTormal axis, QTormal axis, QTormal ECG."
        collapsed.append(rep | {"prediction": loop if i < 88 else "Sinus rhythm, normal ECG."})
        varied.append(rep | {"prediction": f"Sinus rhythm, rate {60 + i % 40}. {', '.join(gold)} pattern."})
    return _write(root / "collapsed" / "predictions.jsonl", collapsed), _write(
        root / "varied" / "predictions.jsonl", varied
    )


def test_score_flags_a_collapsed_model_and_passes_a_varied_one(tmp_path: Path, capsys) -> None:
    collapsed, varied = _collapsed_and_varied(tmp_path)
    out = {}
    for name, preds in (("collapsed", collapsed), ("varied", varied)):
        for extra in (["--benchmark", "ptbxl-super", "--mode", "ecgbench"],
                      ["--benchmark", "ptbxl-super", "--mode", "strict", "--bootstrap", "20"],
                      ["--benchmark", "report", "--judge", "findings"]):  # fmt: skip
            assert cli(["score", "--predictions", str(preds), *extra]) == 0
        out[name] = capsys.readouterr().out
    doc = json.loads((tmp_path / "collapsed" / "metrics.json").read_text())["benchmarks"]
    sup, rep = doc["ptbxl-super"]["strict"]["image_dependence"], doc["report"]["findings"]["image_dependence"]
    assert doc["ptbxl-super"]["ecgbench"]["image_dependence"] == sup  # both modes record it
    assert sup["independent"] is True and sup["distinct_answers"] == 1 and sup["majority_share"] == 1.0
    assert sup["answer_change_rate"] == 0.0 and sup["compared_within"] == "question"
    assert 0.005 < sup["max_score_std"] < 0.02 and sup["scores"]["NORM"]["std"] < 0.001
    assert rep["loops"] == 88 and rep["distinct_answers"] == 2 and "QTormal axis" in rep["loop_example"]
    assert rep["independent"] is False  # 70% one report: not the same answer everywhere, but loops
    assert out["collapsed"].count("WARNING: ptbxl-super") == 2  # ecgbench and strict
    assert f"WARNING: ptbxl-super [strict] of {collapsed}: the outputs" in out["collapsed"]
    assert "the outputs do not depend on the image" in out["collapsed"]
    assert f"WARNING: report [findings] of {collapsed}: 88 of 125 answers loop" in out["collapsed"]

    vdoc = json.loads((tmp_path / "varied" / "metrics.json").read_text())["benchmarks"]
    vsup = vdoc["ptbxl-super"]["strict"]["image_dependence"]
    assert vsup["independent"] is False and vsup["max_score_std"] > 0.2 and vsup["answer_change_rate"] > 0.5
    assert vdoc["report"]["findings"]["image_dependence"]["loops"] == 0
    assert "WARNING" not in out["varied"] and "-> depends on the image" in out["varied"]

    # `ecgvlm table` shows the check under Table I, with the warnings
    assert cli(["table", str(tmp_path / "collapsed"), str(tmp_path / "varied"), "--names", "ft,cnn",
                "--out", str(tmp_path / "t")]) == 0  # fmt: skip
    md = (tmp_path / "t" / "table.md").read_text()
    assert "| ptbxl-super | depends on the image | **NO** | yes |" in md
    assert "| report | looping answers | 88 | 0 |" in md
    assert "**WARNING: ft, ptbxl-super: the outputs do not depend on the image" in md
    assert "WARNING: cnn" not in md
    table = json.loads((tmp_path / "t" / "table.json").read_text())
    assert table["image_dependence"]["ft"]["ptbxl-super"]["independent"] is True
    assert len(table["warnings"]) == 2  # ft superclass collapse, ft report loops


def test_table_computes_the_check_for_runs_scored_before_it_existed(tmp_path: Path) -> None:
    collapsed, _ = _collapsed_and_varied(tmp_path, n=30)
    assert (
        cli(["score", "--predictions", str(collapsed), "--benchmark", "ptbxl-super", "--mode", "ecgbench"])
        == 0
    )
    metrics = tmp_path / "collapsed" / "metrics.json"
    doc = json.loads(metrics.read_text())
    del doc["benchmarks"]["ptbxl-super"]["ecgbench"]["image_dependence"]
    metrics.write_text(json.dumps(doc))
    assert cli(["table", str(tmp_path / "collapsed"), "--out", str(tmp_path / "t")]) == 0
    assert "| ptbxl-super | depends on the image | **NO** |" in (tmp_path / "t" / "table.md").read_text()


def test_question_wording_is_not_taken_for_the_image() -> None:
    """Same page, answers that follow the wording: flagged, since within one wording nothing moves;
    too few rows sharing a wording: not judged."""
    rows = []
    for i in range(20):
        k = i % 2
        rows.append({"prompt": QUESTIONS[k], "prediction": ["MI", "NORM"][k],
                     "scores": {"NORM": 0.2 + 0.5 * k, "MI": 0.7 - 0.5 * k}})  # fmt: skip
    dep = image_dependence(rows)
    assert dep["distinct_answers"] == 2 and dep["compared_within"] == "question"
    assert dep["independent"] is True and dep["max_score_std"] == 0.0
    assert image_dependence([])["independent"] is None and image_dependence([])["rows"] == 0
    few = image_dependence(rows[: MIN_ROWS - 1])
    assert few["independent"] is None and "too few" in few["reason"]
    unique = [r | {"prompt": f"q{i}"} for i, r in enumerate(rows)]  # no wording shared: all rows compared
    assert image_dependence(unique)["compared_within"] == "all rows"
    assert image_dependence(unique)["independent"] is False


def _blank_copy(data: Path, out: Path) -> Path:
    """The rows of ``data`` with every page replaced by an all-white page of the same size."""
    rows = json.loads(data.read_text())
    for r in rows:
        dest = out / r["image"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(data.parent / r["image"]) as im:
            Image.new("RGB", im.size, "white").save(dest)
    (out / data.name).write_text(json.dumps(rows))
    return out / data.name


def _check(run: Path) -> dict:
    preds = str(run / "predictions.jsonl")
    assert cli(["score", "--predictions", preds, "--benchmark", "ptbxl-super", "--mode", "ecgbench"]) == 0
    return json.loads((run / "metrics.json").read_text())["benchmarks"]["ptbxl-super"]["ecgbench"][
        "image_dependence"
    ]


@pytest.mark.slow  # 14 s alone, 27 s on a busy 2-core machine
def test_a_cnn_that_reads_pages_passes_and_is_flagged_on_blank_pages(tmp_path: Path) -> None:
    toy = make_toy_dataset(tmp_path / "toy", {"train": 80, "val": 8, "test": 30}, size=48)
    assert cli(["cnn", "train", "--data", str(toy), "--out", str(tmp_path / "cnn"), "--epochs", "8",
                "--image-size", "48", "--batch-size", "16", "--lr", "5e-3", "--no-progress"]) == 0  # fmt: skip
    blank = _blank_copy(toy / "test.json", tmp_path / "blank_pages")  # a run folder is the command's own
    for data, run in ((toy / "test.json", "real"), (blank, "blank")):
        assert cli(["cnn", "eval", "--model", str(tmp_path / "cnn"), "--data", str(data),
                    "--out", str(tmp_path / run), "--no-progress"]) == 0  # fmt: skip
    real, flat = _check(tmp_path / "real"), _check(tmp_path / "blank")
    # A clear margin over the flagging threshold, not an exact spread: 8 toy epochs give 0.09-0.15
    # depending on the machine's floating-point order.
    assert real["independent"] is False and real["max_score_std"] > 2 * SCORE_STD_MAX, real
    assert flat["independent"] is True and flat["max_score_std"] == 0.0 and flat["distinct_answers"] == 1


def test_the_tiny_mllama_on_blank_pages_is_flagged(tmp_path: Path) -> None:
    """`ecgvlm evaluate` on blank pages asked in several wordings: within a wording nothing moves."""
    from ecgvlm.model.tiny import build_tiny

    model = build_tiny(tmp_path / "tiny", seed=0)
    toy = make_toy_dataset(tmp_path / "toy", {"test": 12}, size=32)
    rows = [
        r for r in json.loads((toy / "test.json").read_text()) if r["metadata"]["subtask"] == "superclass"
    ]
    for i, r in enumerate(rows):  # two wordings, so the check must compare pages within each
        r["conversations"][0]["value"] = "<image>\n" + QUESTIONS[i % 2]
    (toy / "test.json").write_text(json.dumps(rows))
    blank = _blank_copy(toy / "test.json", tmp_path / "blank")
    assert cli(["evaluate", "--model", str(model), "--data", str(blank), "--out", str(tmp_path / "run"),
                "--scores", "codes", "--max-new-tokens", "2", "--batch-size", "6", "--no-progress"]) == 0  # fmt: skip
    dep = _check(tmp_path / "run")
    assert dep["compared_within"] == "question" and dep["questions"] == 2
    assert dep["independent"] is True and dep["max_score_std"] < 1e-6, dep


def test_demo_report_section_and_console_warnings_name_the_collapsed_column(tmp_path: Path) -> None:
    from ecgvlm.demo_report import image_warnings, reading_section
    from ecgvlm.evaluate.runs import load_run
    from ecgvlm.evaluate.table import run_dependence

    collapsed, varied = _collapsed_and_varied(tmp_path)
    for preds in (collapsed, varied):
        for extra in (["--benchmark", "ptbxl-super", "--mode", "ecgbench"], ["--benchmark", "report"]):
            assert cli(["score", "--predictions", str(preds), *extra]) == 0
    runs, names = [collapsed.parent, varied.parent], ["fine-tuned", "CNN"]
    lines, warned = reading_section(names, [run_dependence(load_run(r, n)) for r, n in zip(runs, names)])
    text = "\n".join(lines)
    assert "| superclass answers depend on the image | **NO** | yes |" in text
    assert (
        "| P(MI) mean ± std | 0.47 ± 0.01" in text
        and "| superclass: most common answer | MI (100%) |" in text
    )
    assert "| reports: looping | 88 / 125 | 0 / 125 |" in text
    assert image_warnings(runs, names) == warned and len(warned) == 2
    assert warned[0].startswith("fine-tuned, superclass: the outputs do not depend on the image")
    assert warned[1].startswith("fine-tuned, reports: 88 of 125 answers loop")
