"""Resampling to a common sampling frequency with a polyphase filter (scipy.signal.resample_poly)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def resample(signal: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample (channels, samples) from ``fs_in`` to ``fs_out`` Hz; the duration is kept.

    The rate ratio is approximated by a fraction with denominator <= 1000, which is exact for
    every rate ECG databases use (100, 250, 257, 360, 400, 500, 1000 Hz ...).
    """
    if fs_in == fs_out:
        return signal
    from scipy.signal import resample_poly  # slow to import, and most records need no resampling

    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    out = resample_poly(
        signal.astype(np.float64), ratio.numerator, ratio.denominator, axis=-1, padtype="line"
    )
    return out.astype(np.float32)
