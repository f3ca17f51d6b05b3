"""The fine-tuning recipe, top to bottom: ``train`` = ``setup`` -> ``train_loop`` -> ``save_final``.

Setup builds a ``Run`` (the model, data, optimizer, schedule, accelerator and the loop position);
the loop and the save step are plain functions of it.

A plain PyTorch loop; accelerate only places the model on devices, does bf16 autocast and wraps
DeepSpeed ZeRO-2 when the recipe names a DeepSpeed JSON. Resuming restores weights, AdamW,
scheduler, RNG and the position in the (seeded, per-epoch) data order, so a killed and resumed
CPU run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import time
from functools import partial
from pathlib import Path

import torch

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import atomic_write_text
from ecgvlm.outputs import claim_output_dir
from ecgvlm.train.components import (
    base_model_dir,
    cosine_schedule,
    deepspeed_plugin,
    enable_checkpointing,
    load_base,
    resolve_precision,
    seed_everything,
    trainable_digest,
)
from ecgvlm.train.config import RecipeCfg, to_dict, to_yaml
from ecgvlm.train.loss import causal_lm_loss
from ecgvlm.train.save import save_final, save_weights
from ecgvlm.train.state import Run
from ecgvlm.train.tracking import accelerator_kwargs, check_tracker, flat_config, start_trackers
from ecgvlm.train.validation import evaluate_loss, save_best, superclass_auc


# ---------------------------------------------------------------- the recipe
def train(cfg: RecipeCfg, resume: bool = False) -> Path:
    """Run the recipe; returns the output folder (adapter or partial weights + processor + config + log)."""
    from accelerate.utils import gather_object

    run = setup(cfg, resume)
    wall, seen = train_loop(run)
    val_loss = validate(run) if run.val is not None else None
    digests = gather_object([trainable_digest(run.accelerator.unwrap_model(run.model))])
    if run.accelerator.is_main_process:
        save_final(run, val_loss, wall, seen, digests)
    # close the trackers (flushes TensorBoard / W&B / MLflow); not end_training(), which would also
    # destroy the process group that the caller's next run (a sweep) may still use
    for tracker in run.accelerator.trackers:
        tracker.finish()
    run.accelerator.wait_for_everyone()
    return run.out


# ---------------------------------------------------------------- setup
def setup(cfg: RecipeCfg, resume: bool) -> Run:
    """Config -> accelerator, output folder, model, data, optimizer, schedule and (``resume``) the
    restored state; writes config.yaml and starts the trackers."""
    check_recipe(cfg)
    precision = resolve_precision(cfg)
    if precision == "bf16" and not torch.cuda.is_available():
        print("note: bf16 on CPU is several times slower than fp32")
    plugin = deepspeed_plugin(cfg, precision) if cfg.deepspeed else None
    accelerator = make_accelerator(cfg, precision, plugin)
    out, ckpt_dir, base_dir = claim_output(cfg, accelerator, resume)
    seed_everything(cfg.train.seed)
    processor, model, trainable, n_trainable, n_total = build_model(cfg, base_dir, precision, accelerator)
    data, val, collate, opening = build_data(cfg, processor, accelerator)
    global_batch = cfg.train.batch_size * accelerator.num_processes
    micro_per_epoch = math.ceil(len(data) / global_batch)
    steps_per_epoch = max(1, micro_per_epoch // cfg.train.grad_accum)
    total_steps = cfg.train.max_steps or max(1, int(cfg.train.epochs * steps_per_epoch))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    scheduler = cosine_schedule(optimizer, int(cfg.train.warmup_ratio * total_steps), total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    run = Run(
        cfg=cfg,
        accelerator=accelerator,
        plugin=plugin,
        precision=precision,
        out=out,
        ckpt_dir=ckpt_dir,
        base_dir=base_dir,
        processor=processor,
        model=model,
        params=params,
        optimizer=optimizer,
        scheduler=scheduler,
        data=data,
        val=val,
        collate=collate,
        opening=opening,
        global_batch=global_batch,
        total_steps=total_steps,
        trainable=trainable,
        n_trainable=n_trainable,
        n_total=n_total,
    )
    if resume:
        restore(run)
    if accelerator.is_main_process:
        atomic_write_text(out / "config.yaml", to_yaml(cfg))
    start_trackers(accelerator, cfg.train.report_to, out, flat_config(to_dict(cfg)))
    return run


def check_recipe(cfg: RecipeCfg) -> None:
    """Set the thread count; refuse a recipe that cannot run before anything loads."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if not cfg.data.train:
        raise ECGVLMError("data.train is not set (the instruction file to train on)")
    if cfg.train.eval_every and not cfg.data.val:
        raise ECGVLMError("train.eval_every needs data.val (the validation file)")
    check_tracker(cfg.train.report_to)


