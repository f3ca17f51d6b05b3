"""How visible are the superclass cues under a page design? A small CNN or the tiny Mllama vision tower
(from scratch, + a linear head) trained for a fixed time on pages of 8 conditions / 5 superclasses.

The measurements behind the "tiny" look (``RenderStyle.preset("tiny")``), one torch thread each:

    python benchmarks/page_design_proxy.py --model cnn --seconds 300 \
        --design '{"dpi":40,"header":false,"speed":50,"gain":20}'
    python benchmarks/page_design_proxy.py --model vit --lr 1e-3 --warmup 100 --seconds 300 \
        --design '{"dpi":40,"header":false,"speed":50,"gain":20,"sample":false,"trace_width_mm":0.5}'

``--design`` holds RenderStyle fields plus "layout", "augment" and "sample" (false: one fixed style,
true: RenderStyle.sample with the other fields pinned). Pages are letterboxed to --size like the
Mllama processor does; prints one JSON line (macro ranking AUC, per class, AUC during training).
"""

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ecgvlm.render import RenderStyle, render
from ecgvlm.signals.synth import synthesize_record
from tiny_base_eval import CODES, CONDITIONS  # the same 8 conditions / 5 superclasses


def letterbox(im: Image.Image, size: int) -> np.ndarray:
    w, h = im.size
    s = size / max(w, h)
    im = im.convert("RGB").resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    canvas.paste(im, (0, 0))
    return np.asarray(canvas).transpose(2, 0, 1).copy()


def make(design: dict, n: int, seed: int, size: int):
    xs, ys = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i, 99])
        k = int(rng.integers(5))
        cond = CONDITIONS[CODES[k]][int(rng.integers(len(CONDITIONS[CODES[k]])))]
        rec = synthesize_record(20_000 + seed, i, conditions=[cond])
        fixed = {kk: v for kk, v in design.items() if kk not in ("layout", "sample", "augment")}
        style = RenderStyle.sample(rng, **fixed) if design.get("sample", True) else RenderStyle(**fixed)
        page = render(
            rec,
            layout=design.get("layout", "3x4+1"),
            augment=design.get("augment", "none"),
            seed=i,
            style=style,
        )
        xs.append(letterbox(page.image, size))
        ys.append(k)
    return np.stack(xs), np.array(ys)


def auc(probs, y):
    from sklearn.metrics import roc_auc_score

    per = [roc_auc_score(y == k, probs[:, k]) for k in range(5)]
    return float(np.mean(per)), [round(p, 3) for p in per]


def vit(size: int, patch: int, width: int):
    from transformers import MllamaVisionConfig, MllamaVisionModel

    cfg = MllamaVisionConfig(
        hidden_size=width,
        num_hidden_layers=4,
        num_global_layers=2,
        attention_heads=4,
        intermediate_size=width * 4,
        image_size=size,
        patch_size=patch,
        max_num_tiles=1,
        supported_aspect_ratios=[[1, 1]],
        intermediate_layers_indices=[1, 3],
        vision_output_dim=width * 3,
    )
    m = MllamaVisionModel(cfg)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.v = m
            self.head = torch.nn.Linear(width * 3, 5)

        def forward(self, x):
            b = x.shape[0]
            out = self.v(
                pixel_values=x[:, None, None],
                aspect_ratio_ids=torch.ones(b, 1, dtype=torch.long),
                aspect_ratio_mask=torch.ones(b, 1, 1, dtype=torch.long),
            ).last_hidden_state
            return self.head(out.reshape(b, -1, out.shape[-1]).mean(1))

    return Net()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--design", default="{}")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--seconds", type=float, default=90)
    ap.add_argument("--ntrain", type=int, default=2000)
    ap.add_argument("--patch", type=int, default=14)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--tag", default="")
    ap.add_argument("--cache", default="runs/page_design_cache", help="folder for the rendered page arrays")
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    design = json.loads(a.design)
    digest = hashlib.md5(repr((a.design, a.size, a.ntrain)).encode()).hexdigest()[:10]
    key = Path(a.cache) / f"pages_{digest}.npz"
    t = time.time()
    if key.exists():
        z = np.load(key)
        xtr, ytr, xte, yte = z["xtr"], z["ytr"], z["xte"], z["yte"]
    else:
        xtr, ytr = make(design, a.ntrain, 1, a.size)
        xte, yte = make(design, 400, 2, a.size)
        key.parent.mkdir(parents=True, exist_ok=True)
        np.savez(key, xtr=xtr, ytr=ytr, xte=xte, yte=yte)
    tdata = time.time() - t
    if a.model == "cnn":
        from ecgvlm.evaluate.cnn_model import CNNConfig, SmallResNet

        net = SmallResNet(CNNConfig(labels=CODES, image_size=a.size))
    else:
        net = vit(a.size, a.patch, a.width)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.01)
    mean = torch.tensor([0.48, 0.46, 0.41]).view(1, 3, 1, 1)
    std = torch.tensor([0.27, 0.26, 0.28]).view(1, 3, 1, 1)

    def prep(x):
        return (torch.from_numpy(x).float() / 255 - mean) / std

    def evaluate():
        net.eval()
        ps = []
        with torch.no_grad():
            for i in range(0, len(xte), 50):
                ps.append(torch.softmax(net(prep(xte[i : i + 50])), -1).numpy())
        net.train()
        return auc(np.concatenate(ps), yte)

    t0 = time.time()
    step = 0
    rng = np.random.default_rng(0)
    hist = []
    next_eval = a.seconds / 3
    while time.time() - t0 < a.seconds:
        idx = rng.choice(len(xtr), 16, replace=False)
        loss = torch.nn.functional.cross_entropy(net(prep(xtr[idx])), torch.from_numpy(ytr[idx]))
        opt.zero_grad()
        for g in opt.param_groups:
            g["lr"] = a.lr * min(1.0, (step + 1) / a.warmup)
        loss.backward()
        opt.step()
        step += 1
        if time.time() - t0 > next_eval:
            hist.append((round(time.time() - t0), step, round(evaluate()[0], 3)))
            next_eval += a.seconds / 3
    m, per = evaluate()
    print(
        json.dumps(
            {
                "tag": a.tag,
                "design": design,
                "size": a.size,
                "model": a.model,
                "patch": a.patch,
                "steps": step,
                "data_s": round(tdata),
                "auc": round(m, 3),
                "per": per,
                "hist": hist,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
