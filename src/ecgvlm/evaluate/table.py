"""Table I from scored runs, ROC curves and per-class bars; sweep tables and plots.

Run folder (written by ``ecgvlm evaluate`` + ``ecgvlm score``)::

    RUN/predictions.jsonl   rows {id, task, prediction, reference, gold, scores}; "scores" feed the ROC curves
    RUN/metrics.json        {"schema": "ecgvlm.metrics/1",
                             "benchmarks": {BENCHMARK: {MODE: {metric: value, ..., "ci95": {...}}}}}
    RUN/metrics_*.json      optional further files of the same schema, merged in name order

BENCHMARK is one of ptbxl-super, ptbxl-71, cpsc, code15, mcq, measure, report; MODE is ecgbench or
strict (for report: the judge, findings or llm).

Sweep folder (written by ``ecgvlm sweep``, one run folder per point)::

    SWEEP/points/<name>/metrics.json       as above
    SWEEP/points/<name>/predictions.jsonl  optional
    SWEEP/points/<name>/point.json         {"values": {"lora_r": 8, "lr": 0.0001, ...},
                                            "cost": {"trainable_params": 1234, "wall_s": 61.2,
                                                     "samples_per_s": 3.4, "peak_mem_gb": 1.2}}

Rows of Table I are (benchmark, mode, metric) in a fixed order; columns are runs; the best value of
each row is marked (lower is better for Hamming loss and MAE).
Under it, the image-dependence check each metrics entry records (``image_dependence``, see
evaluate/dependence.py), one row per figure, with a warning line per run whose outputs do not
depend on the image or whose answers loop.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import atomic_write_json, atomic_write_text

BENCH_ORDER = ["ptbxl-super", "ptbxl-71", "cpsc", "code15", "mcq", "measure", "report"]
MODE_ORDER = ["ecgbench", "strict", "findings", "llm"]
METRIC_ORDER = ["auc", "f1", "hamming", "accuracy", "mae", "score", "diagnosis", "waveform", "rhythm"]
METRIC_NAMES = {
    "auc": "AUC",
    "f1": "macro F1",
    "hamming": "Hamming loss",
    "accuracy": "accuracy",
    "mae": "MAE",
    "score": "report score",
    "diagnosis": "diagnosis (0-10)",
    "waveform": "waveform (0-10)",
    "rhythm": "rhythm (0-10)",
}
LOWER_IS_BETTER = {"hamming", "mae"}
CLASSIFICATION = ["ptbxl-super", "ptbxl-71", "cpsc", "code15"]


@dataclass
class Run:
    name: str
    path: Path
    benchmarks: dict = field(default_factory=dict)
    point: dict | None = None

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.jsonl"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ECGVLMError(f"cannot read JSON ({e})", path) from None


def load_run(path: str | Path, name: str | None = None) -> Run:
    """A run folder's merged metrics (``metrics.json`` then ``metrics_*.json``)."""
    path = Path(path)
    files = sorted(path.glob("metrics*.json"), key=lambda p: (p.name != "metrics.json", p.name))
    if not files:
        raise ECGVLMError("no metrics.json in this run folder (run `ecgvlm score` first)", path)
    run = Run(name or path.name, path)
    for f in files:
        doc = _read_json(f)
        if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), dict):
            raise ECGVLMError("not an ecgvlm metrics file (no 'benchmarks')", f)
        for bench, modes in doc["benchmarks"].items():
            run.benchmarks.setdefault(bench, {}).update(modes)
    if (path / "point.json").exists():
        run.point = _read_json(path / "point.json")
    return run


