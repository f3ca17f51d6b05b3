"""`ecgvlm evaluate` on the real tiny Mllama: well-formed predictions with superclass scores, and
resuming (after --limit, after a kill, after a line cut mid-write) gives the bytes of one
uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ecgvlm.cli import main as cli
from ecgvlm.errors import ECGVLMError
from ecgvlm.evaluate.generate import load_done_ids, read_rows, superclass_question
from ecgvlm.outputs import claim_output_dir
from ecgvlm.signals.vocab import SUPERCLASSES
from test_cnn_toydata import make_toy_dataset

ARGS = ["--batch-size", "4", "--max-new-tokens", "6", "--no-progress"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from ecgvlm.model.tiny import build_tiny

    root = tmp_path_factory.mktemp("gen")
    model = build_tiny(root / "tiny", seed=0)
    data = make_toy_dataset(root / "ds", {"test": 5}, size=64) / "test.json"
    ref = root / "ref"
    assert cli(["evaluate", "--model", str(model), "--data", str(data), "--out", str(ref), *ARGS]) == 0
    return {"model": model, "data": data, "ref": (ref / "predictions.jsonl").read_bytes()}


def _evaluate(setup: dict, out: Path, *extra: str) -> int:
    return cli(
        [
            "evaluate",
            "--model",
            str(setup["model"]),
            "--data",
            str(setup["data"]),
            "--out",
            str(out),
            *ARGS,
            *extra,
        ]
    )


def test_predictions_are_well_formed_with_superclass_scores(setup: dict) -> None:
    from ecgvlm.io import load_image
    from ecgvlm.model.infer import option_probs
    from ecgvlm.model.load import load_model_and_processor

    rows = json.loads(setup["data"].read_text())
    preds = [json.loads(line) for line in setup["ref"].decode().splitlines()]
    assert [p["id"] for p in preds] == [r["id"] for r in rows]
    for p, r in zip(preds, rows):
        assert set(p) == {"id", "task", "prompt", "prediction", "reference", "gold", "scores"}
        assert p["task"] == r["metadata"]["subtask"] and p["gold"] == r["metadata"]["gold"]
        assert p["reference"] == r["conversations"][1]["value"] and "<image>" not in p["prompt"]
        assert isinstance(p["prediction"], str)
        if p["task"] == "superclass":
            assert list(p["scores"]) == list(SUPERCLASSES)
            assert all(0.0 < s < 1.0 for s in p["scores"].values())
        else:
            assert p["scores"] is None

    # The stored score is P("yes") against P("no") to "Does this ECG show <name>?", same image.
    model, processor = load_model_and_processor(setup["model"])
    first = preds[0]
    image = load_image(setup["data"].parent, rows[0]["image"])
    for code in ("MI", "HYP"):
        p = option_probs(
            model, processor, [image], [superclass_question(code)], ["yes<|eot_id|>", "no<|eot_id|>"]
        )
        assert abs(p[0, 0] - first["scores"][code]) < 1e-5


def test_limit_then_rerun_gives_the_uninterrupted_file(setup: dict, tmp_path: Path) -> None:
    assert _evaluate(setup, tmp_path, "--limit", "6") == 0  # 6 is mid-batch on purpose
    assert len((tmp_path / "predictions.jsonl").read_bytes().splitlines()) == 6
    assert _evaluate(setup, tmp_path) == 0
    assert (tmp_path / "predictions.jsonl").read_bytes() == setup["ref"]
    assert _evaluate(setup, tmp_path) == 0  # nothing left: no duplicates appended
    assert (tmp_path / "predictions.jsonl").read_bytes() == setup["ref"]


def test_a_line_cut_mid_write_is_dropped_and_redone(setup: dict, tmp_path: Path) -> None:
    lines = setup["ref"].splitlines(keepends=True)
    claim_output_dir(tmp_path, "evaluate")  # as the killed run left it: its folder marked first
    (tmp_path / "predictions.jsonl").write_bytes(b"".join(lines[:4]) + lines[4][:25])
    assert load_done_ids(tmp_path / "predictions.jsonl") == {json.loads(x)["id"] for x in lines[:4]}
    assert (tmp_path / "predictions.jsonl").read_bytes() == b"".join(lines[:4])
    assert _evaluate(setup, tmp_path) == 0
    assert (tmp_path / "predictions.jsonl").read_bytes() == setup["ref"]


@pytest.mark.slow
def test_killed_evaluate_resumes_to_the_same_file(setup: dict, tmp_path: Path) -> None:
    base = ["evaluate", "--model", str(setup["model"]), "--data", str(setup["data"]),
            "--batch-size", "2", "--max-new-tokens", "6", "--no-progress"]  # fmt: skip
    cmd = [sys.executable, "-m", "ecgvlm", *base, "--out", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = tmp_path / "predictions.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cut = out.read_bytes().count(b"\n")
    assert 2 <= cut < 15, cut  # killed part-way
    assert cli([*base, "--out", str(tmp_path)]) == 0
    ids = [json.loads(x)["id"] for x in out.read_bytes().splitlines()]
    assert len(ids) == len(set(ids)) == 15
    # batch size 2 here, 4 in the reference: answers may differ through padding, ids and order may not
    ref_ids = [json.loads(x)["id"] for x in setup["ref"].splitlines()]
    assert ids == ref_ids
    whole = tmp_path / "whole"
    assert cli([*base, "--out", str(whole)]) == 0
    assert out.read_bytes() == (whole / "predictions.jsonl").read_bytes()


def test_changed_settings_or_bad_input_fail_in_one_line(setup: dict, tmp_path: Path, capsys) -> None:
    assert _evaluate(setup, tmp_path, "--limit", "1") == 0
    capsys.readouterr()
    assert cli(["evaluate", "--model", str(setup["model"]), "--data", str(setup["data"]), "--out", str(tmp_path),
                "--max-new-tokens", "7", "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "run.json" in err and "max_new_tokens" in err

    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": "a", "image": "x.png", "conversations": []}]')
    assert _evaluate(setup, tmp_path / "b", "--data", str(bad)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "bad.json: row 0" in err


def test_codes_scores_are_a_distribution(setup: dict, tmp_path: Path) -> None:
    assert _evaluate(setup, tmp_path, "--tasks", "superclass", "--scores", "codes", "--limit", "2") == 0
    preds = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 2 and all(p["task"] == "superclass" for p in preds)
    for p in preds:
        assert abs(np.sum(list(p["scores"].values())) - 1.0) < 1e-4


def test_evaluate_reads_a_real_synthetic_build(setup: dict, tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    assert (
        cli(["dataset", "build", "--source", "synth:30", "--out", str(ds), "--seed", "1", "--no-progress"])
        == 0
    )
    rows = json.loads((ds / "test.json").read_text())
    out = tmp_path / "run"
    assert cli(["evaluate", "--model", str(setup["model"]), "--data", str(ds / "test.json"), "--out", str(out),
                "--tasks", "superclass,yesno", *ARGS]) == 0  # fmt: skip
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == [
        r["id"] for r in rows if r["metadata"]["subtask"] in ("superclass", "yesno")
    ]
    assert any(p["task"] == "superclass" for p in preds)
    assert all((p["scores"] is not None) == (p["task"] == "superclass") for p in preds)


def test_slurm_array_shards_merged_equal_one_run(setup: dict, tmp_path: Path, monkeypatch, capsys) -> None:
    rows = json.loads(setup["data"].read_text())
    assert len(rows) > 2 * 4  # more than one batch per shard
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    for task in ("1", "0"):  # either order: the merge goes by the rows
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        assert _evaluate(setup, tmp_path) == 0
    assert "shard 0/2 from the Slurm job array" in capsys.readouterr().out
    one = (tmp_path / "predictions.shard-1-of-2.jsonl").read_bytes()
    assert 0 < len(one.splitlines()) < len(rows)
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    assert cli(["evaluate", "--merge", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "predictions.jsonl").read_bytes() == setup["ref"]
    # a shard that has not finished is named, and nothing is merged
    (tmp_path / "predictions.jsonl").unlink()
    (tmp_path / "predictions.shard-1-of-2.jsonl").write_bytes(b"".join(one.splitlines(True)[:-1]))
    assert cli(["evaluate", "--merge", "--out", str(tmp_path)]) == 2
    assert "rerun the shard" in capsys.readouterr().err
    assert not (tmp_path / "predictions.jsonl").exists()


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"metadata": {"type": "close"}}, "row 1 (id 'r1'): 'metadata.subtask' missing"),
        (
            {"metadata": {"subtask": "superclass", "gold": "MI"}},
            "row 1 (id 'r1'): 'metadata.gold' must be an object",
        ),
        ({"image": ["a.png", "b.png"]}, "row 1 (id 'r1'): 'image' must be one relative path"),
        (
            {"conversations": [{"from": "human", "value": "<image>\nq"}]},
            "row 1 (id 'r1'): no gpt/assistant turn",
        ),
    ],
)
def test_rows_unfit_for_evaluation_name_the_file_and_row(tmp_path: Path, change: dict, problem: str) -> None:
    good = {
        "id": "r0",
        "image": "a.png",
        "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "MI"}],
        "metadata": {"subtask": "superclass", "gold": {"superclasses": ["MI"]}},
    }
    path = tmp_path / "test.json"
    path.write_text(json.dumps([good, {**good, "id": "r1", **change}]))
    with pytest.raises(ECGVLMError) as e:
        read_rows(path)
    assert str(path) in str(e.value) and problem in str(e.value) and "\n" not in str(e.value)
    path.write_text(json.dumps([good]))
    assert [(r.id, r.task, r.question, r.answer, r.gold) for r in read_rows(path)] == [
        ("r0", "superclass", "q", "MI", {"superclasses": ["MI"]})
    ]