def make_accelerator(cfg: RecipeCfg, precision: str, plugin):
    from accelerate import Accelerator

    return Accelerator(
        mixed_precision="bf16" if precision == "bf16" else "no",
        gradient_accumulation_steps=cfg.train.grad_accum,
        deepspeed_plugin=plugin,
        # accelerate treats a multi-process launch without GPUs as one process each unless told
        # cpu=True (then it joins them over gloo); single-process runs keep its device choice
        cpu=not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1,
        **accelerator_kwargs(cfg.train.report_to, Path(cfg.output_dir)),
    )


def claim_output(cfg: RecipeCfg, accelerator, resume: bool) -> tuple[Path, Path, Path]:
    """(output folder, its checkpoints folder, the base model folder)."""
    from ecgvlm.train.checkpoint import latest_checkpoint

    # Rank 0 claims the folder and builds anything shared (the tiny base) first; the others wait at
    # a barrier, then find both done. No --overwrite here: emptying the folder would race them.
    with accelerator.main_process_first():
        out = claim_output_dir(cfg.output_dir, "train", legacy=["checkpoints"])
        ckpt_dir = out / "checkpoints"
        if not resume and latest_checkpoint(ckpt_dir):
            raise ECGVLMError(
                "holds checkpoints of an earlier run: pass --resume, or choose a new output_dir", out
            )
        base_dir = base_model_dir(cfg, out)
    return out, ckpt_dir, base_dir


def build_model(cfg: RecipeCfg, base_dir: Path, precision: str, accelerator):
    """(processor, tunable model, describe_trainable's line, trainable params, total params)."""
    from ecgvlm.model.load import load_processor
    from ecgvlm.model.tuning import LoraSettings, apply_tuning, describe_trainable, trainable_summary

    processor = load_processor(base_dir)
    model = load_base(cfg, base_dir, precision, accelerator.device.type)
    if cfg.model.max_num_tiles:
        processor.image_processor.max_image_tiles = cfg.model.max_num_tiles
    model = apply_tuning(
        model, cfg.tuning, LoraSettings(cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout), cfg.lora.target_regex
    )
    trainable = describe_trainable(model, cfg.tuning)
    n_trainable, n_total = trainable_summary(model)
    accelerator.print(trainable)
    if cfg.train.gradient_checkpointing:
        enable_checkpointing(model, cfg.train.checkpoint_every_n_layers)
    return processor, model, trainable, n_trainable, n_total


def build_data(cfg: RecipeCfg, processor, accelerator):
    """(training set, validation set or None, collator, the curriculum's opening batches)."""
    from ecgvlm.model.chat import Collator
    from ecgvlm.train.data import InstructDataset

    data = InstructDataset(
        cfg.data.train, processor.tokenizer, cfg.data.max_len, cfg.data.sources, cfg.data.image_root
    )
    collate = Collator(processor)
    val = None
    if cfg.data.val:
        val = InstructDataset(
            cfg.data.val, processor.tokenizer, cfg.data.max_len, cfg.data.sources, cfg.data.image_root
        )
    opening = data.curriculum(cfg.data.curriculum, cfg.train.batch_size * accelerator.num_processes)
    return data, val, collate, opening


def restore(run: Run) -> None:
    """Resume from the latest checkpoint, if there is one: weights, optimizer, scheduler, RNG, position."""
    from ecgvlm.train.checkpoint import latest_checkpoint, load_checkpoint, load_engine_checkpoint

    accelerator = run.accelerator
    last = latest_checkpoint(run.ckpt_dir)
    if last is None:
        accelerator.print(f"no checkpoint in {run.ckpt_dir}; starting from step 0")
    elif run.plugin is not None:
        run.position, run.log = load_engine_checkpoint(accelerator, last, run.scheduler)
    else:
        model = accelerator.unwrap_model(run.model)
        run.position, run.log = load_checkpoint(last, model, run.optimizer, run.scheduler)
        accelerator.print(f"resumed from {last.name}")


# ---------------------------------------------------------------- the loop
def train_loop(run: Run) -> tuple[float, int]:
    """Step to ``total_steps`` through the seeded epochs from ``run.position``; returns (wall s, samples)."""
    from tqdm.auto import tqdm

    from ecgvlm.train.data import epoch_batches

    cfg, accelerator, position = run.cfg, run.accelerator, run.position
    run.model.train()
    bar = tqdm(
        total=run.total_steps, initial=position["step"], desc="train", disable=not accelerator.is_main_process
    )
    t0, seen = time.perf_counter(), 0
    # the logged loss: the mean over the accumulated micro-batches and over the processes
    acc_loss, acc_n = torch.zeros((), dtype=torch.float64, device=accelerator.device), 0
    while position["step"] < run.total_steps:
        batches = epoch_batches(
            len(run.data),
            run.global_batch,
            cfg.train.seed,
            position["epoch"],
            run.data.lengths(),
            cfg.data.group_by_length,
            run.opening,
        )
        while position["batch"] < len(batches) and position["step"] < run.total_steps:
            idx = batches[position["batch"]]
            loss = micro_step(run, idx)
            position["batch"] += 1
            seen += len(idx)
            acc_loss += loss.detach().double()
            acc_n += 1
            if accelerator.sync_gradients:
                end_step(run, bar, acc_loss / acc_n)
                acc_loss, acc_n = torch.zeros_like(acc_loss), 0
        if position["batch"] >= len(batches):
            position["epoch"] += 1
            position["batch"] = 0
    bar.close()
    return time.perf_counter() - t0, seen


