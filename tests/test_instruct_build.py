"""The dataset builder end to end: determinism, resume after SIGKILL, splits, grounded answers,
real WFDB records as a source, and loading with `datasets`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ecgvlm.errors import ECGVLMError
from ecgvlm.instruct.build import build
from ecgvlm.instruct.config import BuildConfig
from ecgvlm.instruct.reader import check_file, iter_rows
from ecgvlm.instruct.tasks import DEFAULT_TASKS
from test_instruct_tasks import check_answer

N = 40
SEED = 3
SYNTH = BuildConfig(source=f"synth:{N}", seed=SEED, augment="mixed", layout="mixed")


def files_of(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "README.md":  # the card quotes the command, which names --out and --workers
                data = b"\n".join(
                    line
                    for line in data.split(b"\n")
                    if not line.startswith((b"ecgvlm dataset", b"(built through"))
                )
            out[str(p.relative_to(root))] = data
    return out


@pytest.fixture(scope="module")
def synth_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("ecgvlm.signals.synth")
    out = tmp_path_factory.mktemp("synth") / "d1"
    build(SYNTH, out, workers=1, progress=False)
    return out


def test_same_options_give_identical_bytes_for_any_worker_count(synth_build: Path, tmp_path: Path) -> None:
    build(SYNTH, tmp_path / "d2", workers=2, progress=False)
    a, b = files_of(synth_build), files_of(tmp_path / "d2")
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    assert len([k for k in a if k.startswith("images/") and k.endswith(".png")]) == N


@pytest.mark.slow
def test_killed_build_resumes_to_the_same_result(synth_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "ecgvlm",
        "dataset",
        "build",
        "--source",
        f"synth:{N}",
        "--out",
        str(out),
        "--seed",
        str(SEED),
        "--augment",
        "mixed",
        "--layout",
        "mixed",
        "--workers",
        "2",
        "--no-progress",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    units = out / ".staging" / "units"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if units.is_dir() and len(list(units.glob("*.json"))) >= N // 2:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the build finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "train.json").exists()
    done = len(list(units.glob("*.json")))
    assert N // 2 <= done < N
    rc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    assert f"{N - done} made now, {done} resumed" in rc.stdout
    a, b = files_of(synth_build), files_of(out)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []


def test_every_row_is_grounded_in_its_record(synth_build: Path) -> None:
    from ecgvlm.signals.synth import synthesize_record

    split_of: dict[str, str] = {}
    tasks = {s: set() for s in ("train", "val", "test")}
    for split in ("train", "val", "test"):
        rows = list(iter_rows(synth_build / f"{split}.json"))
        for row in rows:
            meta = row.metadata
            rid = meta["record_id"]
            assert split_of.setdefault(rid, split) == split, f"{rid} in two splits"
            assert meta["split"] == split and meta["source"] == "synth"
            rec = synthesize_record(SEED, int(rid.rsplit("-", 1)[1]))
            assert rec.id == rid
            gold = meta["gold"]
            assert gold["scp"] == {c: int(round(v)) for c, v in rec.labels.items()}
            assert gold["measurements"] == {k: round(float(v), 1) for k, v in rec.measurements.items()}
            qa = SimpleNamespace(subtask=meta["subtask"], question=row.question, answer=row.answer, gold=gold)
            check_answer(qa, rec.labels, rec.measurements)
            assert row.image == f"images/{rid}.png"
            tasks[split].add(meta["subtask"])
    assert len(split_of) == N
    assert tasks["train"] == set(DEFAULT_TASKS)
    # Test records get one question of every task they can answer.
    for rid in [r for r, s in split_of.items() if s == "test"]:
        rows = [r for r in iter_rows(synth_build / "test.json") if r.metadata["record_id"] == rid]
        assert len({r.task for r in rows}) == len(rows) >= 4


def test_card_counts_agree_with_the_files(synth_build: Path) -> None:
    stats = json.loads((synth_build / "stats.json").read_text())
    card = (synth_build / "README.md").read_text()
    for split in ("train", "val", "test"):
        n = len(json.loads((synth_build / f"{split}.json").read_text()))
        assert stats["rows"].get(split, 0) == n
        assert f"| {split} | {stats['records'].get(split, 0)} | {n} |" in card
    assert sum(stats["records"].values()) == N
    assert sum(stats["style"]["layout"].values()) == N and len(stats["style"]["layout"]) >= 2
    assert "## Superclasses" in card and "## SCP statements" in card and "augment:" in card
    assert sum(sum(v.values()) for v in stats["tasks"].values()) == sum(stats["rows"].values())


def test_datasets_load_json_reads_the_output(synth_build: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    files = {s: str(synth_build / f"{s}.json") for s in ("train", "val", "test")}
    ds = datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path / "hf"))
    for split, path in files.items():
        rows = json.loads(Path(path).read_text())
        assert ds[split].num_rows == len(rows)
        assert ds[split][0]["conversations"][0]["value"].startswith("<image>\n")
        assert ds[split][0]["metadata"]["gold"]["answer"] == rows[0]["metadata"]["gold"]["answer"]


def test_real_wfdb_records_as_a_source(tmp_path: Path, fixtures_dir: Path) -> None:
    from ecgvlm.signals.readers import read_record

    src = fixtures_dir / "real"
    if not src.is_dir():
        pytest.skip("tests/fixtures/real is missing")
    out = tmp_path / "real"
    cfg = BuildConfig(source=f"wfdb:{src}", seed=1, augment="light", on_error="raise")
    res = build(cfg, out, workers=2, progress=False)
    n = len(list(src.rglob("*.hea")))
    # Records with neither labels nor measurements (a PTB-XL file read outside its database) are
    # skipped rather than given invented answers; the card counts them.
    skipped = sum(res.counts["skipped"].values())
    assert sum(res.counts["records"].values()) + skipped == n and skipped <= 2
    assert set(res.counts["skipped"]) <= {"no SCP label or measurement to ask about"}
    ids = set()
    for split in ("train", "val", "test"):
        s = check_file(out / f"{split}.json", root=out, on_error="raise")
        assert not s.skipped
        for row in iter_rows(out / f"{split}.json"):
            ids.add(row.metadata["record_id"])
            if row.task == "yesno" and row.answer == "yes":
                gold = row.metadata["gold"]
                assert gold["condition"] in (
                    gold["superclasses"] if gold["level"] == "superclass" else gold["scp"]
                )
    assert len(ids) == n - skipped
    rec = read_record(src / "torch_ecg_cinc2021" / "E07500.hea")
    rows = [r for r in iter_rows(out / "train.json") if r.metadata["record_id"] == rec.id]
    rows += [
        r for s in ("val", "test") for r in iter_rows(out / f"{s}.json") if r.metadata["record_id"] == rec.id
    ]
    assert rows and rows[0].metadata["gold"]["scp"] == {c: int(round(v)) for c, v in rec.labels.items()}


def test_other_options_in_the_same_folder_are_refused(tmp_path: Path, fixtures_dir: Path) -> None:
    src = fixtures_dir / "real" / "ecg_image_kit_ptbxl"
    build(BuildConfig(source=f"wfdb:{src}", seed=1), tmp_path, progress=False)
    with pytest.raises(ECGVLMError, match="other options"):
        build(BuildConfig(source=f"wfdb:{src}", seed=2), tmp_path, progress=False)


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"source": "synth:x"}, "positive record count"),
        ({"source": "csv:foo"}, "synth:N, ptbxl:PATH or wfdb:DIR"),
        ({"source": "wfdb:/nonexistent"}, "does not exist"),
        ({"source": "synth:3", "tasks": ("story",)}, "unknown task"),
        ({"source": "synth:3", "split": (0.5, 0.5, 0.5)}, "summing to 1"),
        ({"source": "synth:3", "layout": "5x5"}, "unknown layout"),
    ],
)
def test_bad_options_give_one_line_errors(kwargs: dict, words: str) -> None:
    with pytest.raises(ECGVLMError, match=words):
        BuildConfig(**kwargs)


def test_cli_build_and_stats_on_real_records(
    tmp_path: Path, fixtures_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    from ecgvlm.cli import main

    src = fixtures_dir / "real" / "torch_ecg_cinc2021"
    out = tmp_path / "cli"
    assert (
        main(
            [
                "dataset",
                "build",
                "--source",
                f"wfdb:{src}",
                "--out",
                str(out),
                "--questions-per-record",
                "2",
                "--tasks",
                "superclass,yesno,mcq",
                "--step-by-step",
                "--no-progress",
                "--augment",
                "none",
            ]
        )
        == 0
    )
    assert "records" in capsys.readouterr().out
    rows = [r for s in ("train", "val", "test") for r in iter_rows(out / f"{s}.json")]
    assert {r.task for r in rows} <= {"superclass", "yesno", "mcq"}
    assert all(r.answer.startswith("Step 1:") and "\nAnswer: " in r.answer for r in rows)
    assert main(["dataset", "stats", str(out)]) == 0
    assert "superclass" in capsys.readouterr().out
    assert main(["dataset", "build", "--source", "synth:0", "--out", str(out)]) == 2


def _tiny_ptbxl(root: Path, fixtures_dir: Path) -> dict[str, int]:
    """A PTB-XL-shaped folder: ptbxl_database.csv + records100/, ten copies of a real record."""
    import wfdb

    src = wfdb.rdrecord(str(fixtures_dir / "real" / "ecg_image_kit_ptbxl" / "00001_lr"))
    folder = root / "records100" / "00000"
    folder.mkdir(parents=True)
    labels = ["{'NORM': 100.0, 'SR': 0.0}", "{'IMI': 80.0, 'SR': 0.0}", "{'CLBBB': 100.0, 'AFIB': 0.0}"]
    lines = ["ecg_id,patient_id,age,sex,report,scp_codes,strat_fold,filename_lr"]
    folds = {}
    for i in range(1, 11):
        name = f"{i:05d}_lr"
        wfdb.wrsamp(
            name,
            fs=src.fs,
            units=src.units,
            sig_name=src.sig_name,
            p_signal=src.p_signal,
            fmt=["16"] * len(src.sig_name),
            write_dir=str(folder),
        )
        fold = [1, 5, 8, 9, 10][i % 5]
        folds[str(i)] = fold
        lines.append(
            f'{i},{100 + i},{50 + i},{i % 2},"sinusrhythmus normales ekg","{labels[i % 3]}",{fold},'
            f"records100/00000/{name}"
        )
    (root / "ptbxl_database.csv").write_text("\n".join(lines) + "\n")
    return folds


def test_ptbxl_source_splits_by_strat_fold(tmp_path: Path, fixtures_dir: Path) -> None:
    folds = _tiny_ptbxl(tmp_path / "ptbxl", fixtures_dir)
    out = tmp_path / "out"
    res = build(
        BuildConfig(source=f"ptbxl:{tmp_path / 'ptbxl'}", seed=0, augment="none"),
        out,
        workers=2,
        progress=False,
    )
    assert sum(res.counts["records"].values()) == 10
    want = {rid: "test" if f == 10 else "val" if f == 9 else "train" for rid, f in folds.items()}
    for split in ("train", "val", "test"):
        for row in iter_rows(out / f"{split}.json"):
            assert want[row.metadata["record_id"]] == split
            assert row.image.startswith("images/ptbxl-000")
            if row.task == "report":
                assert row.metadata["gold"]["clinician_report"] == "sinusrhythmus normales ekg"


def test_shards_then_assemble_equal_one_build(tmp_path: Path) -> None:
    pytest.importorskip("ecgvlm.signals.synth")
    cfg = BuildConfig(source="synth:12", seed=5, augment="none")
    build(cfg, tmp_path / "whole", progress=False)
    for i in range(3):
        res = build(cfg, tmp_path / "sharded", shard=(i, 3), progress=False)
        assert not res.assembled and res.done == 4
        assert not (tmp_path / "sharded" / "train.json").exists()
    res = build(cfg, tmp_path / "sharded", progress=False)
    assert res.assembled and res.done == 0 and res.resumed == 12
    assert files_of(tmp_path / "whole") == files_of(tmp_path / "sharded")


def test_bad_record_raises_one_line_or_is_counted(tmp_path: Path, fixtures_dir: Path) -> None:
    import shutil

    src = tmp_path / "recs"
    src.mkdir()
    for name in ("E07500", "E07501"):
        for suffix in (".hea", ".mat"):
            shutil.copy(fixtures_dir / "real" / "torch_ecg_cinc2021" / f"{name}{suffix}", src)
    (src / "broken.hea").write_text("this is not a WFDB header\n")
    with pytest.raises(ECGVLMError) as e:
        build(BuildConfig(source=f"wfdb:{src}"), tmp_path / "raise", progress=False)
    assert "broken" in str(e.value) and "\n" not in str(e.value)
    res = build(BuildConfig(source=f"wfdb:{src}", on_error="skip"), tmp_path / "skip", progress=False)
    assert sum(res.counts["records"].values()) == 2 and sum(res.counts["skipped"].values()) == 1
    assert "## Skipped records" in (tmp_path / "skip" / "README.md").read_text()


def test_conditions_give_one_listed_condition_per_synthetic_record(tmp_path: Path) -> None:
    wanted = ("NORM", "IMI", "CLBBB", "LVH")
    cfg = BuildConfig(source="synth:24", seed=5, tasks=("superclass",), augment="none", conditions=wanted)
    build(cfg, tmp_path / "d", progress=False)
    seen = set()
    for split in ("train", "val", "test"):
        for row in iter_rows(tmp_path / "d" / f"{split}.json"):
            scp = set(row.metadata["gold"]["scp"])
            picked = scp & set(wanted)
            assert len(picked) == 1 and scp - picked <= {"SR"}, scp
            seen |= picked
    assert len(seen) >= 3  # drawn per record, not one for all
    with pytest.raises(ECGVLMError, match="unknown synthetic condition"):
        BuildConfig(source="synth:3", conditions=("XYZ",))


def test_card_configs_load_the_folder_with_decoded_images(
    synth_build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card's YAML `configs` let `datasets.load_dataset(FOLDER)` find the splits, and its
    loading snippet, run as written, yields PIL images."""
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    card = (synth_build / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n")
    snippet = card.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'Path("path/to/this/folder")' in snippet
    snippet = snippet.replace("path/to/this/folder", str(synth_build))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")  # not ~/.cache
    scope: dict = {}
    exec(snippet, scope)
    ds, page = scope["ds"], scope["page"]
    rows = {s: json.loads((synth_build / f"{s}.json").read_text()) for s in ("train", "val", "test")}
    assert {s: ds[s].num_rows for s in ds} == {
        {"val": "validation"}.get(s, s): len(r) for s, r in rows.items() if r
    }
    assert (
        isinstance(page, Image.Image)
        and page.size == Image.open(synth_build / rows["train"][0]["image"]).size
    )
    assert ds["validation"][0]["id"] == rows["val"][0]["id"]


def test_dataset_build_cli_default_tasks_are_the_python_default():
    """The CLI spells its default out (importing the task module would slow start-up); they must agree."""
    import argparse

    from ecgvlm.instruct.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["build", "--source", "synth:1", "--out", "x"])
    assert tuple(args.tasks.split(",")) == DEFAULT_TASKS
