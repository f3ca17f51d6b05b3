"""Images and multi-label targets for the CNN baseline, from an instruction dataset split.

A split file has many rows per image (one per question); the CNN needs each image once, with its
labels taken from ``metadata.gold``: ``superclasses`` (or the superclasses implied by ``scp``) and,
for the 71-statement head, the codes present in ``scp``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ecgvlm.errors import ECGVLMError
from ecgvlm.evaluate.generate import read_rows
from ecgvlm.instruct.reader import Row
from ecgvlm.io import resolve_inside
from ecgvlm.signals.vocab import SUPERCLASSES, codes, superclasses_of

SCP_PREFIX = "scp:"
MAX_PIXELS = 40_000_000  # a page at 600 dpi is ~35M pixels; anything larger is not an ECG page


def label_names(head: str) -> list[str]:
    """``superclass`` -> the 5 superclasses; ``scp`` -> those, then the 71 SCP codes as ``scp:CODE``.

    The prefix keeps the statement NORM apart from the superclass NORM.
    """
    if head == "superclass":
        return list(SUPERCLASSES)
    if head == "scp":
        return list(SUPERCLASSES) + [SCP_PREFIX + c for c in codes()]
    raise ECGVLMError(f"unknown label head {head!r} (use 'superclass' or 'scp')")


@dataclass
class ImageSet:
    root: Path  # the dataset folder that image paths are relative to
    images: list[str]  # relative image paths, first-seen order
    targets: np.ndarray  # float32 (n_images, n_labels) of 0/1


def row_labels(row: Row) -> tuple[set[str], set[str]] | None:
    """(superclasses, scp codes) from a row's gold block, or None if the row carries no labels."""
    gold = row.gold
    scp = gold.get("scp")
    sup = gold.get("superclasses")
    if sup is None and scp is None:
        return None
    scp_codes = set(scp) if isinstance(scp, dict) else set()
    sup_codes = set(sup) if isinstance(sup, list) else set(superclasses_of(scp_codes))
    return sup_codes, scp_codes


def load_imageset(split_path: str | Path, labels: list[str]) -> ImageSet:
    """Deduplicate a split's rows by image and build the label matrix (order = first appearance)."""
    split_path = Path(split_path)
    rows = read_rows(split_path)
    root = split_path.parent
    found: dict[str, tuple[set[str], set[str]]] = {}
    for i, row in enumerate(rows):
        got = row_labels(row)
        if got is None:
            continue
        prev = found.setdefault(row.image, got)
        if prev[0] != got[0]:
            raise ECGVLMError(
                f"row {i} ({row.id}): image {row.image!r} has superclasses {sorted(got[0])} here "
                f"but {sorted(prev[0])} in an earlier row",
                split_path,
            )
    if not found:
        raise ECGVLMError("no row carries metadata.gold.superclasses or metadata.gold.scp", split_path)
    images = list(found)
    index = {name: j for j, name in enumerate(labels)}
    targets = np.zeros((len(images), len(labels)), dtype=np.float32)
    for i, name in enumerate(images):
        sup, scp = found[name]
        for name in list(sup) + [SCP_PREFIX + c for c in scp]:
            if name in index:
                targets[i, index[name]] = 1.0
    return ImageSet(root=root, images=images, targets=targets)


def load_image(root: Path, relative: str, size: int) -> np.ndarray:
    """One page as uint8 (3, size, size): RGB, resized (aspect not kept) with antialiasing."""
    path = resolve_inside(root, relative)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ECGVLMError(
                    f"image is {im.width}x{im.height}, over the {MAX_PIXELS:,}-pixel limit", path
                )
            im = im.convert("RGB").resize((size, size), Image.BILINEAR)
    except FileNotFoundError:
        raise ECGVLMError("image file not found", path) from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as e:
        raise ECGVLMError(f"cannot decode image ({type(e).__name__}: {e})", path) from None
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()


def load_pixels(imageset: ImageSet, size: int, progress: bool = True) -> np.ndarray:
    """All images of a set as one uint8 array (n, 3, size, size), kept in memory for the epochs."""
    from tqdm import tqdm

    out = np.empty((len(imageset.images), 3, size, size), dtype=np.uint8)
    for i, rel in enumerate(tqdm(imageset.images, desc="loading images", unit="img", disable=not progress)):
        out[i] = load_image(imageset.root, rel, size)
    return out
