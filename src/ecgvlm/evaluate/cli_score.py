"""Score a predictions.jsonl (from `ecgvlm evaluate`) on one benchmark; merge into RUN/metrics.json.

Benchmarks and the rows they take (by the row's "task"):
  ptbxl-super (superclass)  ptbxl-71 (scp)  cpsc (cpsc)  code15 (code15)
  mcq (mcq)  measure (measure)  report (report)
A file whose rows carry no "task" is taken whole. --task overrides the filter.

Modes:
  ecgbench  ECGBench's published rules (substring codes, binary "AUC", random MCQ fallback, seed 42)
  strict    gold from the rows' gold block, synonym/negation-aware reading, ranking AUC from "scores",
            F1 at thresholds tuned on --val-predictions, bootstrap 95% intervals
For "report" the judge replaces the mode: --judge findings (offline) or --judge llm (OpenAI-compatible
endpoint from ECGVLM_JUDGE_BASE_URL / ECGVLM_JUDGE_MODEL / OPENAI_API_KEY or the --judge-* flags).

The result is merged into --out (default: metrics.json beside the predictions) under
benchmarks[BENCHMARK][MODE] (MODE = judge name for reports), so one run folder collects every score
that `ecgvlm table` reads.

Every score also records "image_dependence" (evaluate/dependence.py): how many distinct answers the
rows got, how often the answer changes between pages, the per-class spread of the probabilities and
how many answers loop; a WARNING line is printed when one answer is given on >= 95% of the rows and
(with scores) no class's probability moves by a standard deviation of 0.02 or more: the model's
outputs do not depend on the image.

Examples:
  ecgvlm score --predictions runs/ft/predictions.jsonl --benchmark ptbxl-super --mode ecgbench
  ecgvlm score --predictions runs/ft/predictions.jsonl --benchmark ptbxl-super --mode strict \\
      --val-predictions runs/ft/val_predictions.jsonl
  ecgvlm score --predictions runs/ft/predictions.jsonl --benchmark report --judge findings
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BENCHMARK_TASKS = {
    "ptbxl-super": "superclass",
    "ptbxl-71": "scp",
    "cpsc": "cpsc",
    "code15": "code15",
    "mcq": "mcq",
    "measure": "measure",
    "report": "report",
}
METRICS_SCHEMA = "ecgvlm.metrics/1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, help="predictions.jsonl from `ecgvlm evaluate`")
    parser.add_argument("--benchmark", required=True, choices=list(BENCHMARK_TASKS))
    parser.add_argument("--mode", choices=["ecgbench", "strict"], default="strict")
    parser.add_argument(
        "--out",
        help="metrics.json to write or merge into, or a run folder to hold it (default: beside the predictions)",
    )
    parser.add_argument("--val-predictions", help="validation predictions.jsonl (strict: threshold tuning)")
    parser.add_argument("--task", help="take rows with this task instead of the benchmark's default")
    parser.add_argument("--judge", choices=["findings", "llm"], default="findings", help="report judge")
    parser.add_argument("--judge-base-url", help="OpenAI-compatible base URL (else ECGVLM_JUDGE_BASE_URL)")
    parser.add_argument("--judge-model", help="judge model name (else ECGVLM_JUDGE_MODEL)")
    parser.add_argument("--judge-concurrency", type=int, default=4)
    parser.add_argument(
        "--judge-cache", help="judge cache folder (else ECGVLM_JUDGE_CACHE or ~/.cache/ecgvlm/judge)"
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (strict)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (strict)")


def load_rows(path: str | Path, task: str) -> list[dict]:
    """Rows of a predictions file for one task; rows without a task are all taken."""
    from ecgvlm.errors import ECGVLMError
    from ecgvlm.io import read_jsonl

    rows = list(read_jsonl(path))
    if not rows:
        raise ECGVLMError("no rows", path)
    # a row without an answer is not an empty answer: scoring it as one reports F1 0.0 as a result
    missing = [i for i, r in enumerate(rows, 1) if "prediction" not in r]
    if missing:
        raise ECGVLMError(
            f"{len(missing)} of {len(rows)} rows have no 'prediction' (first: row {missing[0]}); "
            "score the predictions.jsonl that `ecgvlm evaluate` writes",
            path,
        )
    if all("error" in r for r in rows):
        raise ECGVLMError(
            f"all {len(rows)} rows failed in `ecgvlm evaluate` (first: {rows[0]['error']}); nothing to score: "
            "rerun evaluate to ask them again",
            path,
        )
    for i, r in enumerate(rows, 1):
        if not isinstance(r["prediction"], str):
            raise ECGVLMError(f"row {i}: 'prediction' must be a string", path)
    if all("task" not in r for r in rows):
        return rows
    picked = [r for r in rows if r.get("task") == task]
    if not picked:
        tasks = sorted({str(r.get("task")) for r in rows})
        raise ECGVLMError(f"no rows with task {task!r} (tasks present: {', '.join(tasks)})", path)
    return picked


def cap_answers(rows: list[dict]) -> tuple[list[dict], dict]:
    """Rows with each prediction cut to the part that is read, and the cap as metrics state it."""
    from ecgvlm.evaluate.labels import ANSWER_CAP_CHARS, capped

    n = sum(len(r.get("prediction") or "") > ANSWER_CAP_CHARS for r in rows)
    if n:
        rows = [dict(r, prediction=capped(r.get("prediction"))) for r in rows]
    return rows, {"chars": ANSWER_CAP_CHARS, "answers_capped": n}


def score_file(args: argparse.Namespace) -> tuple[str, dict]:
    """(mode key, metrics) for the arguments' benchmark, with the image-dependence check of its rows."""
    from ecgvlm.evaluate.dependence import image_dependence

    task = args.task or BENCHMARK_TASKS[args.benchmark]
    rows, cap = cap_answers(load_rows(args.predictions, task))
    mode, metrics = _score_rows(args, rows, task)
    metrics = dict(metrics, image_dependence=image_dependence(rows), answer_cap=cap)
    if cap["answers_capped"]:
        note = (
            f"{cap['answers_capped']} answers are longer than {cap['chars']} characters; "
            "only their first part was read"
        )
        metrics["notes"] = [*metrics.get("notes", []), note]
    return mode, metrics