def micro_step(run: Run, idx: list[int]) -> torch.Tensor:
    """Forward and backward on this process's rows of the global batch ``idx``; the optimizer steps
    when the accumulation is complete. Returns the micro-batch loss."""
    cfg, accelerator = run.cfg, run.accelerator
    size, rank = cfg.train.batch_size, accelerator.process_index
    rank_rows = idx[rank * size : (rank + 1) * size] or idx[:size]
    batch = {k: v.to(accelerator.device) for k, v in run.collate([run.data[i] for i in rank_rows]).items()}
    if run.precision == "bf16":
        batch["pixel_values"] = batch["pixel_values"].to(torch.bfloat16)
    with accelerator.accumulate(run.model):
        loss = causal_lm_loss(run.model, batch, cfg.train.label_logits_only)
        accelerator.backward(loss)
        if accelerator.sync_gradients and run.plugin is None and cfg.train.max_grad_norm:
            accelerator.clip_grad_norm_(run.params, cfg.train.max_grad_norm)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
    return loss


def end_step(run: Run, bar, mean_loss: torch.Tensor) -> None:
    """After an optimizer step: the schedule, the log entry, and validation / a checkpoint when due.
    ``mean_loss``: this process's mean over the accumulated micro-batches."""
    cfg, accelerator, position = run.cfg, run.accelerator, run.position
    run.scheduler.step()
    position["step"] += 1
    bar.update(1)
    step_loss = accelerator.reduce(mean_loss, reduction="mean")
    entry = {
        "step": position["step"],
        "epoch": position["epoch"],
        "loss": float(step_loss),
        "lr": run.scheduler.get_last_lr()[0],
    }
    run.log.append(entry)
    bar.set_postfix(loss=f"{entry['loss']:.4f}")
    if position["step"] % cfg.train.log_every == 0:
        accelerator.log({"train/loss": entry["loss"], "train/lr": entry["lr"]}, step=entry["step"])
    every = cfg.train.eval_every
    if every and position["step"] % every == 0 and position["step"] < run.total_steps:
        validate(run)  # (the last step is validated by train(), once)
    if cfg.train.save_every and position["step"] % cfg.train.save_every == 0:
        checkpoint(run)


def validate(run: Run) -> float:
    """Validation loss (all processes); keeps the best adapter in best/ (main process)."""
    cfg, accelerator, position, log = run.cfg, run.accelerator, run.position, run.log
    loss = evaluate_loss(
        run.model,
        run.val,
        run.collate,
        cfg.train.batch_size,
        accelerator.device,
        run.precision,
        cfg.train.label_logits_only,
        accelerator,
    )
    accelerator.print(f"step {position['step']}: validation loss {loss:.4f}")
    accelerator.log({"val/loss": loss}, step=position["step"])
    if log and log[-1]["step"] == position["step"]:
        log[-1]["val_loss"] = loss  # kept with the step (checkpoints and train_log.jsonl carry it)
    if cfg.train.eval_auc and accelerator.is_main_process:  # quick and rank 0 only: no reduce
        model = accelerator.unwrap_model(run.model)
        auc = superclass_auc(model, run.processor, run.val, accelerator.device, run.precision)
        if auc is not None:
            accelerator.print(f"step {position['step']}: validation superclass AUC {auc:.4f}")
            accelerator.log({"val/superclass_auc": auc}, step=position["step"])
            if log and log[-1]["step"] == position["step"]:
                log[-1]["val_superclass_auc"] = auc
    if cfg.train.eval_every and loss < position.get("best_val_loss", float("inf")):
        position["best_val_loss"], position["best_step"] = loss, position["step"]
        if accelerator.is_main_process:
            save_best(run.out, partial(save_weights, run), position["step"], loss)
    accelerator.wait_for_everyone()
    return loss


def checkpoint(run: Run) -> None:
    """A resumable checkpoint in checkpoints/ (``train.checkpoint`` owns both formats)."""
    from ecgvlm.train.checkpoint import save_checkpoint, save_engine_checkpoint

    accelerator = run.accelerator
    if run.plugin is not None:
        save_engine_checkpoint(accelerator, run.ckpt_dir, run.scheduler, run.position, run.log)
    elif accelerator.is_main_process:
        save_checkpoint(
            run.ckpt_dir,
            accelerator.unwrap_model(run.model),
            run.optimizer,
            run.scheduler,
            dict(run.position),
            run.log,
            run.cfg.train.keep_checkpoints,
        )
    accelerator.wait_for_everyone()
