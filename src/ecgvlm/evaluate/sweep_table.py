"""Sweep tables: one row per point (swept values, metrics, cost) as Markdown + JSON, and one plot
per swept key (metric vs value, cost on a second axis).

Sweep folder (written by ``ecgvlm sweep``, one run folder per point, see evaluate/runs.py)::

    SWEEP/points/<name>/metrics.json       as a run's
    SWEEP/points/<name>/predictions.jsonl  optional
    SWEEP/points/<name>/point.json         {"values": {"lora_r": 8, "lr": 0.0001, ...},
                                            "cost": {"trainable_params": 1234, "wall_s": 61.2,
                                                     "samples_per_s": 3.4, "peak_mem_gb": 1.2}}
"""

from __future__ import annotations

import json
from pathlib import Path

from ecgvlm.errors import ECGVLMError
from ecgvlm.evaluate.runs import LOWER_IS_BETTER, Run, load_run, number
from ecgvlm.evaluate.table import format_cell, table_rows
from ecgvlm.evaluate.table_plots import pyplot
from ecgvlm.io import atomic_write_json, atomic_write_text

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
    costs = [
        k for k in COST_KEYS if any(number((r.point.get("cost") or {}).get(k)) is not None for r in runs)
    ]
    best = {c: m["best"] or [] for c, m in zip(metric_cols, metric_rows)}
    for k in costs:
        vals = [number((r.point.get("cost") or {}).get(k)) for r in runs]
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
                "cost": {k: number((r.point.get("cost") or {}).get(k)) for k in costs},
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
            cells.append(format_cell(row["metrics"][c], None, i in t["best"].get(c, [])))
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
    plt = pyplot()
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
