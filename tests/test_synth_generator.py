"""The dipole generator: exact limb-lead identities, determinism, label rules, true measurements."""

import numpy as np
import pytest

from ecgvlm.errors import ECGVLMError
from ecgvlm.signals.record import LEADS
from ecgvlm.signals.synth import CONDITIONS, synthesize, synthesize_record
from ecgvlm.signals.synth_conditions import RHYTHMS, complete_labels, conflicts, draw_labels
from ecgvlm.signals.vocab import SUPERCLASSES, codes, superclasses_of


def _identity_error_mv(sig: np.ndarray) -> float:
    s = sig.astype(np.float64)
    i, ii, iii, avr, avl, avf = s[:6]
    return max(
        np.abs(iii - (ii - i)).max(),
        np.abs(avr + (i + ii) / 2).max(),
        np.abs(avl - (i - ii / 2)).max(),
        np.abs(avf - (ii - i / 2)).max(),
    )


def test_einthoven_goldberger_hold_below_1uv_on_every_record():
    recs = list(synthesize(40, seed=5)) + [synthesize_record(6, i, [c]) for i, c in enumerate(CONDITIONS)]
    worst = max(_identity_error_mv(r.signal) for r in recs)
    assert worst < 1e-3  # 1 uV
    assert worst < 1e-5  # in fact only float32 rounding remains
    for r in recs:
        assert r.signal.shape == (12, 5000) and r.signal.dtype == np.float32 and r.fs == 500
        assert np.abs(r.signal).max() < 10


def test_record_depends_on_seed_and_index_only():
    a = synthesize_record(3, 17)
    b = synthesize_record(3, 17)
    c = synthesize_record(3, 18)
    d = synthesize_record(4, 17)
    assert np.array_equal(a.signal, b.signal) and a.labels == b.labels and a.measurements == b.measurements
    assert not np.array_equal(a.signal, c.signal) and not np.array_equal(a.signal, d.signal)
    assert a.id == "synth-3-000017" and a.meta["source"] == "synth"
    assert [r.id for r in synthesize(3, seed=3)] == ["synth-3-000000", "synth-3-000001", "synth-3-000002"]
    assert np.array_equal(list(synthesize(18, seed=3))[17].signal, a.signal)


def test_supported_conditions_are_ptbxl_codes_spanning_all_superclasses():
    assert len(CONDITIONS) >= 24
    assert set(CONDITIONS) <= set(codes())
    assert superclasses_of(CONDITIONS) == list(SUPERCLASSES)


def test_prior_draws_compatible_label_sets_about_a_third_norm():
    rng = np.random.default_rng(0)
    sets = [draw_labels(rng) for _ in range(1500)]
    assert all(not conflicts(s) for s in sets)
    assert all(sum(c in RHYTHMS for c in s) == 1 for s in sets)
    norm = sum("NORM" in s for s in sets) / len(sets)
    assert 0.28 < norm < 0.40
    assert not any("AFIB" in s and "1AVB" in s for s in sets)
    assert all(set(s) == {"NORM", "SR"} for s in sets if "NORM" in s)
    seen = set().union(*map(set, sets))
    assert seen == set(CONDITIONS)  # every statement is reachable from the prior


def test_requested_labels_are_completed_or_refused():
    assert complete_labels(["CLBBB"]) == ["SR", "CLBBB"]
    assert complete_labels(["AFIB", "CLBBB"]) == ["AFIB", "CLBBB"]
    assert set(complete_labels(["SR", "IMI", "ISC_"])) == {"SR", "IMI", "ISC_"}
    for bad in (["AFIB", "1AVB"], ["AFIB", "SR"], ["NORM", "LVH"], ["CLBBB", "LVH"], ["SBRAD", "STACH"]):
        with pytest.raises(ECGVLMError, match="incompatible"):
            complete_labels(bad)
    with pytest.raises(ECGVLMError, match="unsupported condition"):
        complete_labels(["XYZ"])
    with pytest.raises(ECGVLMError):
        synthesize_record(1, 0, ["AFIB", "1AVB"])


def test_labels_and_measurements_follow_the_ptbxl_conventions():
    rec = synthesize_record(2, 5, ["AFIB", "CLBBB"])
    assert rec.labels == {"AFIB": 100.0, "CLBBB": 100.0}
    assert "pr" not in rec.measurements  # no PR interval without P waves
    assert rec.measurements["qrs"] >= 130
    norm = synthesize_record(2, 6, ["NORM"])
    m = norm.measurements
    assert set(m) == {"hr", "pr", "qrs", "qt", "qtc", "axis"}
    assert 60 <= m["hr"] <= 100 and 120 <= m["pr"] <= 200 and m["qrs"] < 110 and m["qtc"] < 440
    assert abs(m["qtc"] - m["qt"] / np.sqrt(60.0 / m["hr"])) < 1.0  # Bazett on the true mean RR
    assert norm.meta["sex"] in ("M", "F") and 18 <= norm.meta["age"] <= 95
    assert norm.lead("V1").shape == (5000,) and LEADS[6] == "V1"


def test_other_rates_and_durations():
    rec = synthesize_record(1, 0, ["SR"], fs=100, duration=5.0)
    assert rec.signal.shape == (12, 500) and rec.fs == 100
    assert _identity_error_mv(rec.signal) < 1e-5
    with pytest.raises(ECGVLMError):
        synthesize_record(1, 0, fs=10)
