"""The cardiac dipole model: wave lobes, lead projection, and per-condition beat morphologies.

Coordinates: x points to the patient's left, y inferior (feet), z anterior. A lobe is a smooth
bump in time (an asymmetric Gaussian with an optional flat top) carrying a 3-D dipole vector;
a beat is a list of lobes. Lead I and II are projections of the dipole; III, aVR, aVL, aVF are
derived from I and II with Einthoven's and Goldberger's equations, so those identities hold
exactly. V1-V6 are projections on horizontal-plane directions with proximity gains, which gives
rS in V1, a transition around V3-V4 and tall R in V5-V6.

Times inside a morphology are milliseconds from the anchor (QRS onset, or P onset for atria).
A lobe's onset/offset is defined at 2.5 sigma; the true QRS/QT values reported by the generator
use that definition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ecgvlm.signals.record import LEADS

SQ3_2 = math.sqrt(3.0) / 2.0
_PRECORDIAL_DEG = (115.0, 90.0, 70.0, 50.0, 30.0, 0.0)
_PRECORDIAL_GAIN = (1.1, 1.6, 1.6, 1.5, 1.25, 1.0)

# rows: I, II, V1..V6 (the 8 independent leads); columns x, y, z.
PROJ8 = np.array(
    [[1.0, 0.0, 0.0], [0.5, SQ3_2, 0.0]]
    + [
        [g * math.cos(math.radians(a)), 0.0, g * math.sin(math.radians(a))]
        for a, g in zip(_PRECORDIAL_DEG, _PRECORDIAL_GAIN)
    ]
)
L = {name: i for i, name in enumerate(LEADS)}


def assemble12(base8: np.ndarray) -> np.ndarray:
    """(8, n) = I, II, V1..V6 -> (12, n) with III, aVR, aVL, aVF derived exactly from I and II."""
    i, ii = base8[0], base8[1]
    out = np.empty((12, base8.shape[1]), dtype=np.float64)
    out[0] = i
    out[1] = ii
    out[2] = ii - i
    out[3] = -(i + ii) / 2.0
    out[4] = i - ii / 2.0
    out[5] = ii - i / 2.0
    out[6:] = base8[2:]
    return out


@dataclass
class Lobe:
    c: float  # centre, ms
    sl: float  # left sigma, ms
    sr: float  # right sigma, ms
    vec: np.ndarray  # dipole, mV
    h: float = 0.0  # half-length of the flat top, ms

    @property
    def onset(self) -> float:
        return self.c - self.h - 2.5 * self.sl

    @property
    def offset(self) -> float:
        return self.c + self.h + 2.5 * self.sr


def render(lobes: list[Lobe], t_ms: np.ndarray) -> np.ndarray:
    """Dipole (3, len(t_ms)) of a list of lobes on a time grid."""
    if not lobes:
        return np.zeros((3, t_ms.size))
    c = np.array([lb.c for lb in lobes])[:, None]
    h = np.array([lb.h for lb in lobes])[:, None]
    sl = np.array([lb.sl for lb in lobes])[:, None]
    sr = np.array([lb.sr for lb in lobes])[:, None]
    vec = np.array([lb.vec for lb in lobes])
    u = t_ms[None, :] - c
    left = np.minimum(u + h, 0.0) / sl
    right = np.maximum(u - h, 0.0) / sr
    g = np.exp(-0.5 * (left * left + right * right))
    return vec.T @ g


@dataclass
class Template:
    """A rendered beat part: dipole samples and the sample index of its anchor."""

    dipole: np.ndarray  # (3, m)
    anchor: int

    def leads12(self) -> np.ndarray:
        return assemble12(PROJ8 @ self.dipole)


def make_template(lobes: list[Lobe], fs: float) -> Template:
    start = min(lb.c - lb.h - 4.5 * lb.sl for lb in lobes)
    stop = max(lb.c + lb.h + 4.5 * lb.sr for lb in lobes)
    dt = 1000.0 / fs
    k0 = math.floor(start / dt)
    k1 = math.ceil(stop / dt)
    t = np.arange(k0, k1 + 1) * dt
    return Template(render(lobes, t), -k0)


def rot_z(deg: float) -> np.ndarray:
    """Rotation in the frontal (x-y) plane; positive turns the axis toward inferior/right."""
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


def _v(*xyz: float) -> np.ndarray:
    return np.array(xyz, dtype=np.float64)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)


# --- QRS shapes -------------------------------------------------------------------------------


def _jitter(rng: np.random.Generator, v: np.ndarray, amount: float = 0.06) -> np.ndarray:
    return v + rng.normal(0.0, amount, 3) * np.linalg.norm(v)


def normal_qrs(qd: float, a: float, rng: np.random.Generator, t0: float = 0.0) -> list[Lobe]:
    """Septal q, early anterior-left R, late left-posterior R, terminal s; spans [t0, t0 + qd]."""
    s_sep, s_r1, s_r2, s_s = 0.06 * qd, 0.11 * qd, 0.12 * qd, 0.075 * qd
    return [
        Lobe(t0 + 2.5 * s_sep, s_sep, s_sep, a * _jitter(rng, _v(-0.12, 0.05, 0.22))),
        Lobe(t0 + 0.38 * qd, s_r1, s_r1, a * _jitter(rng, _v(0.45, 0.55, 0.35))),
        Lobe(t0 + 0.56 * qd, s_r2, s_r2, a * _jitter(rng, _v(0.55, 0.30, -0.60))),
        Lobe(t0 + qd - 2.5 * s_s, s_s, s_s, a * _jitter(rng, _v(-0.20, -0.25, -0.25))),
    ]


def lbbb_qrs(qd: float, a: float, rng: np.random.Generator) -> list[Lobe]:
    """No septal q; two broad leftward-posterior lobes separated enough to notch the R."""
    s1, s2 = 0.12 * qd, 0.125 * qd
    return [
        Lobe(2.5 * s1, s1, s1, a * _jitter(rng, _v(0.55, 0.15, -0.35))),
        Lobe(qd - 2.5 * s2, s2, s2, a * _jitter(rng, _v(0.65, -0.05, -0.80))),
    ]


def pvc_qrs(qd: float, a: float, rng: np.random.Generator, lv_origin: bool = False) -> list[Lobe]:
    """Ectopic ventricular beat: broad, large, from the RV outflow tract or the LV free wall."""
    s1, s2 = 0.12 * qd, 0.13 * qd
    if rng.random() < 0.5 and not lv_origin:  # RVOT: LBBB-like, inferior axis
        v1, v2 = _v(0.3, 0.6, -0.3), _v(0.5, 0.6, -0.8)
    else:  # LV: RBBB-like, superior axis
        v1, v2 = _v(-0.3, -0.4, 0.5), _v(-0.6, -0.5, 0.8)
    return [
        Lobe(2.5 * s1, s1, s1, a * _jitter(rng, v1, 0.1)),
        Lobe(qd - 2.5 * s2, s2, s2, a * 1.2 * _jitter(rng, v2, 0.1)),
    ]


def qrs_mean_vector(lobes: list[Lobe]) -> np.ndarray:
    return sum(lb.vec * (lb.sl + lb.sr + 2 * lb.h) for lb in lobes)


def t_wave(qt: float, vec: np.ndarray, rng: np.random.Generator) -> Lobe:
    """T wave ending (2.5 sigma) exactly at ``qt`` ms after QRS onset; slow rise, faster fall."""
    sr = qt * rng.uniform(0.085, 0.10)
    sl = sr * rng.uniform(1.5, 1.9)
    return Lobe(qt - 2.5 * sr, sl, sr, vec)


def st_lobe(j: float, t: Lobe, vec: np.ndarray) -> Lobe:
    """A flat ST shift from the J point to the T peak, fading with the T wave. It rises inside the
    late QRS (as an injury current does), so the J point itself is already shifted."""
    start, stop = j - 4.0, t.c
    return Lobe((start + stop) / 2, 6.0, t.sr, vec, h=max(0.0, (stop - start) / 2))


# --- atrial shapes ----------------------------------------------------------------------------


def p_wave(
    rng: np.random.Generator, lae: bool, ectopic: bool = False, pd_max: float = 1e9
) -> tuple[list[Lobe], float]:
    """Right- then left-atrial lobes; returns (lobes, P duration ms). Anchor: P onset."""
    amp = rng.uniform(0.8, 1.25)
    if lae:
        pd = min(rng.uniform(122, 142), pd_max)
        s = 0.15 * pd
        ra, la = _v(0.05, 0.11, 0.07), _v(0.14, 0.05, -0.17) * rng.uniform(1.0, 1.25)
    else:
        pd = min(rng.uniform(88, 108), pd_max)
        s = 0.17 * pd
        ra, la = _v(0.05, 0.12, 0.08), _v(0.10, 0.07, 0.0)
    if ectopic:  # low atrial focus: inverted P in the inferior leads
        ra, la = _v(0.04, -0.10, 0.06), _v(0.06, -0.05, -0.02)
    rot = rot_z(rng.uniform(-12, 12))
    lobes = [
        Lobe(2.5 * s, s, s, amp * rot @ _jitter(rng, ra)),
        Lobe(pd - 2.5 * s, s, s, amp * rot @ _jitter(rng, la)),
    ]
    return lobes, pd


# --- measurements on noiseless templates (the generator's own checks) ---------------------------


def net_axis(t12: np.ndarray, on: int, off: int) -> float:
    """Frontal QRS axis (deg) from the net QRS areas in I and aVF."""
    a_i = float(t12[L["I"], on : off + 1].sum())
    a_f = float(t12[L["aVF"], on : off + 1].sum())
    return math.degrees(math.atan2(a_f, a_i))


def q_wave(x: np.ndarray, on: int, off: int, fs: float) -> tuple[float, float]:
    """(width ms, depth mV) of an initial negative QRS deflection in one noiseless lead."""
    seg = x[on : off + 1] - x[on]
    moved = np.flatnonzero(np.abs(seg) > 0.02)
    if moved.size == 0 or seg[moved[0]] > 0:
        return 0.0, 0.0
    back = np.flatnonzero(seg[moved[0] :] >= 0.0)
    end = moved[0] + (back[0] if back.size else seg.size - 1 - moved[0])
    return end * 1000.0 / fs, float(-seg[: end + 1].min())
