"""One rule for every command that writes: an output is new, or ours, or the command stops.

A folder a command writes into gets a marker file, ``.ecgvlm-output.json``, naming the command.
Before writing, a command claims its output:

* a folder that does not exist, or is empty, is created and marked;
* a folder marked by the same command is reused (resumed) or, with ``overwrite``, emptied first;
  commands that cannot resume stop and say to pass ``--overwrite``;
* anything else (someone else's files, another command's output, a regular file) stops the command
  with one line naming what is there. ``--overwrite`` never removes files ecgvlm did not write.

A single file (``render --out page.png`` and its sidecar ``page.json``) has no folder to mark: it is
ours when a recogniser reads it as an earlier output of the command (the render sidecar that names
the image), and is then replaced; any other existing file stops the command.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import atomic_write_json

MARKER = ".ecgvlm-output.json"
MARKER_SCHEMA = "ecgvlm.output/1"


def owner_of(folder: Path) -> str | None:
    """The command whose output ``folder`` is, from its marker; None without a readable marker."""
    try:
        doc = json.loads((folder / MARKER).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(doc, dict) and doc.get("schema") == MARKER_SCHEMA and isinstance(doc.get("command"), str):
        return doc["command"]
    return None


def mark(folder: Path, command: str) -> None:
    atomic_write_json(folder / MARKER, {"schema": MARKER_SCHEMA, "command": command})


def _listing(folder: Path, limit: int = 5) -> tuple[list[str], bool]:
    # A marker being written (atomically, via a temporary file) by another task of the same job,
    # e.g. Slurm array tasks starting together on one --out, does not make the folder someone else's.
    found = (p.name for p in folder.iterdir() if not p.name.startswith(f"{MARKER}."))
    names = sorted(itertools.islice(found, limit + 1))
    return names[:limit], len(names) > limit


def check_output_dir(
    path: str | Path,
    command: str,
    *,
    overwrite: bool = False,
    resume: bool = True,
    legacy: Iterable[str] = (),
    resume_hint: str = "pass --overwrite to replace it, or name a new folder",
    flag: str = "--overwrite",
) -> bool:
    """Whether ``path`` holds an earlier output of ``command`` that may be written into; raises when
    the folder may not be used. ``legacy`` names paths that mark an output made before markers were
    written (e.g. a dataset build's ``.staging/config.json``)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ECGVLMError("exists and is not a folder; name a new folder", path)
    if not path.is_dir():
        return False
    owner = owner_of(path)
    if owner is None and not (path / MARKER).exists() and any((path / p).exists() for p in legacy):
        owner = command
    if owner == command:
        if overwrite or resume:
            return True
        raise ECGVLMError(f"holds an earlier `ecgvlm {command}` output; {resume_hint}", path)
    if owner is not None:
        raise ECGVLMError(
            f"holds the output of `ecgvlm {owner}`, not `ecgvlm {command}`; name a new folder", path
        )
    names, more = _listing(path)
    if names:
        shown = ", ".join(names) + (", ..." if more else "")
        raise ECGVLMError(
            f"is not empty: holds files ecgvlm did not write ({shown}); name a new or empty folder "
            f"({flag} replaces only an earlier output of this command, never other files)",
            path,
        )
    return False


def claim_output_dir(
    path: str | Path,
    command: str,
    *,
    overwrite: bool = False,
    resume: bool = True,
    legacy: Iterable[str] = (),
    resume_hint: str = "pass --overwrite to replace it, or name a new folder",
    flag: str = "--overwrite",
) -> Path:
    """Check ``path`` as ``check_output_dir`` does, empty it when it is ours and ``overwrite`` is
    set, then create and mark it. Returns the folder."""
    path = Path(path)
    ours = check_output_dir(
        path, command, overwrite=overwrite, resume=resume, legacy=legacy, resume_hint=resume_hint, flag=flag
    )
    if ours and overwrite:
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    if owner_of(path) != command:
        mark(path, command)
    return path


def claim_output_file(
    path: str | Path,
    command: str,
    *,
    sidecars: Iterable[str | Path] = (),
    is_ours: Callable[[Path], bool] | None = None,
) -> Path:
    """May ``path`` (and the ``sidecars`` written beside it) be written? New files may; existing ones
    only when ``is_ours(path)`` recognises an earlier output of ``command`` (rerunning a command
    replaces its own output). Raises a one-line error otherwise; writes nothing."""
    path = Path(path)
    files = [path, *map(Path, sidecars)]
    for f in files:
        if f.is_dir():
            raise ECGVLMError("is a folder; name a file", f)
    present = [f.name for f in files if f.exists()]
    if present and (is_ours is None or not is_ours(path)):
        raise ECGVLMError(
            f"would replace {', '.join(present)}, which ecgvlm {command} did not write; "
            "name another file or move them away",
            path,
        )
    return path
