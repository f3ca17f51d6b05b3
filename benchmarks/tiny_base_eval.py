"""Does the shipped tiny base learn ECG superclasses with the paper's LoRA on a CPU? Prints the table.

Harness (reference.md section 7): one superclass per record from 8 synthetic conditions (NORM;
IMI, ASMI -> MI; ISC_, ISCAL -> STTC; CLBBB, CRBBB -> CD; LVH -> HYP), classes drawn uniformly,
pages rendered by ``ecgvlm.render`` in the "tiny" style (40 dpi, 50 mm/s, 20 mm/mV, no header; what
``ecgvlm dataset build --style tiny`` and ``ecgvlm demo`` write), 3,000 training and 400 test records from different seeds, the
instruct stage's superclass questions, answer = the code. Score per class = the first-token
probability of each code at the answer start (``ecgvlm.model.infer.option_probs(mode="first")``),
ranking AUC per class (one-vs-rest), macro mean.

Runs (same data, same scoring, one torch thread each):
  zero-shot   the base as shipped
  lora        paper preset (every linear but lm_head; r64/a128/.05), AdamW lr 2e-4 (the paper's), cosine, bs 8
  full        full fine-tuning (random base only; the reference's strongest LLM baseline)
Budgets are step counts: the steps that fit in --minutes on an idle machine at the measured speed
(--steps-lora / --steps-full override), so a busy machine changes the wall time, not the result.

    python benchmarks/tiny_base_eval.py --data /tmp/sc --runs zero,lora --base src/ecgvlm/model/tiny_base \
        --probe-every 200          # + a learning curve on the first 200 test pages
    python benchmarks/tiny_base_eval.py --data /tmp/sc --runs lora,full --base random
    ecgvlm cnn train --data /tmp/sc --out /tmp/sc/cnn15 --minutes 15 --threads 1   (then `cnn eval`;
        --runs cnn --cnn-pred RUN/predictions.jsonl reads it)

Results append to DATA/results.jsonl; `--table` prints everything there.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

CONDITIONS = {
    "NORM": ["NORM"],
    "MI": ["IMI", "ASMI"],
    "STTC": ["ISC_", "ISCAL"],
    "CD": ["CLBBB", "CRBBB"],
    "HYP": ["LVH"],
}
CODES = ["NORM", "MI", "STTC", "CD", "HYP"]


def build_data(out: Path, n_train: int, n_test: int, seed: int) -> None:
    """Pages + train.json/test.json in the instruct row format (the CNN reads the same files)."""
    from ecgvlm.instruct.tasks import SUPERCLASS_Q
    from ecgvlm.io import atomic_write_json
    from ecgvlm.render import RenderStyle, render
    from ecgvlm.signals.synth import synthesize_record

    if (out / "test.json").is_file():
        return
    (out / "images").mkdir(parents=True, exist_ok=True)
    for split, n, s in (("train", n_train, seed), ("test", n_test, seed + 1)):
        rows = []
        for i in range(n):
            rng = np.random.default_rng([s, i, 99])
            cls = CODES[int(rng.integers(5))]
            cond = CONDITIONS[cls][int(rng.integers(len(CONDITIONS[cls])))]
            rec = synthesize_record(20_000 + s, i, conditions=[cond])
            page = render(rec, layout="3x4+1", augment="none", seed=i, style=RenderStyle.preset("tiny"))
            rel = f"images/{split}-{i:05d}.png"
            page.image.save(out / rel)
            q = SUPERCLASS_Q[int(rng.integers(len(SUPERCLASS_Q)))]
            rows.append(
                {
                    "id": f"{split}-{i:05d}",
                    "image": rel,
                    "conversations": [
                        {"from": "human", "value": "<image>\n" + q},
                        {"from": "gpt", "value": cls},
                    ],
                    "metadata": {
                        "subtask": "superclass",
                        "type": "close",
                        "source": "synth",
                        "gold": {"superclasses": [cls], "scp": {cond: 100.0}, "answer": cls},
                    },
                }  # fmt: skip
            )
        atomic_write_json(out / f"{split}.json", rows)
    # the CNN wants a val split; it only selects the epoch, so the train rows' tail is enough
    atomic_write_json(out / "val.json", json.loads((out / "train.json").read_text())[-200:])


def load_split(data: Path, split: str):
    from PIL import Image

    rows = json.loads((data / f"{split}.json").read_text())
    images = [Image.open(data / r["image"]).convert("RGB") for r in rows]
    prompts = [r["conversations"][0]["value"] for r in rows]
    answers = [r["conversations"][1]["value"] for r in rows]
    return images, prompts, answers


def macro_auc(probs: np.ndarray, answers: list[str]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    y = np.array([CODES.index(a) for a in answers])
    per = {c: float(roc_auc_score(y == k, probs[:, k])) for k, c in enumerate(CODES)}
    per["macro"] = float(np.mean([per[c] for c in CODES]))
    return per


def score(model, processor, images, prompts, answers) -> dict[str, float]:
    import torch

    from ecgvlm.model.infer import option_probs

    model.eval()
    with torch.no_grad():
        probs = option_probs(model, processor, images, prompts, CODES, mode="first")
    out = macro_auc(probs, answers)
    out["accuracy"] = float(np.mean(probs.argmax(1) == np.array([CODES.index(a) for a in answers])))
    return out


def load_base(base: str, workdir: Path):
    """(model fp32, processor); ``random`` builds the random tiny preset (same geometry as the card's)."""
    import torch
    from transformers import MllamaForConditionalGeneration

    from ecgvlm.model.load import load_processor

    if base == "random":
        from ecgvlm.train.pretrain import PretrainConfig, build_base

        path = workdir / "random_base"
        if not (path / "config.json").is_file():
            build_base(path, PretrainConfig(seed=0))
    else:
        path = Path(base)
    model = MllamaForConditionalGeneration.from_pretrained(
        str(path), dtype=torch.float32, local_files_only=True, use_safetensors=True
    )
    return model, load_processor(path)


def train(model, processor, data, steps: int, lr: float, bs: int, seed: int, label: str, probe=None, every=0):
    """AdamW + warm-up + cosine over ``steps`` batches of a seeded permutation.

    ``probe(model) -> macro AUC`` runs every ``every`` steps (0: never); returns (model, s/step, curve)
    where curve lists (step, macro) and the s/step excludes the probes."""
    import torch

    from ecgvlm.model.chat import Collator
    from ecgvlm.train.pretrain import encode

    images, prompts, answers = data
    items = [encode(processor.tokenizer, p.replace("<image>\n", ""), a) for p, a in zip(prompts, answers)]
    collate = Collator(processor, pad_to_multiple_of=8)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm)))
        ),
    )
    g = torch.Generator().manual_seed(seed)
    order: list[int] = []
    model.train()
    t0 = time.time()
    curve: list[tuple[int, float]] = []
    probe_s = 0.0
    for step in range(steps):
        if len(order) < bs:
            order += torch.randperm(len(items), generator=g).tolist()
        idx, order = order[:bs], order[bs:]
        batch = collate([{"input_ids": items[i][0], "labels": items[i][1], "image": images[i]} for i in idx])
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(
                f"  [{label}] step {step + 1}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f} s)",
                flush=True,
            )
        if probe is not None and every and (step + 1) % every == 0 and step + 1 < steps:
            tp = time.time()
            curve.append((step + 1, round(probe(model), 4)))
            model.train()
            probe_s += time.time() - tp
            print(f"  [{label}] step {step + 1}: probe macro AUC {curve[-1][1]:.3f}", flush=True)
    return model, (time.time() - t0 - probe_s) / max(1, steps), curve


