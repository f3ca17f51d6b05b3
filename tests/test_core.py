import numpy as np
import pytest

from ecgvlm.cli import COMMANDS, main
from ecgvlm.errors import ECGVLMError
from ecgvlm.io import atomic_write_text, read_jsonl, resolve_inside
from ecgvlm.signals import LEADS, ECGRecord
from ecgvlm.signals.vocab import SUPERCLASSES, statements, superclasses_of


def test_vocabulary_has_71_statements_with_ptbxl_counts():
    table = statements()
    assert len(table) == 71
    assert sum(s.diagnostic for s in table.values()) == 44
    assert sum(s.form for s in table.values()) == 19
    assert sum(s.rhythm for s in table.values()) == 12
    assert {s.superclass for s in table.values() if s.diagnostic} == set(SUPERCLASSES)
    assert superclasses_of(["IMI", "SR", "CLBBB", "nonsense"]) == ["MI", "CD"]


def test_record_validates_shape_and_nans():
    ok = ECGRecord(np.zeros((12, 100)), 100, meta={"id": "r1"})
    assert ok.signal.dtype == np.float32 and ok.duration == 1.0
    with pytest.raises(ECGVLMError, match="r1.*shape"):
        ECGRecord(np.zeros((2, 100)), 100, meta={"id": "r1"})
    bad = np.zeros((12, 10))
    bad[3, 4] = np.nan
    with pytest.raises(ECGVLMError, match="NaN"):
        ECGRecord(bad, 100, meta={"id": "r2"})
    assert len(LEADS) == 12


def test_resolve_inside_refuses_escape(tmp_path):
    assert resolve_inside(tmp_path, "a/b.png") == (tmp_path / "a/b.png").resolve()
    with pytest.raises(ECGVLMError, match="escapes"):
        resolve_inside(tmp_path, "../x.png")
    with pytest.raises(ECGVLMError, match="escapes"):
        resolve_inside(tmp_path, "/etc/passwd")


def test_read_jsonl_names_bad_line(tmp_path):
    p = tmp_path / "x.jsonl"
    atomic_write_text(p, '{"a": 1}\n{oops\n')
    with pytest.raises(ECGVLMError, match=r"x.jsonl: line 2"):
        list(read_jsonl(p))


def test_cli_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    assert main(["no-such-command"]) == 2


def test_atomic_write_honours_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_cli_takes_options_between_positionals(monkeypatch):
    import ecgvlm.train.cli as train_cli

    seen = {}
    monkeypatch.setattr(train_cli, "main", lambda args: seen.update(vars(args)) or 0)
    assert main(["train", "--config", "x.yaml", "a=1", "--resume", "b=2"]) == 0
    assert seen["resume"] is True and seen["config"] == "x.yaml"
    assert seen["overrides"] == ["a=1", "b=2"]
