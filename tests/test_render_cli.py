"""``ecgvlm render`` on real records: one file, a folder with resume, bad input; all 52 real records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ecgvlm.cli import main as ecgvlm
from ecgvlm.render import load_sidecar, render

REAL = Path(__file__).parent / "fixtures" / "real"
readers = pytest.importorskip("ecgvlm.signals.readers")


def test_render_one_record(tmp_path, capsys):
    out = tmp_path / "p.png"
    rc = ecgvlm(
        ["render", str(REAL / "wfdb_python_ptbdb" / "s0010_re"), "--out", str(out), "--augment", "light"]
    )
    assert rc == 0
    side = load_sidecar(out.with_suffix(".json"))
    assert side["fs"] == 1000.0 and side["record_seconds"] == 38.4
    assert len(side["leads"]) == 13 and len(side["leads"][0]["x"]) == 2500
    first, first_side = out.read_bytes(), out.with_suffix(".json").read_bytes()
    args = ["render", str(REAL / "wfdb_python_ptbdb" / "s0010_re"), "--out", str(out), "--augment", "light"]
    assert ecgvlm(args) == 0 and out.read_bytes() == first  # same command, same bytes
    assert out.with_suffix(".json").read_bytes() == first_side
    assert ecgvlm([*args, "--sidecar", "full"]) == 0 and out.read_bytes() == first
    assert json.loads(out.with_suffix(".json").read_text()) == side  # plain JSON: the same content


def test_render_folder_resumes(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for rid in ("E07500", "HR06000", "JS20003"):
        for ext in (".hea", ".mat"):
            shutil.copy(REAL / "torch_ecg_cinc2021" / f"{rid}{ext}", src)
    out = tmp_path / "pages"
    args = ["render", str(src), "--out", str(out), "--random-style", "--dpi", "60", "--format", "jpg"]
    assert ecgvlm([*args, "--workers", "2"]) == 0
    assert sorted(p.name for p in out.glob("*.jpg")) == ["E07500.jpg", "HR06000.jpg", "JS20003.jpg"]
    first = (out / "E07500.jpg").read_bytes()
    (out / "HR06000.jpg").unlink()
    assert ecgvlm(args) == 0
    assert "1 pages" in capsys.readouterr().out.splitlines()[-1]
    assert (out / "E07500.jpg").read_bytes() == first  # kept, not redone


def test_render_bad_input(tmp_path, capsys):
    assert ecgvlm(["render", str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")]) == 2
    assert "missing" in capsys.readouterr().err
    assert (
        ecgvlm(["render", str(REAL / "ecg_image_kit_ptbxl" / "00001_lr"), "--out", str(tmp_path / "x.bmp")])
        == 2
    )


def test_all_real_records_render():
    records = list(readers.iter_records(REAL))
    assert len(records) == 52
    rates = set()
    for k, rec in enumerate(records):
        layout = ("3x4+1", "3x4+3", "6x2", "12x1", "1x1")[k % 5]
        page = render(rec, layout=layout, augment=("none", "light", "heavy")[k % 3], seed=k)
        rates.add(rec.fs)
        for lead in page.sidecar["leads"]:
            assert np.isfinite(lead["x"]).all() and np.isfinite(lead["y"]).all()
    assert rates == {100.0, 500.0, 1000.0}