def cnn_scores(cnn_pred: Path, answers_by_id: dict[str, str]) -> dict[str, float]:
    rows = [json.loads(line) for line in cnn_pred.read_text().splitlines() if line.strip()]
    probs = np.array([[r["scores"][c] for c in CODES] for r in rows])
    return macro_auc(probs, [answers_by_id[r["id"]] for r in rows])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="folder for the superclass set (built once)")
    ap.add_argument("--base", default="src/ecgvlm/model/tiny_base", help="a base folder, or 'random'")
    ap.add_argument("--runs", default="zero,lora", help="comma list of zero, lora, full, cnn")
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-test", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--steps-lora", type=int, default=None, help="default: what --minutes allows at --sps-lora"
    )
    ap.add_argument("--steps-full", type=int, default=None)
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument(
        "--sps-lora", type=float, default=0.70, help="idle-machine s/step of LoRA (bs 8, 1 thread)"
    )
    ap.add_argument("--sps-full", type=float, default=0.45, help="idle-machine s/step of full FT")
    ap.add_argument(
        "--lr-lora",
        type=float,
        default=2e-4,
        help="the paper's 2e-4 (default); 1e-3 collapses on the pretrained base",
    )
    ap.add_argument("--lr-full", type=float, default=5e-4)
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-seed", type=int, default=None, help="batch order (default: --seed)")
    ap.add_argument("--n-probe", type=int, default=200, help="test pages scored by --probe-every")
    ap.add_argument(
        "--probe-every", type=int, default=0, help="score the first --n-probe test pages every N steps"
    )
    ap.add_argument("--tag", default="", help="a label stored with the result row")
    ap.add_argument("--cnn-pred", type=Path, default=None, help="predictions.jsonl of `ecgvlm cnn eval`")
    ap.add_argument("--table", action="store_true", help="print DATA/results.jsonl and exit")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    results = args.data / "results.jsonl"
    if args.table:
        print_table(results)
        return 0
    t = time.time()
    build_data(args.data, args.n_train, args.n_test, args.seed)
    print(f"data ready in {time.time() - t:.0f} s: {args.data}", flush=True)
    test = load_split(args.data, "test")
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    base_name = "random" if args.base == "random" else Path(args.base).name
    train_seed = args.seed if args.train_seed is None else args.train_seed
    k = args.n_probe

    def probe(model) -> float:
        return score(model, proc, test[0][:k], test[1][:k], test[2][:k])["macro"]

    for run in runs:
        t = time.time()
        row: dict = {"base": base_name if run != "cnn" else "-", "run": run, "tag": args.tag}
        if run in ("lora", "full"):
            row["train_seed"] = train_seed
        if run == "cnn":
            ids = json.loads((args.data / "test.json").read_text())
            row |= cnn_scores(args.cnn_pred, {r["id"]: r["conversations"][1]["value"] for r in ids})
        else:
            model, proc = load_base(args.base, args.data)
            if run == "lora":
                from ecgvlm.model.tuning import LoraSettings, apply_tuning, describe_trainable

                model = apply_tuning(model, "paper", LoraSettings(r=64, alpha=128, dropout=0.05))
                print(describe_trainable(model, "paper"), flush=True)
                steps = args.steps_lora or int(args.minutes * 60 / args.sps_lora)
                lr = args.lr_lora
            elif run == "full":
                steps = args.steps_full or int(args.minutes * 60 / args.sps_full)
                lr = args.lr_full
            if run in ("lora", "full"):
                model, sps, curve = train(
                    model, proc, load_split(args.data, "train"), steps, lr, args.bs, train_seed, run,
                    probe, args.probe_every,
                )  # fmt: skip
                row |= {"steps": steps, "lr": lr, "s_per_step": round(sps, 3), "curve": curve}
            row |= score(model, proc, *test)
        row["wall_s"] = round(time.time() - t, 1)
        print(json.dumps(row), flush=True)
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")
    print_table(results)
    return 0


def print_table(results: Path) -> None:
    if not results.is_file():
        print("no results yet")
        return
    rows = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
    head = f"| {'base':<10} | {'run':<5} | {'tag':<8} | {'lr':>6} | {'steps':>5} | "
    print(head + " | ".join(f"{c:>5}" for c in CODES) + " | macro |")
    print("|" + "---|" * (len(CODES) + 6))
    for r in rows:
        cells = " | ".join(f"{r[c]:.3f}" for c in CODES)
        lr = f"{r['lr']:.0e}" if "lr" in r else ""
        print(
            f"| {r['base']:<10} | {r['run']:<5} | {r.get('tag', ''):<8} | {lr:>6} | {r.get('steps', ''):>5} | "
            f"{cells} | {r['macro']:.3f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
