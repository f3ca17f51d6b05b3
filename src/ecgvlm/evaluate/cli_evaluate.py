"""Run a model over a test file and write RUN/predictions.jsonl (the input of `ecgvlm score`).

Each row's first question is answered by greedy decoding, in batches. For "superclass" rows the
run also stores `scores`: per superclass (NORM, MI, STTC, CD, HYP), the model's probability of
answering "yes" to "Does this ECG show <name>?" with the same image (--scores yesno, default), or
the probability that its answer starts with that code (--scores codes, one forward per row).

Resumable: predictions are appended batch by batch; rerunning the same command skips the ids
already written (a line cut by a kill is dropped), and the final file is the same as that of one
uninterrupted run. --limit K answers only the first K selected rows; rerun without it to finish.

examples:
  ecgvlm evaluate --model runs/tiny --data runs/ds/test.json --out runs/eval-base
  ecgvlm evaluate --model runs/tiny --adapter runs/lora --data runs/ds/test.json --out runs/eval-lora \\
      --tasks superclass,report --batch-size 8 --max-new-tokens 128
  ecgvlm score --predictions runs/eval-lora/predictions.jsonl --benchmark ptbxl-super --mode strict
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="local Mllama model folder (or a training output folder)"
    )
    parser.add_argument("--adapter", help="LoRA adapter or partial-tuning folder to apply to --model")
    parser.add_argument(
        "--data", required=True, help="test split (.json list or .jsonl); images relative to it"
    )
    parser.add_argument("--out", required=True, help="run folder: predictions.jsonl and run.json go here")
    parser.add_argument("--tasks", help="comma list of metadata.subtask values to keep (default: all)")
    parser.add_argument("--batch-size", type=int, default=8, help="rows generated together (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="answer length limit (default 128)")
    parser.add_argument("--limit", type=int, help="answer only the first K selected rows")
    parser.add_argument(
        "--scores",
        choices=["yesno", "codes", "none"],
        default="yesno",
        help="how superclass rows get per-class probabilities (default yesno)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true")


def main(args: argparse.Namespace) -> int:
    import json

    import torch

    from ecgvlm.errors import ECGVLMError
    from ecgvlm.evaluate.generate import PREDICTIONS, evaluate_rows, read_rows, select_rows
    from ecgvlm.io import atomic_write_json
    from ecgvlm.model.load import load_model_and_processor

    if args.batch_size < 1 or args.max_new_tokens < 1 or (args.limit is not None and args.limit < 0):
        raise ECGVLMError("need --batch-size >= 1, --max-new-tokens >= 1, --limit >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"

    data = Path(args.data)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    rows = select_rows(read_rows(data), tasks)
    if not rows:
        raise ECGVLMError(f"no rows for tasks {tasks}", data)

    out = Path(args.out)
    settings = {
        "kind": "llm",
        "model": str(Path(args.model).resolve()),
        "adapter": str(Path(args.adapter).resolve()) if args.adapter else None,
        "data": str(data.resolve()),
        "tasks": tasks,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "scores": args.scores,
    }
    run_json = out / "run.json"
    if run_json.exists() and (out / PREDICTIONS).exists():
        try:
            before = json.loads(run_json.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ECGVLMError("invalid JSON; delete the run folder to start over", run_json) from None
        changed = [k for k in settings if before.get(k) != settings[k]]
        if changed:
            raise ECGVLMError(
                f"this run was started with different {', '.join(changed)}; use another --out to start anew",
                run_json,
            )
    atomic_write_json(run_json, settings)

    model, processor = load_model_and_processor(args.model, adapter=args.adapter, device=device)
    res = evaluate_rows(
        model,
        processor,
        rows,
        data.parent,
        out,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        limit=args.limit,
        score_method=args.scores,
        progress=not args.no_progress,
    )
    print(
        f"wrote {res['written']} predictions to {out / PREDICTIONS} "
        f"({res['skipped_done']} already there, {res['rows']} rows selected)"
    )
    return 0
