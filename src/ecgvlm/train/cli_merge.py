"""Merge a trained LoRA adapter (or partial weights) into its base: one plain Mllama checkpoint.

External engines (SGLang, TGI, ...) serve the merged folder; vLLM never supported LoRA on Mllama.
Example:
  ecgvlm merge --base runs/train/tiny-base --adapter runs/train --out runs/merged
  ecgvlm merge --adapter runs/train --out runs/merged        # base read from adapter_config.json
  ecgvlm merge --adapter runs/train --out runs/merged --dtype bfloat16 --metrics runs/eval/metrics.json

The merged weights keep the base's dtype unless --dtype says otherwise. The folder gets a model
card (README.md; --metrics adds scores), the base's licence files and a tokenizer that
transformers 4.45+ and 5.x both load. Serving it on SGLang: docs/deploy_sglang.md.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", default=None, help="base model folder (default: the one the adapter names)")
    parser.add_argument(
        "--adapter", required=True, help="training output folder (adapter or partial weights)"
    )
    parser.add_argument("--out", required=True, help="folder for the merged model (safetensors)")
    parser.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="dtype of the merged weights (default: the dtype the base is stored in)",
    )
    parser.add_argument(
        "--metrics",
        default=None,
        help="metrics.json of an `ecgvlm score` of the adapter: its results go into the model card",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier merge in --out (never other files)"
    )


def main(args) -> int:
    from ecgvlm.train.merge import merge

    out = merge(
        args.base, args.adapter, args.out, dtype=args.dtype, overwrite=args.overwrite, metrics=args.metrics
    )
    print(f"wrote {out}")
    return 0
