"""Tuning presets: which parameters a recipe trains.

- ``paper``: LoRA on every ``nn.Linear`` but ``lm_head``: vision tower (local + global layers), the
  ``multi_modal_projector`` and the language model including its cross-attention layers. On the
  11B this is 269,451,264 trainable parameters at r=64 (240 LoRA modules in the vision tower).
- ``language``: LoRA on the language model's linears only (cross-attention included).
- ``partial``: no LoRA; full training of ``multi_modal_projector`` and the cross-attention decoder
  layers, everything else frozen (the paper's "partial parameter tuning" baseline).
- ``regex``: LoRA on the linears whose full name matches ``target_regex`` (``re.search``).
``embed_tokens`` and ``lm_head`` are never adapted; ``apply_tuning`` asserts it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ecgvlm.errors import ECGVLMError

PRESETS = ("paper", "language", "partial", "regex")
_SCOPES = {
    "paper": r"^model\.(vision_model|multi_modal_projector|language_model)\b",
    "language": r"^model\.language_model\.",
}


@dataclass
class LoraSettings:
    r: int = 64
    alpha: int = 128
    dropout: float = 0.05


def lora_targets(model, preset: str, target_regex: str | None = None) -> list[str]:
    """Full names of the ``nn.Linear`` modules a LoRA preset adapts (``lm_head`` never)."""
    import torch.nn as nn

    if preset == "regex":
        if not target_regex:
            raise ECGVLMError("tuning 'regex' needs lora.target_regex")
        try:
            pattern = re.compile(target_regex)
        except re.error as e:
            raise ECGVLMError(f"lora.target_regex is not a valid regex: {e}") from None
    elif preset in _SCOPES:
        pattern = re.compile(_SCOPES[preset])
    else:
        raise ECGVLMError(f"unknown LoRA preset {preset!r}; choose one of {', '.join(PRESETS)}")
    names = [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and not n.endswith("lm_head") and pattern.search(n)
    ]
    if not names:
        raise ECGVLMError(f"tuning {preset!r} matches no linear layer of this model")
    return names


def partial_names(model) -> list[str]:
    """Parameters the ``partial`` preset trains: the projector and the cross-attention decoder layers."""
    layers = model.config.text_config.cross_attention_layers
    prefixes = ("model.multi_modal_projector.",) + tuple(f"model.language_model.layers.{i}." for i in layers)
    return [n for n, _ in model.named_parameters() if n.startswith(prefixes)]


def lora_param_count(model, targets: list[str], r: int) -> int:
    """LoRA parameters analytically: r * (in + out) per adapted linear (works on the meta device)."""
    modules = dict(model.named_modules())
    return sum(r * (modules[n].in_features + modules[n].out_features) for n in targets)


def apply_tuning(
    model, preset: str = "paper", lora: LoraSettings | None = None, target_regex: str | None = None
):
    """Freeze the model and make the preset's parameters trainable; returns the model to train.

    LoRA presets return a ``peft.PeftModel``; ``partial`` returns the model itself.
    """
    lora = lora or LoraSettings()
    for p in model.parameters():
        p.requires_grad_(False)
    if preset == "partial":
        names = set(partial_names(model))
        for n, p in model.named_parameters():
            if n in names:
                p.requires_grad_(True)
        out = model
    else:
        from peft import LoraConfig, get_peft_model

        targets = lora_targets(model, preset, target_regex)
        config = LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets, bias="none"
        )
        out = get_peft_model(model, config)
    for n, p in out.named_parameters():
        if ("embed_tokens" in n or "lm_head" in n) and p.requires_grad:
            raise AssertionError(f"{n} must stay frozen")
    for n, _ in out.named_modules():
        assert "lm_head.lora" not in n and "embed_tokens.lora" not in n, n
    return out


def trainable_summary(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = total = 0
    for p in model.parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def describe_trainable(model, preset: str) -> str:
    trainable, total = trainable_summary(model)
    return f"tuning {preset}: trainable params {trainable:,} of {total:,} ({100 * trainable / total:.4f}%)"