def _order(seq: list[str], key: str) -> tuple[int, str]:
    return (seq.index(key) if key in seq else len(seq), key)


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def table_rows(runs: list[Run]) -> list[dict]:
    """One row per (benchmark, mode, metric) any run has, values per run (None where absent)."""
    keys = set()
    for r in runs:
        for bench, modes in r.benchmarks.items():
            for mode, m in modes.items():
                keys |= {
                    (bench, mode, k)
                    for k in METRIC_ORDER
                    if isinstance(m, dict) and _num(m.get(k)) is not None
                }
    rows = []
    for bench, mode, metric in sorted(
        keys, key=lambda k: (_order(BENCH_ORDER, k[0]), _order(MODE_ORDER, k[1]), _order(METRIC_ORDER, k[2]))
    ):
        values, cis = [], []
        for r in runs:
            m = r.benchmarks.get(bench, {}).get(mode, {})
            values.append(_num(m.get(metric)))
            ci = (m.get("ci95") or {}).get(metric)
            cis.append(ci if isinstance(ci, list) and len(ci) == 2 else None)
        present = [v for v in values if v is not None]
        better = "lower" if metric in LOWER_IS_BETTER else "higher"
        best = None
        if len(present) > 1:
            target = min(present) if better == "lower" else max(present)
            best = [i for i, v in enumerate(values) if v == target]
        rows.append(
            {
                "benchmark": bench,
                "mode": mode,
                "metric": metric,
                "better": better,
                "values": values,
                "ci95": cis,
                "best": best,
            }
        )
    return rows


def _cell(value: float | None, ci: list | None, best: bool) -> str:
    if value is None:
        return "–"
    text = f"{value:.1f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"
    if ci and ci[0] is not None:
        text += f" [{ci[0]:.1f}, {ci[1]:.1f}]"
    return f"**{text}**" if best else text


def markdown_table(runs: list[Run], rows: list[dict]) -> str:
    head = ["Task", "Mode", "Metric"] + [r.name for r in runs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * len(runs)]
    for row in rows:
        arrow = "↓" if row["better"] == "lower" else "↑"
        cells = [
            _cell(v, ci, row["best"] is not None and i in row["best"])
            for i, (v, ci) in enumerate(zip(row["values"], row["ci95"]))
        ]
        lines.append(
            f"| {row['benchmark']} | {row['mode']} | {METRIC_NAMES[row['metric']]} {arrow} | "
            + " | ".join(cells)
            + " |"
        )
    notes = [
        "",
        "ecgbench: ECGBench's published rules (AUC on binary predictions). strict: ranking AUC from model",
        "scores, F1 at validation-tuned thresholds, [95% bootstrap interval]. Bold: best in row.",
    ]
    return "\n".join(lines + notes) + "\n"


# ------------------------------------------------------------------------------------------
# Image dependence
# ------------------------------------------------------------------------------------------


def run_dependence(run: Run) -> dict[str, dict]:
    """{benchmark: image_dependence} for a run: from metrics.json, else computed from its predictions.

    Every mode of a benchmark scores the same rows, so the first mode that recorded it is taken;
    runs scored before the check existed get it from predictions.jsonl when that file is there.
    """
    from ecgvlm.evaluate.dependence import image_dependence
    from ecgvlm.evaluate.score import BENCHMARK_TASKS, load_rows

    out = {}
    for bench in sorted(run.benchmarks, key=lambda b: _order(BENCH_ORDER, b)):
        modes = run.benchmarks[bench]
        found = [
            m["image_dependence"]
            for _, m in sorted(modes.items(), key=lambda kv: _order(MODE_ORDER, kv[0]))
            if isinstance(m, dict) and isinstance(m.get("image_dependence"), dict)
        ]
        if found:
            out[bench] = found[0]
        elif bench in BENCHMARK_TASKS and run.predictions.exists():
            try:
                out[bench] = image_dependence(load_rows(run.predictions, BENCHMARK_TASKS[bench]))
            except ECGVLMError:
                continue  # no rows of that task in the file: nothing to say
    return out


def _std_range(dep: dict) -> str:
    stds = [v["std"] for v in (dep.get("scores") or {}).values()]
    return f"{min(stds):.4f}-{max(stds):.4f}" if stds else "–"


