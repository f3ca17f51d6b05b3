"""Full-parameter pretraining of the tiny Mllama on ``pretrain_tasks``: the shipped tiny base.

    out = pretrain(PretrainConfig(steps=3000), "runs/base")

Deterministic by construction: the batch at step ``s`` is examples ``s*B .. s*B+B-1`` of the
seeded task stream (pure functions of (seed, index)), the model is built from the seed, there is
no dropout, kernels are deterministic and the CPU runs one thread. A resumed run replays exactly the
steps an uninterrupted one would take (checkpoints hold weights, AdamW state and the step).
``--minutes`` only fixes the step count (from the measured speed of the first steps); the card
records it so ``--steps N`` rebuilds the same weights.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import atomic_dir, atomic_write_json, share_files
from ecgvlm.model.schedule import decay_start, warmup_cosine
from ecgvlm.model.tokenizer import make_tokenizer_portable

# Tiny geometries (all the real Mllama structure: local + gated global vision layers, intermediate
# features, cross-attention). Chosen by pilot runs, see model/tiny_base/MODEL_CARD.md.
GEOMETRIES: dict[str, dict] = {
    "p224": {"vision": {"image_size": 224, "patch_size": 14}},
    "p224s8": {"vision": {"image_size": 224, "patch_size": 8}},
    "p280": {"vision": {"image_size": 280, "patch_size": 14}},
    "p336": {"vision": {"image_size": 336, "patch_size": 14}},
    # a few-second geometry for tests
    "micro": {
        "vision": {
            "image_size": 56,
            "patch_size": 14,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_global_layers": 1,
            "attention_heads": 2,
            "intermediate_size": 64,
            "intermediate_layers_indices": [0],
        },
        "text": {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "intermediate_size": 128,
            "cross_attention_layers": [1],
        },
        "vocab_size": 1024,
    },  # fmt: skip
}
DEFAULT_GEOMETRY = "p224"


@dataclass
class PretrainConfig:
    seed: int = 0
    steps: int | None = None  # optimizer steps; or derived from minutes
    minutes: float | None = None
    geometry: str = DEFAULT_GEOMETRY
    batch_size: int = 8
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    decay_frac: float = 0.25
    warmup: int = 100
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    ecg_fraction: float = 0.75  # of the examples that are not yes/no questions
    # balanced yes/no questions about ECG pages: what makes stage 2 use the image (pretrain_tasks)
    yesno_fraction: float = 0.8
    # Stage 2 opens with one yes/no question only. Measured: from a random text model, the full
    # mix had not started to use the image after 800 steps; one fixed question does within 100,
    # and the mix that follows then builds on that path (model/tiny_base/MODEL_CARD.md).
    first_task: str = "y_t_down"
    first_task_steps: int = 400
    record_pool: int = 6000  # distinct synthetic ECG records; each page is asked several questions
    save_every: int = 200
    threads: int = 1
    device: str = "cpu"
    eval_examples: int = 240  # held-out stream (seed + 1) for per-task exact match at the end
    # stage 1 (pretrain_vision): the vision tower alone regresses trace measurements, then stays
    # frozen in stage 2, so the text model cannot wash its features out (0 skips stage 1)
    vision_steps: int = 0
    vision_batch_size: int = 16
    vision_lr: float = 1e-3
    # stage 3 (pretrain_text): the text model and lm_head learn the report register from text alone
    # (no image), so a LoRA fine-tune can write report words; 0 skips it
    text_steps: int = 0
    text_batch_size: int = 16
    text_lr: float = 1e-3
    extra: dict = field(default_factory=dict)


def build_base(out_dir: Path, cfg: PretrainConfig) -> Path:
    from ecgvlm.model.tiny import build_tiny

    geo = GEOMETRIES.get(cfg.geometry)
    if geo is None:
        raise ECGVLMError(f"unknown geometry {cfg.geometry!r}; choose one of {', '.join(GEOMETRIES)}")
    over = {k: v for k, v in geo.items() if k in ("vision", "text")}
    return build_tiny(out_dir, seed=cfg.seed, vocab_size=geo.get("vocab_size", 2048), **over)


def encode(tokenizer, question: str, answer: str) -> tuple[list[int], list[int]]:
    from ecgvlm.model.chat import encode_messages

    msgs = [{"role": "user", "content": "<image>\n" + question}, {"role": "assistant", "content": answer}]
    return encode_messages(tokenizer, msgs)


def batch_at(
    cfg: PretrainConfig, processor, step: int, stream_seed: int | None = None
) -> tuple[dict, list[str]]:
    from ecgvlm.model.chat import Collator
    from ecgvlm.train.pretrain_tasks import make_example

    seed = cfg.seed if stream_seed is None else stream_seed
    items, tasks = [], []
    only = cfg.first_task if step < cfg.first_task_steps else None
    for i in range(step * cfg.batch_size, (step + 1) * cfg.batch_size):
        ex = make_example(seed, i, cfg.ecg_fraction, cfg.record_pool, cfg.yesno_fraction, only)
        ids, labels = encode(processor.tokenizer, ex.question, ex.answer)
        items.append({"input_ids": ids, "labels": labels, "image": ex.image})
        tasks.append(ex.task)
    return Collator(processor, pad_to_multiple_of=8)(items), tasks


def lr_factor(step: int, total: int, warmup: int, decay_frac: float, min_ratio: float) -> float:
    """Warm-up, constant, then a cosine decay over the last ``decay_frac`` of the steps.

    Until the decay starts the factor does not depend on ``total``, so a run may be resumed with a
    different ``--steps`` (before the decay) and still equal a fresh run with that step count.
    """
    return warmup_cosine(step, total, warmup, decay_start(total, decay_frac), min_ratio)


def _setup_torch(cfg: PretrainConfig):
    # MKL picks kernels by memory alignment unless told not to: the same run twice could differ in
    # the last bits. This must be set before MKL's first call (the CLI sets it before importing torch).
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
    import torch

    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True, warn_only=False)
    if cfg.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ECGVLMError("--device cuda asked but no CUDA device is visible")
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch


def pretrain(
    cfg: PretrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Build (or resume) and pretrain the tiny base; write it to ``out`` as fp16 safetensors + card data."""
    _setup_torch(cfg)
    from ecgvlm.model.load import load_processor

    out = claim_output(out, cfg, resume, overwrite)
    work = out / "_work"
    init = work / "init"
    processor = load_processor(init)
    load_init = init_loader(init, cfg)
    vision_log: list[dict] = []
    if cfg.vision_steps > 0:
        from ecgvlm.train.pretrain_vision import vision_stage

        vision_log = vision_stage(load_init, processor, cfg, work, progress)
    run = setup_stage2(stage2_model(load_init, cfg, work), cfg, work, resume)
    wall = train_loop(run, cfg, processor, progress)
    run.model.eval()
    scores = task_exact_match(run.model, processor, cfg)
    export(run.model, processor, init, out, cfg, run.total, wall, run.log, scores, vision_log)
    if cfg.text_steps > 0:
        from ecgvlm.train.pretrain_text import text_stage

        del run  # frees the stage-2 model before stage 3 loads its own copy
        text_stage(out, out, cfg.seed, cfg.text_steps, cfg.text_batch_size, cfg.text_lr, cfg.threads,
                   cfg.device, progress)  # fmt: skip
    return out


