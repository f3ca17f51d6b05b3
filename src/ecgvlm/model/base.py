"""Which base model to use when none is named: the one rule serve, train and the demo share.

    shipped_base()        # the pretrained tiny base inside the package, or None in a build without it
    default_base()        # shipped_base(), else the random tiny preset built once into the cache
    build_random_tiny(folder, seed)   # the random tiny preset, written whole or not at all

The random preset is a pure function of its seed, so a cached copy is as good as a fresh one.
"""

from __future__ import annotations

import os
from pathlib import Path

from ecgvlm.io import atomic_dir

TINY_SEED = 0


def cache_dir() -> Path:
    """``$ECGVLM_CACHE``, else ``$XDG_CACHE_HOME/ecgvlm`` (``~/.cache/ecgvlm``)."""
    root = os.environ.get("ECGVLM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ecgvlm"
    )
    return Path(root)


def shipped_base() -> Path | None:
    """The pretrained tiny base inside the package (``ecgvlm pretrain-base``), if this build has one."""
    from importlib import resources

    path = Path(str(resources.files("ecgvlm.model").joinpath("tiny_base")))
    return path if (path / "config.json").is_file() else None


def build_random_tiny(folder: str | Path, seed: int = TINY_SEED, replace: bool = True) -> Path:
    """The random tiny preset in ``folder``, built in a temporary sibling and moved there whole.

    ``replace=False``: when another process built ``folder`` meanwhile, its copy is kept.
    """
    from ecgvlm.model.tiny import build_tiny

    with atomic_dir(folder, replace=replace) as tmp:
        build_tiny(tmp, seed=seed)
    return Path(folder)


def tiny_base_dir(seed: int = TINY_SEED) -> Path:
    """The random tiny Mllama base, built once into the cache."""
    target = cache_dir() / f"tiny-base-seed{seed}"
    if (target / "ecgvlm_tiny.json").is_file():  # written last by build_tiny
        return target
    return build_random_tiny(target, seed, replace=False)


def default_base() -> Path:
    """The base used when no model is named: the shipped pretrained tiny base, else the random one."""
    return shipped_base() or tiny_base_dir()
