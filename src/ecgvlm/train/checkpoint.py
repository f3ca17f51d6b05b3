"""Training checkpoints, in both formats a run may write; each folder is ``checkpoints/step-000120``.

* Our own (``save_checkpoint`` / ``load_checkpoint``), without pickle: tensors in safetensors,
  everything else in JSON: the trainable weights, the AdamW state, the scheduler, the RNG states
  (torch/CUDA as tensors, Python/NumPy as JSON) and the loop position.
* Under DeepSpeed (``save_engine_checkpoint`` / ``load_engine_checkpoint``): the engine's own files
  in ``accelerate/`` (its sharded weights and optimizer), with the position, scheduler and log in
  JSON beside them.

Either is written to a temporary folder and renamed into place, so a kill leaves the previous
checkpoint intact and never a half-written one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import atomic_dir, atomic_write_json


def _trainable(model) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    py = random.getstate()
    np_state = np.random.get_state()
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("torch_cuda_"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))


def optimizer_state(optimizer, names: list[str]) -> tuple[dict[str, torch.Tensor], dict]:
    """AdamW-style state keyed by parameter name (tensors) + param groups (JSON)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{names[idx]}::{key}"] = value.contiguous()
            else:
                scalars[f"{names[idx]}::{key}"] = value
    groups = [
        {k: v for k, v in g.items() if k != "params"} | {"params": g["params"]} for g in sd["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars, "names": names}


def load_optimizer_state(optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    names = meta["names"]
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        name, field = key.split("::")
        state.setdefault(names.index(name), {})[field] = value
    for key, value in meta["scalars"].items():
        name, field = key.split("::")
        state.setdefault(names.index(name), {})[field] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    ckpt_dir: Path, model, optimizer, scheduler, position: dict, log: list[dict], keep: int = 2
) -> Path:
    """Write ``ckpt_dir/step-NNNNNN`` atomically (temp folder + rename) and prune old ones."""
    final = ckpt_dir / f"step-{position['step']:06d}"
    with atomic_dir(final) as tmp:
        params = _trainable(model)
        names = list(params)
        save_file({n: p.detach().contiguous() for n, p in params.items()}, str(tmp / "trainable.safetensors"))
        opt_tensors, opt_meta = optimizer_state(optimizer, names)
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        rng_tensors, rng_meta = rng_state()
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        state = {
            "position": position,
            "optimizer": opt_meta,
            "scheduler": scheduler.state_dict(),
            "rng": rng_meta,
        }
        atomic_write_json(tmp / "state.json", state, indent=None)
        atomic_write_json(tmp / "log.json", log, indent=None)
    for old in sorted(ckpt_dir.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    done = sorted(p for p in ckpt_dir.glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def load_checkpoint(path: Path, model, optimizer, scheduler) -> tuple[dict, list[dict]]:
    """Restore weights, optimizer, scheduler and RNG; returns (position, log)."""
    try:
        meta = json.loads((path / "state.json").read_text())
        weights = load_file(str(path / "trainable.safetensors"))
        opt = load_file(str(path / "optimizer.safetensors"))
        rng = load_file(str(path / "rng.safetensors"))
        log = json.loads((path / "log.json").read_text())
    except (OSError, ValueError) as e:
        raise ECGVLMError(f"unreadable checkpoint ({e})", path) from None
    params = _trainable(model)
    if set(weights) != set(params):
        raise ECGVLMError("checkpoint does not match this recipe's trainable parameters", path)
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(weights[n])
    load_optimizer_state(optimizer, opt, meta["optimizer"])
    scheduler.load_state_dict(meta["scheduler"])
    set_rng_state(rng, meta["rng"])
    return meta["position"], log


def save_engine_checkpoint(accelerator, ckpt_dir: Path, scheduler, position: dict, log: list[dict]) -> Path:
    """DeepSpeed's checkpoint (every process calls this): the engine writes its own state, the main
    process adds the position, scheduler and log, then renames the folder into place."""
    final = ckpt_dir / f"step-{position['step']:06d}"
    tmp = ckpt_dir / f".{final.name}.tmp"
    accelerator.save_state(str(tmp / "accelerate"))
    if accelerator.is_main_process:
        atomic_write_json(
            tmp / "state.json",
            {"position": position, "scheduler": scheduler.state_dict()},
            indent=None,
        )
        atomic_write_json(tmp / "log.json", log, indent=None)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    return final


def load_engine_checkpoint(accelerator, path: Path, scheduler) -> tuple[dict, list[dict]]:
    """Restore a ``save_engine_checkpoint`` folder; returns (position, log)."""
    accelerator.load_state(str(path / "accelerate"))  # our own files: DeepSpeed's format
    state = json.loads((path / "state.json").read_text())
    scheduler.load_state_dict(state["scheduler"])
    return state["position"], json.loads((path / "log.json").read_text())
