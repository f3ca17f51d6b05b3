"""Fast multi-label metrics in numpy and seeded bootstrap confidence intervals.

A 1000-resample bootstrap over 71 classes needs 71 000 AUCs, so the AUC here is the rank
(Mann-Whitney) form — equal to sklearn's ``roc_auc_score`` (ties count one half; tested). Inside the
bootstrap a resample is a vector of row counts, and ``WeightedAUC`` turns counts into AUCs for every
class with two ``bincount`` calls, with no re-sorting.
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


class WeightedAUC:
    """Per-class AUC of row-weighted data (bootstrap counts), from tie groups computed once."""

    def __init__(self, y_true: np.ndarray, y_score: np.ndarray) -> None:
        n, c = y_score.shape
        ids = np.empty((n, c), dtype=np.int64)
        sizes = []
        start = 0
        for j in range(c):
            _, inv = np.unique(y_score[:, j], return_inverse=True)
            ids[:, j] = inv.reshape(-1) + start
            sizes.append(int(inv.max()) + 1 if n else 0)
            start += sizes[-1]
        self.ids = ids.ravel()
        self.n_groups = start
        self.column = np.repeat(np.arange(c), sizes)
        self.column_start = np.r_[0, np.cumsum(sizes)[:-1]]
        self.y = np.asarray(y_true, dtype=float)
        self.c = c

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        w = np.asarray(weights, dtype=float)[:, None]
        pos = np.bincount(self.ids, weights=(w * self.y).ravel(), minlength=self.n_groups)
        neg = np.bincount(self.ids, weights=(w * (1.0 - self.y)).ravel(), minlength=self.n_groups)
        cum = np.cumsum(neg)
        before_column = np.r_[0.0, cum][self.column_start][self.column]
        below = cum - neg - before_column  # negatives with a lower score, same column
        num = np.bincount(self.column, weights=pos * (below + 0.5 * neg), minlength=self.c)
        p = np.bincount(self.column, weights=pos, minlength=self.c)
        q = np.bincount(self.column, weights=neg, minlength=self.c)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((p > 0) & (q > 0), num / (p * q), np.nan)


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
    macro_cols: np.ndarray | None = None,
) -> dict[str, list[float] | None]:
    """Percentile intervals for macro AUC (from scores), macro F1 and Hamming loss, resampling rows.

    Macro AUC / F1 average over ``macro_cols`` (default: all columns); Hamming covers all columns.
    """
    rng = np.random.default_rng(seed)
    n = y_true.shape[0]
    cols = np.arange(y_true.shape[1]) if macro_cols is None else np.asarray(macro_cols)
    stats: dict[str, list[float]] = {"auc": [], "f1": [], "hamming": []}
    weighted_auc = (
        WeightedAUC(y_true[:, cols], y_score[:, cols]) if y_score is not None and cols.size else None
    )
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        t, p = y_true[idx], y_pred[idx]
        stats["hamming"].append(hamming(t, p))
        t, p = t[:, cols], p[:, cols]
        stats["f1"].append(float(f1_per_class(t, p).mean()) if cols.size else float("nan"))
        if weighted_auc is not None:
            a = weighted_auc(np.bincount(idx, minlength=n))
            if np.isfinite(a).any():
                stats["auc"].append(float(np.nanmean(a)))
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    return {
        k: ([float(np.percentile(v, lo)), float(np.percentile(v, hi))] if v else None)
        for k, v in stats.items()
    }
