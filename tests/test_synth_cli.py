"""`ecgvlm synth`: byte-identical output, workers, resume, WFDB round trip, errors, help."""

import ast
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgvlm.cli import main as cli
from ecgvlm.signals.synth import synthesize_record


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run_once(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "a"
    assert cli(["synth", "--n", "20", "--out", str(out), "--seed", "1"]) == 0
    return out


def test_same_command_twice_gives_identical_bytes(run_once, tmp_path):
    again = tmp_path / "b"
    assert cli(["synth", "--n", "20", "--out", str(again), "--seed", "1"]) == 0
    a, b = _tree(run_once), _tree(again)
    assert len(a) == 20 * 2 + 3 and a == b  # records, the two tables, the output marker
    other = tmp_path / "c"
    assert cli(["synth", "--n", "2", "--out", str(other), "--seed", "2"]) == 0
    assert _tree(other)["records500/00000/synth-2-000000.dat"] != a["records500/00000/synth-1-000000.dat"]


def test_two_workers_write_the_same_bytes_as_one(run_once, tmp_path):
    out = tmp_path / "w2"
    assert cli(["synth", "--n", "20", "--out", str(out), "--seed", "1", "--workers", "2"]) == 0
    assert _tree(out) == _tree(run_once)


def test_ptbxl_layout_and_table(run_once):
    with (run_once / "ptbxl_database.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["ecg_id"]) for r in rows] == list(range(1, 21))
    for r in rows:
        scp = ast.literal_eval(r["scp_codes"])
        assert isinstance(scp, dict) and all(v == 100.0 for v in scp.values())
        assert 1 <= int(r["strat_fold"]) <= 10 and r["sex"] in ("0", "1")
        assert (run_once / (r["filename_hr"] + ".hea")).exists()
        assert float(r["qrs"]) > 60 and float(r["hr"]) > 25
    assert (run_once / "scp_statements.csv").read_text().startswith("code,description")


def test_written_records_read_back_exactly_with_identities(run_once):
    for i in (0, 7, 19):
        rec = wfdb.rdrecord(str(run_once / f"records500/00000/synth-1-{i:06d}"))
        s = rec.p_signal.T
        assert rec.fs == 500 and rec.sig_name[:3] == ["I", "II", "III"] and s.shape == (12, 5000)
        assert rec.base_date is None and rec.base_time is None  # nothing time-dependent in the header
        assert np.abs(s[2] - (s[1] - s[0])).max() < 1e-9
        assert np.abs(s[3] + (s[0] + s[1]) / 2).max() < 1e-9
        assert np.abs(s[4] - (s[0] - s[1] / 2)).max() < 1e-9
        assert np.abs(s[5] - (s[1] - s[0] / 2)).max() < 1e-9
        mem = synthesize_record(1, i).signal
        assert np.abs(s - mem).max() < 1e-6  # the file holds exactly the in-memory samples


def test_rerun_resumes_and_repairs(run_once, tmp_path):
    import shutil

    out = tmp_path / "resume"
    shutil.copytree(run_once, out)
    (out / "records500/00000/synth-1-000003.hea").unlink()  # as if killed between .dat and .hea
    (out / "ptbxl_database.csv").unlink()
    before = (out / "records500/00000/synth-1-000004.dat").stat().st_mtime_ns
    assert cli(["synth", "--n", "20", "--out", str(out), "--seed", "1"]) == 0
    assert _tree(out) == _tree(run_once)
    assert (out / "records500/00000/synth-1-000004.dat").stat().st_mtime_ns == before  # kept, not rewritten


def test_conditions_option_and_bad_input(tmp_path, capsys):
    out = tmp_path / "afib"
    assert cli(["synth", "--n", "3", "--out", str(out), "--seed", "4", "--conditions", "AFIB,CLBBB"]) == 0
    rows = list(csv.DictReader((out / "ptbxl_database.csv").open()))
    assert all(ast.literal_eval(r["scp_codes"]) == {"AFIB": 100.0, "CLBBB": 100.0} for r in rows)
    assert all(r["pr"] == "" for r in rows)
    capsys.readouterr()
    assert cli(["synth", "--n", "3", "--out", str(tmp_path / "x"), "--conditions", "AFIB,1AVB"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "incompatible" in err and "1AVB" in err
    assert cli(["synth", "--n", "3", "--out", str(tmp_path / "y"), "--conditions", "NOPE"]) == 2
    assert "NOPE" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert cli(["synth", "--n", "1", "--out", str(tmp_path / "file")]) == 2


def test_help_teaches():
    res = subprocess.run(
        [sys.executable, "-m", "ecgvlm", "synth", "--help"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0
    assert "--workers" in res.stdout and "ecgvlm synth --n 200" in res.stdout


@pytest.mark.parametrize("fs", [500.0, 100.0, 257.5])
def test_direct_writer_matches_wfdb_wrsamp_byte_for_byte(tmp_path, fs):
    from ecgvlm.signals.wfdb_write import write_record

    rec = synthesize_record(9, 1, ["AFIB", "PVC"], fs=fs, duration=4.0)
    write_record(rec, tmp_path, "fast/r", {"k": 1}, engine="fast")
    write_record(rec, tmp_path, "wfdb/r", {"k": 1}, engine="wfdb")
    for suffix in (".hea", ".dat"):
        assert (tmp_path / f"fast/r{suffix}").read_bytes() == (tmp_path / f"wfdb/r{suffix}").read_bytes()
