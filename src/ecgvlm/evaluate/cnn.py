"""The CNN baseline: a small ResNet trained on the same page images and splits as the LLM.

Multi-label over the 5 PTB-XL superclasses (NORM, MI, STTC, CD, HYP), optionally also the 71
SCP statements (--head scp). Labels come from each row's metadata.gold; every image is used once
however many questions it has. Weights are saved as safetensors with a JSON config.

`cnn eval` writes predictions.jsonl in the same format as `ecgvlm evaluate` for the test file's
"superclass" rows (and "scp" rows for --head scp models): the prediction is the codes whose
probability is >= --threshold, joined by ", " (empty if none); `scores` holds every probability.
So `ecgvlm score` and `ecgvlm table` treat the CNN like any model run.

examples:
  ecgvlm cnn train --data runs/ds --out runs/cnn --minutes 3
  ecgvlm cnn train --data runs/ds --out runs/cnn --epochs 20 --seed 1 --image-size 224
  ecgvlm cnn eval --model runs/cnn --data runs/ds/test.json --out runs/cnn-test
  ecgvlm cnn eval --model runs/cnn --data runs/ds/val.json --out runs/cnn-val
  ecgvlm score --predictions runs/cnn-test/predictions.jsonl --benchmark ptbxl-super --mode strict \
      --val-predictions runs/cnn-val/predictions.jsonl

A killed `cnn train` resumes from its last finished epoch when rerun with the same options.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{train,eval}")
    t = sub.add_parser("train", help="train the CNN on DIR/train.json (model selection on DIR/val.json)")
    t.add_argument("--data", required=True, help="dataset folder holding train.json/val.json and images/")
    t.add_argument("--out", default="runs/cnn", help="run folder to write (default: runs/cnn)")
    t.add_argument("--minutes", type=float, default=None, help="time budget; sizes the schedule to fit it")
    t.add_argument(
        "--epochs", type=int, default=30, help="epochs (an upper bound with --minutes; default 30)"
    )
    t.add_argument("--image-size", type=int, default=224, help="pages are resized to N x N (default 224)")
    t.add_argument("--head", choices=["superclass", "scp"], default="superclass", help="5 or 5+71 labels")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (cosine, warm-up 5%%)")
    t.add_argument("--weight-decay", type=float, default=0.05)
    t.add_argument("--shift", type=int, default=6, help="random translation augmentation in px (0: off)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (results depend on it)")
    t.add_argument("--no-progress", action="store_true")

    e = sub.add_parser("eval", help="write predictions.jsonl for a test file")
    e.add_argument("--model", required=True, help="a `cnn train` run folder")
    e.add_argument("--data", required=True, help="test split file (test.json or .jsonl)")
    e.add_argument("--out", required=True, help="run folder for predictions.jsonl")
    e.add_argument("--threshold", type=float, default=0.5, help="probability for a code to be predicted")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--no-progress", action="store_true")


def evaluate_cnn(
    model_dir: str | Path,
    test_path: str | Path,
    out_dir: str | Path,
    threshold: float = 0.5,
    batch_size: int = 64,
    progress: bool = True,
) -> dict:
    """Write ``out_dir/predictions.jsonl`` (and run.json); returns per-class test AUC on superclasses."""
    import numpy as np

    from ecgvlm.errors import ECGVLMError
    from ecgvlm.evaluate.cnn_data import SCP_PREFIX, ImageSet, load_pixels, row_labels
    from ecgvlm.evaluate.cnn_train import load_cnn, macro, per_class_auc, predict
    from ecgvlm.evaluate.generate import PREDICTIONS, prediction_record, read_rows
    from ecgvlm.io import atomic_write_json, write_jsonl
    from ecgvlm.outputs import claim_output_dir
    from ecgvlm.signals.vocab import SUPERCLASSES

    out_dir = claim_output_dir(out_dir, "cnn eval", legacy=["run.json"])
    model = load_cnn(model_dir)
    labels = model.config.labels
    # task -> {code written in scores: model label}
    tasks = {"superclass": {c: c for c in SUPERCLASSES}}
    scp = {name[len(SCP_PREFIX) :]: name for name in labels if name.startswith(SCP_PREFIX)}
    if scp:
        tasks["scp"] = scp
    test_path = Path(test_path)
    rows = [r for r in read_rows(test_path) if r.task in tasks]
    if not rows:
        raise ECGVLMError(f"no rows with metadata.subtask in {sorted(tasks)}", test_path)
    images = list(dict.fromkeys(r.image for r in rows))
    pixels = load_pixels(
        ImageSet(test_path.parent, images, np.zeros((len(images), 0))), model.config.image_size, progress
    )
    probs = predict(model, pixels, batch_size, progress)
    col = {name: j for j, name in enumerate(labels)}
    where = {name: i for i, name in enumerate(images)}

    out = []
    for row in rows:
        p = probs[where[row.image]]
        scores = {c: round(float(p[col[name]]), 6) for c, name in tasks[row.task].items()}
        text = ", ".join(c for c, s in scores.items() if s >= threshold)
        out.append(prediction_record(row, text, scores))
    out_dir = Path(out_dir)
    write_jsonl(out_dir / PREDICTIONS, out)
    atomic_write_json(
        out_dir / "run.json",
        {
            "kind": "cnn",
            "model": str(model_dir),
            "data": str(test_path),
            "threshold": threshold,
            "rows": len(out),
        },
    )

    # Per-image AUC on the superclass head, for a quick look (`ecgvlm score` is the real scorer).
    targets, picked = [], []
    seen = set()
    for row in rows:
        got = row_labels(row)
        if row.task != "superclass" or got is None or row.image in seen:
            continue
        seen.add(row.image)
        targets.append([c in got[0] for c in SUPERCLASSES])
        picked.append([probs[where[row.image], col[c]] for c in SUPERCLASSES])
    aucs = (
        per_class_auc(np.array(targets, dtype=np.float32), np.array(picked), list(SUPERCLASSES))
        if targets
        else {}
    )
    return {"rows": len(out), "images": len(images), "auc": aucs, "macro_auc": macro(aucs)}


def main(args: argparse.Namespace) -> int:
    import torch

    from ecgvlm.errors import ECGVLMError

    if args.threads < 1:
        raise ECGVLMError("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    if args.action == "train":
        from ecgvlm.evaluate.cnn_train import TrainOptions, train

        if args.epochs < 1 or args.batch_size < 2 or args.image_size < 32:
            raise ECGVLMError("need --epochs >= 1, --batch-size >= 2, --image-size >= 32")
        if args.minutes is not None and args.minutes <= 0:
            raise ECGVLMError("--minutes must be positive")
        opts = TrainOptions(
            epochs=args.epochs,
            minutes=args.minutes,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            shift=args.shift,
            seed=args.seed,
            threads=args.threads,
        )
        cfg = train(
            args.data,
            args.out,
            opts,
            head=args.head,
            image_size=args.image_size,
            progress=not args.no_progress,
        )
        best = cfg["best_val_macro_auc_superclass"]
        print(
            f"wrote {args.out}/model.safetensors ({cfg['n_parameters']:,} parameters, {cfg['steps']} steps, "
            f"best epoch {cfg['best_epoch']}" + (f", val macro AUC {best:.4f})" if best is not None else ")")
        )
        return 0
    res = evaluate_cnn(args.model, args.data, args.out, args.threshold, args.batch_size, not args.no_progress)
    print(f"wrote {args.out}/predictions.jsonl ({res['rows']} rows, {res['images']} images)")
    for code, auc in res["auc"].items():
        print(f"  {code:<5} AUC {'n/a' if auc is None else f'{auc:.4f}'}")
    if res["macro_auc"] is not None:
        print(f"  macro AUC {res['macro_auc']:.4f}")
    return 0
