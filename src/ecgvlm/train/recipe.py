"""The fine-tuning recipe, top to bottom: setup -> train -> save.

A plain PyTorch loop; accelerate only places the model on devices, does bf16 autocast and wraps
DeepSpeed ZeRO-2 when the recipe names a DeepSpeed JSON. Resuming restores weights, AdamW,
scheduler, RNG and the position in the (seeded, per-epoch) data order, so a killed and resumed
CPU run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import atomic_write_json, atomic_write_text, share_files
from ecgvlm.model.card import write_model_card
from ecgvlm.model.schedule import warmup_cosine
from ecgvlm.model.tokenizer import make_tokenizer_portable
from ecgvlm.outputs import claim_output_dir
from ecgvlm.train.cards import adapter_card_info
from ecgvlm.train.config import RecipeCfg, to_dict, to_yaml
from ecgvlm.train.loss import causal_lm_loss
from ecgvlm.train.tracking import accelerator_kwargs, check_tracker, flat_config, start_trackers
from ecgvlm.train.validation import evaluate_loss, save_best, superclass_auc


# ---------------------------------------------------------------- setup helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_precision(cfg: RecipeCfg) -> str:
    p = cfg.train.precision
    if p == "auto":
        return "bf16" if torch.cuda.is_available() else "fp32"
    if p not in ("bf16", "fp32"):
        raise ECGVLMError(f"train.precision must be auto, bf16 or fp32, not {p!r}")
    return p


def base_model_dir(cfg: RecipeCfg, out: Path) -> Path:
    """The base model folder; ``tiny`` builds the random tiny preset (deterministic) once."""
    if cfg.model.path != "tiny":
        return Path(cfg.model.path).resolve()
    from ecgvlm.model.base import build_random_tiny

    target = out / "tiny-base"
    if not (target / "model.safetensors").is_file():
        build_random_tiny(target, seed=cfg.model.tiny_seed)
    return target.resolve()


def load_base(cfg: RecipeCfg, path: Path, precision: str, device: str):
    from ecgvlm.model.load import load_model

    if cfg.model.qlora:
        return load_qlora_base(path)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = load_model(path, dtype=dtype, device=None, attn=cfg.model.attn)
    if cfg.model.max_num_tiles:
        from ecgvlm.model.tiles import shrink_tiles

        shrink_tiles(model, cfg.model.max_num_tiles)
    return model


def load_qlora_base(path: Path):
    """A 4-bit NF4 base (bitsandbytes) for 24-48 GB GPUs. Refused on CPU."""
    if not torch.cuda.is_available():
        raise ECGVLMError("model.qlora=true needs a CUDA GPU (bitsandbytes 4-bit); use fp32 LoRA on CPU")
    try:
        from transformers import BitsAndBytesConfig, MllamaForConditionalGeneration
    except ImportError as e:
        raise ECGVLMError(f"model.qlora needs bitsandbytes: pip install 'ecgvlm[gpu]' ({e})") from None
    from peft import prepare_model_for_kbit_training

    q = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
        llm_int8_skip_modules=["lm_head", "multi_modal_projector", "vision_model.patch_embedding"],
    )
    model = MllamaForConditionalGeneration.from_pretrained(
        str(path), quantization_config=q, local_files_only=True, dtype=torch.bfloat16, device_map={"": 0}
    )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)


def enable_checkpointing(model, every_n_layers: int = 1) -> None:
    """Non-reentrant activation checkpointing (the reentrant kind breaks with frozen inputs / LoRA).

    ``every_n_layers`` > 1 keeps the activations of the other layers: faster, more memory.
    """
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs=kwargs, every_n_layers=every_n_layers
        )
    else:  # transformers < 5.2x
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False


def cosine_schedule(optimizer, warmup: int, total: int):
    """Warm-up, then a cosine to zero at ``total`` (``model.schedule.warmup_cosine``)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total, warmup))


