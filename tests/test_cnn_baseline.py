"""The CNN baseline: it learns, saves/reloads exactly, is deterministic by seed, resumes, and
writes predictions that `ecgvlm score` can read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import roc_auc_score

from ecgvlm.cli import main as cli
from ecgvlm.errors import ECGVLMError
from ecgvlm.evaluate import cnn_train
from ecgvlm.evaluate.cnn_data import ImageSet, load_pixels
from ecgvlm.evaluate.cnn_model import CNNConfig, SmallResNet
from ecgvlm.evaluate.cnn_train import TrainOptions, load_cnn, predict, save_cnn, train
from ecgvlm.signals.vocab import SUPERCLASSES
from test_cnn_toydata import make_toy_dataset

SIZE = 48


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), size=SIZE)


def _opts(**kw) -> TrainOptions:
    base = {"epochs": 2, "batch_size": 16, "lr": 5e-3, "seed": 0}
    return TrainOptions(**(base | kw))


def test_cnn_learns_the_toy_set_and_eval_writes_scored_predictions(toy: Path, tmp_path: Path) -> None:
    cfg = train(toy, tmp_path / "run", _opts(epochs=25), image_size=SIZE, progress=False)
    losses = [h["train_loss"] for h in cfg["history"]]
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])
    assert cfg["best_val_macro_auc_superclass"] > 0.9

    rc = cli(["cnn", "eval", "--model", str(tmp_path / "run"), "--data", str(toy / "test.json"),
              "--out", str(tmp_path / "ev"), "--no-progress"])  # fmt: skip
    assert rc == 0
    preds = [json.loads(line) for line in (tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()]
    rows = json.loads((toy / "test.json").read_text())
    assert [p["id"] for p in preds] == [r["id"] for r in rows if r["metadata"]["subtask"] == "superclass"]
    for p in preds:
        assert set(p) == {"id", "task", "prompt", "prediction", "reference", "gold", "scores"}
        assert p["task"] == "superclass" and list(p["scores"]) == list(SUPERCLASSES)
        assert all(0.0 <= s <= 1.0 for s in p["scores"].values())
        assert p["prediction"] == ", ".join(c for c, s in p["scores"].items() if s >= 0.5)
        assert "<image>" not in p["prompt"]
    # Ranking AUC on held-out pages, computed independently from the written scores.
    aucs = [
        roc_auc_score([c in p["gold"]["superclasses"] for p in preds], [p["scores"][c] for p in preds])
        for c in SUPERCLASSES
    ]
    assert np.mean(aucs) > 0.9, aucs


def test_checkpoint_reload_gives_identical_outputs(toy: Path, tmp_path: Path) -> None:
    torch.manual_seed(3)
    config = CNNConfig(labels=list(SUPERCLASSES), image_size=SIZE)
    model = SmallResNet(config)
    model.train()
    x = torch.randn(8, 3, SIZE, SIZE)
    model(x)  # move the BatchNorm running statistics off their defaults
    save_cnn(tmp_path, model.state_dict(), {"model": config.to_dict()})
    reloaded = load_cnn(tmp_path)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))
    pixels = load_pixels(
        ImageSet(toy, [f"images/toy-{i:04d}.png" for i in range(5)], np.zeros((5, 0))), SIZE, False
    )
    assert np.array_equal(predict(model, pixels), predict(reloaded, pixels))
    assert not (tmp_path / "model.safetensors").read_bytes().startswith(b"PK")  # not a pickle/zip


def test_training_is_deterministic_by_seed(toy: Path, tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(toy, tmp_path / name, _opts(seed=seed), image_size=SIZE, progress=False)
        runs[name] = [(tmp_path / name / f).read_bytes() for f in ("model.safetensors", "config.json")]
    assert runs["a"] == runs["b"]
    assert runs["a"][0] != runs["c"][0]


def test_killed_training_resumes_to_the_same_weights(toy: Path, tmp_path: Path, monkeypatch) -> None:
    train(toy, tmp_path / "whole", _opts(epochs=3), image_size=SIZE, progress=False)

    real_write = cnn_train.atomic_write_json
    calls = {"n": 0}

    def write_then_die(path, obj, *a, **k):
        real_write(path, obj, *a, **k)
        if Path(path).name == "train_state.json":
            calls["n"] += 1
            if calls["n"] == 2:  # after the second epoch's checkpoint
                raise KeyboardInterrupt

    monkeypatch.setattr(cnn_train, "atomic_write_json", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(toy, tmp_path / "cut", _opts(epochs=3), image_size=SIZE, progress=False)
    assert not (tmp_path / "cut" / "config.json").exists()
    monkeypatch.setattr(cnn_train, "atomic_write_json", real_write)
    cfg = train(toy, tmp_path / "cut", _opts(epochs=3), image_size=SIZE, progress=False)
    assert len(cfg["history"]) == 3
    a, b = (
        load_file(tmp_path / "whole" / "model.safetensors"),
        load_file(tmp_path / "cut" / "model.safetensors"),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "whole" / "config.json").read_bytes() == (
        tmp_path / "cut" / "config.json"
    ).read_bytes()
    assert not (tmp_path / "cut" / "train_state.json").exists()

    # A different option set must not silently continue someone else's run.
    (tmp_path / "cut2").mkdir()
    for f in ("train_state.json", "train_state.safetensors"):
        (tmp_path / "cut2" / f).write_bytes(b"")
    with pytest.raises(ECGVLMError, match="unreadable training checkpoint"):
        train(toy, tmp_path / "cut2", _opts(epochs=3), image_size=SIZE, progress=False)
    (tmp_path / "cut" / "train_state.json").write_text(json.dumps({"options": {}, "model": {}, "meta": {}}))
    (tmp_path / "cut" / "train_state.safetensors").write_bytes(
        (tmp_path / "whole" / "model.safetensors").read_bytes()
    )
    with pytest.raises(ECGVLMError, match="different options"):
        train(toy, tmp_path / "cut", _opts(epochs=3), image_size=SIZE, progress=False)


def test_bad_inputs_give_one_line_errors(toy: Path, tmp_path: Path, capsys) -> None:
    assert (
        cli(
            [
                "cnn",
                "eval",
                "--model",
                str(tmp_path),
                "--data",
                str(toy / "test.json"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "config.json" in err

    bad = tmp_path / "ds"
    make_toy_dataset(bad, {"train": 4, "val": 2}, size=SIZE)
    (bad / "images" / "toy-0001.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ECGVLMError, match="toy-0001.png: cannot decode image"):
        train(bad, tmp_path / "r", _opts(), image_size=SIZE, progress=False)

    rows = json.loads((bad / "train.json").read_text())
    rows[0]["image"] = "../../etc/passwd"
    (bad / "train.json").write_text(json.dumps(rows))
    with pytest.raises(ECGVLMError, match="escapes"):
        train(bad, tmp_path / "r", _opts(), image_size=SIZE, progress=False)

    (bad / "train.json").write_text('[{"id": "x"}]')
    with pytest.raises(ECGVLMError, match="train.json: row 0"):
        train(bad, tmp_path / "r", _opts(), image_size=SIZE, progress=False)


@pytest.fixture(scope="session")
def real_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny dataset from the real builder: synthetic records rendered as ECG pages."""
    out = tmp_path_factory.mktemp("synth") / "ds"
    assert (
        cli(["dataset", "build", "--source", "synth:40", "--out", str(out), "--seed", "1", "--no-progress"])
        == 0
    )
    return out


