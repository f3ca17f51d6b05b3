"""Training recipes: plain dataclasses read from YAML, with dotted ``key=value`` overrides.

    ecgvlm train --config configs/tiny_cpu.yaml lora.r=16 train.max_steps=20

The YAML mirrors the dataclasses below section by section; unknown keys are errors (a typo must
not silently fall back to a default).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ecgvlm.errors import ECGVLMError


@dataclass
class ModelCfg:
    path: str = "tiny"  # a local Mllama folder, or "tiny" to build the random tiny preset
    tiny_seed: int = 0
    qlora: bool = False  # 4-bit base via bitsandbytes (GPU only)
    attn: str = "sdpa"
    max_num_tiles: int | None = None  # e.g. 1: drop padded tiles of 1-tile data (see model.tiles)
    hub_id: str | None = (
        None  # the base's hub id for model cards (e.g. meta-llama/Llama-3.2-11B-Vision-Instruct)
    )


@dataclass
class LoraCfg:
    r: int = 64
    alpha: int = 128
    dropout: float = 0.05
    target_regex: str | None = None


@dataclass
class DataCfg:
    train: str = ""
    val: str | None = None
    max_len: int = 512
    sources: str = "all"
    group_by_length: bool = False
    image_root: str | None = None
    # "TASK[+TASK]:N": the first N batches of the first epoch hold only rows of these tasks
    curriculum: str | None = None


@dataclass
class TrainCfg:
    seed: int = 0
    epochs: float = 3
    max_steps: int | None = None  # optimizer steps; overrides epochs when set
    batch_size: int = 4  # per device
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    precision: str = "auto"  # auto: bf16 on GPU, fp32 on CPU
    gradient_checkpointing: bool = True
    checkpoint_every_n_layers: int = 1  # 2+: recompute fewer layers (faster, more memory)
    label_logits_only: bool = True  # lm_head only at answer positions (never full-vocab logits)
    log_every: int = 1
    save_every: int = 100
    keep_checkpoints: int = 2
    threads: int | None = None
    eval_every: int = (
        0  # steps between validation losses (data.val); the best adapter goes to best/. 0: at the end only
    )
    eval_auc: bool = False  # with each validation: a quick superclass ranking AUC (first 200 superclass rows)
    report_to: str = "tensorboard"  # tensorboard | wandb | mlflow | none (accelerate's trackers)


@dataclass
class RecipeCfg:
    output_dir: str = "runs/train"
    tuning: str = "paper"  # paper | language | partial | regex
    deepspeed: str | None = None  # path to a DeepSpeed JSON (ZeRO-2), relative to the YAML or cwd
    model: ModelCfg = field(default_factory=ModelCfg)
    lora: LoraCfg = field(default_factory=LoraCfg)
    data: DataCfg = field(default_factory=DataCfg)
    train: TrainCfg = field(default_factory=TrainCfg)


def _parse_value(text: str) -> Any:
    value = yaml.safe_load(text)
    return text if value is None and text not in ("null", "~", "") else value


def _build(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise ECGVLMError(f"section {where or 'top'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ECGVLMError(f"unknown key {where + key!r}; known: {', '.join(fields)}")
        sub = fields[key].default_factory if fields[key].default_factory is not dataclasses.MISSING else None
        if sub is not None and dataclasses.is_dataclass(sub):
            kwargs[key] = _build(sub, value or {}, f"{where}{key}.")
        else:
            kwargs[key] = _coerce(value, fields[key].type, where + key)
    return cls(**kwargs)


# Allowed values, checked when the config loads (so a bad value fails before a model is loaded):
# (low, high, low_inclusive, high_inclusive). 0 means "off" where the field allows it (save_every, max_grad_norm).
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "model.tiny_seed": (0, float("inf"), True, True),
    "model.max_num_tiles": (1, float("inf"), True, True),
    "lora.r": (1, float("inf"), True, True),
    "lora.alpha": (0, float("inf"), False, True),
    "lora.dropout": (0, 1, True, False),
    "data.max_len": (1, float("inf"), True, True),
    "train.seed": (0, float("inf"), True, True),
    "train.epochs": (0, float("inf"), False, True),
    "train.max_steps": (1, float("inf"), True, True),
    "train.batch_size": (1, float("inf"), True, True),
    "train.grad_accum": (1, float("inf"), True, True),
    "train.lr": (0, 1, False, True),
    "train.weight_decay": (0, float("inf"), True, True),
    "train.warmup_ratio": (0, 1, True, True),
    "train.max_grad_norm": (0, float("inf"), True, True),
    "train.checkpoint_every_n_layers": (1, float("inf"), True, True),
    "train.log_every": (1, float("inf"), True, True),
    "train.save_every": (0, float("inf"), True, True),
    "train.keep_checkpoints": (1, float("inf"), True, True),
    "train.threads": (1, float("inf"), True, True),
    "train.eval_every": (0, float("inf"), True, True),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "tuning": ("paper", "language", "partial", "regex"),
    "train.precision": ("auto", "bf16", "fp32"),
    "train.report_to": ("tensorboard", "wandb", "mlflow", "none"),
}


def _type_name(annotation: str) -> str:
    base = annotation.replace(" ", "").replace("|None", "")
    return {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}.get(
        base, base
    )


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """``value`` as the field's type, or a one-line error naming the key, the value and the type.

    YAML 1.1 reads ``3e-4`` (no dot) as a string; a float field takes it as the number it is.
    Booleans are strict: only YAML's true/false, never "maybe" or 1.
    """
    annotation = str(annotation)
    if value is None:
        if "None" in annotation:
            return None
        raise ECGVLMError(f"{key} must be {_type_name(annotation)}, got null")
    base = annotation.replace(" ", "").replace("|None", "")
    if base == "bool":
        ok = isinstance(value, bool)
    elif base == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base == "float":
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif base == "str":
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        raise ECGVLMError(f"{key} must be {_type_name(annotation)}, got {value!r}")
    if key in RANGES:
        low, high, low_inclusive, high_inclusive = RANGES[key]
        below = value < low or (value == low and not low_inclusive)
        if below or value > high or (value == high and not high_inclusive):
            lo = f">= {low:g}" if low_inclusive else f"> {low:g}"
            hi = f"<= {high:g}" if high_inclusive else f"< {high:g}"
            want = lo if high == float("inf") else f"{lo} and {hi}"
            raise ECGVLMError(f"{key} must be {want}, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise ECGVLMError(f"{key} must be one of {', '.join(CHOICES[key])}, got {value!r}")
    return value


def set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ECGVLMError(f"override {key!r}: {p!r} is not a section")
    node[parts[-1]] = value


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RecipeCfg:
    """Read a recipe YAML, apply ``a.b=value`` overrides, and return the typed config."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text("utf-8")) or {}
        except FileNotFoundError:
            raise ECGVLMError("config file not found", path) from None
        except yaml.YAMLError as e:
            raise ECGVLMError(f"invalid YAML: {str(e).splitlines()[0]}", path) from None
    for item in overrides:
        if "=" not in item:
            raise ECGVLMError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        set_dotted(data, key.strip(), _parse_value(value.strip()))
    try:
        cfg = _build(RecipeCfg, data, "")
    except ECGVLMError as e:
        raise ECGVLMError(str(e), path) from None
    if path is not None and cfg.deepspeed and not Path(cfg.deepspeed).is_file():
        beside = Path(path).parent / Path(cfg.deepspeed).name
        if beside.is_file():
            cfg.deepspeed = str(beside)
    return cfg


def to_dict(cfg: RecipeCfg) -> dict:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: RecipeCfg) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
