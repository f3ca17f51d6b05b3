"""All 52 real records (tests/fixtures/real) through the project reader."""

import csv
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgvlm.cli import main as cli_main
from ecgvlm.signals.readers import SkipLog, iter_records, read_record
from ecgvlm.signals.record import LEADS

REAL = Path(__file__).parent / "fixtures" / "real"
CINC = REAL / "torch_ecg_cinc2021"

# CinC abbreviation (as in the fixture's labels tsv) -> expected SCP codes, written independently of
# snomed_to_scp.tsv so the test checks the Dx parsing and the mapping table against a second source.
ABBR_TO_SCP = {
    "LAE": {"LAO/LAE"}, "LAA": {"LAO/LAE"}, "SB": {"SBRAD"}, "STach": {"STACH"}, "LQT": {"LNGQT"},
    "LVH": {"LVH"}, "NSR": {"SR"}, "NSSTTA": {"NST_"}, "RBBB": {"CRBBB"}, "AnMIs": {"ISCAN"},
    "TInv": {"INVT"}, "TAb": {"TAB_"}, "STC": {"NST_"}, "IRBBB": {"IRBBB"}, "PAC": {"PAC"},
    "NSIVCB": {"IVCD"}, "AED": set(), "LVHV": {"VCLVH"}, "PVC": {"PVC"}, "RVH": {"RVH"},
    "SA": {"SARRH"}, "ATach": {"SVTAC"}, "BPAC": {"PAC"}, "STIAb": {"NST_"}, "PRWP": {"ABQRS"},
}  # fmt: skip


