"""Fast multi-label metrics in numpy and seeded bootstrap confidence intervals.

A 1000-resample bootstrap over 71 classes calls the AUC 71 000 times, so the AUC here is the
rank (Mann-Whitney) form — equal to sklearn's ``roc_auc_score`` (ties count one half; tested) at a
fraction of its cost.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auc_per_class(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """ROC-AUC of each column; NaN for a column with only one class in ``y_true``."""
    y_true = np.asarray(y_true, dtype=bool)
    y_score = np.asarray(y_score, dtype=float)
    ranks = rankdata(y_score, axis=0)
    n_pos = y_true.sum(axis=0)
    n_neg = y_true.shape[0] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        u = (ranks * y_true).sum(axis=0) - n_pos * (n_pos + 1) / 2.0
        auc = u / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def f1_per_class(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """F1 of each column; 0 where precision and recall are both undefined (sklearn's zero_division=0)."""
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    tp = (y_true & y_pred).sum(axis=0)
    denom = y_true.sum(axis=0) + y_pred.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)


def hamming(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true, dtype=bool) != np.asarray(y_pred, dtype=bool)))


def bootstrap_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray | None,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, list[float] | None]:
    """Percentile intervals for macro AUC (from scores), macro F1 and Hamming loss, resampling rows."""
    rng = np.random.default_rng(seed)
    n = y_true.shape[0]
    stats: dict[str, list[float]] = {"auc": [], "f1": [], "hamming": []}
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        t, p = y_true[idx], y_pred[idx]
        stats["f1"].append(float(f1_per_class(t, p).mean()))
        stats["hamming"].append(hamming(t, p))
        if y_score is not None:
            a = auc_per_class(t, y_score[idx])
            if np.isfinite(a).any():
                stats["auc"].append(float(np.nanmean(a)))
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    return {
        k: ([float(np.percentile(v, lo)), float(np.percentile(v, hi))] if v else None) for k, v in stats.items()
    }
