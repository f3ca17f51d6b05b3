"""Run a grid of training + evaluation points (the paper's ablations) and tabulate them.

Each point trains the recipe with its values, answers the same test file, is scored (ECGBench and
strict modes), and records its cost: trainable parameters, training wall time, samples/s and peak
memory (process max RSS on CPU, CUDA max allocated on GPU). The table and one plot per swept key
(metric vs value, cost on a second axis) are written into SWEEP at the end.

examples:
  # LoRA rank (4 points); ':' ties keys that vary together, here alpha = 2r
  ecgvlm sweep --config configs/tiny_cpu.yaml --grid lora.r=16,32,64,128:lora.alpha=32,64,128,256 \\
      --out sweeps/rank data.train=data/ds/train.json train.max_steps=60
  # tuning presets: LoRA everywhere / LoRA on the language model / partial (projector + cross-attn)
  ecgvlm sweep --config configs/tiny_cpu.yaml --grid tuning=paper,language,partial --out sweeps/tuning
  # data sources: all, then leave each source of the train file out (or list them: all,-ptbxl,-mimic)
  ecgvlm sweep --config configs/paper_lora_11b.yaml --grid data.sources=loo --out sweeps/sources \\
      --test data/ecginstruct/test.json --benchmarks ptbxl-super,mcq
  # several --grid options make a Cartesian product (here 3 x 2 = 6 points)
  ecgvlm sweep --config configs/tiny_cpu.yaml --grid tuning=paper,language,partial --grid lora.r=16,64 ...

Layout: SWEEP/points/<name>/{model/, predictions.jsonl, metrics.json, point.json}; SWEEP/sweep.md,
sweep.json, sweep_<key>.png; SWEEP/sweep.log (what each run did). point.json is written last:
rerunning the same command skips finished points, and a point killed during training resumes
from its latest checkpoint (evaluation resumes too). Changing the recipe, overrides, grid or test
settings of an existing SWEEP is refused: use a new --out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ecgvlm.errors import ECGVLMError

DEFAULT_BENCHMARKS = ("ptbxl-super", "ptbxl-71", "mcq", "measure")
PLOT_METRICS = ("ptbxl-super/strict/auc", "ptbxl-super/strict/f1", "ptbxl-super/ecgbench/f1")
SPEC = "sweep_spec.json"
LOG = "sweep.log"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="recipe YAML, e.g. configs/tiny_cpu.yaml")
    parser.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="KEY=V1,V2,...",
        help="a swept config key (repeat for a product; K1=..:K2=.. zips keys; data.sources=loo)",
    )
    parser.add_argument("--out", required=True, help="sweep folder (created; reused to resume)")
    parser.add_argument(
        "--test", help="test file every point is evaluated on (default: test.json beside data.train)"
    )
    parser.add_argument("--val", help="validation file: strict mode tunes F1 thresholds on its predictions")
    parser.add_argument(
        "--benchmarks",
        help=f"comma list (default: those of {','.join(DEFAULT_BENCHMARKS)} with rows in the test file)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=64, help="answer length limit (default 64)")
    parser.add_argument("--batch-size", type=int, default=8, help="evaluation batch size (default 8)")
    parser.add_argument(
        "--limit", type=int, help="evaluate only the first K test rows of the benchmarks' tasks"
    )
    parser.add_argument(
        "--scores",
        choices=["yesno", "codes", "none"],
        default="yesno",
        help="superclass probabilities for the ranking AUC (see `ecgvlm evaluate`)",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="strict mode bootstrap resamples")
    parser.add_argument("--plot-metric", help="metric column of the plots, e.g. ptbxl-super/strict/auc")
    parser.add_argument(
        "--launcher",
        help='command that starts each training, e.g. "accelerate launch --num_processes 4" (default: python)',
    )
    parser.add_argument("--device", default="auto", help="evaluation device (default: cuda if present)")
    parser.add_argument(
        "--dry-run", action="store_true", help="check everything, list the points, run nothing"
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="fixed overrides for every point")


# ---------------------------------------------------------------- planning
def plan(args: argparse.Namespace) -> dict:
    """Check the whole sweep before anything runs; returns the spec (JSON-able) and the points."""
    from ecgvlm.evaluate.generate import read_rows
    from ecgvlm.evaluate.score import BENCHMARK_TASKS
    from ecgvlm.train.config import load_config
    from ecgvlm.train.sweep_grid import check_sources, expand, expand_loo, parse_grid

    config = Path(args.config)
    base = load_config(config, args.overrides)
    for o in args.overrides:
        if o.split("=", 1)[0].strip() == "output_dir":
            raise ECGVLMError("output_dir is set by the sweep (SWEEP/points/<name>/model); drop it")
    axes = parse_grid(args.grid)
    loo = any(a.keys == ["data.sources"] and ("loo",) in a.values for a in axes)
    if loo and any("data.train" in a.keys for a in axes):
        raise ECGVLMError("data.sources=loo needs one data.train; do not sweep data.train with it")
    axes = [expand_loo(a, base.data.train) if a.keys == ["data.sources"] else a for a in axes]
    points = expand(axes)
    for p in points:
        cfg = load_config(config, list(args.overrides) + p.overrides)
        if not cfg.data.train:
            raise ECGVLMError("data.train is not set (give data.train=PATH/train.json)", config)
        if "data.sources" in p.values:
            check_sources(str(p.values["data.sources"]), cfg.data.train)

    test = Path(args.test) if args.test else Path(base.data.train).parent / "test.json"
    if not test.is_file():
        raise ECGVLMError("test file not found (give --test PATH)", test)
    present = {r.task for r in read_rows(test)}
    if args.benchmarks:
        benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
        for b in benchmarks:
            if b not in BENCHMARK_TASKS:
                raise ECGVLMError(f"--benchmarks: unknown {b!r}; known: {', '.join(BENCHMARK_TASKS)}")
            if BENCHMARK_TASKS[b] not in present:
                raise ECGVLMError(f"--benchmarks {b}: no {BENCHMARK_TASKS[b]!r} rows in the test file", test)
    else:
        benchmarks = [b for b in DEFAULT_BENCHMARKS if BENCHMARK_TASKS[b] in present]
        if not benchmarks:
            raise ECGVLMError(f"no rows for any of {', '.join(DEFAULT_BENCHMARKS)}; pass --benchmarks", test)
    tasks = sorted({BENCHMARK_TASKS[b] for b in benchmarks})
    if args.val and not {r.task for r in read_rows(args.val)} & set(tasks):
        raise ECGVLMError(f"no rows of the tasks {', '.join(tasks)} in the validation file", args.val)
    if args.max_new_tokens < 1 or args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise ECGVLMError("need --max-new-tokens >= 1, --batch-size >= 1, --limit >= 1")

    spec = {
        "config": str(config.resolve()),
        "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest(),
        "overrides": list(args.overrides),
        "grid": list(args.grid),
        "points": [p.name for p in points],
        "test": str(test.resolve()),
        "val": str(Path(args.val).resolve()) if args.val else None,
        "benchmarks": benchmarks,
        "tasks": tasks,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "limit": args.limit,
        "scores": args.scores,
        "bootstrap": args.bootstrap,
    }
    return {"spec": spec, "points": points, "base": base}


def lock_spec(out: Path, spec: dict) -> None:
    """The first run writes SWEEP/sweep_spec.json; a rerun must match it (or resuming would mix settings)."""
    from ecgvlm.io import atomic_write_json
    from ecgvlm.outputs import claim_output_dir

    claim_output_dir(out, "sweep", legacy=[SPEC])
    path = out / SPEC
    if path.is_file():
        try:
            before = json.loads(path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError):
            raise ECGVLMError("unreadable; move it away to start this sweep over", path) from None
        changed = [k for k in spec if before.get(k) != spec[k]]
        if changed:
            raise ECGVLMError(
                f"this sweep was started with different {', '.join(changed)}; use another --out", path
            )
        return
    atomic_write_json(path, spec)


def log(out: Path, text: str) -> None:
    """One line to the console and to SWEEP/sweep.log (append-only history of every run)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"sweep: {text}", flush=True)
    with (out / LOG).open("a", encoding="utf-8") as f:
        f.write(f"{stamp} {text}\n")


