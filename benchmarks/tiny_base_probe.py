"""Where does a tiny base lose the image? Three probes, printed as lines of figures.

1. tower: a logistic-regression probe on the vision tower's pooled patch features (mean+max, and
   mean only) predicts the superclass of the tiny_base_eval set (macro ranking AUC). ``--vision``
   swaps in a stage-1 tower (WORK/vision.safetensors) before probing.
2. hidden: the same probe on the text model's last-token hidden state after layers 2, 4, 6 and 8
   for the question "Which superclass does this ECG belong to?" (does the image reach the text?).
3. blank: greedy exact match on held-out pretraining questions (stream seed 1) with the real page
   and with a blank page of the same size (does the answer depend on the image?), and the spread of
   the projected vision features across images.

    python benchmarks/tiny_base_probe.py --base src/ecgvlm/model/tiny_base --data /tmp/sc
    python benchmarks/tiny_base_probe.py --base RUN/_work/init --vision RUN/_work/vision.safetensors \\
        --data /tmp/sc --probes tower

DATA is a folder built by ``benchmarks/tiny_base_eval.py`` (train.json/test.json + images).
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import numpy as np

from tiny_base_eval import CODES  # the superclass set this probe reads

QUESTION = "<image>\nWhich superclass does this ECG belong to?"


def probe_auc(xtr, ytr, xte, yte) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(xtr)
    pr = LogisticRegression(max_iter=2000, C=0.1).fit(sc.transform(xtr), ytr).predict_proba(sc.transform(xte))
    return float(np.mean([roc_auc_score(yte == k, pr[:, k]) for k in range(len(CODES))]))


def rows_of(data: Path, split: str, n: int):
    from PIL import Image

    rows = json.loads((data / f"{split}.json").read_text())[:n]
    images = [Image.open(data / r["image"]).convert("RGB") for r in rows]
    return images, np.array([CODES.index(r["conversations"][1]["value"]) for r in rows])


def tower_features(model, processor, images) -> np.ndarray:
    import torch

    from ecgvlm.train.pretrain_vision import pooled_features

    out = []
    for i in range(0, len(images), 32):
        px = processor.image_processor(images=[[im] for im in images[i : i + 32]], return_tensors="pt")
        inputs = {k: px[k] for k in ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask")}
        with torch.no_grad():
            out.append(pooled_features(model.model.vision_model, inputs).numpy())
    return np.concatenate(out)


def hidden_features(model, processor, images, layers) -> dict[int, np.ndarray]:
    import torch

    from ecgvlm.model.infer import prompt_batch, prompt_ids

    seq = prompt_ids(processor.tokenizer, QUESTION)
    out: dict[int, list] = {k: [] for k in layers}
    for i in range(0, len(images), 16):
        chunk = images[i : i + 16]
        batch = prompt_batch(processor, chunk, [seq] * len(chunk), left_pad=False)
        with torch.no_grad():
            hs = model(**batch, output_hidden_states=True).hidden_states
        for k in layers:
            out[k].append(hs[k][:, -1].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def blank_probe(model, processor, n: int) -> None:
    import torch
    from PIL import Image

    from ecgvlm.model.infer import generate, prompt_batch, prompt_ids
    from ecgvlm.train.pretrain_tasks import make_example

    exs = [make_example(1, i) for i in range(n)]
    qs = ["<image>\n" + e.question for e in exs]
    real = generate(model, processor, [e.image for e in exs], qs, max_new_tokens=6)
    blank_pages = [Image.new("RGB", e.image.size, (255, 255, 255)) for e in exs]
    blank = generate(model, processor, blank_pages, qs, max_new_tokens=6)
    per: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for e, a, b in zip(exs, real, blank):
        s = per[e.task]
        s[0] += a.strip() == e.answer
        s[1] += b.strip() == e.answer
        s[2] += 1
    for task, (a, b, t) in sorted(per.items()):
        print(f"blank  {task:12s} real {a:3d}/{t:<3d} blank {b:3d}/{t}")
    for family, prefix in (("ECG measurement", "e_"), ("ECG yes/no", "y_")):
        a, b, t = (sum(v[i] for k, v in per.items() if k.startswith(prefix)) for i in range(3))
        if t:
            print(
                f"blank  {family} questions: real page {a}/{t} = {a / t:.3f}, blank page {b}/{t} = {b / t:.3f}"
            )
    pages = [e.image for e in exs if e.task.startswith(("e_", "y_"))][:16]
    batch = prompt_batch(
        processor, pages, [prompt_ids(processor.tokenizer, "<image>\nx")] * len(pages), False
    )
    with torch.no_grad():
        v = model.model.vision_model(
            pixel_values=batch["pixel_values"],
            aspect_ratio_ids=batch["aspect_ratio_ids"],
            aspect_ratio_mask=batch["aspect_ratio_mask"],
        ).last_hidden_state
        v = model.model.multi_modal_projector(v).reshape(len(pages), -1)
    print(
        f"blank  projected vision features: std across images {float(v.std(0).mean()):.4f}, overall {float(v.std()):.4f}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="a model folder (a base, or RUN/_work/init)")
    ap.add_argument("--vision", default=None, help="a stage-1 vision.safetensors to load into the tower")
    ap.add_argument("--data", required=True, type=Path, help="a benchmarks/tiny_base_eval.py data folder")
    ap.add_argument("--probes", default="tower,hidden,blank")
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=400)
    ap.add_argument("--n-blank", type=int, default=240)
    args = ap.parse_args()

    import torch
    from transformers import MllamaForConditionalGeneration

    from ecgvlm.model.load import load_processor

    torch.set_num_threads(1)
    model = MllamaForConditionalGeneration.from_pretrained(
        args.base, dtype=torch.float32, local_files_only=True, use_safetensors=True
    ).eval()
    if args.vision:
        from safetensors.torch import load_file

        model.model.vision_model.load_state_dict(load_file(args.vision))
    processor = load_processor(args.base)
    probes = {p.strip() for p in args.probes.split(",") if p.strip()}
    t0 = time.time()
    if probes & {"tower", "hidden"}:
        tr_images, ytr = rows_of(args.data, "train", args.n_train)
        te_images, yte = rows_of(args.data, "test", args.n_test)
    if "tower" in probes:
        ftr, fte = tower_features(model, processor, tr_images), tower_features(model, processor, te_images)
        half = ftr.shape[1] // 2  # pooled_features is [mean, max]
        print(f"tower  mean+max probe macro AUC {probe_auc(ftr, ytr, fte, yte):.3f}")
        print(f"tower  mean-only probe macro AUC {probe_auc(ftr[:, :half], ytr, fte[:, :half], yte):.3f}")
    if "hidden" in probes:
        layers = (2, 4, 6, 8)
        htr = hidden_features(model, processor, tr_images, layers)
        hte = hidden_features(model, processor, te_images, layers)
        for k in layers:
            print(f"hidden layer {k} probe macro AUC {probe_auc(htr[k], ytr, hte[k], yte):.3f}")
    if "blank" in probes:
        blank_probe(model, processor, args.n_blank)
    print(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
