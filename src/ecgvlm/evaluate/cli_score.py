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

from ecgvlm.evaluate.score import BENCHMARK_TASKS, MODES, JudgeSettings, score_and_write


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, help="predictions.jsonl from `ecgvlm evaluate`")
    parser.add_argument("--benchmark", required=True, choices=list(BENCHMARK_TASKS))
    parser.add_argument("--mode", choices=list(MODES), default="strict")
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


def main(args: argparse.Namespace) -> int:
    judge = JudgeSettings(
        args.judge, args.judge_base_url, args.judge_model, args.judge_concurrency, args.judge_cache
    )
    score_and_write(
        args.predictions,
        args.benchmark,
        args.mode,
        args.out,
        val_predictions=args.val_predictions,
        task=args.task,
        judge=judge,
        bootstrap=args.bootstrap,
        seed=args.seed,
    )
    return 0