def _tsv_rows():
    with open(REAL / "torch_ecg_cinc2021_labels.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def all_records():
    log = SkipLog()
    records = {r.id: r for r in iter_records(REAL, on_error="skip", log_to=log)}
    assert log.skipped == []
    return records


def test_all_52_records_read_with_12_leads(all_records):
    assert len(all_records) == 52
    for rec in all_records.values():
        assert rec.signal.shape[0] == 12 and rec.signal.dtype == np.float32
        assert np.isfinite(rec.signal).all()
        # Einthoven and Goldberger hold on these recordings up to quantisation (< 10 uV) only if every lead
        # landed in its right row: a swapped or mis-named lead breaks these.
        one, two = rec.lead("I"), rec.lead("II")
        assert np.abs(rec.lead("III") - (two - one)).max() < 0.01, rec.id
        assert np.abs(rec.lead("aVR") + (one + two) / 2).max() < 0.01, rec.id
        assert np.abs(rec.lead("aVF") - (two - one / 2)).max() < 0.01, rec.id
        assert 0.05 < np.abs(rec.signal).max() < 20, rec.id  # millivolts, not volts or raw counts


@pytest.mark.parametrize("row", _tsv_rows(), ids=lambda r: r["record"])
def test_cinc_record_fs_duration_labels(all_records, row):
    rec = all_records[row["record"]]
    assert rec.fs == float(row["fs"]) == 500.0
    assert rec.n_samples == int(row["nsamp"]) and rec.duration == pytest.approx(10.0)
    expected = set().union(*(ABBR_TO_SCP[a] for a in row["abbr"].split(",")))
    assert set(rec.labels) == expected
    assert all(v == 100 for v in rec.labels.values())
    assert rec.meta["snomed"] == row["Dx_SNOMED"].split(",")
    assert rec.meta["age"] == int(row["age"])
    assert rec.meta["sex"] == {"Male": "M", "Female": "F"}[row["sex"]]
    assert rec.meta["source"] == "cinc2021"


def test_cinc_samples_match_wfdb_exactly():
    rec = read_record(CINC / "E07500.mat")  # any of the record's files names the record
    ref = wfdb.rdrecord(str(CINC / "E07500"))
    np.testing.assert_allclose(rec.signal, ref.p_signal.T.astype(np.float32), atol=1e-6)
    assert rec.labels == {"LAO/LAE": 100.0, "SBRAD": 100.0}


def test_unmapped_snomed_code_kept_in_meta(all_records):
    rec = all_records["JS20002"]  # PAC, atrial escape beat (no SCP equivalent), TAb, TInv
    assert set(rec.labels) == {"PAC", "TAB_", "INVT"}
    assert rec.meta["snomed_unmapped"] == ["251187003"]


def test_ptb_diagnostic_record(all_records):
    rec = all_records["s0010_re"]
    assert rec.fs == 1000.0 and rec.n_samples == 38400 and rec.duration == pytest.approx(38.4)
    assert rec.meta["format"] == "ptbdb" and rec.meta["sex"] == "F" and rec.meta["age"] == 81
    # header: "Acute infarction (localization): infero-latera" (cut short in the file)
    assert rec.labels == {"ILMI": 100.0}
    # lower-case i..v6 picked from the 15 channels in the standard order; Frank leads dropped
    ref = wfdb.rdrecord(str(REAL / "wfdb_python_ptbdb" / "s0010_re"), channels=[3, 11])
    np.testing.assert_allclose(rec.lead("aVR"), ref.p_signal[:, 0], atol=1e-6)
    np.testing.assert_allclose(rec.lead("V6"), ref.p_signal[:, 1], atol=1e-6)


def test_ptbxl_record_100hz(all_records):
    rec = all_records["00001_lr"]
    assert rec.fs == 100.0 and rec.n_samples == 1000 and rec.duration == pytest.approx(10.0)
    ref = wfdb.rdrecord(str(REAL / "ecg_image_kit_ptbxl" / "00001_lr"))
    assert ref.sig_name[3] == "AVR"  # upper-case in the file, normalised by the reader
    np.testing.assert_allclose(rec.lead("aVR"), ref.p_signal[:, 3], atol=1e-6)


def test_resample_1000_to_500_keeps_duration_and_waveform():
    src = read_record(REAL / "wfdb_python_ptbdb" / "s0010_re.hea")
    rec = read_record(REAL / "wfdb_python_ptbdb" / "s0010_re.hea", fs=500)
    assert rec.fs == 500.0 and rec.n_samples == 19200 and rec.duration == pytest.approx(src.duration)
    assert rec.meta["fs_original"] == 1000.0
    # away from the edges, every second sample of the original is reproduced closely
    diff = rec.signal[:, 100:-100] - src.signal[:, 200:-200:2]
    assert np.sqrt((diff**2).mean()) < 0.02 * np.sqrt((src.signal**2).mean())


def test_upsample_100_to_500():
    rec = read_record(REAL / "ecg_image_kit_ptbxl" / "00001_lr", fs=500)
    assert rec.fs == 500.0 and rec.n_samples == 5000 and rec.duration == pytest.approx(10.0)


def test_cli_info_prints_labels(capsys):
    assert cli_main(["info", str(CINC / "E07500.hea")]) == 0
    out = capsys.readouterr().out
    assert "cinc-mat" in out and "E07500" in out and "500 Hz" in out and "10 s" in out
    assert "LAO/LAE" in out and "left atrial overload/enlargement" in out and "[HYP]" in out
    assert "SBRAD" in out and "sinus bradycardia" in out
    assert ", ".join(LEADS) in out


def test_cli_info_json_and_folder(capsys):
    import json

    assert cli_main(["info", "--json", str(REAL / "wfdb_python_ptbdb" / "s0010_re")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["fs"] == 1000 and summary["superclasses"] == ["MI"]
    assert summary["labels"][0]["code"] == "ILMI"
    assert cli_main(["info", "--json", str(REAL)]) == 0
    folder = json.loads(capsys.readouterr().out)
    assert folder["records"] == 52 and folder["skipped"] == 0
    assert folder["per_format"] == {"cinc-mat": 50, "wfdb": 1, "ptbdb": 1}
    assert folder["per_label"]["PAC"] == 20 and folder["per_fs"] == {"500": 50, "100": 1, "1000": 1}