def _score_rows(args: argparse.Namespace, rows: list[dict], task: str) -> tuple[str, dict]:
    from ecgvlm.evaluate.labels import BENCHMARK_LABELS

    if args.benchmark in BENCHMARK_LABELS:
        if args.mode == "ecgbench":
            from ecgvlm.evaluate.ecgbench import score_ecgbench

            return "ecgbench", score_ecgbench(rows, BENCHMARK_LABELS[args.benchmark])
        from ecgvlm.evaluate.strict import score_strict

        val = load_rows(args.val_predictions, task) if args.val_predictions else None
        return "strict", score_strict(
            rows, args.benchmark, val, args.bootstrap, args.seed, path=args.predictions
        )
    if args.benchmark == "mcq":
        from ecgvlm.evaluate.mcq import score_mcq

        return args.mode, score_mcq(rows, args.mode)
    if args.benchmark == "measure":
        from ecgvlm.evaluate.measure import score_measure

        return args.mode, score_measure(rows)
    from ecgvlm.evaluate.judges import make_judge, score_reports

    kwargs = {}
    if args.judge == "llm":
        kwargs = {
            "base_url": args.judge_base_url,
            "model": args.judge_model,
            "concurrency": args.judge_concurrency,
            "cache_dir": args.judge_cache,
        }
    judge = make_judge(args.judge, **kwargs)
    return args.judge, score_reports(rows, judge)


def merge_metrics(out: Path, benchmark: str, mode: str, metrics: dict, source: str) -> dict:
    """Read ``out`` (if any), set benchmarks[benchmark][mode], write atomically; returns the whole file."""
    from ecgvlm.errors import ECGVLMError
    from ecgvlm.io import atomic_write_json

    doc = {"schema": METRICS_SCHEMA, "benchmarks": {}}
    if out.exists():
        try:
            doc = json.loads(out.read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ECGVLMError(f"existing metrics file is unreadable ({e}); move it away first", out) from None
        if not isinstance(doc, dict) or doc.get("schema") != METRICS_SCHEMA:
            raise ECGVLMError(f"not an ecgvlm metrics file (schema {METRICS_SCHEMA!r} expected)", out)
    metrics = dict(metrics, predictions=source)
    doc.setdefault("benchmarks", {}).setdefault(benchmark, {})[mode] = metrics
    atomic_write_json(out, doc)
    return doc


def _headline(benchmark: str, mode: str, m: dict) -> str:
    keys = ["auc", "f1", "hamming", "accuracy", "mae", "score", "diagnosis", "waveform", "rhythm"]
    parts = [f"{k}={m[k]}" for k in keys if m.get(k) is not None]
    ci = m.get("ci95") or {}
    parts += [f"{k}95=[{v[0]}, {v[1]}]" for k, v in ci.items() if v]
    return f"{benchmark} [{mode}] n={m.get('n')}: " + " ".join(parts)


def _dependence_line(dep: dict) -> str:
    parts = [
        f"{dep['distinct_answers']} distinct answers in {dep['rows']} rows",
        f"majority {dep['majority_share']:.0%}" if dep["majority_share"] is not None else "",
        f"answer change rate {dep['answer_change_rate']:.2f}"
        if dep["answer_change_rate"] is not None
        else "",
        f"max per-class score std {dep['max_score_std']:.4f}" if dep["max_score_std"] is not None else "",
        f"{dep['loops']} looping",
    ]
    verdict = {True: "does NOT depend on the image", False: "depends on the image", None: "not judged"}
    return "image dependence: " + ", ".join(p for p in parts if p) + f" -> {verdict[dep['independent']]}"


def main(args: argparse.Namespace) -> int:
    from ecgvlm.evaluate.dependence import dependence_warnings

    mode, metrics = score_file(args)
    out = Path(args.out) if args.out else Path(args.predictions).with_name("metrics.json")
    if out.is_dir():
        out = out / "metrics.json"  # a run folder, as `ecgvlm evaluate --out` names it
    merge_metrics(out, args.benchmark, mode, metrics, str(args.predictions))
    print(_headline(args.benchmark, mode, metrics))
    for note in metrics.get("notes", []):
        print(f"note: {note}")
    print(_dependence_line(metrics["image_dependence"]))
    for warning in dependence_warnings(
        metrics["image_dependence"], f"{args.benchmark} [{mode}] of {args.predictions}"
    ):
        print(f"WARNING: {warning}")
    if metrics.get("cost"):
        print("judge: " + ", ".join(f"{k}={v}" for k, v in metrics["cost"].items()))
    print(f"wrote {out}")
    return 0
