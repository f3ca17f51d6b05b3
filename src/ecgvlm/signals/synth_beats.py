"""Per-record ventricular and atrial morphologies for a label set, checked on noiseless templates.

``ventricular_morph`` draws a dominant QRS-ST-T for the label set and retries until the noiseless
12-lead template meets each statement's defining criterion with a margin, so labels are true by
construction before noise is added (the independent delineator then checks them again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ecgvlm.signals.synth_model import (
    L,
    Lobe,
    Template,
    _unit,
    _v,
    lbbb_qrs,
    make_template,
    net_axis,
    normal_qrs,
    p_wave,
    pvc_qrs,
    q_wave,
    qrs_mean_vector,
    rot_z,
    st_lobe,
    t_wave,
)

_MI_LEADS = {
    "IMI": (("II", "III", "aVF"), 2),
    "ILMI": (("II", "III", "aVF"), 2),
    "ASMI": (("V1", "V2", "V3"), 2),
    "AMI": (("V2", "V3", "V4"), 2),
}
_LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")


@dataclass
class Ventricular:
    lobes: list[Lobe]
    qrs: float  # ms
    qt: float  # ms
    template: Template
    axis: float


def _qtc(codes: set[str], rng: np.random.Generator) -> float:
    if "LNGQT" in codes:
        return rng.uniform(482, 530)
    if codes & {"CLBBB", "WPW"}:
        return rng.uniform(415, 445)
    return rng.uniform(385, 430)


@dataclass
class _Draft:
    """The dominant beat while each statement in turn reshapes it."""

    lobes: list[Lobe]
    qd: float  # QRS duration, ms
    t_vec: np.ndarray  # T-wave vector before the repolarisation statements
    st_vec: np.ndarray | None  # ST-segment shift vector, if any
    a_t: float  # T-wave size


def _build(
    codes: set[str], rng: np.random.Generator, rr: float, amp: float
) -> tuple[list[Lobe], float, float]:
    """One draw of the dominant beat: (lobes, qrs ms, qt ms)."""
    qt = _qtc(codes, rng) * math.sqrt(rr)
    a_t = rng.uniform(1.0, 1.6)
    t_vec = a_t * (_v(0.25, 0.2, 0.2) + rng.normal(0, 0.03, 3))
    mi = bool(codes & set(_MI_LEADS))
    d = _conduction(codes, rng, amp, mi, a_t, t_vec)
    if mi:
        _old_infarct(d, codes, rng, amp)
    if "CRBBB" in codes or "IRBBB" in codes:
        _right_bundle_block(d, "CRBBB" in codes, rng, amp)
    _hypertrophy(d, codes, rng, amp)
    t = _repolarisation(d, codes, rng, qt)
    d.lobes.append(t)
    if d.st_vec is not None:
        d.lobes.append(st_lobe(d.qd, t, d.st_vec))
    return d.lobes, d.qd, qt


def _conduction(
    codes: set[str], rng: np.random.Generator, amp: float, mi: bool, a_t: float, t_vec: np.ndarray
) -> _Draft:
    """The QRS as conducted (left bundle branch block, pre-excitation or normal), turned to its axis."""
    st_vec = None
    if "CLBBB" in codes:
        qd = rng.uniform(134, 168)
        lobes = lbbb_qrs(qd, amp * 1.2, rng)
        mean = _unit(qrs_mean_vector(lobes))
        t_vec = -mean * rng.uniform(0.35, 0.55)
        st_vec = -mean * rng.uniform(0.08, 0.15)
        rotation = rng.uniform(-30, 10)
    elif "WPW" in codes:
        d0 = rng.uniform(45, 55)
        qd_n = rng.uniform(80, 95)
        # delta wave: a slow ramp from QRS onset that peaks after the normal QRS front arrives
        c = d0 + 10.0
        delta = Lobe(c, c / 2.5, 30.0, amp * rng.uniform(0.6, 0.85) * _v(0.35, 0.3, 0.4))
        lobes = [delta] + normal_qrs(qd_n, amp, rng, t0=d0)
        qd = d0 + qd_n
        t_vec = 0.7 * t_vec
        rotation = rng.uniform(-25, 25)
    else:
        base = rng.uniform(80, 98) if mi else rng.uniform(82, 104)
        if codes & {"CRBBB", "IRBBB"}:
            base = rng.uniform(78, 88)
        lobes = normal_qrs(base, amp, rng)
        qd = base
        if "LAFB" in codes:
            rotation = None  # set later from the template axis
        elif "RVH" in codes:
            rotation = rng.uniform(-5, 25)
        else:
            rotation = rng.uniform(-32, 38)
    if rotation is not None:
        r = rot_z(rotation)
        for lb in lobes:
            lb.vec = r @ lb.vec
        t_vec = r @ t_vec
    return _Draft(lobes, qd, t_vec, st_vec, a_t)


def _old_infarct(d: _Draft, codes: set[str], rng: np.random.Generator, amp: float) -> None:
    """Old infarcts: an initial vector pointing away from the dead territory, and lost R forces
    toward it; the rest of the QRS is delayed so the Q wave is wide."""
    lobes = d.lobes
    shift = 16.0
    for lb in lobes[1:]:
        lb.c += shift
    d.qd += shift
    if codes & {"IMI", "ILMI"}:
        if "ILMI" in codes:
            q_vec = amp * _v(-rng.uniform(0.3, 0.42), -rng.uniform(0.3, 0.45), 0.05)
            lobes[1].vec = lobes[1].vec * _v(0.4, 0.3, 1.0)
            lobes[2].vec = lobes[2].vec * _v(0.6, 0.4, 1.0)
        else:
            q_vec = amp * _v(rng.uniform(-0.1, 0.05), -rng.uniform(0.36, 0.5), 0.05)
            lobes[1].vec = lobes[1].vec * _v(1.0, 0.3, 1.0)
            lobes[2].vec = lobes[2].vec * _v(1.0, 0.45, 1.0)
        if rng.random() < 0.5:
            d.t_vec = d.t_vec * _v(1.0, -0.6, 1.0)
        if "ASMI" in codes or "AMI" in codes:
            q_vec = q_vec + amp * _v(0.0, 0.0, -0.4)
            lobes[1].vec[2] = -0.05 * amp
    elif "ASMI" in codes:
        q_vec = amp * _v(rng.uniform(0.0, 0.1), 0.0, -rng.uniform(0.38, 0.5))
        lobes[1].vec[2] = -0.05 * amp
    else:  # AMI
        q_vec = amp * _v(-rng.uniform(0.25, 0.35), 0.0, -rng.uniform(0.32, 0.42))
        lobes[1].vec = lobes[1].vec * _v(0.6, 1.0, 0.2)
    lobes[0] = Lobe(22.0, 8.8, 8.8, q_vec)


def _right_bundle_block(d: _Draft, full: bool, rng: np.random.Generator, amp: float) -> None:
    """A late rightward-anterior lobe (the R' in V1), complete (CRBBB) or incomplete (IRBBB)."""
    qd_total = rng.uniform(128, 150) if full else rng.uniform(105, 113)
    s_t = rng.uniform(14, 18) if full else rng.uniform(10, 12.5)
    size = rng.uniform(0.9, 1.2) if full else rng.uniform(0.75, 1.0)
    d.lobes[-1].vec = d.lobes[-1].vec * 0.5
    shape = _v(-0.45, 0.05, 0.6) if full else _v(-0.35, 0.03, 0.45)
    d.lobes.append(Lobe(qd_total - 2.5 * s_t, s_t, s_t, amp * size * shape))
    d.qd = max(d.qd, qd_total)
    if full:
        d.t_vec = d.a_t * _v(0.3, 0.2, -0.12)


def _hypertrophy(d: _Draft, codes: set[str], rng: np.random.Generator, amp: float) -> None:
    """RVH: a large rightward-anterior lobe; LVH: larger left forces, sometimes with strain."""
    lobes, qd = d.lobes, d.qd
    if "RVH" in codes:
        lobes[2].vec = lobes[2].vec * 0.5
        lobes.append(Lobe(0.5 * qd, 0.13 * qd, 0.13 * qd, amp * rng.uniform(1.0, 1.4) * _v(-0.8, 0.45, 0.75)))
        d.t_vec = d.a_t * _v(0.2, 0.25, -0.1)
    if "LVH" in codes:
        lobes[2].vec = lobes[2].vec * rng.uniform(1.6, 2.2)
        if not codes & {"INJAS", "INJIN", "ISC_", "ISCAL", "NST_"} and rng.random() < 0.4:
            d.t_vec = d.a_t * _v(-0.2, 0.05, -0.1)
            d.st_vec = -0.07 * _unit(_v(0.8, 0.2, -0.2))


def _repolarisation(d: _Draft, codes: set[str], rng: np.random.Generator, qt: float) -> Lobe:
    """The T wave; injury and ischaemia statements set the ST shift (``d.st_vec``) and reshape T."""
    t = t_wave(qt, d.t_vec, rng)
    a_t = d.a_t
    if "INJAS" in codes:
        d.st_vec = _v(rng.uniform(0.0, 0.05), 0.0, rng.uniform(0.2, 0.4))
        t.vec = t.vec + _v(0.0, 0.0, rng.uniform(0.15, 0.35))
    elif "INJIN" in codes:
        d.st_vec = _v(-rng.uniform(0.03, 0.1), rng.uniform(0.2, 0.38), 0.0)
    elif "ISC_" in codes:
        d.st_vec = -rng.uniform(0.15, 0.26) * _unit(_v(0.55, 0.55, 0.35))
        t.vec = t.vec * rng.uniform(-0.5, 0.3)
    elif "ISCAL" in codes:
        t.vec = a_t * _v(-rng.uniform(0.2, 0.3), rng.uniform(0.0, 0.12), -rng.uniform(0.2, 0.3))
        d.st_vec = -0.04 * _unit(_v(1.0, 0.0, 1.0))
    elif "NST_" in codes:
        d.st_vec = -rng.uniform(0.06, 0.09) * _unit(_v(0.55, 0.5, 0.35))
        t.vec = t.vec * rng.uniform(0.35, 0.6)
    return t


def _scale_qrs(lobes: list[Lobe], n_qrs: int, f: float) -> None:
    for lb in lobes[:n_qrs]:
        lb.vec = lb.vec * f


def _st(t12: np.ndarray, a: int, qd: float, fs: float) -> np.ndarray:
    return t12[:, a + round((qd + 60.0) * fs / 1000.0)]


def _check(codes: set[str], t12: np.ndarray, a: int, qd: float, t_c: float, fs: float) -> bool:
    on, off = a, a + round(qd * fs / 1000.0)
    axis = net_axis(t12, on, off)
    qrs = t12[:, on : off + 1]
    st = _st(t12, a, qd, fs)
    no_avr = [i for i in range(12) if i != L["aVR"]]
    if "NORM" in codes and not (-25 <= axis <= 88 and np.abs(st).max() < 0.08):
        return False
    if "LAFB" in codes and not (-85 <= axis <= -50):
        return False
    if "RVH" in codes:
        v1 = qrs[L["V1"]]
        if not (axis >= 100 and v1.max() >= 1.3 * max(-v1.min(), 1e-3)):
            return False
    for code, (leads, need) in _MI_LEADS.items():
        if code in codes:
            qs = [q_wave(t12[L[n]], on, off, fs) for n in leads]
            if sum(w >= 36 and d >= 0.12 for w, d in qs) < need:
                return False
    if "ILMI" in codes:
        qs = [q_wave(t12[L[n]], on, off, fs) for n in ("I", "aVL", "V5", "V6")]
        if sum(w >= 36 and d >= 0.1 for w, d in qs) < 2:
            return False
    if "CRBBB" in codes or "IRBBB" in codes:
        v1 = qrs[L["V1"]]
        k = int(np.argmin(v1))
        if v1[k:].max() - v1[k] < (0.35 if "CRBBB" in codes else 0.2) or k >= v1.size - 3:
            return False
    if "INJAS" in codes and (st[[L[n] for n in ("V1", "V2", "V3", "V4")]] >= 0.2).sum() < 2:
        return False
    if "INJIN" in codes and (st[[L[n] for n in ("II", "III", "aVF")]] >= 0.15).sum() < 2:
        return False
    if "ISC_" in codes and (st[no_avr] <= -0.13).sum() < 2:
        return False
    if "NST_" in codes:
        s = st[no_avr]
        if ((s <= -0.045) & (s >= -0.09)).sum() < 3 or s.min() < -0.095:
            return False
    if "ISCAL" in codes:
        tv = t12[:, a + round(t_c * fs / 1000.0)]
        if (tv[[L[n] for n in ("I", "aVL", "V2", "V3", "V4", "V5", "V6")]] <= -0.15).sum() < 3:
            return False
    return True


def ventricular_morph(
    codes: set[str], rng: np.random.Generator, rr: float, amp: float, fs: float
) -> Ventricular:
    """The dominant QRS-ST-T for ``codes`` at mean RR ``rr`` (s), verified on its template."""
    for _ in range(60):
        lobes, qd, qt = _build(codes, rng, rr, amp)
        n_qrs = sum(1 for lb in lobes if lb.offset <= qd + 1e-6)
        tpl = make_template(lobes, fs)
        t12 = tpl.leads12()
        a = tpl.anchor
        on, off = a, a + round(qd * fs / 1000.0)
        if "LAFB" in codes:
            rot = rng.uniform(-75, -55) - net_axis(t12, on, off)
            r = rot_z(rot)
            for lb in lobes[: n_qrs + 1]:  # QRS and T; an injury/ischaemia vector stays anatomical
                lb.vec = r @ lb.vec
        if "LVH" in codes:
            for _ in range(4):
                t12 = make_template(lobes, fs).leads12()
                q = t12[:, on : off + 1]
                sok = -q[L["V1"]].min() + max(q[L["V5"]].max(), q[L["V6"]].max())
                _scale_qrs(lobes, n_qrs, rng.uniform(3.9, 5.1) / max(sok, 0.3))
        if "LVOLT" in codes:
            t12 = make_template(lobes, fs).leads12()
            p2p = np.ptp(t12[[L[n] for n in _LIMB], on : off + 1], axis=1).max()
            _scale_qrs(lobes, n_qrs, rng.uniform(0.25, 0.38) / p2p)
            lobes[n_qrs].vec = lobes[n_qrs].vec * 0.5  # T wave; an ST shift keeps its size
        tpl = make_template(lobes, fs)
        t12 = tpl.leads12()
        t_c = next(lb.c for lb in lobes if lb.offset > qd + 60)
        if _check(codes, t12, tpl.anchor, qd, t_c, fs):
            break
    axis = net_axis(t12, tpl.anchor, tpl.anchor + round(qd * fs / 1000.0))
    return Ventricular(lobes, qd, qt, tpl, axis)


def pvc_morph(
    rng: np.random.Generator, amp: float, qt: float, fs: float, dominant: Template, lv_origin: bool = False
) -> Template:
    """Premature ventricular beat, larger than the dominant QRS (as PVCs are); ``lv_origin``
    forces an RBBB-like shape, unlike an LBBB rhythm."""
    qd = rng.uniform(140, 175)
    lobes = pvc_qrs(qd, amp, rng, lv_origin)
    size = np.linalg.norm(make_template(lobes, fs).dipole, axis=0).max()
    target = rng.uniform(1.2, 1.6) * np.linalg.norm(dominant.dipole, axis=0).max()
    for lb in lobes:
        lb.vec = lb.vec * (target / size)
    mean = _unit(qrs_mean_vector(lobes))
    t = t_wave(qt + 40.0, -mean * rng.uniform(0.4, 0.6), rng)
    lobes += [t, st_lobe(qd, t, -mean * 0.1)]
    return make_template(lobes, fs)


def escape_morph(
    rng: np.random.Generator, amp: float, rr: float, fs: float
) -> tuple[Template, float, float, float]:
    """Wide ventricular escape beat for complete AV block: (template, qrs, qt, axis)."""
    qd = rng.uniform(135, 165)
    qt = rng.uniform(430, 470) * math.sqrt(rr)
    lobes = lbbb_qrs(qd, amp * 1.4, rng)
    r = rot_z(rng.uniform(-30, 40))
    for lb in lobes:
        lb.vec = r @ lb.vec
    mean = _unit(qrs_mean_vector(lobes))
    t = t_wave(qt, -mean * rng.uniform(0.35, 0.5), rng)
    lobes += [t, st_lobe(qd, t, -mean * 0.1)]
    tpl = make_template(lobes, fs)
    t12 = tpl.leads12()
    return tpl, qd, qt, net_axis(t12, tpl.anchor, tpl.anchor + round(qd * fs / 1000.0))


def atrial_morph(
    rng: np.random.Generator, lae: bool, fs: float, pd_max: float = 1e9
) -> tuple[Template, float]:
    """Sinus P template (anchor P onset) and its duration; LAE redrawn until V1 shows it."""
    for _ in range(30):
        lobes, pd = p_wave(rng, lae, pd_max=pd_max)
        tpl = make_template(lobes, fs)
        v1 = tpl.leads12()[L["V1"]]
        if not lae or v1.min() <= -0.12:
            break
    return tpl, pd


def ectopic_p(rng: np.random.Generator, fs: float) -> Template:
    lobes, _ = p_wave(rng, lae=False, ectopic=True)
    return make_template(lobes, fs)
