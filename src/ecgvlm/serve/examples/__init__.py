"""Bundled synthetic ECG printouts the web page offers as examples (made by ``make_examples``)."""

from __future__ import annotations

from importlib import resources

TITLES = {
    "normal-sinus-rhythm.png": "Normal sinus rhythm",
    "atrial-fibrillation.png": "Atrial fibrillation",
    "inferior-mi.png": "Inferior MI",
    "left-bundle-branch-block.png": "Left bundle branch block",
    "lvh.png": "LVH",
}


def title(name: str) -> str:
    return TITLES.get(name) or name.removesuffix(".png").replace("-", " ").capitalize()


def names() -> list[str]:
    folder = resources.files(__name__)
    found = {p.name for p in folder.iterdir() if p.name.endswith(".png")}
    return [n for n in TITLES if n in found] + sorted(found - set(TITLES))


def read(name: str | None = None) -> bytes:
    """The PNG bytes of one example (the first one by default)."""
    available = names()
    if not available:
        raise FileNotFoundError("no bundled examples")
    name = name or available[0]
    if name not in available:  # a fixed list, so no path ever leaves the folder
        raise FileNotFoundError(f"no such example: {name}")
    return resources.files(__name__).joinpath(name).read_bytes()
