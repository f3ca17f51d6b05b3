"""Add the results of an `ecgvlm score` to the model card of a trained adapter or a merged model.

Examples:
  ecgvlm evaluate --model runs/lora --data data/ds/test.json --out runs/eval
  ecgvlm score --predictions runs/eval/predictions.jsonl --benchmark ptbxl-super --mode strict
  ecgvlm card runs/lora --metrics runs/eval/metrics.json

The card (README.md, YAML `model-index`) is rendered again from the folder's card.json with the
metrics; the metrics must come from a run of this model (its run.json names the model folder).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="an `ecgvlm train` output (or its best/) or an `ecgvlm merge` output")
    parser.add_argument("--metrics", required=True, help="metrics.json written by `ecgvlm score`")


def main(args) -> int:
    from pathlib import Path

    from ecgvlm.errors import ECGVLMError
    from ecgvlm.model.card import load_metrics, read_card_inputs, write_model_card
    from ecgvlm.outputs import owner_of

    folder = Path(args.model)
    info = read_card_inputs(folder)
    # a training output's best/ adapter belongs to that output (its parent holds the marker)
    ours = owner_of(folder) in ("train", "merge") or (
        folder.name == "best" and owner_of(folder.parent) == "train"
    )
    if not ours or info is None:
        raise ECGVLMError("not an `ecgvlm train` or `ecgvlm merge` output with a card.json", folder)
    info["metrics"] = load_metrics(args.metrics, [folder])
    info.pop("schema", None)
    write_model_card(folder, info)
    print(f"wrote {folder / 'README.md'}")
    return 0
