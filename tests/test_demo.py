"""`ecgvlm demo` end to end at toy scale: every stage runs, Table I is written, a rerun reuses it."""

import json

import pytest
import torch
import yaml

from ecgvlm.cli import main


@pytest.mark.slow
def test_demo_runs_every_stage_and_reuses_them(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--records", "40", "--steps", "3", "--eval-limit", "5", "--lr", "3e-4",
            "--threads", "1"]  # fmt: skip
    threads_before = torch.get_num_threads()
    assert main(args) == 0
    assert torch.get_num_threads() == threads_before  # the caller's setting is put back
    state = json.loads((out / "stages.json").read_text())
    assert list(state["done"]) == ["base", "data", "baseline", "finetune", "finetuned", "cnn", "report"]
    assert state["options"]["threads"] == 1
    # --opening 0.3 of 3 steps: the fine-tune opens with one batch of the short code answers alone
    assert "curriculum: superclass+diagnosis:1" in (out / "model" / "adapter" / "config.yaml").read_text()
    report = (out / "report.md").read_text()
    assert "`ecgvlm demo --seed 0 --threads 1 --records 40 --steps 3 --opening 0.3" in report
    assert "--tasks superclass,diagnosis,report --report-lead diagnosis" in report
    # the reports the demo trains on lead with the diagnosis (a record of one condition each)
    rows = json.loads((out / "data" / "train.json").read_text())
    lvh = [r for r in rows if r["metadata"]["subtask"] == "report" and "LVH" in r["metadata"]["gold"]["scp"]]
    assert lvh and all(r["conversations"][1]["value"].lower().startswith("left ventricular") for r in lvh)
    # the training budget of each column: baseline none, the LoRA 3 steps x batch 4
    assert "| baseline | 0 | none: the base as it is (zero-shot) | 0 |" in report
    assert "| fine-tuned | 12 | 3 steps x batch 4 (LoRA; training rows:" in report
    cnn = json.loads((out / "cnn" / "config.json").read_text())
    assert cnn["options"]["threads"] == 1  # the CNN stage ran with the demo's thread count
    n_train = json.loads((out / "cnn" / "train_log.json").read_text())["n_train_images"]
    samples = cnn["steps"] * cnn["options"]["batch_size"]
    assert f"| CNN | {samples} | 4 epochs x {n_train} pages ({cnn['steps']} steps x batch" in report
    # the image check per column (5 test pages: too few to judge, said so)
    assert "## Does each model read the image?" in report and "| P(MI) mean ± std |" in report
    assert (
        "| superclass answers depend on the image | not judged (too few pages) | not judged (too few pages) |"
        in report
    )
    assert (
        "| reports: looping |" in report and "| superclass: answer changes (share of page pairs) |" in report
    )
    assert "## Table I" in report and "| ptbxl-super | strict | AUC" in report
    assert (out / "table" / "roc.png").stat().st_size > 1000
    assert (out / "model" / "config.json").is_file()
    assert (out / "model" / "adapter" / "adapter_model.safetensors").is_file()
    recipe = yaml.safe_load((out / "model" / "adapter" / "config.yaml").read_text())
    assert recipe["train"]["lr"] == 3e-4 and recipe["train"]["max_steps"] == 3  # the options reach the recipe
    assert recipe["train"]["batch_size"] == 4 and recipe["lora"] == {"r": 64, "alpha": 128, "dropout": 0.05,
                                                                     "target_regex": None}  # fmt: skip
    tasks = {r["metadata"]["subtask"] for r in json.loads((out / "data" / "train.json").read_text())}
    assert tasks == {"superclass", "diagnosis", "report"}  # the default --tasks
    summary = json.loads((out / "model" / "adapter" / "train_summary.json").read_text())
    assert set(summary["tasks"]) == tasks  # so interpret/serve ask superclass sets, not yes/no
    assert "- not asked: statements, measurements" in report
    for run in ("baseline", "finetuned"):
        metrics = json.loads((out / run / "metrics.json").read_text())["benchmarks"]
        assert {"ptbxl-super", "report"} <= set(metrics)
    capsys.readouterr()
    assert main(args) == 0  # a rerun reuses every finished stage
    assert capsys.readouterr().out.count("reused") == 7
    # other options in the same folder are refused with a clear message, not mixed in
    assert main([*args, "--records", "41"]) == 2
    assert main([*args, "--threads", "2"]) == 2  # another thread count is another run
