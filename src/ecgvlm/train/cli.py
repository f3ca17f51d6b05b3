"""Fine-tune an Mllama model (LoRA or partial) from a YAML recipe.

Examples:
  ecgvlm train --config configs/tiny_cpu.yaml data.train=data/ecg/train.json
  ecgvlm train --config configs/tiny_cpu.yaml lora.r=16 train.max_steps=20 output_dir=runs/r16
  ecgvlm train --config configs/tiny_cpu.yaml --resume          # continue from the latest checkpoint
  accelerate launch --num_processes 4 -m ecgvlm train --config configs/paper_lora_11b.yaml \\
      model.path=/models/Llama-3.2-11B-Vision-Instruct data.train=data/ecginstruct/train.json
  torchrun --nproc_per_node 2 -m ecgvlm train --config configs/tiny_cpu.yaml model.path=tiny   # CPUs: gloo
  ecgvlm train --config configs/tiny_cpu.yaml data.val=data/ecg/val.json train.eval_every=50 \\
      train.report_to=mlflow                                      # best adapter kept in OUTPUT/best

Overrides are dotted `section.key=value` pairs (YAML values). tuning=paper|language|partial|regex.
The output folder gets the PEFT adapter (adapter_model.safetensors + adapter_config.json) or,
for tuning=partial, partial_model.safetensors; the processor; config.yaml (resolved);
train_log.jsonl (loss per step: the mean over accumulated micro-batches and processes; val_loss
where validated); tensorboard/ (or W&B / MLflow: train.report_to); checkpoints/ (atomic, for
--resume); README.md, a Hugging Face model card (card.json: its inputs; `ecgvlm card` adds scores);
best/ with train.eval_every (the adapter with the lowest validation loss).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="recipe YAML, e.g. configs/tiny_cpu.yaml")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in output_dir"
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. lora.r=16")


def main(args) -> int:
    from ecgvlm.train.config import load_config
    from ecgvlm.train.recipe import train

    cfg = load_config(args.config, args.overrides)
    out = train(cfg, resume=args.resume)
    print(f"wrote {out}")
    return 0
