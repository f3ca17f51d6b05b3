"""Tiny replicas of the PTB-XL, MIMIC-IV-ECG and CODE-15 folder layouts, written here, read back."""

import csv
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import wfdb

from ecgvlm.signals.readers import detect_format, iter_records, read_record
from ecgvlm.signals.readers.resample import resample
from ecgvlm.signals.record import LEADS

REAL = Path(__file__).parent / "fixtures" / "real"


@pytest.fixture(scope="module")
def real_500() -> np.ndarray:
    """A real 10-s 500 Hz recording (E07500), (12, 5000) mV."""
    return read_record(REAL / "torch_ecg_cinc2021" / "E07500.hea").signal.astype(np.float64)


def _write_wfdb(folder: Path, name: str, signal: np.ndarray, fs: float, names=LEADS, comments=None):
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name, fs=fs, units=["mV"] * len(names), sig_name=list(names), p_signal=signal.T,
        fmt=["16"] * len(names), adc_gain=[1000.0] * len(names), baseline=[0] * len(names),
        comments=comments or [], write_dir=str(folder),
    )  # fmt: skip


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------- PTB-XL


@pytest.fixture(scope="module")
def ptbxl_root(tmp_path_factory, real_500) -> Path:
    root = tmp_path_factory.mktemp("ptbxl")
    rows = []
    for ecg_id, (codes, fold, sex) in enumerate(
        [({"NORM": 100.0, "LVOLT": 0.0, "SR": 0.0}, 3, 0), ({"IMI": 80.0, "ISC_": 50.0}, 10, 1)], start=1
    ):
        sig = real_500 * (1 if ecg_id == 1 else -0.5)
        _write_wfdb(root / "records500" / "00000", f"{ecg_id:05d}_hr", sig, 500)
        _write_wfdb(root / "records100" / "00000", f"{ecg_id:05d}_lr", resample(sig, 500, 100), 100)
        rows.append({
            "ecg_id": ecg_id, "patient_id": 15709.0 + ecg_id, "age": 56.0, "sex": sex,
            "height": "", "weight": 63.0, "report": f"report of {ecg_id}", "scp_codes": repr(codes),
            "heart_axis": "MID", "strat_fold": fold, "site": 2.0,
            "filename_lr": f"records100/00000/{ecg_id:05d}_lr",
            "filename_hr": f"records500/00000/{ecg_id:05d}_hr",
        })  # fmt: skip
    _write_csv(root / "ptbxl_database.csv", rows)
    return root


def test_ptbxl_folder_default_reads_records500(ptbxl_root, real_500):
    assert detect_format(ptbxl_root) == "ptbxl"
    recs = list(iter_records(ptbxl_root))
    assert [r.id for r in recs] == ["1", "2"]
    one, two = recs
    assert one.fs == 500.0 and one.n_samples == 5000
    np.testing.assert_allclose(one.signal, real_500, atol=1e-3)
    assert one.labels == {"NORM": 100.0, "LVOLT": 0.0, "SR": 0.0}
    assert two.labels == {"IMI": 80.0, "ISC_": 50.0}
    assert (one.meta["strat_fold"], two.meta["strat_fold"]) == (3, 10)
    assert (one.meta["sex"], two.meta["sex"]) == ("M", "F")  # PTB-XL: 0 male, 1 female
    assert one.meta["report"] == "report of 1" and one.meta["age"] == 56
    assert one.meta["heart_axis"] == "MID" and one.meta["source"] == "ptbxl"  # extra columns kept


def test_ptbxl_folder_fs100_reads_records100(ptbxl_root):
    recs = list(iter_records(ptbxl_root, fs=100))
    assert all(r.fs == 100.0 and r.n_samples == 1000 for r in recs)
    assert all("records100" in r.meta["path"] for r in recs)
    assert recs[1].meta["strat_fold"] == 10


def test_ptbxl_fs250_resamples_from_records500(ptbxl_root):
    rec = next(iter_records(ptbxl_root, fs=250))
    assert rec.fs == 250.0 and rec.n_samples == 2500 and "records500" in rec.meta["path"]


def test_single_record_inside_ptbxl_folder_gets_its_row(ptbxl_root):
    rec = read_record(ptbxl_root / "records100" / "00000" / "00002_lr.hea")
    assert rec.fs == 100.0 and rec.id == "2"
    assert rec.labels == {"IMI": 80.0, "ISC_": 50.0} and rec.meta["strat_fold"] == 10


