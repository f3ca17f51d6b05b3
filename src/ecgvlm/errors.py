"""One exception type for problems a user can fix (bad input, missing file, wrong option).

The CLI prints these as a single line and exits with status 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from pathlib import Path


class ECGVLMError(Exception):
    """A user-facing error. ``str(err)`` is one line that names the file and the problem."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        text = " ".join(str(message).split())  # always one line
        super().__init__(f"{self.path}: {text}" if self.path else text)
