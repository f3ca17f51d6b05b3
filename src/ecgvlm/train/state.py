"""The state of one fine-tuning run, shared by the recipe's setup, loop and save steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ecgvlm.train.config import RecipeCfg


@dataclass
class Run:
    """What setup builds and the loop and the save step share; ``position`` and ``log`` change as
    it trains (and are what a checkpoint stores beside the weights, optimizer and scheduler)."""

    cfg: RecipeCfg
    accelerator: Any
    plugin: Any  # accelerate's DeepSpeedPlugin, or None without DeepSpeed
    precision: str
    out: Path
    ckpt_dir: Path
    base_dir: Path
    processor: Any
    model: Any
    params: list[torch.nn.Parameter]
    optimizer: Any
    scheduler: Any
    data: Any  # InstructDataset
    val: Any  # InstructDataset or None
    collate: Any
    opening: Any  # the curriculum's opening batches (InstructDataset.curriculum)
    global_batch: int
    total_steps: int
    trainable: str  # describe_trainable's line
    n_trainable: int
    n_total: int
    position: dict = field(default_factory=lambda: {"step": 0, "epoch": 0, "batch": 0})
    log: list[dict] = field(default_factory=list)
