"""Bundled synthetic ECG printouts the web page offers as examples (made by ``make_examples``)."""

from __future__ import annotations

from importlib import resources


def names() -> list[str]:
    folder = resources.files(__name__)
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".png"))


def read(name: str | None = None) -> bytes:
    """The PNG bytes of one example (the first one by default)."""
    available = names()
    if not available:
        raise FileNotFoundError("no bundled examples")
    name = name or available[0]
    if name not in available:  # a fixed list, so no path ever leaves the folder
        raise FileNotFoundError(f"no such example: {name}")
    return resources.files(__name__).joinpath(name).read_bytes()
