"""Find and load the model to serve: an explicit folder, the demo's model, or the tiny base."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ecgvlm.errors import ECGVLMError

TINY_SEED = 0


def cache_dir() -> Path:
    root = os.environ.get("ECGVLM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ecgvlm"
    )
    return Path(root)


def tiny_base_dir(seed: int = TINY_SEED) -> Path:
    """The random tiny Mllama base, built once into the cache (atomically: build, then rename)."""
    from ecgvlm.model.tiny import build_tiny

    target = cache_dir() / f"tiny-base-seed{seed}"
    if (target / "ecgvlm_tiny.json").is_file():  # written last by build_tiny
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        build_tiny(tmp, seed=seed)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race; its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def shipped_base() -> Path | None:
    """The pretrained tiny base inside the package (``ecgvlm pretrain-base``), if this build has one."""
    from importlib import resources

    path = Path(str(resources.files("ecgvlm.model").joinpath("tiny_base")))
    return path if (path / "config.json").is_file() else None


def resolve(model_dir: str | Path | None, adapter: str | Path | None) -> tuple[Path, Path | None]:
    """(base model folder, adapter folder or None) following the documented defaults.

    No folder given: ``runs/demo/model`` (with its ``adapter/`` when there is one), else the tiny
    base shipped in the package, else a random tiny base built into the cache.
    """
    from ecgvlm.serve.interpreter import default_model_dir

    if model_dir is None:
        model_dir = default_model_dir()
        if model_dir is None:
            return shipped_base() or tiny_base_dir(), (Path(adapter) if adapter else None)
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ECGVLMError("model folder not found", model_dir)
    if adapter is None and (model_dir / "adapter" / "adapter_config.json").is_file():
        adapter = model_dir / "adapter"
    if adapter is not None and not Path(adapter).is_dir():
        raise ECGVLMError("adapter folder not found", adapter)
    return model_dir, (Path(adapter) if adapter else None)


def trained_tasks(adapter_dir: Path | None) -> frozenset[str] | None:
    """The instruction tasks an adapter was trained on (its train_summary.json), None if unrecorded."""
    if adapter_dir is None:
        return None
    path = Path(adapter_dir) / "train_summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ECGVLMError(f"cannot read: {e.strerror}", path) from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise ECGVLMError(f"not valid JSON ({e})", path) from None
    if not isinstance(summary, dict):
        raise ECGVLMError("expected a JSON object", path)
    tasks = summary.get("tasks")
    if tasks is None:  # written before tasks were recorded
        return None
    if not isinstance(tasks, dict) or not all(isinstance(k, str) and k for k in tasks):
        raise ECGVLMError("'tasks' must map task names to row counts", path)
    return frozenset(tasks) or None


def load(
    model_dir: str | Path | None, adapter: str | Path | None, device: str | None
) -> tuple[Any, Any, str, bool, frozenset[str] | None]:
    """(model in eval mode, processor, display name, whether it is a fallback base, not fine-tuned,
    the tasks it was fine-tuned on or None when unrecorded)."""
    import torch

    from ecgvlm.model.load import load_model_and_processor
    from ecgvlm.serve.interpreter import default_model_dir

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    base, adapter_dir = resolve(model_dir, adapter)
    tasks = trained_tasks(adapter_dir)  # a bad record fails before the model loads
    model, processor = load_model_and_processor(base, adapter=adapter_dir, device=device)
    model.eval()
    name = base.name if base.name != "model" else f"{base.parent.name}-model"  # runs/demo/model -> demo-model
    if adapter_dir is not None:
        name += "+lora"

    untrained = model_dir is None and adapter_dir is None and default_model_dir() is None
    return model, processor, name, untrained, tasks
