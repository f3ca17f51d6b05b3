"""Evaluate a model served behind an OpenAI-compatible endpoint (vLLM, SGLang, ``ecgvlm serve``, a cloud API).

Each row's first question goes out as one chat request: the image as a base64 data URL where the
row's ``<image>`` stands (else first), the text around it verbatim, temperature 0. The answer and
the row's id, prompt, reference and gold make the same predictions.jsonl line as the local path.

Superclass scores (``codes``): the request asks for ``logprobs`` with ``top_logprobs`` alternatives,
and at the answer's first token each code gets the log-probability of the alternative that is the
longest prefix of it ("NORM" itself, or "ST" for "STTC" where the tokenizer splits it); the five
are renormalised. This is local ``--scores codes`` (the first-token probability of each code,
renormalised over the five), computed from what the server reports. A confident model can push a
code out of the alternatives a server returns (OpenAI caps them at 20): such a code's probability is
at most that of the least likely alternative returned, so it is scored at that bound and the row
says so in ``scores_bounded``; the codes' ranking holds, the bounded values are upper bounds. A
row whose reply has no logprobs, or none of the codes among its alternatives, gets
``scores: null`` and ``scores_missing`` with the reason; strict scoring then names those rows in
its notes instead of inventing values.

A request that fails for good (a 4xx, or every retry used up) writes the row with an empty
prediction and ``error``; a rerun asks those rows again. Rows are written in chunks, in row order,
with an fsync each; with the client's cache a rerun after a kill re-asks nothing already answered,
and the final file is the file of one uninterrupted run.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

from ecgvlm.evaluate.generate import PREDICTIONS, append_rows, load_done_ids, prediction_record
from ecgvlm.evaluate.http_client import ChatClient, EndpointError
from ecgvlm.instruct.reader import Row
from ecgvlm.io import atomic_write_text, resolve_inside

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
SUMMARY = "endpoint_summary.json"


def image_data_url(path: Path) -> str:
    from ecgvlm.errors import ECGVLMError

    mime = IMAGE_TYPES.get(path.suffix.lower())
    if mime is None:
        raise ECGVLMError(f"image type {path.suffix!r} cannot be sent (png, jpeg, webp)", path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ECGVLMError(f"cannot read image: {e.strerror}", path) from None
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def row_messages(row: Row, image_url: str) -> list[dict]:
    """The row's first question as one user message: text parts around the image, kept verbatim."""
    # the reader puts "<image>\n" first where a row's question has no image token
    before, _, after = row.prompt.partition("<image>")
    parts = [{"type": "text", "text": before}] if before else []
    parts.append({"type": "image_url", "image_url": {"url": image_url}})
    if after:
        parts.append({"type": "text", "text": after})
    return [{"role": "user", "content": parts}]


def code_scores(
    choice: dict, codes: tuple[str, ...]
) -> tuple[dict[str, float] | None, str | None, list[str]]:
    """(scores, None, bounded codes) from a reply choice's first-token alternatives, or (None, why not, [])."""
    content = ((choice.get("logprobs") or {}).get("content")) if isinstance(choice, dict) else None
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        return None, "the endpoint returned no logprobs", []
    first = content[0]
    options: dict[str, float] = {}
    for alt in [first, *(first.get("top_logprobs") or [])]:
        if not isinstance(alt, dict):
            continue
        token, logprob = alt.get("token"), alt.get("logprob")
        if isinstance(token, str) and isinstance(logprob, (int, float)) and math.isfinite(logprob):
            options.setdefault(token, float(logprob))
    picked: dict[str, float] = {}
    for code in codes:
        # the exact piece first ("NORM"), else one after whitespace (" NORM"); the longest prefix wins
        for text_of in (lambda t: t, str.lstrip):
            fits = [
                (len(text_of(t)), lp)
                for t, lp in options.items()
                if text_of(t) and code.startswith(text_of(t))
            ]
            if fits:
                picked[code] = max(fits)[1]
                break
    if not picked:
        return (
            None,
            f"none of the codes among the {len(options)} first-token alternatives the endpoint returned",
            [],
        )
    bounded = [c for c in codes if c not in picked]
    floor = min(options.values())
    for code in bounded:
        picked[code] = floor
    top = max(picked.values())
    weights = {c: math.exp(lp - top) for c, lp in picked.items()}
    total = sum(weights.values())
    return {c: round(weights[c] / total, 6) for c in codes}, None, bounded


