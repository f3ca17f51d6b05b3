"""Fold a LoRA adapter (or partial weights) into the base weights and save a plain checkpoint.

The merge is computed in fp32 and stored in the base's dtype unless told otherwise: an fp16 or
bf16 base stays that size (a merged 11B in fp32 would be ~44 GB). The folder gets a model card,
the base's licence files and a tokenizer that transformers 4.45+ and 5.x both load.
"""

from __future__ import annotations

from pathlib import Path

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import atomic_dir, share_files
from ecgvlm.outputs import check_output_dir, mark

DTYPES = ("float32", "bfloat16", "float16")


def merge(
    base: str | Path | None,
    adapter: str | Path,
    out: str | Path,
    dtype: str | None = None,
    overwrite: bool = False,
    metrics: str | Path | None = None,
) -> Path:
    """Write the merged model to ``out``: a new folder, or an earlier merge's with ``overwrite``.

    ``dtype`` (float32 | bfloat16 | float16) defaults to the dtype the base is stored in;
    ``metrics`` is an ``ecgvlm score`` metrics.json of the adapter (or of this merge) for the card.
    """
    import torch

    from ecgvlm.model.card import copy_licence_files, load_metrics, write_model_card
    from ecgvlm.model.load import base_of, load_model_and_processor, stored_dtype
    from ecgvlm.model.tokenizer import make_tokenizer_portable
    from ecgvlm.train.cards import merged_card_info

    adapter, out = Path(adapter), Path(out)
    if dtype is not None and dtype not in DTYPES:
        raise ECGVLMError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    # checked before the model loads: what atomic_dir replaces at the end is an earlier merge of
    # ours or an empty folder
    check_output_dir(out, "merge", overwrite=overwrite, resume=False)
    base = Path(base) if base else base_of(adapter)
    if base is None:
        raise ECGVLMError("cannot tell the base model: pass --base", adapter)
    dtype = dtype or stored_dtype(base)
    scores = load_metrics(metrics, [adapter, out]) if metrics else None
    # merged in fp32 (W + BA without rounding the sum twice), then stored in the target dtype
    model, processor = load_model_and_processor(base, adapter=adapter, dtype=torch.float32, device="cpu")
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model = model.to(getattr(torch, dtype))
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        processor.save_pretrained(str(tmp))
        make_tokenizer_portable(tmp)
        copy_licence_files(base, tmp)
        write_model_card(tmp, merged_card_info(adapter, base, out, dtype, scores))
        mark(tmp, "merge")
        share_files(tmp)
    return out