def claim_output(out: str | Path, cfg: PretrainConfig, resume: bool, overwrite: bool) -> Path:
    """Claim ``out`` for this run and build the random initial model in OUT/_work/init once."""
    from ecgvlm.outputs import claim_output_dir

    # runs made before output markers existed are recognised by their _work folder
    out = claim_output_dir(
        out,
        "pretrain-base",
        overwrite=overwrite,
        resume=resume,
        legacy=["_work"],
        resume_hint="use --resume to continue it, --overwrite to start over, or name a new folder",
    )
    init = out / "_work" / "init"
    if not (init / "config.json").is_file():
        with atomic_dir(init) as tmp:
            build_base(tmp, cfg)
    return out


def init_loader(init: Path, cfg: PretrainConfig) -> Callable[[], Any]:
    """A function that loads the initial model afresh (fp32, on ``cfg.device``), seeded the same way
    each time: stage 1 and stage 2 both start from it."""
    import torch
    from transformers import MllamaForConditionalGeneration

    def load_init():
        torch.manual_seed(cfg.seed)
        return MllamaForConditionalGeneration.from_pretrained(
            str(init),
            dtype=torch.float32,
            local_files_only=True,
            use_safetensors=True,
            attn_implementation="sdpa",
        ).to(cfg.device)

    return load_init


