"""Table I from scored runs (rows task / mode / metric, columns runs) and the image-dependence check.

Rows of Table I are (benchmark, mode, metric) in a fixed order; columns are runs (folders as in
evaluate/runs.py); the best value of each row is marked (lower is better for Hamming loss and MAE).
Under it, the image-dependence check each metrics entry records (``image_dependence``, see
evaluate/dependence.py), one row per figure, with a warning line per run whose outputs do not
depend on the image or whose answers loop. ``write_table`` also draws the ROC curves and per-class
bars (evaluate/table_plots.py); sweep tables are in evaluate/sweep_table.py.
"""

from __future__ import annotations

from pathlib import Path

from ecgvlm.errors import ECGVLMError
from ecgvlm.evaluate.runs import (
    BENCH_ORDER,
    LOWER_IS_BETTER,
    METRIC_NAMES,
    METRIC_ORDER,
    MODE_ORDER,
    Run,
    number,
)
from ecgvlm.evaluate.table_plots import plot_per_class, plot_roc
from ecgvlm.io import atomic_write_json, atomic_write_text


def _order(seq: list[str], key: str) -> tuple[int, str]:
    return (seq.index(key) if key in seq else len(seq), key)


def table_rows(runs: list[Run]) -> list[dict]:
    """One row per (benchmark, mode, metric) any run has, values per run (None where absent)."""
    keys = set()
    for r in runs:
        for bench, modes in r.benchmarks.items():
            for mode, m in modes.items():
                keys |= {
                    (bench, mode, k)
                    for k in METRIC_ORDER
                    if isinstance(m, dict) and number(m.get(k)) is not None
                }
    rows = []
    for bench, mode, metric in sorted(
        keys, key=lambda k: (_order(BENCH_ORDER, k[0]), _order(MODE_ORDER, k[1]), _order(METRIC_ORDER, k[2]))
    ):
        values, cis = [], []
        for r in runs:
            m = r.benchmarks.get(bench, {}).get(mode, {})
            values.append(number(m.get(metric)))
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


def format_cell(value: float | None, ci: list | None, best: bool) -> str:
    """A Table I cell: the value (with its 95% interval when known), bold when best."""
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
            format_cell(v, ci, row["best"] is not None and i in row["best"])
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