DEPENDENCE_ROWS = [
    ("distinct answers / rows", lambda d: f"{d['distinct_answers']} / {d['rows']}"),
    ("most common answer", lambda d: "–" if d["majority_share"] is None else f"{d['majority_share']:.0%}"),
    (
        "answer changes (share of pairs)",
        lambda d: "–" if d["answer_change_rate"] is None else f"{d['answer_change_rate']:.2f}",
    ),
    ("probability std per class (min-max)", _std_range),
    ("looping answers", lambda d: str(d["loops"])),
    (
        "depends on the image",
        lambda d: {True: "**NO**", False: "yes", None: "not judged"}[d.get("independent")],
    ),
]


def _dep_cell(cell, dep: dict) -> str:
    try:
        return cell(dep)
    except (KeyError, TypeError, ValueError):  # a hand-edited or foreign metrics entry: say so, go on
        return "?"


def dependence_markdown(runs: list[Run], deps: list[dict[str, dict]]) -> tuple[str, list[str]]:
    """The image-dependence rows per benchmark (columns = runs) and the warnings, as Markdown."""
    from ecgvlm.evaluate.dependence import RULE, dependence_warnings

    benches = sorted({b for d in deps for b in d}, key=lambda b: _order(BENCH_ORDER, b))
    if not benches:
        return "", []
    lines = [
        "Image dependence: how the answers vary across the test pages (evaluate/dependence.py).",
        "",
        "| Task | Check | " + " | ".join(r.name for r in runs) + " |",
        "|---|---|" + "---:|" * len(runs),
    ]
    for bench in benches:
        for label, cell in DEPENDENCE_ROWS:
            cells = [_dep_cell(cell, d[bench]) if bench in d else "–" for d in deps]
            lines.append(f"| {bench} | {label} | " + " | ".join(cells) + " |")
    found = [
        w
        for r, d in zip(runs, deps)
        for b in benches
        if b in d
        for w in dependence_warnings(d[b], f"{r.name}, {b}")
    ]
    lines += ["", f"Rule: {RULE}."]
    lines += [line for w in found for line in ("", f"**WARNING: {w}**")]
    return "\n".join(lines) + "\n", found


# ------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------


def _plt():
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
    plt = _plt()
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
            if any(any(_num(v.get(metric)) is not None for v in p.values()) for p in per):
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
        {c for p in per for c, v in p.items() if _num(v.get(metric)) is not None},
        key=lambda c: order.index(c) if c in order else len(order),
    )[:max_classes]
    plt = _plt()
    width = 0.8 / len(runs)
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(classes) * max(1, len(runs) / 2) + 1.5), 3.6))
    colours = plt.get_cmap("tab10")
    for i, (r, p) in enumerate(zip(runs, per)):
        vals = [(_num((p.get(c) or {}).get(metric)) or 0.0) for c in classes]
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


