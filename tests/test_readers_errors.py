"""Bad inputs: each gives one ECGVLMError line that starts with (names) the file."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgvlm.cli import main as cli_main
from ecgvlm.errors import ECGVLMError
from ecgvlm.signals.readers import SkipLog, iter_records, read_record
from ecgvlm.signals.record import LEADS

REAL = Path(__file__).parent / "fixtures" / "real"
PTBXL = REAL / "ecg_image_kit_ptbxl"


def _error(path, **kw) -> str:
    with pytest.raises(ECGVLMError) as info:
        read_record(path, **kw)
    text = str(info.value)
    assert "\n" not in text
    return text


def _copy_record(tmp_path: Path) -> Path:
    for f in PTBXL.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / "00001_lr.hea"


def test_truncated_dat(tmp_path):
    hea = _copy_record(tmp_path)
    dat = tmp_path / "00001_lr.dat"
    dat.write_bytes(dat.read_bytes()[:5000])
    text = _error(hea)
    assert text.startswith(str(dat)) and "truncated" in text and "5000 bytes" in text and "24000" in text


def test_truncated_mat(tmp_path):
    import scipy.io

    for suffix in (".hea", ".mat"):
        shutil.copy(REAL / "torch_ecg_cinc2021" / f"E07500{suffix}", tmp_path)
    val = scipy.io.loadmat(str(tmp_path / "E07500.mat"))["val"]
    scipy.io.savemat(str(tmp_path / "E07500.mat"), {"val": val[:, :3000]}, format="4")
    text = _error(tmp_path / "E07500.hea")
    assert text.startswith(str(tmp_path / "E07500.mat")) and "truncated" in text and "5000" in text


def test_header_naming_missing_file(tmp_path):
    hea = _copy_record(tmp_path)
    (tmp_path / "00001_lr.dat").unlink()
    text = _error(hea)
    assert text.startswith(str(hea)) and "'00001_lr.dat'" in text and "does not exist" in text


def test_nan_samples_name_the_lead(tmp_path):
    sig = np.random.default_rng(0).normal(0, 0.3, (1000, 12))
    sig[100:110, LEADS.index("V3")] = np.nan
    wfdb.wrsamp("nanrec", fs=500, units=["mV"] * 12, sig_name=list(LEADS), p_signal=sig, fmt=["16"] * 12,
                write_dir=str(tmp_path))  # fmt: skip
    text = _error(tmp_path / "nanrec.hea")
    assert text.startswith(str(tmp_path / "nanrec.hea")) and "NaN" in text and "lead V3 (10 samples)" in text


def test_two_lead_record_asked_for_12_leads(tmp_path):
    sig = np.random.default_rng(0).normal(0, 0.3, (720, 2))
    wfdb.wrsamp("100", fs=360, units=["mV"] * 2, sig_name=["MLII", "V1"], p_signal=sig, fmt=["212"] * 2,
                write_dir=str(tmp_path))  # fmt: skip
    text = _error(tmp_path / "100.dat")
    assert text.startswith(str(tmp_path / "100.hea"))
    assert "missing leads I, II, III, aVR, aVL, aVF, V2, V3, V4, V5, V6" in text and "MLII, V1" in text


def test_eight_independent_leads_derive_the_limb_leads(tmp_path):
    full = REAL / "ecg_image_kit_ptbxl" / "00001_lr"
    ref = read_record(full)
    keep = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    sig = np.stack([ref.lead(n) for n in keep], axis=1).astype(np.float64)
    wfdb.wrsamp("eight", fs=100, units=["mV"] * 8, sig_name=keep, p_signal=sig, fmt=["16"] * 8,
                adc_gain=[1000.0] * 8, baseline=[0] * 8, write_dir=str(tmp_path))  # fmt: skip
    rec = read_record(tmp_path / "eight")
    assert rec.meta["derived_leads"] == ["III", "aVR", "aVL", "aVF"]
    np.testing.assert_allclose(rec.signal, ref.signal, atol=2e-3)


def test_unknown_file(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    text = _error(junk)
    assert text.startswith(str(junk)) and "unknown format" in text


def test_missing_path(tmp_path):
    text = _error(tmp_path / "nope.hea")
    assert text.startswith(str(tmp_path / "nope.hea"))


def test_unparseable_header(tmp_path):
    hea = tmp_path / "bad.hea"
    hea.write_text("this is not a header\n\x00\x01 garbage line\n")
    text = _error(hea)
    assert text.startswith(str(hea)) and "header" in text


def test_duplicate_lead_names(tmp_path):
    sig = np.zeros((100, 13))
    names = [*LEADS, "avr"]
    wfdb.wrsamp("dup", fs=500, units=["mV"] * 13, sig_name=names, p_signal=sig, fmt=["16"] * 13,
                write_dir=str(tmp_path))  # fmt: skip
    assert "appears twice" in _error(tmp_path / "dup.hea")


def test_unknown_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ECGVLMError, match="unknown format"):
        list(iter_records(tmp_path))


def test_iter_records_skip_counts_and_keeps_going(tmp_path):
    good = _copy_record(tmp_path)
    shutil.copy(good, tmp_path / "orphan.hea")  # names 00001_lr.dat, which exists: readable
    (tmp_path / "lost.hea").write_text(good.read_text().replace("00001_lr.dat", "lost.dat"))
    (tmp_path / "zz_bad.hea").write_text("garbage\n")
    log = SkipLog()
    recs = list(iter_records(tmp_path, on_error="skip", log_to=log))
    assert [r.id for r in recs] == ["00001_lr", "orphan"] and log.read == 2
    assert len(log) == 2 and all(m.startswith(str(tmp_path)) for _, m in log.skipped)
    with pytest.raises(ECGVLMError):
        list(iter_records(tmp_path))


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    assert cli_main(["info", str(junk)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(junk) in err
