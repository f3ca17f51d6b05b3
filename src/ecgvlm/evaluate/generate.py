"""Test-file reading and resumable ``predictions.jsonl`` writing, shared by ``evaluate`` and ``cnn eval``.

Resumability: predictions are appended one batch at a time (written, flushed and fsynced), so a
kill loses at most the batch in flight. On start, a trailing partial line (a kill mid-write) is
cut off and the ids already present are skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from ecgvlm.errors import ECGVLMError
from ecgvlm.instruct.reader import Row
from ecgvlm.instruct.reader import read_rows as read_split

PREDICTIONS = "predictions.jsonl"


def read_rows(path: str | Path) -> list[Row]:
    """Rows of an instruction dataset split (``ecgvlm.instruct.reader``), each fit for evaluation.

    Besides the reader's checks, every row needs a single image path and ``metadata.subtask``
    (the task picks the scorer); a bad row raises an error naming the file and the row.
    """
    rows = read_split(path)
    for row in rows:
        problem = _unfit_for_evaluation(row)
        if problem:
            raise ECGVLMError(f"row {row.index} (id {row.id!r}): {problem}", path)
    return rows


def _unfit_for_evaluation(row: Row) -> str | None:
    if not isinstance(row.image, str) or not row.image:
        return "'image' must be one relative path"
    if not isinstance(row.task, str):
        return "'metadata.subtask' missing"
    if not isinstance(row.metadata.get("gold", {}), dict):
        return "'metadata.gold' must be an object"
    return None


def prediction_record(row: Row, prediction: str, scores: dict[str, float] | None) -> dict:
    """One line of predictions.jsonl (see docs/schemas.md)."""
    return {
        "id": row.id,
        "task": row.task,
        "prompt": row.question,
        "prediction": prediction,
        "reference": row.answer,
        "gold": row.gold,
        "scores": scores,
    }


def load_done_ids(path: str | Path) -> set[str]:
    """Ids already in a predictions file; cuts off a trailing partial line left by a kill.

    A complete line that is not valid JSON is not something a kill can cause, so it is an error.
    """
    path = Path(path)
    if not path.exists():
        return set()
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with path.open("r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
        data = data[:end]
    done: set[str] = set()
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ECGVLMError(
                f"line {lineno}: invalid JSON ({e.msg}); remove the file to start over", path
            ) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
            raise ECGVLMError(f"line {lineno}: not a prediction object with an 'id'", path)
        done.add(obj["id"])
    return done


def append_rows(path: str | Path, rows: Iterable[dict]) -> int:
    """Append rows as JSON lines in one write, then flush and fsync; returns the number written."""
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if not lines:
        return 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())
    return lines.count("\n")


# ---------------------------------------------------------------- superclass scores
SCORE_METHODS = ("yesno", "codes", "none")


def superclass_question(code: str) -> str:
    """The yes/no question asked per superclass (the instruct stage's yes/no wording)."""
    from ecgvlm.instruct.tasks import SUPERCLASS_NAMES

    return f"Does this ECG show {SUPERCLASS_NAMES[code]}?"


def superclass_scores(
    model, processor, images: list, prompts: list[str], method: str = "yesno"
) -> list[dict]:
    """Per image, a probability for each of NORM, MI, STTC, CD, HYP (the input of a ranking AUC).

    ``yesno`` (default): for each superclass, ask "Does this ECG show <name>?" with the same image
    and take P("yes") / (P("yes") + P("no")), each the probability of the whole answer followed by
    end-of-turn (so multi-token words and prefixes like "yesterday" are handled). The five values
    are independent, as multi-label scores should be; 5 extra prompts per row.
    ``codes``: one forward on the row's own superclass prompt; at the answer's first token, the
    probability of each code's first token ("NORM", or "ST" where the tokenizer splits "STTC"),
    renormalised over the five. It is what a served model's ``top_logprobs`` give
    (``evaluate.endpoint``), so a local and an endpoint run agree. Cheap, but the five compete for
    one slot (answers list codes in a fixed order, so later codes are underrated): ranking within
    a class across images still works, comparison across classes does not.
    """
    from ecgvlm.model.infer import option_probs
    from ecgvlm.model.scoring import EOT
    from ecgvlm.signals.vocab import SUPERCLASSES

    if method == "none" or not images:
        return [None] * len(images)
    if method == "codes":
        probs = option_probs(model, processor, images, prompts, list(SUPERCLASSES), mode="first")
        return [{c: round(float(p[j]), 6) for j, c in enumerate(SUPERCLASSES)} for p in probs]
    if method != "yesno":
        raise ECGVLMError(f"unknown score method {method!r} (use one of {', '.join(SCORE_METHODS)})")
    questions = [superclass_question(c) for c in SUPERCLASSES]
    flat_images = [im for im in images for _ in questions]
    flat_prompts = questions * len(images)
    probs = option_probs(
        model, processor, flat_images, flat_prompts, ["yes" + EOT, "no" + EOT], mode="sequence"
    )
    k = len(SUPERCLASSES)
    return [
        {c: round(float(probs[i * k + j, 0]), 6) for j, c in enumerate(SUPERCLASSES)}
        for i in range(len(images))
    ]


# ---------------------------------------------------------------- the evaluation loop
def select_rows(rows: list[Row], tasks: list[str] | None) -> list[Row]:
    return [r for r in rows if not tasks or r.task in tasks]


def evaluate_rows(
    model,
    processor,
    rows: list[Row],
    image_root: str | Path,
    out_dir: str | Path,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    limit: int | None = None,
    score_method: str = "yesno",
    progress: bool = True,
    shard: tuple[int, int] | None = None,
) -> dict:
    """Generate answers for ``rows`` (in order) into ``out_dir/predictions.jsonl``, resumably.

    Batches are cut from the full row list at fixed positions and a batch is always generated
    whole (rows already done or past ``limit`` are computed but not written), so a resumed or
    limited run pads and batches every row exactly as an uninterrupted run does and writes the
    same bytes. With ``shard=(i, n)`` only every n-th batch from the i-th is generated, into
    ``predictions.shard-i-of-n.jsonl``; ``merge_predictions`` joins the shards into the file one
    process would write. Returns counts.
    """
    from tqdm import tqdm

    from ecgvlm.io import load_image
    from ecgvlm.model.infer import generate

    out_path = Path(out_dir) / (shard_file(shard) if shard else PREDICTIONS)
    done = load_done_ids(out_path)
    stop = len(rows) if limit is None else min(limit, len(rows))
    starts = [s for k, s in enumerate(range(0, stop, batch_size)) if not shard or k % shard[1] == shard[0]]
    shard_rows = [i for s in starts for i in range(s, min(s + batch_size, stop))]
    wanted = [i for i in shard_rows if rows[i].id not in done]
    bar = tqdm(total=len(wanted), desc="evaluate", unit="row", disable=not progress)
    written = 0
    for start in starts:
        batch = rows[start : start + batch_size]
        keep = [j for j, r in enumerate(batch) if start + j < stop and r.id not in done]
        if not keep:
            continue
        images = [load_image(image_root, r.image, image_root) for r in batch]
        texts = generate(
            model,
            processor,
            images,
            [r.prompt for r in batch],
            max_new_tokens=max_new_tokens,
            batch_size=len(batch),
        )
        sup = [j for j in keep if batch[j].task == "superclass"]
        scores = dict(
            zip(
                sup,
                superclass_scores(
                    model,
                    processor,
                    [images[j] for j in sup],
                    [batch[j].prompt for j in sup],
                    score_method,
                ),
            )
        )
        written += append_rows(out_path, [prediction_record(batch[j], texts[j], scores.get(j)) for j in keep])
        bar.update(len(keep))
    bar.close()
    return {"written": written, "skipped_done": len(shard_rows) - len(wanted), "rows": len(shard_rows)}


def shard_file(shard: tuple[int, int]) -> str:
    return f"predictions.shard-{shard[0]}-of-{shard[1]}.jsonl"


def merge_predictions(out_dir: str | Path, rows: list[Row]) -> int:
    """Join ``predictions.shard-*-of-N.jsonl`` into ``predictions.jsonl``, in the order of ``rows``,
    line for line as the shards wrote them; returns the rows written. Every row must be answered
    once: a missing shard or row stops it, naming what to rerun."""
    import re

    from ecgvlm.io import atomic_open

    out_dir = Path(out_dir)
    found = sorted(out_dir.glob("predictions.shard-*-of-*.jsonl"))
    parsed = [re.fullmatch(r"predictions\.shard-(\d+)-of-(\d+)\.jsonl", p.name) for p in found]
    counts = {int(m.group(2)) for m in parsed if m}
    if not counts:
        raise ECGVLMError("no predictions.shard-I-of-N.jsonl files to merge", out_dir)
    if len(counts) > 1:
        raise ECGVLMError(
            f"shard files of different shard counts ({sorted(counts)}); keep one run's", out_dir
        )
    n = counts.pop()
    lines: dict[str, bytes] = {}
    for i in range(n):
        path = out_dir / shard_file((i, n))
        if not path.is_file():
            raise ECGVLMError(f"shard {i}/{n} has no predictions yet; run it (--shard {i}/{n})", path)
        load_done_ids(path)  # validates, and cuts a line left half-written by a kill
        for raw in path.read_bytes().splitlines(keepends=True):
            if raw.strip():
                rid = json.loads(raw)["id"]
                if rid in lines:
                    raise ECGVLMError(f"row id {rid!r} answered by two shards", path)
                lines[rid] = raw
    missing = [r.id for r in rows if r.id not in lines]
    if missing:
        raise ECGVLMError(
            f"{len(missing)} of {len(rows)} rows have no prediction (first: {missing[0]}); "
            "rerun the shard that has it, then merge again",
            out_dir,
        )
    with atomic_open(out_dir / PREDICTIONS, "wb") as f:
        for r in rows:
            f.write(lines[r.id])
    return len(rows)
