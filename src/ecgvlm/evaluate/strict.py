"""Strict scoring of label answers: gold from the ``gold`` block, a real ranking AUC, tuned thresholds.

* Gold labels come from each row's ``gold`` block (``labels`` / ``superclasses`` / ``scp``), never
  from parsing the reference text.
* The answer's labels are read with the strict reader (synonyms and negation, see ``labels.py``).
* When every row carries ``scores`` ({label: probability}), AUC is the ranking ROC-AUC of those
  scores per class, and F1 / Hamming use ``scores >= threshold`` with a per-class threshold chosen
  to maximise F1 on the validation predictions (``val_preds``); without them the threshold is 0.5
  and the output says so. Without scores, F1 / Hamming come from the text and AUC is null.
* Macro AUC and macro F1 average over the classes present in the gold labels (a class no test row
  has cannot be scored); Hamming loss covers every label. All figures x100, one decimal.
* 95% intervals: percentile bootstrap over rows (1000 resamples, seed 0).
"""

from __future__ import annotations

import numpy as np

from ecgvlm.errors import ECGVLMError
from ecgvlm.evaluate.bootstrap import auc_per_class, bootstrap_ci, f1_per_class, hamming
from ecgvlm.evaluate.labels import extract_labels, gold_labels, labels_of


def _percent(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(100.0 * float(x), 1)


def _matrix(rows: list[set[str]], labels: list[str]) -> np.ndarray:
    return np.array([[lab in r for lab in labels] for r in rows], dtype=bool).reshape(len(rows), len(labels))


def _scores(preds: list[dict], labels: list[str], path: str | None) -> np.ndarray | None:
    if not preds or any(not isinstance(r.get("scores"), dict) for r in preds):
        return None
    out = np.zeros((len(preds), len(labels)))
    for i, r in enumerate(preds):
        missing = [lab for lab in labels if lab not in r["scores"]]
        if missing:
            raise ECGVLMError(f"row {r.get('id')!r}: scores lack {', '.join(missing[:5])}", path)
        try:
            out[i] = [float(r["scores"][lab]) for lab in labels]
        except (TypeError, ValueError):
            raise ECGVLMError(f"row {r.get('id')!r}: scores must be numbers", path) from None
        if not np.isfinite(out[i]).all():
            raise ECGVLMError(f"row {r.get('id')!r}: scores must be finite", path)
    return out


def _unscored_ids(preds: list[dict]) -> list:
    """Ids of rows without scores, when some rows have scores or say why not (else: none were asked)."""
    missing = [r for r in preds if not isinstance(r.get("scores"), dict)]
    if len(missing) == len(preds) and not any(r.get("scores_missing") for r in missing):
        return []
    return [r.get("id") for r in missing]


def _no_scores_note(preds: list[dict]) -> str:
    """Why there is no AUC: which rows lack scores, and the reason each row gives (``scores_missing``)."""
    missing = [r for r in preds if not isinstance(r.get("scores"), dict)]
    if len(missing) == len(preds) and not any(r.get("scores_missing") for r in missing):
        return "no per-label scores in the predictions: AUC not available"
    ids = ", ".join(str(r.get("id")) for r in missing[:10]) + (", ..." if len(missing) > 10 else "")
    reasons: dict[str, int] = {}
    for r in missing:
        why = str(r.get("scores_missing") or "no reason given")
        reasons[why] = reasons.get(why, 0) + 1
    why = "; ".join(f"{k} ({v} rows)" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
    return (
        f"{len(missing)} of {len(preds)} rows have no scores (ids: {ids}; why: {why}): AUC not "
        "available, F1 and Hamming are read from the answer text"
    )


def best_thresholds(y_true: np.ndarray, y_score: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per class, the score cut (predict score >= cut) that maximises F1; ``default`` if no positive."""
    out = np.full(y_true.shape[1], default)
    for j in range(y_true.shape[1]):
        t, s = y_true[:, j].astype(bool), y_score[:, j]
        if not t.any():
            continue
        order = np.argsort(-s, kind="stable")
        s_sorted, t_sorted = s[order], t[order]
        tp = np.cumsum(t_sorted)
        k = np.arange(1, len(s) + 1)
        f1 = 2 * tp / (k + t.sum())
        # only cut between distinct scores: the last index of each run of equal scores
        last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
        f1 = np.where(last, f1, -1)
        out[j] = s_sorted[int(np.argmax(f1))]
    return out


def _per_class(
    labels: list[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    f1: np.ndarray,
    auc: np.ndarray,
    thresholds: np.ndarray | None,
) -> dict[str, dict]:
    """Support, AUC, F1, precision, recall and threshold per label that the gold or the answers name."""
    support = y_true.sum(axis=0)
    present = support > 0
    tp = (y_true & y_pred).sum(axis=0)
    n_pred = y_pred.sum(axis=0)
    per_class = {}
    for j, lab in enumerate(labels):
        if not present[j] and not n_pred[j]:
            continue
        per_class[lab] = {
            "support": int(support[j]),
            "auc": _percent(auc[j]),
            "f1": _percent(f1[j]) if present[j] else None,
            "precision": _percent(tp[j] / n_pred[j]) if n_pred[j] else None,
            "recall": _percent(tp[j] / support[j]) if present[j] else None,
            "threshold": None if thresholds is None else round(float(thresholds[j]), 4),
        }
    return per_class


def score_strict(
    preds: list[dict],
    benchmark: str,
    val_preds: list[dict] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    path: str | None = None,
) -> dict:
    """Strict metrics for a label benchmark (ptbxl-super, ptbxl-71, cpsc, code15)."""
    labels = labels_of(benchmark)
    if not preds:
        raise ECGVLMError(f"no rows to score for {benchmark}", path)
    y_true = _matrix([gold_labels(r.get("gold"), benchmark, path) for r in preds], labels)
    y_text = _matrix([extract_labels(r.get("prediction") or "", benchmark) for r in preds], labels)
    y_score = _scores(preds, labels, path)
    notes = []

    if y_score is not None:
        val_score = _scores(val_preds, labels, path) if val_preds else None
        if val_score is not None:
            val_true = _matrix([gold_labels(r.get("gold"), benchmark, path) for r in val_preds], labels)
            thresholds = best_thresholds(val_true, val_score)
            threshold_source = f"max F1 on {len(val_preds)} validation rows"
        else:
            thresholds = np.full(len(labels), 0.5)
            threshold_source = "default 0.5 (no validation predictions with scores)"
            notes.append("thresholds are the default 0.5: pass --val-predictions to tune them")
        y_pred = y_score >= thresholds
        auc = auc_per_class(y_true, y_score)
        n_bounded = sum(bool(r.get("scores_bounded")) for r in preds)
        if n_bounded:
            notes.append(
                f"{n_bounded} of {len(preds)} rows scored some codes at an upper bound (not among the "
                "first-token alternatives the endpoint returned; see 'scores_bounded' in the rows)"
            )
        pred_source = "scores >= per-class threshold"
    else:
        thresholds = None
        threshold_source = None
        y_pred = y_text
        auc = np.full(len(labels), np.nan)
        pred_source = "labels read from the answer text"
        notes.append(_no_scores_note(preds))

    present = y_true.sum(axis=0) > 0
    f1 = f1_per_class(y_true, y_pred)
    per_class = _per_class(labels, y_true, y_pred, f1, auc, thresholds)
    cols = np.flatnonzero(present)
    ci = bootstrap_ci(y_true, y_pred, y_score, n_boot, seed, macro_cols=cols)
    auc_present = auc[cols]
    return {
        "n": len(preds),
        "labels": labels,
        "classes_scored": [labels[j] for j in cols],
        "auc": _percent(np.nanmean(auc_present)) if np.isfinite(auc_present).any() else None,
        "f1": _percent(f1[cols].mean()) if cols.size else None,
        "hamming": _percent(hamming(y_true, y_pred)),
        "ci95": {k: None if v is None else [_percent(v[0]), _percent(v[1])] for k, v in ci.items()},
        "text": {
            "f1": _percent(f1_per_class(y_true, y_text)[cols].mean()) if cols.size else None,
            "hamming": _percent(hamming(y_true, y_text)),
        },
        "predictions_from": pred_source,
        "thresholds_from": threshold_source,
        "bootstrap": {"resamples": n_boot, "seed": seed},
        "per_class": per_class,
        "notes": notes,
        "rows_without_scores": _unscored_ids(preds) if y_score is None else [],
    }