def test_cnn_runs_on_a_real_synthetic_build(real_synth: Path, tmp_path: Path) -> None:
    rows = json.loads((real_synth / "test.json").read_text())
    cfg = train(
        real_synth, tmp_path / "run", _opts(epochs=1, batch_size=8), head="scp", image_size=64, progress=False
    )
    assert cfg["model"]["labels"][:5] == list(SUPERCLASSES) and len(cfg["model"]["labels"]) == 76
    assert cli(["cnn", "eval", "--model", str(tmp_path / "run"), "--data", str(real_synth / "test.json"),
                "--out", str(tmp_path / "ev"), "--no-progress"]) == 0  # fmt: skip
    preds = [json.loads(x) for x in (tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()]
    want = [r["id"] for r in rows if r["metadata"]["subtask"] in ("superclass", "scp")]
    assert [p["id"] for p in preds] == want and want
    for p in preds:
        assert len(p["scores"]) == (5 if p["task"] == "superclass" else 71)
        if p["task"] == "scp":
            assert "NORM" in p["scores"] and "IMI" in p["scores"]


def test_minutes_budget_stops_training_in_time(toy: Path, tmp_path: Path) -> None:
    import time

    t = time.perf_counter()
    cfg = train(toy, tmp_path / "run", _opts(epochs=1000, minutes=0.1), image_size=SIZE, progress=False)
    assert time.perf_counter() - t < 30  # 6 s of training + image loading, with slack for a busy machine
    assert 0 < cfg["steps"] < 1000 * 5 and (tmp_path / "run" / "model.safetensors").exists()
