"""Lead-name normalisation and resampling helpers."""

import numpy as np
import pytest

from ecgvlm.signals.readers.leads import missing_leads, normalize_lead_name
from ecgvlm.signals.readers.resample import resample
from ecgvlm.signals.record import LEADS


@pytest.mark.parametrize(
    "raw, std",
    [("AVR", "aVR"), ("avr", "aVR"), ("aVR", "aVR"), ("i", "I"), ("III", "III"), ("DII", "II"),
     ("D3", "III"), ("v6", "V6"), ("Lead II", "II"), ("LEAD_V1", "V1"), (" aVF ", "aVF"),
     ("MLII", None), ("vx", None), ("V7", None), ("RESP", None)],
)  # fmt: skip
def test_normalize_lead_name(raw, std):
    assert normalize_lead_name(raw) == std


def test_missing_leads():
    assert missing_leads([n.lower() for n in LEADS]) == []
    assert missing_leads(["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]) == []  # limb leads derivable
    assert missing_leads(["MLII", "V5"]) == [n for n in LEADS if n != "V5"]


@pytest.mark.parametrize("fs_in, fs_out", [(1000, 500), (400, 500), (500, 100), (360, 500), (257, 500)])
def test_resample_keeps_duration_and_a_sine(fs_in, fs_out):
    t = np.arange(int(10 * fs_in)) / fs_in
    x = np.stack([np.sin(2 * np.pi * 5 * t)] * 2)
    y = resample(x, fs_in, fs_out)
    assert y.shape == (2, int(10 * fs_out))
    t_out = np.arange(y.shape[1]) / fs_out
    inner = slice(fs_out // 2, -fs_out // 2)  # the filter's edge effects stay within 0.5 s
    np.testing.assert_allclose(y[0, inner], np.sin(2 * np.pi * 5 * t_out)[inner], atol=0.02)
