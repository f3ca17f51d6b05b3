"""`ecgvlm sweep` end to end on the random tiny model: kill -9 after the first point, rerun, skip it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecgvlm.cli import main as cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweepdata")
    rc = cli(
        [
            "dataset",
            "build",
            "--source",
            "synth:12",
            "--out",
            str(out),
            "--seed",
            "1",
            "--split",
            "0.5,0.1,0.4",
            "--tasks",
            "superclass,mcq",
            "--no-progress",
        ]
    )
    assert rc == 0
    return out


def _command(data: Path, sweep: Path) -> list[str]:
    return [
        sys.executable, "-m", "ecgvlm", "sweep", "--config", str(REPO / "configs/tiny_cpu.yaml"),
        "--grid", "lora.r=4,8", "--out", str(sweep), f"data.train={data / 'train.json'}",
        "train.max_steps=2", "train.batch_size=2", "train.save_every=1", "lora.alpha=8",
        "--benchmarks", "ptbxl-super,mcq", "--max-new-tokens", "4", "--bootstrap", "20",
    ]  # fmt: skip


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the sweep ended before the first point finished"
        assert time.monotonic() < end, f"{path} did not appear in {timeout} s"
        time.sleep(0.2)


@pytest.mark.slow
def test_killed_sweep_reruns_only_unfinished_points(dataset, tmp_path):
    sweep = tmp_path / "sweep"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    first = sweep / "points" / "lora.r=4"
    second = sweep / "points" / "lora.r=8"
    with open(tmp_path / "run1.log", "w") as log:
        proc = subprocess.Popen(_command(dataset, sweep), stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
        try:
            _wait_for(first / "point.json", proc, timeout=300)
            os.kill(proc.pid, signal.SIGKILL)  # the sweep only: its training child must die with it
            proc.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):  # nothing of this test may outlive it
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert not (second / "point.json").exists()
    assert not (sweep / "sweep.md").exists()
    done = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    point1 = json.loads((first / "point.json").read_text())

    rerun = subprocess.run(_command(dataset, sweep), capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "[1/2] lora.r=4: skip (finished earlier)" in rerun.stdout
    assert "[2/2] lora.r=8:" in rerun.stdout and "[1/2] lora.r=4: start" not in rerun.stdout
    # the finished point is untouched, byte for byte and by mtime
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == done
    assert json.loads((first / "point.json").read_text()) == point1
    log = (sweep / "sweep.log").read_text()
    assert log.count("lora.r=4: start") == 1 and log.count("lora.r=4: skip") == 1

    # both points are complete and tabulated, with metrics in both modes and the cost
    for p, r in ((first, 4), (second, 8)):
        point = json.loads((p / "point.json").read_text())
        assert point["values"] == {"lora.r": r}
        cost = point["cost"]
        assert cost["trainable_params"] > 0 and cost["wall_s"] > 0 and cost["samples_per_s"] > 0
        assert 0.05 < cost["peak_mem_gb"] < 16
        metrics = json.loads((p / "metrics.json").read_text())["benchmarks"]
        assert set(metrics["ptbxl-super"]) == {"ecgbench", "strict"} and set(metrics["mcq"]) == {
            "ecgbench",
            "strict",
        }
        assert (p / "model" / "adapter_model.safetensors").is_file()
    p1 = json.loads((first / "point.json").read_text())["cost"]["trainable_params"]
    p2 = json.loads((second / "point.json").read_text())["cost"]["trainable_params"]
    assert p2 == 2 * p1  # LoRA parameters are linear in the rank
    table = (sweep / "sweep.md").read_text()
    assert "| lora.r=4 | 4 |" in table and "| lora.r=8 | 8 |" in table
    assert (sweep / "sweep_lora.r.png").stat().st_size > 1000
    assert "sweep.md" in rerun.stdout  # the rerun printed the table and its files
    # one shared random tiny base, not one per point
    assert len(list((sweep / "bases").glob("*/tiny-base/model.safetensors"))) == 1
    assert not (first / "model" / "tiny-base").exists()
