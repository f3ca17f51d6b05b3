"""Small file helpers shared by every stage: atomic writes, JSON lines, safe relative paths, row images."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from ecgvlm.errors import ECGVLMError

# mkstemp creates 0600 files; datasets and models are meant to be shared, so honour the umask.
_UMASK = os.umask(0)
os.umask(_UMASK)
MAX_IMAGE_PIXELS = 64_000_000  # a "page" bigger than this is refused, not decoded


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds.

    A crash or kill leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextmanager
def atomic_dir(path: str | Path, replace: bool = True) -> Iterator[Path]:
    """Build a whole folder in a temporary sibling; move it to ``path`` only if the block succeeds.

        with atomic_dir(out / "model") as tmp:
            write_everything_into(tmp)

    A crash leaves the old folder (or none), never half a new one. ``replace``: an existing
    ``path`` is removed first; without it a ``path`` that appeared meanwhile (another process built
    the same thing) is kept and the new copy dropped.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o777 & ~_UMASK)
        yield tmp
        if replace:
            shutil.rmtree(path, ignore_errors=True)
        try:
            os.replace(tmp, path)
        except OSError:
            if replace or not path.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process won the race; its copy is as good
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def share_files(folder: str | Path) -> None:
    """Give every file in ``folder`` the umask's permissions: transformers and PEFT write their
    safetensors through mkstemp (0600), which leaves a model or adapter unreadable to a shared group."""
    for f in Path(folder).iterdir():
        if f.is_file():
            f.chmod(0o666 & ~_UMASK)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows atomically as JSON lines; returns the number written."""
    n = 0
    with atomic_open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """Yield JSON objects from a .jsonl file; a bad line raises an error naming file and line."""
    path = Path(path)
    try:
        f = path.open("rb")
    except OSError as e:
        raise ECGVLMError(f"cannot open: {e.strerror}", path) from None
    with f:
        # bytes per line, decoded here, so a bad byte is reported with its line, not as a traceback
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = raw[e.start : e.start + 1]
                raise ECGVLMError(
                    f"line {lineno}: not UTF-8 text (byte {bad!r} at column {e.start + 1}); save it as UTF-8",
                    path,
                ) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                hint = ""
                if (
                    lineno == 1
                    and line.lstrip().startswith(("{", "["))
                    and not line.rstrip().endswith(("}", "]"))
                ):
                    hint = "; a JSON document spread over several lines is not JSON lines (one object a line)"
                raise ECGVLMError(f"line {lineno}: invalid JSON ({e.msg}){hint}", path) from None
            if not isinstance(obj, dict):
                kind = "a list" if isinstance(obj, list) else type(obj).__name__
                raise ECGVLMError(f"line {lineno}: expected a JSON object (one a line), found {kind}", path)
            yield obj


def resolve_inside(root: str | Path, relative: str | Path) -> Path:
    """Join ``relative`` to ``root`` and refuse any result outside ``root`` (``..``, absolute paths, links)."""
    root = Path(root).resolve()
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise ECGVLMError(f"path {str(relative)!r} escapes the dataset root {root}", relative)
    return candidate


def load_image(root: str | Path, rel: str, where: str | Path = ""):
    """The RGB image a dataset row names by ``rel`` (a path inside ``root``); errors name the file."""
    from PIL import Image

    if not isinstance(rel, str) or not rel:
        raise ECGVLMError("row has no image path", where)
    path = resolve_inside(root, rel)
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise ECGVLMError("image not found", path) from None
    except (OSError, Image.DecompressionBombError, ValueError) as e:
        raise ECGVLMError(f"cannot read image ({e})", path) from None


def read_csv_rows(path: str | Path) -> list[dict[str, str]]:
    """All rows of a CSV table with a header; an unreadable file raises an error naming it."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ECGVLMError(f"cannot read the table ({e})", path) from None