def test_cli_info_on_ptbxl_folder(ptbxl_root, capsys):
    import json

    from ecgvlm.cli import main as cli_main

    assert cli_main(["info", "--json", "--fs", "100", str(ptbxl_root)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dataset_format"] == "ptbxl" and summary["records"] == 2
    assert summary["per_label"] == {"NORM": 1, "LVOLT": 1, "SR": 1, "IMI": 1, "ISC_": 1}
    assert summary["per_superclass"] == {"NORM": 1, "MI": 1, "STTC": 1}
    assert summary["per_fs"] == {"100": 2}


def test_synth_like_table_filename_hr_only(tmp_path, real_500):
    """The layout `ecgvlm synth` writes: string ids, only filename_hr, measurement columns."""
    _write_wfdb(tmp_path / "records500" / "00000", "synth-1-000000", real_500, 500)
    _write_csv(tmp_path / "ptbxl_database.csv", [{
        "ecg_id": "synth-1-000000", "scp_codes": "{'CLBBB': 100, 'AFIB': 100}", "strat_fold": 1,
        "filename_hr": "records500/00000/synth-1-000000", "source": "synth", "hr": 88.5, "qrs": 140,
        "pr": "", "seed": 1,
    }])  # fmt: skip
    (rec,) = list(iter_records(tmp_path, fs=100))
    assert rec.id == "synth-1-000000" and rec.meta["source"] == "synth"
    assert rec.fs == 100.0 and rec.n_samples == 1000  # no records100: resampled from 500
    assert rec.labels == {"CLBBB": 100.0, "AFIB": 100.0}
    assert rec.measurements == {"hr": 88.5, "qrs": 140.0}  # empty pr stays absent
    assert rec.meta["seed"] == "1"


def test_ptbxl_bad_row_skipped_and_counted(tmp_path, real_500):
    from ecgvlm.signals.readers import SkipLog

    _write_wfdb(tmp_path / "records500", "a", real_500, 500)
    _write_csv(tmp_path / "ptbxl_database.csv", [
        {"ecg_id": 1, "scp_codes": "{'NORM': 100}", "filename_hr": "records500/a"},
        {"ecg_id": 2, "scp_codes": "__import__('os')", "filename_hr": "records500/a"},
        {"ecg_id": 3, "scp_codes": "{'NORM': 100}", "filename_hr": "records500/missing"},
        {"ecg_id": 4, "scp_codes": "{'NORM': 100}", "filename_hr": "../../etc/passwd"},
    ])  # fmt: skip
    log = SkipLog()
    recs = list(iter_records(tmp_path, on_error="skip", log_to=log))
    assert [r.id for r in recs] == ["1"] and len(log) == 3
    messages = [m for _, m in log.skipped]
    assert "ptbxl_database.csv:3" in messages[0] and "scp_codes" in messages[0]
    assert "missing" in messages[1] and "escapes" in messages[2]
    with pytest.raises(Exception, match="ptbxl_database.csv:3"):
        list(iter_records(tmp_path))


# ---------------------------------------------------------------- MIMIC-IV-ECG

# MIMIC-IV-ECG stores aVF before aVL
MIMIC_ORDER = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")  # fmt: skip


@pytest.fixture(scope="module")
def mimic_root(tmp_path_factory, real_500) -> Path:
    root = tmp_path_factory.mktemp("mimic")
    order = [LEADS.index(n) for n in MIMIC_ORDER]
    studies = [("10000032", "40689238"), ("10000117", "45090959")]
    rec_rows, mm_rows = [], []
    for k, (subject, study) in enumerate(studies):
        rel = f"files/p{subject[:4]}/p{subject}/s{study}"
        _write_wfdb(root / rel, study, real_500[order] * (k + 1), 500, names=MIMIC_ORDER)
        rec_rows.append({"subject_id": subject, "study_id": study, "file_name": study,
                         "ecg_time": "2180-07-23 08:44:00", "path": f"{rel}/{study}"})  # fmt: skip
        mm = {"subject_id": subject, "study_id": study, "cart_id": 6848296, "ecg_time": "2180-07-23 08:44:00"}
        mm.update({f"report_{i}": "" for i in range(18)})
        mm["bandwidth"], mm["filtering"] = "0.005-150Hz", "60 Hz notch Baseline filter"
        if k == 0:
            mm.update(report_0="Sinus rhythm", report_1="1st degree A-V block",
                      report_2="Possible left atrial enlargement", report_3="Borderline ECG")  # fmt: skip
            mm.update(rr_interval=857, p_onset=40, p_end=128, qrs_onset=250, qrs_end=340, t_end=640,
                      p_axis=29999, qrs_axis=45, t_axis=30)  # fmt: skip
        else:
            mm.update(report_0="Atrial fibrillation", report_1="Right bundle branch block")
            mm.update(rr_interval=600, p_onset=29999, p_end=29999, qrs_onset=200, qrs_end=330, t_end=580,
                      p_axis=29999, qrs_axis=-30, t_axis=29999)  # fmt: skip
        mm_rows.append(mm)
    _write_csv(root / "record_list.csv", rec_rows)
    _write_csv(root / "machine_measurements.csv", mm_rows)
    return root


def test_mimic_folder(mimic_root, real_500):
    assert detect_format(mimic_root) == "mimic-iv-ecg"
    one, two = list(iter_records(mimic_root))
    assert one.id == "40689238" and one.meta["subject_id"] == "10000032" and one.fs == 500.0
    np.testing.assert_allclose(one.signal, real_500, atol=1e-3)  # aVF/aVL reordered to LEADS
    assert one.meta["report"] == (
        "Sinus rhythm; 1st degree A-V block; Possible left atrial enlargement; Borderline ECG"
    )
    assert one.labels == {"SR": 100.0, "1AVB": 100.0, "LAO/LAE": 50.0}
    assert one.measurements["hr"] == pytest.approx(70.0)
    assert (one.measurements["pr"], one.measurements["qrs"], one.measurements["qt"]) == (210, 90, 390)
    assert one.measurements["qtc"] == pytest.approx(390 / math.sqrt(0.857), abs=0.1)
    assert one.measurements["axis"] == 45 and "p_axis" not in one.meta and one.meta["t_axis"] == "30"
    assert two.labels == {"AFIB": 100.0, "CRBBB": 100.0}
    assert "pr" not in two.measurements and two.measurements["hr"] == 100.0
    assert two.measurements["axis"] == -30


def test_mimic_resampled(mimic_root):
    rec = next(iter_records(mimic_root, fs=100))
    assert rec.fs == 100.0 and rec.n_samples == 1000 and rec.meta["report"].startswith("Sinus rhythm")


# ---------------------------------------------------------------- CODE-15


@pytest.fixture(scope="module")
def code15_root(tmp_path_factory, real_500) -> Path:
    root = tmp_path_factory.mktemp("code15")
    at400 = resample(real_500, 500, 400)  # (12, 4000)
    tracings = np.zeros((3, 4096, 12), dtype=np.float32)
    tracings[0, 648 : 648 + 2800] = at400[:, :2800].T  # a 7-s exam, zero-padded both sides
    tracings[1, 48 : 48 + 4000] = at400.T  # a 10-s exam
    with h5py.File(root / "exams_part0.hdf5", "w") as f:
        f["tracings"] = tracings
        f["exam_id"] = np.array([1169160, 2873686, 0])  # last row: the zero filler
    header = ["exam_id", "age", "is_male", "nn_predicted_age", "1dAVb", "RBBB", "LBBB", "SB", "ST", "AF",
              "patient_id", "death", "timey", "normal_ecg", "trace_file"]  # fmt: skip
    rows = [
        [1169160, 38, True, 40.2, False, True, False, False, False, False, 523632, "", "", False, "exams_part0.hdf5"],
        [2873686, 73, False, 67.1, True, False, False, False, False, True, 1724173, False, 2.1, False, "exams_part0.hdf5"],
        [9999999, 50, True, 50.0, False, False, False, False, False, False, 1, "", "", True, "exams_part1.hdf5"],
    ]  # fmt: skip
    with open(root / "exams.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return root


def test_code15_folder(code15_root, real_500):
    assert detect_format(code15_root) == "code15"
    recs = list(iter_records(code15_root))
    assert [r.id for r in recs] == ["1169160", "2873686"]  # filler skipped, part1 not present
    short, full = recs
    assert short.fs == 400.0 and short.n_samples == 2800 and short.duration == pytest.approx(7.0)
    assert full.n_samples == 4000 and full.duration == pytest.approx(10.0)
    assert short.labels == {"CRBBB": 100.0}
    assert full.labels == {"1AVB": 100.0, "AFIB": 100.0}
    assert (short.meta["sex"], full.meta["sex"], full.meta["age"]) == ("M", "F", 73)
    assert full.meta["patient_id"] == "1724173"


def test_code15_resampled_to_500_matches_source(code15_root, real_500):
    full = list(iter_records(code15_root, fs=500))[1]
    assert full.fs == 500.0 and full.n_samples == 5000
    err = full.signal[:, 50:-50] - real_500[:, 50:-50]
    assert np.sqrt((err**2).mean()) < 0.05 * np.sqrt((real_500**2).mean())
