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

PREDICTIONS = "predictions.jsonl"


def read_rows(path: str | Path) -> list[dict]:
    """Rows of an instruction dataset split: a JSON list (``.json``) or JSON lines (``.jsonl``).

    Every row is checked for the fields evaluation needs (id, image, conversations, metadata);
    a bad row raises an error naming the file and the row number.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ECGVLMError(f"cannot read: {e.strerror}", path) from None
    except UnicodeDecodeError:
        raise ECGVLMError("not UTF-8 text", path) from None
    rows: list = []
    if path.suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ECGVLMError(f"line {lineno}: invalid JSON ({e.msg})", path) from None
    else:
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ECGVLMError(f"invalid JSON at line {e.lineno} ({e.msg})", path) from None
        if not isinstance(rows, list):
            raise ECGVLMError("expected a JSON list of rows", path)
    seen: set[str] = set()
    for i, row in enumerate(rows):
        _check_row(row, i, path)
        if row["id"] in seen:
            raise ECGVLMError(f"row {i}: duplicate id {row['id']!r}", path)
        seen.add(row["id"])
    return rows


def _check_row(row: object, i: int, path: Path) -> None:
    if not isinstance(row, dict):
        raise ECGVLMError(f"row {i}: expected a JSON object", path)
    if not isinstance(row.get("id"), str) or not row["id"]:
        raise ECGVLMError(f"row {i}: missing or non-string 'id'", path)
    if not isinstance(row.get("image"), str) or not row["image"]:
        raise ECGVLMError(f"row {i} ({row['id']}): missing or non-string 'image'", path)
    conv = row.get("conversations")
    if (
        not isinstance(conv, list)
        or len(conv) < 2
        or not all(isinstance(t, dict) and isinstance(t.get("value"), str) for t in conv)
    ):
        raise ECGVLMError(
            f"row {i} ({row['id']}): 'conversations' must be a list of >= 2 turns with 'value'", path
        )
    meta = row.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("subtask"), str):
        raise ECGVLMError(f"row {i} ({row['id']}): 'metadata.subtask' missing", path)
    if "gold" in meta and not isinstance(meta["gold"], dict):
        raise ECGVLMError(f"row {i} ({row['id']}): 'metadata.gold' must be an object", path)


def row_task(row: dict) -> str:
    return row["metadata"]["subtask"]


def row_prompt(row: dict) -> str:
    """The first human turn, without the ``<image>`` placeholder."""
    return row["conversations"][0]["value"].replace("<image>", "").strip()


def row_reference(row: dict) -> str:
    return row["conversations"][1]["value"]


def row_gold(row: dict) -> dict:
    return row["metadata"].get("gold") or {}


def prediction_record(row: dict, prediction: str, scores: dict[str, float] | None) -> dict:
    """One line of predictions.jsonl (see SCHEMAS.md)."""
    return {
        "id": row["id"],
        "task": row_task(row),
        "prompt": row_prompt(row),
        "prediction": prediction,
        "reference": row_reference(row),
        "gold": row_gold(row),
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
