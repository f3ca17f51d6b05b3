"""What a training run leaves for others: model cards, merges in the base's dtype, a tokenizer
transformers 4.x loads, the best adapter by validation loss, tracker logs, two-process runs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from _train_helpers import make_dataset
from ecgvlm.cli import main as cli
from ecgvlm.model.base import shipped_base
from ecgvlm.model.chat import Collator
from ecgvlm.model.load import load_model, load_model_and_processor, stored_dtype
from ecgvlm.train.components import trainable_digest
from ecgvlm.train.config import load_config
from ecgvlm.train.data import InstructDataset
from ecgvlm.train.recipe import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    return make_dataset(root / "train", n=16), make_dataset(root / "val", n=8, seed=1)


def _cfg(out: Path, train_file: Path, **kw):
    items = {
        "data.train": str(train_file),
        "output_dir": str(out),
        "train.batch_size": 4,
        "train.threads": 1,
        "train.save_every": 0,
        "train.max_steps": 2,
        **kw,
    }
    return load_config(REPO / "configs/tiny_cpu.yaml", [f"{k}={v}" for k, v in items.items()])


def _first_step_loss(base: Path, train_file: Path, batch_size: int, world: int, accum: int) -> float:
    """What step 1 must log: LoRA starts at B = 0 (the base's function) and dropout is 0 in these
    runs, so each micro-batch's loss is the base's loss on the rows the trainer gives that process;
    the mean over the step's micro-batches and processes, computed here without the trainer."""
    from ecgvlm.train.data import epoch_batches
    from ecgvlm.train.loss import causal_lm_loss

    model, proc = load_model_and_processor(base)
    ds = InstructDataset(train_file, proc.tokenizer, max_len=256)
    order = epoch_batches(len(ds), batch_size * world, 0, 0, ds.lengths(), True)
    losses = []
    with torch.no_grad():
        for idx in order[:accum]:
            for rank in range(world):
                rows = idx[rank * batch_size : (rank + 1) * batch_size]
                losses.append(float(causal_lm_loss(model, Collator(proc)([ds[i] for i in rows]))))
    return sum(losses) / len(losses)


def _logits(model, batch):
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def test_cards_and_fp16_merge_of_the_shipped_base(data, tmp_path, capsys):
    torch.set_num_threads(1)
    train_file, _ = data
    base = shipped_base()
    assert stored_dtype(base) == "float16"
    out = tmp_path / "lora"
    hub_id = "example-org/ecgvlm-tiny-base"
    train(_cfg(out, train_file, **{"model.path": base, "model.hub_id": hub_id, "train.lr": 5e-3}))

    # the adapter's card: PEFT's template replaced, metadata readable by huggingface_hub
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == hub_id and card.data.library_name == "peft"
    assert card.data.license == "apache-2.0" and "lora" in card.data.tags
    assert card.data.datasets == [str(train_file)]
    assert "More Information Needed" not in card.text and "Not a medical device" in card.text
    assert "| steps | 2 |" in card.text

    # merge: the base's dtype by default; logits equal the unmerged adapter's within fp16 rounding
    merged = tmp_path / "merged"
    assert cli(["merge", "--adapter", str(out), "--out", str(merged)]) == 0
    assert stored_dtype(merged) == "float16"
    assert (merged / "model.safetensors").stat().st_size < 0.6 * 4 * sum(
        p.numel() for p in load_model(base).parameters()
    )
    peft, proc = load_model_and_processor(out)
    ds = InstructDataset(train_file, proc.tokenizer, max_len=256)
    batch = Collator(proc)([ds[i] for i in range(4)])
    unmerged = _logits(peft, batch)
    diff = (unmerged - _logits(load_model(merged), batch)).abs().max()
    tol = 8 * torch.finfo(torch.float16).eps * unmerged.abs().max()
    effect = (unmerged - _logits(load_model(base), batch)).abs().max()
    assert diff < tol and effect > 50 * diff, (diff, tol, effect)
    capsys.readouterr()

    # --dtype float32 is exact to fp32 rounding
    assert cli(["merge", "--adapter", str(out), "--out", str(tmp_path / "m32"), "--dtype", "float32"]) == 0
    assert stored_dtype(tmp_path / "m32") == "float32"
    assert (unmerged - _logits(load_model(tmp_path / "m32"), batch)).abs().max() < 1e-4

    # the merged card, and metrics of an `ecgvlm score` run of this model added to it
    card = ModelCard.load(merged / "README.md")
    assert card.data.base_model == hub_id and card.data.library_name == "transformers"
    assert "merged-lora" in card.data.tags and "float16" in card.text
    run = tmp_path / "eval"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"model": str(merged.resolve())}))
    metrics = {
        "schema": "ecgvlm.metrics/1",
        "benchmarks": {
            "ptbxl-super": {
                "strict": {"auc": 61.2, "f1": 40.1, "hamming": 30.5, "predictions": str(run / "p.jsonl")}
            }
        },
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert cli(["card", str(merged), "--metrics", str(run / "metrics.json")]) == 0
    results = ModelCard.load(merged / "README.md").data.eval_results
    assert {(r.dataset_name, r.metric_type, r.metric_value) for r in results} == {
        ("ptbxl-super", "auc", 61.2),
        ("ptbxl-super", "f1", 40.1),
        ("ptbxl-super", "hamming", 30.5),
    }
    # merge --metrics: scores of the adapter go into the merged model's card
    (run / "run.json").write_text(json.dumps({"model": str(out.resolve())}))
    assert (
        cli(
            [
                "merge",
                "--adapter",
                str(out),
                "--out",
                str(tmp_path / "ms"),
                "--metrics",
                str(run / "metrics.json"),
            ]
        )
        == 0
    )
    assert len(ModelCard.load(tmp_path / "ms/README.md").data.eval_results) == 3
    (run / "run.json").write_text(json.dumps({"model": str(merged.resolve())}))
    # scores of another model are refused in one line
    capsys.readouterr()
    assert cli(["card", str(out), "--metrics", str(run / "metrics.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "scored on another model" in err and "\n" not in err

    # the tokenizer names a class transformers 4.x has, and loads as that class here too
    from transformers import PreTrainedTokenizerFast

    assert json.loads((merged / "tokenizer_config.json").read_text())["tokenizer_class"] == (
        "PreTrainedTokenizerFast"
    )
    tok = PreTrainedTokenizerFast.from_pretrained(str(merged))
    text = "<|begin_of_text|>Which superclass? <|image|> NORM<|eot_id|>"
    assert (
        tok(text, add_special_tokens=False).input_ids
        == proc.tokenizer(text, add_special_tokens=False).input_ids
    )
    assert tok.chat_template == proc.tokenizer.chat_template


def test_shipped_base_has_a_model_card():
    card = ModelCard.load(shipped_base() / "README.md")
    assert card.data.library_name == "transformers" and card.data.license == "apache-2.0"
    assert "Not a medical device" in card.text


def test_tokenizer_loads_under_transformers_4(tmp_path):
    """Run with ECGVLM_TF4_PYTHON naming a Python that has transformers>=4.45,<5 (.ci/run makes one)."""
    python = os.environ.get("ECGVLM_TF4_PYTHON")
    if not python:
        if os.environ.get("ECGVLM_REQUIRE_ALL") == "1":
            pytest.fail("ECGVLM_TF4_PYTHON is not set")
        pytest.skip("ECGVLM_TF4_PYTHON not set (a Python with transformers 4.x)")
    from ecgvlm.model.tiny import build_tiny

    folder = build_tiny(tmp_path / "tiny")
    script = (
        "import sys, transformers; from transformers import AutoTokenizer;"
        "t = AutoTokenizer.from_pretrained(sys.argv[1]);"
        "ids = t('Which superclass? <|image|> NORM', add_special_tokens=False).input_ids;"
        "print(transformers.__version__, type(t).__name__, ids,"
        " t.apply_chat_template([{'role': 'user', 'content': 'hi'}], tokenize=False))"
    )
    res = subprocess.run([python, "-c", script, str(folder)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-1500:]
    version, cls, *_ = res.stdout.split()
    assert version.startswith("4.") and cls == "PreTrainedTokenizerFast"
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(str(folder))(
        "Which superclass? <|image|> NORM", add_special_tokens=False
    ).input_ids
    assert str(ids).replace(" ", "") in res.stdout.replace(" ", "")
    assert "<|start_header_id|>user<|end_header_id|>" in res.stdout


def test_eval_every_keeps_the_best_adapter_by_validation_loss(data, tmp_path):
    torch.set_num_threads(1)
    train_file, val_file = data
    out = tmp_path / "run"
    base = shipped_base()
    kw = {"model.path": base, "data.val": val_file, "train.eval_every": 2, "train.max_steps": 6}
    kw.update({"train.lr": 2e-2, "train.batch_size": 2, "train.grad_accum": 2, "lora.dropout": 0})
    kw["train.eval_auc"] = "true"
    train(_cfg(out, train_file, **kw))
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    # the logged loss is the mean over the step's two micro-batches, not the last one's
    assert log[0]["loss"] == pytest.approx(_first_step_loss(base, train_file, 2, 1, 2), abs=1e-5)
    vals = {e["step"]: e["val_loss"] for e in log if "val_loss" in e}
    assert sorted(vals) == [2, 4, 6]
    best = json.loads((out / "best/best.json").read_text())
    assert best["step"] == min(vals, key=vals.get) and best["val_loss"] == min(vals.values())
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["best"] == best and summary["val_loss"] == vals[6]
    card = ModelCard.load(out / "best/README.md")
    assert card.data.library_name == "peft" and f"| steps | {best['step']} |" in card.text
    # the adapter in best/ really gives that loss (recomputed from the files)
    from ecgvlm.train.validation import evaluate_loss

    model, proc = load_model_and_processor(out / "best")
    ds = InstructDataset(val_file, proc.tokenizer, max_len=256)
    again = evaluate_loss(model, ds, Collator(proc), 2, torch.device("cpu"), "fp32", True)
    assert abs(again - best["val_loss"]) < 1e-5
    # the optional quick superclass AUC, logged with each validation, recomputed from best/ as well
    from ecgvlm.train.validation import superclass_auc

    aucs = {e["step"]: e["val_superclass_auc"] for e in log if "val_superclass_auc" in e}
    assert sorted(aucs) == [2, 4, 6] and all(0 <= a <= 1 for a in aucs.values())
    auc = superclass_auc(model, proc, ds, torch.device("cpu"), "fp32")
    assert auc == pytest.approx(aucs[best["step"]], abs=1e-6)
    # the default tracker, TensorBoard, holds the same loss curve and the validation losses
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))  # (accelerate puts the hparams in a subfolder)
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [
        (e["step"], pytest.approx(e["loss"], rel=1e-6)) for e in log
    ]
    assert [e.step for e in acc.Scalars("val/loss")] == [2, 4, 6]
    with pytest.raises(Exception, match="eval_every needs data.val"):
        train(_cfg(tmp_path / "x", train_file, **{"model.path": base, "train.eval_every": 2}))


def test_a_diverging_run_keeps_the_earlier_best_adapter(data, tmp_path):
    """lr 1.0 blows the tiny run up to NaN after step 2: best/ keeps step 2, the last adapter is the
    diverged one (NaN never counts as an improvement)."""
    import math

    from safetensors.torch import load_file

    torch.set_num_threads(1)
    train_file, val_file = data
    out = tmp_path / "diverged"
    kw = {"model.path": shipped_base(), "data.val": val_file, "train.eval_every": 2, "train.max_steps": 6}
    kw.update({"train.lr": 1.0, "train.warmup_ratio": 0, "train.batch_size": 2, "train.grad_accum": 2})
    train(_cfg(out, train_file, **{**kw, "lora.dropout": 0, "train.eval_auc": "true"}))
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    vals = {e["step"]: e["val_loss"] for e in log if "val_loss" in e}
    assert math.isfinite(vals[2]) and math.isnan(vals[4]) and math.isnan(vals[6]), vals
    assert json.loads((out / "best/best.json").read_text()) == {"step": 2, "val_loss": vals[2]}
    last = load_file(str(out / "adapter_model.safetensors"))
    best = load_file(str(out / "best/adapter_model.safetensors"))
    assert any(v.isnan().any() for v in last.values()) and not any(v.isnan().any() for v in best.values())
    assert "val_superclass_auc" in log[1] and "val_superclass_auc" not in log[3]


def _tracker_run(train_file: Path, out: Path, tracker: str, env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ecgvlm", "train", "--config", str(REPO / "configs/tiny_cpu.yaml")]
    cmd += [f"model.path={shipped_base()}", f"data.train={train_file}", f"output_dir={out}"]
    cmd += ["train.max_steps=4", "train.threads=1", "train.save_every=0", f"train.report_to={tracker}"]
    return subprocess.run(
        cmd, env={**os.environ, "OMP_NUM_THREADS": "1", **env}, capture_output=True, text=True, timeout=300
    )


def _logged_losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_mlflow_file_store_and_offline_wandb_hold_the_loss_curve(data, tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    train_file, _ = data

    store = tmp_path / "mlruns"
    out = tmp_path / "ml"
    # MLflow 3.x keeps the file store but asks to be told so (it prefers a database)
    env = {"MLFLOW_TRACKING_URI": store.as_uri(), "MLFLOW_ALLOW_FILE_STORE": "true"}
    res = _tracker_run(train_file, out, "mlflow", env)
    assert res.returncode == 0, res.stderr[-2000:]
    import mlflow

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=store.as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("ecgvlm").experiment_id])
    assert run.info.run_name == "ml"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (i + 1, pytest.approx(v, rel=1e-6)) for i, v in enumerate(_logged_losses(out))
    ]
    assert run.data.params["train.report_to"] == "mlflow"

    out = tmp_path / "wb"
    res = _tracker_run(train_file, out, "wandb", {"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    assert res.returncode == 0, res.stderr[-2000:]
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    assert _wandb_history(run_file, "train/loss") == [
        (i + 1, pytest.approx(v, rel=1e-6)) for i, v in enumerate(_logged_losses(out))
    ]


def _wandb_history(run_file: Path, key: str) -> list[tuple[int, float]]:
    """(step, value) of ``key`` from an offline W&B run file, read by W&B's own record reader."""
    wandb_cli = shutil.which("wandb", path=str(Path(sys.executable).parent)) or "wandb"
    res = subprocess.run(
        [wandb_cli, "leet", "inspect", "--json", str(run_file)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-1500:]
    points = []
    for line in res.stdout.splitlines():
        rec = json.loads(line)
        item = rec.get("history", {}).get("item", {}) if rec.get("type") == "history" else {}
        if key in item:
            points.append((int(item["_step"]), float(item[key])))
    return points


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_cpu_training_with_the_tiny_preset(data, tmp_path):
    train_file, val_file = data
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", str(_free_port()), "-m", "ecgvlm", "train"]
    cmd += ["--config", str(REPO / "configs/tiny_cpu.yaml"), "model.path=tiny", f"data.train={train_file}"]
    cmd += [f"data.val={val_file}", f"output_dir={out}", "train.max_steps=3", "train.batch_size=2"]
    cmd += ["train.threads=1", "train.save_every=0", "train.eval_every=2", "lora.dropout=0"]
    res = subprocess.run(
        cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=400
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["engine"] == "DistributedType.MULTI_CPU" and summary["world_size"] == 2
    # the logged loss is the mean over both processes' batches
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["loss"] == pytest.approx(_first_step_loss(out / "tiny-base", train_file, 2, 2, 1), abs=1e-5)
    # one tiny base, built once; no temporary folder left by a rank that lost a race
    assert sorted(p.name for p in out.iterdir() if "tiny" in p.name) == ["tiny-base"]
    # both ranks ended with the same weights, and the one adapter written is exactly them
    rank0, rank1 = summary["weights_sha256"]
    assert rank0 == rank1
    from peft import PeftModel

    saved = PeftModel.from_pretrained(load_model(out / "tiny-base"), str(out), is_trainable=True)
    assert trainable_digest(saved) == rank0
    # each process validated a share of the batches; the reduced loss is the whole file's
    from ecgvlm.train.validation import evaluate_loss

    best = json.loads((out / "best/best.json").read_text())
    model, proc = load_model_and_processor(out / "best")
    ds = InstructDataset(val_file, proc.tokenizer, max_len=256)
    whole = evaluate_loss(model, ds, Collator(proc), 2, torch.device("cpu"), "fp32", True)
    assert whole == pytest.approx(best["val_loss"], abs=1e-5)
    shutil.rmtree(out)


def test_licence_of_a_llama_base_travels_with_the_card(tmp_path):
    """A base whose card says llama3.2 gives "Built with Llama" and its licence files go along."""
    from ecgvlm.model.card import base_licence, copy_licence_files, render_model_card

    base = tmp_path / "Llama-3.2-11B-Vision-Instruct"
    base.mkdir()
    (base / "README.md").write_text("---\nlicense: llama3.2\nlibrary_name: transformers\n---\n# Llama\n")
    (base / "LICENSE").write_text("LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\n")
    (base / "USE_POLICY.md").write_text("Acceptable use\n")
    lic = base_licence(base)
    assert lic["license"] == "llama3.2" and lic["files"] == ["LICENSE", "USE_POLICY.md"]
    assert lic["notice"].startswith("Built with Llama")
    out = tmp_path / "merged"
    out.mkdir()
    assert copy_licence_files(base, out) == ["LICENSE", "USE_POLICY.md"]
    info = {"kind": "merged", "name": "m", "base_model": "meta-llama/Llama-3.2-11B-Vision-Instruct"}
    (out / "README.md").write_text(
        render_model_card({**info, "library_name": "transformers", "licence": lic})
    )
    card = ModelCard.load(out / "README.md")
    assert card.data.license == "llama3.2" and card.data.base_model == info["base_model"]
    assert "Built with Llama" in card.text and "`USE_POLICY.md`" in card.text
    # a base with no licence anywhere says so instead of guessing
    bare = tmp_path / "bare"
    bare.mkdir()
    assert base_licence(bare)["license"] == "other" and "check the base" in base_licence(bare)["notice"]


def test_a_missing_tracker_package_is_one_line_before_anything_is_written(
    data, tmp_path, capsys, monkeypatch
):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    train_file, _ = data
    out = tmp_path / "never"
    args = [f"data.train={train_file}", f"output_dir={out}", "train.report_to=wandb"]
    assert cli(["train", "--config", str(REPO / "configs/tiny_cpu.yaml"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install wandb" in err and "\n" not in err
    assert not out.exists()
