"""Answer a test file with a local model into a run folder: what `ecgvlm evaluate --model` does,
as a function the demo and the sweep call. The steps every run folder takes (check the limits,
pick the rows, claim the folder, record its settings in run.json) are shared with the endpoint path.
"""

from __future__ import annotations

import json
from pathlib import Path

from ecgvlm.errors import ECGVLMError
from ecgvlm.shards import Shard


def open_run(
    data: Path,
    out: str | Path,
    tasks: list[str] | None,
    batch_size: int,
    max_new_tokens: int,
    limit: int | None,
    overwrite: bool = False,
    sharded: bool = False,
) -> list[dict]:
    """The rows of ``data`` to answer (those of ``tasks``, default all), with ``out`` claimed for an
    evaluation (``overwrite`` empties an earlier one); refuses limits that would answer nothing."""
    from ecgvlm.evaluate.generate import read_rows, select_rows
    from ecgvlm.outputs import claim_output_dir

    # --limit 0 would answer nothing and still exit 0
    if batch_size < 1 or max_new_tokens < 1 or (limit is not None and limit < 1):
        raise ECGVLMError("need --batch-size >= 1, --max-new-tokens >= 1, --limit >= 1")
    rows = select_rows(read_rows(data), tasks)
    if not rows:
        raise ECGVLMError(f"no rows for tasks {tasks}", data)
    if overwrite and sharded:
        raise ECGVLMError("--overwrite with a shard would empty the folder the other shards write into")
    # runs made before output markers existed are recognised by their run.json
    claim_output_dir(out, "evaluate", overwrite=overwrite, legacy=["run.json"])
    return rows


def start_run(out: Path, settings: dict) -> None:
    """Write run.json; a run folder started with other settings is refused (resuming must not mix)."""
    from ecgvlm.evaluate.generate import PREDICTIONS
    from ecgvlm.io import atomic_write_json

    run_json = out / "run.json"
    started = (out / PREDICTIONS).exists() or any(out.glob("predictions.shard-*.jsonl"))
    if run_json.exists() and started:
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


def evaluate_local(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    adapter: str | Path | None = None,
    tasks: list[str] | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    limit: int | None = None,
    scores: str = "yesno",
    device: str = "auto",
    threads: int | None = None,
    shard: Shard | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Answer the rows of ``data`` (images relative to it) with a local Mllama (plus ``adapter``)
    into ``out/predictions.jsonl`` (``shard=(i, n)``: its shard file), resuming an unfinished run;
    superclass rows get per-class ``scores`` by ``scores`` (yesno, codes or none). Returns the
    counts of ``generate.evaluate_rows``."""
    import torch

    from ecgvlm.evaluate.generate import evaluate_rows
    from ecgvlm.model.load import load_model_and_processor

    data, out = Path(data), Path(out)
    rows = open_run(data, out, tasks, batch_size, max_new_tokens, limit, overwrite, shard is not None)
    if threads:
        torch.set_num_threads(threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    start_run(
        out,
        {
            "kind": "llm",
            "model": str(Path(model).resolve()),
            "adapter": str(Path(adapter).resolve()) if adapter else None,
            "data": str(data.resolve()),
            "tasks": tasks,
            "batch_size": batch_size,
            "max_new_tokens": max_new_tokens,
            "scores": scores,
        },
    )
    model_obj, processor = load_model_and_processor(model, adapter=adapter, device=device)
    return evaluate_rows(
        model_obj,
        processor,
        rows,
        data.parent,
        out,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        limit=limit,
        score_method=scores,
        progress=progress,
        shard=shard,
    )
