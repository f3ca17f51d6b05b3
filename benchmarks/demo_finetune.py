"""The demo's fine-tune alone, with recipe overrides, on an existing demo's base and data.

    python benchmarks/demo_finetune.py --run runs/demo --out runs/ft-lr3e-4 train.lr=3e-4
    python benchmarks/demo_finetune.py --run runs/demo --out runs/ft-open data.curriculum=superclass:2000

Trains LoRA with `ecgvlm demo`'s recipe (DEMO_RECIPE, 2,000 steps, lr 5e-4, opening
superclass+diagnosis:600 unless overridden; `train.seed` defaults to 0) on RUN/data/train.json from
RUN/model into OUT/adapter, then evaluates and scores it on RUN/data/test.json as the demo does
(OUT/eval). With the demo's settings this gives the demo's adapter byte for byte, so one setting
can be compared with another without rerunning the other stages. A finished adapter is reused;
an interrupted fine-tune resumes. Then `python benchmarks/superclass_top1.py --data RUN/data
--predictions OUT/eval/predictions.jsonl` for the top-superclass counts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ecgvlm.demo import DEMO_RECIPE, evaluate_and_score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="an `ecgvlm demo` folder (its model/ and data/)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("overrides", nargs="*", help="recipe overrides, e.g. train.lr=3e-4")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from ecgvlm.train.config import load_config
    from ecgvlm.train.recipe import train

    base, data, adapter = args.run / "model", args.run / "data", args.out / "adapter"
    defaults = [
        "train.seed=0",
        "train.max_steps=2000",
        "train.lr=5e-4",
        "data.curriculum=superclass+diagnosis:600",
    ]
    t0 = time.time()
    if not (adapter / "adapter_config.json").is_file():
        cfg = load_config(None, [*DEMO_RECIPE, f"model.path={base}", f"data.train={data / 'train.json'}",
                                 f"output_dir={adapter}", *defaults, *args.overrides])  # fmt: skip
        train(cfg, resume=(adapter / "checkpoints").is_dir())
    t1 = time.time()
    evaluate_and_score(base, adapter, data, args.out / "eval", None, "codes")
    m = json.loads((args.out / "eval" / "metrics.json").read_text())["benchmarks"]
    strict, findings = m["ptbxl-super"]["strict"], m["report"]["findings"]
    print(
        f"{args.out}: train {t1 - t0:.0f} s, eval {time.time() - t1:.0f} s; strict AUC {strict['auc']}, "
        f"findings {findings['score']}, diagnosis {findings['diagnosis']}"
    )


if __name__ == "__main__":
    main()
