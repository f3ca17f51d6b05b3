"""Is a signal physically an ECG? The limits every reader applies, written in one place.

A record that breaks one is refused with a one-line error naming the record, the lead, the value
and the limit; ``dataset build --on-error skip`` counts it in the card instead. The limits are wide
on purpose: they catch files that are not ECGs in millivolts (a 1e9 mV amplitude, a raw ADC square
wave, values scaled by 1e30, a header whose sampling rate is garbage), never an unusual heart.

* ``MAX_ABS_MV`` 20 mV: the tallest QRS complexes of severe hypertrophy reach 5-6 mV and pacing
  spikes about 10 mV; 16-bit recorders at the usual 200-1000 adu/mV clip near 32-160 mV, so 20 mV
  is above every heart and below every saturated or mis-scaled channel seen in the bad-input sweep.
* ``FS_RANGE_HZ`` 50-10,000 Hz, read from the header itself (wfdb silently replaces a missing or
  negative rate with its default 250 Hz): the public 12-lead sets use 100-1000 Hz (INCART 257 Hz,
  PTB 1000 Hz); 50 Hz is below which a QRS (~100 ms) is no longer drawn.
* ``MIN_SECONDS`` 2 s: a printout column is 2.5 s; under 2 s there may be no whole beat.
* flat lead: peak-to-peak below ``FLAT_MV`` (0.01 mV, under the noise of any real electrode) on
  every lead means no signal at all; a single flat lead is a lead-off and is kept.
* saturated lead: more than ``SATURATED_SHARE`` (50%) of the samples pinned at the lead's own
  minimum or maximum (a clipped square wave); a real trace spends a few samples at its extremes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecgvlm.errors import ECGVLMError

MAX_ABS_MV = 20.0
FS_RANGE_HZ = (50.0, 10_000.0)
MIN_SECONDS = 2.0
FLAT_MV = 0.01
SATURATED_SHARE = 0.5


def check_sampling_rate(fs: float, where: str | Path | None, what: str = "sampling rate") -> float:
    """``fs`` as a float when it lies in ``FS_RANGE_HZ``; else a one-line error."""
    lo, hi = FS_RANGE_HZ
    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise ECGVLMError(f"{what} {fs!r} is not a number of Hz ({lo:g}-{hi:g} expected)", where) from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ECGVLMError(f"{what} {fs!r} Hz is outside {lo:g}-{hi:g} Hz", where)
    return value


def check_signal(signal: np.ndarray, fs: float, names: Sequence[str], where: str | Path | None) -> None:
    """Refuse a (leads, samples) array in mV that cannot be an ECG (limits in the module doc)."""
    check_sampling_rate(fs, where)
    sig = np.asarray(signal, dtype=np.float64)
    seconds = sig.shape[1] / float(fs)
    if seconds < MIN_SECONDS:
        raise ECGVLMError(f"the record lasts {seconds:.2f} s; at least {MIN_SECONDS:g} s are needed", where)
    peak = np.abs(sig).max(axis=1)
    worst = int(np.argmax(peak))
    if peak[worst] > MAX_ABS_MV:
        raise ECGVLMError(
            f"lead {names[worst]} reaches {peak[worst]:.3g} mV; an ECG stays within +-{MAX_ABS_MV:g} mV "
            "(wrong units or gain in the header?)",
            where,
        )
    lo, hi = sig.min(axis=1), sig.max(axis=1)
    if (hi - lo < FLAT_MV).all():
        raise ECGVLMError(f"every lead is flat (peak-to-peak under {FLAT_MV:g} mV): no signal", where)
    pinned = ((sig == lo[:, None]) | (sig == hi[:, None])).mean(axis=1)
    moving = hi - lo >= FLAT_MV
    saturated = np.flatnonzero(moving & (pinned > SATURATED_SHARE))
    if saturated.size:
        i = int(saturated[0])
        raise ECGVLMError(
            f"lead {names[i]} is saturated ({pinned[i]:.0%} of samples at its limits "
            f"{lo[i]:.3g}/{hi[i]:.3g} mV): a clipped or square-wave channel, not an ECG",
            where,
        )