def stage2_model(load_init: Callable[[], Any], cfg: PretrainConfig, work: Path):
    """The model stage 2 trains: the initial one, with stage 1's vision tower loaded and frozen."""
    model = load_init()
    if cfg.vision_steps > 0:
        from safetensors.torch import load_file

        model.model.vision_model.load_state_dict(load_file(str(work / "vision.safetensors")))
        model.model.vision_model.requires_grad_(False)
    model.train()
    return model


@dataclass
class Stage2:
    """What the stage-2 loop advances: the model, its optimizer and schedule, and where it stands."""

    model: Any
    opt: Any
    sched: Any
    params: list
    work: Path
    total: int | None  # None until --minutes fixes it after the first 20 steps
    wall0: float = 0.0  # time.time() minus the wall seconds of earlier sessions
    step: int = 0
    log: list[dict] = field(default_factory=list)


def setup_stage2(model, cfg: PretrainConfig, work: Path, resume: bool) -> Stage2:
    """AdamW (no decay on biases, norms, embeddings) and the LR schedule; on ``resume`` the latest
    checkpoint's weights, optimizer, schedule and RNG state."""
    import torch

    from ecgvlm.train.checkpoint import latest_checkpoint, load_checkpoint

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    decay = [p for n, p in named if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8,
    )  # fmt: skip
    state_file = work / "run.json"
    saved = json.loads(state_file.read_text()) if state_file.is_file() else {}
    run = Stage2(model, opt, None, params, work, cfg.steps or saved.get("total_steps"))

    # A plain function (LambdaLR saves no state for one) that reads run.total when called:
    # --minutes fixes the total mid-run and the schedule follows from then on.
    def factor(s: int) -> float:
        return lr_factor(s, run.total or 10**9, cfg.warmup, cfg.decay_frac, cfg.min_lr_ratio)

    run.sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    ckpt = latest_checkpoint(work / "checkpoints") if resume else None
    if ckpt is not None:
        position, run.log = load_checkpoint(ckpt, model, opt, run.sched)
        run.step = position["step"]
        if run.total is not None and run.step > decay_start(run.total, cfg.decay_frac):
            raise ECGVLMError(
                f"the checkpoint at step {run.step} is past the decay start of --steps {run.total}", ckpt
            )
        run.sched.lr_lambdas[0] = factor
    run.wall0 = time.time() - saved.get("wall_s", 0.0)
    return run


