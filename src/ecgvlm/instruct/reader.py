"""Stream and validate ECGInstruct / ECGBench rows, from our builds or the published files.

Accepted shapes (all seen in the published data):
- a JSON list ``[{...}, {...}]`` (ECGInstruct, ECGBench) or JSON lines, one object per line;
- turns under ``conversations`` (ECGInstruct) or ``conversation`` (ECGBench);
- roles ``human``/``gpt`` or ``user``/``assistant`` (and ``system``, kept aside), the text under
  ``value`` (or ``content``, as chat-style turns have it);
- answers as a string, or a list of strings as in ECG-QA (joined with ", " in ``Row.answer``).

Rows are parsed one at a time (a JSON list is decoded incrementally with ``raw_decode`` over
1 MiB chunks), and images are only checked for existence, never opened, so a 1M-row file streams
in constant memory.

Each bad row gives a one-line ``ECGVLMError`` naming the file, the row index and id, and the
problem; with ``on_error="skip"`` it is counted instead (``ReadSummary.skipped[reason]``).

This is the one reader of the row format: ``dataset check`` validates with it, training and
evaluation read their splits with ``read_rows``, and all of them look at a row through ``Row``'s
accessors (``prompt``, ``question``, ``answer``, ``task``, ``gold``, ``messages``, ``metadata``).

The ``<image>`` token: ECGInstruct's training rows carry ``<image>\\n`` at the start of the first
human turn; ECGBench's test rows (``conversation`` key) do not. ``image_token="auto"`` requires it
only for ``conversations`` rows; ``Row.turns`` always has it, added where the file left it out.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import resolve_inside

IMAGE_TOKEN = "<image>"
ROLES = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt", "system": "system"}
CHAT_ROLES = {"human": "user", "gpt": "assistant"}
CHUNK = 1 << 20


@dataclass
class Row:
    index: int  # position in the file, from 0
    id: str
    image: str | list[str] | None  # as written in the file (relative to the dataset root)
    turns: list[
        dict[str, str]
    ]  # [{"from": "human"|"gpt", "value": str}], <image>\n leading the first human turn
    metadata: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    answer_list: list[str] | None = None  # the first answer as published, when it was a list
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The first human turn as the model reads it: ``<image>`` marks where the page goes."""
        return self.turns[0]["value"]

    @property
    def question(self) -> str:
        """The first human turn as text alone: no image token, no surrounding blanks."""
        return self.prompt.replace(IMAGE_TOKEN, "").strip()

    @property
    def answer(self) -> str:
        """The first answer (a published list of answers joined with ", ")."""
        return self.turns[1]["value"]

    @property
    def task(self) -> str | None:
        return self.metadata.get("subtask")

    @property
    def gold(self) -> dict:
        """``metadata.gold``, the structured truth the scorers read ({} when the row has none)."""
        return self.metadata.get("gold") or {}

    @property
    def messages(self) -> list[dict[str, str]]:
        """The chat the model is trained on: roles system/user/assistant (``ecgvlm.model.chat``)."""
        head = [{"role": "system", "content": self.system}] if self.system is not None else []
        return head + [{"role": CHAT_ROLES[t["from"]], "content": t["value"]} for t in self.turns]


