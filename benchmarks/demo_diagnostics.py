"""What limits `ecgvlm demo`'s model: two measurements on a finished demo folder.

    ecgvlm demo && python benchmarks/demo_diagnostics.py --run runs/demo   # about 6 min, one thread

1. Superclass scores on the test split's superclass rows: the answer-set probabilities the
   interpreter uses (``label_set_probs``) against the code likelihoods Table I uses (read from
   ``finetuned/predictions.jsonl``): per-class ranking AUC, and the mean probability per class
   next to its base rate (a class the model never names shows up here).
2. Report vocabulary in the base: how many tokens of the reference reports never occur in a
   pretraining answer, and the lm_head row norms of those tokens against the answer tokens. The
   paper's LoRA freezes lm_head, so rows still at their random init are words the model can only
   write by steering onto random directions.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def superclass_scores(run: Path) -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from ecgvlm.io import load_image
    from ecgvlm.model.load import load_model_and_processor
    from ecgvlm.model.scoring import label_set_probs
    from ecgvlm.signals.vocab import SUPERCLASSES

    model, proc = load_model_and_processor(run / "model", adapter=run / "model" / "adapter", device="cpu")
    model.eval()
    rows = [
        r
        for r in json.loads((run / "data" / "test.json").read_text())
        if r["metadata"]["subtask"] == "superclass"
    ]
    t = time.perf_counter()
    sets = np.concatenate(
        [
            label_set_probs(
                model,
                proc,
                [load_image(run / "data", r["image"]) for r in rows[s : s + 8]],
                [r["conversations"][0]["value"] for r in rows[s : s + 8]],
                SUPERCLASSES,
            )
            for s in range(0, len(rows), 8)
        ]
    )
    seconds = time.perf_counter() - t
    preds = {}
    for line in (run / "finetuned" / "predictions.jsonl").read_text().splitlines():
        p = json.loads(line)
        preds[p["id"]] = p
    codes = np.array([[preds[r["id"]]["scores"][c] for c in SUPERCLASSES] for r in rows])
    gold = np.array([[c in r["metadata"]["gold"]["labels"] for c in SUPERCLASSES] for r in rows])
    print(f"{len(rows)} test superclass rows; answer sets scored in {seconds:.1f} s")
    print(f"{'class':<6} {'AUC sets':>9} {'AUC codes':>10} {'mean P sets':>12} {'base rate':>10}")
    aucs = {"sets": [], "codes": []}
    for j, c in enumerate(SUPERCLASSES):
        a_sets, a_codes = roc_auc_score(gold[:, j], sets[:, j]), roc_auc_score(gold[:, j], codes[:, j])
        aucs["sets"].append(a_sets)
        aucs["codes"].append(a_codes)
        print(f"{c:<6} {a_sets:9.3f} {a_codes:10.3f} {sets[:, j].mean():12.3f} {gold[:, j].mean():10.3f}")
    print(f"{'macro':<6} {np.mean(aucs['sets']):9.3f} {np.mean(aucs['codes']):10.3f}")


def report_vocabulary(run: Path, answers: int) -> None:
    import numpy as np
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from ecgvlm.train.pretrain_tasks import make_example

    base = run / "model"
    pretrain = json.loads((base / "pretrain.json").read_text())["config"]
    tok = AutoTokenizer.from_pretrained(str(base))
    weights = load_file(str(base / "model.safetensors"))
    norms = weights[next(k for k in weights if k.endswith("lm_head.weight"))].float().norm(dim=1).numpy()
    seen: set[int] = set()
    for i in range(answers):  # the pretraining answers, regenerated from the base's own recipe
        ex = make_example(
            pretrain["seed"], i, pretrain["ecg_fraction"], pretrain["record_pool"], pretrain["yesno_fraction"]
        )
        seen.update(tok(ex.answer, add_special_tokens=False)["input_ids"])
    report: set[int] = set()
    for r in json.loads((run / "data" / "train.json").read_text()):
        if r["metadata"]["subtask"] == "report":
            report.update(tok(r["conversations"][1]["value"], add_special_tokens=False)["input_ids"])
    unseen = sorted(report - seen)
    print(f"pretraining answers sampled: {answers}; distinct answer tokens {len(seen)}")
    print(f"report tokens {len(report)}, never a pretraining answer {len(unseen)}")
    print(
        f"median lm_head row norm: pretraining-answer tokens {np.median(norms[sorted(seen)]):.3f}, "
        f"report-only tokens {np.median(norms[unseen]):.3f}, whole vocabulary {np.median(norms):.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", default="runs/demo", help="a finished `ecgvlm demo` folder")
    parser.add_argument("--answers", type=int, default=3000, help="pretraining answers to regenerate")
    args = parser.parse_args()
    run = Path(args.run)
    report_vocabulary(run, args.answers)
    superclass_scores(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
