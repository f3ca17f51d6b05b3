"""What the model card of a training output or a merge says (the card itself: ``model.card``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecgvlm.model.card import base_licence
from ecgvlm.train.config import RecipeCfg


def base_model_name(cfg: RecipeCfg) -> str:
    """The base as the user named it: ``model.hub_id`` when set, else ``model.path`` as given (never
    the resolved or temporary folder)."""
    if cfg.model.hub_id:
        return cfg.model.hub_id
    if cfg.model.path == "tiny":
        return f"ecgvlm tiny preset (random, seed {cfg.model.tiny_seed})"
    return cfg.model.path


def adapter_card_info(
    cfg: RecipeCfg, base_dir: Path, summary: dict[str, Any], world_size: int, rows: int
) -> dict[str, Any]:
    """Card inputs for ``ecgvlm train``'s output folder."""
    lora = cfg.tuning != "partial"
    recipe = {
        "tuning": cfg.tuning,
        "LoRA r / alpha / dropout": f"{cfg.lora.r} / {cfg.lora.alpha} / {cfg.lora.dropout}" if lora else None,
        "target modules (regex)": cfg.lora.target_regex,
        "trainable parameters": f"{summary['trainable_params']:,} of {summary['total_params']:,}",
        "optimizer": f"AdamW, lr {cfg.train.lr:g}, weight decay {cfg.train.weight_decay:g}, "
        f"cosine schedule, warm-up {cfg.train.warmup_ratio:g}",
        "steps": summary["steps"],
        "batch": f"{cfg.train.batch_size} per process x {world_size} processes x "
        f"{cfg.train.grad_accum} accumulation",
        "precision": cfg.train.precision,
        "seed": cfg.train.seed,
        "final training loss": _round(summary.get("final_loss")),
        "validation loss (last)": _round(summary.get("val_loss")),
        "best validation loss": _round((summary.get("best") or {}).get("val_loss")),
    }
    tasks = summary.get("tasks") or {}
    data = {
        "training file": cfg.data.train,
        "validation file": cfg.data.val,
        "rows": rows,
        "tasks (rows)": ", ".join(f"{k} {v}" for k, v in sorted(tasks.items())) or None,
        "sources": cfg.data.sources,
        "max tokens": cfg.data.max_len,
    }
    return {
        "kind": "adapter" if lora else "partial",
        "name": Path(cfg.output_dir).name,
        "base_model": base_model_name(cfg),
        "library_name": "peft" if lora else "transformers",
        "licence": base_licence(base_dir),
        "datasets": [cfg.data.train],
        "recipe": recipe,
        "data": data,
        "metrics": None,
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def merged_card_info(
    adapter: Path, base: Path, out: Path, dtype: str, metrics: dict[str, Any] | None
) -> dict[str, Any]:
    """Card inputs for ``ecgvlm merge``: the adapter's card (recipe, data, base) when it has one."""
    from ecgvlm.model.card import read_card_inputs

    trained = read_card_inputs(adapter) or {}
    recipe = dict(trained.get("recipe") or {})
    recipe["merged from"] = f"{adapter.name} into {trained.get('base_model') or base.name}, stored as {dtype}"
    return {
        "kind": "merged",
        "name": out.name,
        "base_model": trained.get("base_model") or str(base),
        "library_name": "transformers",
        "licence": base_licence(base),
        "datasets": trained.get("datasets") or [],
        "recipe": recipe,
        "data": trained.get("data") or {},
        "metrics": metrics,
        "dtype": dtype,
    }
