"""Synthetic labelled 12-lead ECGs from a 3-D cardiac dipole model.

Each record is a sequence of beats (atrial P templates and ventricular QRS-ST-T templates from
``synth_beats``) placed on a rhythm schedule, plus continuous atrial activity for AFIB/AFLT, plus
noise (baseline wander, mains hum, muscle). Everything is generated on the 8 independent leads
(I, II, V1-V6); III, aVR, aVL, aVF are derived from I and II afterwards, so Einthoven's and
Goldberger's identities hold exactly, noise included. I and II are rounded to 1 uV and V1-V6 to
0.5 uV, so a WFDB file with gain 2000/mV stores every lead exactly.

    >>> rec = synthesize_record(seed=1, index=0, conditions=["AFIB", "CLBBB"])
    >>> rec.labels, rec.measurements["qrs"]

A record depends on (seed, index) only, via ``numpy.random.SeedSequence([seed, index])``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ecgvlm.errors import ECGVLMError
from ecgvlm.signals.record import ECGRecord
from ecgvlm.signals.synth_beats import atrial_morph, ectopic_p, escape_morph, pvc_morph, ventricular_morph
from ecgvlm.signals.synth_conditions import CONDITIONS, RHYTHMS, complete_labels, draw_labels
from ecgvlm.signals.synth_model import PROJ8, Template, _unit, _v, assemble12, rot_z

__all__ = ["CONDITIONS", "RHYTHMS", "synthesize_record", "synthesize"]

_PAD_BEFORE = 2.5  # s of rhythm simulated before t=0, so a record starts mid-rhythm
_PAD_AFTER = 1.0


def _heart_rate(codes: set[str], rng: np.random.Generator) -> float:
    if "SBRAD" in codes:
        return rng.uniform(40, 55)
    if "STACH" in codes:
        return rng.uniform(105, 130)
    if "AFIB" in codes:
        return rng.uniform(65, 115)
    if "1AVB" in codes:
        return rng.uniform(62, 85)  # leaves the long-PR P wave clear of the previous T wave
    return rng.uniform(62, 95)


class _Beats:
    """Collects template placements, then renders them into one dipole buffer."""

    def __init__(self, n: int, fs: float) -> None:
        self.fs = fs
        self.off = round(_PAD_BEFORE * fs)
        self.buf = np.zeros((3, n + self.off + round(_PAD_AFTER * fs) + 1))

    def add(self, tpl: Template, t: float, scale: float = 1.0, rot: np.ndarray | None = None) -> None:
        start = round(t * self.fs) + self.off - tpl.anchor
        d = tpl.dipole if rot is None else rot @ tpl.dipole
        lo, hi = max(start, 0), min(start + d.shape[1], self.buf.shape[1])
        if hi > lo:
            self.buf[:, lo:hi] += scale * d[:, lo - start : hi - start]


Times = list[tuple[float, str]]  # (onset s from the record start, beat kind)


def _schedule(codes: set[str], rng: np.random.Generator, hr: float, duration: float, pd: float) -> dict:
    """Times (s, relative to record start) of P onsets and QRS onsets, plus their kinds."""
    rr0 = 60.0 / hr
    t0, t1 = -_PAD_BEFORE + 0.3, duration + _PAD_AFTER
    resp = (rng.uniform(0.15, 0.33), rng.uniform(0, 2 * math.pi))
    info: dict = {"resp": resp}
    p_times: Times = []
    prs: list[float] = []
    if "AFIB" in codes:
        v_times = _afib_times(codes, rng, rr0, t0, t1, duration)
    elif "AFLT" in codes:
        v_times = _flutter_times(rng, t0, t1, info)
    elif "3AVB" in codes:
        p_times, v_times = _dissociated_times(codes, rng, t0, t1, info)
    else:
        p_times, v_times, prs = _sinus_times(codes, rng, rr0, (t0, t1), duration, pd, info)
    info.update(p_times=p_times, v_times=v_times, prs=prs)
    return info


def _afib_times(
    codes: set[str], rng: np.random.Generator, rr0: float, t0: float, t1: float, duration: float
) -> Times:
    """Irregularly irregular QRS onsets (lognormal RR), with any PVCs; no P waves."""
    v_times: Times = []
    cv = rng.uniform(0.16, 0.3)
    t = t0 + rng.uniform(0, rr0)
    while t < t1:
        v_times.append((t, "N"))
        t += max(0.34, rr0 * rng.lognormal(-0.5 * cv * cv, cv))
    if "PVC" in codes:  # premature ventricular beats, each followed by a pause
        for _ in range(int(rng.integers(1, 3))):
            inside = [i for i, (s, _) in enumerate(v_times) if 1.2 < s < duration - 1.6 and i > 0]
            i = int(rng.choice(inside))
            early = v_times[i - 1][0] + rr0 * rng.uniform(0.5, 0.6)
            shift = early + rr0 * rng.uniform(1.1, 1.4) - v_times[i][0]
            v_times = v_times[:i] + [(early, "V")] + [(s + shift, k) for s, k in v_times[i + 1 :]]
    return v_times


def _flutter_times(rng: np.random.Generator, t0: float, t1: float, info: dict) -> Times:
    """QRS onsets conducted from a flutter circuit at 3:1, 4:1 or variable block; the circuit's
    (period, phase) goes to ``info["flutter"]`` for the sawtooth."""
    v_times: Times = []
    period = 60.0 / rng.uniform(250, 330)
    mode = rng.choice(["3", "4", "34"])
    phase = rng.uniform(0, period)
    delay = rng.uniform(0.16, 0.24)
    info["flutter"] = (period, phase)
    k = 0
    while True:
        t = phase + t0 + k * period + delay
        if t >= t1:
            break
        v_times.append((t, "N"))
        k += int(mode) if mode != "34" else int(rng.choice([3, 4]))
    return v_times


def _dissociated_times(
    codes: set[str], rng: np.random.Generator, t0: float, t1: float, info: dict
) -> tuple[Times, Times]:
    """Complete AV block: sinus P waves and a slower escape rhythm, independent of each other."""
    p_times: Times = []
    v_times: Times = []
    # a wide ventricular escape only when no other statement shapes the QRS-T
    wide = rng.random() < 0.5 and codes <= {"SR", "3AVB"}
    escape_hr = info.setdefault("escape_hr", rng.uniform(30, 40) if wide else rng.uniform(40, 55))
    # atria clearly faster than the escape and not at a whole multiple of it, so the P-QRS
    # intervals visibly march through within 10 s
    for _ in range(50):
        pp = 60.0 / rng.uniform(max(60.0, 1.35 * escape_hr), 95.0)
        if 0.2 <= (60.0 / escape_hr / pp) % 1.0 <= 0.8:
            break
    t = t0 + rng.uniform(0, pp)
    while t < t1:
        p_times.append((t, "S"))
        t += pp * (1 + rng.normal(0, 0.01))
    rr_v = 60.0 / escape_hr
    t = t0 + rng.uniform(0, rr_v)
    while t < t1:
        v_times.append((t, "E"))
        t += rr_v * (1 + rng.normal(0, 0.01))
    return p_times, v_times


def _sinus_times(
    codes: set[str],
    rng: np.random.Generator,
    rr0: float,
    span: tuple[float, float],
    duration: float,
    pd: float,
    info: dict,
) -> tuple[Times, Times, list[float]]:
    """Sinus P onsets (with respiratory arrhythmia), their conducted QRS onsets and the PR of each;
    premature beats and second-degree block (``info["mobitz"]``) break the pattern."""
    t0, t1 = span
    resp_f, resp_ph = info["resp"]
    mod = rng.uniform(0.10, 0.18) if "SARRH" in codes else rng.uniform(0.0, 0.025)
    if "2AVB" in codes:
        rr0 = 60.0 / rng.uniform(62, 80)  # atrial rate; PP must leave room for a visible dropped P
    pr = _sinus_pr(codes, rng, pd)
    t = t0 + rng.uniform(0, rr0)
    sinus: list[float] = []
    while t < t1:
        sinus.append(t)
        t += rr0 * (1 + mod * math.sin(2 * math.pi * resp_f * t + resp_ph) + rng.normal(0, 0.008))
    ectopic = _ectopic_beats(codes, rng, sinus, duration)
    mobitz = None
    if "2AVB" in codes:
        mobitz = (str(rng.choice(["I", "II"])), int(rng.choice([3, 4, 5])) if rng.random() < 0.5 else 2)
        if mobitz[0] == "I" and mobitz[1] == 2:
            mobitz = ("I", 3)
        info["mobitz"] = mobitz
    cycle_pos = int(rng.integers(0, 5))
    return _conduct(rng, sinus, ectopic, mobitz, cycle_pos, pr, rr0)


def _sinus_pr(codes: set[str], rng: np.random.Generator, pd: float) -> float:
    """PR interval (ms) of conducted sinus beats, for a P wave lasting ``pd`` ms."""
    if "1AVB" in codes:
        pr = rng.uniform(225, 300)
    elif "WPW" in codes:
        pr = rng.uniform(92, 112)
    else:
        pr = rng.uniform(130, 190) if "NORM" in codes else rng.uniform(125, 198)
        if "STACH" in codes:
            pr = rng.uniform(120, 150)  # PR shortens with rate; keeps the P clear of the T
    if "WPW" not in codes:
        pr = max(pr, pd + rng.uniform(30, 50))  # keep an isoelectric PR segment
    return pr


def _ectopic_beats(
    codes: set[str], rng: np.random.Generator, sinus: list[float], duration: float
) -> dict[int, str]:
    """Sinus beat index -> "A" (PAC) or "V" (PVC) for the premature beats, well inside the record."""
    visible = [i for i, s in enumerate(sinus) if 1.2 < s < duration - 1.6]
    ectopic: dict[int, str] = {}
    for code, kind in (("PAC", "A"), ("PVC", "V")):
        if code in codes and len(visible) >= 4:
            k = int(rng.integers(1, 3))
            picks = rng.choice(visible[::2], size=min(k, len(visible[::2])), replace=False)
            ectopic.update({int(i): kind for i in picks})
    return ectopic


def _conduct(
    rng: np.random.Generator,
    sinus: list[float],
    ectopic: dict[int, str],
    mobitz: tuple[str, int] | None,
    cycle_pos: int,
    pr: float,
    rr0: float,
) -> tuple[Times, Times, list[float]]:
    """Walk the sinus beats: premature beats replace theirs, Mobitz cycles lengthen PR or drop a QRS."""
    p_times: Times = []
    v_times: Times = []
    prs: list[float] = []
    shift = 0.0
    for i, s in enumerate(sinus):
        s = s + shift
        kind = ectopic.get(i)
        if kind == "A":
            early = sinus[i - 1] + shift + rr0 * rng.uniform(0.6, 0.7)
            shift += early - s  # sinus node resets: no compensatory pause
            p_times.append((early, "A"))
            v_times.append((early + pr / 1000.0, "N"))
            continue
        if kind == "V":
            prev_qrs = sinus[i - 1] + shift + pr / 1000.0
            v_times.append((prev_qrs + rr0 * rng.uniform(0.55, 0.68), "V"))
            continue  # the sinus beat is hidden/blocked: full compensatory pause
        p_times.append((s, "S"))
        if mobitz is None:
            prs.append(pr)
            v_times.append((s + pr / 1000.0, "N"))
            continue
        n_cycle = mobitz[1]
        pos = (i + cycle_pos) % n_cycle
        if pos == n_cycle - 1:
            continue  # dropped beat
        this_pr = pr if mobitz[0] == "II" else min(pr, 190) + (0.0, 90.0, 135.0, 160.0)[pos]
        prs.append(this_pr)
        v_times.append((s + this_pr / 1000.0, "N"))
    return p_times, v_times, prs


def _atrial_wave(kind: str, info: dict, rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """Continuous atrial dipole (3, n): fibrillatory waves or a flutter sawtooth."""
    t = np.arange(n) / fs
    if kind == "AFIB":
        sig = np.zeros(n)
        for _ in range(3):
            f = rng.uniform(4.5, 8.0)
            wander = np.cumsum(rng.normal(0, 0.05, n // 50 + 2)).repeat(50)[:n]
            sig += rng.uniform(0.3, 1.0) * np.sin(2 * math.pi * f * t + rng.uniform(0, 6.3) + wander)
        sig *= rng.uniform(0.035, 0.07) / (np.std(sig) * 1.4 + 1e-9)
        return _unit(_v(0.15, 0.35, 0.9) + rng.normal(0, 0.05, 3))[:, None] * sig[None, :]
    period, phase = info["flutter"]
    ph = 2 * math.pi * (t - phase - (-_PAD_BEFORE + 0.3)) / period
    saw = sum(np.sin(k * ph) / k for k in range(1, 6)) / 1.7
    return (rng.uniform(0.12, 0.18) * _v(0.05, -1.0, 0.35))[:, None] * saw[None, :]


def _mix(amps: np.ndarray, phases: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per lead, sum_j amps[l, j] * sin(w[j] + phases[l, j]), from one sin and one cos per row of w."""
    coef = np.concatenate([amps * np.cos(phases), amps * np.sin(phases)], axis=1)
    return coef @ np.concatenate([np.sin(w), np.cos(w)])


