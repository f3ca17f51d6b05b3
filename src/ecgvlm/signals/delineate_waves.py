"""The per-wave detectors behind ``delineate``: on a median beat, QRS onset/offset, the P wave,
T end and Q waves; across the whole record, atrial activity (P waves anywhere outside QRS-T,
flutter periodicity). Signals are in mV, already filtered and baseline-corrected.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import butter, find_peaks, peak_widths, sosfiltfilt

from ecgvlm.signals.record import LEADS

L = {name: i for i, name in enumerate(LEADS)}
_INDEP = [L[n] for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
# Fractions of the wave's peak (spatial velocity for QRS, spatial magnitude for P and T) that mark
# its onset/offset.
QRS_THRESHOLD = 0.08
P_THRESHOLD = 0.08
T_THRESHOLD = 0.06


def _ms(v: float, fs: float) -> int:
    return int(round(v * fs / 1000.0))


def qrs_bounds(m: np.ndarray, f0: int, fs: float) -> tuple[int, int]:
    """QRS onset/offset on a median beat from the spatial velocity of all 12 leads."""
    v = np.sqrt((np.gradient(m, axis=1) ** 2).sum(axis=0))
    v = np.convolve(v, np.ones(3) / 3, mode="same")
    lo, hi = f0 - _ms(120, fs), f0 + _ms(120, fs)
    peak = lo + int(np.argmax(v[lo:hi]))
    floor = np.percentile(v, 10)
    thr = floor + QRS_THRESHOLD * (v[peak] - floor)
    on = peak
    while on > lo and v[on - 1] > thr:
        on -= 1
    off = peak
    while off < hi and v[off + 1] > thr:
        off += 1
    # a notch (bundle branch block) or a delta-wave plateau dips the velocity: continue across a
    # short dip when a substantial part of the QRS lies beyond it (a P wave is never substantial)
    gap, big = _ms(40, fs), max(thr, 0.25 * v[peak])
    for _ in range(3):
        ahead = v[off + 1 : off + 1 + gap]
        if not (ahead > big).any():
            break
        off = off + 1 + int(np.flatnonzero(ahead > thr)[-1])
        while off < hi and v[off + 1] > thr:
            off += 1
    gap, big = _ms(25, fs), max(thr, 0.15 * v[peak])
    for _ in range(3):
        behind = v[max(lo, on - gap) : on]
        if not (behind > big).any():
            break
        on = max(lo, on - gap) + int(np.flatnonzero(behind > thr)[0])
        while on > lo and v[on - 1] > thr:
            on -= 1
    return on, off


def p_wave(m: np.ndarray, on: int, fs: float) -> tuple[int, int, float] | None:
    """(P onset, P offset, amplitude) before QRS onset ``on`` in a median beat, or None."""
    lo = max(0, on - _ms(360, fs))
    seg = m[[L["II"], L["V1"], L["I"], L["aVF"]], lo : on - _ms(20, fs)]
    if seg.shape[1] < _ms(80, fs):
        return None
    seg = seg - m[[L["II"], L["V1"], L["I"], L["aVF"]], on - _ms(20, fs)][:, None]
    mag = np.sqrt((seg**2).sum(axis=0))
    peaks, props = find_peaks(mag, prominence=0.05, width=_ms(20, fs))
    if peaks.size == 0:
        return None
    widths = peak_widths(mag, peaks, rel_height=0.5)[0] * 1000.0 / fs
    good = [i for i in range(peaks.size) if widths[i] <= 140 and mag[peaks[i]] >= 0.06]
    if not good:
        return None
    pk = peaks[good[-1]]
    thr = P_THRESHOLD * mag[pk]
    start = pk
    while start > 0 and mag[start - 1] > thr:
        start -= 1
    if start == 0:
        return None  # cut by the window: the tail of a previous T wave, not a P wave
    end = pk
    while end < mag.size - 1 and mag[end + 1] > thr:
        end += 1
    return lo + start, lo + end, float(mag[pk])


def t_end(m: np.ndarray, off: int, limit: int, fs: float) -> tuple[int, int]:
    """(T peak, T end) from the spatial magnitude after the QRS; end where it falls to 12 % of peak."""
    lo = off + _ms(60, fs)
    if limit - lo < _ms(80, fs):
        limit = min(m.shape[1] - 1, lo + _ms(150, fs))
    mag = np.sqrt((m[_INDEP, :] ** 2).sum(axis=0))
    pk = lo + int(np.argmax(mag[lo:limit]))
    floor = float(np.percentile(mag, 20))  # residual noise / unlocked P waves in the median beat
    height = mag[pk] - floor
    thr = floor + T_THRESHOLD * height
    end = pk
    while end < limit and mag[end + 1] > thr:
        if mag[end] < floor + 0.3 * height and mag[end + 1] > mag[end]:
            break  # a trough: the next wave (a P wave) begins here
        end += 1
    return pk, end


def q_wave(x: np.ndarray, on: int, off: int, fs: float) -> tuple[float, float]:
    """(width ms, depth mV) of an initial negative deflection (Q or QS) in one lead."""
    seg = x[on : off + 1] - x[on]
    moved = np.flatnonzero(np.abs(seg) > 0.03)
    if moved.size == 0 or seg[moved[0]] > 0:
        return 0.0, 0.0
    back = np.flatnonzero(seg[moved[0] :] >= 0.0)
    end = moved[0] + (back[0] if back.size else seg.size - 1 - moved[0])
    return end * 1000.0 / fs, float(-seg[: end + 1].min())


def _atrial_waves(xc: np.ndarray, r: np.ndarray, on_rel: int, t_end_rel: int, fs: float) -> np.ndarray:
    """P-wave peaks anywhere outside the QRS-T windows (sample indices)."""
    sos = butter(2, [1.0, 20.0], btype="band", fs=fs, output="sos")
    a = sosfiltfilt(sos, xc[[L["II"], L["V1"], L["aVF"]]], axis=-1)
    mag = np.sqrt((a**2).sum(axis=0))
    mask = np.ones(mag.size, dtype=bool)
    for k in r:
        mask[max(0, k + on_rel - _ms(30, fs)) : max(0, k + t_end_rel + _ms(50, fs))] = False
    mag = np.where(mask, mag, 0.0)
    peaks, props = find_peaks(mag, prominence=0.05, width=(_ms(15, fs), _ms(120, fs)), distance=_ms(200, fs))
    return peaks


def _masked_autocorr(x: np.ndarray, mask: np.ndarray, lags: np.ndarray) -> np.ndarray:
    x = np.where(mask, x - x[mask].mean() if mask.any() else 0.0, 0.0)
    m = mask.astype(float)
    out = []
    for lag in lags:
        num = (x[:-lag] * x[lag:]).sum()
        den = math.sqrt((x[:-lag] ** 2 * m[lag:]).sum() * (x[lag:] ** 2 * m[:-lag]).sum()) + 1e-12
        out.append(num / den)
    return np.array(out)


def atrial_activity(xc: np.ndarray, r: np.ndarray, on_rel: int, t_end_rel: int, fs: float) -> dict:
    """P waves anywhere in the record: how many, how many conduct no QRS, and the spread of the
    P-QRS intervals (``on_rel``/``t_end_rel``: QRS onset and T end relative to each fiducial)."""
    n = xc.shape[1]
    pw = _atrial_waves(xc, r, on_rel, t_end_rel, fs)
    onsets = r + on_rel
    nonconducted = 0
    intervals = []
    window = _ms(450, fs)
    for pk in pw:
        nxt = onsets[onsets > pk]
        if nxt.size and nxt[0] - pk <= window:
            continue  # conducted
        if nxt.size or n - pk > window:  # a P near the record's end may conduct after it
            nonconducted += 1
    for o in onsets:
        prev = pw[(pw < o - _ms(40, fs)) & (pw > o - _ms(1000, fs))]
        if prev.size:
            intervals.append((o - prev[-1]) * 1000.0 / fs)
    return {
        "atrial_p": int(pw.size),
        "nonconducted_p": nonconducted,
        "p_qrs_range": float(np.ptp(intervals)) if len(intervals) >= 2 else 0.0,
    }


def flutter(xc: np.ndarray, r: np.ndarray, on_rel: int, off_rel: int, fs: float) -> dict:
    """Periodic atrial waves at 200-375/min in the inferior leads outside the QRS: the best
    autocorrelation and its lag. The 10-30 Hz band keeps the sawtooth's harmonics and drops most
    of the smooth T wave."""
    n = xc.shape[1]
    sos = butter(2, [10.0, min(30.0, 0.45 * fs)], btype="band", fs=fs, output="sos")
    inf = sosfiltfilt(sos, xc[L["II"]] + xc[L["aVF"]])
    mask = np.ones(n, dtype=bool)
    a0 = min(-_ms(90, fs), on_rel - _ms(30, fs))
    a1 = max(_ms(90, fs), off_rel + _ms(40, fs))
    for k in r:
        mask[max(0, k + a0) : max(0, k + a1)] = False
    lags = np.arange(_ms(160, fs), _ms(300, fs), max(1, _ms(4, fs)))
    ac = _masked_autocorr(inf, mask, lags)
    return {"flutter_ac": float(ac.max()), "flutter_period": float(lags[int(np.argmax(ac))] * 1000.0 / fs)}