def shared_base(out: Path, cfg) -> str | None:
    """The random tiny preset is built once per seed under SWEEP/bases/ and shared by all points."""
    if cfg.model.path != "tiny":
        return None
    from ecgvlm.train.components import base_model_dir

    return str(base_model_dir(cfg, out / "bases" / f"tiny-seed{cfg.model.tiny_seed}"))


# ---------------------------------------------------------------- one point
def train_stage(pdir: Path, config: str, overrides: list[str], launcher: str | None = None) -> dict:
    """Train in a child process (its own peak memory); returns the cost record it wrote."""
    import shlex

    from ecgvlm.io import atomic_write_json

    cost_file = pdir / "train_cost.json"
    if not cost_file.is_file():
        spec_file = pdir / "train_spec.json"
        # under a launcher the worker's parent is the launcher, so no parent-death check
        parent = None if launcher else os.getpid()
        atomic_write_json(
            spec_file, {"config": config, "overrides": overrides, "cost": str(cost_file), "parent": parent}
        )
        start = shlex.split(launcher) if launcher else [sys.executable]
        rc = subprocess.run([*start, "-m", "ecgvlm.train.sweep_point", str(spec_file)]).returncode
        if rc != 0 or not cost_file.is_file():
            raise ECGVLMError(
                f"training failed (exit status {rc}; its output is above); rerun to resume", pdir
            )
    return json.loads(cost_file.read_text())


