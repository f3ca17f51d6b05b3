"""Cluster shards: the shard of a Slurm array task, and a dataset built by two array tasks then
assembled equals one process's build byte for byte (the evaluate merge is tested with evaluate)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ecgvlm.cli import main as cli
from ecgvlm.errors import ECGVLMError
from ecgvlm.render import load_sidecar
from ecgvlm.shards import parse_shard, resolve_shard, shard_from_env


def test_shard_from_slurm_array_environment(monkeypatch) -> None:
    assert shard_from_env({}) is None
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "1"}) is None
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "16"}) == (3, 16)
    # --array=1-16 and --array=0-30:2 number tasks from MIN in steps of STEP
    env = {"SLURM_ARRAY_TASK_ID": "16", "SLURM_ARRAY_TASK_COUNT": "16", "SLURM_ARRAY_TASK_MIN": "1"}
    assert shard_from_env(env) == (15, 16)
    env = {"SLURM_ARRAY_TASK_ID": "30", "SLURM_ARRAY_TASK_COUNT": "16", "SLURM_ARRAY_TASK_STEP": "2"}
    assert shard_from_env(env) == (15, 16)
    with pytest.raises(ECGVLMError, match="--shard"):
        shard_from_env({"SLURM_ARRAY_TASK_ID": "40", "SLURM_ARRAY_TASK_COUNT": "16"})
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    assert resolve_shard(None) == (1, 4) and resolve_shard("2/3") == (2, 3)  # --shard wins
    for bad in ("2", "a/b", "3/3", "-1/2"):
        with pytest.raises(ECGVLMError, match="--shard"):
            parse_shard(bad)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_array_tasks_then_assemble_equal_one_build(tmp_path: Path, monkeypatch, capsys) -> None:
    pytest.importorskip("ecgvlm.signals.synth")

    def build(out: Path) -> int:
        argv = ["dataset", "build", "--source", "synth:10", "--out", str(out), "--seed", "2"]
        argv += ["--sidecars", "--no-progress"]
        # the card quotes the command line: the same for every task of the job and for one process
        monkeypatch.setattr(sys, "argv", ["ecgvlm", *argv[:5], "OUT", *argv[6:]])
        return cli(argv)

    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert build(tmp_path / "one") == 0
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    for task in ("0", "1"):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        assert build(tmp_path / "two") == 0
        assert not (tmp_path / "two" / "train.json").exists()
    assert "ecgvlm dataset assemble" in capsys.readouterr().out
    assert cli(["dataset", "assemble", str(tmp_path / "two")]) == 0
    one, two = tree(tmp_path / "one"), tree(tmp_path / "two")
    assert two.pop(".staging/command.txt").decode().startswith("ecgvlm dataset build --source synth:10")
    assert sorted(one) == sorted(two)
    assert [k for k in one if one[k] != two[k]] == []
    sidecars = sorted((tmp_path / "one" / "images").glob("*.json"))
    assert len(sidecars) == 10 and all(b'"samples"' in s.read_bytes() for s in sidecars)  # compact
    assert load_sidecar(sidecars[0])["leads"][0]["x"]


def test_assemble_names_the_first_missing_record(tmp_path: Path, monkeypatch, capsys) -> None:
    pytest.importorskip("ecgvlm.signals.synth")
    out = tmp_path / "ds"
    argv = ["dataset", "build", "--source", "synth:4", "--out", str(out), "--no-progress", "--shard", "1/2"]
    assert cli(argv) == 0
    assert cli(["dataset", "assemble", str(out)]) == 2
    assert "2 records have no finished unit (first: synth-0-000000)" in capsys.readouterr().err
    assert not (out / "train.json").exists()
    assert cli(["dataset", "assemble", str(tmp_path)]) == 2  # not a build folder


def test_overwrite_is_refused_in_a_shard(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    argv = ["dataset", "build", "--source", "synth:2", "--out", str(tmp_path / "d"), "--overwrite"]
    assert cli(argv) == 2
    assert "other shards" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_a_build_from_before_sidecar_forms_resumes(tmp_path: Path) -> None:
    pytest.importorskip("ecgvlm.signals.synth")
    import json

    from ecgvlm.instruct.build import build
    from ecgvlm.instruct.config import BuildConfig

    out = tmp_path / "d"
    build(BuildConfig(source="synth:2", sidecars="full"), out, shard=(0, 2), progress=False)
    config = out / ".staging" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "sidecars": True}))  # as written then
    assert build(BuildConfig(source="synth:2", sidecars="full"), out, progress=False).assembled
    with pytest.raises(ECGVLMError, match="sidecars"):
        build(BuildConfig(source="synth:2", sidecars=False), out, progress=False)