@dataclass
class ReadSummary:
    rows: int = 0  # good rows
    skipped: Counter = field(default_factory=Counter)  # reason -> rows
    first_error: dict[str, str] = field(default_factory=dict)  # reason -> its first full message
    tasks: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)
    shapes: Counter = field(default_factory=Counter)  # "conversations/human-gpt", ...

    def lines(self) -> list[str]:
        out = [f"rows ok: {self.rows}", f"rows skipped: {sum(self.skipped.values())}"]
        out += [
            f"  skipped {n} x {reason} (first: {self.first_error[reason]})"
            for reason, n in sorted(self.skipped.items())
        ]
        if self.shapes:
            out.append("shapes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.shapes.items())))
        if self.tasks:
            out.append("tasks: " + ", ".join(f"{k} {v}" for k, v in sorted(self.tasks.items())))
        if self.sources:
            out.append("sources: " + ", ".join(f"{k} {v}" for k, v in sorted(self.sources.items())))
        return out


class RowError(Exception):
    """One row's problem: ``reason`` is the short key used for counting skips."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        self.reason = reason
        super().__init__(detail or reason)


# ------------------------------------------------------------------ raw JSON streaming
def iter_json(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(index, object) for every row of a JSON list or a JSON-lines file, streamed.

    Broken JSON raises an ECGVLMError naming the row (or line); the stream cannot resynchronise
    after it, so it is never skipped.
    """
    path = Path(path)
    try:
        f = path.open("r", encoding="utf-8")
    except FileNotFoundError:
        raise ECGVLMError("file not found", path) from None
    except OSError as e:
        raise ECGVLMError(f"cannot open: {e.strerror}", path) from None
    with f:
        try:
            head = f.read(CHUNK)
            stripped = head.lstrip("\ufeff \t\r\n")
            if not stripped:
                return
            if stripped[0] == "[":
                yield from _iter_json_list(path, f, head)
            else:
                yield from _iter_json_lines(path, f, head)
        except UnicodeDecodeError as e:
            bad = e.object[e.start : e.start + 1]
            raise ECGVLMError(f"not UTF-8 text (byte {bad!r}: {e.reason}); save it as UTF-8", path) from None


def _iter_json_lines(path: Path, f, head: str) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    buf, lineno, index = head, 0, 0
    while True:
        nl = buf.find("\n")
        if nl < 0:
            more = f.read(CHUNK)
            if more:
                buf += more
                continue
            line, buf = buf, ""
        else:
            line, buf = buf[:nl], buf[nl + 1 :]
        lineno += 1
        text = line.strip().lstrip("\ufeff")
        if text:
            try:
                obj, end = decoder.raw_decode(text)
            except json.JSONDecodeError as e:
                hint = ""
                if lineno == 1 and text.startswith("{"):
                    hint = "; the file looks like one JSON object over several lines: give a JSON list or JSON lines"
                raise ECGVLMError(f"line {lineno}: invalid JSON ({e.msg}){hint}", path) from None
            if text[end:].strip():
                raise ECGVLMError(f"line {lineno}: extra text after the JSON object (not JSON lines?)", path)
            yield index, obj
            index += 1
        if nl < 0 and not buf:
            return


def _iter_json_list(path: Path, f, buf: str) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    pos = buf.index("[") + 1
    index, eof = 0, False

    def skip_ws(p: int) -> int:
        while p < len(buf) and buf[p] in " \t\r\n":
            p += 1
        return p

    expect_value = True  # after "[" or ","
    while True:
        pos = skip_ws(pos)
        if pos >= len(buf):
            if eof:
                raise ECGVLMError(f"row {index}: file ends inside the JSON list (truncated?)", path)
            more = f.read(CHUNK)
            buf, pos, eof = buf[pos:] + more, 0, not more
            continue
        ch = buf[pos]
        if ch == "]" and (not expect_value or index == 0):
            return
        if ch == "," and not expect_value:
            pos, expect_value = pos + 1, True
            continue
        if not expect_value:
            raise ECGVLMError(f"row {index}: expected ',' or ']' between rows, got {ch!r}", path)
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as e:
            if not eof:
                more = f.read(CHUNK)
                buf, pos, eof = buf[pos:] + more, 0, not more
                continue
            raise ECGVLMError(f"row {index}: invalid JSON ({e.msg})", path) from None
        if end == len(buf) and not eof:
            # A number or literal may continue in the next chunk; decode again with more text.
            more = f.read(CHUNK)
            if more:
                buf, pos = buf[pos:] + more, 0
                continue
            eof = True
        yield index, obj
        index += 1
        pos, expect_value = end, False
        if pos > CHUNK:
            buf, pos = buf[pos:], 0


# ------------------------------------------------------------------ one row
def _text(value: Any, where: str) -> tuple[str, list[str] | None]:
    if isinstance(value, str):
        return value, None
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        items = [str(v) for v in value]
        return ", ".join(items), items
    raise RowError("turn value is not text", f"{where} value is {type(value).__name__}, not text")


def parse_row(obj: Any, index: int, image_token: str = "auto") -> Row:
    """Normalise one published-format row; raises RowError(reason) when it is malformed."""
    if not isinstance(obj, dict):
        raise RowError("row is not a JSON object", f"row is a {type(obj).__name__}, not an object")
    key = "conversations" if "conversations" in obj else "conversation" if "conversation" in obj else None
    rid = obj.get("id")
    if rid is None or (isinstance(rid, str) and not rid.strip()):
        raise RowError("missing key 'id'")
    if "image" not in obj:
        raise RowError("missing key 'image'")
    if key is None:
        raise RowError("missing key 'conversations'", "missing key 'conversations' (or 'conversation')")
    raw_turns = obj[key]
    if not isinstance(raw_turns, list) or not raw_turns:
        raise RowError("conversations is not a list of turns", f"'{key}' must be a non-empty list of turns")
    turns: list[dict[str, str]] = []
    system = None
    answer_list = None
    for t, turn in enumerate(raw_turns):
        if not isinstance(turn, dict) or ("value" not in turn and "content" not in turn):
            raise RowError(
                "turn without 'from'/'value'", f"turn {t} must be an object with 'from' and 'value'"
            )
        role = ROLES.get(str(turn.get("from", turn.get("role", ""))).lower())
        if role is None:
            raise RowError(
                "unknown role",
                f"turn {t} has role {turn.get('from', turn.get('role'))!r}; expected human/gpt or user/assistant",
            )
        text, items = _text(turn["value"] if "value" in turn else turn["content"], f"turn {t}")
        if role == "system":
            system = text
            continue
        want = "human" if len(turns) % 2 == 0 else "gpt"
        if role != want:
            raise RowError(
                "wrong role order",
                f"turn {t} is from {role} but a {want} turn was expected (turns must alternate, human first)",
            )
        if role == "gpt" and answer_list is None and items is not None:
            answer_list = items
        turns.append({"from": role, "value": text})
    if len(turns) < 2:
        raise RowError("no answer turn", "no gpt/assistant turn after the question")
    for t in range(1, len(turns), 2):
        if not turns[t]["value"].strip():
            raise RowError("empty answer", f"answer {t // 2} is empty")
    first = turns[0]["value"]
    require = image_token == "require" or (image_token == "auto" and key == "conversations")
    if IMAGE_TOKEN not in first:
        if require:
            raise RowError("no <image> token", "no <image> token in the first human turn")
        turns[0] = {"from": "human", "value": f"{IMAGE_TOKEN}\n{first}"}
    meta = obj.get("metadata") or {}
    return Row(
        index, str(rid), obj["image"], turns, meta if isinstance(meta, dict) else {}, system, answer_list, obj
    )


def _check_images(row: Row, root: Path) -> None:
    images = row.image if isinstance(row.image, list) else [row.image]
    if not images or any(not isinstance(p, str) or not p.strip() for p in images):
        raise RowError("image path not a string", "'image' must be a relative path (or a list of them)")
    for rel in images:
        try:
            path = resolve_inside(root, rel)
        except ECGVLMError:
            raise RowError(
                "image path escapes the dataset root", f"image path {rel!r} escapes the dataset root {root}"
            ) from None
        if not path.is_file():
            raise RowError("image file missing", f"image file missing: {rel}")


# ------------------------------------------------------------------ the reader
# a first object with none of these is no row at all (a wrapper object, a config), not a bad row
ROW_KEYS = {"id", "image", "conversations", "conversation"}


def iter_rows(
    path: str | Path,
    root: str | Path | None = None,
    on_error: str = "raise",
    check_images: bool = True,
    image_token: str = "auto",
    summary: ReadSummary | None = None,
) -> Iterator[Row]:
    """Stream valid rows of an ECGInstruct/ECGBench file.

    root: the folder image paths are relative to (default: the file's folder).
    on_error: "raise" (first bad row raises ECGVLMError) or "skip" (counted in ``summary``).
    image_token: "auto" | "require" | "optional" (see the module docstring).
    """
    if on_error not in ("raise", "skip"):
        raise ECGVLMError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if image_token not in ("auto", "require", "optional"):
        raise ECGVLMError(f"image_token must be auto, require or optional, got {image_token!r}")
    path = Path(path)
    root_dir = Path(root) if root is not None else path.parent
    if check_images and not root_dir.is_dir():
        raise ECGVLMError("dataset root is not a folder", root_dir)
    summary = summary if summary is not None else ReadSummary()
    seen: set[str] = set()
    for index, obj in iter_json(path):
        try:
            row = parse_row(obj, index, image_token)
            if row.id in seen:
                raise RowError("duplicate id", f"id {row.id!r} appears earlier in the file")
            if check_images:
                _check_images(row, root_dir)
        except RowError as e:
            if index == 0 and isinstance(obj, dict) and not ROW_KEYS & set(obj):
                keys = ", ".join(list(map(str, obj))[:5])
                raise ECGVLMError(
                    f"holds a JSON object (keys: {keys}) where a JSON list of rows or JSON lines "
                    "(one row a line) is expected",
                    path,
                ) from None
            rid = obj.get("id") if isinstance(obj, dict) else None
            where = f"row {index}" + (f" (id {rid!r})" if rid is not None else "")
            message = f"{path}: {where}: {e}"
            if on_error == "raise":
                raise ECGVLMError(f"{where}: {e}", path) from None
            summary.skipped[e.reason] += 1
            summary.first_error.setdefault(e.reason, " ".join(message.split()))
            continue
        seen.add(row.id)
        summary.rows += 1
        summary.tasks[row.task or "(none)"] += 1
        summary.sources[str(row.metadata.get("source", "(none)"))] += 1
        key = "conversations" if "conversations" in row.raw else "conversation"
        roles = (
            "human-gpt"
            if str(row.raw[key][0].get("from", "")).lower() in ("human", "gpt", "system")
            else "user-assistant"
        )
        summary.shapes[f"{key}/{roles}"] += 1
        yield row


def check_file(
    path: str | Path,
    root: str | Path | None = None,
    on_error: str = "skip",
    check_images: bool = True,
    image_token: str = "auto",
) -> ReadSummary:
    """Validate a whole file; returns the counts (with on_error="raise", the first problem raises)."""
    summary = ReadSummary()
    for _ in iter_rows(path, root, on_error, check_images, image_token, summary):
        pass
    return summary


def read_rows(path: str | Path, image_token: str = "optional") -> list[Row]:
    """Every row of a file for training or evaluation; the first bad row raises.

    Image files are not checked here: the consumer reads them later, from its own image root.
    ``image_token="optional"`` keeps rows whose question has no ``<image>``: the chat layout puts
    the page at the start of the first user turn either way (``ecgvlm.model.chat``).
    """
    return list(iter_rows(path, check_images=False, image_token=image_token))