def eval_stage(model_dir: Path, data: str, out: Path, spec: dict, device: str, threads: int | None) -> None:
    from ecgvlm.evaluate.runner import evaluate_local

    evaluate_local(
        model_dir,
        data,
        out,
        tasks=list(spec["tasks"]),
        batch_size=spec["batch_size"],
        max_new_tokens=spec["max_new_tokens"],
        limit=spec["limit"],
        scores=spec["scores"],
        device=device,
        threads=threads,
    )


def modes_of(benchmark: str) -> list[str]:
    from ecgvlm.evaluate.labels import BENCHMARK_LABELS

    if benchmark in BENCHMARK_LABELS or benchmark == "mcq":
        return ["ecgbench", "strict"]
    return ["findings"] if benchmark == "report" else ["strict"]


def score_stage(pdir: Path, spec: dict, val_predictions: Path | None) -> list[str]:
    """Score every benchmark in its modes into a fresh pdir/metrics.json; returns headline lines."""
    from ecgvlm.evaluate.score import BENCHMARK_TASKS, score, write_metrics
    from ecgvlm.io import read_jsonl

    metrics = pdir / "metrics.json"
    metrics.unlink(missing_ok=True)  # rebuilt whole from predictions.jsonl
    val_tasks = {r.get("task") for r in read_jsonl(val_predictions)} if val_predictions else set()
    lines = []
    for bench in spec["benchmarks"]:
        val = str(val_predictions) if BENCHMARK_TASKS[bench] in val_tasks else None
        for mode in modes_of(bench):
            mode = "strict" if mode == "findings" else mode  # a report's mode is its judge (findings)
            scored = score(
                str(pdir / "predictions.jsonl"), bench, mode, val_predictions=val, bootstrap=spec["bootstrap"]
            )
            write_metrics(metrics, scored)
            lines.append(scored.headline())
            lines += [f"WARNING: {w}" for w in scored.warnings()]
    return lines