def _noise(rng: np.random.Generator, n: int, fs: float, resp: tuple[float, float]) -> np.ndarray:
    """Noise on the 8 independent leads (mV): baseline wander, mains hum, muscle.

    Wander (respiration and two slow drifts, < 0.5 Hz) is computed on a coarse grid and
    interpolated; mains hum repeats every period, so one period is tiled when it is a whole number
    of samples. Each lead mixes the shared sinusoids with its own amplitudes and phases.
    """
    resp_f, resp_ph = resp
    mains_f = 50.0 if rng.random() < 0.5 else 60.0
    slow_f = np.array([resp_f, rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4)])
    slow_a = np.stack(
        [rng.uniform(0.0, 0.1) * rng.uniform(0.3, 1.0, 8), rng.uniform(0, 0.06, 8), rng.uniform(0, 0.06, 8)],
        1,
    )
    slow_p = np.stack([np.full(8, resp_ph), rng.uniform(0, 6.3, 8), rng.uniform(0, 6.3, 8)], 1)
    hum_a = (rng.uniform(0.0, 0.02) * rng.uniform(0.2, 1.0, 8))[:, None]
    hum_p = rng.uniform(0, 0.5, (8, 1))
    step = max(1, int(fs // 25))
    coarse = np.arange(0, n + step, step)
    wander = _mix(slow_a, slow_p, 2 * math.pi * slow_f[:, None] * (coarse / fs)[None, :])
    grid = np.arange(n)
    out = np.stack([np.interp(grid, coarse, row) for row in wander])
    period = fs / mains_f
    if abs(period - round(period)) < 1e-9:
        k = np.arange(int(round(period)))
        one = _mix(hum_a, hum_p, 2 * math.pi * mains_f * (k / fs)[None, :])
        out += np.tile(one, (1, n // k.size + 1))[:, :n]
    else:
        out += _mix(hum_a, hum_p, 2 * math.pi * mains_f * (grid / fs)[None, :])
    # muscle noise: white, uniform (cheaper to draw than Gaussian; its sum with the rest is near-normal)
    emg = rng.random((8, n), dtype=np.float32) - np.float32(0.5)
    emg *= (math.sqrt(12.0) * rng.uniform(0.002, 0.01) * rng.uniform(0.5, 1.0, (8, 1))).astype(np.float32)
    out += emg
    return out


def _patient(codes: set[str], rng: np.random.Generator) -> tuple[int, str, float]:
    sex = "F" if rng.random() < 0.48 else "M"
    age = int(rng.integers(20, 80) if "NORM" in codes else rng.integers(35, 92))
    amp = rng.uniform(1.0, 1.5) * (0.9 if sex == "F" else 1.0)
    return age, sex, amp


def synthesize_record(
    seed: int, index: int, conditions: list[str] | None = None, fs: float = 500.0, duration: float = 10.0
) -> ECGRecord:
    """One labelled 12-lead record; the same (seed, index, conditions, fs, duration) gives the same record."""
    if not (50 <= fs <= 2000) or not (2.0 <= duration <= 120.0):
        raise ECGVLMError(f"fs must be 50-2000 Hz and duration 2-120 s (got fs={fs}, duration={duration})")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    codes_list = complete_labels(conditions) if conditions else draw_labels(rng)
    codes = set(codes_list)
    n = int(round(duration * fs))
    age, sex, amp = _patient(codes, rng)
    hr = _heart_rate(codes, rng)
    # WPW: a short P (<= 70 ms) so a brief PR segment remains before the early delta wave
    p_tpl, pd = atrial_morph(rng, "LAO/LAE" in codes, fs, pd_max=70.0 if "WPW" in codes else 1e9)
    info = _schedule(codes, rng, hr, duration, pd)
    v_on = np.array([t for t, _ in info["v_times"]])
    inside = v_on[(v_on >= 0) & (v_on < duration)]
    rr_mean = float(np.mean(np.diff(inside))) if inside.size >= 2 else 60.0 / hr

    if "3AVB" in codes and info["escape_hr"] < 40:
        dom, qrs, qt, axis = escape_morph(rng, amp, rr_mean, fs)
    else:
        vm = ventricular_morph(codes, rng, rr_mean, amp, fs)
        dom, qrs, qt, axis = vm.template, vm.qrs, vm.qt, vm.axis
    pac_tpl = ectopic_p(rng, fs) if "PAC" in codes else None
    pvc_tpl = pvc_morph(rng, amp, qt, fs, dom, lv_origin="CLBBB" in codes) if "PVC" in codes else None

    beats = _Beats(n, fs)
    resp_f, resp_ph = info["resp"]
    tilt = rng.uniform(2.0, 5.0)
    for t, kind in info["v_times"]:
        wave = math.sin(2 * math.pi * resp_f * t + resp_ph)
        scale = (1.0 + 0.05 * wave) * (1.0 + rng.normal(0, 0.015))
        tpl = pvc_tpl if kind == "V" else dom
        beats.add(tpl, t, scale, rot_z(tilt * wave))
    for t, kind in info["p_times"]:
        beats.add(pac_tpl if kind == "A" else p_tpl, t, 1.0 + rng.normal(0, 0.03))
    dipole = beats.buf[:, beats.off : beats.off + n]
    if "AFIB" in codes or "AFLT" in codes:
        dipole = dipole + _atrial_wave("AFIB" if "AFIB" in codes else "AFLT", info, rng, n, fs)

    base8 = PROJ8 @ dipole + _noise(rng, n, fs, info["resp"])
    base8 = np.clip(base8, -8.0, 8.0)
    base8[:2] = np.round(base8[:2] * 1000.0) / 1000.0  # 1 uV: derived leads stay on the 0.5 uV grid
    base8[2:] = np.round(base8[2:] * 2000.0) / 2000.0
    signal = assemble12(base8).astype(np.float32)

    measurements = {"hr": round(60.0 / rr_mean, 1), "qrs": round(qrs, 1), "qt": round(qt, 1)}
    measurements["qtc"] = round(qt / math.sqrt(rr_mean), 1)
    measurements["axis"] = round(axis, 1)
    if info["prs"] and not codes & {"AFIB", "AFLT", "3AVB"}:
        measurements["pr"] = round(float(np.median(info["prs"])), 1)
    rid = f"synth-{seed}-{index:06d}"
    meta = {"id": rid, "source": "synth", "age": age, "sex": sex, "strat_fold": index % 10 + 1,
            "seed": int(seed), "index": int(index)}  # fmt: skip
    labels = {c: 100.0 for c in codes_list}
    return ECGRecord(signal=signal, fs=fs, labels=labels, measurements=measurements, meta=meta)


def synthesize(
    n: int, seed: int, conditions: list[str] | None = None, fs: float = 500.0, duration: float = 10.0
) -> Iterator[ECGRecord]:
    """Records with index 0..n-1."""
    for i in range(n):
        yield synthesize_record(seed, i, conditions, fs=fs, duration=duration)
