"""ECGBench-compatible scoring: the published rules, implemented cleanly.

Rules (PULSE / ECGBench, arXiv 2410.19008):

* a label is present when its code is a case-sensitive substring of the text, read the same way
  from the prediction and from the reference text;
* a ``MultiLabelBinarizer`` is fitted on the reference label lists, so the classes are only the
  labels seen in some reference (a label the references never contain is ignored everywhere);
* macro F1 = mean of the per-class F1 (sklearn, zero division -> 0);
* Hamming loss = sklearn ``hamming_loss`` on the binarised matrices;
* "AUC" = per-class ``roc_auc_score`` of the BINARY predictions (balanced accuracy in disguise),
  plain mean. A class with one value in the references (every reference has it) has no AUC: the
  published plain mean is then NaN. We report that as ``auc_plain_mean: null`` and, as ``auc``, the
  mean over the other classes, listing the degenerate classes — so a number is still comparable
  with the paper's when no class is degenerate, and never silently different when one is;
* everything x100 and rounded to one decimal.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ecgvlm.evaluate.labels import ecgbench_labels


def _percent(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(100.0 * float(x), 1)


def score_ecgbench(preds: list[dict], labels: list[str]) -> dict:
    """Score free-text answers by ECGBench's rules. ``preds`` rows need ``prediction`` and ``reference``."""
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import f1_score, hamming_loss, roc_auc_score
    from sklearn.preprocessing import MultiLabelBinarizer

    gold = [ecgbench_labels(r.get("reference") or "", labels) for r in preds]
    pred = [ecgbench_labels(r.get("prediction") or "", labels) for r in preds]
    mlb = MultiLabelBinarizer()
    y_true = mlb.fit_transform(gold)
    classes = [str(c) for c in mlb.classes_]
    if not classes:
        return {"n": len(preds), "classes": [], "error": "no reference contains any label code"}
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", UserWarning
        )  # labels outside the fitted classes are dropped, as published
        y_pred = mlb.transform(pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        f1 = f1_score(y_true, y_pred, average=None, zero_division=0)
    per_class, aucs, degenerate = {}, [], []
    for i, c in enumerate(classes):
        if len(np.unique(y_true[:, i])) < 2:
            auc = float("nan")
            degenerate.append(c)
        else:
            auc = float(roc_auc_score(y_true[:, i], y_pred[:, i]))
        aucs.append(auc)
        per_class[c] = {"support": int(y_true[:, i].sum()), "f1": _percent(f1[i]), "auc": _percent(auc)}
    aucs_arr = np.array(aucs)
    finite = aucs_arr[~np.isnan(aucs_arr)]
    return {
        "n": len(preds),
        "classes": classes,
        "f1": _percent(float(np.mean(f1))),
        "hamming": _percent(hamming_loss(y_true, y_pred)),
        "auc": _percent(float(finite.mean())) if finite.size else None,
        "auc_plain_mean": _percent(float(aucs_arr.mean())),
        "degenerate_classes": degenerate,
        "per_class": per_class,
        "note": "AUC on binary predictions (published rule); degenerate classes excluded from 'auc', "
        "'auc_plain_mean' is the published plain mean (null when any class is degenerate)",
    }