def run_point(
    out: Path, point, spec: dict, device: str, index: int, total: int, launcher: str | None = None
) -> None:
    from ecgvlm.io import atomic_write_json
    from ecgvlm.outputs import claim_output_dir
    from ecgvlm.train.config import load_config

    pdir = out / "points" / point.name
    tag = f"[{index}/{total}] {point.name}"
    if (pdir / "point.json").is_file():
        log(out, f"{tag}: skip (finished earlier)")
        return
    # the point folder is evaluate's run folder (predictions.jsonl, run.json) with the sweep's files
    # beside them: marked for evaluate up front, so the evaluation finds its own folder
    claim_output_dir(pdir, "evaluate")
    model_dir = pdir / "model"
    overrides = list(spec["overrides"]) + point.overrides
    cfg = load_config(spec["config"], overrides)
    base = shared_base(out, cfg)
    overrides += ([f"model.path={base}"] if base else []) + [f"output_dir={model_dir}"]
    resumed = (pdir / "train_spec.json").is_file()
    log(out, f"{tag}: {'resume' if resumed else 'start'} ({' '.join(point.overrides)})")

    cost = train_stage(pdir, spec["config"], overrides, launcher)
    log(out, f"{tag}: trained in {cost['wall_s']:.1f} s, {cost['trainable_params']:,} trainable params")
    t0 = time.perf_counter()
    val_pred = None
    if spec["val"]:
        eval_stage(model_dir, spec["val"], pdir / "val", spec, device, cfg.train.threads)
        val_pred = pdir / "val" / "predictions.jsonl"
    eval_stage(model_dir, spec["test"], pdir, spec, device, cfg.train.threads)
    eval_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for line in score_stage(pdir, spec, val_pred):
        log(out, f"{tag}: {line}")
    score_s = time.perf_counter() - t0

    atomic_write_json(
        pdir / "point.json",
        {
            "values": point.values,
            "cost": {k: cost.get(k) for k in ("trainable_params", "wall_s", "samples_per_s", "peak_mem_gb")},
            "train": cost,
            "eval_s": round(eval_s, 2),
            "score_s": round(score_s, 2),
            "resumed": resumed,
            "overrides": overrides,
            "finished": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    log(out, f"{tag}: done (eval {eval_s:.1f} s)")


# ---------------------------------------------------------------- the sweep
def pick_metric(columns: list[str], wanted: str | None) -> str | None:
    if wanted:
        if wanted not in columns:
            raise ECGVLMError(f"--plot-metric {wanted!r} is not a column; columns: {', '.join(columns)}")
        return wanted
    return next((c for c in PLOT_METRICS if c in columns), columns[0] if columns else None)


def write_results(out: Path, plot_metric: str | None = None) -> dict:
    from ecgvlm.evaluate.sweep_table import load_sweep, sweep_table, write_sweep

    metric = pick_metric(sweep_table(load_sweep(out))["metric_columns"], plot_metric)
    return write_sweep(out, out, metric)


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    planned = plan(args)
    spec, points = planned["spec"], planned["points"]
    if args.dry_run:
        print(f"{len(points)} points; test {spec['test']}; benchmarks {', '.join(spec['benchmarks'])}")
        for p in points:
            print(f"  {p.name}: {' '.join(p.overrides)}")
        return 0
    lock_spec(out, spec)
    threads = planned["base"].train.threads
    if threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    device = args.device
    t0 = time.perf_counter()
    log(out, f"run: {len(points)} points in {out}")
    for i, p in enumerate(points, 1):
        run_point(out, p, spec, device if device != "auto" else _auto_device(), i, len(points), args.launcher)
    result = write_results(out, args.plot_metric)
    log(out, f"all {len(points)} points finished; this run took {time.perf_counter() - t0:.1f} s")
    print(result["markdown"])
    for f in result["files"]:
        print(f"wrote {f}")
    return 0


def _auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