def train_loop(run: Stage2, cfg: PretrainConfig, processor, progress: bool) -> float:
    """Optimizer steps until ``run.total``, a checkpoint every ``cfg.save_every``; returns wall seconds."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=run.total, initial=run.step, desc="pretrain", unit="step", dynamic_ncols=True)
    t_probe = time.time()
    while run.total is None or run.step < run.total:
        loss, gnorm = optimizer_step(run, cfg, processor)
        run.step += 1
        run.log.append(
            {
                "step": run.step,
                "loss": round(loss.item(), 5),
                "lr": run.sched.get_last_lr()[0],
                "gnorm": round(float(gnorm), 4),
            }
        )
        if run.total is None and run.step == 20:
            # --minutes: fix the step count from the speed so far (the card records it for --steps N).
            per_step = (time.time() - t_probe) / 20
            run.total = max(run.step + 1, int(cfg.minutes * 60 / per_step))
            if bar is not None:
                bar.total = run.total
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{sum(r['loss'] for r in run.log[-50:]) / len(run.log[-50:]):.3f}")
        if run.step % cfg.save_every == 0 or run.step == run.total:
            save_state(run, cfg)
    if bar is not None:
        bar.close()
    return time.time() - run.wall0


def optimizer_step(run: Stage2, cfg: PretrainConfig, processor):
    """Forward, backward, clip and step on batch ``run.step``; returns (loss, gradient norm)."""
    import torch

    batch, _ = batch_at(cfg, processor, run.step)
    batch = {k: v.to(cfg.device) for k, v in batch.items()}
    loss = run.model(**batch).loss
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(run.params, cfg.max_grad_norm)
    run.opt.step()
    run.sched.step()
    return loss, gnorm


def save_state(run: Stage2, cfg: PretrainConfig) -> None:
    """WORK/run.json (total steps, wall time, config) and a checkpoint at ``run.step`` (the last one only)."""
    from ecgvlm.train.checkpoint import save_checkpoint

    state = {"total_steps": run.total, "wall_s": time.time() - run.wall0, "config": asdict(cfg)}
    atomic_write_json(run.work / "run.json", state)
    save_checkpoint(
        run.work / "checkpoints", run.model, run.opt, run.sched, {"step": run.step}, run.log, keep=1
    )


def task_exact_match(model, processor, cfg: PretrainConfig) -> dict[str, list[int]]:
    """Greedy exact match per task on a held-out stream (seed + 1): {task: [correct, total]}."""
    from ecgvlm.model.infer import generate
    from ecgvlm.train.pretrain_tasks import make_example

    exs = [
        make_example(cfg.seed + 1, i, cfg.ecg_fraction, cfg.record_pool, cfg.yesno_fraction)
        for i in range(cfg.eval_examples)
    ]
    preds = generate(
        model, processor, [e.image for e in exs], ["<image>\n" + e.question for e in exs], max_new_tokens=6
    )
    scores: dict[str, list[int]] = {}
    for e, p in zip(exs, preds):
        s = scores.setdefault(e.task, [0, 0])
        s[0] += int(p.strip() == e.answer)
        s[1] += 1
    return dict(sorted(scores.items()))


def export(model, processor, init: Path, out: Path, cfg, total, wall, log, scores, vision_log=()) -> None:
    """fp16 safetensors + processor + the run's numbers (pretrain.json, loss.png) into ``out``."""
    import torch

    tmp = out / "_work" / "export.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.to("cpu").to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    model.to(torch.float32)
    processor.save_pretrained(tmp)
    make_tokenizer_portable(tmp)  # as shipped: transformers 4.45+ loads it too
    for name in ("ecgvlm_tiny.json",):
        shutil.copy(init / name, tmp / name)
    correct = sum(c for c, _ in scores.values())
    n = sum(t for _, t in scores.values())
    atomic_write_json(
        tmp / "pretrain.json",
        {
            "config": asdict(cfg) | {"steps": total},
            "steps": total,
            "wall_s": round(wall, 1),
            "final_loss_avg100": round(sum(r["loss"] for r in log[-100:]) / max(1, len(log[-100:])), 4),
            "exact_match": round(correct / max(1, n), 4),
            "exact_match_per_task": scores,
            "loss": [r["loss"] for r in log],
            "vision_loss": [r["loss"] for r in vision_log if "loss" in r],
            "vision_wall_s": next((r["wall_s"] for r in vision_log if "wall_s" in r), 0.0),
        },
    )
    plot_loss([r["loss"] for r in log], tmp / "loss.png")
    share_files(tmp)
    for f in tmp.iterdir():
        os.replace(f, out / f.name)
    shutil.rmtree(tmp, ignore_errors=True)


def plot_loss(losses: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(1, len(losses) + 1)
    k = max(1, len(losses) // 100)
    smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(x, losses, lw=0.4, alpha=0.35, color="tab:blue")
    ax.plot(x[k - 1 :], smooth, lw=1.5, color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("answer-token loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
