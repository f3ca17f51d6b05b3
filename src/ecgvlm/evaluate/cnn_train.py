"""Train, save, load and run the CNN baseline.

Training is deterministic on CPU for a given seed, thread count and step count: shuffling,
augmentation and dropout draw from generators re-seeded at every epoch, so a run resumed from its
epoch checkpoint ends with the same weights as an uninterrupted one. ``--minutes`` sizes the
cosine schedule from the measured speed (first steps, then re-fitted after every epoch), which
makes that run depend on machine speed; use ``--epochs`` alone for reproducible bytes.

Run folder: ``model.safetensors`` (weights of the best validation epoch), ``config.json``
(architecture, labels, normalisation, options, per-epoch validation AUC; no timings, so it is
byte-identical across identical runs), ``train_log.json`` (timings), and while training
``train_state.safetensors`` / ``train_state.json`` for resuming.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load, load_file, save
from torch import nn
from torch.nn import functional as F

from ecgvlm.errors import ECGVLMError
from ecgvlm.evaluate.cnn_data import ImageSet, label_names, load_imageset, load_pixels
from ecgvlm.evaluate.cnn_model import CNNConfig, SmallResNet, n_parameters
from ecgvlm.io import atomic_write_bytes, atomic_write_json
from ecgvlm.model.schedule import warmup_cosine

KIND = "ecgvlm-cnn"
MEAN, STD = 0.5, 0.25  # fixed page normalisation; BatchNorm absorbs the rest


@dataclass
class TrainOptions:
    epochs: int = 30
    minutes: float | None = None
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_frac: float = 0.05
    shift: int = 6  # random translation in pixels (augmentation); 0 turns it off
    seed: int = 0
    threads: int = 1


def find_split(data_dir: str | Path, name: str) -> Path | None:
    """``DIR/name.json`` or ``DIR/name.jsonl``, whichever exists."""
    for suffix in (".json", ".jsonl"):
        p = Path(data_dir) / f"{name}{suffix}"
        if p.exists():
            return p
    return None


def normalise(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> normalised float, channels-last (1.7x faster convolutions on CPU)."""
    return ((x.float() / 255.0 - MEAN) / STD).contiguous(memory_format=torch.channels_last)