def ask_row(
    client: ChatClient,
    row: Row,
    image_root: Path,
    model: str,
    max_tokens: int,
    score_method: str,
    top_logprobs: int,
) -> dict:
    """One prediction record for ``row`` (see the module docstring for failures)."""
    from ecgvlm.signals.vocab import SUPERCLASSES

    want_scores = score_method == "codes" and row.task == "superclass"
    body: dict = {
        "model": model,
        "messages": row_messages(row, image_data_url(resolve_inside(image_root, row.image))),
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    if want_scores:
        body["logprobs"] = True
        body["top_logprobs"] = top_logprobs
    try:
        reply = client.post(body, check=_answer_problem)
    except EndpointError as e:
        return _failed(row, e.reason, want_scores)
    choice = reply["choices"][0]
    text = choice["message"]["content"]
    if not want_scores:
        return prediction_record(row, text.strip(), None)
    scores, why, bounded = code_scores(choice, SUPERCLASSES)
    record = prediction_record(row, text.strip(), scores)
    if why:
        record["scores_missing"] = why
    if bounded:
        record["scores_bounded"] = bounded
    return record


def _answer_problem(reply: dict) -> str | None:
    """What keeps a reply from giving an answer text, or None."""
    try:
        text = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as e:
        return f"no choices[0].message.content: {type(e).__name__} {e}"
    return None if isinstance(text, str) else "message content is not text"


def _failed(row: Row, reason: str, want_scores: bool) -> dict:
    record = prediction_record(row, "", None)
    record["error"] = reason
    if want_scores:
        record["scores_missing"] = f"request failed: {reason}"
    return record


def _drop_failed(path: Path) -> None:
    """Remove rows whose request failed (rewriting the file our run wrote) so they are asked again."""
    if not path.exists():
        return
    lines = path.read_text("utf-8").splitlines(keepends=True)
    kept = [x for x in lines if x.strip() and "error" not in json.loads(x)]
    if len(kept) != len(lines):
        atomic_write_text(path, "".join(kept))


def _sort_like(path: Path, rows: list[Row]) -> None:
    """Put the file in row order (rows asked again after a failure were appended at the end)."""
    lines = path.read_text("utf-8").splitlines(keepends=True)
    order = {r.id: i for i, r in enumerate(rows)}
    ranked = sorted(lines, key=lambda x: order.get(json.loads(x)["id"], len(order)))
    if ranked != lines:
        atomic_write_text(path, "".join(ranked))


def evaluate_endpoint(
    client: ChatClient,
    rows: list[Row],
    image_root: str | Path,
    out_dir: str | Path,
    model: str,
    max_tokens: int = 128,
    limit: int | None = None,
    score_method: str = "codes",
    top_logprobs: int = 20,
    chunk: int | None = None,
    progress: bool = True,
) -> dict:
    """Ask the endpoint every row (in order) into ``out_dir/predictions.jsonl``, resumably; returns counts."""
    from tqdm import tqdm

    out_path = Path(out_dir) / PREDICTIONS
    load_done_ids(out_path)  # cuts a line a kill left half-written
    _drop_failed(out_path)
    done = load_done_ids(out_path)
    stop = len(rows) if limit is None else min(limit, len(rows))
    wanted = [rows[i] for i in range(stop) if rows[i].id not in done]
    size = chunk or max(4, 4 * client.concurrency)
    bar = tqdm(total=len(wanted), desc="evaluate", unit="row", disable=not progress)
    written = failed = unscored = 0
    root = Path(image_root)
    for s in range(0, len(wanted), size):
        part = wanted[s : s + size]
        records = client.map(
            lambda r: ask_row(client, r, root, model, max_tokens, score_method, top_logprobs), part
        )
        written += append_rows(out_path, records)
        failed += sum("error" in r for r in records)
        unscored += sum("scores_missing" in r for r in records)
        bar.update(len(part))
    bar.close()
    if out_path.exists():
        _sort_like(out_path, rows)
    return {
        "written": written,
        "skipped_done": stop - len(wanted),
        "rows": stop,
        "failed": failed,
        "without_scores": unscored,
    }
