"""Load any Mllama checkpoint (the tiny preset or the real 11B) from a local folder. Never the network."""

from __future__ import annotations

import json
from pathlib import Path

from ecgvlm.errors import ECGVLMError

PARTIAL_WEIGHTS = "partial_model.safetensors"  # written by the `partial` tuning preset


def _check_dir(path: str | Path) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ECGVLMError("not a model folder (no config.json); name a local Mllama checkpoint", path)
    return path


def default_dtype(device: str | None):
    import torch

    return torch.bfloat16 if device and str(device).startswith("cuda") else torch.float32


def load_model(path: str | Path, dtype=None, device: str | None = None, attn: str = "sdpa"):
    """``MllamaForConditionalGeneration`` from a local folder (safetensors only), in eval mode."""
    from transformers import MllamaForConditionalGeneration

    path = _check_dir(path)
    try:
        model = MllamaForConditionalGeneration.from_pretrained(
            str(path),
            dtype=dtype or default_dtype(device),
            local_files_only=True,
            use_safetensors=True,
            attn_implementation=attn,
        )
    except (OSError, ValueError, KeyError) as e:
        raise ECGVLMError(f"cannot load an Mllama model: {str(e).splitlines()[0]}", path) from None
    if device:
        model.to(device)
    return model.eval()


def load_processor(path: str | Path):
    """The ``MllamaProcessor`` saved beside a model (PIL image backend; no torchvision needed)."""
    import warnings

    from transformers import MllamaProcessor

    path = Path(path)
    if not (path / "processor_config.json").is_file() and not (path / "tokenizer.json").is_file():
        raise ECGVLMError("no processor here (processor_config.json / tokenizer.json)", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MllamaProcessor.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ECGVLMError(f"cannot load the processor: {str(e).splitlines()[0]}", path) from None


def base_of(adapter: str | Path) -> Path | None:
    """The base model folder an adapter/partial folder was trained from (recorded at training)."""
    import json

    for name in ("adapter_config.json", "partial_config.json"):
        f = Path(adapter) / name
        if f.is_file():
            base = json.loads(f.read_text()).get("base_model_name_or_path")
            return Path(base) if base else None
    return None


def load_model_and_processor(path: str | Path, adapter: str | Path | None = None, dtype=None, device=None):
    """A base model plus, optionally, a trained LoRA adapter or partial-tuning folder.

    ``path`` may also be a training output folder alone: its base is read from the adapter config.
    The processor comes from the adapter folder when it holds one (training saves it there).
    """
    path = Path(path)
    if adapter is None and not (path / "config.json").is_file() and base_of(path):
        adapter, path = path, base_of(path)
    model = load_model(path, dtype=dtype, device=device)
    proc_dir = path
    if adapter is not None:
        adapter = Path(adapter)
        if (adapter / "adapter_config.json").is_file():
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False).eval()
        elif (adapter / PARTIAL_WEIGHTS).is_file():
            load_partial(model, adapter / PARTIAL_WEIGHTS)
        else:
            raise ECGVLMError("no adapter_config.json or partial_model.safetensors here", adapter)
        shrink = adapter / "ecgvlm_model.json"
        if shrink.is_file():
            from ecgvlm.model.tiles import shrink_tiles

            shrink_tiles(
                model.get_base_model() if hasattr(model, "get_base_model") else model,
                json.loads(shrink.read_text())["max_num_tiles"],
            )
        if (adapter / "processor_config.json").is_file() or (adapter / "tokenizer.json").is_file():
            proc_dir = adapter
    return model, load_processor(proc_dir)


def load_partial(model, file: str | Path) -> None:
    """Copy fully-trained tensors (projector + cross-attention layers) into a base model."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(file))
    params = dict(model.named_parameters())
    missing = [k for k in tensors if k not in params]
    if missing:
        raise ECGVLMError(f"{len(missing)} tensors do not belong to this model, e.g. {missing[0]}", file)
    with torch.no_grad():
        for k, v in tensors.items():
            params[k].copy_(v.to(params[k].dtype))


_SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}


def stored_dtype(path: str | Path) -> str:
    """The floating dtype most of a checkpoint's tensors are stored in ("bfloat16", "float16", ...),
    read from the safetensors headers (no weights are loaded)."""
    import struct
    from collections import Counter

    path = _check_dir(path)
    index = path / "model.safetensors.index.json"
    if index.is_file():
        files = sorted({path / f for f in json.loads(index.read_text())["weight_map"].values()})
    else:
        files = [path / "model.safetensors"]
    counts: Counter = Counter()
    for f in files:
        try:
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
        except (OSError, struct.error, ValueError) as e:
            raise ECGVLMError(f"cannot read the safetensors header ({e})", f) from None
        for name, t in header.items():
            if name != "__metadata__" and t["dtype"] in _SAFETENSORS_DTYPES:
                counts[_SAFETENSORS_DTYPES[t["dtype"]]] += 1
    if not counts:
        raise ECGVLMError("no floating-point tensors in the checkpoint", path)
    return counts.most_common(1)[0][0]
