"""The recipe's save step: the adapter (or merged weights), the run summary and the cards."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ecgvlm.io import atomic_write_json, share_files
from ecgvlm.model.card import write_model_card
from ecgvlm.model.tokenizer import make_tokenizer_portable
from ecgvlm.train.cards import adapter_card_info
from ecgvlm.train.components import (
    peak_memory_gib,
)
from ecgvlm.train.state import Run


def save_weights(run: Run, folder: Path) -> None:
    """The trained weights, the processor (tokenizer readable by transformers 4.45+ and 5.x) and
    the tile setting into ``folder`` (main process)."""
    from ecgvlm.model.load import PARTIAL_WEIGHTS

    cfg = run.cfg
    final = run.accelerator.unwrap_model(run.model)
    if cfg.tuning == "partial":
        from safetensors.torch import save_file

        trained = {n: p.detach().contiguous().cpu() for n, p in final.named_parameters() if p.requires_grad}
        save_file(trained, str(folder / PARTIAL_WEIGHTS))
        atomic_write_json(
            folder / "partial_config.json",
            {"base_model_name_or_path": str(run.base_dir), "tuning": "partial", "tensors": len(trained)},
        )
    else:
        final.save_pretrained(str(folder), safe_serialization=True)
        (folder / "README.md").unlink(missing_ok=True)  # PEFT's empty template; our card replaces it
    run.processor.save_pretrained(str(folder))
    make_tokenizer_portable(folder)
    if cfg.model.max_num_tiles:  # evaluate/serve must shrink the base the same way
        atomic_write_json(folder / "ecgvlm_model.json", {"max_num_tiles": cfg.model.max_num_tiles})
    share_files(folder)


def save_final(run: Run, val_loss: float | None, wall: float, seen: int, digests: list[str]) -> None:
    """The final weights, train_log.jsonl, train_summary.json and the model cards (main process)."""
    from ecgvlm.io import write_jsonl

    out = run.out
    tmp = out / ".final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_weights(run, tmp)
    for f in tmp.iterdir():
        os.replace(f, out / f.name)
    tmp.rmdir()
    write_jsonl(out / "train_log.jsonl", run.log)
    summary_doc = run_summary(run, val_loss, wall, seen, digests)
    atomic_write_json(out / "train_summary.json", summary_doc)
    write_cards(run, summary_doc)


def run_summary(run: Run, val_loss: float | None, wall: float, seen: int, digests: list[str]) -> dict:
    """train_summary.json's content."""
    position, log = run.position, run.log
    return {
        "trainable": run.trainable,
        "trainable_params": run.n_trainable,
        "total_params": run.n_total,
        "engine": str(run.accelerator.distributed_type),
        "peak_mem_gib": round(peak_memory_gib(), 3),
        "val_loss": val_loss,
        "steps": position["step"],
        "wall_s": round(wall, 2),
        "samples_per_s": round(seen / wall, 3) if wall > 0 else None,
        "final_loss": log[-1]["loss"] if log else None,
        # what the model learned to answer; the interpreter asks only these kinds of question
        "tasks": run.data.task_counts(),
        "world_size": run.accelerator.num_processes,
        # every process's trainable weights at the end (equal: DDP keeps them in step)
        "weights_sha256": digests,
        "best": {"step": position["best_step"], "val_loss": position["best_val_loss"]}
        if "best_step" in position
        else None,
    }


def write_cards(run: Run, summary_doc: dict) -> None:
    """README.md model cards for the adapter and, when there is one, for best/."""
    out, world = run.out, run.accelerator.num_processes
    card = adapter_card_info(run.cfg, run.base_dir, summary_doc, world, len(run.data))
    write_model_card(out, card)
    if summary_doc["best"] and (out / "best").is_dir():  # the best adapter is shared too: its own card
        best = summary_doc["best"]
        card["name"] = f"{card['name']} (best of {run.position['step']} steps by validation loss)"
        card["recipe"].update(
            {"steps": best["step"], "final training loss": None, "validation loss (last)": None}
        )
        write_model_card(out / "best", card)
