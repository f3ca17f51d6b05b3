"""Table I from scored runs (and sweep tables): Markdown + JSON, ROC curves and per-class bars as PNG.

Each RUN folder holds metrics.json (written/merged by `ecgvlm score`) and, for the ROC curves,
predictions.jsonl with per-label "scores". Rows are task / mode / metric, columns are runs, the
best value per row is bold (lower is better for Hamming loss and MAE).
Under the table: whether each run's outputs depend on the image (distinct answers, how often the
answer changes between pages, per-class spread of the probabilities, looping answers; see
`ecgvlm score`), with a WARNING line for each run whose answers do not.

Examples:
  ecgvlm table runs/base runs/finetuned --names base,finetuned --out report/
      -> report/table.md, table.json, roc.png, per_class.png
  ecgvlm table --sweep sweeps/lora_r --out report/sweep
      -> sweep.md, sweep.json, sweep_<key>.png (metric vs value, cost on a second axis)

Sweep layout: SWEEP/points/<name>/{metrics.json, point.json}, point.json = {"values": {key: value},
"cost": {"trainable_params", "wall_s", "samples_per_s", "peak_mem_gb"}}.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", help="run folders (each with metrics.json)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--names", help="comma-separated column names (default: folder names)")
    parser.add_argument("--sweep", help="a sweep folder (points/<name>/...) instead of runs")
    parser.add_argument("--metric", help="sweep plots: metric column to plot, e.g. ptbxl-super/strict/auc")


def main(args: argparse.Namespace) -> int:
    from ecgvlm.errors import ECGVLMError
    from ecgvlm.evaluate.runs import load_run
    from ecgvlm.evaluate.sweep_table import write_sweep
    from ecgvlm.evaluate.table import write_table
    from ecgvlm.outputs import claim_output_dir

    claim_output_dir(args.out, "table")
    if args.sweep:
        result = write_sweep(args.sweep, args.out, args.metric)
    else:
        if not args.runs:
            raise ECGVLMError("give one or more run folders, or --sweep SWEEP")
        names = args.names.split(",") if args.names else [None] * len(args.runs)
        if len(names) != len(args.runs):
            raise ECGVLMError(f"--names has {len(names)} names for {len(args.runs)} runs")
        result = write_table([load_run(p, n) for p, n in zip(args.runs, names)], args.out)
    print(result["markdown"])
    for f in result["files"]:
        print(f"wrote {f}")
    return 0
