"""The parts the fine-tuning recipe is built from: seeding, precision, the base model (full
precision or 4-bit QLoRA), gradient checkpointing, the schedule, DeepSpeed, digests and memory.

Each is a plain function of the config (or the model), so a benchmark or another recipe can use
one without the training loop (`benchmarks/train_throughput.py` does).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from ecgvlm.errors import ECGVLMError
from ecgvlm.model.schedule import warmup_cosine
from ecgvlm.train.config import RecipeCfg


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_precision(cfg: RecipeCfg) -> str:
    p = cfg.train.precision
    if p == "auto":
        return "bf16" if torch.cuda.is_available() else "fp32"
    if p not in ("bf16", "fp32"):
        raise ECGVLMError(f"train.precision must be auto, bf16 or fp32, not {p!r}")
    return p


def base_model_dir(cfg: RecipeCfg, out: Path) -> Path:
    """The base model folder; ``tiny`` builds the random tiny preset (deterministic) once."""
    if cfg.model.path != "tiny":
        return Path(cfg.model.path).resolve()
    from ecgvlm.model.base import build_random_tiny

    target = out / "tiny-base"
    if not (target / "model.safetensors").is_file():
        build_random_tiny(target, seed=cfg.model.tiny_seed)
    return target.resolve()


def load_base(cfg: RecipeCfg, path: Path, precision: str, device: str):
    from ecgvlm.model.load import load_model

    if cfg.model.qlora:
        return load_qlora_base(path)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = load_model(path, dtype=dtype, device=None, attn=cfg.model.attn)
    if cfg.model.max_num_tiles:
        from ecgvlm.model.tiles import shrink_tiles

        shrink_tiles(model, cfg.model.max_num_tiles)
    return model


def load_qlora_base(path: Path):
    """A 4-bit NF4 base (bitsandbytes) for 24-48 GB GPUs. Refused on CPU."""
    if not torch.cuda.is_available():
        raise ECGVLMError("model.qlora=true needs a CUDA GPU (bitsandbytes 4-bit); use fp32 LoRA on CPU")
    try:
        from transformers import BitsAndBytesConfig, MllamaForConditionalGeneration
    except ImportError as e:
        raise ECGVLMError(f"model.qlora needs bitsandbytes: pip install 'ecgvlm[gpu]' ({e})") from None
    from peft import prepare_model_for_kbit_training

    q = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
        llm_int8_skip_modules=["lm_head", "multi_modal_projector", "vision_model.patch_embedding"],
    )
    model = MllamaForConditionalGeneration.from_pretrained(
        str(path), quantization_config=q, local_files_only=True, dtype=torch.bfloat16, device_map={"": 0}
    )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)


def enable_checkpointing(model, every_n_layers: int = 1) -> None:
    """Non-reentrant activation checkpointing (the reentrant kind breaks with frozen inputs / LoRA).

    ``every_n_layers`` > 1 keeps the activations of the other layers: faster, more memory.
    """
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs=kwargs, every_n_layers=every_n_layers
        )
    else:  # transformers < 5.2x
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False


def cosine_schedule(optimizer, warmup: int, total: int):
    """Warm-up, then a cosine to zero at ``total`` (``model.schedule.warmup_cosine``)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total, warmup))


def deepspeed_plugin(cfg: RecipeCfg, precision: str):
    """Fill the DeepSpeed JSON's "auto" fields from the recipe so the file alone decides nothing silently."""
    from accelerate.utils import DeepSpeedPlugin

    try:
        ds = json.loads(Path(cfg.deepspeed).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ECGVLMError(f"cannot read DeepSpeed config ({e})", cfg.deepspeed) from None
    fill = {
        "train_micro_batch_size_per_gpu": cfg.train.batch_size,
        "gradient_accumulation_steps": cfg.train.grad_accum,
        "gradient_clipping": cfg.train.max_grad_norm,
    }
    for k, v in fill.items():
        if ds.get(k, "auto") == "auto":
            ds[k] = v
    ds.pop("train_batch_size", None)  # derived by DeepSpeed from the two above and the world size
    ds.setdefault("bf16", {})["enabled"] = precision == "bf16"
    ds.setdefault("fp16", {})["enabled"] = False
    ds["zero_allow_untested_optimizer"] = True
    return DeepSpeedPlugin(hf_ds_config=ds)


# ---------------------------------------------------------------- digests and memory
def trainable_digest(model) -> str:
    """sha256 over the trainable tensors (by name, fp32 bytes): equal weights, equal digest."""
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def peak_memory_gib() -> float:
    """Peak accelerator memory (GPU) or the process's peak RSS (CPU), GiB."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ---------------------------------------------------------------- the run's state