def _shift(x: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``shift`` px in x and y, padding by edge replication."""
    if shift <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), mode="replicate")
    offs = torch.randint(0, 2 * shift + 1, (b, 2), generator=gen)
    crops = [padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offs.tolist())]
    return torch.stack(crops).contiguous(memory_format=torch.channels_last)


def lr_at(step: int, total: int, base: float, warmup_frac: float) -> float:
    """Warm-up over ``warmup_frac`` of the steps, then a cosine to zero (``model.schedule``)."""
    return warmup_cosine(step, total, max(1, int(total * warmup_frac)), peak=base)


def per_class_auc(targets: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict[str, float | None]:
    """ROC-AUC per label from scores; None where the label is all-positive or all-negative."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, float | None] = {}
    for j, name in enumerate(labels):
        col = targets[:, j]
        out[name] = float(roc_auc_score(col, probs[:, j])) if 0 < col.sum() < len(col) else None
    return out


def macro(aucs: dict[str, float | None], names: list[str] | None = None) -> float | None:
    vals = [v for k, v in aucs.items() if v is not None and (names is None or k in names)]
    return float(np.mean(vals)) if vals else None


@torch.no_grad()
def predict(model: nn.Module, pixels: np.ndarray, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Sigmoid probabilities (n, n_labels) for uint8 pixels (n, 3, H, W)."""
    from tqdm import tqdm

    model.eval().to(memory_format=torch.channels_last)
    outs = []
    for i in tqdm(range(0, len(pixels), batch_size), desc="predicting", unit="batch", disable=not progress):
        x = normalise(torch.from_numpy(pixels[i : i + batch_size]))
        outs.append(torch.sigmoid(model(x)).numpy())
    if not outs:
        return np.zeros((0, len(model.config.labels)), dtype=np.float32)
    return np.concatenate(outs).astype(np.float32)


def _optimizer(model: nn.Module, opts: TrainOptions) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": opts.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=opts.lr)


def _state_tensors(model: nn.Module, optim: torch.optim.Optimizer, best: dict[str, torch.Tensor]) -> dict:
    tensors = {f"model.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    tensors |= {f"best.{k}": v.contiguous() for k, v in best.items()}
    for idx, st in optim.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"optim.{idx}.{k}"] = torch.as_tensor(v).contiguous()
    return tensors


def _restore(tensors: dict, model: nn.Module, optim: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    sd = optim.state_dict()
    sd["state"] = state
    optim.load_state_dict(sd)
    return {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}


def train(
    data_dir: str | Path,
    out_dir: str | Path,
    opts: TrainOptions,
    head: str = "superclass",
    image_size: int = 224,
    progress: bool = True,
) -> dict:
    """Train on ``DIR/train.json`` (model selection on ``DIR/val.json`` if present); returns config."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(opts.threads)
    torch.use_deterministic_algorithms(True)
    try:
        return _train(data_dir, out_dir, opts, head, image_size, progress)
    finally:  # leave the caller's torch settings as they were
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _train(data_dir, out_dir, opts: TrainOptions, head: str, image_size: int, progress: bool) -> dict:
    from tqdm import tqdm

    from ecgvlm.outputs import claim_output_dir

    data_dir = Path(data_dir)
    # runs made before output markers existed are recognised by their training state
    out_dir = claim_output_dir(out_dir, "cnn train", legacy=["train_state.json"])
    labels = label_names(head)
    config = CNNConfig(labels=labels, image_size=image_size)
    train_set, val_set = _splits(data_dir, labels)
    x_train = load_pixels(train_set, image_size, progress)
    x_val = load_pixels(val_set, image_size, progress) if val_set else None
    y_train = torch.from_numpy(train_set.targets)

    torch.manual_seed(opts.seed)
    model = SmallResNet(config).to(memory_format=torch.channels_last)
    optim = _optimizer(model, opts)
    n = len(train_set.images)
    bs = min(opts.batch_size, n)
    steps_per_epoch = max(1, n // bs)
    meta, best = _resume(out_dir, opts, config, model, optim)
    total_steps = opts.epochs * steps_per_epoch if meta["total_steps"] is None else meta["total_steps"]
    loop = _Loop(model, optim, opts, meta, best, bs, steps_per_epoch, total_steps, step=meta["step"])
    log = {"n_train_images": n, "n_val_images": len(val_set.images) if val_set else 0, "epochs": []}
    loop.bar = tqdm(total=total_steps, initial=loop.step, desc="cnn train", unit="step", disable=not progress)
    while loop.step < loop.total_steps:
        epoch = meta["epoch"]
        losses, t_epoch = _epoch(loop, x_train, y_train, len(x_val) if x_val is not None else 0)
        record = {"epoch": epoch, "step": loop.step, "train_loss": float(np.mean(losses)) if losses else None}
        if x_val is not None:
            aucs = per_class_auc(val_set.targets, predict(model, x_val), labels)
            record["val_auc"] = aucs
            record["val_macro_auc_superclass"] = macro(aucs, list(labels[:5]))
        score = record.get("val_macro_auc_superclass")
        # Keep the best validation epoch; without a usable validation score, keep the latest.
        improved = score is not None and (meta["best_auc"] is None or score > meta["best_auc"])
        if improved or score is None:
            loop.best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            meta["best_epoch"], meta["best_auc"] = epoch, score
        meta["history"].append(record)
        if opts.minutes is not None and losses:
            loop.refit((time.perf_counter() - t_epoch) / len(losses))
        meta["epoch"], meta["step"] = epoch + 1, loop.step
        log["epochs"].append({"epoch": epoch, "seconds": round(time.perf_counter() - t_epoch, 2)})
        _checkpoint(out_dir, loop, config)
        loop.bar.write(
            f"epoch {epoch}: loss {record['train_loss']:.4f}"
            + (f", val macro AUC {score:.4f}" if score is not None else "")
        )
    loop.bar.close()
    return _finish(out_dir, loop, config, head, data_dir, log)


def _splits(data_dir: Path, labels: list[str]) -> tuple[ImageSet, ImageSet | None]:
    """The train split's images and targets, and the val split's when the folder has one."""
    train_path = find_split(data_dir, "train")
    if train_path is None:
        raise ECGVLMError("no train.json or train.jsonl in the dataset folder", data_dir)
    val_path = find_split(data_dir, "val")
    return load_imageset(train_path, labels), load_imageset(val_path, labels) if val_path else None


def _resume(
    out_dir: Path, opts: TrainOptions, config: CNNConfig, model: nn.Module, optim: torch.optim.Optimizer
) -> tuple[dict, dict[str, torch.Tensor]]:
    """The progress record and best weights of a killed run in ``out_dir`` (the model and optimizer
    restored in place), or those of a fresh start; a run with other options there is refused."""
    state_path, state_json = out_dir / "train_state.safetensors", out_dir / "train_state.json"
    meta = {"epoch": 0, "step": 0, "total_steps": None, "history": [], "best_epoch": None, "best_auc": None}
    if not (state_path.exists() and state_json.exists()):
        return meta, {}
    try:
        saved = json.loads(state_json.read_text(encoding="utf-8"))
        same = saved.get("options") == asdict(opts) and saved.get("model") == config.to_dict()
        tensors = load(state_path.read_bytes())
    except (ValueError, UnicodeDecodeError, AttributeError, OSError) as e:
        msg = f"unreadable training checkpoint ({type(e).__name__}); delete train_state.* to restart"
        raise ECGVLMError(msg, state_json) from None
    if not same:
        raise ECGVLMError("a run with different options is in this folder; use another --out", out_dir)
    meta = saved["meta"]
    best = _restore(tensors, model, optim)
    print(f"resuming at epoch {meta['epoch']} (step {meta['step']})")
    return meta, best


@dataclass
class _Loop:
    """What the training loop carries across epochs; ``meta`` is the part a checkpoint saves."""

    model: nn.Module
    optim: torch.optim.Optimizer
    opts: TrainOptions
    meta: dict
    best: dict[str, torch.Tensor]
    bs: int
    steps_per_epoch: int
    total_steps: int
    step: int
    first_step: int = field(init=False)  # where this session started: its first steps time --minutes
    start: float = field(default_factory=time.perf_counter)
    bar: Any = None

    def __post_init__(self) -> None:
        self.first_step = self.step

    def set_total(self, total: int) -> None:
        """A --minutes run's step count, kept in the checkpoint so a resumed run ends on it too."""
        self.total_steps = total
        self.meta["total_steps"] = total
        self.bar.total = total

    def refit(self, per_step: float) -> None:
        """Re-fit the step count to the time left at the speed of this epoch (machines get busier)."""
        left = self.opts.minutes * 60 - (time.perf_counter() - self.start)
        cap = self.opts.epochs * self.steps_per_epoch
        self.set_total(max(self.step, min(cap, self.step + int(left / per_step))))


def _epoch(loop: _Loop, x_train: np.ndarray, y_train: torch.Tensor, n_val: int) -> tuple[list[float], float]:
    """One epoch's optimizer steps (fewer when the run's step count ends first); returns the losses
    and the epoch's start time."""
    opts, epoch = loop.opts, loop.meta["epoch"]
    gen = torch.Generator().manual_seed(opts.seed * 100_003 + epoch)
    torch.manual_seed(opts.seed * 100_019 + epoch)  # dropout
    order = torch.randperm(len(x_train), generator=gen)
    loop.model.train()
    loss_fn = nn.BCEWithLogitsLoss()
    losses: list[float] = []
    probe = min(5, loop.steps_per_epoch)  # steps timed to size a --minutes run
    t_epoch = time.perf_counter()
    for b in range(loop.steps_per_epoch):
        if loop.step >= loop.total_steps:
            break
        idx = order[b * loop.bs : (b + 1) * loop.bs]
        x = _shift(normalise(torch.from_numpy(x_train[idx.numpy()])), opts.shift, gen)
        for group in loop.optim.param_groups:
            group["lr"] = lr_at(loop.step, loop.total_steps, opts.lr, opts.warmup_frac)
        loss = loss_fn(loop.model(x), y_train[idx])
        loop.optim.zero_grad(set_to_none=True)
        loss.backward()
        loop.optim.step()
        losses.append(loss.item())
        loop.step += 1
        loop.bar.update(1)
        loop.bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}")
        if opts.minutes is not None and time.perf_counter() - loop.start > opts.minutes * 60 * 1.25:
            loop.total_steps = loop.step  # far slower than measured (contention): stop, keep what exists
        if (
            opts.minutes is not None
            and loop.meta["total_steps"] is None
            and loop.step == loop.first_step + probe
        ):
            # Fix the step count from the measured speed so the cosine schedule ends on time.
            per_step = (time.perf_counter() - t_epoch) / probe
            eval_s = n_val * per_step / loop.bs / 3
            budget = opts.minutes * 60 - (time.perf_counter() - loop.start)
            fit = int(budget / (per_step + eval_s / loop.steps_per_epoch))
            loop.set_total(max(loop.step + 1, min(loop.total_steps, fit)))
    return losses, t_epoch


def _checkpoint(out_dir: Path, loop: _Loop, config: CNNConfig) -> None:
    """The state a killed run resumes from: weights, optimizer, best weights, progress (``meta``)."""
    tensors = _state_tensors(loop.model, loop.optim, loop.best)
    atomic_write_bytes(out_dir / "train_state.safetensors", save(tensors))
    state = {"options": asdict(loop.opts), "model": config.to_dict(), "meta": loop.meta}
    atomic_write_json(out_dir / "train_state.json", state)


def _finish(out_dir: Path, loop: _Loop, config: CNNConfig, head: str, data_dir: Path, log: dict) -> dict:
    """Save the best weights with the run's config and log, drop the resume state; returns the config."""
    result = {
        "kind": KIND,
        "model": config.to_dict(),
        "normalise": {"mean": MEAN, "std": STD},
        "n_parameters": n_parameters(loop.model),
        "head": head,
        "options": asdict(loop.opts),
        "data": str(data_dir),
        "steps": loop.step,
        "best_epoch": loop.meta["best_epoch"],
        "best_val_macro_auc_superclass": loop.meta["best_auc"],
        "history": loop.meta["history"],
    }
    save_cnn(out_dir, loop.best, result)
    log["seconds_total_this_session"] = round(time.perf_counter() - loop.start, 2)
    atomic_write_json(out_dir / "train_log.json", log)
    (out_dir / "train_state.safetensors").unlink(missing_ok=True)
    (out_dir / "train_state.json").unlink(missing_ok=True)
    return result


def save_cnn(run_dir: str | Path, state: dict[str, torch.Tensor], config: dict) -> None:
    """Write ``model.safetensors`` then ``config.json`` (the config last: its presence marks a finished run).

    One metadata key only: safetensors writes a metadata map in hash order, so two keys would make
    the file's bytes differ between identical runs.
    """
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    atomic_write_bytes(Path(run_dir) / "model.safetensors", save(tensors, metadata={"format": "pt"}))
    atomic_write_json(Path(run_dir) / "config.json", {"kind": KIND, **config})


def load_cnn(run_dir: str | Path) -> SmallResNet:
    """The model of a ``cnn train`` run folder, in eval mode (safetensors only)."""
    run_dir = Path(run_dir)
    cfg_path, weights = run_dir / "config.json", run_dir / "model.safetensors"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ECGVLMError("no config.json: not a finished `ecgvlm cnn train` run", run_dir) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ECGVLMError(f"invalid JSON ({e})", cfg_path) from None
    if not isinstance(cfg, dict) or cfg.get("kind") != KIND:
        raise ECGVLMError(f"not a CNN baseline config (kind != {KIND!r})", cfg_path)
    model = SmallResNet(CNNConfig.from_dict(cfg["model"]))
    try:
        state = load_file(str(weights))
        model.load_state_dict(state, strict=True)
    except FileNotFoundError:
        raise ECGVLMError("model.safetensors missing", weights) from None
    except (RuntimeError, OSError, ValueError) as e:
        raise ECGVLMError(f"cannot load weights: {str(e).splitlines()[0]}", weights) from None
    return model.eval()
