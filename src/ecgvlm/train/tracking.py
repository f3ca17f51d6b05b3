"""Experiment trackers through accelerate: TensorBoard (default), Weights & Biases, MLflow.

Only the main process logs (accelerate's trackers are main-process-only). Where each one writes:

* ``tensorboard``: ``OUTPUT_DIR/tensorboard/`` (event files).
* ``wandb``: project ``ecgvlm``, run named after the output folder, files under ``OUTPUT_DIR/wandb/``;
  ``WANDB_MODE=offline`` keeps it on disk (``wandb sync`` uploads it later).
* ``mlflow``: experiment ``ecgvlm`` (``MLFLOW_EXPERIMENT_NAME`` overrides), run named after the
  output folder, in the store ``MLFLOW_TRACKING_URI`` names (e.g. ``file:/path/mlruns``; MLflow's
  own default otherwise).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ecgvlm.errors import ECGVLMError

PROJECT = "ecgvlm"
_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def check_tracker(name: str) -> None:
    """Refuse a tracker whose package is missing, in one line, before any model loads."""
    module = _MODULES.get(name)
    if module and importlib.util.find_spec(module) is None:
        raise ECGVLMError(f"train.report_to={name} needs the {module} package: pip install {module}")


def accelerator_kwargs(name: str, out: Path) -> dict[str, Any]:
    """``log_with`` / ``project_dir`` for ``Accelerator``."""
    if name == "none":
        return {"log_with": None}
    return {"log_with": name, "project_dir": str(out)}


def start_trackers(accelerator, name: str, out: Path, config: dict[str, Any]) -> None:
    """Start the run; ``config`` (flat, scalars) becomes its hyperparameters."""
    if name == "none":
        return
    run = Path(out).name
    init = {
        "wandb": {"name": run, "dir": str(out)},
        "mlflow": {"run_name": run},
    }
    # tensorboard writes to project_dir/<project name>: keep the folder ecgvlm always used
    project = "tensorboard" if name == "tensorboard" else PROJECT
    accelerator.init_trackers(project, config=config, init_kwargs=init)


def flat_config(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}``; None becomes "null" (trackers want scalars)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = "null" if value is None else value
    return flat
