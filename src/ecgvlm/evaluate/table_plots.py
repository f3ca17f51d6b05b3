"""Table I's figures: ROC curves per class and per-class bars, one line or bar per run (PNG)."""

from __future__ import annotations

import math
from pathlib import Path

from ecgvlm.evaluate.runs import CLASSIFICATION, METRIC_NAMES, Run, number


def pyplot():
    """matplotlib's pyplot without a display, in the tables' look."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _scored_rows(run: Run, benchmark: str) -> list[dict]:
    from ecgvlm.evaluate.score import BENCHMARK_TASKS
    from ecgvlm.io import read_jsonl

    if not run.predictions.exists():
        return []
    task = BENCHMARK_TASKS[benchmark]
    return [
        r
        for r in read_jsonl(run.predictions)
        if r.get("task", task) == task
        and isinstance(r.get("scores"), dict)
        and isinstance(r.get("gold"), dict)
    ]


def plot_roc(runs: list[Run], out: Path, max_classes: int = 12) -> tuple[Path, str] | None:
    """ROC curves per class (one panel each), one line per run, from predictions' scores."""
    import numpy as np
    from sklearn.metrics import roc_auc_score, roc_curve

    from ecgvlm.evaluate.labels import gold_labels, labels_of

    for bench in CLASSIFICATION:
        data = {r.name: _scored_rows(r, bench) for r in runs}
        if any(data.values()):
            break
    else:
        return None
    labels = labels_of(bench)
    curves: dict[str, dict[str, tuple]] = {}
    support: dict[str, int] = {lab: 0 for lab in labels}
    for name, rows in data.items():
        if not rows:
            continue
        y = np.array([[lab in gold_labels(r["gold"], bench) for lab in labels] for r in rows])
        s = np.array([[float(r["scores"].get(lab, 0.0)) for lab in labels] for r in rows])
        for j, lab in enumerate(labels):
            if 0 < y[:, j].sum() < len(rows):
                fpr, tpr, _ = roc_curve(y[:, j], s[:, j])
                curves.setdefault(lab, {})[name] = (fpr, tpr, roc_auc_score(y[:, j], s[:, j]))
                support[lab] = max(support[lab], int(y[:, j].sum()))
    shown = sorted(curves, key=lambda lab: (-support[lab], labels.index(lab)))[:max_classes]
    shown.sort(key=labels.index)
    if not shown:
        return None
    plt = pyplot()
    ncol = min(len(shown), 5 if len(shown) <= 5 else 4)
    nrow = math.ceil(len(shown) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.1 * ncol, 3.2 * nrow), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, lab in zip(axes.flat, shown):
        ax.plot([0, 1], [0, 1], color="0.75", lw=0.8, ls="--")
        for i, r in enumerate(runs):
            if r.name in curves[lab]:
                fpr, tpr, auc = curves[lab][r.name]
                ax.plot(fpr, tpr, color=colours(i % 10), lw=1.6, label=f"{r.name} (AUC {auc:.2f})")
        ax.set_title(f"{lab}  (n+={support[lab]})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(loc="lower right", fontsize=7, frameon=False)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.suptitle(f"ROC curves per class — {bench} (ranking, from model scores)")
    fig.tight_layout()
    path = out / "roc.png"
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path, bench


def plot_per_class(runs: list[Run], out: Path, max_classes: int = 24) -> Path | None:
    """Grouped bars per class (strict AUC if present, else strict F1, else ECGBench F1), one bar per run."""
    import numpy as np

    choice = None
    for bench in CLASSIFICATION:
        for mode, metric in (("strict", "auc"), ("strict", "f1"), ("ecgbench", "f1")):
            per = [r.benchmarks.get(bench, {}).get(mode, {}).get("per_class") or {} for r in runs]
            if any(any(number(v.get(metric)) is not None for v in p.values()) for p in per):
                choice = (bench, mode, metric, per)
                break
        if choice:
            break
    if not choice:
        return None
    bench, mode, metric, per = choice
    from ecgvlm.evaluate.labels import labels_of

    order = labels_of(bench)
    classes = sorted(
        {c for p in per for c, v in p.items() if number(v.get(metric)) is not None},
        key=lambda c: order.index(c) if c in order else len(order),
    )[:max_classes]
    plt = pyplot()
    width = 0.8 / len(runs)
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(classes) * max(1, len(runs) / 2) + 1.5), 3.6))
    colours = plt.get_cmap("tab10")
    for i, (r, p) in enumerate(zip(runs, per)):
        vals = [(number((p.get(c) or {}).get(metric)) or 0.0) for c in classes]
        bars = ax.bar(
            x + (i - (len(runs) - 1) / 2) * width, vals, width * 0.95, label=r.name, color=colours(i % 10)
        )
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v + 1, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, classes, rotation=0 if len(classes) <= 9 else 60)
    ax.set_ylim(0, 110)
    ax.set_ylabel(f"{METRIC_NAMES[metric]} (x100)")
    ax.set_title(f"Per-class {METRIC_NAMES[metric]} — {bench}, {mode} mode")
    ax.legend(frameon=False, ncol=len(runs), loc="upper right", fontsize=8)
    fig.tight_layout()
    path = out / "per_class.png"
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path
