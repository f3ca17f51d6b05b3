"""Pretrain the tiny Mllama base on trace-reading tasks (never diagnoses) and write it as fp16.

The shipped default base (``ecgvlm/model/tiny_base``) was made by this command; its MODEL_CARD.md
states the exact call. The run is deterministic: the same seed, steps and geometry give the same
weights, byte for byte, on a CPU with one thread (the default). A GPU is faster (not bit-equal).

examples:
  ecgvlm pretrain-base --out runs/base --steps 800 --vision-steps 1200   # the shipped recipe (card)
  ecgvlm pretrain-base --out runs/base --minutes 20            # step count fixed from the speed
  ecgvlm pretrain-base --out runs/base --steps 800 --vision-steps 1200 --resume   # after a kill
  ecgvlm pretrain-base --out runs/b --steps 500 --device cuda
  ecgvlm pretrain-base --out runs/b3 --from-base runs/base --text-steps 400   # stage 3 alone

The output folder holds config.json + model.safetensors (fp16) + the processor, pretrain.json
(settings, loss per step, per-task exact match on held-out examples) and loss.png. Checkpoints go to
OUT/_work/checkpoints every --save-every steps; --resume continues from the latest one. A running
decay-free phase may be resumed with a different --steps (before its last --decay-frac part).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ecgvlm.train.pretrain import DEFAULT_GEOMETRY, GEOMETRIES, PretrainConfig

    d = PretrainConfig()
    parser.add_argument("--out", required=True, help="output folder (a fresh one, or the run to --resume)")
    parser.add_argument(
        "--overwrite", action="store_true", help="start --out over when it holds an earlier pretrain-base run"
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help="optimizer steps (reproducible)")
    budget.add_argument(
        "--minutes", type=float, default=None, help="time budget; fixes --steps after 20 steps"
    )
    parser.add_argument("--device", default="cpu", help="cpu (bit-reproducible) or cuda")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/_work/checkpoints")
    parser.add_argument("--geometry", default=DEFAULT_GEOMETRY, choices=sorted(GEOMETRIES))
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr, help="peak AdamW learning rate")
    parser.add_argument("--warmup", type=int, default=d.warmup)
    parser.add_argument(
        "--decay-frac", type=float, default=d.decay_frac, help="cosine decay over this last part"
    )
    parser.add_argument(
        "--yesno-fraction",
        type=float,
        default=d.yesno_fraction,
        help="share of balanced yes/no questions about ECG pages (they teach the text model to use the image)",
    )
    parser.add_argument(
        "--first-task-steps",
        type=int,
        default=d.first_task_steps,
        help=f"stage 2 opens with this many steps of one yes/no question ({d.first_task}) to start the image path",
    )
    parser.add_argument(
        "--ecg-fraction",
        type=float,
        default=d.ecg_fraction,
        help="of the other examples, the share of ECG measurement questions (the rest: generic pages)",
    )
    parser.add_argument("--record-pool", type=int, default=d.record_pool, help="distinct synthetic ECGs")
    parser.add_argument("--save-every", type=int, default=d.save_every)
    parser.add_argument("--threads", type=int, default=d.threads, help="torch threads (results depend on it)")
    parser.add_argument("--eval-examples", type=int, default=d.eval_examples, help="held-out exact-match set")
    parser.add_argument(
        "--vision-steps",
        type=int,
        default=d.vision_steps,
        help="stage 1: steps of the vision tower alone on trace measurements (then frozen); 0 skips it",
    )
    parser.add_argument(
        "--text-steps",
        type=int,
        default=d.text_steps,
        help="stage 3: steps of report language modelling, text only (the base learns to write reports); 0 skips it",
    )
    parser.add_argument("--text-batch-size", type=int, default=d.text_batch_size)
    parser.add_argument("--text-lr", type=float, default=d.text_lr)
    parser.add_argument(
        "--from-base",
        metavar="DIR",
        help="run stage 3 only, on this exported base (e.g. the shipped one), into --out",
    )
    parser.add_argument("--vision-batch-size", type=int, default=d.vision_batch_size)
    parser.add_argument("--vision-lr", type=float, default=d.vision_lr)
    parser.add_argument("--no-progress", action="store_true")


def main(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # bit-reproducible MKL kernels (before torch loads)
    from ecgvlm.errors import ECGVLMError
    from ecgvlm.train.pretrain import PretrainConfig, pretrain

    if args.from_base:
        from pathlib import Path

        from ecgvlm.train.pretrain_text import text_stage

        out = Path(args.out)
        if args.text_steps < 1:
            raise ECGVLMError("--from-base runs stage 3 only: give --text-steps N")
        from ecgvlm.outputs import claim_output_dir

        claim_output_dir(out, "pretrain-base", overwrite=args.overwrite, resume=False)
        text_stage(Path(args.from_base), out, args.seed, args.text_steps, args.text_batch_size, args.text_lr,
                   args.threads, args.device, not args.no_progress)  # fmt: skip
        print(f"wrote {out}")
        return 0
    if args.steps is None and args.minutes is None and not args.resume:
        raise ECGVLMError("give --steps N or --minutes M")
    if args.steps is not None and args.steps < 1:
        raise ECGVLMError("--steps must be >= 1")
    cfg = PretrainConfig(
        seed=args.seed,
        steps=args.steps,
        minutes=args.minutes,
        geometry=args.geometry,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup=args.warmup,
        decay_frac=args.decay_frac,
        ecg_fraction=args.ecg_fraction,
        yesno_fraction=args.yesno_fraction,
        first_task_steps=args.first_task_steps,
        record_pool=args.record_pool,
        save_every=args.save_every,
        threads=args.threads,
        device=args.device,
        eval_examples=args.eval_examples,
        vision_steps=args.vision_steps,
        vision_batch_size=args.vision_batch_size,
        vision_lr=args.vision_lr,
        text_steps=args.text_steps,
        text_batch_size=args.text_batch_size,
        text_lr=args.text_lr,
    )
    out = pretrain(cfg, args.out, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
