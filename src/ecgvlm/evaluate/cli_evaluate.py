"""Run a model over a test file and write RUN/predictions.jsonl (the input of `ecgvlm score`).

The model is a local Mllama (--model), or any model served behind an OpenAI-compatible endpoint
(--endpoint URL --served-model NAME: vLLM, SGLang, `ecgvlm serve`, a cloud API; see
docs/endpoints.md). Each row's first question is answered by greedy decoding. For "superclass"
rows the run also stores `scores`: per superclass (NORM, MI, STTC, CD, HYP), the model's
probability of answering "yes" to "Does this ECG show <name>?" with the same image (--scores
yesno, the local default), or the probability of each code at the answer's first token,
renormalised over the five (--scores codes; the endpoint default, read from the reply's
logprobs / top_logprobs). An endpoint that returns no logprobs leaves `scores` null and says why
in `scores_missing`; `ecgvlm score` then names those rows in its notes.

Resumable: predictions are appended batch by batch; rerunning the same command skips the ids
already written (a line cut by a kill is dropped), and the final file is the same as that of one
uninterrupted run. --limit K answers only the first K selected rows; rerun without it to finish.
On many GPUs: --shard i/n (or, inside a Slurm job array, the task's shard from
SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT) answers every n-th batch into
RUN/predictions.shard-i-of-n.jsonl; `ecgvlm evaluate --merge --out RUN` then writes the
predictions.jsonl one process would have written (docs/scale.md).
Over an endpoint, replies are cached (RUN/http-cache), failed requests are retried with backoff
(honouring Retry-After) and, if they fail for good, written with `error` and asked again on the
next run; RUN/endpoint_summary.json holds requests, retries, cache hits, tokens, time and cost.

examples:
  ecgvlm evaluate --model runs/tiny --data runs/ds/test.json --out runs/eval-base
  ecgvlm evaluate --model runs/tiny --adapter runs/lora --data runs/ds/test.json --out runs/eval-lora \\
      --tasks superclass,report --batch-size 8 --max-new-tokens 128
  ecgvlm evaluate --endpoint http://localhost:8000/v1 --served-model Qwen/Qwen2.5-VL-7B-Instruct \\
      --data runs/ds/test.json --out runs/eval-qwen --concurrency 8
  OPENAI_API_KEY=sk-... ecgvlm evaluate --endpoint https://api.openai.com/v1 --served-model gpt-4o \\
      --api-key-env OPENAI_API_KEY --price-in 2.5 --price-out 10 --data runs/ds/test.json --out runs/eval-4o
  ecgvlm evaluate --model runs/tiny --data runs/ds/test.json --out runs/eval --shard 0/4   (... 3/4)
  ecgvlm evaluate --merge --out runs/eval
  ecgvlm score --predictions runs/eval-lora/predictions.jsonl --benchmark ptbxl-super --mode strict
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ecgvlm.shards import shard_from_env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="local Mllama model folder (or a training output folder)")
    parser.add_argument(
        "--endpoint",
        help="instead of --model: an OpenAI-compatible base URL ending in /v1 (as the openai client takes)",
    )
    parser.add_argument("--served-model", help="with --endpoint: the model name the server expects")
    parser.add_argument(
        "--api-key-env",
        help="with --endpoint: the environment variable holding the API key (default: send none)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="with --endpoint: requests in flight (default 4)"
    )
    parser.add_argument(
        "--top-logprobs",
        type=int,
        default=20,
        help="with --endpoint: first-token alternatives asked for (default 20)",
    )
    parser.add_argument("--cache", help="with --endpoint: reply cache folder (default RUN/http-cache)")
    parser.add_argument("--no-cache", action="store_true", help="with --endpoint: do not cache replies")
    parser.add_argument(
        "--retries", type=int, default=6, help="with --endpoint: attempts per request (default 6)"
    )
    parser.add_argument(
        "--request-timeout", type=float, default=300.0, help="with --endpoint: seconds per request"
    )
    parser.add_argument(
        "--price-in", type=float, help="with --endpoint: USD per million prompt tokens (for the cost)"
    )
    parser.add_argument("--price-out", type=float, help="with --endpoint: USD per million completion tokens")
    parser.add_argument("--adapter", help="LoRA adapter or partial-tuning folder to apply to --model")
    parser.add_argument("--data", help="test split (.json list or .jsonl); images relative to it")
    parser.add_argument("--out", required=True, help="run folder: predictions.jsonl and run.json go here")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start --out over when it holds an earlier evaluation (never removes files ecgvlm did not write)",
    )
    parser.add_argument("--tasks", help="comma list of metadata.subtask values to keep (default: all)")
    parser.add_argument(
        "--batch-size", type=int, default=8, help="local: rows generated together (default 8)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=128, help="answer length limit (default 128)")
    parser.add_argument("--limit", type=int, help="answer only the first K selected rows")
    parser.add_argument(
        "--scores",
        choices=["yesno", "codes", "none"],
        default=None,
        help="how superclass rows get per-class probabilities (default: yesno locally, codes over --endpoint)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument(
        "--shard",
        help="i/n: answer only every n-th batch from the i-th (default inside a Slurm job array: the "
        "task's shard from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT); then --merge",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="join the shard files in --out into predictions.jsonl (the data file comes from run.json)",
    )
    parser.add_argument("--no-progress", action="store_true")


def main(args: argparse.Namespace) -> int:
    from ecgvlm.errors import ECGVLMError

    if args.merge:
        return _merge(Path(args.out))
    if not args.data:
        raise ECGVLMError("--data is required (the test split to answer)")
    if bool(args.model) == bool(args.endpoint):
        raise ECGVLMError("give either --model (a local model) or --endpoint (a served one)")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    if args.endpoint:
        return _main_endpoint(args, Path(args.data), tasks)
    return _main_local(args, Path(args.data), tasks)


def _merge(out: Path) -> int:
    import json

    from ecgvlm.errors import ECGVLMError
    from ecgvlm.evaluate.generate import PREDICTIONS, merge_predictions, read_rows, select_rows

    try:
        settings = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ECGVLMError("no readable run.json: not an `ecgvlm evaluate` run folder", out) from None
    rows = select_rows(read_rows(settings["data"]), settings.get("tasks"))
    n = merge_predictions(out, rows)
    print(f"merged {n} predictions into {out / PREDICTIONS}")
    return 0


def _main_local(args: argparse.Namespace, data: Path, tasks: list[str] | None) -> int:
    from ecgvlm.evaluate.generate import PREDICTIONS, shard_file
    from ecgvlm.evaluate.runner import evaluate_local
    from ecgvlm.shards import resolve_shard

    shard = resolve_shard(args.shard)
    if shard is not None and args.shard is None:
        print(f"shard {shard[0]}/{shard[1]} from the Slurm job array (SLURM_ARRAY_TASK_ID)")
    res = evaluate_local(
        args.model,
        data,
        args.out,
        adapter=args.adapter,
        tasks=tasks,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        limit=args.limit,
        scores=args.scores or "yesno",
        device=args.device,
        threads=args.threads,
        shard=shard,
        overwrite=getattr(args, "overwrite", False),
        progress=not args.no_progress,
    )
    target = Path(args.out) / (shard_file(shard) if shard else PREDICTIONS)
    if shard:
        print(f"when every shard is done: ecgvlm evaluate --merge --out {args.out}")
    print(
        f"wrote {res['written']} predictions to {target} "
        f"({res['skipped_done']} already there, {res['rows']} rows selected)"
    )
    return 0


def _main_endpoint(args: argparse.Namespace, data: Path, tasks: list[str] | None) -> int:
    from ecgvlm.errors import ECGVLMError
    from ecgvlm.evaluate.endpoint import SUMMARY, evaluate_endpoint
    from ecgvlm.evaluate.generate import PREDICTIONS
    from ecgvlm.evaluate.http_client import ChatClient
    from ecgvlm.evaluate.runner import open_run, start_run
    from ecgvlm.io import atomic_write_json

    if args.shard or shard_from_env():  # refused before the run folder is claimed
        raise ECGVLMError("--shard is for local models; an endpoint takes --concurrency instead")
    overwrite = getattr(args, "overwrite", False)
    rows = open_run(data, args.out, tasks, args.batch_size, args.max_new_tokens, args.limit, overwrite)
    scores, api_key = _endpoint_options(args)
    out = Path(args.out)
    start_run(
        out,
        {
            "kind": "endpoint",
            "endpoint": args.endpoint,
            "served_model": args.served_model,
            "data": str(data.resolve()),
            "tasks": tasks,
            "max_new_tokens": args.max_new_tokens,
            "scores": scores,
            "top_logprobs": args.top_logprobs if scores == "codes" else None,
        },
    )
    client = ChatClient(
        args.endpoint,
        api_key=api_key,
        concurrency=args.concurrency,
        max_attempts=args.retries,
        timeout_s=args.request_timeout,
        cache_dir=None if args.no_cache else Path(args.cache) if args.cache else out / "http-cache",
        price_in_per_mtok=args.price_in,
        price_out_per_mtok=args.price_out,
    )
    res = evaluate_endpoint(
        client,
        rows,
        data.parent,
        out,
        args.served_model,
        max_tokens=args.max_new_tokens,
        limit=args.limit,
        score_method=scores,
        top_logprobs=args.top_logprobs,
        progress=not args.no_progress,
    )
    summary = {**client.summary(), **res, "endpoint": client.url, "served_model": args.served_model}
    atomic_write_json(out / SUMMARY, summary)
    print(
        f"wrote {res['written']} predictions to {out / PREDICTIONS} "
        f"({res['skipped_done']} already there, {res['rows']} rows selected)"
    )
    print("endpoint: " + ", ".join(f"{k}={summary[k]}" for k in ENDPOINT_FIGURES if k in summary))
    if res["failed"]:
        print(f"note: {res['failed']} requests failed for good (rows with 'error'); rerun to ask them again")
    if res["without_scores"]:
        print(
            f"note: {res['without_scores']} superclass rows have no scores (see 'scores_missing' in the rows)"
        )
    return 0


def _endpoint_options(args: argparse.Namespace) -> tuple[str, str | None]:
    """The endpoint path's score method and API key, once its options are checked."""
    import os

    from ecgvlm.errors import ECGVLMError

    if not args.served_model:
        raise ECGVLMError("--endpoint needs --served-model (the name the server lists under /v1/models)")
    if args.adapter:
        raise ECGVLMError("--adapter applies to a local --model; serve the adapted model instead")
    scores = args.scores or "codes"
    if scores == "yesno":
        raise ECGVLMError(
            "--scores yesno needs a local --model; over --endpoint use codes (logprobs) or none"
        )
    if args.concurrency < 1 or not 1 <= args.top_logprobs <= 20 or args.retries < 1:
        raise ECGVLMError("need --concurrency >= 1, --top-logprobs from 1 to 20, --retries >= 1")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ECGVLMError(
                f"--api-key-env {args.api_key_env}: that environment variable is not set or empty"
            )
    return scores, api_key


ENDPOINT_FIGURES = (
    "requests",
    "cache_hits",
    "retries",
    "failures",
    "prompt_tokens",
    "completion_tokens",
    "seconds",
    "cost_usd",
)
