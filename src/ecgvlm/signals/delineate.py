"""Independent ECG delineation, and a check that synthetic labels are true by measurement.

``delineate(signal, fs)`` measures a 12-lead record from its samples alone (it never sees the
generator's parameters): R-peak detection on a band-passed energy envelope with an adaptive
threshold, baseline correction through the PR-segment, a median beat of the dominant beats,
QRS onset/offset from the spatial velocity, P wave and PR, T end and QT, ST level at J+60 ms,
Q waves, Sokolow-Lyon voltage, frontal axis, premature beats, and atrial activity (P waves seen
anywhere outside QRS-T, flutter periodicity). The per-wave detectors are in ``delineate_waves``.

``validate_labels(records)`` applies each statement's defining criterion to the records that
carry it and returns the pass rate per statement. Print the table for fresh synthetic records:

    python -m ecgvlm.signals.delineate --n 600 --per-condition 40 --seed 7
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np
from scipy.signal import butter, find_peaks, iirnotch, sosfiltfilt, tf2sos

from ecgvlm.signals.delineate_waves import (
    _INDEP,
    L,
    _ms,
    atrial_activity,
    flutter,
    p_wave,
    q_wave,
    qrs_bounds,
    t_end,
)
from ecgvlm.signals.record import LEADS, ECGRecord

_LIMB = [L[n] for n in ("I", "II", "III", "aVR", "aVL", "aVF")]


def _filters(fs: float) -> list[np.ndarray]:
    sos = [butter(4, min(40.0, 0.45 * fs), btype="low", fs=fs, output="sos")]
    for f0 in (50.0, 60.0):
        if f0 < 0.45 * fs:
            b, a = iirnotch(f0, 25.0, fs=fs)
            sos.append(tf2sos(b, a))
    return sos


def _clean(x: np.ndarray, fs: float) -> np.ndarray:
    for sos in _filters(fs):
        x = sosfiltfilt(sos, x, axis=-1)
    return x


def _envelope(x: np.ndarray, fs: float, lo: float, hi: float) -> np.ndarray:
    sos = butter(2, [lo, min(hi, 0.45 * fs)], btype="band", fs=fs, output="sos")
    bp = sosfiltfilt(sos, x[_INDEP], axis=-1)
    w = max(1, _ms(80, fs))
    return np.convolve(np.sqrt((bp**2).sum(axis=0)), np.ones(w) / w, mode="same")


def detect_beats(x: np.ndarray, fs: float) -> np.ndarray:
    """QRS fiducials (sample indices): peaks of the spatial magnitude of the 4-25 Hz band.

    The band's amplitude (not its slope) keeps broad PVCs as tall as narrow beats; a peak close
    after a beat whose 8-25 Hz content is small is that beat's T wave (T waves carry little
    energy above 8 Hz, QRS complexes and PVCs do).
    """
    env = _envelope(x, fs, 4.0, 25.0)
    high = _envelope(x, fs, 8.0, 25.0)
    peaks, props = find_peaks(env, distance=_ms(250, fs), height=0)
    if peaks.size == 0:
        return peaks
    heights = props["peak_heights"]
    # the k-th largest peak is a QRS even at 30 bpm, and an ordinary one even with two big PVCs
    k = min(heights.size, max(3, int(0.35 * x.shape[1] / fs)))
    ref = np.sort(heights)[-k]
    ref_high = np.sort(high[peaks])[-k]
    keep = heights >= 0.35 * ref
    out: list[int] = []
    for p in peaks[keep]:
        if out and p - out[-1] < _ms(700, fs) and high[p] < 0.25 * ref_high:
            continue
        out.append(int(p))
    return np.array(out, dtype=int)


def _align(x: np.ndarray, r: np.ndarray, fs: float) -> np.ndarray:
    """Move each fiducial to the lag that best matches the median QRS, so a notched or broad QRS
    (whose envelope peak may sit on either notch) lines up from beat to beat."""
    w, lag = _ms(100, fs), _ms(40, fs)
    n = x.shape[1]
    r = r.copy()
    ok = (r - w - lag >= 0) & (r + w + lag < n)
    if ok.sum() < 2:
        return r
    sig = x[_INDEP]
    for _ in range(2):
        tmpl = np.median(np.stack([sig[:, k - w : k + w + 1] for k in r[ok]]), axis=0)
        for i in np.flatnonzero(ok):
            k = r[i]
            scores = [
                float((sig[:, k + d - w : k + d + w + 1] * tmpl).sum()) for d in range(-lag, lag + 1, 2)
            ]
            r[i] = k + range(-lag, lag + 1, 2)[int(np.argmax(scores))]
        ok = (r - w - lag >= 0) & (r + w + lag < n)
    return r


def _baseline(x: np.ndarray, knots: np.ndarray, fs: float) -> np.ndarray:
    """Baseline through the mean of 20 ms around each isoelectric knot, interpolated linearly."""
    half = max(1, _ms(10, fs))
    n = x.shape[1]
    knots = knots[(knots - half >= 0) & (knots + half < n)]
    if knots.size == 0:
        return np.repeat(np.median(x, axis=1, keepdims=True), n, axis=1)
    vals = np.stack([x[:, k - half : k + half + 1].mean(axis=1) for k in knots], axis=1)
    grid = np.arange(n)
    return np.stack([np.interp(grid, knots, v) for v in vals])


def _median_beat(x: np.ndarray, r: np.ndarray, pre: int, post: int) -> tuple[np.ndarray, np.ndarray]:
    ok = r[(r - pre >= 0) & (r + post < x.shape[1])]
    if ok.size == 0:
        return np.zeros((x.shape[0], pre + post + 1)), ok
    segs = np.stack([x[:, k - pre : k + post + 1] for k in ok])
    return np.median(segs, axis=0), ok


def delineate(signal: np.ndarray, fs: float) -> dict:
    """Measured features of one 12-lead record (mV, ms, bpm, deg). Keys absent when not measurable."""
    x = _clean(np.asarray(signal, dtype=np.float64), fs)
    r = _align(x, detect_beats(x, fs), fs)
    out: dict = {"n_beats": int(r.size), "beats_s": (r / fs).tolist()}
    if r.size < 3:
        return out
    rr = np.diff(r) / fs
    out["hr"] = 60.0 / float(rr.mean())
    out["rr_cv"] = float(rr.std() / rr.mean())
    out["rr_range"] = float(rr.max() - rr.min())
    med_rr = float(np.median(rr))
    dominant = _beat_classes(x, r, med_rr, fs, out)
    mb = _median_complex(x, r, dominant, fs)
    if mb is None:
        return out
    m, pre, on, off = mb.m, mb.pre, mb.on, mb.off
    out["qrs"] = (off - on) * 1000.0 / fs
    limit = min(m.shape[1] - 1, pre + int(0.8 * med_rr * fs) - _ms(40, fs))
    tpk, tend = t_end(m, off, limit, fs)
    out["qt"] = (tend - on) * 1000.0 / fs
    out["qtc"] = out["qt"] / math.sqrt(float(rr.mean()))  # Bazett on the mean RR
    out.update(_p_features(mb, fs))
    out["p_present"] = "pr" in out
    out.update(_amplitudes(m, on, off, tpk, fs))
    out.update(atrial_activity(mb.xc, r, on - pre, tend - pre, fs))
    out.update(flutter(mb.xc, r, on - pre, off - pre, fs))
    return out


def _beat_classes(x: np.ndarray, r: np.ndarray, med_rr: float, fs: float, out: dict) -> np.ndarray:
    """The dominant beats' fiducials, by correlation of each QRS with the median QRS; counts the
    premature beats of each shape into ``out``."""
    n = x.shape[1]
    w = _ms(70, fs)
    inner = r[(r - w >= 0) & (r + w < n)]
    segs = np.stack([x[_INDEP, k - w : k + w + 1].ravel() for k in inner])
    tmpl = np.median(segs, axis=0)
    corr = np.array([np.corrcoef(s, tmpl)[0, 1] for s in segs])
    dominant = inner[corr >= 0.85]
    if dominant.size == 0:
        dominant = inner
    rr_prev = {int(k): (k - r[i - 1]) / fs for i, k in enumerate(r) if i > 0}
    premature_same = [k for k, c in zip(inner, corr) if c >= 0.85 and rr_prev.get(int(k), 9) < 0.85 * med_rr]
    premature_diff = [k for k, c in zip(inner, corr) if c < 0.85 and rr_prev.get(int(k), 9) < 0.9 * med_rr]
    out["premature_narrow"] = len(premature_same)
    out["premature_wide"] = len(premature_diff)
    return dominant


class _MedianBeat(NamedTuple):
    xc: np.ndarray  # the record less its PR-segment baseline
    m: np.ndarray  # median dominant beat, zero just before QRS onset
    used: np.ndarray  # fiducials of the beats in the median
    pre: int  # samples in ``m`` before the fiducial
    on: int  # QRS onset in ``m``
    off: int  # QRS offset in ``m``


def _median_complex(x: np.ndarray, r: np.ndarray, dominant: np.ndarray, fs: float) -> _MedianBeat | None:
    """The median dominant beat and its QRS bounds, or None when no beat fits the window. Two
    passes: rough baseline knots 110 ms before the fiducial, then at the measured PR segment."""
    pre, post = _ms(600, fs), _ms(700, fs)
    xc = x - _baseline(x, r - _ms(110, fs), fs)
    m, used = _median_beat(xc, dominant, pre, post)
    on, off = qrs_bounds(m, pre, fs)
    knot_rel = on - pre - _ms(12, fs)
    xc = x - _baseline(x, r + knot_rel, fs)
    m, used = _median_beat(xc, dominant, pre, post)
    if used.size == 0:
        return None
    on, off = qrs_bounds(m, pre, fs)
    base = m[:, on - _ms(12, fs)]
    m = m - base[:, None]
    return _MedianBeat(xc, m, used, pre, on, off)


def _p_features(mb: _MedianBeat, fs: float) -> dict:
    """PR, P duration and the P's lowest V1 value, when a P wave is found in the median beat and
    present in the individual beats, not only in their median."""
    m, xc, pre, on = mb.m, mb.xc, mb.pre, mb.on
    p = p_wave(m, on, fs)
    if p is None:
        return {}
    p_on, p_off, _ = p
    ref = m[[L["II"], L["V1"]], p_on : p_off + 1].ravel()
    agree = 0
    for k in mb.used:
        s = (
            xc[[L["II"], L["V1"]], k - pre + p_on : k - pre + p_off + 1]
            - xc[[L["II"], L["V1"]], k - pre + on - _ms(12, fs)][:, None]
        )
        c = np.corrcoef(s.ravel(), ref)[0, 1]
        agree += bool(c > 0.6)
    if agree < 0.7 * mb.used.size:
        return {}
    return {
        "pr": (on - p_on) * 1000.0 / fs,
        "p_dur": (p_off - p_on) * 1000.0 / fs,
        "p_v1_min": float(m[L["V1"], p_on : p_off + 1].min()),
    }


def _amplitudes(m: np.ndarray, on: int, off: int, tpk: int, fs: float) -> dict:
    """Per-lead ST (J+60 ms), T, R, S and Q, and the voltage and axis measures built on them."""
    out: dict = {}
    j60 = min(off + _ms(60, fs), m.shape[1] - 1)
    out["st"] = {LEADS[i]: float(m[i, j60]) for i in range(12)}
    out["t_amp"] = {LEADS[i]: float(m[i, tpk]) for i in range(12)}
    q = m[:, on : off + 1]
    out["r_amp"] = {LEADS[i]: float(q[i].max()) for i in range(12)}
    out["s_amp"] = {LEADS[i]: float(-q[i].min()) for i in range(12)}
    out["q"] = {LEADS[i]: q_wave(m[i], on, off, fs) for i in range(12)}
    out["sokolow"] = out["s_amp"]["V1"] + max(out["r_amp"]["V5"], out["r_amp"]["V6"])
    out["limb_p2p_max"] = float(np.ptp(q[_LIMB], axis=1).max())
    out["axis"] = math.degrees(math.atan2(q[L["aVF"]].sum(), q[L["I"]].sum()))
    v1 = q[L["V1"]]
    kmin = int(np.argmin(v1))
    out["v1_terminal_r"] = float(v1[kmin:].max() - v1[kmin])
    return out


# --- criteria -----------------------------------------------------------------------------------

Criterion = Callable[[dict, set], bool]


def _n(d: dict, key: str, leads: Iterable[str], pred: Callable[[float], bool]) -> int:
    return sum(1 for ld in leads if pred(d[key][ld]))


def _q_count(d: dict, leads: Iterable[str]) -> int:
    return sum(1 for ld in leads if d["q"][ld][0] >= 30 and d["q"][ld][1] >= 0.1)


_NOT_AVR = [ld for ld in LEADS if ld != "aVR"]
_AV_BLOCK = {"2AVB", "3AVB"}


def _sinus(d: dict, labels: set) -> bool:
    if labels & _AV_BLOCK:
        return d.get("atrial_p", 0) >= 3
    return bool(d.get("p_present"))


CRITERIA: dict[str, tuple[str, Criterion]] = {
    "NORM": (
        "QRS < 120, PR 110-220, HR 50-100, QTc < 460, |ST| < 0.1 mV",
        lambda d, lb: (
            d["qrs"] < 120
            and 110 <= d.get("pr", 0) <= 220
            and 50 <= d["hr"] <= 100
            and d["qtc"] < 460
            and max(abs(v) for v in d["st"].values()) < 0.1
        ),
    ),
    "SR": ("P waves before QRS (atrial P waves in AV block)", lambda d, lb: _sinus(d, lb)),
    "SBRAD": ("P waves and HR < 60", lambda d, lb: _sinus(d, lb) and d["hr"] < 60),
    "STACH": ("P waves and HR > 100", lambda d, lb: _sinus(d, lb) and d["hr"] > 100),
    "SARRH": ("P waves and RR range >= 120 ms", lambda d, lb: _sinus(d, lb) and d["rr_range"] >= 0.12),
    "AFIB": (
        "no P waves and irregular RR (CV >= 0.08)",
        lambda d, lb: not d["p_present"] and d["rr_cv"] >= 0.08,
    ),
    "AFLT": (
        "periodic atrial waves, cycle 160-300 ms (10-30 Hz autocorrelation >= 0.45)",
        lambda d, lb: d["flutter_ac"] >= 0.45 and 160 <= d["flutter_period"] <= 300,
    ),
    "PAC": ("premature beat (RR < 0.85 median) with dominant QRS", lambda d, lb: d["premature_narrow"] >= 1),
    "PVC": (
        "premature beat (RR < 0.9 median) whose QRS differs (corr < 0.85)",
        lambda d, lb: d["premature_wide"] >= 1,
    ),
    "1AVB": ("PR > 200 ms", lambda d, lb: d.get("pr", 0) > 200),
    "2AVB": ("P wave(s) not followed by a QRS", lambda d, lb: d["nonconducted_p"] >= 1),
    "3AVB": (
        "non-conducted P, P-QRS interval range >= 80 ms, HR < 60",
        lambda d, lb: d["nonconducted_p"] >= 1 and d["p_qrs_range"] >= 80 and d["hr"] < 60,
    ),
    "CLBBB": (
        "QRS >= 120 ms, V1 predominantly negative",
        lambda d, lb: d["qrs"] >= 120 and d["s_amp"]["V1"] > d["r_amp"]["V1"],
    ),
    "CRBBB": (
        "QRS >= 120 ms and terminal R' in V1",
        lambda d, lb: d["qrs"] >= 120 and d["v1_terminal_r"] >= 0.15,
    ),
    "IRBBB": (
        "100 <= QRS < 120 ms and terminal r' in V1",
        lambda d, lb: 100 <= d["qrs"] < 120 and d["v1_terminal_r"] >= 0.1,
    ),
    "LAFB": ("axis -90..-45 deg", lambda d, lb: -90 <= d["axis"] <= -45),
    "WPW": ("PR < 120 ms and QRS >= 110 ms", lambda d, lb: 0 < d.get("pr", 999) < 120 and d["qrs"] >= 110),
    "LVH": ("Sokolow-Lyon SV1 + max(RV5, RV6) >= 3.5 mV", lambda d, lb: d["sokolow"] >= 3.5),
    "RVH": (
        "axis >= 90 deg and R/S > 1 in V1",
        lambda d, lb: d["axis"] >= 90 and d["r_amp"]["V1"] > d["s_amp"]["V1"],
    ),
    "LAO/LAE": (
        "P >= 120 ms or terminal P in V1 <= -0.1 mV",
        lambda d, lb: d.get("p_dur", 0) >= 120 or d.get("p_v1_min", 0) <= -0.1,
    ),
    "IMI": (
        "Q >= 30 ms and >= 0.1 mV in >= 2 of II, III, aVF",
        lambda d, lb: _q_count(d, ("II", "III", "aVF")) >= 2,
    ),
    "ILMI": (
        "Q in >= 2 of II, III, aVF and >= 1 of I, aVL, V5, V6",
        lambda d, lb: _q_count(d, ("II", "III", "aVF")) >= 2 and _q_count(d, ("I", "aVL", "V5", "V6")) >= 1,
    ),
    "ASMI": ("Q/QS >= 30 ms in >= 2 of V1-V3", lambda d, lb: _q_count(d, ("V1", "V2", "V3")) >= 2),
    "AMI": ("Q/QS >= 30 ms in >= 2 of V2-V4", lambda d, lb: _q_count(d, ("V2", "V3", "V4")) >= 2),
    "INJAS": (
        "ST(J+60) >= 0.1 mV in >= 2 of V1-V4",
        lambda d, lb: _n(d, "st", ("V1", "V2", "V3", "V4"), lambda v: v >= 0.1) >= 2,
    ),
    "INJIN": (
        "ST(J+60) >= 0.1 mV in >= 2 of II, III, aVF",
        lambda d, lb: _n(d, "st", ("II", "III", "aVF"), lambda v: v >= 0.1) >= 2,
    ),
    "ISC_": (
        "ST depression >= 0.1 mV in >= 2 leads (not aVR)",
        lambda d, lb: _n(d, "st", _NOT_AVR, lambda v: v <= -0.1) >= 2,
    ),
    "ISCAL": (
        "T <= -0.1 mV in >= 3 of I, aVL, V2-V6",
        lambda d, lb: _n(d, "t_amp", ("I", "aVL", "V2", "V3", "V4", "V5", "V6"), lambda v: v <= -0.1) >= 3,
    ),
    "NST_": (
        "ST depression 0.03-0.1 mV in >= 2 leads (not aVR)",
        lambda d, lb: _n(d, "st", _NOT_AVR, lambda v: -0.1 < v <= -0.03) >= 2,
    ),
    "LNGQT": ("QTc (Bazett) > 460 ms", lambda d, lb: d["qtc"] > 460),
    "LVOLT": ("QRS peak-to-peak < 0.5 mV in every limb lead", lambda d, lb: d["limb_p2p_max"] < 0.5),
}


def check(code: str, features: dict, labels: set) -> bool:
    try:
        return bool(CRITERIA[code][1](features, labels))
    except KeyError:
        return False  # a feature the criterion needs could not be measured


def validate_labels(records: Iterable[ECGRecord]) -> list[dict]:
    """Per statement: n records carrying it, how many pass its criterion, pass rate, the criterion."""
    counts: dict[str, list[int]] = {c: [0, 0] for c in CRITERIA}
    for rec in records:
        d = delineate(rec.signal, rec.fs)
        labels = set(rec.labels)
        for code in labels & set(CRITERIA):
            counts[code][0] += 1
            counts[code][1] += check(code, d, labels)
    return [
        {
            "code": c,
            "n": n,
            "passed": k,
            "pass_rate": (k / n if n else float("nan")),
            "criterion": CRITERIA[c][0],
        }
        for c, (n, k) in counts.items()
    ]


def format_table(rows: list[dict]) -> str:
    lines = [f"{'code':<8} {'n':>5} {'pass %':>7}  criterion"]
    for r in rows:
        rate = "-" if not r["n"] else f"{100 * r['pass_rate']:.1f}"
        lines.append(f"{r['code']:<8} {r['n']:>5} {rate:>7}  {r['criterion']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from ecgvlm.signals.synth import CONDITIONS, synthesize_record

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600, help="records drawn from the label prior")
    ap.add_argument(
        "--per-condition", type=int, default=20, help="extra records per statement, asked by name"
    )
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    jobs = [(i, None) for i in range(args.n)]
    base = args.n
    for ci, code in enumerate(CONDITIONS):
        jobs += [(base + ci * args.per_condition + j, [code]) for j in range(args.per_condition)]
    recs = (synthesize_record(args.seed, i, c) for i, c in tqdm(jobs, desc="delineate", unit="rec"))
    rows = validate_labels(recs)
    print(format_table(rows))
    worst = min((r["pass_rate"] for r in rows if r["n"]), default=float("nan"))
    print(f"records: {len(jobs)}  lowest pass rate: {100 * worst:.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