def deepspeed_plugin(cfg: RecipeCfg, precision: str):
    """Fill the DeepSpeed JSON's "auto" fields from the recipe so the file alone decides nothing silently."""
    from accelerate.utils import DeepSpeedPlugin

    try:
        ds = json.loads(Path(cfg.deepspeed).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ECGVLMError(f"cannot read DeepSpeed config ({e})", cfg.deepspeed) from None
    fill = {
        "train_micro_batch_size_per_gpu": cfg.train.batch_size,
        "gradient_accumulation_steps": cfg.train.grad_accum,
        "gradient_clipping": cfg.train.max_grad_norm,
    }
    for k, v in fill.items():
        if ds.get(k, "auto") == "auto":
            ds[k] = v
    ds.pop("train_batch_size", None)  # derived by DeepSpeed from the two above and the world size
    ds.setdefault("bf16", {})["enabled"] = precision == "bf16"
    ds.setdefault("fp16", {})["enabled"] = False
    ds["zero_allow_untested_optimizer"] = True
    return DeepSpeedPlugin(hf_ds_config=ds)


# ---------------------------------------------------------------- the loss
def trainable_digest(model) -> str:
    """sha256 over the trainable tensors (by name, fp32 bytes): equal weights, equal digest."""
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def peak_memory_gib() -> float:
    """Peak accelerator memory (GPU) or the process's peak RSS (CPU), GiB."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ---------------------------------------------------------------- the recipe
def train(cfg: RecipeCfg, resume: bool = False) -> Path:
    """Run the recipe; returns the output folder (adapter or partial weights + processor + config + log)."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from ecgvlm.model.chat import Collator
    from ecgvlm.model.load import PARTIAL_WEIGHTS, load_processor
    from ecgvlm.model.tuning import LoraSettings, apply_tuning, describe_trainable, trainable_summary
    from ecgvlm.train.checkpoint import (
        latest_checkpoint,
        load_checkpoint,
        load_engine_checkpoint,
        save_checkpoint,
        save_engine_checkpoint,
    )
    from ecgvlm.train.data import InstructDataset, epoch_batches

    # ---- setup
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if not cfg.data.train:
        raise ECGVLMError("data.train is not set (the instruction file to train on)")
    if cfg.train.eval_every and not cfg.data.val:
        raise ECGVLMError("train.eval_every needs data.val (the validation file)")
    check_tracker(cfg.train.report_to)
    precision = resolve_precision(cfg)
    if precision == "bf16" and not torch.cuda.is_available():
        print("note: bf16 on CPU is several times slower than fp32")
    plugin = deepspeed_plugin(cfg, precision) if cfg.deepspeed else None
    accelerator = Accelerator(
        mixed_precision="bf16" if precision == "bf16" else "no",
        gradient_accumulation_steps=cfg.train.grad_accum,
        deepspeed_plugin=plugin,
        # accelerate treats a multi-process launch without GPUs as one process each unless told
        # cpu=True (then it joins them over gloo); single-process runs keep its device choice
        cpu=not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1,
        **accelerator_kwargs(cfg.train.report_to, Path(cfg.output_dir)),
    )
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
    seed_everything(cfg.train.seed)
    processor = load_processor(base_dir)
    model = load_base(cfg, base_dir, precision, accelerator.device.type)
    if cfg.model.max_num_tiles:
        processor.image_processor.max_image_tiles = cfg.model.max_num_tiles
    model = apply_tuning(
        model, cfg.tuning, LoraSettings(cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout), cfg.lora.target_regex
    )
    summary = describe_trainable(model, cfg.tuning)
    n_trainable, n_total = trainable_summary(model)
    accelerator.print(summary)
    if cfg.train.gradient_checkpointing:
        enable_checkpointing(model, cfg.train.checkpoint_every_n_layers)
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
    world, rank = accelerator.num_processes, accelerator.process_index
    global_batch = cfg.train.batch_size * world
    micro_per_epoch = math.ceil(len(data) / global_batch)
    steps_per_epoch = max(1, micro_per_epoch // cfg.train.grad_accum)
    total_steps = cfg.train.max_steps or max(1, int(cfg.train.epochs * steps_per_epoch))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    scheduler = cosine_schedule(optimizer, int(cfg.train.warmup_ratio * total_steps), total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)

    position = {"step": 0, "epoch": 0, "batch": 0}
    log: list[dict] = []
    if resume:
        last = latest_checkpoint(ckpt_dir)
        if last is None:
            accelerator.print(f"no checkpoint in {ckpt_dir}; starting from step 0")
        elif plugin is not None:
            position, log = load_engine_checkpoint(accelerator, last, scheduler)
        else:
            position, log = load_checkpoint(last, accelerator.unwrap_model(model), optimizer, scheduler)
            accelerator.print(f"resumed from {last.name}")
    if accelerator.is_main_process:
        atomic_write_text(out / "config.yaml", to_yaml(cfg))
    start_trackers(accelerator, cfg.train.report_to, out, flat_config(to_dict(cfg)))

    def save_weights(folder: Path) -> None:
        """The trained weights, the processor (tokenizer readable by transformers 4.45+ and 5.x) and
        the tile setting into ``folder`` (main process)."""
        final = accelerator.unwrap_model(model)
        if cfg.tuning == "partial":
            from safetensors.torch import save_file

            trained = {
                n: p.detach().contiguous().cpu() for n, p in final.named_parameters() if p.requires_grad
            }
            save_file(trained, str(folder / PARTIAL_WEIGHTS))
            atomic_write_json(
                folder / "partial_config.json",
                {"base_model_name_or_path": str(base_dir), "tuning": "partial", "tensors": len(trained)},
            )
        else:
            final.save_pretrained(str(folder), safe_serialization=True)
            (folder / "README.md").unlink(missing_ok=True)  # PEFT's empty template; our card replaces it
        processor.save_pretrained(str(folder))
        make_tokenizer_portable(folder)
        if cfg.model.max_num_tiles:  # evaluate/serve must shrink the base the same way
            atomic_write_json(folder / "ecgvlm_model.json", {"max_num_tiles": cfg.model.max_num_tiles})
        share_files(folder)

    def validate() -> float:
        """Validation loss (all processes); keeps the best adapter in best/ (main process)."""
        loss = evaluate_loss(
            model,
            val,
            collate,
            cfg.train.batch_size,
            accelerator.device,
            precision,
            cfg.train.label_logits_only,
            accelerator,
        )
        accelerator.print(f"step {position['step']}: validation loss {loss:.4f}")
        accelerator.log({"val/loss": loss}, step=position["step"])
        if log and log[-1]["step"] == position["step"]:
            log[-1]["val_loss"] = loss  # kept with the step (checkpoints and train_log.jsonl carry it)
        if cfg.train.eval_auc and accelerator.is_main_process:  # quick and rank 0 only: no reduce
            auc = superclass_auc(
                accelerator.unwrap_model(model), processor, val, accelerator.device, precision
            )
            if auc is not None:
                accelerator.print(f"step {position['step']}: validation superclass AUC {auc:.4f}")
                accelerator.log({"val/superclass_auc": auc}, step=position["step"])
                if log and log[-1]["step"] == position["step"]:
                    log[-1]["val_superclass_auc"] = auc
        if cfg.train.eval_every and loss < position.get("best_val_loss", float("inf")):
            position["best_val_loss"], position["best_step"] = loss, position["step"]
            if accelerator.is_main_process:
                save_best(out, save_weights, position["step"], loss)
        accelerator.wait_for_everyone()
        return loss

    def checkpoint() -> None:
        if plugin is not None:
            save_engine_checkpoint(accelerator, ckpt_dir, scheduler, position, log)
        elif accelerator.is_main_process:
            save_checkpoint(
                ckpt_dir,
                accelerator.unwrap_model(model),
                optimizer,
                scheduler,
                dict(position),
                log,
                cfg.train.keep_checkpoints,
            )
        accelerator.wait_for_everyone()

    # ---- train
    model.train()
    bar = tqdm(
        total=total_steps, initial=position["step"], desc="train", disable=not accelerator.is_main_process
    )
    t0, seen = time.perf_counter(), 0
    # the logged loss: the mean over the accumulated micro-batches and over the processes
    acc_loss, acc_n = torch.zeros((), dtype=torch.float64, device=accelerator.device), 0
    while position["step"] < total_steps:
        batches = epoch_batches(
            len(data),
            global_batch,
            cfg.train.seed,
            position["epoch"],
            data.lengths(),
            cfg.data.group_by_length,
            opening,
        )
        while position["batch"] < len(batches) and position["step"] < total_steps:
            idx = batches[position["batch"]]
            rank_rows = (
                idx[rank * cfg.train.batch_size : (rank + 1) * cfg.train.batch_size]
                or idx[: cfg.train.batch_size]
            )
            batch = {k: v.to(accelerator.device) for k, v in collate([data[i] for i in rank_rows]).items()}
            if precision == "bf16":
                batch["pixel_values"] = batch["pixel_values"].to(torch.bfloat16)
            with accelerator.accumulate(model):
                loss = causal_lm_loss(model, batch, cfg.train.label_logits_only)
                accelerator.backward(loss)
                if accelerator.sync_gradients and plugin is None and cfg.train.max_grad_norm:
                    accelerator.clip_grad_norm_(params, cfg.train.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            position["batch"] += 1
            seen += len(idx)
            acc_loss += loss.detach().double()
            acc_n += 1
            if accelerator.sync_gradients:
                scheduler.step()
                position["step"] += 1
                bar.update(1)
                step_loss = accelerator.reduce(acc_loss / acc_n, reduction="mean")
                acc_loss, acc_n = torch.zeros_like(acc_loss), 0
                entry = {
                    "step": position["step"],
                    "epoch": position["epoch"],
                    "loss": float(step_loss),
                    "lr": scheduler.get_last_lr()[0],
                }
                log.append(entry)
                bar.set_postfix(loss=f"{entry['loss']:.4f}")
                if position["step"] % cfg.train.log_every == 0:
                    accelerator.log(
                        {"train/loss": entry["loss"], "train/lr": entry["lr"]}, step=entry["step"]
                    )
                every = cfg.train.eval_every
                if every and position["step"] % every == 0 and position["step"] < total_steps:
                    validate()  # (the last step is validated below, once)
                if cfg.train.save_every and position["step"] % cfg.train.save_every == 0:
                    checkpoint()
        if position["batch"] >= len(batches):
            position["epoch"] += 1
            position["batch"] = 0
    bar.close()
    wall = time.perf_counter() - t0
    val_loss = validate() if val is not None else None
    from accelerate.utils import gather_object

    digests = gather_object([trainable_digest(accelerator.unwrap_model(model))])

    # ---- save
    if accelerator.is_main_process:
        tmp = out / ".final.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_weights(tmp)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
        tmp.rmdir()
        from ecgvlm.io import write_jsonl

        write_jsonl(out / "train_log.jsonl", log)
        summary_doc = {
            "trainable": summary,
            "trainable_params": n_trainable,
            "total_params": n_total,
            "engine": str(accelerator.distributed_type),
            "peak_mem_gib": round(peak_memory_gib(), 3),
            "val_loss": val_loss,
            "steps": position["step"],
            "wall_s": round(wall, 2),
            "samples_per_s": round(seen / wall, 3) if wall > 0 else None,
            "final_loss": log[-1]["loss"] if log else None,
            # what the model learned to answer; the interpreter asks only these kinds of question
            "tasks": data.task_counts(),
            "world_size": world,
            # every process's trainable weights at the end (equal: DDP keeps them in step)
            "weights_sha256": digests,
            "best": {"step": position["best_step"], "val_loss": position["best_val_loss"]}
            if "best_step" in position
            else None,
        }
        atomic_write_json(out / "train_summary.json", summary_doc)
        card = adapter_card_info(cfg, base_dir, summary_doc, world, len(data))
        write_model_card(out, card)
        if summary_doc["best"] and (out / "best").is_dir():  # the best adapter is shared too: its own card
            best = summary_doc["best"]
            card["name"] = f"{card['name']} (best of {position['step']} steps by validation loss)"
            card["recipe"].update(
                {"steps": best["step"], "final training loss": None, "validation loss (last)": None}
            )
            write_model_card(out / "best", card)
    # close the trackers (flushes TensorBoard / W&B / MLflow); not end_training(), which would also
    # destroy the process group that the caller's next run (a sweep) may still use
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.wait_for_everyone()
    return out
