"""Fold a LoRA adapter (or partial weights) into the base weights and save a plain checkpoint."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import share_files
from ecgvlm.outputs import check_output_dir, mark


def merge(
    base: str | Path | None,
    adapter: str | Path,
    out: str | Path,
    dtype: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the merged model to ``out``: a new folder, or an earlier merge's with ``overwrite``."""
    import torch

    from ecgvlm.model.load import base_of, load_model_and_processor

    adapter, out = Path(adapter), Path(out)
    # checked before the model loads; the folder is replaced whole at the end
    ours = check_output_dir(out, "merge", overwrite=overwrite, resume=False)
    base = Path(base) if base else base_of(adapter)
    if base is None:
        raise ECGVLMError("cannot tell the base model: pass --base", adapter)
    torch_dtype = getattr(torch, dtype) if dtype else None
    model, processor = load_model_and_processor(base, adapter=adapter, dtype=torch_dtype, device="cpu")
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    processor.save_pretrained(str(tmp))
    mark(tmp, "merge")
    share_files(tmp)
    if ours:
        shutil.rmtree(out)
    elif out.is_dir():
        out.rmdir()  # empty (checked above)
    os.replace(tmp, out)
    return out