def write_table(runs: list[Run], out: str | Path) -> dict:
    """Table I as table.md / table.json plus roc.png and per_class.png (when the data allow)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(runs)
    if not rows:
        raise ECGVLMError("the runs have no numeric metrics to tabulate", runs[0].path if runs else None)
    md = markdown_table(runs, rows)
    deps = [run_dependence(r) for r in runs]
    dep_md, warned = dependence_markdown(runs, deps)
    if dep_md:
        md += "\n" + dep_md
    atomic_write_text(out / "table.md", md)
    atomic_write_json(
        out / "table.json",
        {
            "columns": [r.name for r in runs],
            "runs": [str(r.path) for r in runs],
            "rows": rows,
            "image_dependence": {r.name: d for r, d in zip(runs, deps)},
            "warnings": warned,
        },
    )
    files = [out / "table.md", out / "table.json"]
    roc = plot_roc(runs, out)
    if roc:
        files.append(roc[0])
    bars = plot_per_class(runs, out)
    if bars:
        files.append(bars)
    return {"markdown": md, "files": [str(f) for f in files], "warnings": warned}


# ------------------------------------------------------------------------------------------
# Sweeps
# ------------------------------------------------------------------------------------------

COST_KEYS = ["trainable_params", "wall_s", "samples_per_s", "peak_mem_gb"]
COST_LOWER_IS_BETTER = {"trainable_params", "wall_s", "peak_mem_gb"}


def load_sweep(path: str | Path) -> list[Run]:
    path = Path(path)
    points = sorted(p for p in (path / "points").glob("*") if p.is_dir() and (p / "metrics.json").exists())
    if not points:
        raise ECGVLMError("no points/<name>/metrics.json in this sweep folder", path)
    runs = [load_run(p) for p in points]
    for r in runs:
        if r.point is None:
            raise ECGVLMError("point.json missing (the swept values and cost)", r.path)
    # order points by their swept values (numbers numerically), then by name
    return sorted(runs, key=lambda r: (json.dumps(_sortable(r.point.get("values") or {})), r.name))


def _sortable(values: dict) -> list:
    return [
        [k, f"{float(v):020.10f}" if isinstance(v, (int, float)) else str(v)]
        for k, v in sorted(values.items())
    ]


def sweep_table(runs: list[Run]) -> dict:
    """One row per point: swept values, metrics (``bench/mode/metric``), cost; the best per column marked."""
    keys = sorted({k for r in runs for k in (r.point.get("values") or {})})
    metric_rows = table_rows(runs)
    metric_cols = [f"{m['benchmark']}/{m['mode']}/{m['metric']}" for m in metric_rows]
    costs = [k for k in COST_KEYS if any(_num((r.point.get("cost") or {}).get(k)) is not None for r in runs)]
    best = {c: m["best"] or [] for c, m in zip(metric_cols, metric_rows)}
    for k in costs:
        vals = [_num((r.point.get("cost") or {}).get(k)) for r in runs]
        present = [v for v in vals if v is not None]
        target = min(present) if k in COST_LOWER_IS_BETTER else max(present)
        best[k] = [i for i, v in enumerate(vals) if v == target] if len(present) > 1 else []
    rows = []
    for i, r in enumerate(runs):
        rows.append(
            {
                "point": r.name,
                "values": {k: (r.point.get("values") or {}).get(k) for k in keys},
                "metrics": {c: m["values"][i] for c, m in zip(metric_cols, metric_rows)},
                "ci95": {c: m["ci95"][i] for c, m in zip(metric_cols, metric_rows) if m["ci95"][i]},
                "cost": {k: _num((r.point.get("cost") or {}).get(k)) for k in costs},
            }
        )
    return {
        "keys": keys,
        "metric_columns": metric_cols,
        "cost_columns": costs,
        "rows": rows,
        "best": best,
        "lower_is_better": [c for c in metric_cols if c.rsplit("/", 1)[1] in LOWER_IS_BETTER]
        + [k for k in costs if k in COST_LOWER_IS_BETTER],
    }


def sweep_markdown(t: dict) -> str:
    cols = t["keys"] + t["metric_columns"] + t["cost_columns"]
    lines = ["| point | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for i, row in enumerate(t["rows"]):
        cells = [str(row["values"][k]) for k in t["keys"]]
        for c in t["metric_columns"]:
            cells.append(_cell(row["metrics"][c], None, i in t["best"].get(c, [])))
        for k in t["cost_columns"]:
            v = row["cost"][k]
            text = "–" if v is None else (f"{v:,.0f}" if k == "trainable_params" else f"{v:.2f}")
            cells.append(f"**{text}**" if i in t["best"].get(k, []) and v is not None else text)
        lines.append(f"| {row['point']} | " + " | ".join(cells) + " |")
    return (
        "\n".join(lines)
        + "\n\nBold: best in column (lower is better for "
        + ", ".join(t["lower_is_better"])
        + ").\n"
    )


def plot_sweep(t: dict, out: Path, metric: str | None = None, cost: str | None = None) -> list[Path]:
    """Per swept key: the metric vs the key's value (mean over other keys), cost on a second axis."""
    cols = t["metric_columns"]
    # the ranking AUC is the number worth plotting; ECGBench's binary "AUC" only if it is all there is
    metric = metric or next((c for c in cols if c.endswith("/strict/auc")), cols[0] if cols else None)
    cost = cost or next(
        (c for c in ("wall_s", "trainable_params", "peak_mem_gb", "samples_per_s") if c in t["cost_columns"]),
        None,
    )
    if metric is None:
        return []
    plt = _plt()
    paths = []
    for key in t["keys"]:
        groups: dict = {}
        for row in t["rows"]:
            v = row["values"][key]
            groups.setdefault(json.dumps(v), []).append(row)
        xs = sorted(
            groups,
            key=lambda s: (
                not isinstance(json.loads(s), (int, float)),
                json.loads(s) if isinstance(json.loads(s), (int, float)) else str(json.loads(s)),
            ),
        )
        numeric = all(
            isinstance(json.loads(s), (int, float)) and not isinstance(json.loads(s), bool) for s in xs
        )
        xpos = [json.loads(s) for s in xs] if numeric else list(range(len(xs)))

        def mean(vals):
            vals = [v for v in vals if v is not None]
            return sum(vals) / len(vals) if vals else float("nan")

        ys = [mean([r["metrics"][metric] for r in groups[s]]) for s in xs]
        fig, ax = plt.subplots(figsize=(5.2, 3.4))
        ax.plot(xpos, ys, "o-", color="tab:blue", label=metric)
        for s, x0 in zip(xs, xpos):
            for r in groups[s]:
                y, ci = r["metrics"][metric], r.get("ci95", {}).get(metric)
                if y is None:
                    continue
                # the bootstrap interval keeps a difference inside the noise from looking like a trend
                err = [[y - ci[0]], [ci[1] - y]] if ci and ci[0] is not None else None
                ax.errorbar([x0], [y], yerr=err, fmt="o", color="tab:blue", alpha=0.35, ms=4, capsize=3)
        if metric.endswith("/auc"):
            ax.axhline(50.0, color="grey", lw=0.8, ls=":")  # chance
            lo, hi = ax.get_ylim()
            ax.set_ylim(min(lo, 45.0), max(hi, 55.0))
        ax.set_xlabel(key)
        ax.set_ylabel(metric, color="tab:blue")
        if numeric and min(xpos) > 0 and max(xpos) / min(xpos) >= 20:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(xpos, [str(json.loads(s)) for s in xs])
        elif len(xpos) <= 10:
            ax.set_xticks(xpos, [f"{v:g}" for v in xpos])
            ax.minorticks_off()
        if cost:
            ax2 = ax.twinx()
            ax2.spines["right"].set_visible(True)
            cs = [mean([r["cost"].get(cost) for r in groups[s]]) for s in xs]
            ax2.plot(xpos, cs, "s--", color="tab:orange", label=cost)
            ax2.set_ylabel(cost, color="tab:orange")
        ax.set_title(
            f"{metric} vs {key}\n(line: mean over the other keys; dots: points with 95% CI; dotted: chance)",
            fontsize=9,
        )
        fig.tight_layout()
        path = out / f"sweep_{key}.png"
        fig.savefig(path, dpi=110, metadata={"Software": None})
        plt.close(fig)
        paths.append(path)
    return paths


def write_sweep(path: str | Path, out: str | Path, metric: str | None = None) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = sweep_table(load_sweep(path))
    md = sweep_markdown(t)
    atomic_write_text(out / "sweep.md", md)
    atomic_write_json(out / "sweep.json", t)
    files = [out / "sweep.md", out / "sweep.json"] + plot_sweep(t, out, metric)
    return {"markdown": md, "files": [str(f) for f in files]}
