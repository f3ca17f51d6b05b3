"""Find and load the model to serve: an explicit folder, the demo's model, or the tiny base."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgvlm.errors import ECGVLMError
from ecgvlm.model.base import default_base

DEFAULT_DEMO_MODEL = Path("runs/demo/model")


def default_model_dir() -> Path | None:
    """``runs/demo/model`` when ``ecgvlm demo`` has left a model there, else None (tiny base)."""
    return DEFAULT_DEMO_MODEL if DEFAULT_DEMO_MODEL.is_dir() else None


@dataclass(frozen=True)
class Loaded:
    """A model ready to serve, what it is called, and what it was fine-tuned on."""

    model: Any  # in eval mode
    processor: Any
    name: str  # display name: the folder's ("demo-model" for runs/demo/model), "+lora" with an adapter
    untrained: bool  # a fallback base (no folder named, no demo model): never fine-tuned on ECGs
    tasks: frozenset[str] | None  # the instruction tasks the adapter was trained on; None: unrecorded


def resolve(model_dir: str | Path | None, adapter: str | Path | None) -> tuple[Path, Path | None]:
    """(base model folder, adapter folder or None) following the documented defaults.

    No folder given: ``runs/demo/model`` (with its ``adapter/`` when there is one), else the tiny
    base shipped in the package, else a random tiny base built into the cache.
    """
    if model_dir is None:
        model_dir = default_model_dir()
        if model_dir is None:
            return default_base(), (Path(adapter) if adapter else None)
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


def load(model_dir: str | Path | None, adapter: str | Path | None, device: str | None) -> Loaded:
    """Resolve (see ``resolve``) and load the model to serve."""
    import torch

    from ecgvlm.model.load import load_model_and_processor

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
    return Loaded(model, processor, name, untrained, tasks)
