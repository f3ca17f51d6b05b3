"""Label mappings: SNOMED-CT -> SCP, SCP <-> benchmark label sets, machine report -> SCP."""

import csv
from pathlib import Path

import pytest

from ecgvlm.errors import ECGVLMError
from ecgvlm.signals.mappings import (
    BENCHMARK_LABELS,
    BENCHMARK_TO_SCP,
    benchmark_to_scp,
    report_to_scp,
    scp_to_benchmark,
    snomed_table,
    snomed_to_scp,
)
from ecgvlm.signals.vocab import codes, superclasses_of

REAL = Path(__file__).parent / "fixtures" / "real"

# The 30 SNOMED-CT codes of the 26 scored CinC-2021 classes (4 pairs scored as equivalent).
CINC_SCORED = {
    "164889003": "AF", "164890007": "AFL", "6374002": "BBB", "426627000": "Brady",
    "733534002": "CLBBB", "164909002": "LBBB", "713427006": "CRBBB", "59118001": "RBBB",
    "270492004": "IAVB", "713426002": "IRBBB", "39732003": "LAD", "445118002": "LAnFB",
    "164947007": "LPR", "251146004": "LQRSV", "111975006": "LQT", "698252002": "NSIVCB",
    "426783006": "NSR", "284470004": "PAC", "63593006": "SVPB", "10370003": "PR",
    "365413008": "PRWP", "427172004": "PVC", "17338001": "VPB", "164917005": "QAb",
    "47665007": "RAD", "427393009": "SA", "426177001": "SB", "427084000": "STach",
    "164934002": "TAb", "59931005": "TInv",
}  # fmt: skip


def test_table_codes_are_valid_scp_codes():
    vocab = set(codes())
    for entry in snomed_table().values():
        assert set(entry.scp) <= vocab, entry
        assert entry.note, f"{entry.snomed} has no note"
        if not entry.scp:
            assert "unmapped" in entry.note


def test_every_scored_cinc_code_is_in_the_table():
    table = snomed_table()
    assert set(CINC_SCORED) <= set(table)
    assert {c for c, e in table.items() if e.scored} == set(CINC_SCORED)
    unmapped = {CINC_SCORED[c] for c in CINC_SCORED if not table[c].scp}
    assert unmapped == {"LAD", "RAD"}  # axis deviations: no SCP statement


def test_every_code_in_the_real_records_is_in_the_table():
    with open(REAL / "torch_ecg_cinc2021_labels.tsv", newline="") as f:
        present = {c for row in csv.DictReader(f, delimiter="\t") for c in row["Dx_SNOMED"].split(",")}
    assert len(present) == 25 and present <= set(snomed_table())


def test_equivalent_cinc_classes_map_alike():
    for a, b in [("733534002", "164909002"), ("713427006", "59118001"), ("284470004", "63593006"),
                 ("427172004", "17338001")]:  # fmt: skip
        assert snomed_to_scp(a) == snomed_to_scp(b) != []


@pytest.mark.parametrize(
    "snomed, scp",
    [("67741000119109", ["LAO/LAE"]), ("426177001", ["SBRAD"]), ("164889003", ["AFIB"]),
     ("270492004", ["1AVB"]), ("11157007", ["BIGU", "PVC"]), (426783006, ["SR"]), ("39732003", []),
     ("999999", [])],
)  # fmt: skip
def test_snomed_to_scp(snomed, scp):
    assert snomed_to_scp(snomed) == scp


def test_benchmark_round_trip():
    for bench, labels in BENCHMARK_LABELS.items():
        assert list(BENCHMARK_TO_SCP[bench]) == labels
        for label in labels:
            scp = benchmark_to_scp(label, bench)
            assert scp and set(scp) <= set(codes())
            assert scp_to_benchmark(scp[:1], bench) == [label]


def test_scp_to_benchmark_examples():
    labels = {"CLBBB": 100.0, "1AVB": 100.0, "SR": 0.0, "IMI": 50.0}
    assert scp_to_benchmark(labels, "cpsc") == ["I-AVB", "LBBB"]
    assert scp_to_benchmark(labels, "code15") == ["1dAVb", "LBBB"]
    assert scp_to_benchmark(labels, "code15", min_likelihood=100) == ["1dAVb", "LBBB"]
    assert scp_to_benchmark(labels, "ptbxl-super") == superclasses_of(labels) == ["MI", "CD"]
    assert scp_to_benchmark(labels, "ptbxl-super", min_likelihood=80) == ["CD"]
    assert scp_to_benchmark(["STACH", "AFIB"], "code15") == ["ST", "AF"]
    assert scp_to_benchmark(["STD_", "NORM"], "cpsc") == ["NORM", "STD"]
    assert scp_to_benchmark(["LVH"], "cpsc") == []


def test_unknown_benchmark_or_label():
    with pytest.raises(ECGVLMError, match="unknown benchmark"):
        scp_to_benchmark(["NORM"], "mitbih")
    with pytest.raises(ECGVLMError, match="unknown cpsc label"):
        benchmark_to_scp("ST", "cpsc")


def test_report_to_scp():
    assert report_to_scp("Sinus rhythm; Incomplete right bundle branch block") == {"SR": 100, "IRBBB": 100}
    assert report_to_scp("Sinus bradycardia. Probable left ventricular hypertrophy") == {
        "SBRAD": 100,
        "LVH": 50,
    }
    assert report_to_scp("Atrial fibrillation with rapid ventricular response; PVC(s)") == {
        "AFIB": 100,
        "PVC": 100,
    }
    assert report_to_scp("Abnormal ECG") == {}
